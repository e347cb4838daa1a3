"""Weighted sums over many evaluations, a bounded number at a time."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def weighted_sum(f: Callable[[Any], Any], items: Any, weights: jax.Array, chunk_size: int | None) -> Any:
    """`sum_i weights[i] * f(items[i])` over the leading axis of `items`.

    Items are vmapped `chunk_size` at a time and the chunks run in a
    `lax.scan` that carries only the running sum, so peak memory is that of
    one chunk however many items there are. `chunk_size=None` evaluates all
    items in one vmapped call (fastest, memory grows with the item count).

    Args:
      f: one item (a pytree slice of `items`) to a pytree of arrays.
      items: pytree of arrays with a shared leading axis [n, ...].
      weights: [n] weights, e.g. quadrature weights or ones.
      chunk_size: items per vmapped call, or None for all at once.

    Returns:
      A pytree like `f`'s output: the weighted sum.
    """
    n = weights.shape[0]

    def chunk_sum(chunk_items, chunk_weights):
        outs = jax.vmap(f)(chunk_items)
        return jax.tree.map(lambda o: jnp.tensordot(chunk_weights.astype(o.dtype), o, axes=1), outs)

    if chunk_size is None or chunk_size >= n:
        return chunk_sum(items, weights)
    chunks = -(-n // chunk_size)
    pad = chunks * chunk_size - n
    # Padding repeats the first item with weight 0: a valid input, so no NaN
    # from f can leak into the sum through 0 * NaN.
    items = jax.tree.map(
        lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]).reshape(chunks, chunk_size, *a.shape[1:]),
        items,
    )
    weights = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)]).reshape(chunks, chunk_size)
    first = jax.tree.map(lambda a: a[0, 0], items)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(f, first))

    def step(total, chunk):
        part = chunk_sum(*chunk)
        return jax.tree.map(jnp.add, total, part), None

    total, _ = jax.lax.scan(step, zeros, (items, weights))
    return total
