"""Training: one optax loop over a batch source, data-parallel over an `interp.sharding` mesh, resumable.

    loss = train.classification_loss() + layers.icnn_loss(0.02, "single")
    state = train.fit(module, optax.adam(2e-3), data, loss=loss, num_steps=..., batch_size=..., workdir=...)
    model = state.model()

Losses are factories returning a `Loss` (see `interp.train.losses` for the
contract a new one follows); `make_train_step(loss, optimizer)` is the jitted
update on its own; `hold_workdir` is the one-writer lock `fit` holds on its workdir.
"""

from interp.train.checkpoint import CheckpointError, Checkpoints, CorruptCheckpointError
from interp.train.loop import NonFiniteError, fit, make_evaluator, read_metrics
from interp.train.losses import Forward, Loss, classification_loss
from interp.train.state import TrainState, create_train_state
from interp.train.step import make_train_step
from interp.train.workdir import WorkdirBusyError, hold_workdir

__all__ = [
    "CheckpointError",
    "Checkpoints",
    "CorruptCheckpointError",
    "Forward",
    "Loss",
    "NonFiniteError",
    "TrainState",
    "WorkdirBusyError",
    "classification_loss",
    "create_train_state",
    "fit",
    "hold_workdir",
    "make_evaluator",
    "make_train_step",
    "read_metrics",
]
