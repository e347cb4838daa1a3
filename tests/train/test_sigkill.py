"""SIGKILL at any moment: a training subprocess killed during start-up, between checkpoints and during a
checkpoint write, then resumed, ends bit-identical to an uninterrupted run, its metrics one line per step.

The subprocess is this module run as a program (`python -m tests.train.test_sigkill WORKDIR`).
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import optax

from interp import sharding
from interp import train as trainlib
from tests.train.test_loop import BATCH, COLORS, TinyNet, assert_bit_identical

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS, CHECKPOINT_EVERY = 60, 10
TIMEOUT = 60  # seconds any one subprocess may take before the test fails


def train(workdir) -> trainlib.TrainState:
    """The run every process of the test trains: one device (a child's devices are the parent's), a line per step."""
    return trainlib.fit(TinyNet(), optax.adam(1e-2), COLORS, num_steps=STEPS, batch_size=BATCH, workdir=workdir,
                        shuffle=False, checkpoint_every=CHECKPOINT_EVERY, log_every=1,
                        mesh=sharding.data_mesh(jax.devices()[:1]), progress=False)


def start_training(workdir) -> subprocess.Popen:
    """`train(workdir)` in a subprocess with this process's environment (its XLA flags: the same devices)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "tests.train.test_sigkill", str(workdir)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(process: subprocess.Popen, condition, what: str) -> None:
    """Polls `condition()` every millisecond until it holds; fails if the process ends first or takes too long."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the training process ended ({process.returncode}) before {what}: "
                                 f"{process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {TIMEOUT} s")
        time.sleep(0.001)


def sigkill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(TIMEOUT) == -signal.SIGKILL


def committed_steps(workdir) -> list[int]:
    folder = workdir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def writing_steps(workdir) -> list[int]:
    """Steps being written: orbax writes `<step>.orbax-checkpoint-tmp*` and renames it when done."""
    folder = workdir / "checkpoints"
    names = [p.name for p in folder.iterdir()] if folder.exists() else []
    return [int(match[1]) for match in map(re.compile(r"(\d+)\..*tmp").match, names) if match]


def logged_steps(workdir) -> list[int]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_run(tmp_path):
    workdir = tmp_path / "killed"
    processes = []
    try:
        # During start-up: the lock is taken, nothing restored or compiled yet.
        processes.append(start_training(workdir))
        wait_for(processes[-1], lambda: (workdir / ".lock.0").exists() and (workdir / ".lock.0").read_text(),
                 "a lock held")
        sigkill(processes[-1])

        # Between checkpoints: step 10's committed and none in progress, steps past it logged (to be repeated).
        processes.append(start_training(workdir))
        wait_for(processes[-1], lambda: max(committed_steps(workdir), default=0) >= 10 and not writing_steps(workdir)
                 and max(logged_steps(workdir)) > max(committed_steps(workdir)), "a step logged past step 10")
        sigkill(processes[-1])

        # During a checkpoint write, caught before orbax commits it (a write takes tens of milliseconds).
        for _ in range(5):
            floor = max(committed_steps(workdir) + writing_steps(workdir))  # what earlier processes left
            processes.append(start_training(workdir))
            wait_for(processes[-1], lambda floor=floor: max(writing_steps(workdir), default=0) > floor,
                     f"a checkpoint past step {floor} being written")
            sigkill(processes[-1])
            if max(writing_steps(workdir), default=0) > floor:
                break
        else:
            raise AssertionError("5 kills all came after orbax had committed the checkpoint")
        assert max(committed_steps(workdir)) < STEPS

        processes.append(start_training(workdir))
        assert processes[-1].wait(TIMEOUT) == 0, processes[-1].stderr.read().decode()[-2000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()

    straight = train(tmp_path / "straight")
    assert_bit_identical(straight, train(workdir))  # resumes at STEPS: the state the subprocesses trained
    resumed, uninterrupted = (trainlib.read_metrics(w / "metrics.jsonl") for w in (workdir, tmp_path / "straight"))
    assert [(r["step"], r["split"], r["loss"]) for r in resumed] == [
        (r["step"], r["split"], r["loss"]) for r in uninterrupted]


if __name__ == "__main__":
    train(sys.argv[1])
