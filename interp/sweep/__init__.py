"""Sweeps: a grid of cells (networks or checkpoints x layers x units x methods x seeds) and a measure per cell.

    from interp import sweep
    grid = sweep.Sweep(sweep.Render(steps=128), models=("trained",), layers=("relu3",), seeds=(0,))
    rows = sweep.run(grid, "runs/sweep", sweep.InMemory({"trained": sweep.Subject(model, data)}))

The runner groups cells that share a compiled program into one vmapped,
mesh-sharded call, writes each group durably as it finishes, skips what is
written on a rerun (a kill loses at most the group in flight), and splits the
groups over the processes of a `jax.distributed` job. The table has one row
per cell and does not depend on the grouping: a cell measured alone gives
the same row. `python -m experiments.sweep --config NAME --workdir DIR` runs
a sweep config on training runs' checkpoints.
"""

from interp.sweep.grid import AXES, Description, Group, InMemory, ModelSource, Subject, describe_model
from interp.sweep.measures import ATTRIBUTION_METHODS, MEASURES, Attribution, CellResult, Dissect, Measure, Render
from interp.sweep.runner import Sweep, plan, run
from interp.sweep.store import TABLE, Store, read_table

__all__ = [
    "ATTRIBUTION_METHODS",
    "AXES",
    "MEASURES",
    "TABLE",
    "Attribution",
    "CellResult",
    "Description",
    "Dissect",
    "Group",
    "InMemory",
    "Measure",
    "ModelSource",
    "Render",
    "Store",
    "Subject",
    "Sweep",
    "describe_model",
    "plan",
    "read_table",
    "run",
]
