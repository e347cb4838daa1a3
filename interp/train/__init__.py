"""Training: one optax loop, data-parallel over an `interp.sharding` mesh, resumable from orbax checkpoints."""

from interp.train.checkpoint import CheckpointError, Checkpoints
from interp.train.loop import MetricsLog, make_evaluator, read_metrics, train
from interp.train.state import TrainState, create_train_state, variables_of
from interp.train.step import make_eval_step, make_train_step, summarize

__all__ = [
    "CheckpointError",
    "Checkpoints",
    "MetricsLog",
    "TrainState",
    "create_train_state",
    "make_eval_step",
    "make_evaluator",
    "make_train_step",
    "read_metrics",
    "summarize",
    "train",
    "variables_of",
]
