"""A decision tree of decision modes, from general (root) to image-specific (leaves) (Zhang et al., CVPR 2019).

Every positive training image has a decision mode: the gradient `g` of the
target's score over its layer's pooled features `x`, with `g . x + b = y`
exactly (`explain.contributions`). The tree starts with one leaf per image
under the root and merges, step by step, the two children of the root whose
merge raises the objective most, until no merge raises it:

    E = -1/2 sum_I |gamma (rho_v(I)(x_I) - rho_I)|^2  +  complexity * (n - |V|)

`rho_I = (g_I * x_I, b_I) / |g_I|` is image I's rationale (its filters'
contributions and its bias, normalized), `rho_v` the one node `v`'s mode
predicts, `v(I)` the child of the root holding image I, `|V|` the number of
children of the root, `gamma = 1 / mean_I |y_I / |g_I||`. A node's mode is
`h_v(x) = (alpha_v * d_v) . x + b_v`: the direction `d_v` is the unit vector
closest in cosine to its images' modes (the normalized sum of their unit
modes), `alpha_v` in [0, 1] selects and weighs filters by a Lasso on the
rationales with the paper's penalty `lasso * sqrt(n_v)`, `b_v` is the mean
normalized bias. A leaf is its image's own mode (`alpha = 1`), so it
reproduces the image's score exactly. `docs/decision_tree.md` says where
this departs from the paper and why: the Lasso fits the rationale, not the
score alone, whose single number per image any few images fit exactly;
`alpha` lives on the binary set's convex hull; the likelihood is Gaussian.

    tree = explain.decision_tree(model, "relu3", images, target=3, labels=labels)
    found = explain.explain_predictions(tree, model, new_images)
    found.path[0]                    # node ids, root to leaf
    found.rationale(depth=2)         # [b, D] filter contributions by the depth-2 nodes' modes
    found.agreement()                # [depth]: share of images whose predicted sign matches the network's
    tree.save("tree.npz"); explain.DecisionTree.load("tree.npz")
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp import files, nets
from interp._checks import check_choice
from interp._progress import bar
from interp.explain.contributions import (
    SCORES,
    Contributions,
    PartMatrix,
    check_part_matrix,
    contributions,
    filter_scale,
)
from interp.explain.graph import fingerprint
from interp.nets.adapter import check_input

FORMAT = "interp.decision_tree/1"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecisionTree:
    """Decision modes organized from the root (node 0) to one leaf per training image.

    Attributes:
      direction: float32 [N, D] each node's unit mode direction `d_v`.
      alpha: float32 [N, D] its filter selection in [0, 1] (1 on a leaf).
      bias: float32 [N] `b_v`, in units of the normalized score `y / |g|`.
      parent: int32 [N] the parent of each node, -1 for the root.
      leaf_image: int32 [N] the training image a leaf stands for, -1 for the other nodes.
      size: int32 [N] how many training images a node explains.
      gain: float32 [N] how much the node's merge raised the objective (NaN for leaves, and for a root fitted over
        the children no merge joined).
      scale: float32 [D] the filters' scales `s_d`, part of the modes' definition.
      gamma: float32 [] `1 / mean |y / |g||` over the training images.
      layer, target, score: what the modes explain: the target's "logit" or "margin" at `layer`.
      fingerprint: the sha256 of the model's parameters.
      complexity, lasso: the objective's weights the tree was grown with.
    """

    direction: Any
    alpha: Any
    bias: Any
    parent: Any
    leaf_image: Any
    size: Any
    gain: Any
    scale: Any
    gamma: Any
    layer: str = dataclasses.field(metadata=dict(static=True))
    target: int = dataclasses.field(metadata=dict(static=True))
    score: str = dataclasses.field(metadata=dict(static=True))
    fingerprint: str = dataclasses.field(metadata=dict(static=True))
    complexity: float = dataclasses.field(metadata=dict(static=True))
    lasso: float = dataclasses.field(metadata=dict(static=True))

    @property
    def num_nodes(self) -> int:
        return int(np.shape(self.parent)[0])

    @property
    def weights(self) -> np.ndarray:
        """[N, D] each node's rationale weights `w_v = alpha_v * d_v`."""
        return np.asarray(self.alpha) * np.asarray(self.direction)

    def children(self, node: int) -> np.ndarray:
        """The children of `node`, by node id."""
        return np.flatnonzero(np.asarray(self.parent) == node)

    @functools.cached_property
    def depth(self) -> np.ndarray:
        """int [N]: each node's depth (the root is 0)."""
        parent = np.asarray(self.parent)
        depth = np.zeros(len(parent), np.int64)
        for node in range(1, len(parent)):  # node ids run top-down: a parent's depth is known
            depth[node] = depth[parent[node]] + 1
        return depth

    def ancestors(self, node: int) -> list[int]:
        """The path from the root to `node`, both included."""
        parent = np.asarray(self.parent)
        path = [int(node)]
        while parent[path[-1]] >= 0:
            path.append(int(parent[path[-1]]))
        return path[::-1]

    def training_paths(self) -> np.ndarray:
        """int [n, L]: each training image's path, root to its own leaf, padded by repeating the leaf."""
        leaf_image = np.asarray(self.leaf_image)
        leaves = np.argsort(np.where(leaf_image >= 0, leaf_image, np.iinfo(np.int32).max))[:(leaf_image >= 0).sum()]
        return _pad_paths([self.ancestors(leaf) for leaf in leaves])

    def save(self, path: str | pathlib.Path) -> None:
        """Writes the tree to the `.npz` file `path` (checksummed, no pickle)."""
        meta = {"format": FORMAT, **{name: getattr(self, name) for name in _STATIC}}
        tree = {"meta": np.array(json.dumps(meta)), **{name: np.asarray(getattr(self, name)) for name in _ARRAYS}}
        files.save_arrays(path, tree)

    @classmethod
    def load(cls, path: str | pathlib.Path) -> DecisionTree:
        """The tree `save` wrote to `path`.

        Raises:
          CorruptFileError: the file is damaged (see `interp.files.load_arrays`).
          ValueError: the file is not a decision tree.
        """
        tree = files.load_arrays(path)
        try:
            meta = json.loads(str(tree["meta"]))
            if meta.pop("format") != FORMAT:
                raise KeyError("format")
            return cls(**{name: tree[name] for name in _ARRAYS}, **{name: meta[name] for name in _STATIC})
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"path: {path} is not a decision tree written by DecisionTree.save "
                             f"({type(error).__name__}: {error})") from error


