"""Loss factories compose: sums, weights, taps read in the training pass, named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from interp import nets
from interp import train as trainlib


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nets.tap(nn.relu(nn.Dense(4, name="hidden")(x)), "hidden")
        return nets.tap(nn.Dense(3, name="out")(h), "logits")


X = jax.random.normal(jax.random.key(0), (8, 5))
BATCH = {"image": X, "label": jnp.arange(8) % 3}


def state():
    return trainlib.create_train_state(Net(), optax.sgd(0.1), X[:1], seed=0)


def activity(weight=1.0):
    """A custom term: the mean square of the tap 'hidden', and the norm of the kernel that the layer "logits" owns."""

    def fn(forward, batch):
        value = weight * jnp.mean(forward.activations["hidden"] ** 2)
        kernel = forward.layer_params("logits")["out/kernel"]
        return value, {"activity": value, "out_norm": jnp.sum(kernel**2)}, {}

    return trainlib.Loss(fn, layers=("hidden",))


def reference_grads(s, scale):
    def total(params):
        variables = {"params": params}
        logits = Net().apply(variables, X)
        hidden = nn.relu(X @ params["hidden"]["kernel"] + params["hidden"]["bias"][None])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, BATCH["label"]).mean()
        return ce + scale * jnp.mean(hidden**2)

    return jax.value_and_grad(total)(s.params)


def test_a_sum_of_terms_is_the_sum_of_their_values_and_gradients():
    s = state()
    loss = trainlib.classification_loss() + 0.5 * activity()
    new, metrics = jax.jit(trainlib.make_train_step(loss, optax.sgd(0.1)))(s, BATCH)
    value, grads = reference_grads(s, 0.5)
    np.testing.assert_allclose(metrics["loss"], value, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], metrics["cross_entropy"] + 0.5 * metrics["activity"], rtol=1e-6)
    np.testing.assert_allclose(metrics["out_norm"], jnp.sum(s.params["out"]["kernel"] ** 2), rtol=1e-6)
    want = jax.tree.map(lambda p, g: p - 0.1 * g, s.params, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new.params, want)
    assert int(new.step) == 1
    np.testing.assert_allclose(new.model()(X), Net().apply({"params": new.params}, X), rtol=1e-6)


def test_loss_errors_are_named():
    s = state()
    with pytest.raises(ValueError, match="loss: expected an interp.train.Loss"):
        trainlib.make_train_step(lambda f, b: 0.0, optax.sgd(0.1))
    twice = trainlib.classification_loss() + trainlib.classification_loss()
    with pytest.raises(ValueError, match="loss: two terms give the metric 'accuracy'"):
        trainlib.make_train_step(twice, optax.sgd(0.1))(s, BATCH)
    unknown = trainlib.Loss(lambda f, b: (0.0, {}, {}), layers=("nope",))
    with pytest.raises(ValueError, match="unknown layer 'nope'; known layers: hidden, logits"):
        trainlib.make_train_step(unknown, optax.sgd(0.1))(s, BATCH)


class Shifted(nn.Module):
    """A net whose training pass reads a keyword input (as the released interpretable conv reads labels)."""

    @nn.compact
    def __call__(self, x, train: bool = False, shift=None):
        logits = nn.Dense(3, name="out")(x)
        return logits if shift is None else logits + shift


def feeding(name, value_of):
    return trainlib.Loss(lambda f, b: (jnp.zeros(()), {}, {}), inputs=lambda batch, step: {name: value_of(batch, step)})


def test_inputs_reach_the_training_forward_pass_with_the_step():
    s = trainlib.create_train_state(Shifted(), optax.sgd(0.1), X[:1], seed=0)
    s = s.replace(step=jnp.asarray(3, jnp.int32))
    # The shift is 10 on the true class at step 3: the cross-entropy is that of the shifted logits.
    loss = trainlib.classification_loss() + 2.0 * feeding(
        "shift", lambda batch, step: 10.0 * jax.nn.one_hot(batch["label"], 3) * (step == 3))
    _, metrics = trainlib.make_train_step(loss, optax.sgd(0.1))(s, BATCH)
    logits = Shifted().apply({"params": s.params}, X) + 10.0 * jax.nn.one_hot(BATCH["label"], 3)
    want = optax.softmax_cross_entropy_with_integer_labels(logits, BATCH["label"]).mean()
    np.testing.assert_allclose(metrics["cross_entropy"], want, rtol=1e-6)
    assert metrics["cross_entropy"] < 0.01  # the inference pass (no shift) would be near log(3)
    clash = feeding("shift", lambda b, t: 1.0) + feeding("shift", lambda b, t: 2.0)
    with pytest.raises(ValueError, match="loss: two terms feed the forward pass the input 'shift'"):
        trainlib.make_train_step(clash, optax.sgd(0.1))(s, BATCH)
