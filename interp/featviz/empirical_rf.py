"""Empirical receptive fields: what a unit responds to, measured by occlusion (Zhou et al., ICLR 2015).

The theoretical field (`interp.nets.receptive_fields`) bounds what a unit
can see; the empirical one, measured with noise patches over the unit's top
images, shows what it actually responds to, usually a much smaller area.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from interp import nets
from interp._checks import check_positive_int


def empirical_receptive_field(
    model: Any,
    layer: str,
    channel: int,
    images: jax.Array,
    *,
    key: jax.Array,
    patch: int = 11,
    stride: int = 3,
    chunk_size: int = 64,
    receptive_field: nets.ReceptiveField | None = None,
) -> jax.Array:
    """The mean occlusion discrepancy map of one unit, re-centered on its theoretical field.

    After Zhou et al. (ICLR 2015): for each image, take the unit's peak
    position (i, j) in `layer`; replace a `patch` x `patch` square centered on
    every point of a grid with step `stride` by uniform noise, and record how
    much the unit at (i, j) changes, |a - a_occluded|. A pixel's discrepancy
    is the mean over the patches that cover it. Each image's map is shifted so
    the theoretical center of unit (i, j), `start + i * stride + (size - 1) // 2`,
    lands on pixel (H // 2, W // 2); the maps are then averaged.

    The theoretical field therefore covers rows `H // 2 - (size_h - 1) // 2`
    to that plus `size_h - 1` (and likewise columns) of the result; since a
    patch changes the unit when it merely overlaps that field, the map's
    support lies within the field grown by `patch - 1` on every side.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: a named layer with spatial positions, [b, h, w, c] activations.
      channel: the unit's channel.
      images: [n, H, W, C] images, typically the unit's top images.
      key: PRNG key for the noise patches.
      patch: side of the occluding square, in pixels.
      stride: step of the grid of patch centers, in pixels.
      chunk_size: occluded images per vmapped forward pass.
      receptive_field: the layer's theoretical field; computed when None.

    Returns:
      [H, W] float map, 0 where no patch changes the unit.
    """
    model = nets.as_model(model)
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images: expected [n, H, W, C], got shape {list(images.shape)}")
    for name, value in (("patch", patch), ("stride", stride), ("chunk_size", chunk_size)):
        check_positive_int(name, value)
    shapes = model.layer_shapes(images[:1])
    shape = shapes.get(layer)
    if shape is None or len(shape.shape) != 4:
        known = ", ".join(n for n, s in shapes.items() if len(s.shape) == 4)
        raise ValueError(f"layer: expected a layer with [b, h, w, c] activations, got {layer!r}; such layers: {known}")
    if not 0 <= channel < shape.shape[-1]:
        raise ValueError(f"channel: expected 0 <= channel < {shape.shape[-1]}, got {channel}")
    rf = receptive_field or nets.receptive_fields(model, images[:1])[layer]
    if 0 in rf.stride:
        raise ValueError(f"receptive_field: layer {layer!r} has no spatial positions (stride {rf.stride})")
    return _empirical(model, images, key, layer=layer, channel=int(channel), patch=int(patch),
                      stride=int(stride), chunk_size=int(chunk_size), rf=rf)


def _cover(extent: int, patch: int, stride: int) -> np.ndarray:
    """[positions, extent] 0/1: the pixels under the patch centered on each grid point."""
    starts = np.arange(0, extent, stride) - (patch - 1) // 2
    pixels = np.arange(extent)
    return ((pixels[None] >= starts[:, None]) & (pixels[None] < starts[:, None] + patch)).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("layer", "channel", "patch", "stride", "chunk_size", "rf"))
def _empirical(model, images, key, *, layer, channel, patch, stride, chunk_size, rf):
    n, h, w = images.shape[:3]

    def unit(x):  # [b, H, W, C] -> [b, h', w']
        return model.activations(x, layer)[layer][..., channel]

    acts = unit(images)
    peaks = jnp.stack(jnp.unravel_index(acts.reshape(n, -1).argmax(1), acts.shape[1:]), -1)  # [n, 2]
    rows, cols = _cover(h, patch, stride), _cover(w, patch, stride)
    drops = _drops(unit, images, key, peaks, rows, cols, chunk_size)
    total = jnp.einsum("npq,py,qx->nyx", drops, rows, cols)
    counts = np.outer(rows.sum(0), cols.sum(0))[None]
    maps = jnp.where(counts > 0, total / np.maximum(counts, 1.0), 0.0)
    offsets = np.asarray(rf.start) + (np.asarray(rf.size) - 1) // 2
    centers = peaks * np.asarray(rf.stride)[None] + offsets[None]
    return jax.vmap(_recenter)(maps, centers).mean(0)


def _drops(unit, images, key, peaks, rows, cols, chunk_size) -> jax.Array:
    """|a - a_occluded| [n, pr, pc] of each image's peak unit, for every patch position."""
    n, pr, pc = len(images), len(rows), len(cols)
    # One item (image, patch row, patch col) per occlusion, then one per image
    # with patch row `pr`, which covers nothing: the clean values then come from
    # the same compiled forward pass, so an occlusion that changes nothing gives 0.
    grid = np.stack(np.meshgrid(np.arange(n), np.arange(pr), np.arange(pc), indexing="ij"), -1)
    items = np.concatenate([grid.reshape(-1, 3), np.stack([np.arange(n), np.full(n, pr), np.zeros(n, int)], -1)])
    padded = -(-len(items) // chunk_size) * chunk_size
    items = np.concatenate([items, np.tile(items[-1:], (padded - len(items), 1))])
    rows = jnp.asarray(np.concatenate([rows, np.zeros((1, rows.shape[1]), np.float32)]))

    def value(item, noise_id):
        mask = rows[item[1]][:, None] * jnp.asarray(cols)[item[2]][None, :] > 0
        noise = jax.random.uniform(jax.random.fold_in(key, noise_id), images.shape[1:], images.dtype)
        occluded = jnp.where(mask[:, :, None], noise, images[item[0]])
        return unit(occluded[None])[0, peaks[item[0], 0], peaks[item[0], 1]]

    chunks = (jnp.asarray(items.reshape(-1, chunk_size, 3)), jnp.arange(padded).reshape(-1, chunk_size))
    values = lax.map(lambda chunk: jax.vmap(value)(*chunk), chunks).reshape(-1)
    occluded, clean = values[: n * pr * pc].reshape(n, pr, pc), values[n * pr * pc : n * pr * pc + n]
    return jnp.abs(occluded - clean[:, None, None])


def _recenter(image_map: jax.Array, center: jax.Array) -> jax.Array:
    """Shifts an [H, W] map (zero-filled) so pixel `center` lands on (H // 2, W // 2)."""
    h, w = image_map.shape
    extents = jnp.array([h, w])
    # Beyond +-extent everything is shifted out anyway; clipping keeps the slice in range.
    shift = jnp.clip(extents // 2 - center, -extents, extents)
    padded = jnp.pad(image_map, ((h, h), (w, w)))
    return lax.dynamic_slice(padded, (h - shift[0], w - shift[1]), (h, w))
