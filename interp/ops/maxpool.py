"""Max-pooling whose derivative follows the recorded argmax switches.

`lax.reduce_window` max is differentiated by XLA's `select_and_scatter`, which
is several times slower on CPU than the elementwise work it amounts to. Here
the pool is written as the max of strided slices of the padded input (one slice
per window offset), and a custom JVP sends each output's tangent through the
offset that won, the "switch" of Zeiler & Fergus's deconvnet. Its transpose (the
VJP) is elementwise selects and data movement, no scatter, so reverse mode is
fast too, and because the rule is a JVP, forward mode and higher derivatives
keep working.

Values equal `lax.reduce_window(x, -inf, lax.max, ...)` exactly, and so do
gradients: on ties, the first offset in row-major window order wins, as it does
in XLA's `select_and_scatter` with `ge` (reverse mode) and in JAX's
`select_and_gather_add` (forward mode), which is how `reduce_window` max is
differentiated; tests/ops/test_maxpool.py checks both on inputs full of ties.

`with_switch_max_pools(f)` rewrites `f`'s jaxpr so that its `reduce_window`
max-pools (`lax.reduce_window` with `lax.max` and `-inf`, `flax.linen.max_pool`)
run through `max_pool`, for the window shapes where that was measured faster
on XLA:CPU (`switch_is_faster`); others are left as they are.
"""

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from interp.ops import jaxprs


def max_pool(
    x: jax.Array,
    window_dimensions: Sequence[int],
    window_strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
) -> jax.Array:
    """Max over windows, as `lax.reduce_window(x, -inf, lax.max, ...)`, with a switch derivative.

    Args:
      x: [d0, d1, ...] input of any rank (e.g. NHWC).
      window_dimensions: window size per dimension (1 where nothing is pooled).
      window_strides: stride per dimension.
      padding: (low, high) padding per dimension, filled with the lowest value
        of the dtype (-inf for floats), so padding never wins a window.

    Returns:
      [d0', d1', ...] pooled values, `d' = (d + low + high - window) // stride + 1`.
    """
    return _switch_pool(
        x, tuple(map(int, window_dimensions)), tuple(map(int, window_strides)), _pairs(padding)
    )