_ARRAYS = ("direction", "alpha", "bias", "parent", "leaf_image", "size", "gain", "scale", "gamma")
_STATIC = ("layer", "target", "score", "fingerprint", "complexity", "lasso")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TreeExplanation:
    """Images explained by a decision tree: each image's path and what each node on it predicts.

    Attributes:
      path: int [b, L] node ids from the root (depth 0) down to a leaf, the leaf repeated past its depth.
      similarity: float [b, L] cosine between the image's mode and each chosen node's weights.
      prediction: float [b, L] the score each node's mode predicts for the image, in the score's units.
      exact: the image's exact `Contributions` (its own mode).
      weights: float [b, L, D] the chosen nodes' weights `w_v`.
    """

    path: Any
    similarity: Any
    prediction: Any
    exact: Contributions
    weights: Any

    @property
    def norm(self) -> jax.Array:
        """[b] each image's mode norm `|g|`: the node modes predict `y / |g|`."""
        return jnp.linalg.norm(self.exact.mode, axis=-1)

    def rationale(self, depth: int = -1) -> jax.Array:
        """[b, D] filter contributions `|g| w_v * x` by the mode of the node at `depth` (default the leaf)."""
        return self.weights[:, depth] * self.exact.features * self.norm[:, None]

    def parts(self, parts: PartMatrix, depth: int = -1) -> jax.Array:
        """[b, P] part contributions `A (|g| w_v * x)` by the mode of the node at `depth`."""
        check_part_matrix(parts, self.exact.num_filters)
        return self.rationale(depth) @ jnp.asarray(parts.matrix, jnp.float32).T

    def agreement(self) -> jax.Array:
        """[L] per depth, the share of images whose predicted score has the network's sign.

        With `score="margin"` that is the share whose predicted class is the network's.
        """
        return (jnp.sign(self.prediction) == jnp.sign(self.exact.score)[:, None]).mean(0)

    def rationale_error(self) -> jax.Array:
        """[L] per depth, the mean relative L1 error `|rho_v - rho|_1 / |rho|_1` of the filter contributions."""
        exact = self.exact.filters
        estimated = self.weights * self.exact.features[:, None] * self.norm[:, None, None]
        error = jnp.abs(estimated - exact[:, None]).sum(-1) / jnp.maximum(jnp.abs(exact).sum(-1), 1e-12)[:, None]
        return error.mean(0)


