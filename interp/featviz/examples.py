"""Dataset examples: the images and patches that excite each unit most.

A running top-k per unit is kept on the device while a dataset streams past
in batches (`interp.ops.topk`); `dataset_examples` runs a model's
forward pass and the update as one jitted step. Two modes:

  * "images": an image's score is the unit's maximum over positions, so an
    image appears at most once per unit (Zeiler & Fergus's top-9 grids);
  * "patches": every (image, position) is a candidate, so one image can give
    several patches.

`crop_patches` then cuts each top patch out of its image by the layer's
receptive field (`interp.nets.receptive_fields`).
"""

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets
from interp.nets import ReceptiveField
from interp.ops.topk import MODES, TopK, top_k_init, top_k_update


@functools.partial(jax.jit, static_argnames=("layer", "mode"))
def _step(model: nets.Model, state: TopK, images: jax.Array, indices: jax.Array, layer: str, mode: str) -> TopK:
    return top_k_update(state, model.activations(images, layer)[layer], indices, mode=mode)


def _as_batch(batch: Any, seen: int) -> tuple[jax.Array, np.ndarray]:
    """`(images, indices)` from a batch given as such a pair or as images alone."""
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise ValueError(f"batches: expected (images, indices) pairs or image arrays, got {len(batch)} items")
        images, indices = jnp.asarray(batch[0]), np.asarray(batch[1])
    else:
        images = jnp.asarray(batch)
        indices = np.arange(seen, seen + len(images))
    if indices.shape != images.shape[:1] or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"batches: expected integer indices [{len(images)}], got {indices.dtype} {list(indices.shape)}")
    if indices.size and indices.min() < 0:
        raise ValueError("batches: dataset indices must be non-negative")
    return images, indices


def dataset_examples(
    model: Any, layer: str, batches: Iterable[Any], k: int, *, mode: str = "images"
) -> TopK:
    """The top-k dataset examples of every channel of `layer`, over a stream of batches.

    Each batch runs the model's forward pass and the top-k update as one
    jitted step. Smaller batches (e.g. a ragged last one) are padded to the
    first batch's size, so they reuse its compiled step.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: a named layer with [b, h, w, C] or [b, C] activations.
      batches: iterable of `(images [B, H, W, 3], indices [B])`, or of images
        alone (indices then count from 0 in stream order).
      k: examples kept per unit.
      mode: "images" or "patches" (see `top_k_update`).

    Returns:
      A `TopK` with C units.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    model = nets.as_model(model)
    state, size, seen = None, 0, 0
    for batch in batches:
        images, indices = _as_batch(batch, seen)
        seen += len(images)
        if state is None:
            state, size = top_k_init(model.layer_shape(images, layer).shape[-1], k), len(images)
        if len(images) < size:
            pad = size - len(images)
            images = jnp.concatenate([images, jnp.zeros((pad, *images.shape[1:]), images.dtype)])
            indices = np.concatenate([indices, np.full(pad, -1, indices.dtype)])
        state = _step(model, state, images, jnp.asarray(indices, jnp.int32), layer=layer, mode=mode)
    if state is None:
        raise ValueError("batches: expected at least one batch, got none")
    return state


def crop_patches(
    images: jax.Array | Callable[[jax.Array], jax.Array],
    top_k: TopK,
    receptive_field: ReceptiveField,
    *,
    fill: float = 0.0,
    size: tuple[int, int] | None = None,
) -> jax.Array:
    """Each top example's receptive field, cut out of its image.

    The crop of entry (c, r) is the field of the unit at `top_k.positions[c,
    r]`: rows `start + i * stride` to `... + size - 1` (likewise columns).
    Pixels outside the image, and the whole crop of an empty entry (index
    -1), are `fill`, so every crop has the field's size. A global field crops
    the whole image.

    Args:
      images: all images [N, H, W, 3] indexed by dataset index, or a function
        `images_of(indices [n]) -> [n, H, W, 3]` (e.g.
        `lambda i: data.batch(i)["image"]`), called once on the distinct indices.
      top_k: the examples, for C units and k each.
      receptive_field: the field of the layer `top_k` was computed on.
      fill: value of out-of-image pixels.
      size: (height, width) to resize every crop to (bilinear); None keeps
        the field's size.

    Returns:
      [C, k, rf_h, rf_w, 3] crops, or [C, k, size[0], size[1], 3].
    """
    indices = np.asarray(top_k.indices)
    positions = np.asarray(top_k.positions)
    valid = indices >= 0
    if not receptive_field.is_global and (positions[valid] < 0).any():
        raise ValueError("top_k: positions are -1 (a layer without spatial dims) but the receptive field is local")
    distinct, inverse = np.unique(np.where(valid, indices, 0), return_inverse=True)
    if callable(images):
        pool = jnp.asarray(images(jnp.asarray(distinct, jnp.int32)))
    else:
        pool = jnp.asarray(images)[distinct]
    if pool.ndim != 4 or len(pool) != len(distinct):
        raise ValueError(f"images: expected [n, H, W, C] images for {len(distinct)} indices, got {list(pool.shape)}")
    crops = _crop(
        pool,
        jnp.asarray(inverse.reshape(-1)),
        jnp.asarray(np.maximum(positions, 0).reshape(-1, 2)),
        jnp.asarray(valid.reshape(-1)),
        rf=receptive_field,
        fill=float(fill),
    )
    if size is not None:
        crops = jax.image.resize(crops, (len(crops), *size, crops.shape[-1]), "linear")
    return crops.reshape(*indices.shape, *crops.shape[1:])


@functools.partial(jax.jit, static_argnames=("rf", "fill"))
def _crop(pool, which, positions, valid, *, rf: ReceptiveField, fill: float):
    """[n, rf_h, rf_w, C] crops of `pool[which]` at unit `positions` [n, 2]."""
    h, w = pool.shape[1:3]

    def one(image, position, ok):
        rows = rf.start[0] + position[0] * rf.stride[0] + jnp.arange(rf.size[0])
        cols = rf.start[1] + position[1] * rf.stride[1] + jnp.arange(rf.size[1])
        inside = (rows >= 0)[:, None] & (rows < h)[:, None] & (cols >= 0)[None] & (cols < w)[None] & ok
        crop = image[jnp.clip(rows, 0, h - 1)][:, jnp.clip(cols, 0, w - 1)]
        return jnp.where(inside[..., None], crop, jnp.asarray(fill, image.dtype))

    return jax.vmap(one)(pool[which], positions, valid)
