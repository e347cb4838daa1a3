"""A prediction's score split into per-filter and per-part contributions (Zhang et al., CVPR 2019, section 3).

At a named conv layer with maps X [h, w, D], the head above it is, near the
image, the linear function `y = sum_hwd G_hwd X_hwd + b` with `G = dy/dX`.
For a piecewise-linear head (ReLU, max-pool, the interpretable layer's mask,
linear layers) this is exact: the head *is* that linear function on the
region of feature space the image lies in, so `b` is the region's own bias
(the head with its gates frozen, fed zeros). For any other head it is the
first-order Taylor expansion at the image: the split of `y` is still exact
at the image, and `tangent_error` measures how far the tangent strays.

Filter `d` contributes `c_d = sum_hw G_hwd X_hwd`. The paper writes it over
pooled features, `c_d = g_d x_d` with `x_d` the filter's mean activation
divided by its dataset mean `s_d` and `g_d` "the matching gradient": we take
`g_d = c_d / x_d`, the gradient averaged with the activation as weight,
which keeps `sum_d g_d x_d + b = y` exact for every head; where the gradient
is the same on every cell (a global-average-pooling head) it is the paper's
`s_d * sum_hw G_hwd`, which is also what a silent filter (x_d = 0) gets.
`g` is the image's decision mode, what `explain.decision_tree` organizes.

    c = explain.contributions(model, "relu3", x, target=labels, scale=explain.filter_scale(model, "relu3", x))
    c.filters            # [b, D]; c.filters.sum(-1) + c.bias == c.score
    parts = explain.part_matrix(dissection["relu3"])
    c.parts(parts)       # [b, P] per-part contributions, A @ c
    explain.evidence_shares(c, parts)   # {"part": 0.83, "texture": 0.07, ..., "unexplained": 0.10}
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets
from interp._checks import check_choice, check_positive_int, check_target_range, normalize_target, select_scores
from interp.nets.adapter import check_input

SCORES = ("logit", "margin")
UNEXPLAINED = "unexplained"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Contributions:
    """A score split over a layer's filters: `filters.sum(-1) + bias == score`.

    Shapes are per image [b], or [b, k] for a [b, k] target, with the filters' axis D last.

    Attributes:
      score: the explained score (the target's logit, or its margin over the best other class).
      filters: [..., D] each filter's contribution `c_d = sum_hw G_hwd X_hwd`.
      bias: what no filter accounts for: the linear region's bias (exact for a piecewise-linear head).
      features: [b, D] `x_d`, each filter's mean activation over the map divided by its scale `s_d`.
      mode: [..., D] the decision mode `g`, with `g_d * x_d == filters[..., d]`.
    """

    score: Any
    filters: Any
    bias: Any
    features: Any
    mode: Any

    @property
    def num_filters(self) -> int:
        return int(np.shape(self.filters)[-1])

    def parts(self, parts: PartMatrix) -> jax.Array:
        """Per-part contributions `A @ c` [..., P] through the filter->part matrix `parts`.

        Raises:
          ValueError: `parts` does not have one column per filter.
        """
        check_part_matrix(parts, self.num_filters)
        return jnp.einsum("...d,pd->...p", self.filters, jnp.asarray(parts.matrix, jnp.float32))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PartMatrix:
    """Which filters stand for which concepts: `matrix[p, d]` is filter d's share in concept p.

    A column sums to at most 1; what it lacks of 1 is the filter's unexplained share.

    Attributes:
      matrix: float [P, D].
      names: the P concepts, e.g. "part/head".
      categories: each concept's category, e.g. "part", "texture", "color".
    """

    matrix: Any
    names: tuple[str, ...] = dataclasses.field(metadata=dict(static=True))
    categories: tuple[str, ...] = dataclasses.field(metadata=dict(static=True))

    def __post_init__(self):
        shape = np.shape(self.matrix)
        if len(shape) != 2 or shape[0] != len(self.names) or len(self.names) != len(self.categories):
            raise ValueError(f"parts: expected a matrix [P, D] with P = {len(self.names)} names and categories, "
                             f"got shape {list(shape)} with {len(self.categories)} categories")

    @classmethod
    def from_labels(cls, labels: Sequence[int], names: Sequence[str], categories: str | Sequence[str]) -> PartMatrix:
        """One concept per filter: `labels[d]` is filter d's concept (an index into `names`), -1 for none."""
        labels = np.asarray(labels)
        names = tuple(names)
        categories = (categories,) * len(names) if isinstance(categories, str) else tuple(categories)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < -1 \
                or labels.max(initial=-1) >= len(names):
            raise ValueError(f"labels: expected int [D] in [-1, {len(names)}), got {labels.dtype} "
                             f"{list(labels.shape)}")
        matrix = np.zeros((len(names), len(labels)), np.float32)
        chosen = labels >= 0
        matrix[labels[chosen], np.flatnonzero(chosen)] = 1.0
        return cls(matrix, names, categories)

    def filters_of(self, name: str) -> np.ndarray:
        """The filters (indices) with a share in concept `name`."""
        if name not in self.names:
            raise ValueError(f"name: no concept {name!r}; the concepts: {', '.join(self.names)}")
        return np.flatnonzero(np.asarray(self.matrix)[self.names.index(name)] > 0)


def part_matrix(dissection: Any, *, categories: Sequence[str] | None = None,
                iou_threshold: float | None = None) -> PartMatrix:
    """The filter->concept matrix of a layer's Network Dissection (`interp.dissect`).

    Each filter whose best concept's IoU passes the threshold stands for that
    concept; the others are unexplained. The rows are the concepts at least
    one filter stands for, named "category/concept".

    Args:
      dissection: a `dissect.LayerDissection` (e.g. against SynthParts' or Broden's part masks).
      categories: keep only concepts of these categories (default: all).
      iou_threshold: default, the dissection's own (`DETECTOR_IOU`, 0.04).
    """
    category, label, score = (np.asarray(a) for a in dissection.best)
    concepts = dissection.concepts
    threshold = dissection.iou_threshold if iou_threshold is None else float(iou_threshold)
    if categories is not None:
        unknown = sorted(set(categories) - set(concepts.categories))
        if unknown:
            raise ValueError(f"categories: unknown {unknown}; the dissection's: {', '.join(concepts.categories)}")
    wanted = np.array([categories is None or concepts.categories[c] in categories for c in category], bool)
    detector = (score > threshold) & wanted & (label >= 0)
    rows = sorted(set(label[detector].tolist()))
    labels = np.array([rows.index(c) if d else -1 for c, d in zip(label.tolist(), detector)], np.int64)
    return PartMatrix.from_labels(labels, [concepts.label(c) for c in rows],
                                  [concepts.categories[concepts.category_of[c]] for c in rows])


def category_matrix(class_means: Any, class_names: Sequence[str]) -> PartMatrix:
    """The filter->category matrix of an interpretable conv layer trained on several categories.

    Each filter stands for the category whose images give it the highest peak
    on average (the running means `icnn_stats/class_means` [K, D] that
    multi-category training assigns filters by); a filter no image has fired
    is unexplained.
    """
    means = np.asarray(class_means)
    if means.ndim != 2 or means.shape[0] != len(class_names):
        raise ValueError(f"class_means: expected [K, D] with K = {len(class_names)} class names, "
                         f"got shape {list(means.shape)}")
    labels = np.where(means.max(0) > 0, means.argmax(0), -1)
    return PartMatrix.from_labels(labels, [f"object/{name}" for name in class_names], "object")


def check_part_matrix(parts: Any, num_filters: int) -> None:
    """Raises ValueError unless `parts` is a `PartMatrix` with `num_filters` columns, shares in [0, 1]."""
    if not isinstance(parts, PartMatrix):
        raise ValueError(f"parts: expected an explain.PartMatrix, got {type(parts).__name__}")
    matrix = np.asarray(parts.matrix)
    if matrix.shape[1] != num_filters:
        raise ValueError(f"parts: expected a filter->part matrix with one column per filter ({num_filters}), "
                         f"got shape {list(matrix.shape)}")
    columns = matrix.sum(0)
    if (matrix < 0).any() or (columns > 1 + 1e-6).any():
        raise ValueError("parts: expected shares in [0, 1] whose columns sum to at most 1, got "
                         f"entries in [{matrix.min():.3g}, {matrix.max():.3g}] and column sums up to "
                         f"{columns.max():.3g}")


def contributions(model: Any, layer: str, x: Any, target: Any, *, scale: Any = None, score: str = "logit",
                  batch_size: int | None = None) -> Contributions:
    """`y = sum_d c_d + b` for the target's score at the named spatial layer.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: a spatial layer [b, h, w, D] (its `tap` name).
      x: images [b, ...].
      target: int, int [b], or int [b, k] (k scores per image share one forward pass).
      scale: [D] each filter's dataset mean activation `s_d` (`filter_scale`); default ones.
        It sets the units of `features` and `mode`, never the contributions.
      score: "logit", or "margin": the logit minus the highest other logit,
        positive exactly when the network predicts the target.
      batch_size: run in chunks of this many images (outside `jit`); default all at once.

    Raises:
      ValueError: `layer` is unknown or not spatial, a bad target, `scale` of the wrong shape
        or not positive, NaN or infinite images.
    """
    model = nets.as_model(model)
    check_choice("score", score, SCORES)
    x = check_input(x, model.input_spec)
    width = model.spatial_layer_shape(x, layer).shape[-1]
    scale = _check_scale(scale, width)
    target = normalize_target(target, x.shape[0])
    if target is None:
        raise ValueError("target: contributions explain one class's score; pass target= (int, [b] or [b, k])")
    check_target_range(jax.eval_shape(model, x), target)
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    if batch_size is None or batch_size >= x.shape[0]:
        return _contributions(model, layer, x, target, scale, score)
    chunks = [_contributions(model, layer, x[i:i + batch_size], target[i:i + batch_size], scale, score)
              for i in range(0, x.shape[0], batch_size)]
    return jax.tree.map(lambda *parts: jnp.concatenate(parts), *chunks)


def filter_scale(model: Any, layer: str, images: Any, *, batch_size: int = 64) -> jax.Array:
    """`s_d` [D]: each filter's mean activation over `images` (and the map), 1 for a filter that never fires."""
    model = nets.as_model(model)
    images = check_input(images, model.input_spec, "images")
    model.spatial_layer_shape(images, layer)
    batch_size = check_positive_int("batch_size", batch_size)
    total = sum(model.activations(images[i:i + batch_size], layer)[layer].mean((1, 2)).sum(0)
                for i in range(0, images.shape[0], batch_size))
    mean = total / images.shape[0]
    return jnp.where(mean > 0, mean, 1.0)


def evidence_shares(contrib: Contributions, parts: PartMatrix) -> dict[str, jax.Array]:
    """The positive evidence for the score, shared out by concept category and `UNEXPLAINED`.

    A filter's positive contribution goes to the categories of the concepts it
    stands for (by its column of `parts`), the rest of it to "unexplained";
    the shares [...] (per image, or per image and target) sum to 1. This is
    the slides' "83% object parts, 7% textures, 10% cannot be interpreted".
    """
    check_part_matrix(parts, contrib.num_filters)
    evidence = jnp.maximum(contrib.filters, 0.0)
    total = evidence.sum(-1)
    total = jnp.where(total > 0, total, 1.0)
    matrix = jnp.asarray(parts.matrix, jnp.float32)
    shares = {}
    for category in dict.fromkeys(parts.categories):
        rows = jnp.asarray([c == category for c in parts.categories])
        weight = jnp.where(rows[:, None], matrix, 0.0).sum(0)
        shares[category] = evidence @ weight / total
    shares[UNEXPLAINED] = evidence @ (1.0 - matrix.sum(0)) / total
    return shares


def tangent_error(model: Any, layer: str, x: Any, target: Any, *, step: float = 0.1, score: str = "logit") -> jax.Array:
    """How far the linear model strays from the head: `|f((1-step) X) - (1-step) sum c - b| / |sum c|` [b].

    The head `f` above `layer` is fed the image's own maps scaled by
    `1 - step`. An affine head (a global-average-pooling + linear head read
    at its input) gives 0; a piecewise-linear head gives 0 while the scaled
    maps stay in the image's linear region; a smooth head's error grows with
    `step` and its curvature. Targets are int or [b].
    """
    model = nets.as_model(model)
    check_choice("score", score, SCORES)
    x = check_input(x, model.input_spec)
    model.spatial_layer_shape(x, layer)
    target = normalize_target(target, x.shape[0])
    if target is None or target.ndim != 1:
        raise ValueError("target: expected an int or int [b]")
    check_target_range(jax.eval_shape(model, x), target)
    acts = model.activations(x, layer)[layer]
    split = _contributions(model, layer, x, target, jnp.ones(acts.shape[-1], jnp.float32), score)
    linear = split.filters.sum(-1)
    moved = _score(model.shifted(x, {layer: -step * acts}), target, score)
    return jnp.abs(moved - (1.0 - step) * linear - split.bias) / jnp.maximum(jnp.abs(linear), 1e-12)


@functools.partial(jax.jit, static_argnames=("layer", "score"))
def _contributions(model: nets.Model, layer: str, x, target, scale, score: str) -> Contributions:
    def one(t):
        scores, acts, grads = model.activations_and_grads(x, layer, lambda out: _score(out, t, score))
        maps, grad = acts[layer], grads[layer]
        filters = (maps * grad).sum((1, 2))
        pooled = maps.mean((1, 2))
        features = pooled / scale[None]
        fired = features != 0
        mode = jnp.where(fired, filters / jnp.where(fired, features, 1.0), scale[None] * grad.sum((1, 2)))
        return scores, filters, scores - filters.sum(-1), features, mode

    if target.ndim == 1:
        return Contributions(*one(target))
    # k targets: the backward pass is batched over them; x is shared, so the forward pass runs once.
    scores, filters, bias, features, mode = jax.vmap(one, in_axes=1, out_axes=1)(target)
    return Contributions(scores, filters, bias, features[:, 0], mode)


def _score(outputs: jax.Array, target: jax.Array, score: str) -> jax.Array:
    own = select_scores(outputs, target)
    if score == "logit":
        return own
    others = jnp.where(jax.nn.one_hot(target, outputs.shape[-1], dtype=bool), -jnp.inf, outputs)
    return own - others.max(-1)


def _check_scale(scale: Any, width: int) -> jax.Array:
    if scale is None:
        return jnp.ones(width, jnp.float32)
    scale = jnp.asarray(scale, jnp.float32)
    if scale.shape != (width,):
        raise ValueError(f"scale: expected [D] = [{width}], one per filter of the layer, got shape {list(scale.shape)}")
    if not isinstance(scale, jax.core.Tracer) and not bool((scale > 0).all()):
        raise ValueError("scale: expected positive values (a filter's dataset mean activation)")
    return scale
