"""What an explanatory graph is measured by: how stable its nodes are, and how well they localize parts.

    peaks = explain.filter_peaks(graph, model, images)            # the raw filters the nodes came from
    found = explain.infer(graph, model, images)
    stability = explain.node_stability(graph, found, peaks, landmarks, visible)
    stability["relu4"].nodes.value, stability["relu4"].filters.value

    locator = explain.fit_part_locator(found["relu4"].positions[shots], found["relu4"].scores[shots],
                                       parts[shots], visible[shots], image_size=(64, 64),
                                       flipped=found.flipped[shots])
    predicted = explain.locate_part(locator, found["relu4"].positions[test], found["relu4"].scores[test],
                                    flipped=found.flipped[test])
    metrics.normalized_distance(predicted, parts[test], visible[test], (64, 64))

Node stability follows the release's `computeStability_cub.m`: per layer, the
nodes (or raw filters) with the highest mean score over their 20 best images
are kept, as many nodes as filters (the release keeps 167 of VGG-16's 512
filters per layer, `FILTER_SHARE`); each is the standard deviation of its
distance to each landmark over its 20 best images that show the landmark,
over the image diagonal (`interp.metrics.location_instability`,
`top_among="all"`). Lower is more stable.

Few-shot localization: the release publishes no code for it, so this follows
the paper's description. From the 1 to 3 annotated images each node's
displacement to the part is averaged, and the nodes that are strong on those
images and whose displacement is short and consistent are kept; on a new
image the part is the score-weighted mean of the kept nodes' places plus
their displacements. The same few annotations select raw filters (their peaks
in place of node places) for the baseline, and `fit_linear_locator` is the
paper's other baseline, a linear map from the network's pooled top features
to the part centre.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp import metrics, nets
from interp._checks import check_positive_int
from interp.explain.graph import ExplanatoryGraph, check_model
from interp.explain.mining import Inference
from interp.ops import map_peaks

FILTER_SHARE = 167 / 512  # computeStability_cub.m's selectedPatternNum of VGG-16's 512 filters per layer
TOP_IMAGES = 20  # its patchNumPerPattern


class Peaks(NamedTuple):
    """Each raw filter's peak on each image: positions float32 [N, C, 2] in pixels, scores [N, C]."""

    positions: np.ndarray
    scores: np.ndarray


class Stability(NamedTuple):
    """A layer's node stability against its raw filters (`metrics.LocationInstability` each; lower is better)."""

    nodes: Any
    filters: Any
    count: int  # how many nodes, and filters, were measured


def filter_peaks(graph: ExplanatoryGraph, model: Any, images: Any, *, batch_size: int = 64) -> dict[str, Peaks]:
    """Each graph layer's raw filters' peaks on `images`, read as the graph reads them (normalized maps).

    The argmax of each filter's map divided by the graph's per-unit scale
    (as the release's `computeStability_raw.m` reads its stored maps), at the
    centre of the unit's receptive field.
    """
    model = nets.as_model(model)
    check_model(graph, model.params)
    images = np.asarray(images, np.float32)
    batch_size = check_positive_int("batch_size", batch_size)
    found: dict[str, tuple[list, list]] = {layer.name: ([], []) for layer in graph.layers}
    scales = tuple(jnp.asarray(layer.scale) for layer in graph.layers)
    for start in range(0, len(images), batch_size):
        peaks = _peaks(model, jnp.asarray(images[start:start + batch_size]), scales, graph.layer_names)
        for layer, (cells, values) in zip(graph.layers, peaks):
            found[layer.name][0].append(layer.to_pixels(np.asarray(cells)))
            found[layer.name][1].append(np.asarray(values))
    return {name: Peaks(np.concatenate(p).astype(np.float32), np.concatenate(s)) for name, (p, s) in found.items()}


@functools.partial(jax.jit, static_argnames="names")
def _peaks(model, images, scales, names):
    acts = model.activations(images, names)
    return [map_peaks(acts[name] / scale[None]) for name, scale in zip(names, scales)]


