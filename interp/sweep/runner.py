"""`Sweep`, a grid as a config, and `run`, which measures it group by group, durably, on one host or many."""

import dataclasses
import functools
import pathlib
from typing import Any

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from interp import _progress, sharding
from interp.files import CorruptFileError, check_same_config, read_json, write_json
from interp.sweep.grid import AXES, Group, ModelSource, grid_cells, plan_groups
from interp.sweep.measures import Measure
from interp.sweep.store import Store
from interp.train.workdir import hold_workdir

# Each grid axis and the Sweep field that lists its values.
_FIELDS = {"model": "models", "layer": "layers", "method": "methods", "seed": "seeds", "unit": "units"}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A grid of cells and what to measure in each.

    The grid is the product of the axes the measure reads (`measure.axes`),
    nested in the order model, layer, method, seed, unit; the others must be
    empty. An empty `units` stands for every unit of each layer.

    Example, every unit of two layers of two checkpoints, rendered with two seeds:
      >>> Sweep(Render(steps=128), models=("runs/demo/train@500", "runs/demo/train"),
      ...       layers=("relu3", "relu4"), seeds=(0, 1))

    Attributes:
      measure: a `Measure` and its options (`Render`, `Dissect`, `Attribution`, or your own).
      models: names the `ModelSource` given to `run` resolves (for
        `experiments.sweep`, training runs' workdirs, `RUN@STEP` for a checkpoint).
      layers, units, methods, seeds: the other axes.
    """

    measure: Measure
    models: tuple[str, ...]
    layers: tuple[str, ...] = ()
    units: tuple[int, ...] = ()
    methods: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()

    def __post_init__(self):
        if not isinstance(self.measure, Measure):
            raise TypeError(f"measure: expected an interp.sweep Measure (Render, Dissect, Attribution, ...), "
                            f"got {type(self.measure).__name__}")
        kinds = {"models": str, "layers": str, "units": int, "methods": str, "seeds": int}
        for field, kind in kinds.items():
            values = getattr(self, field)
            if isinstance(values, (str, int)) or not all(isinstance(v, kind) and not isinstance(v, bool)
                                                         for v in values):
                raise TypeError(f"{field}: expected a tuple of {kind.__name__}s, got {values!r}")
            object.__setattr__(self, field, tuple(values))
            if len(set(values)) != len(values):
                raise ValueError(f"{field}: expected distinct values, got {values!r}")
            axis = next(a for a, f in _FIELDS.items() if f == field)
            if axis not in self.measure.axes and values:
                raise ValueError(f"{field}: {self.measure.name} has no {axis} axis (its axes: "
                                 f"{', '.join(self.measure.axes)}); leave {field} empty")
            if axis in self.measure.axes and axis != "unit" and not values:
                raise ValueError(f"{field}: {self.measure.name} needs at least one {axis}")

    def as_json(self) -> dict[str, Any]:
        """The sweep as the JSON its workdir stores (and compares a rerun's against)."""
        return {"measure": self.measure.name, "options": dataclasses.asdict(self.measure),
                **{field: list(getattr(self, field)) for field in _FIELDS.values()}}

    def axes(self) -> dict[str, tuple]:
        """`{axis: values}` of the axes the measure reads."""
        return {axis: getattr(self, _FIELDS[axis]) for axis in AXES if axis in self.measure.axes}


def plan(sweep: Sweep, models: ModelSource, mesh: Mesh | None = None) -> list[Group]:
    """The sweep's groups, in grid order, after every name it uses has been checked.

    Raises:
      ValueError: naming a model, layer, unit or method that does not exist, before any work.
    """
    mesh = _local_mesh(mesh)
    describe = functools.cache(models.describe)
    for model in sweep.models:
        describe(model)
    sweep.measure.check(sweep, describe, mesh)

    def units_of(model: str, layer: str) -> range:
        return range(describe(model).layers[layer][-1])

    cells = grid_cells(sweep.axes(), units_of)
    fingerprint = {"measure": sweep.measure.name, "options": dataclasses.asdict(sweep.measure)}
    return plan_groups(cells, sweep.measure.shared, sweep.measure.cells_per_call, fingerprint,
                       lambda model: describe(model).identity)


def run(sweep: Sweep, workdir: str | pathlib.Path, models: ModelSource, *, mesh: Mesh | None = None,
        progress: bool | None = None, force_new_config: bool = False) -> list[dict[str, Any]]:
    """Measures every cell of `sweep` not yet in `workdir`, writing each group as it finishes; returns the table.

    Cells that share a compiled program (the measure's `shared` axes) run as
    one call on `mesh`, at most `measure.cells_per_call` at a time, and each
    call's results are written as one group (see `interp.sweep.store`): a
    rerun, after a kill at any moment, skips the groups written and loses at
    most the one in flight. With several processes (`jax.distributed`), each
    measures every `process_count`-th group on its own devices; all wait for
    each other, and process 0 writes the one table. The workdir must be
    shared by the processes.

    Args:
      sweep: the grid and its measure.
      workdir: where the groups and the table are written (created).
      models: resolves the names of `sweep.models` (`InMemory`, `experiments.sweep.RunCheckpoints`).
      mesh: this process's devices to shard each call over (default: all of them, `jax.local_devices()`).
      progress: show a progress bar of cells (None: on a terminal; see `interp._progress`).
      force_new_config: replace a workdir written by another sweep config; the
        groups both configs share (same cells, same options) are kept.

    Returns:
      The rows of table.jsonl: each cell's coordinates and its measure's values, in grid order.

    Raises:
      ValueError: a name the networks lack, before any work (see `plan`).
      ConfigMismatchError: `workdir` holds another sweep's results and not `force_new_config`.
      CorruptFileError: a written group or sweep.json fails its checksum.
    """
    mesh = _local_mesh(mesh)
    groups = plan(sweep, models, mesh)
    workdir = pathlib.Path(workdir)
    with hold_workdir(workdir):
        _check_config(workdir, sweep, force_new_config)
        store = Store(workdir)
        store.remove_partial(everyone=False)
        mine = groups[jax.process_index()::jax.process_count()]
        todo = [group for group in mine if not store.done(group)]
        total = sum(len(group.cells) for group in mine)
        bar = _progress.bar(total, initial=total - sum(len(group.cells) for group in todo), unit="cell",
                            desc=f"sweep {sweep.measure.name}" + _of_processes(), progress=progress)
        loaded: tuple[str | None, Any] = (None, None)
        try:
            for group in todo:
                if loaded[0] != group.model:
                    loaded = (group.model, models.load(group.model))
                store.write(group, sweep.measure.measure(loaded[1], group.cells, mesh))
                bar.update(len(group.cells))
        finally:
            bar.close()
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"interp.sweep {workdir.resolve()}: every group written")
        rows = [{**row, "group": group.id} for group in groups for row in store.read(group)]
        if jax.process_index() == 0:
            store.write_table(rows)
            store.remove_others(groups)
            store.remove_partial(everyone=True)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"interp.sweep {workdir.resolve()}: table written")
    return rows


def _check_config(workdir: pathlib.Path, sweep: Sweep, force_new_config: bool) -> None:
    path = workdir / "sweep.json"
    config = sweep.as_json()
    if path.exists():
        try:
            stored = read_json(path)["config"]
        except CorruptFileError:
            if not force_new_config:
                raise
            stored = None
        if stored is not None:
            check_same_config(stored, config, path, force_new_config)
            if stored == config:
                return
    if jax.process_index() == 0:
        write_json(path, {"config": config})


def _local_mesh(mesh: Mesh | None) -> Mesh:
    if mesh is None:
        return sharding.data_mesh(jax.local_devices())
    sharding.check_mesh(mesh)
    if any(device.process_index != jax.process_index() for device in mesh.devices.flat):
        raise ValueError("mesh: expected this process's devices only (a sweep's processes measure different "
                         "groups, each on its own devices); use interp.sharding.data_mesh(jax.local_devices())")
    return mesh


def _of_processes() -> str:
    return f" (process 0 of {jax.process_count()})" if jax.process_count() > 1 else ""

