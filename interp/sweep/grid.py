"""A sweep's grid: its axes, the networks it names, and the groups of cells that share one compiled call."""

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from interp import nets
from interp.data import SynthParts

AXES = ("model", "layer", "method", "seed", "unit")  # a cell's coordinates, outermost first


@dataclasses.dataclass(frozen=True)
class Subject:
    """What a sweep measures: a network, and the SynthParts stream (held out from its training) it is measured on."""

    model: nets.Model
    data: SynthParts


@dataclasses.dataclass(frozen=True)
class Description:
    """What a sweep's plan needs to know of a network without loading its weights.

    Attributes:
      layers: every named layer's per-example output shape, in execution order.
      image_size: the side of the square images it reads.
      identity: what its weights are, when the source knows (a checkpoint's checksum): part of each group's
        id, so a network retrained under the same name is measured again, not read back.
    """

    layers: Mapping[str, tuple[int, ...]]
    image_size: int
    identity: str | None = None


class ModelSource(Protocol):
    """The networks a sweep's `models` axis names: `experiments.sweep.RunCheckpoints`, `InMemory`, or your own."""

    def describe(self, name: str) -> Description:
        """The named network's layers, cheaply; raises `ValueError` naming `name` if there is none."""

    def load(self, name: str) -> Subject:
        """The named network with its weights, and its data."""


class InMemory:
    """Networks already in memory, by name: `InMemory({"trained": Subject(model, data), ...})`."""

    def __init__(self, subjects: Mapping[str, Subject]):
        self.subjects = dict(subjects)

    def describe(self, name: str) -> Description:
        subject = self._get(name)
        return describe_model(subject.model, subject.data.image_size)

    def load(self, name: str) -> Subject:
        return self._get(name)

    def _get(self, name: str) -> Subject:
        if name not in self.subjects:
            raise ValueError(f"models: no model named {name!r}; known: {', '.join(self.subjects)}")
        return self.subjects[name]


def describe_model(model: nets.Model, image_size: int) -> Description:
    """A `Description` of `model` from its traced layer shapes (no forward pass runs)."""
    sample = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return Description({name: tuple(shape.shape[1:]) for name, shape in model.layer_shapes(sample).items()},
                       image_size)


@dataclasses.dataclass(frozen=True)
class Group:
    """Cells measured in one compiled call and written together; `id` names their folder in the workdir."""

    id: str
    model: str
    cells: tuple[Mapping[str, Any], ...]


def plan_groups(cells: Sequence[Mapping[str, Any]], shared: Sequence[str], cells_per_call: int | None,
                fingerprint: Any, identity_of: Callable[[str], str | None]) -> list[Group]:
    """`cells` grouped by their values of the `shared` axes (first appearance first), each group cut into calls.

    A group's id hashes its cells, `fingerprint` (the measure and its
    options) and its network's `identity_of(model)`, so a changed option or
    network never reuses another's results.
    """
    by_key: dict[tuple, list[Mapping[str, Any]]] = {}
    for cell in cells:
        by_key.setdefault(tuple(cell[axis] for axis in shared), []).append(cell)
    groups = []
    for members in by_key.values():
        size = cells_per_call or len(members)
        for start in range(0, len(members), size):
            chunk = tuple(members[start:start + size])
            identity = identity_of(chunk[0]["model"])
            digest = hashlib.sha256(json.dumps([fingerprint, identity, chunk], sort_keys=True).encode()).hexdigest()
            groups.append(Group(digest[:20], chunk[0]["model"], chunk))
    return groups


def grid_cells(axes: Mapping[str, Sequence[Any]], units_of: Callable[[str, str], Sequence[int]]) -> list[dict]:
    """Every cell of the grid: the product of the given axes, nested in `AXES` order.

    An empty `unit` axis stands for every unit of the cell's layer, `units_of(model, layer)`.
    """
    outer = [axis for axis in AXES if axis in axes and axis != "unit"]
    cells = []
    for values in itertools.product(*(axes[axis] for axis in outer)):
        cell = dict(zip(outer, values))
        if "unit" not in axes:
            cells.append(cell)
            continue
        units = axes["unit"] or units_of(cell["model"], cell["layer"])
        cells.extend({**cell, "unit": int(unit)} for unit in units)
    return cells
