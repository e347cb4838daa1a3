"""What a sweep measures in each cell, and how cells share one compiled call.

A measure is a frozen dataclass of options (part of the sweep's config) with
three class attributes, a property and two methods:

  * `name`: how configs and the results table name it;
  * `axes`: the grid axes it reads (`interp.sweep.grid.AXES`);
  * `shared`: the axes whose values a compiled call fixes; cells that agree on
    them are measured together (every unit of a layer in one `render_each`,
    every layer of a network in one dissection pass, every seed of a method
    in one vmapped call);
  * `cells_per_call`: at most this many cells per call (None: a whole group),
    which bounds memory; each call's results are written as one group;
  * `check(sweep, describe, mesh)`: raises before any work for names the
    networks lack (layers, units, methods);
  * `measure(subject, cells, mesh)`: one `CellResult` per cell, in order.

Each cell's result must not depend on which other cells share its call (the
sweep's grouping is invisible in its table): keys are drawn from a cell's own
coordinates, never from its position in a call.
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from interp import attribution as attr
from interp import featviz, metrics, sharding
from interp.dissect import QUANTILE, SynthPartsConcepts, dissect
from interp.dissect.result import DETECTOR_IOU
from interp.sweep.grid import Description, Subject
from interp.viz import heatmap

__all__ = ["ATTRIBUTION_METHODS", "Attribution", "CellResult", "Dissect", "Measure", "Render"]


@dataclasses.dataclass(frozen=True)
class CellResult:
    """One cell's row values (JSON scalars), its arrays, and optionally an image [H, W, 3] in [0, 1] for a PNG."""

    values: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    image: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Measure:
    """Base of every measure (see the module docstring)."""

    name: ClassVar[str]
    axes: ClassVar[tuple[str, ...]]
    shared: ClassVar[tuple[str, ...]]

    @property
    def cells_per_call(self) -> int | None:
        """At most this many cells per call and per written group (None: a whole group at once)."""
        return None

    def check(self, sweep: Any, describe: Callable[[str], Description], mesh: Mesh) -> None:
        """Raises `ValueError` naming what the sweep asks for and the networks lack."""

    def measure(self, subject: Subject, cells: Sequence[Mapping[str, Any]], mesh: Mesh) -> list[CellResult]:
        raise NotImplementedError


