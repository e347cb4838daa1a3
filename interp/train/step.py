"""One jitted update and one evaluation step for classification."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from interp.train.state import TrainState, variables_of

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
StepFn = Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
# extra_loss(batch, intermediates, model_state, params) -> (loss term, metrics, model_state updates)
ExtraLoss = Callable[[Batch, Any, Any, Any], tuple[jax.Array, Metrics, dict[str, Any]]]


def make_train_step(module: nn.Module, tx: optax.GradientTransformation,
                    extra_loss: ExtraLoss | None = None) -> StepFn:
    """`step(state, batch) -> (state, metrics)` for softmax cross-entropy (plus `extra_loss`).

    `batch` holds 'image' [b, h, w, c] and 'label' int [b]; `module` takes
    `train=` and, when training, a 'dropout' key. Metrics are batch means.

    `extra_loss`, when given, adds a term to the loss (e.g. the interpretable
    CNN's filter loss, `interp.layers.icnn_loss`): it sees the batch, what the
    module sowed into 'intermediates', the updated model state and the params,
    and returns the term, metrics to log, and new values for model-state
    collections (not differentiated). 'loss' is then the sum, and
    'cross_entropy' is logged beside it.
    """

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        dropout_key = jax.random.fold_in(state.rng, state.step)
        mutable = list(state.model_state) + (["intermediates"] if extra_loss is not None else [])

        def loss_fn(params):
            variables = {**variables_of(state), "params": params}
            logits, new_model_state = module.apply(
                variables, batch["image"], train=True, rngs={"dropout": dropout_key}, mutable=mutable
            )
            new_model_state = dict(new_model_state)
            intermediates = new_model_state.pop("intermediates", {})
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            extra_metrics = {}
            if extra_loss is not None:
                term, extra_metrics, updates = extra_loss(batch, intermediates, new_model_state, params)
                extra_metrics = {**extra_metrics, "cross_entropy": loss}
                loss = loss + term
                new_model_state.update(jax.lax.stop_gradient(updates))
            return loss, (logits, new_model_state, extra_metrics)

        (loss, (logits, model_state, extra_metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            model_state=dict(model_state),
            opt_state=opt_state,
        )
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
            "grad_norm": optax.tree.norm(grads),
            **extra_metrics,
        }
        return new_state, metrics

    return step


def make_eval_step(module: nn.Module) -> Callable[[TrainState, Batch], Metrics]:
    """`eval_step(state, batch) -> {'correct', 'loss_sum', 'count'}` summed over the batch.

    An optional `batch['weight']` [b] (1 for real rows, 0 for padding) lets a
    fixed-shape batch hold the remainder of a dataset.
    """

    def eval_step(state: TrainState, batch: Batch) -> Metrics:
        logits = module.apply(variables_of(state), batch["image"], train=False)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        weight = batch.get("weight", jnp.ones_like(losses))
        return {
            "correct": jnp.sum(weight * (jnp.argmax(logits, -1) == batch["label"])),
            "loss_sum": jnp.sum(weight * losses),
            "count": jnp.sum(weight),
        }

    return eval_step


def summarize(totals: dict[str, Any]) -> dict[str, float]:
    """Accuracy and mean loss from summed evaluation counts."""
    count = float(totals["count"])
    return {"accuracy": float(totals["correct"]) / count, "loss": float(totals["loss_sum"]) / count}
