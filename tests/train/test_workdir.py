"""One writer per workdir: a second run fails at once naming the first; a killed holder leaves no lock."""

import os

import optax
import pytest

from interp import train as trainlib
from interp.train.loop import MetricsLog
from tests.train.test_loop import BATCH, COLORS, TinyNet
from tests.train.test_sigkill import STEPS, sigkill, start_training, train, wait_for


def test_a_second_run_on_a_busy_workdir_fails_naming_the_first_and_writes_nothing(tmp_path):
    first = start_training(tmp_path)
    try:
        wait_for(first, lambda: (tmp_path / "metrics.jsonl").exists(), "the first run's metrics")
        with pytest.raises(trainlib.WorkdirBusyError, match=f"in use by pid {first.pid} on {os.uname().nodename}"):
            train(tmp_path)
        sigkill(first)  # SIGKILL: the kernel drops its lock, nothing removes the file
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert (tmp_path / ".lock.0").exists()
    assert int(train(tmp_path).step) == STEPS
    steps = [(r["step"], r["split"]) for r in trainlib.read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == [(step, "train") for step in range(1, STEPS + 1)]


def test_holding_is_reentrant_in_a_process_and_released_after(tmp_path):
    with trainlib.hold_workdir(tmp_path), trainlib.hold_workdir(tmp_path):
        assert "pid" in (tmp_path / ".lock.0").read_text()
    assert (tmp_path / ".lock.0").read_text() == ""


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "split": "train", "loss": 1.0}\n{"step": 2, "split": "tr')
    MetricsLog(path, resume_step=5).write(2, "train", {"loss": 0.5})
    assert [r["step"] for r in trainlib.read_metrics(path)] == [1, 2]


@pytest.mark.parametrize("name,value", [("num_steps", 0), ("batch_size", 0), ("batch_size", -4), ("log_every", 0)])
def test_fit_rejects_non_positive_counts_by_name(tmp_path, name, value):
    counts = {"num_steps": 5, "batch_size": BATCH, "log_every": 5} | {name: value}
    with pytest.raises(ValueError, match=f"{name}: expected a positive int, got {value}"):
        trainlib.fit(TinyNet(), optax.adam(1e-2), COLORS, workdir=tmp_path, progress=False, **counts)
    assert not (tmp_path / "metrics.jsonl").exists()
