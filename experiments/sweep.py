"""A sweep over training runs' checkpoints: `interp.sweep` on the command line.

    python -m experiments.sweep --config sweep_units --workdir runs/sweep_units [--set measure.steps=64]

The config (experiments/configs/sweep_*.py) is an `interp.sweep.Sweep` whose
models are training runs' workdirs (`experiments.train_classifier`, or
`make demo`'s runs/demo): `RUN` for its latest checkpoint, `RUN@STEP` for
one, `RUN@all` for every complete one. Each name is pinned to its step
before the sweep starts, so a run trained further is a config mismatch, not
a silent reuse of results from the older network. Each network is measured
on its run's held-out SynthParts stream.

Writes to the workdir: table.jsonl (one row per cell) and groups/ (each
cell's arrays and images; `interp.sweep.store`), summary.md (each row's
values averaged over the innermost axis: units, or seeds with their
spread), results.json and sweep.png. A rerun, after a kill at any moment,
skips the groups written.

On several hosts, start the same command on every host with `--distributed`
(SLURM, Cloud TPU: jax finds the rest) or `--coordinator HOST:PORT
--num-processes N --process-id I`, with a shared workdir: each process
measures its share of the groups on its own devices and process 0 writes
the table.
"""

import argparse
import dataclasses
import functools
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from experiments import common
from experiments.configs import TrainConfig
from interp import nets, sweep, viz
from interp import train as trainlib
from interp.files import CHECKSUMS, file_sha256


class RunCheckpoints:
    """Training runs' checkpoints as a sweep's models: `RUN@STEP` (see `pin`).

    A checkpoint's identity is the checksum of its manifest, so a run retrained into the same folder is
    measured again rather than read back from the groups of its former weights.
    """

    def describe(self, name: str) -> sweep.Description:
        run, step = _split(name)
        steps = _complete_steps(run)
        if step not in steps:
            raise ValueError(f"models: {name!r}: {run} has no complete checkpoint at step {step}; "
                             f"its steps: {', '.join(map(str, steps))}")
        config = _run_config(run)
        manifest = pathlib.Path(run) / "checkpoints" / str(step) / CHECKSUMS  # a checksum of every weight file
        return dataclasses.replace(_architecture(config.model, config.num_classes, config.image_size),
                                   identity=file_sha256(manifest))

    def load(self, name: str) -> sweep.Subject:
        run, step = _split(name)
        restored = common.restore(run, step=step)
        return sweep.Subject(restored.model, common.held_out(restored.config))


def pin(models: Sequence[str]) -> tuple[str, ...]:
    """Each name as `RUN@STEP`: `RUN` at its latest complete step, `RUN@all` at each of them.

    Raises:
      ValueError: naming a run that has no config.json or no complete checkpoint, or a malformed step.
    """
    pinned = []
    for name in models:
        run, at, step = name.rpartition("@") if "@" in name else (name, "", "")
        steps = _complete_steps(run)
        if not at:
            pinned.append(f"{run}@{steps[-1]}")
        elif step == "all":
            pinned.extend(f"{run}@{s}" for s in steps)
        elif step.isdigit():
            pinned.append(f"{run}@{int(step)}")
        else:
            raise ValueError(f"models: {name!r}: expected RUN, RUN@STEP or RUN@all")
    return tuple(pinned)


def _split(name: str) -> tuple[str, int]:
    run, at, step = name.rpartition("@")
    if not at or not step.isdigit():
        raise ValueError(f"models: expected RUN@STEP (see experiments.sweep.pin), got {name!r}")
    return run, int(step)


def _run_config(run: str) -> TrainConfig:
    path = pathlib.Path(run) / "config.json"
    if not path.exists():
        raise ValueError(f"models: {run!r} is not a training run ({path} not found)")
    return TrainConfig(**json.loads(path.read_text()))


def _complete_steps(run: str) -> list[int]:
    _run_config(run)
    checkpoints = trainlib.Checkpoints(pathlib.Path(run) / "checkpoints", every=1)
    try:
        steps = checkpoints.complete_steps()
    finally:
        checkpoints.close()
    if not steps:
        raise ValueError(f"models: {run!r} has no complete checkpoint")
    return steps


