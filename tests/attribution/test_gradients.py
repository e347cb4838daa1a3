"""Saliency and gradient x input: known answers on linear models, many targets, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import nets
from interp.attribution import gradient_x_input, saliency

B, SHAPE, C = 3, (4, 5, 2), 6


def _linear():
    """f(x) = x . w per example, and logits x . W for C classes."""
    kw, kW, kx = jax.random.split(jax.random.key(0), 3)
    w = jax.random.normal(kw, SHAPE)
    W = jax.random.normal(kW, (*SHAPE, C))
    x = jax.random.normal(kx, (B, *SHAPE))
    score = lambda x: (x * w[None]).reshape(x.shape[0], -1).sum(axis=1)
    logits = lambda x: x.reshape(x.shape[0], -1) @ W.reshape(-1, C)
    return w, W, x, score, logits


def test_saliency_of_linear_model_is_its_weights():
    w, _, x, score, _ = _linear()
    expected = jnp.broadcast_to(w, x.shape)
    np.testing.assert_allclose(saliency(score)(x), expected, rtol=1e-6)
    np.testing.assert_allclose(saliency(score, "absolute")(x), jnp.abs(expected), rtol=1e-6)
    np.testing.assert_allclose(
        saliency(score, "max_abs_channel")(x), jnp.abs(expected).max(axis=-1), rtol=1e-6
    )


def test_gradient_x_input_of_linear_model_is_w_times_x_exactly():
    w, _, x, score, _ = _linear()
    np.testing.assert_array_equal(gradient_x_input(score)(x), w[None] * x)


@pytest.mark.parametrize("method", [saliency, gradient_x_input, lambda f: saliency(f, "max_abs_channel")])
def test_many_targets_equal_separate_calls(method):
    _, _, x, _, logits = _linear()
    target = jnp.array([[0, 5, 2], [1, 1, 3], [4, 0, 5]])
    many = method(logits)(x, target)
    assert many.shape[:2] == (B, 3)
    for j in range(3):
        np.testing.assert_allclose(many[:, j], method(logits)(x, target[:, j]), rtol=1e-6, atol=1e-7)


def test_per_class_saliency_of_linear_logits_is_the_class_column():
    _, W, x, _, logits = _linear()
    np.testing.assert_allclose(saliency(logits)(x, 4), jnp.broadcast_to(W[..., 4], x.shape), rtol=1e-6)


def test_bad_inputs_raise_named_errors():
    module = nets.create_module("small_cnn", num_classes=C)
    image = jnp.zeros((1, 16, 16, 3))
    model = nets.as_model(module, module.init(jax.random.key(0), image))
    with pytest.raises(ValueError, match="mode: expected one of"):
        saliency(model, "sideways")
    with pytest.raises(ValueError, match="x: expected shape"):
        saliency(model)(image[0], 0)
    with pytest.raises(ValueError, match="NaN"):
        gradient_x_input(model)(image.at[0, 0, 0, 0].set(jnp.nan), 0)
    with pytest.raises(ValueError, match="target: class indices"):
        saliency(model)(image, C)
    with pytest.raises(ValueError, match="expected logits"):
        saliency(lambda x: x.sum(axis=(1, 2, 3)))(image, 0)


def _pooled_net():
    """A plain function with `lax.reduce_window` max-pools (a user's own network, not the zoo's)."""
    from jax import lax

    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    w1, w2 = jax.random.normal(k1, (3, 3, 3, 8)), jax.random.normal(k2, (3, 3, 8, 8))
    head = jax.random.normal(k3, (8, C))
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    pool = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def logits(x):
        x = pool(jax.nn.relu(conv(x, w1)))
        x = pool(jax.nn.relu(conv(x, w2)))
        return x.mean(axis=(1, 2)) @ head

    return logits


def test_gradient_methods_route_reduce_window_pools_through_the_switch_pool():
    from interp.attribution import guided_backprop, integrated_gradients
    from interp.ops.jaxprs import equations

    logits = _pooled_net()
    x = jnp.round(jax.random.normal(jax.random.key(4), (2, 8, 8, 3)))  # ties in the pools
    target = jnp.array([1, 4])
    reference = jax.grad(lambda x: jnp.take_along_axis(logits(x), target[:, None], axis=1).sum())(x)
    np.testing.assert_array_equal(jax.jit(saliency(logits))(x, target), reference)
    for method in (saliency(logits), integrated_gradients(logits, steps=4, chunk_size=2), guided_backprop(logits)):
        program = equations(jax.make_jaxpr(lambda x, method=method: method(x, target))(x).jaxpr)
        assert "select_and_scatter_add" not in {e.primitive.name for e in program}
