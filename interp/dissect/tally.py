"""Unit x concept intersection and union counts, accumulated on the device.

A unit is on at a pixel where its map, upsampled to the segmentation, passes
the unit's threshold; at the top 0.5% that is a few pixels in a few maps. The
tally spends its work there, as NetDissect-Lite's per-image loop does, inside
one compiled program per batch:

  1. Pixel rows are cut into `upsample.Bands` of a few rows that read the
     same few activation rows. Weighted by the band's row weights, the maxima
     of those activation rows bound every pixel of the band, so an (image,
     unit, band) whose bound does not pass the threshold has no pixel on.
  2. The others (about 2-10% of them) are listed with a running count and
     taken 256 at a time: upsampled, binarized and packed 32 pixels to a
     uint32, then counted against every concept mask of the image, packed the
     same way, with AND and popcount.

Skipping never drops an on-pixel: the bound covers float rounding with a
margin of 16 float32 epsilons of the largest activation it reads. The pixels
that are computed take the same weights as the dense upsampling, summed in
another order, so only a value within an ulp of its threshold could differ
from a dense computation's (none did in the tests, nor against NetDissect-Lite
in benchmarks/dissect.py).

The IoU's denominator is `activation + truth - intersection`, where the
activation count has two published forms, both tallied here:

  * "category" (NetDissect, Bau et al. 2017): a unit's activated pixels in
    the images that contain the concept's category anywhere;
  * "lite" (NetDissect-Lite): a unit's activated pixels in the images where
    they overlap a label of the concept's category (an image-level label
    always overlaps).

Counts are int32 per batch, added on the device and moved to int64 on the
host before int32 could overflow.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp.dissect.upsample import Bands

CONVENTIONS = ("category", "lite")
_INT32_MAX = 2**31 - 1


class Counts(NamedTuple):
    """Tallies of one layer over a dataset.

    Attributes:
      intersection: [K, C] pixels where unit k is on and concept c is labeled.
      truth: [C] pixels labeled with concept c.
      activation: [K] pixels where unit k is on, over all images.
      activation_category: [K, Cat] unit k's on-pixels in the images that
        contain category j (the "category" convention).
      activation_lite: [K, Cat] unit k's on-pixels in the images where they
        overlap a label of category j (the "lite" convention).
      images: number of images tallied.
    """

    intersection: np.ndarray
    truth: np.ndarray
    activation: np.ndarray
    activation_category: np.ndarray
    activation_lite: np.ndarray
    images: np.ndarray


def zero_counts(num_units: int, num_concepts: int, num_categories: int, dtype=np.int64) -> Counts:
    return Counts(
        intersection=np.zeros((num_units, num_concepts), dtype),
        truth=np.zeros((num_concepts,), dtype),
        activation=np.zeros((num_units,), dtype),
        activation_category=np.zeros((num_units, num_categories), dtype),
        activation_lite=np.zeros((num_units, num_categories), dtype),
        images=np.zeros((), dtype),
    )


@functools.partial(jax.jit, static_argnames=("num_concepts", "num_categories", "groups"))
def tally_batch(acts: jax.Array, thresholds: jax.Array, bands: Bands, ids: jax.Array, masks: jax.Array,
                valid: jax.Array, category_of: jax.Array, *, num_concepts: int, num_categories: int,
                groups: int = 1) -> Counts:
    """The counts of one batch (int32).

    Args:
      acts: [B, h, w, K] activations of the layer.
      thresholds: [K] the units' thresholds; a pixel is on when above it.
      bands: the upsampling from the layer's h x w to the segmentation (`upsample.bands`).
      ids: int [B, D] concept ids; masks: bool [B, D, sh, sw] their masks.
      valid: bool [B]; False rows (padding) count for nothing.
      category_of: int32 [C] primary category per concept, -1 for none.
      num_concepts: C.
      num_categories: Cat.
      groups: images tallied apart, one group per device the batch is
        sharded over, so that each device keeps to its own images (B must be
        a multiple).
    """
    _check_bands(bands, acts.shape, masks.shape)
    if acts.shape[0] % groups:
        raise ValueError(f"groups: expected a divisor of the batch size {acts.shape[0]}, got {groups}")
    tally_group = functools.partial(_pixel_counts, thresholds=thresholds, bands=bands)
    if groups == 1:  # a vmap over one group made the tally 25% slower on a CPU
        intersect, activation, truth = tally_group(acts, masks, valid)
    else:
        grouped = jax.tree.map(lambda a: a.reshape(groups, -1, *a.shape[1:]), (acts, masks, valid))
        intersect, activation, truth = (a.reshape(-1, *a.shape[2:]) for a in jax.vmap(tally_group)(*grouped))

    ids = ids.astype(jnp.int32)
    # [B, D, Cat]: entry d is a (non-empty) label of category j.
    in_category = (category_of[ids][..., None] == jnp.arange(num_categories)[None, None, :]) & (truth > 0)[..., None]
    image_has = in_category.any(1).astype(jnp.int32)  # [B, Cat]
    overlaps = jnp.einsum("bkd,bdj->bkj", (intersect > 0).astype(jnp.int32), in_category.astype(jnp.int32)) > 0

    flat_ids = ids.reshape(-1)
    return Counts(
        intersection=jnp.zeros((num_concepts, acts.shape[-1]), jnp.int32)
        .at[flat_ids].add(jnp.swapaxes(intersect, 1, 2).reshape(flat_ids.size, -1)).T,
        truth=jnp.zeros((num_concepts,), jnp.int32).at[flat_ids].add(truth.reshape(-1)),
        activation=activation.sum(0),
        activation_category=jnp.einsum("bk,bj->kj", activation, image_has),
        activation_lite=jnp.einsum("bk,bkj->kj", activation, overlaps.astype(jnp.int32)),
        images=valid.sum(dtype=jnp.int32),
    )


_CHUNK = 256  # bands per loop step: large enough to keep the step's products efficient, small enough to waste little


def _pixel_counts(acts: jax.Array, masks: jax.Array, valid: jax.Array, thresholds: jax.Array,
                  bands: Bands) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(intersection [B, K, D], activation [B, K], truth [B, D]) in pixels, for one group of images."""
    batch, num_units = acts.shape[0], acts.shape[3]
    num_bands, height, _ = bands.weights.shape
    concepts, seg_w = masks.shape[1], masks.shape[3]
    padded_w = -(-seg_w // 32) * 32  # a band of rows packs into whole words
    acts = acts.astype(jnp.float32)
    if (num_bands * height, padded_w) != masks.shape[2:]:
        masks = jnp.pad(masks, ((0, 0), (0, 0), (0, num_bands * height - masks.shape[2]), (0, padded_w - seg_w)))
    mask_words = _pack_bits(masks.reshape(batch, concepts, num_bands, height * padded_w))  # [B, D, R, W]
    truth = _popcount(mask_words).sum((2, 3)) * valid[:, None]

    # Band r's pixel row t is weights[r, t] @ (activation rows units[r], interpolated across), which
    # cannot exceed weights[r, t] @ (the maxima of those rows). As a sum over the few rows rather
    # than an einsum, this screen took 1.0 ms instead of 1.6 (128px relu2, batch 64, a CPU).
    row_max, row_min = acts.max(2), acts.min(2)  # [B, h, K]
    band_max = row_max[:, bands.units]  # [B, R, U, K]
    bound = sum(bands.weights[None, :, :, u, None] * band_max[:, :, None, u, :] for u in range(bands.units.shape[1]))
    largest = jnp.maximum(row_max, -row_min)[:, bands.units].max(2)  # [B, R, K]
    margin = 16 * jnp.finfo(jnp.float32).eps * largest
    maybe_on = (bound.max(2) + margin > thresholds[None, None, :]) & valid[:, None, None]
    listed, count = _list_true(maybe_on.reshape(-1), _CHUNK)
    cols = jnp.pad(bands.cols, ((0, padded_w - seg_w), (0, 0)))
    # Padding pixels meet no mask but could pass a threshold: the activation counts only these.
    pixels_valid = _pack_bits((bands.rows_valid[:, :, None] & (jnp.arange(padded_w) < seg_w)[None, None, :])
                              .reshape(num_bands, height * padded_w))  # [R, W]

    def step(state):
        start, intersect, activation = state
        entry = jax.lax.dynamic_slice(listed, (start,), (_CHUNK,))
        unit, band, image = entry % num_units, entry // num_units % num_bands, entry // (num_units * num_bands)
        band_rows = acts[image[:, None], bands.units[band], :, unit[:, None]]  # [n, U, w]
        up = jnp.einsum("ntu,nux->ntx", bands.weights[band], jnp.einsum("nuj,xj->nux", band_rows, cols))
        # Padding and entries past the list are dealt with outside the comparison, which kept the packing
        # 2.5x faster than with them inside (the whole tally 1.2x).
        threshold = jnp.where(start + jnp.arange(_CHUNK) < count, thresholds[unit], jnp.inf)
        on_words = _pack_bits((up > threshold[:, None, None]).reshape(_CHUNK, height * padded_w))  # [n, W]
        both = _popcount(on_words[:, None, :] & mask_words[image, :, band]).sum(-1)  # [n, D]
        row = image * num_units + unit
        return (start + _CHUNK, intersect.at[row].add(both),
                activation.at[row].add(_popcount(on_words & pixels_valid[band]).sum(-1)))

    zeros = (jnp.zeros((batch * num_units, concepts), jnp.int32), jnp.zeros((batch * num_units,), jnp.int32))
    _, intersect, activation = jax.lax.while_loop(lambda state: state[0] < count, step, (jnp.int32(0), *zeros))
    return intersect.reshape(batch, num_units, concepts), activation.reshape(batch, num_units), truth


def _pack_bits(bits: jax.Array) -> jax.Array:
    """uint32 [..., n / 32] from bool [..., n] (n a multiple of 32); bit i of word j is entry i * (n / 32) + j.

    Strided rather than contiguous, so that packing reduces over a major axis
    and the minor axis stays long: 2-3x faster on a CPU.
    """
    words = bits.shape[-1] // 32
    bits = bits.reshape(*bits.shape[:-1], 32, words).astype(jnp.uint32)
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * (bits.ndim - 2) + (32, 1))
    return (bits << shifts).sum(-2, dtype=jnp.uint32)


