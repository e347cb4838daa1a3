"""Location instability of filters (Interpretable CNNs, Zhang et al., CVPR 2018).

Location instability asks whether a filter fires on the same object part in
every image. It follows the official evaluation (`computeStability.m` and
`getDistSqrtVar.m` of zqs1022/interpretableCNN):

  1. each filter's peak on each image: the argmax of its feature map, mapped to
     image pixels at the center of the unit's receptive field; its score is the
     peak value (`interp.ops.map_peaks`, `peaks_in_image`, or `filter_peaks`
     for both on a model). The release reads the conv's output *before* its
     ReLU (`res(targetLayer+1).x` of conv_mask6), where a filter that is silent
     after the ReLU still has an informative argmax and score: read the
     pre-ReLU tap (`icnn` of `interp.layers.released_icnn`). Read after the
     ReLU, a silent map's argmax is its first cell; `firing_only=True` leaves
     those images out;
  2. for each filter and landmark: the images where the landmark is visible,
     by the filter's score, best first, the first `top` kept; the deviation is
     the standard deviation (ddof=1) of the distance between peak and landmark;
  3. a filter's instability is the mean deviation over the landmarks; the
     layer's is the mean over filters, divided by the image diagonal
     (`location_instability`). A multi-category layer evaluates each filter
     on the images of the category where its mean score is highest, against
     that category's landmarks (`categories=`, as
     `step_computeStability_multiClass.m`).

What a value means depends on the map's resolution and the data's poses:
`reference_instabilities` measures three virtual filters on the same images
(a perfect part tracker at the map's resolution, a fixed image centre, a
random cell) to set it against.

A filter that tracks a part keeps a fixed distance to its landmark, so lower is
better (0 for a peak that moves rigidly with the part).

    peaks = metrics.filter_peaks(model, "icnn", ds, num_examples=512)      # before the ReLU
    result = metrics.location_instability(*peaks, landmarks, visible, (64, 64), categories=labels)

Part interpretability, each filter's best IoU with a part concept, is a Network
Dissection of the layer: `interp.dissect.part_interpretability`.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets
from interp._checks import check_positive_int
from interp._progress import bar
from interp.data.stream import BatchSource, batch_images, check_source, check_span, pass_indices
from interp.nets import ReceptiveField, receptive_fields
from interp.ops import map_peaks


class Peaks(NamedTuple):
    """Each filter's strongest response on each image.

    Attributes:
      positions: float32 [N, C, 2] (row, col) in image pixels, pixel (r, c)
        centered at (r, c) (as SynthParts landmarks).
      scores: float32 [N, C] the peak values.
    """

    positions: np.ndarray
    scores: np.ndarray


class LocationInstability(NamedTuple):
    """The location instability of a layer; all values are divided by the image diagonal.

    Attributes:
      value: the layer's instability, the mean of the finite `per_filter`
        values (over the most stable `stable_fraction` of all filters); NaN
        when no filter has a value.
      per_filter: float64 [C] each filter's mean deviation over the landmarks;
        NaN where some landmark had fewer than 2 images.
      per_part: float64 [C, P] each filter's deviation for each landmark; NaN
        where the landmark had fewer than 2 images (or, with categories, is
        not one of its category's landmarks).
      category: int [C] the category each filter was evaluated on (with
        `categories`), else None.
    """

    value: float
    per_filter: np.ndarray
    per_part: np.ndarray
    category: np.ndarray | None = None


def peaks_in_image(positions: jax.Array, field: ReceptiveField) -> jax.Array:
    """Unit indices to image pixels: the center of each unit's receptive field.

    Args:
      positions: int [..., 2] (i, j) unit indices, e.g. from `interp.ops.map_peaks`.
      field: the layer's receptive field (`interp.nets.receptive_fields`).

    Returns:
      float32 [..., 2] (row, col) `start + index * stride + (size - 1) / 2`
      per axis, pixel (r, c) centered at (r, c).
    """
    if np.ndim(positions) < 1 or np.shape(positions)[-1] != 2:
        raise ValueError(f"positions: expected unit indices [..., 2], got shape {list(np.shape(positions))}")
    positions = jnp.asarray(positions)
    rows, cols = field.center(positions[..., 0], positions[..., 1])
    return jnp.stack([rows, cols], axis=-1).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames="layer")
def _peaks_step(model: nets.Model, images: jax.Array, layer: str) -> tuple[jax.Array, jax.Array]:
    return map_peaks(model.activations(images, layer)[layer])


def filter_peaks(model: Any, layer: str, data: BatchSource, *, batch_size: int = 64,
                 num_examples: int | None = None, first: int = 0, progress: bool | None = None) -> Peaks:
    """Peaks of every filter of `layer` on every image of one ordered pass over `data`, in image pixels.

    Each batch runs through one jitted step (the last one padded, so all
    share one compiled step); the receptive field is computed once.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: a layer with activations [b, h, w, C].
      data: a batch source (`interp.data`) whose batches are images
        [B, H, W, 3] or dicts with an 'image' entry; only images are read.
      batch_size: images per step (at most `num_examples`).
      num_examples: images read, `first ... first + num_examples - 1`; None
        reads all of `data` from `first`.
      first: the index of the first image.
      progress: show a progress bar of the images read: None on a terminal (see `interp._progress`).

    Returns:
      `Peaks(positions [N, C, 2], scores [N, C])` for the N images in order.
    """
    model = nets.as_model(model)
    data = check_source(data, "data")
    count = check_span(data, num_examples, first, "data")
    batch_size = min(check_positive_int("batch_size", batch_size), count)
    positions, scores, field = [], [], None
    with bar(count, desc=f"filter peaks: {layer}", unit="image", progress=progress) as shown:
        for indices, valid in pass_indices(count, batch_size, first):
            images = jnp.asarray(batch_images(data.batch(indices), "data"))
            if field is None:
                model.spatial_layer_shape(images, layer)
                field = receptive_fields(model, images)[layer]
            p, s = _peaks_step(model, images, layer)
            positions.append(np.asarray(p)[valid])
            scores.append(np.asarray(s)[valid])
            shown.update(int(valid.sum()))
    return Peaks(np.asarray(peaks_in_image(np.concatenate(positions), field)), np.concatenate(scores))


def location_instability(
    peaks: Any,
    scores: Any,
    landmarks: Any,
    visible: Any,
    image_size: tuple[int, int],
    *,
    top: int = 100,
    stable_fraction: float = 1.0,
    firing_only: bool = False,
    categories: Any = None,
    landmark_share: float = 0.5,
    top_among: str = "visible",
) -> LocationInstability:
    """Location instability of a layer's filters (Zhang et al., CVPR 2018); lower is better.

    For filter f and landmark k, the images where k is visible are ranked by
    f's score (best first; ties keep image order) and the first `top` kept;
    the deviation is the standard deviation (ddof=1, as MATLAB's `var`) of the
    Euclidean distance between f's peak and landmark k on those images. A
    filter's instability is its mean deviation over the landmarks, NaN if some
    landmark is left with fewer than 2 images. Visibility does not depend on
    the filter, so such a landmark makes every filter NaN: pass only the
    landmarks of parts these images show (the paper evaluates each category
    on its own images and parts), e.g. `landmarks[:, parts]`.

    Args:
      peaks: float [N, C, 2] (row, col) peak of each filter on each image, in
        pixels (`filter_peaks`, or `peaks_in_image(ops.map_peaks(maps)[0], field)`).
      scores: [N, C] the peak values.
      landmarks: float [N, P, 2] (row, col) part positions in the same pixels.
      visible: bool [N, P] where each landmark is valid.
      image_size: (H, W); all values are divided by the diagonal sqrt(H^2 + W^2).
      top: images kept per filter and landmark (the official protocol: 100).
      stable_fraction: the layer's value averages the round(stable_fraction * C)
        most stable filters with a value (the official `selectedPatternRatio`;
        1 averages all of them).
      firing_only: count an image for a filter only where the filter fires
        (score > 0). The official protocol reads the map *before* its ReLU,
        where every filter has an informative argmax; read after the ReLU, a
        silent map's argmax is its first cell, a fixed corner whose distance
        to moving landmarks varies. With this, a filter silent on all but one
        image is NaN and left out of the mean.
      categories: int [N], each image's category, for a multi-category
        layer: as `step_computeStability_multiClass.m`, each filter is
        evaluated on the images of the category where its mean score is
        highest, against that category's landmarks (those visible on at least
        `landmark_share` of its images).
      landmark_share: see `categories`.
      top_among: "visible" keeps a filter's `top` best images among those
        where the landmark is visible (Interpretable CNNs' protocol); "all"
        keeps its `top` best images and then drops those where the landmark
        is hidden (the explanatory graph's `getDistSqrtVar.m`).

    Returns:
      `LocationInstability(value, per_filter [C], per_part [C, P], category)`,
      divided by the image diagonal.
    """
    peaks, scores, landmarks, visible = _check(peaks, scores, landmarks, visible, top, stable_fraction)
    height, width = _check_size(image_size)
    if top_among not in ("visible", "all"):
        raise ValueError(f"top_among: expected 'visible' or 'all', got {top_among!r}")
    if categories is not None:
        return _by_category(peaks, scores, landmarks, visible, (height, width), categories, landmark_share,
                            top=top, stable_fraction=stable_fraction, firing_only=firing_only,
                            top_among=top_among)
    diagonal = float(np.hypot(height, width))
    per_part = _deviations(peaks, scores, landmarks, visible, int(top), firing_only, top_among) / diagonal
    sparse = np.flatnonzero(visible.sum(axis=0) < 2)
    if sparse.size:
        warnings.warn(f"landmarks: landmark {int(sparse[0])} is visible on {int(visible[:, sparse[0]].sum())} "
                      "image(s), fewer than 2, so every filter's instability is NaN; pass only the landmarks "
                      "of parts these images show", RuntimeWarning, stacklevel=2)
    per_filter = per_part.mean(axis=1)
    return LocationInstability(_layer_value(per_filter, stable_fraction), per_filter, per_part)


def _layer_value(per_filter: np.ndarray, stable_fraction: float) -> float:
    """The mean of the most stable `stable_fraction` of the filters that have a value (NaN if none)."""
    finite = np.sort(per_filter[~np.isnan(per_filter)])
    selected = int(np.floor(stable_fraction * len(per_filter) + 0.5))  # MATLAB round: half away from 0
    chosen = finite[:selected]
    return float(chosen.mean()) if chosen.size else float("nan")


def _by_category(peaks, scores, landmarks, visible, image_size, categories, landmark_share, **kw):
    """`location_instability` of each filter on the images of its category (see its `categories`)."""
    categories = np.asarray(categories)
    if categories.shape != scores.shape[:1] or not np.issubdtype(categories.dtype, np.integer):
        raise ValueError(f"categories: expected int [N] with N={scores.shape[0]}, got "
                         f"{categories.dtype} {list(categories.shape)}")
    if not 0 < landmark_share <= 1:
        raise ValueError(f"landmark_share: expected a float in (0, 1], got {landmark_share!r}")
    present = np.unique(categories)
    means = np.stack([scores[categories == c].mean(0) for c in present])  # [categories, C]
    assigned = present[means.argmax(0)]
    per_filter = np.full(scores.shape[1], np.nan)
    per_part = np.full((scores.shape[1], landmarks.shape[1]), np.nan)
    for c in np.unique(assigned):
        images = categories == c
        parts = np.flatnonzero(visible[images].mean(0) >= landmark_share)
        filters = np.flatnonzero(assigned == c)
        if len(parts) == 0 or images.sum() < 2:
            continue
        result = location_instability(peaks[images][:, filters], scores[images][:, filters],
                                      landmarks[images][:, parts], visible[images][:, parts], image_size, **kw)
        per_filter[filters] = result.per_filter
        per_part[np.ix_(filters, parts)] = result.per_part
    return LocationInstability(_layer_value(per_filter, kw["stable_fraction"]), per_filter, per_part, assigned)


def reference_instabilities(landmarks: Any, visible: Any, image_size: tuple[int, int], cells: Any, *,
                            categories: Any = None, landmark_share: float = 0.5, top: int = 100,
                            seed: int = 0) -> dict[str, float]:
    """The location instability of three virtual filters on the same images: what a layer's value reads against.

    * "part_tracker": one filter per landmark whose peak is the map cell
      nearest that landmark on every image where it shows: the floor of a
      filter that tracks a part perfectly at the map's resolution (not 0: the
      other landmarks move relative to it);
    * "image_centre": a peak fixed at the image centre;
    * "random_cell": a peak on a uniformly random cell of each image.

    Each is measured as `location_instability` measures a filter of the
    category (with `categories`, each category's own landmarks), and averaged
    over the virtual filters.

    Args:
      landmarks: float [N, P, 2] (row, col) in pixels; visible: bool [N, P].
      image_size: (H, W).
      cells: float [..., 2] the map cells' centres in pixels (e.g.
        `peaks_in_image` of every cell index of the measured layer).
      categories: int [N] or None (one category).
      landmark_share, top: as in `location_instability`.
      seed: of the random cells.
    """
    landmarks = np.asarray(landmarks, np.float64)
    visible = np.asarray(visible, bool)
    cells = np.asarray(cells, np.float64).reshape(-1, 2)
    n = landmarks.shape[0]
    categories = np.zeros(n, np.int64) if categories is None else np.asarray(categories)
    centre = (np.array(_check_size(image_size), np.float64) - 1) / 2
    random_cells = cells[np.random.default_rng(seed).integers(0, len(cells), n)]
    found: dict[str, list[float]] = {"part_tracker": [], "image_centre": [], "random_cell": []}
    for c in np.unique(categories):
        images = np.flatnonzero(categories == c)
        parts = np.flatnonzero(visible[images].mean(0) >= landmark_share)
        if len(parts) == 0 or len(images) < 2:
            continue
        marks, shown = landmarks[images][:, parts], visible[images][:, parts]
        for k in range(len(parts)):
            nearest = cells[np.argmin(((marks[:, k, None, :] - cells[None]) ** 2).sum(-1), axis=1)]
            found["part_tracker"].append(_one_filter(nearest, marks, shown, image_size, top, shown[:, k]))
        centred = np.broadcast_to(centre, (len(images), 2))
        found["image_centre"].append(_one_filter(centred, marks, shown, image_size, top))
        found["random_cell"].append(_one_filter(random_cells[images], marks, shown, image_size, top))
    # NaN where no category shows a part on two images (location_instability's warning names it), no numpy warning
    return {name: float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            for name, values in found.items()}


def _one_filter(peaks, landmarks, visible, image_size, top, rows=slice(None)) -> float:
    """The instability of one filter peaking at `peaks` [N, 2], over images `rows`, all scored alike."""
    peaks = peaks[rows][:, None, :]
    return location_instability(peaks, np.ones(peaks.shape[:2]), landmarks[rows], visible[rows], image_size,
                                top=top).value


def _deviations(peaks: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, visible: np.ndarray,
                top: int, firing_only: bool = False, top_among: str = "visible") -> np.ndarray:
    """float64 [C, P]: std (ddof=1) of peak-landmark distances over each filter's top (visible) images."""
    order = np.argsort(-scores, axis=0, kind="stable")  # [N, C] images by each filter's score
    ranked_peaks = np.take_along_axis(peaks, order[:, :, None], axis=0)  # [N, C, 2]
    firing = np.take_along_axis(scores, order, axis=0) > 0 if firing_only else True
    deviations = np.empty((scores.shape[1], landmarks.shape[1]))
    for k in range(landmarks.shape[1]):  # a loop over parts keeps memory at [N, C]
        shown = visible[order, k] & firing  # [N, C]
        ranked = np.cumsum(shown, axis=0) if top_among == "visible" else np.arange(1, len(order) + 1)[:, None]
        kept = shown & (ranked <= top)
        distance = np.linalg.norm(ranked_peaks - landmarks[order, k], axis=-1)  # [N, C]
        count = kept.sum(axis=0)
        mean = np.where(kept, distance, 0.0).sum(axis=0) / np.maximum(count, 1)
        squares = np.where(kept, (distance - mean[None, :]) ** 2, 0.0).sum(axis=0)
        deviations[:, k] = np.where(count >= 2, np.sqrt(squares / np.maximum(count - 1, 1)), np.nan)
    return deviations


def _check(peaks, scores, landmarks, visible, top, stable_fraction):
    peaks = np.asarray(peaks, np.float64)
    if peaks.ndim != 3 or peaks.shape[-1] != 2:
        raise ValueError(f"peaks: expected (row, col) positions [N, C, 2], got shape {list(peaks.shape)}")
    n, c, _ = peaks.shape
    scores = np.asarray(scores, np.float64)
    if scores.shape != (n, c):
        raise ValueError(f"scores: expected [N, C] = {[n, c]} like peaks, got shape {list(scores.shape)}")
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 3 or landmarks.shape[0] != n or landmarks.shape[2] != 2:
        raise ValueError(f"landmarks: expected (row, col) positions [N, P, 2] with N={n}, "
                         f"got shape {list(landmarks.shape)}")
    visible = np.asarray(visible)
    if visible.shape != landmarks.shape[:2]:
        raise ValueError(f"visible: expected bool [N, P] = {list(landmarks.shape[:2])} like landmarks, "
                         f"got shape {list(visible.shape)}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 2:
        raise ValueError(f"top: expected an int >= 2 (a standard deviation needs two images), got {top!r}")
    if not 0 < stable_fraction <= 1:
        raise ValueError(f"stable_fraction: expected a float in (0, 1], got {stable_fraction!r}")
    return peaks, scores, landmarks, visible.astype(bool)


def _check_size(image_size) -> tuple[int, int]:
    size = tuple(np.ravel(image_size).tolist()) if np.ndim(image_size) else ()
    if len(size) != 2 or not all(s > 0 for s in size):
        raise ValueError(f"image_size: expected (H, W), two positive numbers, got {image_size!r}")
    return size
