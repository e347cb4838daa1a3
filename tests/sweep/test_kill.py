"""SIGKILL a sweep during start-up, between groups and while a group is being written; the resumed sweep's
table and arrays equal an uninterrupted sweep's, and the half-written group is never read.

The subprocess is this module run as a program (`python -m tests.sweep.test_kill WORKDIR [--slow-write]`);
`--slow-write` pauses each group's write after its arrays, before its cells.json, so that a kill lands there.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from interp import nets, sweep
from interp.data import SynthParts
from tests.train.test_sigkill import ROOT, TIMEOUT, sigkill, wait_for

MODULE = nets.create_module("small_cnn", num_classes=4, channels=(8, 8, 8, 8))


def grid() -> tuple[sweep.Sweep, sweep.InMemory]:
    """Eight groups: 8 units of a layer in calls of 2, for two seeds."""
    model = nets.as_model(MODULE, MODULE.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    models = sweep.InMemory({"net": sweep.Subject(model, SynthParts(image_size=32, num_classes=4))})
    return sweep.Sweep(sweep.Render(steps=3, image_size=32, units_per_call=2), models=("net",), layers=("relu2",),
                       seeds=(0, 1)), models


def start_sweep(workdir, slow_write: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "tests.sweep.test_kill", str(workdir),
                             *(["--slow-write"] if slow_write else [])], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def written(workdir) -> list[str]:
    folder = workdir / "groups"
    return [p.name for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


def partial(workdir) -> list[pathlib.Path]:
    folder = workdir / "groups"
    return [p for p in folder.iterdir() if p.name.startswith(".partial.")] if folder.exists() else []


def everything(workdir) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The table, and every cell's arrays keyed by its coordinates."""
    rows = sweep.read_table(workdir)
    store = sweep.Store(workdir)
    return rows, {f"{row['seed']}/{row['unit']}": store.arrays(row)["image"] for row in rows}


def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_sweep(tmp_path):
    workdir = tmp_path / "killed"

    process = start_sweep(workdir)  # killed during start-up: nothing written yet
    time.sleep(0.3)
    sigkill(process)
    assert written(workdir) == []

    process = start_sweep(workdir)  # killed between groups
    wait_for(process, lambda: len(written(workdir)) >= 2, "two groups written")
    sigkill(process)
    between = set(written(workdir))
    assert 2 <= len(between) < 8

    process = start_sweep(workdir, slow_write=True)  # killed while a group's folder is half written
    wait_for(process, lambda: any((p / "arrays.npz").exists() for p in partial(workdir)), "a group half written")
    sigkill(process)
    half = partial(workdir)
    assert half and not (half[0] / "cells.json").exists()
    assert set(written(workdir)) == between  # the half-written group is not among the finished ones

    process = start_sweep(workdir)  # resumed to the end
    assert process.wait(TIMEOUT) == 0, process.stderr.read().decode()[-2000:]
    assert partial(workdir) == [] and len(written(workdir)) == 8

    reference = tmp_path / "uninterrupted"
    sweep_config, models = grid()
    sweep.run(sweep_config, reference, models, progress=False)
    rows, arrays = everything(workdir)
    expected_rows, expected_arrays = everything(reference)
    assert rows == expected_rows  # scores as JSON: bit for bit
    assert arrays.keys() == expected_arrays.keys()
    for name, image in expected_arrays.items():
        np.testing.assert_array_equal(arrays[name], image, err_msg=name)


def main(workdir: str, *flags: str) -> None:
    if "--slow-write" in flags:
        from interp.sweep import store

        save = store.save_arrays

        def slow_save(path, tree):
            save(path, tree)
            time.sleep(30)  # the parent kills the process here

        store.save_arrays = slow_save
    sweep_config, models = grid()
    sweep.run(sweep_config, workdir, models, progress=False)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main(*sys.argv[1:])