def _selected(scores: np.ndarray, count: int, top: int) -> np.ndarray:
    """The `count` units with the highest mean score over their `top` best images (computeStability.m)."""
    best = -np.sort(-scores, axis=0)[:top]
    return np.argsort(-best.mean(axis=0), kind="stable")[:count]


def node_stability(graph: ExplanatoryGraph, inference: Inference, peaks: dict[str, Peaks], landmarks: Any,
                   visible: Any, *, share: float = FILTER_SHARE, top: int = TOP_IMAGES) -> dict[str, Stability]:
    """Location instability of each layer's best nodes against its best raw filters (computeStability_cub.m).

    Args:
      graph: the explanatory graph.
      inference: `explain.infer(graph, model, images)`.
      peaks: `explain.filter_peaks(graph, model, images)` on the same images.
      landmarks: float [N, P, 2] (row, col) part landmarks in pixels; visible: bool [N, P].
      share: the share of a layer's filters measured, and as many nodes (the release: 167 of 512).
      top: each unit's images considered (the release: 20).

    Returns:
      `{layer: Stability(nodes, filters, count)}`.
    """
    landmarks = np.asarray(landmarks, np.float64)
    visible = np.asarray(visible, bool)
    if not 0 < share <= 1:
        raise ValueError(f"share: expected a share of the filters in (0, 1], got {share!r}")
    size = tuple(graph.image_shape[:2])
    out = {}
    for layer in graph.layers:
        nodes, raw = inference[layer.name], peaks[layer.name]
        count = max(1, round(layer.num_channels * share))
        chosen_nodes = _selected(nodes.scores, count, top)
        chosen_filters = _selected(raw.scores, count, top)
        measure = functools.partial(metrics.location_instability, landmarks=landmarks, visible=visible,
                                    image_size=size, top=top, top_among="all")
        out[layer.name] = Stability(
            measure(nodes.positions[:, chosen_nodes], nodes.scores[:, chosen_nodes]),
            measure(raw.positions[:, chosen_filters], raw.scores[:, chosen_filters]), count)
    return out


class PartLocator(NamedTuple):
    """Nodes (or filters) chosen to predict one part, from a few annotated images.

    Attributes:
      units: int [K] the chosen nodes (or filters), best first.
      offsets: float [K, 2] each one's mean displacement to the part, in pixels (in the chosen orientation).
      weights: float [K] how much each one counts.
      width: the images' width (to mirror places on images read mirrored).
    """

    units: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray
    width: int


def fit_part_locator(positions: Any, scores: Any, part: Any, visible: Any, *, image_size: tuple[int, int],
                     flipped: Any = None, count: int = 5, sigma: float | None = None) -> PartLocator:
    """Chooses the `count` nodes (or raw filters) that best predict a part on the annotated images.

    A unit's displacement to the part is averaged over the images that show
    it; the unit is ranked by its mean score there times
    `exp(-(|mean displacement|^2 + its spread^2) / (2 sigma^2))`: strong, near
    the part and consistent.

    Args:
      positions: float [S, U, 2] each unit's place on each annotated image, in pixels (`infer(...)[layer]
        .positions`, or raw filter peaks).
      scores: float [S, U] their scores.
      part: float [S, 2] the part's annotated centre; visible: bool [S].
      image_size: (h, w) in pixels.
      flipped: bool [S], images the graph read mirrored (`Inference.flipped`): displacements are measured
        in the orientation the graph read, so a node on the left of a mirrored head keeps its meaning.
      count: units kept.
      sigma: the displacement scale in pixels; None: a tenth of the image diagonal.

    Raises:
      ValueError: no annotated image shows the part, or the shapes disagree.
    """
    positions, scores, part, visible, flipped = _check_shots(positions, scores, part, visible, flipped)
    if not visible.any():
        raise ValueError("visible: the part is visible on none of the annotated images; annotate at least one")
    count = min(check_positive_int("count", count), positions.shape[1])
    height, width = image_size
    sigma = math.hypot(height, width) / 10 if sigma is None else float(sigma)
    positions, part = _oriented(positions, flipped, width), _oriented(part[:, None], flipped, width)[:, 0]
    shown = np.flatnonzero(visible)
    displacement = part[shown, None, :] - positions[shown]  # [S', U, 2]
    mean = displacement.mean(axis=0)
    spread = ((displacement - mean) ** 2).sum(-1).mean(axis=0)
    rank = scores[shown].mean(axis=0) * np.exp(-((mean**2).sum(-1) + spread) / (2 * sigma**2))
    units = np.argsort(-rank, kind="stable")[:count]
    return PartLocator(units, mean[units], np.maximum(rank[units], 1e-12), int(width))


