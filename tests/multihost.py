"""Several hosts on one machine: two JAX processes joined by `jax.distributed`, and what they compute.

    outputs = run_two_processes([["train", data, str(workdir), "4"], ["render_each"]], timeout=120)
    outputs[1][0]["['conv1']['kernel']"]   # process 1's result of the first call, as arrays

`run_two_processes(calls, timeout)` starts `python -m tests.multihost PROCESS_ID PORT OUT CALLS`
twice, each process with 4 forced CPU devices, joined through a coordinator on a free loopback
port into one 8-device mesh (`interp.sharding.data_mesh()`). Each process runs every call
`[SCENARIO, *ARGS]` in order, as `SCENARIOS[SCENARIO](mesh, *ARGS)`, and saves the returned
`{name: array}` to `OUT/<process id>.<call>.npz`; a result sharded over both processes is made
whole by the scenario (`fetch`). A test runs the same scenario in its own process, with the 8
forced devices of `tests/conftest.py`, and compares. One launch runs several calls, because
starting and joining two processes and compiling in each costs tens of seconds on two cores.

A new scenario is a function `(mesh, *args: str) -> dict[str, np.ndarray]` added to `SCENARIOS`.
"""

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from interp import dissect, nets, sharding, sweep
from interp import featviz as fv
from interp import train as trainlib
from interp.data import SynthParts

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_PROCESSES, DEVICES_PER_PROCESS = 2, 4

# Shared by the scenarios and the tests that run them in one process.
SYNTH = SynthParts(seed=0, image_size=32, num_classes=6)
DATA = {"train_examples": 64, "concept_examples": 40}  # 40 concept images: two batches of 16 and a ragged one
TRAIN = {"batch_size": 16, "checkpoint_every": 2}
DISSECT = {"layers": ("relu2", "relu3"), "batch_size": 16}
RENDER = {"layer": "relu3", "steps": 8, "size": 24}

Outputs = dict[str, np.ndarray]


def free_port() -> int:
    """A loopback port no socket holds now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(calls: list[list[str]], timeout: float) -> list[list[Outputs]]:
    """Runs `calls` (each `[SCENARIO, *ARGS]`) in two joined processes; `outputs[process][call]`.

    Both processes are one new process group, killed whole when either fails or `timeout` seconds
    pass, so a process waiting on its peer (in the coordinator or a collective) cannot outlive the test.

    Raises:
      AssertionError: a process failed or the time ran out; the message holds both processes' stderr.
    """
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS} "
                         "--xla_backend_optimization_level=0")  # as tests/conftest.py compiles
    command = [sys.executable, "-m", "tests.multihost"]
    port = str(free_port())
    with tempfile.TemporaryDirectory() as out:
        logs = [tempfile.TemporaryFile() for _ in range(NUM_PROCESSES)]
        processes = []
        for i, log in enumerate(logs):
            group = processes[0].pid if processes else 0  # 0: the first process leads a new group
            processes.append(subprocess.Popen([*command, str(i), port, out, json.dumps(calls)], cwd=ROOT, env=env,
                                              stdout=subprocess.DEVNULL, stderr=log, process_group=group))
        failure = _wait_all(processes, timeout)
        if failure:
            with contextlib.suppress(ProcessLookupError):  # both may have ended already
                os.killpg(processes[0].pid, signal.SIGKILL)
            for process in processes:
                process.wait()
            stderr = [log.seek(0) or log.read().decode(errors="replace")[-4000:] for log in logs]
            raise AssertionError(f"{calls}: {failure}\n" + "\n".join(
                f"--- process {i} (exit {p.returncode}) stderr:\n{text}"
                for i, (p, text) in enumerate(zip(processes, stderr, strict=True))))
        return [[dict(np.load(pathlib.Path(out) / f"{i}.{c}.npz")) for c in range(len(calls))]
                for i in range(NUM_PROCESSES)]


def _wait_all(processes: list[subprocess.Popen], timeout: float) -> str | None:
    """Waits for every process; what went wrong (one failed, or the time ran out), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [p.poll() for p in processes]
        if any(code not in (None, 0) for code in codes):
            return f"a process failed (exit codes {codes})"
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.1)
    return f"still running after {timeout} s (killed)"


