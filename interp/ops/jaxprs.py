"""The jaxpr toolkit: call bodies, equation walking, an interpreter that replaces chosen equations, taps.

Reading a named activation, perturbing it, swapping the backward rule of a
ReLU, rewriting a kernel layout and computing receptive fields are all the
same move: trace the function to a jaxpr and walk it equation by equation,
entering call bodies (`jit`, `remat`, `closed_call`) on the way. This module
is the one place that knows how:

  * `call_body(eqn)`: the body jaxpr and consts of a call-like equation;
    `INLINABLE` names the calls whose body can be evaluated in their place
    without changing values or gradients, `CUSTOM_DERIVATIVE` those whose body
    computes the same values but whose derivative is their own;
  * `walk(jaxpr, consts, args, step)`: the environment loop, for concrete
    values and abstract ones alike; `equations(jaxpr)` lists every equation;
  * `interpret(closed, args, select, rule)`: re-binds every equation but the
    selected ones, so the result composes with `jit`, `vmap` and `grad` like
    the original function; `rewrite_for_speed` applies it to a function;
  * `tap_name(eqn)`: the layer name a `checkpoint_name` mark (what
    `interp.nets.tap` binds) gives its value.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.extend import core as jcore

# Call-like primitives whose body may be evaluated inline. Inlining a jit or
# remat boundary changes neither values nor gradients; within an outer jit it
# changes nothing at all.
INLINABLE = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "remat2", "checkpoint"})
# Calls whose body computes their values but not their derivative: analyses of
# values may enter them, rewrites may not.
CUSTOM_DERIVATIVE = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})
# The primitive JAX's `checkpoint_name` binds, an identity carrying a name.
TAP_PRIMITIVE = "name"

Selector = Callable[[jcore.JaxprEqn], bool]
Rule = Callable[[jcore.JaxprEqn, list[Any]], list[Any]]


def call_body(eqn: jcore.JaxprEqn) -> tuple[jcore.Jaxpr, Sequence[Any]] | None:
    """The body of a call-like equation and its consts; None for any other equation.

    Call-like are the `INLINABLE` and `CUSTOM_DERIVATIVE` primitives: their body
    takes the equation's inputs one for one and returns its outputs. Control
    flow (`scan`, `cond`, `while`) is not call-like.

    Raises:
      NotImplementedError: a call-like equation whose body can not be read
        (a JAX version that stores it differently).
    """
    name = eqn.primitive.name
    if name not in INLINABLE and name not in CUSTOM_DERIVATIVE:
        return None
    body = next((eqn.params[k] for k in ("jaxpr", "call_jaxpr", "fun_jaxpr") if k in eqn.params), None)
    jaxpr, consts = (body.jaxpr, body.consts) if isinstance(body, jcore.ClosedJaxpr) else (body, ())
    if not isinstance(jaxpr, jcore.Jaxpr) or len(jaxpr.invars) != len(eqn.invars):
        raise NotImplementedError(f"cannot read the body of '{name}'")
    return jaxpr, consts


def tap_name(eqn: jcore.JaxprEqn) -> str | None:
    """The layer name of a `tap` (`checkpoint_name`) equation; None for any other equation."""
    return eqn.params["name"] if eqn.primitive.name == TAP_PRIMITIVE else None


def walk(
    jaxpr: jcore.Jaxpr,
    consts: Sequence[Any],
    args: Sequence[Any],
    step: Rule,
    literal: Callable[[jcore.Literal], Any] = lambda lit: lit.val,
) -> list[Any]:
    """Evaluates `jaxpr` with `step(eqn, invals) -> outvals` for each equation, in program order.

    The values may be anything `step` understands: arrays, tracers, or the
    abstract values of an analysis.

    Args:
      jaxpr: the program.
      consts: values of its `constvars`.
      args: values of its `invars`.
      step: computes one equation's outputs (a list, one per `eqn.outvars`).
      literal: the value of a literal operand (default: the literal itself).

    Returns:
      The values of `jaxpr.outvars`.
    """
    env = {}

    def read(var):
        return literal(var) if isinstance(var, jcore.Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        outvals = step(eqn, [read(v) for v in eqn.invars])
        for var, value in zip(eqn.outvars, outvals, strict=True):
            if not isinstance(var, jcore.DropVar):
                env[var] = value
    return [read(v) for v in jaxpr.outvars]


def contains(jaxpr: jcore.Jaxpr, select: Selector) -> bool:
    """Whether `jaxpr`, or any jaxpr nested in it, has an equation `select` picks."""
    return any(select(eqn) or _holds_selected(eqn, select) for eqn in jaxpr.eqns)


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

    def step(eqn, invals):
        if select(eqn):
            return rule(eqn, invals)
        if _holds_selected(eqn, select) and (strict or eqn.primitive.name in INLINABLE):
            if eqn.primitive.name not in INLINABLE:
                raise NotImplementedError(
                    f"an equation to rewrite sits inside '{eqn.primitive.name}' (control flow or a "
                    "custom derivative); only jit, closed_call and remat bodies can be rewritten. "
                    "Move the layer out of it."
                )
            return walk(*call_body(eqn), invals, step)
        with eqn.ctx.manager:
            outvals = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
        return outvals if eqn.primitive.multiple_results else [outvals]

    return walk(closed.jaxpr, closed.consts, args, step)


def trace_flat(f: Callable[..., Any], *args) -> tuple[jcore.ClosedJaxpr, list[Any], Callable[[Sequence[Any]], Any]]:
    """`f(*args)` (pytrees in and out) traced as a function of flat inputs.

    Returns:
      `(closed, leaves, unflatten)`: the jaxpr, the flat inputs to evaluate it
      on (e.g. with `interpret`), and the function that builds `f`'s output
      pytree from the jaxpr's flat outputs.
    """
    leaves, treedef = jax.tree.flatten(args)
    closed, out_shape = jax.make_jaxpr(lambda *flat: f(*jax.tree.unflatten(treedef, flat)), return_shape=True)(
        *leaves
    )
    out_tree = jax.tree.structure(out_shape)
    return closed, leaves, lambda flat_out: jax.tree.unflatten(out_tree, flat_out)


def rewrite_for_speed(f: Callable[..., Any], select: Selector, rule: Rule) -> Callable[..., Any]:
    """`f` (pytrees in and out) with `rule` in place of the equations `select` picks.

    For rewrites that change how a value is computed, not the value: a
    selected equation inside control flow or a custom-derivative function
    runs as it was (`strict=False`).
    """

    def rewritten(*args):
        closed, leaves, unflatten = trace_flat(f, *args)
        return unflatten(interpret(closed, leaves, select, rule, strict=False))

    return rewritten


def _holds_selected(eqn, select) -> bool:
    return any(contains(sub, select) for sub in jcore.jaxprs_in_params(eqn.params))