def decision_tree(model: Any, layer: str, images: Any, target: int, *, labels: Any = None, scale: Any = None,
                  score: str = "margin", complexity: float = 1.0, lasso: float = 0.01,
                  batch_size: int = 64, progress: bool | None = None) -> DecisionTree:
    """Learns the decision tree of `target`'s decision modes at `layer` from its positive images.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: a spatial layer [b, h, w, D].
      images: [n, ...]; with `labels`, only those labelled `target` are used.
      target: the class explained.
      labels: int [n], optional.
      scale: [D] the filters' `s_d`; default their mean activation over the positive images.
      score: "margin" (default; its sign is the network's decision) or "logit".
      complexity: the objective's reward per merge (`lambda` of `-lambda |V|`).
      lasso: the Lasso's penalty per sqrt(image) on a node's filter selection.

    Raises:
      ValueError: no positive image, a non-spatial or unknown layer, bad weights, a score that
        does not depend on the layer.
    """
    model = nets.as_model(model)
    check_choice("score", score, SCORES)
    images = check_input(images, model.input_spec, "images")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels: expected int [{images.shape[0]}], one per image, got shape {list(labels.shape)}")
        positive = labels == target
        if not positive.any():
            raise ValueError(f"labels: no image is labelled {target}; a decision tree needs positive images of "
                             "the target class")
        images = images[np.flatnonzero(positive)]
    model.spatial_layer_shape(images, layer)
    if scale is None:
        scale = filter_scale(model, layer, images, batch_size=batch_size)
    modes = contributions(model, layer, images, int(target), scale=scale, score=score, batch_size=batch_size)
    grown = grow_tree(modes, complexity=complexity, lasso=lasso, progress=progress)
    return dataclasses.replace(grown, scale=jnp.asarray(scale, jnp.float32), layer=layer, target=int(target),
                               score=score, fingerprint=fingerprint(model.params))


def grow_tree(modes: Contributions, *, complexity: float = 1.0, lasso: float = 0.01,
              progress: bool | None = None) -> DecisionTree:
    """The tree of precomputed decision modes (one image per entry of `modes`, targets [n]).

    The model-free core of `decision_tree`: `modes.mode`, `.features`,
    `.score` and `.bias` are all it reads. The returned tree's model fields
    (layer, target, fingerprint) are blank.
    """
    if not np.isfinite(complexity) or complexity < 0:
        raise ValueError(f"complexity: expected a finite number >= 0, got {complexity}")
    if not np.isfinite(lasso) or lasso < 0:
        raise ValueError(f"lasso: expected a finite number >= 0, got {lasso}")
    g = np.asarray(modes.mode, np.float64)
    x = np.asarray(modes.features, np.float64)
    if g.ndim != 2 or x.shape != g.shape or not len(g):
        raise ValueError(f"modes: expected one mode and features [n, D] per image, n >= 1, got {list(g.shape)} "
                         f"and {list(x.shape)}")
    norm = np.linalg.norm(g, axis=1)
    if not (norm > 0).all():
        raise ValueError(f"modes: image(s) {np.flatnonzero(norm <= 0)[:5].tolist()} have a zero decision mode "
                         "(their score does not depend on the layer)")
    unit = g / norm[:, None]
    normalized = np.asarray(modes.score, np.float64) / norm
    gamma = 1.0 / max(np.abs(normalized).mean(), 1e-12)
    n, width = x.shape
    # In gamma units a node's squared error is relative to the typical score.
    sums = _Sums(gamma * x, gamma * np.asarray(modes.bias, np.float64) / norm, unit)
    fit = functools.partial(_fit, lasso=lasso)

    direction, alpha = np.zeros((2 * n, width)), np.ones((2 * n, width))
    direction[:n] = unit
    bias = np.zeros(2 * n)
    bias[:n] = np.asarray(modes.bias, np.float64) / norm
    parent = np.full(2 * n, -1)
    gain = np.full(2 * n, np.nan)
    error = np.zeros(2 * n)

    def merge_gain(pairs):
        found = fit(sums.pairs(pairs))[3]
        return complexity - 0.5 * (found - error[pairs[:, 0]] - error[pairs[:, 1]])

    active = list(range(n))
    first, second = np.triu_indices(n, 1)
    pair_gain = {} if n < 2 else dict(zip(zip(first.tolist(), second.tolist()),
                                          merge_gain(np.stack([first, second], 1)).tolist()))
    with bar(n - 1, desc="decision tree", unit="merge", progress=progress) as shown:
        while len(active) > 1:
            (i, j), best = max(pair_gain.items(), key=lambda item: item[1])
            if best <= 0:
                break
            node = sums.add([i, j])
            direction[node], alpha[node], bias[node], error[node] = (v[0] for v in fit(sums.nodes([node])))
            parent[[i, j]] = node
            gain[node] = best
            active = [k for k in active if k not in (i, j)]
            pair_gain = {key: value for key, value in pair_gain.items() if i not in key and j not in key}
            if active:
                pairs = np.asarray([(k, node) for k in active])
                pair_gain.update(zip(map(tuple, pairs.tolist()), merge_gain(pairs).tolist()))
            active.append(node)
            shown.update(1)
    if len(active) > 1:  # the root: one mode fitted to every image, over the children that remain
        node = sums.add(active)
        direction[node], alpha[node], bias[node], error[node] = (v[0] for v in fit(sums.nodes([node])))
        parent[active] = node
    root, count = len(sums) - 1, len(sums)
    bias[n:count] /= gamma
    # Renumber so that the root is node 0 and a parent comes before its children.
    order = _top_down(parent[:count], root)
    new_id = np.empty(count, np.int64)
    new_id[order] = np.arange(count)
    old_parent = parent[order]
    return DecisionTree(
        direction=jnp.asarray(direction[order], jnp.float32),
        alpha=jnp.asarray(alpha[order], jnp.float32),
        bias=jnp.asarray(bias[order], jnp.float32),
        parent=jnp.asarray(np.where(old_parent >= 0, new_id[np.maximum(old_parent, 0)], -1), jnp.int32),
        leaf_image=jnp.asarray(np.where(order < n, order, -1), jnp.int32),
        size=jnp.asarray(sums.count[order], jnp.int32),
        gain=jnp.asarray(gain[order], jnp.float32),
        scale=jnp.ones(width, jnp.float32),
        gamma=jnp.asarray(gamma, jnp.float32),
        layer="", target=-1, score="", fingerprint="", complexity=float(complexity), lasso=float(lasso))


