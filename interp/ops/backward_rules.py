"""Deconvnet and guided-backprop ReLUs, installed in any function by rewriting its jaxpr.

Deconvnet (Zeiler & Fergus, 2014) and guided backpropagation (Springenberg et
al., 2015) are the gradient with a different backward rule for ReLU; max-pools
keep their switches, which is what JAX's own max-pool derivative already does.
With `y = relu(x)` and `g = dL/dy`, the signal passed back to `x` is:

  * gradient:  `g * (x > 0)`
  * deconvnet: `g * (g > 0)`             (a ReLU of the backward signal)
  * guided:    `g * (x > 0) * (g > 0)`   (both masks)

`with_relu_backward(fn, rule)` traces `fn`, finds every ReLU and evaluates the
jaxpr with each one replaced by a ReLU whose custom VJP is `rule`; the forward
pass is unchanged. A ReLU is any of:

  * `max(x, 0)` (`lax.max`, `jnp.maximum`, `jnp.clip(x, 0)`), the zero on either
    side, as a literal, a broadcast of one (`jnp.zeros_like(x)`), or an all-zero
    constant of the traced function;
  * `jnp.where(x > 0, x, 0)` and `jnp.where(x <= 0, 0, x)` (a `select_n` on a
    comparison of `x` with zero, through the jit that `jnp.where` makes),
    hence `relu`, the zoo's NaN-keeping ReLU;
  * a `custom_jvp` function whose body is such a max, e.g. `jax.nn.relu`
    (Flax's `nn.relu`).

Other spellings (e.g. `x * (x > 0)`) are not recognized: their gradient is left
as it is, so write ReLUs as above; a function in which no ReLU is found at all
raises `ValueError` rather than return its plain gradient. ReLUs inside
`jit`, `closed_call` and `remat` bodies are rewritten; one inside control flow
(`scan`, `cond`, `while`) or inside another custom-derivative function raises
`NotImplementedError` naming that construct.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from interp.ops import jaxprs

Rule = Literal["guided", "deconvnet"]

# Primitives that only reshape or cast a value: all-zero in, all-zero out.
_ZERO_PRESERVING = frozenset(
    {"broadcast_in_dim", "convert_element_type", "reshape", "squeeze", "expand_dims"}
)


def relu(x: jax.Array) -> jax.Array:
    """`max(x, 0)` that keeps NaN under any compiler fusion; the zoo's ReLU.

    Written `where(x <= 0, 0, x)`: NaN fails the test and passes through,
    whatever the backend does with `max`. XLA:CPU (jaxlib 0.10) fuses an
    elementwise `max` with a following reduction into a YNNPACK kernel
    whose max drops NaN, so under `jit` `mean(jax.nn.relu(x))` of an all-NaN
    `x` is 0 (SmallCNN's head is exactly that: a NaN conv kernel gave finite
    logits and a silently broken training run); eagerly it is NaN. Values
    and gradients equal `jax.nn.relu`'s everywhere else (the gradient at 0
    is 0), and `with_relu_backward` recognizes it.
    """
    return jnp.where(x <= 0, jnp.zeros((), x.dtype), x)


@jax.custom_vjp
def guided_relu(x: jax.Array) -> jax.Array:
    """`relu(x)`, passing back `g * (x > 0) * (g > 0)` (guided backpropagation)."""
    return relu(x)


def _guided_fwd(x):
    return guided_relu(x), x


def _guided_bwd(x, g):
    return (jnp.where((x > 0) & (g > 0), g, jnp.zeros((), g.dtype)),)


guided_relu.defvjp(_guided_fwd, _guided_bwd)


@jax.custom_vjp
def deconvnet_relu(x: jax.Array) -> jax.Array:
    """`relu(x)`, passing back `g * (g > 0)` (deconvnet: the forward mask is ignored)."""
    return relu(x)


def _deconvnet_fwd(x):
    return deconvnet_relu(x), None


def _deconvnet_bwd(_, g):
    return (jnp.maximum(g, jnp.zeros((), g.dtype)),)


deconvnet_relu.defvjp(_deconvnet_fwd, _deconvnet_bwd)

RELUS: dict[str, Callable[[jax.Array], jax.Array]] = {"guided": guided_relu, "deconvnet": deconvnet_relu}


@dataclasses.dataclass(frozen=True)
class RewrittenFn:
    """`fn` with every ReLU's backward rule replaced by `rule` (see `with_relu_backward`).

    A frozen dataclass rather than a closure, so two rewrites of the same
    function compare equal and can serve as static `jit` arguments (e.g. a
    `Model.apply_fn`).
    """

    fn: Callable[..., Any]
    rule: Rule

    def __call__(self, *args, **kwargs):
        closed, leaves, unflatten = jaxprs.trace_flat(lambda a, k: self.fn(*a, **k), args, kwargs)
        facts = _facts(closed)
        relu = RELUS[self.rule]
        replaced = []

        def replace(eqn, invals):
            replaced.append(eqn)
            return [relu(invals[_relu_operand(eqn, facts)])]

        try:
            flat_out = jaxprs.interpret(closed, leaves, _selector(facts), replace)
        except NotImplementedError as err:
            raise NotImplementedError(
                f"with_relu_backward(rule={self.rule!r}): a ReLU can not be rewritten: {err}"
            ) from err
        if not replaced:
            # Returning the plain gradient under the method's name would be silently wrong.
            raise ValueError(
                f"fn: with_relu_backward(rule={self.rule!r}) found no ReLU to rewrite; "
                "write ReLUs as interp.ops.relu, jax.nn.relu or jnp.maximum(x, 0)"
            )
        return unflatten(flat_out)


def with_relu_backward(fn: Callable[..., Any], rule: Rule = "guided") -> RewrittenFn:
    """`fn` with the backward rule of every ReLU replaced; values are unchanged.

    Args:
      fn: any JAX function (e.g. `lambda x: module.apply(variables, x)`); args
        and outputs may be pytrees.
      rule: "guided" (`g * (x > 0) * (g > 0)`) or "deconvnet" (`g * (g > 0)`).

    Returns:
      A function with `fn`'s signature and forward values, pure and
      `jit`/`vmap`/`grad`-able. Calling it raises `NotImplementedError` when a
      ReLU sits inside control flow or a custom-derivative function.
    """
    if rule not in RELUS:
        raise ValueError(f"rule: expected one of {sorted(RELUS)}, got {rule!r}")
    return RewrittenFn(fn, rule)


def relu_equations(closed: jcore.ClosedJaxpr) -> list[jcore.JaxprEqn]:
    """The ReLU equations of `closed` and of its nested jaxprs, in program order.

    A `jax.nn.relu` call counts once (its inner `max` is not listed again).
    """
    select = _selector(_facts(closed))
    found, inside = [], set()
    for eqn in jaxprs.equations(closed.jaxpr):
        if id(eqn) in inside:
            continue
        if select(eqn):
            found.append(eqn)
            nested = jcore.jaxprs_in_params(eqn.params)
            inside.update(id(e) for sub in nested for e in jaxprs.equations(sub))
    return found


def _selector(facts: "_Facts") -> jaxprs.Selector:
    def select(eqn: jcore.JaxprEqn) -> bool:
        if eqn.primitive.name in ("max", "select_n"):
            return _relu_operand(eqn, facts) is not None
        if eqn.primitive.name == "custom_jvp_call":
            return eqn.params.get("num_consts", 0) == 0 and _is_relu_body(jaxprs.call_body(eqn)[0], facts)
        return False

    return select


def _relu_operand(eqn: jcore.JaxprEqn, facts: "_Facts") -> int | None:
    """Index of `x` in a ReLU equation (`max(x, 0)`, `max(0, x)`, `where(x > 0, x, 0)`,
    `where(x <= 0, 0, x)`, a relu call), else None."""
    if eqn.primitive.name == "custom_jvp_call":
        return 0
    out_shape = eqn.outvars[0].aval.shape
    if eqn.primitive.name == "select_n":
        return _where_relu_operand(eqn, facts, out_shape)
    a, b = eqn.invars
    for x_index, (x, zero) in enumerate(((a, b), (b, a))):
        if _is_zero(zero, facts.zeros) and not _is_zero(x, facts.zeros) and x.aval.shape == out_shape:
            return x_index
    return None


def _where_relu_operand(eqn: jcore.JaxprEqn, facts: "_Facts", out_shape) -> int | None:
    if len(eqn.invars) != 3 or not isinstance(eqn.invars[0], jcore.Var) or eqn.invars[0] not in facts.tests:
        return None
    predicate, on_false, on_true = eqn.invars
    x, positive = facts.tests[predicate]
    kept, dropped, index = (on_true, on_false, 2) if positive else (on_false, on_true, 1)
    if facts.same(kept, x) and _is_zero(dropped, facts.zeros) and kept.aval.shape == out_shape:
        return index
    return None


def _is_zero(var, zeros: set) -> bool:
    if isinstance(var, jcore.Literal):
        return bool(np.all(np.asarray(var.val) == 0))
    return var in zeros


@dataclasses.dataclass
class _Facts:
    """What the rewriter knows of a traced function's variables.

    Attributes:
      zeros: variables that always hold zeros (all-zero constants and zero
        literals carried through broadcasts, casts and reshapes, so
        `jnp.maximum(x, jnp.zeros_like(x))` counts as a ReLU).
      tests: boolean variables that compare a variable with zero:
        `p -> (x, True)` for `p = x > 0`, `(x, False)` for `p = x <= 0`.
      alias: a jit body's input variable -> the caller's variable it receives,
        so `jnp.where(x > 0, x, 0)` (whose select sits in a jit) is seen whole.
    """

    zeros: set = dataclasses.field(default_factory=set)
    tests: dict = dataclasses.field(default_factory=dict)
    alias: dict = dataclasses.field(default_factory=dict)

    def same(self, a, b) -> bool:
        return isinstance(a, jcore.Var) and isinstance(b, jcore.Var) and self._root(a) is self._root(b)

    def _root(self, var):
        while var in self.alias:
            var = self.alias[var]
        return var


# comparison primitive -> (index of x, index of the zero, whether True means x > 0)
_ZERO_TESTS = {"gt": (0, 1, True), "lt": (1, 0, True), "le": (0, 1, False), "ge": (1, 0, False)}


def _facts(closed: jcore.ClosedJaxpr) -> _Facts:
    facts = _Facts()
    _collect(closed.jaxpr, closed.consts, facts)
    return facts


def _collect(jaxpr: jcore.Jaxpr, consts, facts: _Facts) -> None:
    for var, value in zip(jaxpr.constvars, consts):
        if _concrete_zero(value):
            facts.zeros.add(var)
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in _ZERO_PRESERVING and eqn.invars and _is_zero(eqn.invars[0], facts.zeros):
            facts.zeros.update(eqn.outvars)
        elif name in _ZERO_TESTS and len(eqn.invars) == 2:
            x_index, zero_index, positive = _ZERO_TESTS[name]
            if _is_zero(eqn.invars[zero_index], facts.zeros):
                facts.tests[eqn.outvars[0]] = (eqn.invars[x_index], positive)
        elif name in jaxprs.INLINABLE:
            inner, inner_consts = jaxprs.call_body(eqn)
            # What holds of a jit's arguments holds of its body's inputs.
            for outer, var in zip(eqn.invars, inner.invars):
                if _is_zero(outer, facts.zeros):
                    facts.zeros.add(var)
                if isinstance(outer, jcore.Var):
                    facts.alias[var] = outer
                    if outer in facts.tests:
                        facts.tests[var] = facts.tests[outer]
            _collect(inner, inner_consts, facts)
        else:
            for sub in jcore.jaxprs_in_params(eqn.params):
                _collect(sub, (), facts)


def _concrete_zero(value) -> bool:
    if isinstance(value, jax.core.Tracer):
        return False
    try:
        return bool(np.all(np.asarray(value) == 0))
    except (TypeError, ValueError):
        return False


def _is_relu_body(jaxpr: jcore.Jaxpr, facts: _Facts) -> bool:
    """Whether a one-in, one-out jaxpr computes exactly `max(x, 0)` (through jit wrappers)."""
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return False
    (eqn,) = jaxpr.eqns
    if eqn.outvars[0] is not jaxpr.outvars[0]:
        return False
    if eqn.primitive.name == "max":
        index = _relu_operand(eqn, facts)
        return index is not None and eqn.invars[index] is jaxpr.invars[0]
    if eqn.primitive.name in jaxprs.INLINABLE and len(eqn.invars) == 1 and eqn.invars[0] is jaxpr.invars[0]:
        return _is_relu_body(jaxprs.call_body(eqn)[0], facts)
    return False
