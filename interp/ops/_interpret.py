"""A small jaxpr interpreter that lets a caller replace chosen equations.

Reading a named activation, perturbing it, or swapping the backward rule of a
ReLU are all the same move: trace the function to a jaxpr, evaluate it equation
by equation, and run something else for the equations a caller selects. Every
other equation is re-bound as it was, so the result composes with `jit`, `vmap`
and `grad` like the original function.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.extend import core as jcore

# Call-like primitives whose body is evaluated inline when it holds a selected
# equation. Inlining a jit or remat boundary changes neither values nor
# gradients; within an outer jit it changes nothing at all.
INLINABLE = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "remat2", "checkpoint"})

Selector = Callable[[jcore.JaxprEqn], bool]
Rule = Callable[[jcore.JaxprEqn, list[Any]], list[Any]]


def contains(jaxpr: jcore.Jaxpr, select: Selector) -> bool:
    """Whether `jaxpr`, or any jaxpr nested in it, has an equation `select` picks."""
    for eqn in jaxpr.eqns:
        if select(eqn):
            return True
        if _holds_selected(eqn, select):
            return True
    return False


def equations(jaxpr: jcore.Jaxpr) -> list[jcore.JaxprEqn]:
    """Every equation of `jaxpr` and of the jaxprs nested in it, in program order."""
    found = []
    for eqn in jaxpr.eqns:
        found.append(eqn)
        for sub in jcore.jaxprs_in_params(eqn.params):
            found.extend(equations(sub))
    return found


def interpret(
    closed: jcore.ClosedJaxpr,
    args: Sequence[Any],
    select: Selector,
    rule: Rule,
    strict: bool = True,
) -> list[Any]:
    """Evaluates `closed` on `args`, running `rule` in place of selected equations.

    Args:
      closed: the traced function.
      args: its flat inputs (arrays or tracers of any JAX transformation).
      select: picks the equations to replace.
      rule: `rule(eqn, invals) -> outvals` (a list, one per `eqn.outvars`).
      strict: whether a selected equation inside control flow or a
        custom-derivative function is an error (False: it runs unreplaced,
        for rewrites that change speed, not values).

    Returns:
      The flat outputs.

    Raises:
      NotImplementedError: `strict` and a selected equation sits inside
        control flow or a custom-derivative function, where replacing it
        would be unsound.
    """
    return _eval(closed.jaxpr, closed.consts, args, select, rule, strict)


def rewrite_for_speed(f: Callable[..., Any], select: Selector, rule: Rule) -> Callable[..., Any]:
    """`f` (pytrees in and out) with `rule` in place of the equations `select` picks.

    For rewrites that change how a value is computed, not the value: a
    selected equation inside control flow or a custom-derivative function
    runs as it was (`strict=False`).
    """

    def rewritten(*args):
        leaves, treedef = jax.tree.flatten(args)
        closed, out_shape = jax.make_jaxpr(lambda *flat: f(*jax.tree.unflatten(treedef, flat)), return_shape=True)(
            *leaves
        )
        flat_out = interpret(closed, leaves, select, rule, strict=False)
        return jax.tree.unflatten(jax.tree.structure(out_shape), flat_out)

    return rewritten


def _eval(jaxpr, consts, args, select, rule, strict=True):
    env = {}

    def read(var):
        return var.val if isinstance(var, jcore.Literal) else env[var]

    for var, value in zip(jaxpr.constvars, consts, strict=True):
        env[var] = value
    for var, value in zip(jaxpr.invars, args, strict=True):
        env[var] = value
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        if select(eqn):
            outvals = rule(eqn, invals)
        elif _holds_selected(eqn, select) and (strict or eqn.primitive.name in INLINABLE):
            outvals = _eval_inline(eqn, invals, select, rule, strict)
        else:
            with eqn.ctx.manager:
                outvals = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            if not eqn.primitive.multiple_results:
                outvals = [outvals]
        for var, value in zip(eqn.outvars, outvals, strict=True):
            if not isinstance(var, jcore.DropVar):
                env[var] = value
    return [read(v) for v in jaxpr.outvars]


def _holds_selected(eqn, select) -> bool:
    return any(contains(sub, select) for sub in jcore.jaxprs_in_params(eqn.params))


def _eval_inline(eqn, invals, select, rule, strict):
    name = eqn.primitive.name
    if name not in INLINABLE:
        raise NotImplementedError(
            f"an equation to rewrite sits inside '{name}' (control flow or a custom "
            "derivative); only jit, closed_call and remat bodies can be rewritten. "
            "Move the layer out of it."
        )
    body = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    if isinstance(body, jcore.ClosedJaxpr):
        return _eval(body.jaxpr, body.consts, invals, select, rule, strict)
    return _eval(body, (), invals, select, rule, strict)