def with_switch_max_pools(f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` with its `reduce_window` max-pools computed by `max_pool`: the same values and derivatives.

    A pool is routed when its dilations are 1, its dtype is floating and
    `switch_is_faster(window, strides)`; others (dilated windows, large
    overlapping windows, integer pools, pools inside control flow or
    custom-derivative functions) are left as they are. `f` may take and
    return pytrees; apply it before differentiating (`jax.grad(
    with_switch_max_pools(f))`): in a gradient's own jaxpr the backward pass
    already is a `select_and_scatter`.
    """
    return jaxprs.rewrite_for_speed(f, *SWITCH_POOLS)


def switch_is_faster(window_dimensions: Sequence[int], window_strides: Sequence[int]) -> bool:
    """Whether the switch pool's gradient beats `select_and_scatter`'s on XLA:CPU for this window.

    From `python -m benchmarks.max_pool` (benchmarks/RESULTS.md): windows
    that do not overlap, windows of up to 4 elements, and windows of up to 9
    elements with every pooled stride at least 2 are faster; a 3x3 window at
    stride 1 and windows of 16 or 25 elements at stride 2 are slower, their
    general-form tangent selecting among many full-size slices.
    """
    pooled = [(int(w), int(s)) for w, s in zip(window_dimensions, window_strides) if w > 1]
    size = int(np.prod([w for w, _ in pooled], dtype=np.int64))
    return all(s >= w for w, s in pooled) or size <= 4 or (size <= 9 and all(s >= 2 for _, s in pooled))


def _is_routable_pool(eqn: jcore.JaxprEqn) -> bool:
    if eqn.primitive.name != "reduce_window_max":
        return False
    params = eqn.params
    return (
        all(d == 1 for d in (*params["base_dilation"], *params["window_dilation"]))
        and jnp.issubdtype(eqn.invars[0].aval.dtype, jnp.floating)
        and switch_is_faster(params["window_dimensions"], params["window_strides"])
    )


def _switch_pool_of(eqn: jcore.JaxprEqn, invals: list[Any]) -> list[jax.Array]:
    (x,) = invals
    params = eqn.params
    return [max_pool(x, params["window_dimensions"], params["window_strides"], params["padding"])]


# (select, rule) for `jaxprs.rewrite_for_speed`; `interp.ops.for_speed` combines it with others.
SWITCH_POOLS = (_is_routable_pool, _switch_pool_of)


def _pairs(padding: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _lowest(dtype) -> jax.Array:
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.array(-jnp.inf, dtype)
    return jnp.array(np.iinfo(dtype).min if jnp.issubdtype(dtype, jnp.integer) else False, dtype)


def _windows(x, window, strides, padding, fill) -> list[jax.Array]:
    """One strided slice of `x` padded with `fill` per window offset, in row-major order.

    Slice k holds, at each output position, the k-th element of that window.
    """
    if not (len(window) == len(strides) == len(padding) == x.ndim):
        raise ValueError(
            f"max_pool: window {window}, strides {strides} and padding {padding} "
            f"need one entry per dimension of x (rank {x.ndim})"
        )
    padded = lax.pad(x, fill, [(lo, hi, 0) for lo, hi in padding])
    out = [(n - w) // s + 1 for n, w, s in zip(padded.shape, window, strides)]
    if min(out) < 1:
        raise ValueError(f"max_pool: window {window} is larger than the padded input {padded.shape}")
    slices = []
    for offset in itertools.product(*(range(w) for w in window)):
        limit = [o + (n - 1) * s + 1 for o, n, s in zip(offset, out, strides)]
        slices.append(lax.slice(padded, offset, limit, strides))
    return slices


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _switch_pool(x, window, strides, padding):
    return functools.reduce(lax.max, _windows(x, window, strides, padding, _lowest(x.dtype)))


@_switch_pool.defjvp
def _switch_pool_jvp(window, strides, padding, primals, tangents):
    (x,), (dx,) = primals, tangents
    values = _windows(x, window, strides, padding, _lowest(x.dtype))
    best, switch = values[0], jnp.zeros(values[0].shape, jnp.int32)
    for k, value in enumerate(values[1:], start=1):
        # Strict `>` keeps the first maximum, matching select_and_scatter's tie-break.
        switch = jnp.where(value > best, k, switch)
        best = lax.max(best, value)
    # The tangent is linear in dx and selects on a fixed switch, so JAX
    # transposes it into the switch-routed VJP without a scatter.
    if _windows_tile(x.shape, window, strides, padding):
        return best, _tangent_of_tiles(dx, switch, window)
    tangent_windows = _windows(dx, window, strides, padding, jnp.zeros((), dx.dtype))
    out_tangent = tangent_windows[0]
    for k, tangent in enumerate(tangent_windows[1:], start=1):
        out_tangent = jnp.where(switch == k, tangent, out_tangent)
    return best, out_tangent


def _windows_tile(shape, window, strides, padding) -> bool:
    """Whether the windows cover `shape` exactly once: stride = window, no padding, no remainder."""
    return tuple(window) == tuple(strides) and all(
        lo == hi == 0 and n % w == 0 for n, w, (lo, hi) in zip(shape, window, padding)
    )


def _tangent_of_tiles(dx: jax.Array, switch: jax.Array, window) -> jax.Array:
    """Each window's winning element of dx, for windows that tile it.

    dx is viewed as blocks [*pooled shape, window size] (window elements in
    the row-major order of `_windows`), and the switch picks one per block.
    Its transpose writes each pooled gradient into its block in one pass,
    where the general form's transpose adds one zero-padded array per window
    offset (benchmarks/RESULTS.md, "Speed workarounds").
    """
    split = [size for n, w in zip(dx.shape, window) for size in (n // w, w)]
    order = [*range(0, 2 * dx.ndim, 2), *range(1, 2 * dx.ndim, 2)]
    blocks = dx.reshape(split).transpose(order).reshape(switch.shape + (-1,))
    element = lax.broadcasted_iota(switch.dtype, blocks.shape, switch.ndim)
    return jnp.where(switch[..., None] == element, blocks, jnp.zeros((), dx.dtype)).sum(axis=-1)
