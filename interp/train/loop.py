"""The generic optax training loop: sharded steps, checkpoints, resumable, logged.

    state = fit(module, optax.adam(2e-3), SynthParts(seed=0), num_steps=400, batch_size=32,
                workdir="runs/x", shuffle=False)
    model = state.model()

`fit` reads a batch source (`interp.data.stream`): global batch `step`
holds the examples `epoch_indices(step, batch_size, len(data), seed,
shuffle=...)`, and each process asks the source only for its own rows of it.
"""

import json
import math
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from flax import linen as nn
from jax.sharding import Mesh

from interp import sharding as meshlib
from interp._checks import check_positive_int
from interp._progress import bar
from interp.data.stream import BatchSource, check_source, epoch_indices, pass_indices
from interp.train.checkpoint import Checkpoints
from interp.train.losses import Loss, classification_loss
from interp.train.state import TrainState, create_train_state
from interp.train.step import make_eval_step, make_train_step, summarize
from interp.train.workdir import hold_workdir

EvalFn = Callable[[TrainState], dict[str, float]]


def fit(
    module: nn.Module,
    optimizer: optax.GradientTransformation,
    data: BatchSource,
    *,
    num_steps: int,
    batch_size: int,
    workdir: str | pathlib.Path,
    loss: Loss | None = None,
    seed: int = 0,
    shuffle: bool = True,
    checkpoint_every: int = 500,
    log_every: int = 50,
    evaluate: EvalFn | None = None,
    eval_every: int | None = None,
    mesh: Mesh | None = None,
    progress: bool | None = None,
    initialize: Callable[[Any], Any] | None = None,
) -> TrainState:
    """Trains `module` for `num_steps`, resuming from the latest checkpoint in `workdir`.

    Writes `workdir/checkpoints/<step>` every `checkpoint_every` steps, at the
    end and on interruption (so a stopped run loses at most the steps since
    its last checkpoint), and appends metrics to `workdir/metrics.jsonl`.
    Holds the workdir's lock (`hold_workdir`) from start to end, so a second
    run on it fails at once instead of interleaving with this one.

    Args:
      module: a Linen network taking `(x, train=...)`.
      optimizer: the optax optimizer.
      data: a batch source whose batches hold 'image' [n, h, w, c] and what
        `loss` reads (e.g. 'label' [n]).
      num_steps: total steps of the run (not steps still to do).
      batch_size: global batch size; a multiple of the mesh's device count.
      workdir: the run's folder.
      loss: the `Loss` (default `classification_loss()`).
      seed: initialization, dropout and epoch-order seed.
      shuffle: visit each epoch in a seeded random order (False: in index
        order, for sources whose examples are already independent draws).
      checkpoint_every, log_every, eval_every: intervals in steps.
      evaluate: called with the state every `eval_every` steps and at the end
        (e.g. `make_evaluator(...)`).
      mesh: the device mesh (default: all devices on one 'data' axis).
      progress: show a progress bar of the steps: None on a terminal (see `interp._progress`).
      initialize: maps the freshly initialized variables to those to start
        from, e.g. to fine-tune from pretrained weights
        (`lambda v: layers.load_backbone(v, pretrained)`); not called when the
        workdir holds a checkpoint, which is resumed instead.

    Returns:
      The final state, replicated over the mesh; `state.model()` is the network.

    Raises:
      ValueError: `num_steps`, `batch_size`, `log_every` or `eval_every` is not a positive int.
      WorkdirBusyError: another process is writing `workdir`.
      NonFiniteError: the loss, the gradient norm or an updated parameter
        (or model-state value) became NaN or infinite; the error names the
        non-finite parameters. The flag is computed on the device every step
        and read with the metrics at every log and checkpoint step, before
        the save, so no non-finite state is checkpointed and the last good
        checkpoint is kept.
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("batch_size", batch_size)
    check_positive_int("log_every", log_every)
    check_positive_int("eval_every", eval_every, allow_none=True)
    data = check_source(data)
    mesh = meshlib.data_mesh() if mesh is None else mesh
    rows = meshlib.local_batch_slice(batch_size, mesh)

    def local_batch(step: int) -> Any:
        return data.batch(epoch_indices(step, batch_size, len(data), seed, shuffle=shuffle)[rows])

    with hold_workdir(workdir) as workdir:
        state, checkpoints = _resume(module, optimizer, local_batch(0)["image"], seed, workdir, checkpoint_every,
                                     mesh, initialize)
        log = _Log(workdir, int(state.step), num_steps, progress)
        step_fn = jax.jit(
            make_train_step(classification_loss() if loss is None else loss, optimizer),
            in_shardings=(meshlib.replicated(mesh), meshlib.batch_sharding(mesh)),
            out_shardings=(meshlib.replicated(mesh), meshlib.replicated(mesh)),
            donate_argnums=0,
        )
        try:
            return _loop(state, step_fn, local_batch, checkpoints, log, mesh, num_steps, log_every,
                         checkpoint_every, evaluate, eval_every or num_steps)
        finally:
            log.close()
            checkpoints.close()


def _resume(module, optimizer, sample, seed, workdir, checkpoint_every, mesh,
            initialize) -> tuple[TrainState, Checkpoints]:
    """The initial state (from `seed`, on `sample`'s shape), or the latest checkpoint's; replicated over `mesh`."""
    checkpoints = Checkpoints(workdir / "checkpoints", every=checkpoint_every)
    resuming = checkpoints.latest_step() is not None
    state = create_train_state(module, optimizer, np.zeros_like(sample[:1]), seed,
                               None if resuming else initialize)
    state = meshlib.replicate(state, mesh)
    if resuming:
        state = checkpoints.restore(like=state)
    return state, checkpoints


def _loop(state, step_fn, local_batch, checkpoints, log, mesh, num_steps, log_every, checkpoint_every,
          evaluate, eval_every) -> TrainState:
    # XLA:CPU runs the programs of its devices out of order; with several CPU
    # devices, a step's all-reduce can wait on a device busy with the next
    # batch while holding the threads that device needs (8 forced devices on
    # 2 cores deadlocked in the rendezvous). Finishing each step first keeps
    # every device on the same program; on one CPU device it cost nothing
    # measurable. Accelerators order work per device and keep async dispatch.
    sync_each_step = mesh.devices.flat[0].platform == "cpu" and mesh.devices.size > 1
    try:
        for step in range(int(state.step), num_steps):
            state, metrics = step_fn(state, meshlib.shard_batch(local_batch(step), mesh))
            if sync_each_step:
                jax.block_until_ready(metrics)
            done = step + 1
            is_last = done == num_steps
            log.advance()
            logs = done % log_every == 0 or done % checkpoint_every == 0 or is_last
            # Also where orbax saves off the interval (a run's first step).
            if logs or checkpoints.should_save(done):
                values = _checked(metrics, state, done)
                if logs:
                    log.train(done, values)
            if evaluate is not None and (done % eval_every == 0 or is_last):
                log.write(done, "val", evaluate(state))
            checkpoints.save(done, state, force=is_last)
    except KeyboardInterrupt:
        # Interrupted inside a step, `state` may already be donated to it;
        # then the last periodic checkpoint is the one to resume from. The
        # steps since the last check may have gone non-finite: such a state
        # is not saved either.
        if not any(leaf.is_deleted() for leaf in jax.tree.leaves(state)) and not _non_finite_leaves(state):
            checkpoints.save(int(state.step), state, force=True)
        raise
    return state


def make_evaluator(data: BatchSource, batch_size: int, *, num_examples: int | None = None,
                   mesh: Mesh | None = None) -> EvalFn:
    """An `evaluate(state)` giving accuracy and mean loss over examples `0 ... num_examples - 1` of `data`.

    One ordered pass (`pass_indices`); the last batch's padding rows get
    'weight' 0, so every example counts once.

    Args:
      data: a batch source with 'image' and 'label'.
      batch_size: global batch size; a multiple of the mesh's device count.
      num_examples: how many examples (default: all of `data`).
      mesh: the device mesh (default: all devices on one 'data' axis).
    """
    data = check_source(data)
    num_examples = len(data) if num_examples is None else num_examples
    if not 1 <= num_examples <= len(data):
        raise ValueError(f"num_examples: expected 1 ... {len(data)} (the source's size), got {num_examples}")
    mesh = meshlib.data_mesh() if mesh is None else mesh
    rows = meshlib.local_batch_slice(batch_size, mesh)
    eval_step = jax.jit(
        make_eval_step(),
        in_shardings=(meshlib.replicated(mesh), meshlib.batch_sharding(mesh)),
        out_shardings=meshlib.replicated(mesh),
    )

    def evaluate(state: TrainState) -> dict[str, float]:
        totals = None
        for indices, valid in pass_indices(num_examples, batch_size):
            batch = {**data.batch(indices[rows]), "weight": valid[rows].astype(np.float32)}
            # Fetched batch by batch: one program in flight, as in `fit`.
            counts = jax.device_get(eval_step(state, meshlib.shard_batch(batch, mesh)))
            totals = counts if totals is None else jax.tree.map(lambda a, b: a + b, totals, counts)
        return summarize(totals)

    return evaluate


class NonFiniteError(FloatingPointError):
    """Training produced NaN or infinity; the state was not checkpointed."""


def _checked(metrics: dict[str, jax.Array], state: TrainState, step: int) -> dict[str, float]:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if math.isfinite(values["loss"]) and values["finite"] == 1.0:
        return values
    broken = _non_finite_leaves(state)
    raise NonFiniteError(
        f"training became non-finite at step {step} (loss {values['loss']}, grad_norm {values['grad_norm']}); "
        f"non-finite: {', '.join(broken) if broken else 'the gradients only'}; the state is not checkpointed "
        "and the last checkpoint is kept (check the learning rate, the initialization and the inputs for NaN)"
    )


def _non_finite_leaves(state: TrainState) -> list[str]:
    """Paths of the parameter and model-state leaves holding NaN or infinity (a fetch per leaf, off the hot path)."""
    return [
        jax.tree_util.keystr(path, simple=True, separator="/")
        for path, leaf in jax.tree_util.tree_flatten_with_path({"params": state.params, **state.model_state})[0]
        if not np.all(np.isfinite(jax.device_get(leaf)))
    ]


class _Log:
    """The run's metrics.jsonl, its progress bar and its steps per second."""

    def __init__(self, workdir: pathlib.Path, start: int, num_steps: int, progress: bool | None):
        self.metrics = MetricsLog(workdir / "metrics.jsonl", resume_step=start)
        self.bar = bar(num_steps, desc=f"train: {workdir.name}", unit="step", initial=start, progress=progress)
        self.last_time, self.last_step = time.perf_counter(), start

    def advance(self) -> None:
        self.bar.update()

    def train(self, step: int, values: dict[str, float]) -> None:
        now = time.perf_counter()
        values["steps_per_sec"] = (step - self.last_step) / (now - self.last_time)
        self.last_time, self.last_step = now, step
        self.write(step, "train", values)
        shown = {k: f"{values[k]:.3f}" for k in ("loss", "accuracy") if k in values}
        self.bar.set_postfix(**shown)

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        self.metrics.write(step, split, values)

    def close(self) -> None:
        self.bar.close()


class MetricsLog:
    """Appends metrics as JSON lines, first dropping lines past the resumed step.

    A run stopped between checkpoints repeats the steps after its last one;
    dropping their old lines keeps the log one line per (step, split), and so
    does a run killed between a line and the checkpoint of its step (it
    resumes from an earlier step). A last line cut short by a kill is dropped
    too; the rewrite is atomic, so a kill during it keeps the old log. Only
    process 0 writes: one log per run, not one per host.
    """

    def __init__(self, path: pathlib.Path, resume_step: int):
        self.path = path
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [line for line in _complete_lines(path) if json.loads(line)["step"] <= resume_step]
        partial = path.with_suffix(".jsonl.partial")
        partial.write_text("".join(line + "\n" for line in kept))
        os.replace(partial, path)

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, "split": split, **values}) + "\n")


def _complete_lines(path: pathlib.Path) -> list[str]:
    """The lines of `path` that end in a newline (none if it does not exist)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()


def read_metrics(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` file, in order."""
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line]