def locate_part(locator: PartLocator, positions: Any, scores: Any, *, flipped: Any = None) -> np.ndarray:
    """float [N, 2] the part's predicted centre on each image: the chosen units' places plus their displacements,
    weighted by their rank and their score on the image (equal weights where all of them are silent)."""
    positions, scores = np.asarray(positions, np.float64), np.asarray(scores, np.float64)
    flipped = np.zeros(len(positions), bool) if flipped is None else np.asarray(flipped, bool)
    places = _oriented(positions, flipped, locator.width)[:, locator.units] + locator.offsets  # [N, K, 2]
    weights = locator.weights * np.maximum(scores[:, locator.units], 0)
    weights = np.where(weights.sum(1, keepdims=True) > 0, weights, locator.weights)
    centre = (places * weights[..., None]).sum(1) / weights.sum(1)[:, None]
    return _oriented(centre[:, None], flipped, locator.width)[:, 0]


class LinearLocator(NamedTuple):
    """The paper's "fc7 + linear" baseline: a ridge regression from pooled features to the part centre."""

    coef: np.ndarray  # [D, 2]
    intercept: np.ndarray  # [2]
    mean: np.ndarray  # [D]


def fit_linear_locator(features: Any, part: Any, visible: Any, *, ridge: float = 1.0) -> LinearLocator:
    """Ridge regression (centred, closed form) from features [S, D] to the part centre [S, 2] on the visible shots."""
    features, part, visible = np.asarray(features, np.float64), np.asarray(part, np.float64), np.asarray(visible)
    if features.ndim != 2 or len(features) != len(part):
        raise ValueError(f"features: expected [S, D] with S={len(part)}, got {list(features.shape)}")
    if not visible.any():
        raise ValueError("visible: the part is visible on none of the annotated images; annotate at least one")
    x, y = features[visible.astype(bool)], part[visible.astype(bool)]
    mean = x.mean(0)
    centred = x - mean
    coef = np.linalg.solve(centred.T @ centred + ridge * np.eye(x.shape[1]), centred.T @ (y - y.mean(0)))
    return LinearLocator(coef, y.mean(0), mean)


def locate_linear(locator: LinearLocator, features: Any) -> np.ndarray:
    """float [N, 2] the linear baseline's predicted centres."""
    return (np.asarray(features, np.float64) - locator.mean) @ locator.coef + locator.intercept


def _oriented(positions: np.ndarray, flipped: np.ndarray, width: int) -> np.ndarray:
    """Places [N, U, 2] in the orientation the graph read each image (columns mirrored where flipped)."""
    mirrored = positions.copy()
    mirrored[..., 1] = width - 1 - positions[..., 1]
    return np.where(flipped[:, None, None], mirrored, positions)


def _check_shots(positions, scores, part, visible, flipped):
    positions, scores = np.asarray(positions, np.float64), np.asarray(scores, np.float64)
    part, visible = np.asarray(part, np.float64), np.asarray(visible, bool)
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions: expected [S, units, 2], got shape {list(positions.shape)}")
    s, u = positions.shape[:2]
    if scores.shape != (s, u):
        raise ValueError(f"scores: expected shape {[s, u]}, got {list(scores.shape)}")
    if part.shape != (s, 2) or visible.shape != (s,):
        raise ValueError(f"part, visible: expected [{s}, 2] and [{s}], got {list(part.shape)} and "
                         f"{list(visible.shape)}")
    flipped = np.zeros(s, bool) if flipped is None else np.asarray(flipped, bool)
    return positions, scores, part, visible, flipped
