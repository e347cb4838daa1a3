"""Weighted sums over many evaluations per example, a bounded number at a time.

Path and perturbation methods evaluate the network on many variants of every
example (path points, noisy copies, occluded images). The variants of a chunk
are folded into the batch axis *example-major*, `[b, c, ...] -> [b * c, ...]`,
and the network is called once on that batch. Example-major matters on a
mesh: a batch sharded over devices stays sharded, each device evaluating the
variants of its own examples. (A `vmap` over the variants folds them in
variant-major, which splits every example's variants over devices and makes
XLA reshard the activations: slower on two devices than on one;
benchmarks/RESULTS.md, "Attribution vs Captum".)
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp.ops import for_speed


def fold(variants: jax.Array) -> jax.Array:
    """`[b, c, ...] -> [b * c, ...]`, example-major."""
    return variants.reshape(-1, *variants.shape[2:])


def unfold(folded: jax.Array, per_example: int) -> jax.Array:
    """`[b * c, ...] -> [b, c, ...]`, the inverse of `fold`."""
    return folded.reshape(-1, per_example, *folded.shape[1:])


def repeat_per_example(value: Any, per_example: int, batch: int) -> Any:
    """Arrays whose leading axis is the batch, repeated to match `fold`; anything else unchanged.

    A list of numbers (e.g. a target given as `[3, 0, 1]`) counts as an array.
    """
    if isinstance(value, list | tuple) and value:
        numbers = np.asarray(value)
        if numbers.dtype.kind in "iuf":
            value = numbers

    def repeat(leaf):
        if isinstance(leaf, jax.Array | np.ndarray) and leaf.ndim and leaf.shape[0] == batch:
            return jnp.repeat(leaf, per_example, axis=0)
        return leaf

    return jax.tree.map(repeat, value)


def even_chunks(n: int, chunk_size: int | None) -> tuple[int, int]:
    """(chunks, items per chunk) for `n` items at most `chunk_size` at a time.

    The fewest chunks that respect `chunk_size`, as equal as possible, so the
    last one pads as few items as it can: 225 windows at most 16 at a time
    are 15 chunks of 15, not 15 of 16 with 15 wasted evaluations.
    """
    if chunk_size is None or chunk_size >= n:
        return 1, n
    chunks = -(-n // chunk_size)
    return chunks, -(-n // chunks)


def weighted_sum(f: Callable[[Any], Any], items: Any, weights: jax.Array, chunk_size: int | None) -> Any:
    """`sum_i weights[i] * f(items)[:, i]` over the leading axis of `items`.

    `f` takes a chunk of items (pytree, leading axis c) and returns a pytree
    of arrays [b, c, ...]: one evaluation per example and item, the item axis
    second (see `fold`). Chunks of at most `chunk_size` items (see
    `even_chunks`) run in a `lax.scan` that carries only the running sum, so
    peak memory is that of one chunk however many items there are.
    `chunk_size=None` evaluates all items in one call (memory grows with the
    item count; on a CPU a few items per call run faster, the working set
    staying in cache).

    Args:
      f: a chunk of items to a pytree of [b, c, ...] arrays.
      items: pytree of arrays with a shared leading axis [n, ...].
      weights: [n] weights, e.g. quadrature weights or ones.
      chunk_size: at most this many items per call, or None for all at once.

    Returns:
      A pytree like `f`'s output without the item axis: the weighted sum.
    """
    n = weights.shape[0]
    chunks, size = even_chunks(n, chunk_size)

    def chunk_sum(chunk_items, chunk_weights):
        outs = f(chunk_items)
        return jax.tree.map(lambda o: _weighted_item_sum(chunk_weights.astype(o.dtype), o), outs)

    if chunks == 1:
        return chunk_sum(items, weights)
    pad = chunks * size - n
    # Padding repeats the first item with weight 0: a valid input, so no NaN
    # from f can leak into the sum through 0 * NaN.
    items = jax.tree.map(
        lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]).reshape(chunks, size, *a.shape[1:]),
        items,
    )
    weights = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)]).reshape(chunks, size)
    # Inside the scan's loop XLA:CPU would run the backward convolutions on a
    # slow path; see `interp.ops.speed`.
    loop_chunk_sum = for_speed(chunk_sum)
    return scan_sum(lambda chunk: loop_chunk_sum(*chunk), (items, weights))


def scan_sum(f: Callable[[Any], Any], chunks: Any) -> Any:
    """`sum_i f(chunks[i])` over the leading axis of the pytree `chunks`, in a `lax.scan`.

    The sum starts from zeros of `f`'s output shape (traced, not run), so the
    program holds `f` once, inside the loop.
    """
    shapes = jax.eval_shape(f, jax.tree.map(lambda a: a[0], chunks))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def step(total, chunk):
        return jax.tree.map(jnp.add, total, f(chunk)), None

    total, _ = jax.lax.scan(step, zeros, chunks)
    return total


# Chunks of at most this many items are summed as scaled slices; see _weighted_item_sum.
_MAX_SLICED_ITEMS = 16


def _weighted_item_sum(weights: jax.Array, o: jax.Array) -> jax.Array:
    """sum_c weights[c] * o[:, c] of o [b, c, ...].

    A chunk of up to `_MAX_SLICED_ITEMS` items is summed as scaled slices
    over flat examples: one fused, vectorized pass. As an einsum, XLA:CPU
    first copied the chunk item-major for a dot, along the images' 3-channel
    last axis, which made IG and SmoothGrad slower (benchmarks/RESULTS.md).
    More items take the einsum, so the fused sum does not grow with them.
    """
    if o.shape[1] > _MAX_SLICED_ITEMS:
        return jnp.einsum("c,bc...->b...", weights, o)
    flat = o.reshape(o.shape[:2] + (-1,))
    total = sum(weights[j] * flat[:, j] for j in range(o.shape[1]))
    return total.reshape(o.shape[:1] + o.shape[2:])