def explain_predictions(tree: DecisionTree, model: Any, images: Any, *, batch_size: int = 64) -> TreeExplanation:
    """Each image's path through `tree`: from the root, the child whose weights are closest in cosine to its mode.

    Raises:
      ValueError: `tree` was learned from another model, or bad images.
    """
    model = nets.as_model(model)
    check_tree_model(tree, model.params)
    exact = contributions(model, tree.layer, images, tree.target, scale=tree.scale, score=tree.score,
                          batch_size=batch_size)
    return follow(tree, exact)


def follow(tree: DecisionTree, exact: Contributions) -> TreeExplanation:
    """`explain_predictions` for modes already computed (targets [n], the tree's scale)."""
    weights = tree.weights
    unit_weights = weights / np.maximum(np.linalg.norm(weights, axis=1, keepdims=True), 1e-12)
    mode = np.asarray(exact.mode, np.float64)
    unit = mode / np.maximum(np.linalg.norm(mode, axis=1, keepdims=True), 1e-12)
    kids = [tree.children(node) for node in range(tree.num_nodes)]
    paths, sims = [], []
    for image in range(len(unit)):
        node, path, sim = 0, [0], [float(unit_weights[0] @ unit[image])]
        while len(kids[node]):
            cos = unit_weights[kids[node]] @ unit[image]
            node = int(kids[node][np.argmax(cos)])
            path.append(node)
            sim.append(float(cos.max()))
        paths.append(path)
        sims.append(sim)
    return explanation_along(tree, exact, _pad_paths(paths), _pad_paths(sims))


def explanation_along(tree: DecisionTree, exact: Contributions, path: Any, similarity: Any = None) -> TreeExplanation:
    """The explanation of images by given paths (e.g. `tree.training_paths()` for the training images)."""
    path = np.asarray(path)
    weights = jnp.asarray(tree.weights[path])
    norm = jnp.linalg.norm(exact.mode, axis=-1)
    features = exact.features
    prediction = (jnp.einsum("bld,bd->bl", weights, features) + jnp.asarray(tree.bias)[path]) * norm[:, None]
    if similarity is None:
        unit = exact.mode / jnp.maximum(norm, 1e-12)[:, None]
        similarity = jnp.einsum("bld,bd->bl", weights, unit) / jnp.maximum(jnp.linalg.norm(weights, axis=-1), 1e-12)
    return TreeExplanation(jnp.asarray(path), jnp.asarray(similarity, jnp.float32), prediction, exact, weights)


