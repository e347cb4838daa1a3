"""Training losses as composable factories, in the optax style.

A loss is a `Loss`: the tap names it reads and a function

    loss.fn(forward, batch) -> (value, metrics, state_updates)

of the training-mode forward pass and the batch, where

  * `forward` is a `Forward`: the network's `outputs` (e.g. logits [b,
    classes]), the `activations` of the taps the loss named (`{tap: array}`,
    batch-first, differentiable), the `model_state` after the pass (e.g.
    updated BatchNorm statistics), and `model`, the network at the params
    being differentiated (`forward.layer_params(tap)` reaches a layer's
    parameters by its tap name, differentiably);
  * `batch` is the batch as the source produced it ('image', 'label' and
    whatever else the source gives);
  * `value` is a float32 scalar to minimize, `metrics` a dict of scalars to
    log (batch means), and `state_updates` new values for model-state
    collections (e.g. running means), applied after the step, not
    differentiated; `{}` for none.

Factories return a `Loss`; terms combine by `+` and scale by a number:

    loss = classification_loss() + layers.icnn_loss(0.02, "multi")
    loss = classification_loss() + 0.5 * my_loss(...)

The sum's value is the sum of the terms' values in order, its metrics the
union of theirs, its state updates merged (a metric or a collection named by
two terms is an error). `make_train_step(loss, optimizer)` logs the total as
'loss'. A new loss (an explainer's distillation, a margin loss, ...) is a
factory returning `Loss(fn, layers=(...))`; it needs nothing else from the loop.
A loss that reads another, fixed network (a teacher, a frozen explainer)
takes it as a factory argument, e.g. `distillation_loss(teacher: Model, ...)`,
and calls it inside `fn`; the differentiated parameters stay those of the
trained network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from interp.nets.adapter import Model

Batch = Mapping[str, Any]
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Forward:
    """What a loss sees of the training-mode forward pass.

    Attributes:
      outputs: the network's outputs (logits [b, classes] for a classifier).
      activations: `{tap: array}` for the taps the loss named.
      model_state: the non-trainable collections after the pass.
      model: the network (inference mode) at the parameters being
        differentiated.
      inputs: the batch's inputs [b, ...], what `model` is traced with.
    """

    outputs: Any
    activations: Mapping[str, jax.Array]
    model_state: Mapping[str, Any]
    model: Model
    inputs: jax.Array

    def layer_params(self, layer: str) -> dict[str, jax.Array]:
        """The parameters tap `layer` owns, differentiable (see `interp.nets.Model.layer_params`)."""
        return self.model.layer_params(self.inputs, layer)

    def param_owners(self) -> dict[str, tuple[str, ...]]:
        """Every layer with the paths of the parameters it owns (see `interp.nets.Model.param_owners`)."""
        return self.model.param_owners(self.inputs)


LossFn = Callable[[Forward, Batch], tuple[jax.Array, Metrics, dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Loss:
    """A training loss: `fn(forward, batch) -> (value, metrics, state_updates)` reading the taps `layers`."""

    fn: LossFn
    layers: tuple[str, ...] = ()

    def __call__(self, forward: Forward, batch: Batch) -> tuple[jax.Array, Metrics, dict[str, Any]]:
        return self.fn(forward, batch)

    def __add__(self, other: Loss) -> Loss:
        if not isinstance(other, Loss):
            return NotImplemented
        return Loss(_Sum((self, other)), tuple(dict.fromkeys(self.layers + other.layers)))

    def __rmul__(self, weight: float) -> Loss:
        if not isinstance(weight, (int, float)):
            return NotImplemented
        return Loss(_Scaled(self, float(weight)), self.layers)


@dataclasses.dataclass(frozen=True)
class _Sum:
    terms: tuple[Loss, ...]

    def __call__(self, forward, batch):
        total, metrics, updates = None, {}, {}
        for term in self.terms:
            value, term_metrics, term_updates = term(forward, batch)
            pairs = (("metric", term_metrics, metrics), ("model-state collection", term_updates, updates))
            for kind, new, old in pairs:
                clash = sorted(set(new) & set(old))
                if clash:
                    raise ValueError(f"loss: two terms give the {kind} {clash[0]!r}")
                old.update(new)
            total = value if total is None else total + value
        return total, metrics, updates


@dataclasses.dataclass(frozen=True)
class _Scaled:
    term: Loss
    weight: float

    def __call__(self, forward, batch):
        value, metrics, updates = self.term(forward, batch)
        return self.weight * value, metrics, updates


def classification_loss() -> Loss:
    """Softmax cross-entropy of the outputs (logits [b, classes]) against `batch['label']` int [b].

    Metrics: 'cross_entropy' (the batch mean) and 'accuracy' (top-1).
    """

    def fn(forward: Forward, batch: Batch):
        logits, labels = forward.outputs, batch["label"]
        value = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return value, {"cross_entropy": value, "accuracy": accuracy}, {}

    return Loss(fn)
