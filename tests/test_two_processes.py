"""Two processes joined by `jax.distributed` (4 CPU devices each) compute what one process with 8 does.

Training (stopped, then resumed by both processes), a dissection and a `render_each` on the
2-process mesh are compared with the same calls in this process (`tests/conftest.py`: 8 CPU
devices), to float round-off; the checkpoints both processes wrote are complete and restore here.
The processes are `tests.multihost`, started by its `run_two_processes`.
"""

import json
import time

import jax
import numpy as np
import pytest

from interp import sharding, sweep
from interp import train as trainlib
from interp.files import CHECKSUMS
from tests import multihost

STOP, STEPS = 4, 8  # the first launch trains to STOP, the second resumes to STEPS
TIMEOUT = 240  # seconds for one launch; a typical one takes 30-90 s on two shared cores
# The meshes differ in how XLA splits the all-reduce, so sums may round differently in the last bits.
# 10 objectives are padded to fill the 8 devices, then gathered; 8 stay split over both processes.
RENDERS = [["render_each", "10"], ["render_each", "8"]]
ROUND_OFF = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return multihost.write_data(tmp_path_factory.mktemp("multihost") / "data.npz")


@pytest.fixture(scope="module")
def launches(data, tmp_path_factory):
    """Both launches' outputs, the run's workdir and its checkpoint steps after the first launch."""
    workdir = tmp_path_factory.mktemp("two_processes")
    sweep_dir = tmp_path_factory.mktemp("two_process_sweep")
    first = multihost.run_two_processes(
        [["train", data, str(workdir), str(STOP)], ["dissect", data], *RENDERS, ["sweep", str(sweep_dir)]], TIMEOUT)
    stopped_at = trainlib.Checkpoints(workdir / "checkpoints", every=1).complete_steps()
    second = multihost.run_two_processes([["train", data, str(workdir), str(STEPS)]], TIMEOUT)
    return {"first": first, "second": second, "workdir": workdir, "stopped_at": stopped_at, "sweep": sweep_dir}


def one_process(scenario, *args):
    assert jax.device_count() == multihost.NUM_PROCESSES * multihost.DEVICES_PER_PROCESS
    return multihost.SCENARIOS[scenario](sharding.data_mesh(), *args)


def assert_outputs_close(outputs, expected, **tolerance):
    for process, output in enumerate(outputs):
        assert output.keys() == expected.keys()
        for name in expected:
            np.testing.assert_allclose(output[name], expected[name], err_msg=f"process {process}: {name}",
                                       **tolerance)


def test_training_on_two_processes_equals_one_process(launches, data, tmp_path):
    expected = one_process("train", data, str(tmp_path), str(STOP))
    assert_outputs_close([p[0] for p in launches["first"]], expected, **ROUND_OFF)


def test_a_run_stopped_and_resumed_by_both_processes_equals_an_uninterrupted_one(launches, data, tmp_path):
    expected = one_process("train", data, str(tmp_path), str(STEPS))
    assert_outputs_close([p[0] for p in launches["second"]], expected, **ROUND_OFF)
    # Written by both processes, the checkpoints are whole: complete, pruned to the last 3, restorable here.
    every = multihost.TRAIN["checkpoint_every"]
    assert launches["stopped_at"] == [1, 2, 4][-3:] and STOP % every == 0
    folder = launches["workdir"] / "checkpoints"
    checkpoints = trainlib.Checkpoints(folder, every=every)
    assert checkpoints.complete_steps() == [4, 6, 8]
    assert sorted(p.name for p in folder.iterdir()) == ["4", "6", "8"]  # no temporary or incomplete folder
    manifest = json.loads((folder / "8" / CHECKSUMS).read_text())
    # Orbax names each process's files after its index: process 0's manifest covers both processes' shards.
    assert manifest["step"] == 8 and all(any(f"process_{i}/" in name for name in manifest["sha256"])
                                         for i in range(multihost.NUM_PROCESSES))
    # One metrics log for the run, one line per step, though both processes trained.
    steps = [r["step"] for r in trainlib.read_metrics(launches["workdir"] / "metrics.jsonl")]
    assert steps == list(range(1, STEPS + 1))


def test_a_dissection_on_two_processes_equals_one_process(launches, data):
    expected = one_process("dissect", data)
    for process, output in enumerate(p[1] for p in launches["first"]):
        assert output.keys() == expected.keys()
        for name, value in expected.items():
            if name.endswith(("/thresholds", "/iou")):
                np.testing.assert_allclose(output[name], value, err_msg=f"process {process}: {name}", **ROUND_OFF)
            else:  # counts, and the top images by index: integers, exactly equal
                np.testing.assert_array_equal(output[name], value, err_msg=f"process {process}: {name}")


@pytest.mark.parametrize("call", range(len(RENDERS)), ids=[f"{n}_objectives" for _, n in RENDERS])
def test_render_each_on_two_processes_equals_one_process(launches, call):
    expected = one_process(*RENDERS[call])
    assert expected["images"].shape[0] == int(RENDERS[call][1])
    assert_outputs_close([p[2 + call] for p in launches["first"]], expected, atol=1e-5)


def test_a_sweep_split_over_two_processes_gives_the_table_of_one(launches, tmp_path):
    expected = one_process("sweep", str(tmp_path))
    rows = json.loads(str(expected["table"]))
    written = sweep.read_table(launches["sweep"])
    split = {g.id: i % 2 for i, g in enumerate(sweep.plan(*multihost.sweep_grid()))}
    assert sorted(set(split.values())) == [0, 1] and len({r["group"] for r in rows}) == 4  # both had groups
    for output in (p[2 + len(RENDERS)] for p in launches["first"]):
        assert json.loads(str(output["table"])) == written  # every process returns the one table written
        without_scores = [{k: v for k, v in r.items() if k != "score"} for r in written]
        assert without_scores == [{k: v for k, v in r.items() if k != "score"} for r in rows]
        np.testing.assert_allclose(output["scores"], expected["scores"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(output["images"], expected["images"], atol=1e-4)


def test_a_failed_process_ends_both_and_both_stderrs_are_shown():
    start = time.monotonic()
    with pytest.raises(AssertionError, match="planted failure in process 1") as failure:
        multihost.run_two_processes([["fail", "1"]], TIMEOUT)
    assert time.monotonic() - start < TIMEOUT / 2  # ended at the failure, not at the timeout
    assert "--- process 0" in str(failure.value) and "--- process 1" in str(failure.value)