def check_tree_model(tree: DecisionTree, params: Any, argument: str = "model") -> None:
    """Raises ValueError when `params` are not those of the model the tree was learned from."""
    if fingerprint(params) != tree.fingerprint:
        raise ValueError(f"{argument}: this decision tree was learned from another model (its parameters' sha256 "
                         f"{tree.fingerprint[:12]}... differs from this model's); learn a tree for this model, or "
                         "pass the model it was learned from")


def select_filters(direction: Any, energy: Any, agreement: Any, penalty: Any) -> np.ndarray:
    """The Lasso on a node's rationale: `argmin_{0 <= a <= 1} 1/2 sum_I |a * d * x_I - g_I * x_I|^2 + penalty |a|_1`.

    The rationale's residual is a sum over filters, so the problem splits into
    one per filter, each solved exactly by clipping:
    `a_d = clip((d_d A_d - penalty) / (d_d^2 E_d), 0, 1)` with the sums
    `E_d = sum_I x_Id^2` (`energy`) and `A_d = sum_I g_Id x_Id^2`
    (`agreement`); a filter silent on every image is dropped. Batched over
    leading axes.
    """
    direction, energy, agreement = (np.asarray(a, np.float64) for a in (direction, energy, agreement))
    curvature = direction ** 2 * energy
    pull = direction * agreement - np.asarray(penalty, np.float64)[..., None]
    return np.where(curvature > 0, np.clip(pull / np.where(curvature > 0, curvature, 1.0), 0.0, 1.0), 0.0)


class _Sums:
    """Per node, the sums its mode is fitted from; a merged node's sums are its children's added.

    count n; `energy` sum x^2, `agreement` sum g x^2, `exact` sum (g x)^2 per filter; sum b, sum b^2; sum of unit g.
    """

    def __init__(self, x, bias, unit):
        n, width = x.shape
        self.count, self.bias, self.bias_sq = np.zeros(2 * n), np.zeros(2 * n), np.zeros(2 * n)
        self.energy, self.agreement, self.exact, self.unit = (np.zeros((2 * n, width)) for _ in range(4))
        self.count[:n], self.bias[:n], self.bias_sq[:n] = 1, bias, bias ** 2
        self.energy[:n], self.agreement[:n], self.exact[:n] = x ** 2, unit * x ** 2, (unit * x) ** 2
        self.unit[:n] = unit
        self.size = n

    def __len__(self):
        return self.size

    def nodes(self, nodes) -> tuple:
        return tuple(getattr(self, f)[nodes] for f in _FIELDS)

    def pairs(self, pairs: np.ndarray) -> tuple:
        return tuple(getattr(self, f)[pairs[:, 0]] + getattr(self, f)[pairs[:, 1]] for f in _FIELDS)

    def add(self, children) -> int:
        for f in _FIELDS:
            getattr(self, f)[self.size] = getattr(self, f)[children].sum(0)
        self.size += 1
        return self.size - 1


_FIELDS = ("count", "energy", "agreement", "exact", "bias", "bias_sq", "unit")


def _fit(sums: tuple, *, lasso: float) -> tuple[np.ndarray, ...]:
    """Nodes' modes from their sums: direction, alpha, bias, and the squared error of their rationales."""
    count, energy, agreement, exact, bias, bias_sq, unit = sums
    direction = unit / np.maximum(np.linalg.norm(unit, axis=-1, keepdims=True), 1e-300)
    alpha = select_filters(direction, energy, agreement, lasso * np.sqrt(count))
    weights = alpha * direction
    error = (weights ** 2 * energy - 2 * weights * agreement + exact).sum(-1) + bias_sq - bias ** 2 / count
    return direction, alpha, bias / count, np.maximum(error, 0.0)


def _top_down(parent: np.ndarray, root: int) -> np.ndarray:
    """Node ids in breadth-first order from `root`."""
    order, frontier = [root], [root]
    while frontier:
        frontier = [int(k) for node in frontier for k in np.flatnonzero(parent == node)]
        order.extend(frontier)
    return np.asarray(order)


def _pad_paths(paths: list[list]) -> np.ndarray:
    length = max(len(p) for p in paths)
    return np.asarray([list(p) + [p[-1]] * (length - len(p)) for p in paths])