def _check_positive(measure: Measure, *names: str) -> None:
    for name in names:
        value = getattr(measure, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{measure.name}.{name}: expected a positive int, got {value!r}")


def _check_layers(sweep: Any, describe: Callable[[str], Description], spatial: bool) -> None:
    for model in sweep.models:
        layers = describe(model).layers
        for layer in sweep.layers:
            if layer not in layers:
                raise ValueError(f"layers: {model!r} has no layer {layer!r}; its layers: {', '.join(layers)}")
            if spatial and len(layers[layer]) != 3:
                raise ValueError(f"layers: {layer!r} of {model!r} is not a spatial layer [h, w, c]; "
                                 f"its shape is {list(layers[layer])}")
            channels = layers[layer][-1]
            outside = [u for u in sweep.units if not 0 <= u < channels]
            if outside:
                raise ValueError(f"units: {outside} are not units of {layer!r} of {model!r} "
                                 f"(it has {channels}, 0..{channels - 1})")


@dataclasses.dataclass(frozen=True)
class Render(Measure):
    """Feature visualization of every (layer, unit): `featviz.render_each` of `channel(layer, unit)`.

    With `transforms, starts = split(key(seed))`, a cell's render is
    `make_render(channel(layer, unit), ...)(model, transforms, fold_in(starts, unit))`:
    the same whichever units share its call.
    Row: `score`, the objective at the last step. Arrays: `image` [H, W, 3].

    Attributes:
      steps: optimization steps.
      image_size: side of the rendered image (Fourier, decorrelated color).
      learning_rate: Adam's step size.
      units_per_call: at most this many units per call (bounds memory).
    """

    name: ClassVar[str] = "render"
    axes: ClassVar[tuple[str, ...]] = ("model", "layer", "seed", "unit")
    shared: ClassVar[tuple[str, ...]] = ("model", "layer", "seed")
    steps: int = 128
    image_size: int = 64
    learning_rate: float = 0.05
    units_per_call: int = 64

    def __post_init__(self):
        _check_positive(self, "steps", "image_size", "units_per_call")
        if not self.learning_rate > 0:
            raise ValueError(f"render.learning_rate: expected a positive float, got {self.learning_rate!r}")

    @property
    def cells_per_call(self) -> int:
        return self.units_per_call

    def check(self, sweep, describe, mesh):
        _check_layers(sweep, describe, spatial=False)

    def measure(self, subject, cells, mesh):
        layer, seed = cells[0]["layer"], cells[0]["seed"]
        units = _pad_to_devices(np.asarray([cell["unit"] for cell in cells], np.int32), mesh)
        key = jax.random.key(seed)
        starts = jax.random.split(key)[1]
        init_keys = jax.vmap(lambda unit: jax.random.fold_in(starts, unit))(jnp.asarray(units))
        rendering = _render_program(self, layer, mesh)(subject.model, units, key, init_keys)
        images = np.asarray(rendering.images[:len(cells), -1, 0])
        scores = np.asarray(rendering.scores[:len(cells), -1, 0])
        return [CellResult({"score": float(score)}, {"image": image}, image) for image, score in zip(images, scores)]


@functools.cache
def _render_program(measure: Render, layer: str, mesh: Mesh) -> Callable:
    """One compiled render per layer and mesh, reused by every group of a sweep (the network is an argument)."""
    run = featviz.make_render_each(lambda unit: featviz.channel(layer, unit), param=featviz.image(measure.image_size),
                                   steps=measure.steps, optimizer=optax.adam(measure.learning_rate))
    split, whole = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    return _placed(jax.jit(run, in_shardings=(whole, split, whole, split), out_shardings=split),
                   (whole, split, whole, split))


def _placed(program: Callable, shardings: tuple) -> Callable:
    """`program` with its arguments put on their shardings first: host arrays may not be passed to a sharded
    program once `jax.distributed` runs, even on this process's own devices."""
    return lambda *args: program(*jax.device_put(args, shardings))


def _pad_to_devices(values: np.ndarray, mesh: Mesh) -> np.ndarray:
    """`values` with its last entry repeated up to a multiple of the mesh's devices (the extra results are dropped)."""
    missing = -len(values) % mesh.devices.size
    return np.concatenate([values, np.repeat(values[-1:], missing)])


@dataclasses.dataclass(frozen=True)
class Dissect(Measure):
    """Network Dissection of every unit: all layers of a network in one pass over held-out SynthParts.

    Row: the unit's best `concept`, its `category`, `iou` and whether it is a
    `detector`. Arrays: `iou` [C], its IoU with every concept.

    Attributes:
      images: held-out images dissected (the first `images` of the network's stream).
      batch_size: images per step (a multiple of the mesh's devices).
      quantile, convention, upsampling, iou_threshold: as in `interp.dissect.dissect`.
    """

    name: ClassVar[str] = "dissect"
    axes: ClassVar[tuple[str, ...]] = ("model", "layer", "unit")
    shared: ClassVar[tuple[str, ...]] = ("model",)
    images: int = 256
    batch_size: int = 64
    quantile: float = QUANTILE
    convention: str = "category"
    upsampling: str = "receptive_field"
    iou_threshold: float = DETECTOR_IOU

    def __post_init__(self):
        _check_positive(self, "images", "batch_size")

    def check(self, sweep, describe, mesh):
        _check_layers(sweep, describe, spatial=True)
        if self.batch_size % mesh.devices.size:
            raise ValueError(f"dissect.batch_size: expected a multiple of the mesh's {mesh.devices.size} devices, "
                             f"got {self.batch_size}")

    def measure(self, subject, cells, mesh):
        layers = list(dict.fromkeys(cell["layer"] for cell in cells))
        data = SynthPartsConcepts(subject.data, num_examples=self.images)
        dissections = dissect(subject.model, data, layers, quantile=self.quantile, convention=self.convention,
                              upsampling=self.upsampling, iou_threshold=self.iou_threshold,
                              batch_size=self.batch_size, mesh=mesh)
        results = []
        for cell in cells:
            layer = dissections[cell["layer"]]
            category, concept, iou = (part[cell["unit"]] for part in layer.best)
            results.append(CellResult({
                "concept": layer.concepts.names[concept], "category": layer.concepts.categories[category],
                "iou": float(iou), "detector": bool(iou > layer.iou_threshold)},
                {"iou": layer.iou[cell["unit"]].astype(np.float32)}))
        return results


def _methods() -> dict[str, Callable[["Attribution", str], Callable]]:
    """`name -> (options, cam_layer) -> attribute(model, x, target, key)`, the network an argument."""
    def keyless(build):
        return lambda options, layer: (lambda model, x, target, key: build(options, model, layer)(x, target))

    def smooth_grad(options, layer):
        samples = options.smooth_samples
        return lambda model, x, target, key: attr.smooth_grad(attr.saliency(model), samples=samples)(x, target, key=key)

    window = lambda o: (o.occlusion_window,) * 2  # noqa: E731
    return {
        "saliency": keyless(lambda o, m, _: attr.saliency(m)),
        "gradient_x_input": keyless(lambda o, m, _: attr.gradient_x_input(m)),
        "integrated_gradients": keyless(lambda o, m, _: attr.integrated_gradients(m, steps=o.ig_steps)),
        "smooth_grad": smooth_grad,
        "grad_cam": keyless(lambda o, m, layer: attr.grad_cam(m, layer)),
        "grad_cam_plus_plus": keyless(lambda o, m, layer: attr.grad_cam_plus_plus(m, layer)),
        "guided_backprop": keyless(lambda o, m, _: attr.guided_backprop(m)),
        "deconvnet": keyless(lambda o, m, _: attr.deconvnet(m)),
        "guided_grad_cam": keyless(lambda o, m, layer: attr.guided_grad_cam(m, layer)),
        "occlusion": keyless(lambda o, m, _: attr.occlusion(m, window=window(o),
                                                            stride=tuple(max(w // 2, 1) for w in window(o)))),
    }


ATTRIBUTION_METHODS = tuple(_methods())
_LAYERED = ("grad_cam", "grad_cam_plus_plus", "guided_grad_cam")


@dataclasses.dataclass(frozen=True)
class Attribution(Measure):
    """Attribution methods scored on SynthParts' object masks, many seeds of a method in one vmapped call.

    Seed s explains the true class of held-out images `s * images ... (s + 1) * images - 1`
    and draws SmoothGrad's noise from `key(s)`. Row: `mass_in_object` (share
    of |attribution| on the object) and `pointing_game` (whether the peak is
    on it), means over the seed's images. Arrays: `maps` [n, H, W] (|values|
    summed over channels, at the image's size).

    Attributes:
      images: images per seed (a multiple of the mesh's devices).
      cam_layer: the layer the CAM methods read ("" for the network's last spatial layer).
      ig_steps: integrated gradients' path points.
      smooth_samples: SmoothGrad's noisy copies.
      occlusion_window: occlusion's square window (stride half of it).
      seeds_per_call: at most this many seeds per call (0: all of a method's seeds at once).
    """

    name: ClassVar[str] = "attribution"
    axes: ClassVar[tuple[str, ...]] = ("model", "method", "seed")
    shared: ClassVar[tuple[str, ...]] = ("model", "method")
    images: int = 16
    cam_layer: str = ""
    ig_steps: int = 32
    smooth_samples: int = 16
    occlusion_window: int = 8
    seeds_per_call: int = 0

    def __post_init__(self):
        _check_positive(self, "images", "ig_steps", "smooth_samples", "occlusion_window")
        if isinstance(self.seeds_per_call, bool) or not isinstance(self.seeds_per_call, int) or self.seeds_per_call < 0:
            raise ValueError(f"attribution.seeds_per_call: expected an int >= 0, got {self.seeds_per_call!r}")

    @property
    def cells_per_call(self) -> int | None:
        return self.seeds_per_call or None

    def check(self, sweep, describe, mesh):
        unknown = [m for m in sweep.methods if m not in ATTRIBUTION_METHODS]
        if unknown:
            raise ValueError(f"methods: unknown {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(ATTRIBUTION_METHODS)}")
        if self.images % mesh.devices.size:
            raise ValueError(f"attribution.images: expected a multiple of the mesh's {mesh.devices.size} devices, "
                             f"got {self.images}")
        if self.cam_layer and any(m in _LAYERED for m in sweep.methods):
            for model in sweep.models:
                layers = describe(model).layers
                if len(layers.get(self.cam_layer, ())) != 3:
                    raise ValueError(f"attribution.cam_layer: {model!r} has no spatial layer {self.cam_layer!r}; "
                                     f"its spatial layers: {', '.join(n for n, s in layers.items() if len(s) == 3)}")

    def measure(self, subject, cells, mesh):
        method = cells[0]["method"]
        # Padded to a whole call, so a sweep's last, shorter call reuses the compiled program.
        seeds = np.asarray([cell["seed"] for cell in cells])
        seeds = np.concatenate([seeds, np.repeat(seeds[-1:], (self.cells_per_call or len(seeds)) - len(seeds))])
        indices = seeds[:, None] * self.images + np.arange(self.images)
        # One flat batch (the generator's compiled program), then [seeds, images, ...].
        batch = subject.data.batch(jnp.asarray(indices.reshape(-1), jnp.int32))
        batch = jax.tree.map(lambda a: a.reshape(indices.shape + a.shape[1:]), batch)
        layer = self.cam_layer or _last_spatial_layer(subject)
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
        maps = _attribution_program(self, method, layer, mesh)(subject.model, batch["image"], batch["label"], keys)
        masks = batch["object_mask"]
        mass = jax.vmap(lambda m, mask: metrics.mass_in_mask(m, mask, mode="abs"))(maps, masks)
        hits = jax.vmap(lambda m, mask: metrics.pointing_game(m, mask, tolerance=0.0))(maps, masks)
        maps, mass, hits = np.asarray(maps), np.asarray(mass), np.asarray(hits)
        return [CellResult({"mass_in_object": float(mass[i].mean()), "pointing_game": float(hits[i].mean())},
                           {"maps": maps[i]}, _heat(maps[i][0]))
                for i in range(len(cells))]


@functools.cache
def _attribution_program(measure: Attribution, method: str, layer: str, mesh: Mesh) -> Callable:
    """`(model, images [S, n, ...], labels [S, n], keys [S]) -> maps [S, n, H, W]`, compiled once per method."""
    attribute = _methods()[method](measure, layer)
    per_image = NamedSharding(mesh, PartitionSpec(None, sharding.AXIS))  # each seed's images split over devices
    whole = sharding.replicated(mesh)

    def maps(model, images, labels, keys):
        return jax.vmap(lambda x, t, k: _pixel_map(attribute(model, x, t, k), x.shape[1:3]))(images, labels, keys)

    shardings = (whole, per_image, per_image, whole)
    return _placed(jax.jit(maps, in_shardings=shardings, out_shardings=per_image), shardings)


def _pixel_map(attribution: jax.Array, size: tuple[int, int]) -> jax.Array:
    return metrics.pixel_map(attribution, size, reduce="abs")


def _last_spatial_layer(subject: Subject) -> str:
    sample = jax.ShapeDtypeStruct((1, subject.data.image_size, subject.data.image_size, 3), jnp.float32)
    return [name for name, shape in subject.model.layer_shapes(sample).items() if len(shape.shape) == 4][-1]


def _heat(values: np.ndarray) -> np.ndarray:
    return matplotlib.colormaps["inferno"](heatmap(values))[..., :3]


MEASURES: dict[str, type[Measure]] = {m.name: m for m in (Render, Dissect, Attribution)}
