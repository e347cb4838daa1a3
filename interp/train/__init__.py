"""Training: one optax loop, data-parallel over a mesh, resumable from orbax checkpoints."""

from interp.train.checkpoint import CheckpointError, Checkpoints
from interp.train.loop import MetricsLog, make_evaluator, read_metrics, train
from interp.train.mesh import (
    batch_sharding,
    data_mesh,
    local_batch_slice,
    replicate,
    replicated,
    shard_batch,
)
from interp.train.state import TrainState, create_train_state, variables_of
from interp.train.step import make_eval_step, make_train_step, summarize

__all__ = [
    "CheckpointError",
    "Checkpoints",
    "MetricsLog",
    "TrainState",
    "batch_sharding",
    "create_train_state",
    "data_mesh",
    "local_batch_slice",
    "make_eval_step",
    "make_evaluator",
    "make_train_step",
    "read_metrics",
    "replicate",
    "replicated",
    "shard_batch",
    "summarize",
    "train",
    "variables_of",
]