def fetch(tree: Any) -> Any:
    """`tree`'s arrays as NumPy, whole on every process, also those sharded over several processes."""

    def whole(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(whole, tree)


class Examples:
    """A batch source over arrays in memory (`{name: [n, ...]}`), such as those `write_data` writes.

    The processes read the test's data instead of generating SynthParts themselves, which would
    compile its generator once in each process (about 20 s on two shared cores).
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def batch(self, indices) -> Any:
        return {name: a[np.asarray(indices)] for name, a in self.arrays.items()}


class Concepts(Examples):
    """`Examples` of `SYNTH`'s concept images, batched as `dissect.SynthPartsConcepts` batches them."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__(arrays)
        like = dissect.SynthPartsConcepts(SYNTH, num_examples=len(self))
        self.concepts, self.image_size, self.seg_size = like.concepts, like.image_size, like.seg_size

    def batch(self, indices) -> dissect.ConceptBatch:
        return dissect.ConceptBatch(**super().batch(indices))


def write_data(path: pathlib.Path) -> str:
    """Writes the scenarios' data to `path` (.npz): examples ('train/...'), concept images ('concepts/...')."""
    examples = SYNTH.batch(jnp.arange(DATA["train_examples"]))
    concepts = dissect.SynthPartsConcepts(SYNTH, num_examples=DATA["concept_examples"])
    concept_batch = concepts.batch(np.arange(len(concepts)))
    np.savez(path, **{f"train/{k}": np.asarray(examples[k]) for k in ("image", "label")},
             **{f"concepts/{k}": np.asarray(v) for k, v in concept_batch._asdict().items()})
    return str(path)


def read_data(path: str, prefix: str) -> dict[str, np.ndarray]:
    """The arrays `write_data` saved under `prefix`, without it."""
    with np.load(path) as saved:
        return {name.removeprefix(prefix): saved[name] for name in saved.files if name.startswith(prefix)}


def train(mesh, data: str, workdir: str, num_steps: str) -> Outputs:
    """`fit` of a SmallCNN to `num_steps` (resuming from `workdir`) on `data`'s examples; its parameters by path."""
    state = trainlib.fit(nets.create_module("small_cnn", num_classes=6), optax.adam(2e-3),
                         Examples(read_data(data, "train/")), num_steps=int(num_steps),
                         batch_size=TRAIN["batch_size"], workdir=workdir, checkpoint_every=TRAIN["checkpoint_every"],
                         log_every=1, mesh=mesh, progress=False)
    leaves = jax.tree_util.tree_flatten_with_path(fetch(state.params))[0]
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def dissection(mesh, data: str) -> Outputs:
    """`dissect` of a random-init SmallCNN over `data`'s concept images: thresholds, counts, IoU, top images."""
    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0))
    result = dissect.dissect(model, Concepts(read_data(data, "concepts/")), DISSECT["layers"],
                             batch_size=DISSECT["batch_size"], mesh=mesh)
    arrays = {}
    for layer, r in result.items():
        arrays.update({f"{layer}/thresholds": r.thresholds, f"{layer}/iou": r.iou, f"{layer}/top_images": r.top_images})
        arrays.update({f"{layer}/{field}": np.asarray(getattr(r.counts, field)) for field in dissect.Counts._fields})
    return arrays


def rendering(mesh, channels: str) -> Outputs:
    """`render_each` of the first `channels` channels of a layer of a random-init SmallCNN: images and scores.

    A count that is not a multiple of the mesh's devices is padded and its result gathered whole onto
    every device; a multiple stays split over the devices, so over both processes (`fetch` gathers it).
    """
    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0))
    options = {"param": fv.image(RENDER["size"]), "steps": RENDER["steps"],
               "transforms": fv.compose(fv.pad(4), fv.jitter(4))}
    r = fv.render_each(model, lambda c: fv.channel(RENDER["layer"], c), jnp.arange(int(channels)),
                       key=jax.random.key(1), mesh=mesh, **options)
    return fetch({"images": r.images, "scores": r.scores})


def sweep_grid() -> tuple[sweep.Sweep, sweep.InMemory]:
    """A render sweep over two random-init SmallCNNs, in four groups of three units: two groups per process."""
    models = {name: sweep.Subject(nets.create("small_cnn", num_classes=6, key=jax.random.key(seed)), SYNTH)
              for seed, name in enumerate(("a", "b"))}
    grid = sweep.Sweep(sweep.Render(steps=RENDER["steps"], image_size=RENDER["size"], units_per_call=3),
                       models=("a", "b"), layers=(RENDER["layer"],), units=tuple(range(6)), seeds=(0,))
    return grid, sweep.InMemory(models)


def sweeping(mesh, workdir: str) -> Outputs:
    """`interp.sweep.run` of `sweep_grid` into `workdir`, each process on its own devices: the table and images.

    `mesh` is unused: a sweep's processes measure different groups, each on its local devices.
    """
    grid, models = sweep_grid()
    rows = sweep.run(grid, workdir, models, progress=False)
    store = sweep.Store(workdir)
    return {"table": np.asarray(json.dumps(rows)), "scores": np.asarray([r["score"] for r in rows]),
            "images": np.stack([store.arrays(row)["image"] for row in rows])}


def fail(mesh, process_id: str) -> Outputs:
    """Process `process_id` fails while the other waits for it at a barrier: what a launcher must end."""
    if jax.process_index() == int(process_id):
        raise RuntimeError(f"planted failure in process {process_id}")
    multihost_utils.sync_global_devices("tests.multihost:fail")
    return {}


SCENARIOS: dict[str, Callable[..., Outputs]] = {
    "train": train,
    "dissect": dissection,
    "render_each": rendering,
    "sweep": sweeping,
    "fail": fail,
}


def main(process_id: str, port: str, out: str, calls: str) -> None:
    """One process of `run_two_processes`: joins the other, runs the calls, saves what each returns."""
    jax.config.update("jax_numpy_rank_promotion", "raise")  # as in tests/conftest.py
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=NUM_PROCESSES,
                               process_id=int(process_id), initialization_timeout=60)
    assert jax.device_count() == NUM_PROCESSES * DEVICES_PER_PROCESS, jax.devices()
    for c, (scenario, *args) in enumerate(json.loads(calls)):
        np.savez(pathlib.Path(out) / f"{process_id}.{c}.npz", **SCENARIOS[scenario](sharding.data_mesh(), *args))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