@functools.cache
def _architecture(model: str, num_classes: int, image_size: int) -> sweep.Description:
    """Layer shapes from the architecture alone: one abstract initialization per architecture, no weights."""
    model = jax.eval_shape(lambda: nets.create(model, num_classes, key=jax.random.key(0), input_size=image_size))
    return sweep.describe_model(model, image_size)


def summary(rows: Sequence[dict[str, Any]], measure: sweep.Measure) -> list[dict[str, Any]]:
    """Rows averaged over the measure's innermost axis (units, or seeds), numbers only; a seed axis adds spread."""
    innermost = measure.axes[-1]
    keys = [axis for axis in measure.axes if axis != innermost]
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(tuple(row[axis] for axis in keys), []).append(row)
    summaries = []
    for key, members in grouped.items():
        entry = dict(zip(keys, key), cells=len(members))
        for name, value in members[0].items():
            if name in measure.axes or name == "group" or isinstance(value, str):
                continue
            values = np.asarray([member[name] for member in members], np.float64)
            entry[name] = float(values.mean())
            if innermost == "seed":
                entry[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summaries.append(entry)
    return summaries


def markdown(entries: Sequence[dict[str, Any]], measure: sweep.Measure) -> str:
    keys = list(measure.axes[:-1])
    names = [name for name in entries[0] if name not in keys and not name.endswith("_std")]

    def cell(entry, name):
        if name == "cells":
            return str(entry[name])
        spread = f" ± {entry[name + '_std']:.3f}" if name + "_std" in entry else ""
        return f"{entry[name]:.3f}{spread}"

    return common.markdown_table([*keys, *names], [[str(entry[k]) for k in keys] + [cell(entry, n) for n in names]
                                                    for entry in entries], text_columns=len(keys))


def figure(rows: Sequence[dict[str, Any]], entries: Sequence[dict[str, Any]], sweep_config: sweep.Sweep,
           workdir: pathlib.Path):
    """The figure of a built-in measure's sweep: renders in a grid, detectors per layer, or each method's score
    over seeds; None for a measure of your own."""
    measure = sweep_config.measure
    if isinstance(measure, sweep.Render):
        store = sweep.Store(workdir)
        shown = rows[:64]
        images = np.stack([store.arrays(row)["image"] for row in shown])
        titles = [f"{r['layer']}:{r['unit']} s{r['seed']}" for r in shown]
        return viz.channel_grid(images, titles=titles, columns=8, note="Rendered units (first 64 cells); "
                                "title: layer:unit and seed.")
    if isinstance(measure, sweep.Dissect):
        return viz.metric_bars({(e["model"], e["layer"]): e["detector"] * e["cells"] for e in entries},
                               ylabel="detectors (IoU > threshold)")
    if not isinstance(measure, sweep.Attribution):
        return None  # a measure of your own: its table and summary, no figure
    metric = "mass_in_object"
    return viz.metric_bars({(e["model"], e["method"]): e[metric] for e in entries},
                           errors={(e["model"], e["method"]): e[f"{metric}_std"] for e in entries},
                           ylabel=f"{metric}, ± std over seeds")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    common.distributed_arguments(parser)
    common.config_arguments(parser, default=None)
    args = parser.parse_args(argv)
    config = common.config_from(args, sweep.Sweep)
    common.initialize_distributed(args)
    config = dataclasses.replace(config, models=pin(config.models))
    source = RunCheckpoints()
    workdir = pathlib.Path(args.workdir)
    rows = sweep.run(config, workdir, source, progress=args.progress,
                     force_new_config=args.force_new_config)
    if jax.process_index() != 0:
        return {}
    entries = summary(rows, config.measure)
    results = common.Results(workdir, config.as_json(), force_new_config=args.force_new_config)
    results.put("summary", entries)
    (workdir / "summary.md").write_text(markdown(entries, config.measure))
    drawn = figure(rows, entries, config, workdir)
    if drawn is not None:
        drawn.savefig(workdir / "sweep.png", dpi=120)
    print(markdown(entries, config.measure))
    return results.values


if __name__ == "__main__":
    main()
