"""One jitted update for any `Loss`, and one evaluation step for classification."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from interp.nets.adapter import from_linen, with_activations
from interp.train.losses import Batch, Forward, Loss, Metrics
from interp.train.state import TrainState

StepFn = Callable[[TrainState, Batch], tuple[TrainState, Metrics]]


def make_train_step(loss: Loss, optimizer: optax.GradientTransformation) -> StepFn:
    """`step(state, batch) -> (state, metrics)`: one `optimizer` update on `loss` (see `interp.train.losses`).

    The forward pass runs `state.module` with `train=True`, a 'dropout' key
    drawn from the step, its model-state collections mutable, and the keyword
    inputs the loss feeds it (`Loss.forward_inputs(batch, step)`). Metrics
    are the loss's, 'loss' (the total), 'grad_norm' and 'finite': 1.0 when
    the gradient norm and every updated parameter and model-state value are
    finite, else 0.0. It is one fused reduction on the device, so `fit` can
    refuse to checkpoint a broken state without fetching the state (a NaN
    loss is not enough: a NaN kernel can leave the loss finite).
    """
    if not isinstance(loss, Loss):
        raise ValueError(f"loss: expected an interp.train.Loss (e.g. classification_loss()), got {type(loss).__name__}")

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        dropout_key = jax.random.fold_in(state.rng, state.step)
        inputs = jax.lax.stop_gradient(loss.forward_inputs(batch, state.step))

        def objective(params):
            def apply(params, x):
                return state.module.apply({**state.variables, "params": params}, x, train=True,
                                          rngs={"dropout": dropout_key}, mutable=list(state.model_state), **inputs)

            if loss.layers:
                (outputs, model_state), acts = with_activations(apply, loss.layers, params, batch["image"])
            else:
                (outputs, model_state), acts = apply(params, batch["image"]), {}
            model_state = dict(model_state)
            model = from_linen(state.module, {**state.variables, "params": params})
            value, metrics, updates = loss(Forward(outputs, acts, model_state, model, batch["image"]), batch)
            model_state.update(jax.lax.stop_gradient(updates))
            return value, (metrics, model_state)

        (value, (metrics, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            model_state=model_state,
            opt_state=opt_state,
        )
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(grad_norm)
        for leaf in jax.tree.leaves((new_state.params, new_state.model_state)):
            finite &= jnp.all(jnp.isfinite(leaf))
        return new_state, {"loss": value, "grad_norm": grad_norm, "finite": finite.astype(jnp.float32), **metrics}

    return step


def make_eval_step() -> Callable[[TrainState, Batch], Metrics]:
    """`eval_step(state, batch) -> {'correct', 'loss_sum', 'count'}` summed over the batch.

    An optional `batch['weight']` [b] (1 for real rows, 0 for padding) lets a
    fixed-shape batch hold the remainder of a dataset.
    """

    def eval_step(state: TrainState, batch: Batch) -> Metrics:
        logits = state.module.apply(state.variables, batch["image"], train=False)
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
