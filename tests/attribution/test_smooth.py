"""SmoothGrad, SmoothGrad^2 and VarGrad as a wrapper of any method."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp.attribution import integrated_gradients, saliency, smooth_grad

B, D = 3, 6
W = jax.random.normal(jax.random.key(0), (D, 4))


def logits(x):
    return jnp.tanh(x @ W) * 2.0


X = jax.random.normal(jax.random.key(1), (B, D))
KEY = jax.random.key(7)


@pytest.mark.parametrize("method", [saliency(logits), integrated_gradients(logits, 8)])
def test_zero_noise_equals_the_wrapped_method(method):
    smoothed = smooth_grad(method, noise_std=0.0, samples=4)(X, target=2, key=KEY)
    # Equal up to float32 rounding (vmapped matmuls may sum in another order).
    np.testing.assert_allclose(smoothed, method(X, target=2), rtol=1e-5, atol=1e-6)
    squared = smooth_grad(method, noise_std=0.0, samples=4, mode="square")(X, target=2, key=KEY)
    np.testing.assert_allclose(squared, method(X, target=2) ** 2, rtol=1e-5, atol=1e-6)


def test_noise_is_reproducible_for_a_key_and_changes_with_it():
    sg = smooth_grad(saliency(logits), samples=8)
    first, again = sg(X, target=1, key=KEY), sg(X, target=1, key=KEY)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, sg(X, target=1, key=jax.random.key(8)))
    assert not np.allclose(first, saliency(logits)(X, 1))


def test_vargrad_is_nonnegative_and_is_square_minus_mean_squared():
    method = saliency(logits)
    var = smooth_grad(method, samples=16, mode="var")(X, 0, key=KEY)
    mean = smooth_grad(method, samples=16)(X, 0, key=KEY)
    square = smooth_grad(method, samples=16, mode="square")(X, 0, key=KEY)
    assert bool(jnp.all(var >= 0)) and float(var.max()) > 0
    np.testing.assert_allclose(var, jnp.maximum(square - mean**2, 0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["mean", "var"])
def test_chunked_equals_unchunked(mode):
    method = saliency(logits)
    whole = smooth_grad(method, samples=10, mode=mode)(X, 3, key=KEY)
    chunked = smooth_grad(method, samples=10, mode=mode, chunk_size=3)(X, 3, key=KEY)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_many_targets_pass_through():
    target = jnp.tile(jnp.arange(4), (B, 1))
    many = smooth_grad(saliency(logits), samples=4)(X, target, key=KEY)
    for j in range(4):
        np.testing.assert_allclose(
            many[:, j], smooth_grad(saliency(logits), samples=4)(X, j, key=KEY), rtol=1e-5, atol=1e-7
        )


def test_bad_options_raise_named_errors():
    with pytest.raises(ValueError, match="mode: expected one of"):
        smooth_grad(saliency(logits), mode="median")
    with pytest.raises(ValueError, match="noise_std"):
        smooth_grad(saliency(logits), noise_std=-1.0)
    with pytest.raises(ValueError, match="samples"):
        smooth_grad(saliency(logits), samples=0)
    with pytest.raises(ValueError, match="NaN"):
        smooth_grad(saliency(logits))(X.at[0, 0].set(jnp.inf), 0, key=KEY)


def test_per_example_arguments_follow_their_copies():
    # The copies are one batch for the wrapped method, so a [b] target and a
    # [b, ...] baseline must be repeated with them; a hand loop over the same
    # noise (one key per copy, as smooth_grad splits it) is the reference.
    method = integrated_gradients(logits, 8)
    target, baseline = jnp.array([0, 3, 1]), 0.5 * X[::-1]
    smoothed = smooth_grad(method, noise_std=0.2, samples=5, chunk_size=2)(X, target, baseline=baseline, key=KEY)
    sigma = 0.2 * (X.max(axis=1, keepdims=True) - X.min(axis=1, keepdims=True))
    copies = [X + sigma * jax.random.normal(k, X.shape) for k in jax.random.split(KEY, 5)]
    expected = sum(method(c, target, baseline=baseline) for c in copies) / 5
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5, atol=1e-6)
    as_list = smooth_grad(method, noise_std=0.2, samples=5, chunk_size=2)(X, [0, 3, 1], baseline=baseline, key=KEY)
    np.testing.assert_array_equal(as_list, smoothed)


def test_the_key_is_keyword_only():
    sg = smooth_grad(saliency(logits), samples=2)
    with pytest.raises(TypeError, match="key"):
        sg(X, 1)
