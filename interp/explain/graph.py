"""The explanatory graph as data: a pytree of arrays per layer, saved to and loaded from `.npz`.

A graph layer stands for one conv layer. Its nodes are the patterns each
filter was split into (`num_patterns` per channel, node `c * P + p`), each with
a place on the map and a deformation; its edges point from each node to its
parents in the layer above, whose shifts predict the node's shift.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any

import jax
import numpy as np

from interp import files
from interp.explain._em import LayerConfig

FORMAT = "interp.explanatory_graph/1"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GraphLayer:
    """One layer of an explanatory graph.

    Attributes:
      coord: float32 [C, P, 2] each node's place (row, col) in map cells, 0-based.
      deform: float32 [C, P] each node's deformation std in cells.
      scale: float32 [h, w, C] what the layer's activations are divided by (their std over the negative images).
      mean_position: float32 [C * P, 2] each node's mean inferred place on the training images (in the
        orientation chosen for each), what a child reads its parents' shifts against.
      parents: int32 [C * P, T] each node's parents, indices into the nodes of the layer above (T = 0 at the top).
      score_norm: float32 [] the mean score of a node on the training images; scores are divided by it.
      name: the layer's `tap` name.
      config: the EM's static settings (`interp.explain._em.LayerConfig`).
      field: the receptive field (start_h, start_w, stride_h, stride_w, size_h, size_w) in input pixels.
      init_delta: the deformation std (cells) of a node with no parents.
    """

    coord: Any
    deform: Any
    scale: Any
    mean_position: Any
    parents: Any
    score_norm: Any
    name: str = dataclasses.field(metadata=dict(static=True))
    config: LayerConfig = dataclasses.field(metadata=dict(static=True))
    field: tuple[float, ...] = dataclasses.field(metadata=dict(static=True))
    init_delta: float = dataclasses.field(metadata=dict(static=True))

    @property
    def num_channels(self) -> int:
        return int(self.coord.shape[0])

    @property
    def num_patterns(self) -> int:
        return int(self.coord.shape[1])

    @property
    def num_nodes(self) -> int:
        return self.num_channels * self.num_patterns

    def node_channel(self, node: Any) -> Any:
        """The filter (channel) a node was split from."""
        return np.asarray(node) // self.num_patterns

    def to_pixels(self, cells: Any) -> np.ndarray:
        """[..., 2] map cells (row, col) to input pixels: the centre of the unit's receptive field."""
        start_h, start_w, stride_h, stride_w, size_h, size_w = self.field
        cells = np.asarray(cells, np.float64)
        return np.stack([start_h + cells[..., 0] * stride_h + (size_h - 1) / 2,
                         start_w + cells[..., 1] * stride_w + (size_w - 1) / 2], axis=-1)

    @property
    def stride(self) -> float:
        """Input pixels per cell (the mean of the two axes')."""
        return (self.field[2] + self.field[3]) / 2


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ExplanatoryGraph:
    """An explanatory graph mined from one model's layers (`explain.explanatory_graph`).

    Attributes:
      layers: the graph layers, bottom to top (the model's order).
      image_shape: the (H, W, channels) of the images it was mined on.
      fingerprint: the sha256 of the model's parameters, checked when the graph is used with a model.
      flip: each image is read in the orientation (as it is, or mirrored) its top layer fits better.
    """

    layers: tuple[GraphLayer, ...]
    image_shape: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))
    fingerprint: str = dataclasses.field(metadata=dict(static=True))
    flip: bool = dataclasses.field(default=True, metadata=dict(static=True))

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def layer(self, name: str) -> GraphLayer:
        """The graph layer of the model layer `name`.

        Raises:
          ValueError: no graph layer has that name; the message lists those that do.
        """
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"layer: the graph has no layer {name!r}; its layers: {', '.join(self.layer_names)}")

    def save(self, path: str | pathlib.Path) -> None:
        """Writes the graph to the `.npz` file `path` (checksummed, no pickle)."""
        tree: dict[str, Any] = {"meta": np.array(json.dumps({
            "format": FORMAT, "image_shape": list(self.image_shape), "fingerprint": self.fingerprint,
            "flip": self.flip,
            "layers": [{"name": layer.name, "config": layer.config._asdict(), "field": list(layer.field),
                        "init_delta": layer.init_delta} for layer in self.layers]}))}
        for i, layer in enumerate(self.layers):
            tree[f"layer{i}"] = {name: np.asarray(getattr(layer, name)) for name in _ARRAYS}
        files.save_arrays(path, tree)

    @classmethod
    def load(cls, path: str | pathlib.Path) -> ExplanatoryGraph:
        """The graph `save` wrote to `path`.

        Raises:
          CorruptFileError: the file is damaged (see `interp.files.load_arrays`).
          ValueError: the file is not an explanatory graph.
        """
        tree = files.load_arrays(path)
        try:
            meta = json.loads(str(tree["meta"]))
            if meta["format"] != FORMAT:
                raise KeyError("format")
            layers = []
            for i, spec in enumerate(meta["layers"]):
                config = spec["config"]
                config["map_shape"] = tuple(config["map_shape"])
                arrays = {name: tree[f"layer{i}"][name] for name in _ARRAYS}
                layers.append(GraphLayer(**arrays, name=spec["name"], config=LayerConfig(**config),
                                         field=tuple(spec["field"]), init_delta=spec["init_delta"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"path: {path} is not an explanatory graph written by ExplanatoryGraph.save "
                             f"({type(error).__name__}: {error})") from error
        return cls(tuple(layers), tuple(meta["image_shape"]), meta["fingerprint"], bool(meta["flip"]))


_ARRAYS = ("coord", "deform", "scale", "mean_position", "parents", "score_norm")


def fingerprint(params: Any) -> str:
    """sha256 of a model's parameters (their tree structure, shapes, dtypes and bytes)."""
    digest = hashlib.sha256(str(jax.tree.structure(params)).encode())
    for leaf in jax.tree.leaves(params):
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def check_model(graph: ExplanatoryGraph, params: Any, argument: str = "model") -> None:
    """Raises ValueError when `params` are not those of the model the graph was mined from."""
    if fingerprint(params) != graph.fingerprint:
        raise ValueError(f"{argument}: this explanatory graph was mined from another model (its parameters' "
                         f"sha256 {graph.fingerprint[:12]}... differs from this model's); mine a graph for this "
                         "model, or pass the model it was mined from")
