"""Mining an explanatory graph from a trained CNN, and inferring its nodes on new images.

    from interp import explain
    graph = explain.explanatory_graph(model, ["relu3", "relu4"], bird_images, negatives=other_images)
    found = explain.infer(graph, model, new_images)     # each node's place and score on each image
    found["relu4"].positions                             # [N, nodes, 2] in image pixels
    graph.save("graph.npz"); graph = explain.ExplanatoryGraph.load("graph.npz")

The defaults are the release's (zqs1022/explanatoryGraph, `getNetParameters.m`
for VGG-16), scaled to each layer's map size: nodes per filter
`ceil(h * w * density)`, 6 x 6 candidate places, a search half-range of
`0.3 * size / 2` cells, a first deformation of `0.15 * size`, 20 EM iterations
per layer, and each node's 15 parents among the 600 best nodes of the layer
above.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets, sharding
from interp._checks import check_choice, check_positive_int
from interp._progress import bar
from interp.data.stream import pass_indices
from interp.explain import _em
from interp.explain.graph import ExplanatoryGraph, GraphLayer, check_model, fingerprint

DENSITY = 0.1  # the release's density for VGG-16's conv5 layers (0.05 for conv4, whose maps are 4x larger)
ITERATIONS = 20
TOP_N, TOP_M = 15, 600


class NodeInference(NamedTuple):
    """A graph layer's nodes on a set of images.

    Attributes:
      positions: float32 [N, nodes, 2] each node's inferred place (row, col) in input pixels, in the image's
        own orientation (a node inferred on the mirrored image is mirrored back).
      scores: float32 [N, nodes] each node's score (its prob x prior summed over its candidates, over the
        mean on the training images): how strongly the node's pattern is there.
      cells: float32 [N, nodes, 2] the same places in map cells, in the orientation the graph chose.
      best: float32 [N, nodes] prob x prior at the best candidate (the release's inferredProb).
    """

    positions: np.ndarray
    scores: np.ndarray
    cells: np.ndarray
    best: np.ndarray


class Inference(NamedTuple):
    """The graph on a set of images: `layers[name]` per graph layer, and the orientation chosen per image."""

    layers: dict[str, NodeInference]
    flipped: np.ndarray  # bool [N]: the mirrored image explained the image better

    def __getitem__(self, name: str) -> NodeInference:
        if name not in self.layers:
            raise ValueError(f"layer: no graph layer {name!r}; the graph's layers: {', '.join(self.layers)}")
        return self.layers[name]


def explanatory_graph(model: Any, layers: str | Sequence[str], images: Any, *, negatives: Any = None,
                      density: float | Sequence[float] = DENSITY, iterations: int = ITERATIONS,
                      num_candidates: int = 6, max_range: float = 0.3, deform_ratio: float = 3.0,
                      init_delta: float = 0.15, map_delta: float = 0.025, valid_tau: float = 0.1,
                      top_n: int = TOP_N, top_m: int = TOP_M, eta: float = 1.0, flip: bool = True,
                      init: str = "peaks", batch_size: int = 64,
                      mesh: jax.sharding.Mesh | None = None, key: jax.Array | None = None,
                      progress: bool | None = None) -> ExplanatoryGraph:
    """Mines the explanatory graph of `model`'s `layers` from the images of one category, with no annotations.

    Top-down, the top layer first: each layer's nodes are fit by `iterations`
    EM steps over all images, each node's parents chosen in the layer above
    by how well their shifts agree with its own.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layers: one or more spatial layers ([b, h, w, C]); their graph layers follow the model's order.
      images: float [N, H, W, 3] the images of one category (N >= the nodes per filter, and >= 2).
      negatives: float [M, H, W, 3] images of other categories, whose per-unit std normalizes each layer's
        activations (the release's); None uses `images`' own.
      density: nodes per filter are `ceil(h * w * density)`; one value, or one per layer.
      iterations: EM iterations per layer.
      num_candidates: candidate places per axis (at most the map's size).
      max_range, deform_ratio, init_delta, map_delta, valid_tau: the release's `search_.maxRange`,
        `search_.deform_ratio`, `deform_.init_delta`, `map_delta` (shares of the map's size) and `validTau`.
      top_n, top_m: each node's parents, chosen among the `top_m` best nodes of the layer above.
      eta: the step size of the node places.
      init: where each filter's nodes start: "peaks" on the filter's strongest cells on average over the
        images, each keeping its search range to itself (a departure: a node only sees its own window, so
        a pattern no random node starts near is never found); "random" on random cells (the release's).
      flip: explain each image or its mirror, whichever the top layer's nodes fit better (the release's
        choice, for objects seen facing either way); False reads every image as it is.
      batch_size: images per compiled step (memory is bounded by it; divisible by the mesh's size).
      mesh: shard each step's images over this mesh (`interp.sharding.data_mesh()`); None runs on one device.
      key: chooses the nodes' first places; None uses `jax.random.key(0)`.
      progress: show a progress bar (None: on a terminal).

    Returns:
      The `ExplanatoryGraph`.

    Raises:
      ValueError: a layer is unknown or not spatial; `images` is empty, not finite, or fewer than a
        filter's nodes; a setting is out of range.
    """
    model = nets.as_model(model)
    images = _check_images(images, "images")
    negatives = images if negatives is None else _check_images(negatives, "negatives")
    if negatives.shape[1:] != images.shape[1:]:
        raise ValueError(f"negatives: expected images of shape {list(images.shape[1:])} like `images`, got "
                         f"{list(negatives.shape[1:])}")
    names = _check_layers(model, layers, images)
    densities = _per_layer(density, len(names), "density")
    iterations = check_positive_int("iterations", iterations)
    batch_size = check_positive_int("batch_size", batch_size)
    top_n, top_m = check_positive_int("top_n", top_n), check_positive_int("top_m", top_m)
    if not 0 < max_range <= 1 or not 0 < init_delta or not 0 < map_delta or not 0 <= valid_tau:
        raise ValueError("max_range must be in (0, 1], init_delta and map_delta > 0, valid_tau >= 0; got "
                         f"{max_range}, {init_delta}, {map_delta}, {valid_tau}")
    key = jax.random.key(0) if key is None else key
    check_choice("init", init, ("peaks", "random"))
    fields = nets.receptive_fields(model, jnp.asarray(images[:1]))
    features = _features(model, names, images, batch_size, mesh, progress)
    scales = {name: _scale(stats) for name, stats in _moments(model, names, negatives, batch_size, mesh).items()}

    settings = dict(num_candidates=num_candidates, max_range=max_range, deform_ratio=deform_ratio,
                    init_delta=init_delta, map_delta=map_delta, valid_tau=valid_tau)
    built: dict[str, GraphLayer] = {}
    upper: tuple[GraphLayer, _Record] | None = None
    flips = None if flip else np.zeros(images.shape[0], bool)
    with bar(len(names) * iterations, desc="explanatory graph", unit="iteration", progress=progress) as shown:
        for index in reversed(range(len(names))):
            name = names[index]
            x, x_flipped = (f / scales[name] for f in features[name])
            layer = _initial_layer(name, x.shape[1:], densities[index], fields[name], scales[name], **settings)
            seeds = _peak_seeds(x, layer) if init == "peaks" else _random_cells(jax.random.fold_in(key, index), layer)
            layer = dataclasses.replace(layer, coord=jnp.asarray(seeds))
            if x.shape[0] < layer.num_patterns:
                raise ValueError(f"images: {x.shape[0]} images are fewer than the {layer.num_patterns} nodes per "
                                 f"filter of layer {name!r}; pass more images or a smaller density")
            layer, record, flips = _fit_layer(layer, x, x_flipped, flips, upper, iterations=iterations,
                                              top_n=top_n, top_m=top_m, eta=eta, batch_size=batch_size,
                                              mesh=mesh, shown=shown)
            built[name] = layer
            upper = (layer, record)
    return ExplanatoryGraph(tuple(built[name] for name in names), tuple(images.shape[1:]),
                            fingerprint(model.params), flip)


def infer(graph: ExplanatoryGraph, model: Any, images: Any, *, batch_size: int = 64,
          mesh: jax.sharding.Mesh | None = None, progress: bool | None = None) -> Inference:
    """Each graph node's place and score on new `images`, top-down as the graph was mined.

    The top layer chooses each image's orientation (the image or its mirror,
    whichever its nodes explain better); the layers below read the image in
    that orientation, each node expecting the shift its parents show.

    Args:
      graph: an `ExplanatoryGraph` mined from `model`.
      model: the model it was mined from.
      images: float [N, H, W, 3].
      batch_size, mesh, progress: as `explanatory_graph`.

    Raises:
      ValueError: `model` is not the model the graph was mined from; `images` is empty, not finite or
        not of the graph's image shape.
    """
    model = nets.as_model(model)
    check_model(graph, model.params)
    images = _check_images(images, "images")
    if tuple(images.shape[1:]) != tuple(graph.image_shape):
        raise ValueError(f"images: the graph was mined on images of shape {list(graph.image_shape)}, got "
                         f"{list(images.shape[1:])}")
    batch_size = check_positive_int("batch_size", batch_size)
    features = _features(model, graph.layer_names, images, batch_size, mesh, progress)
    found: dict[str, NodeInference] = {}
    flips = None if graph.flip else np.zeros(images.shape[0], bool)
    upper = None
    for layer in reversed(graph.layers):
        x, x_flipped = (f / np.asarray(layer.scale) for f in features[layer.name])
        # a layer mined in one iteration never chose parents: its nodes expect no shift, as in that iteration
        terms = None if upper is None or layer.parents.shape[1] == 0 else _parent_terms_fn(layer, *upper)
        stats, flips = _e_pass(layer, layer.coord, layer.deform, x, x_flipped, flips, terms, batch_size, mesh)
        record = _Record.of(stats, layer)
        found[layer.name] = _node_inference(layer, record, flips, graph.image_shape)
        upper = (layer, record.positions)
    return Inference({layer.name: found[layer.name] for layer in graph.layers}, flips)


# ----------------------------------------------------------------------------------------------- the EM


class _Record(NamedTuple):
    """A layer's nodes on the training images after an E-step, node-major [N, C * P]."""

    positions: np.ndarray  # [N, L, 2] cells
    mass: np.ndarray  # [N, L]
    best: np.ndarray  # [N, L]

    @classmethod
    def of(cls, stats: _em.ImageStats, layer: GraphLayer) -> _Record:
        n = stats.mass.shape[0]
        return cls(np.asarray(stats.position).reshape(n, layer.num_nodes, 2),
                   np.asarray(stats.mass).reshape(n, layer.num_nodes),
                   np.asarray(stats.best).reshape(n, layer.num_nodes))


def _peak_seeds(x: np.ndarray, layer: GraphLayer) -> np.ndarray:
    """float32 [C, P, 2] each filter's nodes seeded on its strongest cells on average over the images, each
    suppressing the cells within its search half-range; left-over nodes go to the emptiest cells left."""
    mean = np.maximum(x, 0).mean(axis=0)  # [h, w, C]
    h, w, channels = mean.shape
    reach = math.floor(min(layer.config.half_range_cap, layer.init_delta * layer.config.deform_ratio) + 0.5)
    rows, cols = np.mgrid[:h, :w]
    seeds = np.zeros((channels, layer.num_patterns, 2), np.float32)
    for c in range(channels):
        strength = mean[..., c].astype(np.float64).copy()
        taken = np.zeros((h, w), bool)
        for p in range(layer.num_patterns):
            free = np.where(taken, -np.inf, strength)
            r, q = np.unravel_index(np.argmax(free), free.shape)
            seeds[c, p] = r, q
            taken[r, q] = True
            near = (np.abs(rows - r) <= reach) & (np.abs(cols - q) <= reach)
            strength = np.where(near, -1.0, strength)  # suppressed cells come after every unsuppressed one
    return seeds


def _random_cells(key: jax.Array, layer: GraphLayer) -> np.ndarray:
    """float32 [C, P, 2]: initializeModel.m's first places, distinct random cells per filter."""
    h, w = layer.config.map_shape
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())
    cells = np.stack([rng.permutation(h * w)[:layer.num_patterns] for _ in range(layer.num_channels)])
    return np.stack([cells // w, cells % w], axis=-1).astype(np.float32)


def _initial_layer(name, map_shape, density, field, scale, *, num_candidates, max_range, deform_ratio,
                   init_delta, map_delta, valid_tau) -> GraphLayer:
    """initializeModel.m: a layer whose nodes all have the first deformation (their places are set after)."""
    h, w, channels = map_shape
    size = math.sqrt(h * w)  # the release's maps are square; this is their side
    patterns = math.ceil(h * w * density)
    if patterns > h * w:
        raise ValueError(f"density: {density} gives {patterns} nodes per filter on the {h}x{w} map of {name!r}, "
                         "more than its cells; expected density <= 1")
    coord = jnp.zeros((channels, patterns, 2), jnp.float32)
    config = _em.LayerConfig(
        num_patterns=patterns, num_candidates=min(num_candidates, h, w),
        max_half_range=math.floor(max_range * size / 2 + 0.5),  # MATLAB's round of a positive number
        half_range_cap=max_range * size / 2, deform_ratio=deform_ratio, map_delta=map_delta * size,
        valid_tau=valid_tau, map_shape=(h, w))
    field_tuple = (*field.start, *field.stride, *field.size)
    return GraphLayer(coord=coord, deform=jnp.full((channels, patterns), init_delta * size, jnp.float32),
                      scale=jnp.asarray(scale), mean_position=jnp.zeros((channels * patterns, 2), jnp.float32),
                      parents=jnp.zeros((channels * patterns, 0), jnp.int32), score_norm=jnp.float32(1),
                      name=name, config=config, field=tuple(float(v) for v in field_tuple),
                      init_delta=init_delta * size)


def _deform_bounds(layer: GraphLayer) -> tuple[float, float]:
    """getNetParameters.m: the deformation std lies in [max / 10, max], max = 1 / sqrt(density) cells."""
    h, w = layer.config.map_shape
    density = layer.num_patterns / (h * w)
    largest = 1.0 / math.sqrt(density)
    return largest / 10, largest


def _fit_layer(layer, x, x_flipped, flips, upper, *, iterations, top_n, top_m, eta, batch_size, mesh, shown):
    """The iterations of learn_explanatoryGraph.m on one layer; returns (layer, its record, the orientations)."""
    is_top = upper is None
    min_deform, max_deform = _deform_bounds(layer)
    candidates = upper_deviation = None
    if not is_top:
        upper_layer, upper_record = upper
        candidates = _em.parent_candidates(upper_record.positions, upper_record.mass,
                                           upper_layer.config.map_shape, top_m)
        if len(candidates) < 1:
            raise ValueError(f"layers: no node of {upper_layer.name!r} moves enough to be a parent of "
                             f"{layer.name!r}'s nodes; mine more images")
        upper_mean = upper_record.positions.mean(axis=0)
        upper_deviation = upper_record.positions - upper_mean[None]
    coord, deform, record, parents = layer.coord, layer.deform, None, None
    for iteration in range(1, iterations + 1):
        terms = None
        if not is_top and iteration > 1:
            deviation = (record.positions - record.positions.mean(axis=0)[None]) * layer.stride
            picked = _em.choose_parents(jnp.asarray(deviation),
                                        jnp.asarray(upper_deviation[:, candidates] * upper_layer.stride),
                                        jnp.asarray(record.best), min(top_n, len(candidates)))
            parents = candidates[np.asarray(picked)]
            with_parents = dataclasses.replace(layer, parents=jnp.asarray(parents, jnp.int32))
            terms = _parent_terms_fn(with_parents, upper_layer, upper_record.positions,
                                     upper_mean=upper_mean)
        stats, chosen = _e_pass(layer, coord, deform, x, x_flipped, flips, terms, batch_size, mesh)
        record = _Record.of(stats, layer)
        # minDelta: the smallest expected deformation (the parents' std does not depend on the image)
        delta = layer.init_delta if terms is None else float(np.min(terms(np.arange(1))[1]))
        step = eta * (delta / iteration**0.25) ** 2
        totals = jax.tree.map(lambda a: jnp.sum(a, axis=0), stats)
        half_range = _em.half_ranges(deform, layer.config)
        coord, deform = _em.m_step(coord, deform, half_range, totals, step=step, min_deform=min_deform,
                                   max_deform=max_deform, num_candidates=layer.config.num_candidates)
        shown.update(1)
    flips = chosen
    mass = record.mass
    fitted = dataclasses.replace(
        layer, coord=coord, deform=deform, mean_position=jnp.asarray(record.positions.mean(axis=0), jnp.float32),
        parents=jnp.asarray(layer.parents if parents is None else parents, jnp.int32),
        score_norm=jnp.float32(mass.mean()))
    return fitted, record, flips


def _parent_terms_fn(layer: GraphLayer, upper_layer: GraphLayer, upper_positions: np.ndarray, *,
                     upper_mean: np.ndarray | None = None):
    """`terms(rows) -> (mu, delta, lam)` for images `rows`: the parents' expectations, in this layer's cells."""
    mean = np.asarray(upper_layer.mean_position) if upper_mean is None else upper_mean
    ratio = upper_layer.stride / layer.stride
    deviation = (upper_positions - mean[None]) * ratio
    parents = jnp.asarray(layer.parents)
    upper_deform = jnp.asarray(upper_layer.deform).reshape(-1) * ratio

    def terms(rows):
        found = _em.parent_terms(parents, jnp.asarray(deviation[rows]), upper_deform)
        return tuple(np.asarray(t) for t in found)

    return terms


def _e_pass(layer, coord, deform, x, x_flipped, flips, terms, batch_size, mesh):
    """One E-step over all images, in compiled chunks: (ImageStats stacked [N, ...], orientations bool [N])."""
    n = x.shape[0]
    choose = flips is None
    parts, chosen = [], []
    size = _chunk(batch_size, n, mesh)
    for padded, valid in pass_indices(n, size):
        channels, patterns = layer.num_channels, layer.num_patterns
        if terms is None:
            mu = np.zeros((size, channels, patterns, 2), np.float32)
            delta = np.full((size, channels, patterns), layer.init_delta, np.float32)
            lam = np.ones((size, channels, patterns), np.float32)
        else:
            mu, delta, lam = terms(padded)
            mu = mu.reshape(size, channels, patterns, 2)
            delta, lam = delta.reshape(size, channels, patterns), lam.reshape(size, channels, patterns)
        flip = np.zeros(size, bool) if choose else flips[padded]
        batch = (x[padded], x_flipped[padded], flip, mu, delta, lam)
        if mesh is not None:
            batch = sharding.shard_batch({str(i): a for i, a in enumerate(batch)}, mesh)
            batch = tuple(batch[str(i)] for i in range(6))
        stats, flip = _e_chunk(coord, deform, *batch, config=layer.config, choose=choose)
        kept = int(valid.sum())
        parts.append(jax.tree.map(lambda a, kept=kept: np.asarray(a)[:kept], stats))
        chosen.append(np.asarray(flip)[:kept])
    stats = jax.tree.map(lambda *a: np.concatenate(a), *parts)
    return stats, np.concatenate(chosen)


def _chunk(batch_size: int, n: int, mesh) -> int:
    size = min(batch_size, n)
    if mesh is not None:
        devices = mesh.devices.size
        size = -(-size // devices) * devices
    return size


@functools.partial(jax.jit, static_argnames=("config", "choose"))
def _e_chunk(coord, deform, x, x_flipped, flip, mu, delta, lam, *, config: _em.LayerConfig, choose: bool):
    half_range = _em.half_ranges(deform, config)

    def one(x, x_flipped, flip, mu, delta, lam):
        centres = coord + mu
        if choose:
            plain = _em.evidence(x, centres, delta, lam, half_range, config)
            mirrored = _em.evidence(x_flipped, centres, delta, lam, half_range, config)
            flip = _em.flip_evidence(plain) < _em.flip_evidence(mirrored)
            e = jax.tree.map(lambda a, b: jnp.where(flip, b, a), plain, mirrored)
        else:
            e = _em.evidence(jnp.where(flip, x_flipped, x), centres, delta, lam, half_range, config)
        return _em.image_stats(e, delta, config.valid_tau), flip

    return jax.vmap(one)(x, x_flipped, flip, mu, delta, lam)


# ------------------------------------------------------------------------------------- features and checks


def _node_inference(layer: GraphLayer, record: _Record, flips: np.ndarray, image_shape) -> NodeInference:
    pixels = layer.to_pixels(record.positions)
    width = image_shape[1]
    mirrored = pixels.copy()
    mirrored[..., 1] = width - 1 - pixels[..., 1]
    pixels = np.where(flips[:, None, None], mirrored, pixels)
    score_norm = float(layer.score_norm)
    return NodeInference(pixels.astype(np.float32), (record.mass / score_norm).astype(np.float32),
                         record.positions.astype(np.float32), record.best.astype(np.float32))


@functools.partial(jax.jit, static_argnames="layers")
def _activations(model, images, layers):
    acts = model.activations(jnp.concatenate([images, jnp.flip(images, axis=2)]), layers)
    n = images.shape[0]
    return {name: (a[:n], a[n:]) for name, a in acts.items()}


def _features(model, names, images, batch_size, mesh, progress) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each layer's activations on the images and on their mirrors, on the host: {name: ([N, h, w, C]) * 2}."""
    n = images.shape[0]
    size = _chunk(batch_size, n, mesh)
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in names}
    with bar(n, desc="features", unit="image", progress=progress) as shown:
        for padded, valid in pass_indices(n, size):
            for name, (plain, mirrored) in _activations(model, _device_batch(images[padded], mesh),
                                                         tuple(names)).items():
                out[name][0].append(np.asarray(plain)[valid])
                out[name][1].append(np.asarray(mirrored)[valid])
            shown.update(int(valid.sum()))
    found = {name: (np.concatenate(a), np.concatenate(b)) for name, (a, b) in out.items()}
    for name, (plain, _) in found.items():
        if not np.isfinite(plain).all():
            raise ValueError(f"model: layer {name!r} has non-finite activations on these images")
    return found


def _device_batch(images: np.ndarray, mesh) -> jax.Array:
    """A chunk of images on the device, or sharded over the mesh's devices."""
    return jnp.asarray(images) if mesh is None else jax.device_put(images, sharding.batch_sharding(mesh))


@functools.partial(jax.jit, static_argnames="layers")
def _plain_activations(model, images, layers):
    return model.activations(images, layers)


def _moments(model, names, images, batch_size, mesh) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Per unit, the sum and the sum of squares of each layer's activations over `images`."""
    sums: dict[str, Any] = {}
    n = images.shape[0]
    size = _chunk(batch_size, n, mesh)
    for padded, valid in pass_indices(n, size):
        for name, a in _plain_activations(model, _device_batch(images[padded], mesh), tuple(names)).items():
            a = np.asarray(a, np.float64)[valid]
            s, q = sums.get(name, (0.0, 0.0))
            sums[name] = (s + a.sum(0), q + (a**2).sum(0))
    return {name: (s, q, n) for name, (s, q) in sums.items()}


def _scale(moments) -> np.ndarray:
    """The per-unit std (getRoughCNN.m's sqrtvar_layer), floored at 1% of the layer's mean std so that a unit
    silent on every negative image does not divide by zero."""
    total, squares, n = moments
    std = np.sqrt(np.maximum(squares / n - (total / n) ** 2, 0.0))
    floor = 0.01 * std.mean() if std.mean() > 0 else 1.0
    return np.maximum(std, floor).astype(np.float32)


def _check_images(images: Any, argument: str) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"{argument}: expected images [N, H, W, channels], got shape {list(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{argument}: the category is empty (0 images)")
    if not np.isfinite(images).all():
        raise ValueError(f"{argument}: has NaN or infinite values")
    return images


def _check_layers(model: nets.Model, layers: str | Sequence[str], images: np.ndarray) -> tuple[str, ...]:
    names = (layers,) if isinstance(layers, str) else tuple(layers)
    if not names:
        raise ValueError("layers: expected at least one layer name")
    probe = jax.ShapeDtypeStruct((1, *images.shape[1:]), jnp.float32)
    order = model.layer_names(probe)
    for name in names:
        if name not in order:
            raise ValueError(f"layers: unknown layer {name!r}; known layers: {', '.join(order)}")
        model.spatial_layer_shape(probe, name, "layers")
    return tuple(sorted(set(names), key=order.index))


def _per_layer(value, count: int, argument: str) -> tuple[float, ...]:
    values = (value,) * count if np.isscalar(value) else tuple(value)
    if len(values) != count or not all(0 < float(v) <= 1 for v in values):
        raise ValueError(f"{argument}: expected one value in (0, 1], or one per layer ({count}), got {value!r}")
    return tuple(float(v) for v in values)
