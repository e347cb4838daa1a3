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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets
from interp._checks import check_positive_int
from interp._progress import bar
from interp.data.stream import BatchSource, batch_images, check_source, check_span, pass_indices
from interp.nets import ReceptiveField
from interp.ops.topk import MODES, TopK, top_k_init, top_k_update


@functools.partial(jax.jit, static_argnames=("layer", "mode"))
def _step(model: nets.Model, state: TopK, images: jax.Array, indices: jax.Array, layer: str, mode: str) -> TopK:
    return top_k_update(state, model.activations(images, layer)[layer], indices, mode=mode)


def dataset_examples(
    model: Any,
    layer: str,
    data: BatchSource,
    k: int,
    *,
    mode: str = "images",
    batch_size: int = 64,
    num_examples: int | None = None,
    first: int = 0,
    progress: bool | None = None,
) -> TopK:
    """The top-k dataset examples of every channel of `layer`, over one ordered pass of a batch source.

    Each batch runs the model's forward pass and the top-k update as one
    jitted step; the last batch is padded (`interp.data.pass_indices`), so
    every batch reuses one compiled step.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: a named layer with [b, h, w, C] or [b, C] activations.
      data: a batch source (`interp.data`) whose batches are images
        [B, H, W, 3] or dicts with an 'image' entry (SynthParts,
        `sized(reader, S)`, `in_memory(images)`); only images are read.
      k: examples kept per unit; at most the number of candidates (the
        images searched in "images" mode, images times positions in
        "patches" mode), so that no entry is left empty.
      mode: "images" or "patches" (see `top_k_update`).
      batch_size: images per step (at most `num_examples`).
      num_examples: examples searched, `first ... first + num_examples - 1`;
        None searches all of `data` from `first`.
      first: the index of the first example searched.
      progress: show a progress bar of the images searched: None on a terminal (see `interp._progress`).

    Returns:
      A `TopK` with C units; its indices are indices of `data`, so
      `crop_patches(data, top, field)` cuts the patches out of the same images.

    Raises:
      ValueError: a bad `mode`, `k` or `batch_size`, a span past the end of
        `data` (`check_span`), an unknown `layer`, or `k` above the number of
        candidates (an empty entry's index -1 would read as the last image).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    model = nets.as_model(model)
    data = check_source(data, "data")
    count = check_span(data, num_examples, first, "data")
    k = check_positive_int("k", k)
    batch_size = min(check_positive_int("batch_size", batch_size), count)
    state = None
    with bar(count, desc=f"dataset examples: {layer}", unit="image", progress=progress) as shown:
        for indices, valid in pass_indices(count, batch_size, first):
            images = jnp.asarray(batch_images(data.batch(indices), "data"))
            if state is None:
                shape = model.layer_shape(images, layer).shape
                _check_k(k, count, mode, positions=int(np.prod(shape[1:-1])))
                state = top_k_init(shape[-1], k)
            state = _step(model, state, images, jnp.asarray(np.where(valid, indices, -1)), layer=layer, mode=mode)
            shown.update(int(valid.sum()))
    return state


def _check_k(k: int, count: int, mode: str, positions: int) -> None:
    """`k` at most the candidates per unit: `count` images, times `positions` in "patches" mode."""
    candidates = count * positions if mode == "patches" else count
    if k > candidates:
        per = f"{count} images x {positions} positions" if mode == "patches" else f"{count} images"
        raise ValueError(f"k: expected at most the {candidates} candidates per unit of mode {mode!r} "
                         f"({per} searched), got {k}; lower k or search more examples")


def crop_patches(
    data: BatchSource,
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
      data: the batch source `top_k` was computed on (see `dataset_examples`);
        its images are read once, in one batch of the distinct indices (for
        images already in memory: `interp.data.in_memory(images)`).
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
    data = check_source(data, "data")
    distinct, inverse = np.unique(np.where(valid, indices, 0), return_inverse=True)
    pool = jnp.asarray(batch_images(data.batch(distinct.astype(np.int32)), "data"))
    if len(pool) != len(distinct):
        raise ValueError(f"data: expected [n, H, W, C] images for {len(distinct)} indices, got {list(pool.shape)}")
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
