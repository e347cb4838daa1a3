"""Network Dissection (Bau et al., CVPR 2017) of named layers over concept data.

Two passes over the data, each one jitted step per batch for all layers:

  1. thresholds: a running exact top-m per unit gives `T_k` at the top
     `quantile` (`interp.dissect.quantile`); a running top-n of each image's
     maximum gives every unit's top images for the report;
  2. tally: activations upsampled, binarized at `T_k` and counted against
     every concept mask, where a unit can be on (`interp.dissect.tally`).

The model runs twice rather than keeping activations, which for a real layer
over Broden would not fit in memory. With `mesh=`, batches are sharded over
the mesh's 'data' axis and the counts are summed across it by the compiler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from interp import nets
from interp._checks import check_positive_int
from interp._progress import bar
from interp.data.stream import check_source, pass_indices
from interp.dissect.concepts import ConceptBatch
from interp.dissect.quantile import thresholds_from_top, top_values_init, top_values_update, values_needed
from interp.dissect.result import DETECTOR_IOU, LayerDissection
from interp.dissect.tally import CONVENTIONS, Accumulator, tally_batch
from interp.dissect.upsample import UPSAMPLING, bands, upsample, upsampling_matrices
from interp.nets import receptive_fields
from interp.ops.topk import top_k_init, top_k_update
from interp.sharding import batch_sharding, check_mesh, replicated

QUANTILE = 0.005  # Bau et al. 2017: a unit is "on" at its top 0.5% of activations.


def dissect(
    model: Any,
    data: Any,
    layers: str | Sequence[str],
    *,
    quantile: float = QUANTILE,
    convention: str = "category",
    upsampling: str = "receptive_field",
    iou_threshold: float = DETECTOR_IOU,
    batch_size: int = 64,
    top_images: int = 8,
    mesh: Mesh | None = None,
    progress: bool | None = None,
) -> dict[str, LayerDissection]:
    """Dissects every unit of the named layers.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      data: concept data: a batch source (`interp.data`) whose batches are
        `ConceptBatch`es, with `concepts`, `image_size` and `seg_size`
        (`SynthPartsConcepts`, `BrodenConcepts`).
      layers: one layer name or several, each with [b, h, w, K] activations.
      quantile: top fraction of each unit's activations that is "on".
      convention: "category" (NetDissect) or "lite" (NetDissect-Lite), the
        activation count in the IoU's union (see `interp.dissect.tally`).
      upsampling: "receptive_field" (NetDissect) or "resize" (NetDissect-Lite).
      iou_threshold: IoU above which a unit is a detector.
      batch_size: images per step (a multiple of the mesh's devices).
      top_images: top-activating images kept per unit.
      mesh: a mesh with the axis 'data' (`interp.sharding.data_mesh()`) to shard batches over.
      progress: show a progress bar of the images of each pass: None on a terminal (see `interp._progress`).

    Returns:
      `{layer: LayerDissection}` in the order given.
    """
    # Params placed (committed) here, so that a model restored from a checkpoint and a freshly
    # initialized one share the compiled steps: uncommitted params recompiled them all (2.6 s).
    model = jax.device_put(nets.as_model(model), jax.devices()[0] if mesh is None else replicated(check_mesh(mesh)))
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer name")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling: expected one of {UPSAMPLING}, got {upsampling!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile: expected a float in (0, 1), got {quantile}")
    data = check_source(data, "data")
    check_positive_int("batch_size", batch_size)
    check_positive_int("top_images", top_images)
    if mesh is not None and batch_size % mesh.devices.size:
        raise ValueError(f"batch_size: expected a multiple of the mesh's {mesh.devices.size} devices, "
                         f"got {batch_size}")

    sample = jax.ShapeDtypeStruct((batch_size, *data.image_size, 3), jnp.float32)
    shapes = {layer: model.spatial_layer_shape(sample, layer, "layers").shape for layer in layers}
    fields = receptive_fields(model, sample) if upsampling == "receptive_field" else {}

    total = len(data)
    needed = {layer: values_needed(total * shape[1] * shape[2], quantile) for layer, shape in shapes.items()}
    top = {layer: top_values_init(shapes[layer][-1], needed[layer]) for layer in layers}
    best = {layer: top_k_init(shapes[layer][-1], min(top_images, total)) for layer in layers}
    with bar(total, desc="dissect: thresholds", unit="image", progress=progress) as shown:
        for batch, indices, valid, count in _batches(data, batch_size, mesh):
            top, best = _threshold_step(model, top, best, batch.images, indices, valid, tuple(layers))
            shown.update(count)
    thresholds = {
        layer: thresholds_from_top(np.asarray(top[layer]), total * shapes[layer][1] * shapes[layer][2], quantile)
        for layer in layers}
    del top

    concepts = data.concepts
    category_of = jnp.asarray(np.asarray(concepts.category_of, np.int32))
    layer_bands = {layer: bands(*upsampling_matrices(shapes[layer][1:3], data.seg_size, data.image_size, upsampling,
                                                     fields.get(layer))) for layer in layers}
    accumulators = {layer: Accumulator(batch_size * data.seg_size[0] * data.seg_size[1]) for layer in layers}
    device_thresholds = {layer: jnp.asarray(thresholds[layer], jnp.float32) for layer in layers}
    with bar(total, desc="dissect: tally", unit="image", progress=progress) as shown:
        for batch, _, valid, count in _batches(data, batch_size, mesh):
            counts = _tally_step(model, device_thresholds, layer_bands, batch, valid, category_of, tuple(layers),
                                 len(concepts), len(concepts.categories), 1 if mesh is None else mesh.devices.size)
            for layer in layers:
                accumulators[layer].add(counts[layer])
            shown.update(count)

    return {
        layer: LayerDissection(
            layer=layer, concepts=concepts, counts=accumulators[layer].result(),
            thresholds=thresholds[layer], convention=convention, quantile=quantile,
            upsampling=upsampling, top_images=np.asarray(best[layer].indices),
            top_scores=np.asarray(best[layer].scores), iou_threshold=iou_threshold)
        for layer in layers}


def _batches(data: Any, batch_size: int, mesh: Mesh | None):
    """(ConceptBatch, indices [B] (-1 for padding), valid [B], images in it) of fixed size B over one pass of `data`.

    The count is the host's, so a progress bar reads it without waiting on the device.
    """
    for indices, valid in pass_indices(len(data), batch_size):
        arrays = (ConceptBatch(*data.batch(indices)), np.where(valid, indices, -1).astype(np.int32), valid)
        if mesh is not None:
            arrays = jax.device_put(arrays, batch_sharding(mesh))
        yield (*arrays, int(valid.sum()))


@functools.partial(jax.jit, static_argnames="layers")
def _threshold_step(model, top, best, images, indices, valid, layers):
    acts = model.activations(images, layers)
    return ({layer: top_values_update(top[layer], acts[layer], valid) for layer in layers},
            {layer: top_k_update(best[layer], acts[layer], indices) for layer in layers})


@functools.partial(jax.jit, static_argnames=("layers", "num_concepts", "num_categories", "groups"))
def _tally_step(model, thresholds, layer_bands, batch, valid, category_of, layers, num_concepts, num_categories,
                groups):
    acts = model.activations(batch.images, layers)
    return {layer: tally_batch(acts[layer], thresholds[layer], layer_bands[layer], batch.ids, batch.masks, valid,
                               category_of, num_concepts=num_concepts, num_categories=num_categories, groups=groups)
            for layer in layers}


def activation_masks(model: Any, dissection: LayerDissection, images: jax.Array,
                     size: tuple[int, int] | None = None) -> np.ndarray:
    """Where each unit of a dissected layer is on, for some images: bool [n, H, W, K].

    The layer's maps are upsampled as in the dissection (its `upsampling`) to
    `size` (default: the images' size) and compared with its thresholds; this
    is the binarized mask the report draws over a unit's top images.

    Args:
      model: the dissected model.
      dissection: the layer's result.
      images: [n, H, W, 3] network inputs.
      size: (height, width) of the masks.
    """
    images = jnp.asarray(images)
    return np.asarray(mask_function(model, dissection, images.shape, size)(images))


def mask_function(model: Any, dissection: LayerDissection, image_shape: tuple[int, ...],
                  size: tuple[int, int] | None = None) -> Callable[[jax.Array], jax.Array]:
    """`activation_masks` as a jitted function of images shaped `image_shape`, for calls on many batches.

    The receptive field and the upsampling matrices are found once, and the
    function compiles once: the report's masks took 3.6 s eagerly, per batch.
    """
    model = nets.as_model(model)
    image_hw = tuple(image_shape[1:3])
    size = tuple(size or image_hw)
    sample = jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32)
    acts_hw = model.spatial_layer_shape(sample, dissection.layer).shape[1:3]
    field = (receptive_fields(model, sample)[dissection.layer]
             if dissection.upsampling == "receptive_field" else None)
    rows, cols = upsampling_matrices(tuple(acts_hw), size, image_hw, dissection.upsampling, field)
    thresholds = jnp.asarray(dissection.thresholds, jnp.float32)

    @jax.jit
    def masks(images: jax.Array) -> jax.Array:
        acts = model.activations(images, dissection.layer)[dissection.layer]
        return upsample(acts, rows, cols) > thresholds[None, None, None, :]

    return masks
