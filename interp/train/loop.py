"""The generic optax training loop: sharded steps, checkpoints, resumable, logged."""

import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import linen as nn
from jax.sharding import Mesh
from tqdm.auto import tqdm

from interp import sharding as meshlib
from interp.train.checkpoint import Checkpoints
from interp.train.state import TrainState, create_train_state
from interp.train.step import ExtraLoss, make_eval_step, make_train_step, summarize

# batch_fn(step, rows) -> the `rows` of global batch `step`: a pure function of
# the step, so a resumed run sees exactly the batches an uninterrupted one sees.
BatchFn = Callable[[int, slice], dict[str, Any]]
EvalFn = Callable[[TrainState], dict[str, float]]


def train(
    module: nn.Module,
    tx: optax.GradientTransformation,
    batch_fn: BatchFn,
    *,
    num_steps: int,
    batch_size: int,
    workdir: str | pathlib.Path,
    sample_input: jax.Array,
    seed: int = 0,
    checkpoint_every: int = 500,
    log_every: int = 50,
    eval_fn: EvalFn | None = None,
    eval_every: int | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    extra_loss: ExtraLoss | None = None,
) -> TrainState:
    """Trains `module` for `num_steps`, resuming from the latest checkpoint in `workdir`.

    Writes `workdir/checkpoints/<step>` every `checkpoint_every` steps, at the
    end and on interruption (so a stopped run loses at most the steps since
    its last checkpoint), and appends metrics to `workdir/metrics.jsonl`.

    Args:
      module: a Linen classifier taking `(x, train=...)`.
      tx: the optax optimizer.
      batch_fn: `batch_fn(step, rows)` returns this process's rows of the
        global batch `step` ('image' [rows, h, w, c], 'label' [rows]).
      num_steps: total steps of the run (not steps still to do).
      batch_size: global batch size; a multiple of the mesh's device count.
      workdir: the run's folder.
      sample_input: an input batch used only for its shape at initialization.
      seed: initialization and dropout seed.
      checkpoint_every, log_every, eval_every: intervals in steps.
      eval_fn: called with the state every `eval_every` steps and at the end.
      mesh: the device mesh (default: all devices on one 'data' axis).
      progress: show a progress bar.
      extra_loss: a term added to the cross-entropy (see `make_train_step`).

    Returns:
      The final state, replicated over the mesh.

    Raises:
      FloatingPointError: the loss became NaN or infinite (no checkpoint of
        that state is written).
    """
    workdir = pathlib.Path(workdir)
    mesh = meshlib.data_mesh() if mesh is None else mesh
    rows = meshlib.local_batch_slice(batch_size, mesh)
    state = meshlib.replicate(create_train_state(module, tx, sample_input, seed), mesh)
    checkpoints = Checkpoints(workdir / "checkpoints", every=checkpoint_every)
    if checkpoints.latest_step() is not None:
        state = checkpoints.restore(like=state)
    start = int(state.step)
    log = MetricsLog(workdir / "metrics.jsonl", resume_step=start)
    step_fn = jax.jit(
        make_train_step(module, tx, extra_loss),
        in_shardings=(meshlib.replicated(mesh), meshlib.batch_sharding(mesh)),
        out_shardings=(meshlib.replicated(mesh), meshlib.replicated(mesh)),
        donate_argnums=0,
    )
    eval_every = eval_every or num_steps
    # XLA:CPU runs the programs of its devices out of order; with several CPU
    # devices, a step's all-reduce can wait on a device busy with the next
    # batch while holding the threads that device needs (8 forced devices on
    # 2 cores deadlocked in the rendezvous). Finishing each step first keeps
    # every device on the same program; on one CPU device it cost nothing
    # measurable. Accelerators order work per device and keep async dispatch.
    sync_each_step = mesh.devices.flat[0].platform == "cpu" and mesh.devices.size > 1
    bar = tqdm(total=num_steps, initial=start, disable=not progress or jax.process_index() != 0, desc=workdir.name, mininterval=2.0)
    last_time, last_step = time.perf_counter(), start
    try:
        for step in range(start, num_steps):
            state, metrics = step_fn(state, meshlib.shard_batch(batch_fn(step, rows), mesh))
            if sync_each_step:
                jax.block_until_ready(metrics)
            done = step + 1
            bar.update()
            is_last = done == num_steps
            if done % log_every == 0 or done % checkpoint_every == 0 or is_last:
                values = _checked(metrics, done)
                now = time.perf_counter()
                values["steps_per_sec"] = (done - last_step) / (now - last_time)
                last_time, last_step = now, done
                log.write(done, "train", values)
                bar.set_postfix(loss=f"{values['loss']:.3f}", acc=f"{values['accuracy']:.3f}")
            if eval_fn is not None and (done % eval_every == 0 or is_last):
                log.write(done, "val", eval_fn(state))
            checkpoints.save(done, state, force=is_last)
    except KeyboardInterrupt:
        # Interrupted inside a step, `state` may already be donated to it;
        # then the last periodic checkpoint is the one to resume from.
        if not any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
            checkpoints.save(int(state.step), state, force=True)
        raise
    finally:
        bar.close()
        checkpoints.close()
    return state


def make_evaluator(
    module: nn.Module, batch_fn: BatchFn, num_batches: int, batch_size: int, mesh: Mesh | None = None
) -> EvalFn:
    """An `eval_fn` computing accuracy and loss over `num_batches` batches of `batch_fn`."""
    mesh = meshlib.data_mesh() if mesh is None else mesh
    rows = meshlib.local_batch_slice(batch_size, mesh)
    eval_step = jax.jit(
        make_eval_step(module),
        in_shardings=(meshlib.replicated(mesh), meshlib.batch_sharding(mesh)),
        out_shardings=meshlib.replicated(mesh),
    )

    def evaluate(state: TrainState) -> dict[str, float]:
        totals = None
        for index in range(num_batches):
            # Fetched batch by batch: one program in flight, as in `train`.
            counts = jax.device_get(eval_step(state, meshlib.shard_batch(batch_fn(index, rows), mesh)))
            totals = counts if totals is None else jax.tree.map(lambda a, b: a + b, totals, counts)
        return summarize(totals)

    return evaluate


def _checked(metrics: dict[str, jax.Array], step: int) -> dict[str, float]:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not math.isfinite(values["loss"]):
        raise FloatingPointError(
            f"training loss is {values['loss']} at step {step}; the last checkpoint is kept "
            "(check the learning rate and the inputs for NaN)"
        )
    return values


class MetricsLog:
    """Appends metrics as JSON lines, first dropping lines past the resumed step.

    A run stopped between checkpoints repeats the steps after its last one;
    dropping their old lines keeps the log one line per (step, split). Only
    process 0 writes: one log per run, not one per host.
    """

    def __init__(self, path: pathlib.Path, resume_step: int):
        self.path = path
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, "split": split, **values}) + "\n")


def read_metrics(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` file, in order."""
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line]
