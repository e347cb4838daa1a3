"""Running top-k accumulators: the best `k` examples of every unit, kept on the device.

A dataset streams past in batches; `top_k_update` merges each batch's
activations into the running `TopK` (one jitted update, a `lax.top_k` over the
kept entries and the batch's candidates). Two modes:

  * "images": an image's score is the unit's maximum over positions, so an
    image appears at most once per unit (Zeiler & Fergus's top-9 grids);
  * "patches": every (image, position) is a candidate, so one image can give
    several patches.

Dataset examples (`interp.featviz.dataset_examples`) and Network Dissection's
top images (`interp.dissect`) both keep theirs this way.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from interp._checks import check_positive_int

MODES = ("images", "patches")


class TopK(NamedTuple):
    """The best `k` examples of each of `C` units, best first.

    Attributes:
      scores: [C, k] float32 activations; -inf where fewer than k were seen.
      indices: [C, k] int32 dataset indices; -1 where empty.
      positions: [C, k, 2] int32 (row, col) in the layer's activation map;
        -1 where empty and for layers without spatial dimensions ([b, C]).
    """

    scores: jax.Array
    indices: jax.Array
    positions: jax.Array


def top_k_init(num_units: int, k: int) -> TopK:
    """An empty `TopK` for `num_units` units keeping `k` examples each."""
    check_positive_int("num_units", num_units)
    check_positive_int("k", k)
    return TopK(
        scores=jnp.full((num_units, k), -jnp.inf, jnp.float32),
        indices=jnp.full((num_units, k), -1, jnp.int32),
        positions=jnp.full((num_units, k, 2), -1, jnp.int32),
    )


def _candidates(acts: jax.Array, indices: jax.Array, mode: str) -> TopK:
    """Every candidate of a batch, unit-major: scores [C, n], indices [C, n], positions [C, n, 2]."""
    spatial = acts.ndim == 4
    grid = acts if spatial else acts[:, None, None, :]
    b, h, w, c = grid.shape
    flat = grid.reshape(b, h * w, c)
    if mode == "images":
        where = flat.argmax(axis=1)  # [b, c]; the first maximum on ties
        scores = jnp.take_along_axis(flat, where[:, None, :], axis=1)[:, 0]
        owners = jnp.broadcast_to(jnp.expand_dims(indices, 1), (b, c))
    else:
        where = jnp.broadcast_to(jnp.expand_dims(jnp.arange(h * w), (0, 2)), (b, h * w, c)).reshape(-1, c)
        scores = flat.reshape(b * h * w, c)
        owners = jnp.broadcast_to(jnp.expand_dims(jnp.repeat(indices, h * w), 1), (b * h * w, c))
    positions = jnp.stack([where // w, where % w], axis=-1).astype(jnp.int32)
    if not spatial:
        positions = jnp.full(positions.shape, -1, jnp.int32)
    # Rows with a negative index are padding (a ragged last batch): never selected.
    scores = jnp.where(owners >= 0, scores.astype(jnp.float32), -jnp.inf)
    return TopK(scores.T, owners.T.astype(jnp.int32), jnp.swapaxes(positions, 0, 1))


@functools.partial(jax.jit, static_argnames="mode")
def top_k_update(state: TopK, acts: jax.Array, indices: jax.Array, mode: str = "images") -> TopK:
    """Merges a batch of activations into the running top-k.

    Args:
      state: the top-k so far, for C units.
      acts: [B, h, w, C] or [B, C] activations of one batch.
      indices: [B] int dataset indices of the batch's images; rows with a
        negative index are padding and are ignored.
      mode: "images" (one candidate per image: its maximum over positions)
        or "patches" (one candidate per image and position).

    Returns:
      The new `TopK`. On equal scores the earlier entry (already in `state`,
      or the lower position in the batch) ranks first.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if acts.ndim not in (2, 4) or acts.shape[-1] != state.scores.shape[0]:
        raise ValueError(
            f"acts: expected [B, h, w, {state.scores.shape[0]}] or [B, {state.scores.shape[0]}], "
            f"got shape {list(acts.shape)}"
        )
    if indices.shape != acts.shape[:1]:
        raise ValueError(f"indices: expected shape [{acts.shape[0]}], got {list(indices.shape)}")
    new = _candidates(acts, indices.astype(jnp.int32), mode)
    scores = jnp.concatenate([state.scores, new.scores], axis=1)
    best, which = lax.top_k(scores, state.scores.shape[1])
    return TopK(
        scores=best,
        indices=jnp.take_along_axis(jnp.concatenate([state.indices, new.indices], 1), which, axis=1),
        positions=jnp.take_along_axis(
            jnp.concatenate([state.positions, new.positions], 1), which[..., None], axis=1
        ),
    )