def _popcount(words: jax.Array) -> jax.Array:
    return jax.lax.population_count(words).astype(jnp.int32)


def _list_true(flags: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
    """(the indices of the True entries of a bool vector, then zeros, to a multiple of `chunk`; their number)."""
    running = _running_count(flags)
    size = -(-flags.size // chunk) * chunk
    slots = jnp.where(flags, running - 1, size)  # False entries scatter out of bounds and are dropped
    listed = jnp.zeros(size, jnp.int32).at[slots].set(jnp.arange(flags.size, dtype=jnp.int32), mode="drop")
    return listed, running[-1]


def _running_count(flags: jax.Array, block: int = 32) -> jax.Array:
    """int32 inclusive running count of a bool vector.

    By products with a triangular matrix of ones, block by block (exact in
    float32 below 2**24 entries): 3x faster on a CPU than `jnp.cumsum`.
    """
    if flags.size >= 2**24:
        raise ValueError(f"flags: expected fewer than 2**24 entries, got {flags.size}")
    n = flags.size
    blocks = jnp.pad(flags.astype(jnp.float32), (0, -n % block)).reshape(-1, block)
    within = blocks @ jnp.triu(jnp.ones((block, block), jnp.float32))
    totals = within[:, -1]
    before = (_running_count(totals, block) if totals.size > block else jnp.cumsum(totals)) - totals
    return (within + before[:, None]).reshape(-1)[:n].astype(jnp.int32)


def _check_bands(bands: Bands, acts_shape: tuple[int, ...], masks_shape: tuple[int, ...]) -> None:
    num_bands, height, _ = bands.weights.shape
    if len(acts_shape) != 4 or len(masks_shape) != 4:
        raise ValueError(f"acts, masks: expected [B, h, w, K] and [B, D, sh, sw], got {list(acts_shape)} "
                         f"and {list(masks_shape)}")
    if bands.cols.shape != (masks_shape[3], acts_shape[2]) or not (num_bands - 1) * height < masks_shape[2] \
            <= num_bands * height:
        raise ValueError(f"bands: expected bands from {acts_shape[1]}x{acts_shape[2]} maps to a "
                         f"{masks_shape[2]}x{masks_shape[3]} segmentation, got {num_bands} bands of {height} rows "
                         f"and columns {list(bands.cols.shape)}")


@functools.partial(jax.jit, donate_argnums=0)
def _add(total: Counts, batch: Counts) -> Counts:
    return jax.tree.map(jnp.add, total, batch)


class Accumulator:
    """Sums per-batch int32 counts on the device, flushing to int64 on the host in time.

    Args:
      per_batch_bound: the largest any count can grow in one batch (B * sh * sw).
    """

    def __init__(self, per_batch_bound: int):
        self._flush_every = max(1, _INT32_MAX // max(per_batch_bound, 1))
        self._device: Counts | None = None
        self._host: Counts | None = None
        self._pending = 0

    def add(self, counts: Counts) -> None:
        self._device = counts if self._device is None else _add(self._device, counts)
        self._pending += 1
        if self._pending >= self._flush_every:
            self._flush()

    def _flush(self) -> None:
        if self._device is not None:
            device = jax.tree.map(lambda x: np.asarray(x, np.int64), jax.device_get(self._device))
            self._host = device if self._host is None else jax.tree.map(np.add, self._host, device)
        self._device, self._pending = None, 0

    def result(self) -> Counts:
        self._flush()
        if self._host is None:
            raise ValueError("no batch was tallied")
        return self._host
