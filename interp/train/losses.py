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
union of theirs, its state updates and inputs merged (a metric, a collection
or an input named by two terms is an error).

A loss may also feed the training forward pass: `inputs(batch, step)`
returns keyword arguments for `module.apply(..., train=True, **inputs)`,
for layers that read the labels or the step in training (the released
interpretable conv layer's backward pass reads both:
`interp.layers.released_filter_loss`). They are not differentiated. `make_train_step(loss, optimizer)` logs the total as
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
InputsFn = Callable[[Batch, jax.Array], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Loss:
    """A training loss: `fn(forward, batch) -> (value, metrics, state_updates)` reading the taps `layers`.

    `inputs(batch, step)`, when given, returns keyword arguments for the
    network's training forward pass (see the module docstring).
    """

    fn: LossFn
    layers: tuple[str, ...] = ()
    inputs: InputsFn | None = None

    def __call__(self, forward: Forward, batch: Batch) -> tuple[jax.Array, Metrics, dict[str, Any]]:
        return self.fn(forward, batch)

    def forward_inputs(self, batch: Batch, step: jax.Array) -> dict[str, Any]:
        """The keyword arguments of the training forward pass for `batch` at `step` (`{}` for none)."""
        return {} if self.inputs is None else self.inputs(batch, step)

    def __add__(self, other: Loss) -> Loss:
        if not isinstance(other, Loss):
            return NotImplemented
        terms = (self, other)
        inputs = _MergedInputs(terms) if any(t.inputs is not None for t in terms) else None
        return Loss(_Sum(terms), tuple(dict.fromkeys(self.layers + other.layers)), inputs)

    def __rmul__(self, weight: float) -> Loss:
        if not isinstance(weight, (int, float)):
            return NotImplemented
        return Loss(_Scaled(self, float(weight)), self.layers, self.inputs)


@dataclasses.dataclass(frozen=True)
class _MergedInputs:
    terms: tuple[Loss, ...]

    def __call__(self, batch, step):
        merged = {}
        for term in self.terms:
            new = term.forward_inputs(batch, step)
            clash = sorted(set(new) & set(merged))
            if clash:
                raise ValueError(f"loss: two terms feed the forward pass the input {clash[0]!r}")
            merged.update(new)
        return merged


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
