"""Integrated gradients: linear models, completeness, chunking, baselines, targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from interp.attribution import integrated_gradients
from interp.attribution.integrated import IG_METHODS, quadrature

B, D, H = 3, 8, 16


def _mlp():
    """A smooth nonlinear net: tanh MLP to 4 logits."""
    k1, k2 = jax.random.split(jax.random.key(1))
    w1 = jax.random.normal(k1, (D, H)) / np.sqrt(D)
    w2 = jax.random.normal(k2, (H, 4)) / np.sqrt(H)
    return lambda x: jnp.tanh(jnp.tanh(x @ w1) @ w2) * 3.0


@pytest.mark.parametrize("method", IG_METHODS)
def test_ig_of_linear_model_is_difference_times_weights(method):
    kw, kx, kb = jax.random.split(jax.random.key(0), 3)
    w = jax.random.normal(kw, (5, 3))
    x, baseline = jax.random.normal(kx, (B, 5, 3)), jax.random.normal(kb, (B, 5, 3))
    fn = lambda x: (x * w[None]).sum(axis=(1, 2))
    attr = integrated_gradients(fn, steps=7, method=method)(x, baseline=baseline)
    np.testing.assert_allclose(attr, (x - baseline) * w[None], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", IG_METHODS)
def test_quadrature_weights_sum_to_one_and_nodes_lie_in_unit_interval(method):
    alphas, weights = quadrature(method, 9)
    assert np.isclose(weights.sum(), 1.0) and alphas.min() >= 0 and alphas.max() <= 1


FN = _mlp()
IG_GAUSS = jax.jit(integrated_gradients(FN, 64, "gauss_legendre"), static_argnames="return_gap")
IG_TRAPEZOID = jax.jit(integrated_gradients(FN, 128, "riemann_trapezoid"), static_argnames="return_gap")


@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 2.0))
@example(seed=730046, scale=2.0)  # a steep path: Gauss-Legendre's gap is 6.9e-3 with 32 nodes, 2.6e-6 with 64
def test_ig_completeness_on_a_smooth_net(seed, scale):
    # Tolerances (scores lie in [-3, 3]): Gauss-Legendre's error falls
    # exponentially with the nodes on this analytic path; with 64 it is at
    # float32 rounding (at most 1.9e-6 over 4,000 random paths at scale 2),
    # |gap| < 1e-4. The trapezoid rule's error falls as 1/steps^2: at most
    # 1.0e-3 over those paths with 128 steps, |gap| < 5e-3.
    kx, kb = jax.random.split(jax.random.key(seed))
    x = scale * jax.random.normal(kx, (B, D))
    baseline = scale * jax.random.normal(kb, (B, D))
    target = jnp.array([0, 1, 3])
    _, gap = IG_GAUSS(x, target, baseline, return_gap=True)
    assert gap.shape == (B,) and float(jnp.abs(gap).max()) < 1e-4
    _, gap = IG_TRAPEZOID(x, target, baseline, return_gap=True)
    assert float(jnp.abs(gap).max()) < 5e-3


@pytest.mark.parametrize("steps, chunk_size", [(16, 1), (16, 5), (16, 16), (40, 4), (40, 20)])
def test_chunked_equals_unchunked(steps, chunk_size):
    # A chunk of up to 16 steps is summed as scaled slices, more as an einsum:
    # 40 steps at once against chunks of 4 (slices) and 20 (einsum) compares the two.
    fn = _mlp()
    x = jax.random.normal(jax.random.key(2), (B, D))
    whole = integrated_gradients(fn, steps)(x, target=2)
    chunked = integrated_gradients(fn, steps, chunk_size=chunk_size)(x, target=2)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_many_baselines_average_single_baseline_results():
    fn = _mlp()
    x = jax.random.normal(jax.random.key(3), (B, D))
    baselines = jax.random.normal(jax.random.key(4), (4, B, D))
    ig = integrated_gradients(fn, 12)
    attr, gap = ig(x, 1, baselines, return_gap=True)
    singles = [ig(x, 1, b, return_gap=True) for b in baselines]
    np.testing.assert_allclose(attr, np.mean([a for a, _ in singles], axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gap, np.mean([g for _, g in singles], axis=0), rtol=1e-5, atol=1e-6)


def test_many_targets_equal_separate_calls():
    fn = _mlp()
    x = jax.random.normal(jax.random.key(5), (B, D))
    target = jnp.tile(jnp.arange(4), (B, 1))
    attr, gap = integrated_gradients(fn, 8, chunk_size=3)(x, target=target, return_gap=True)
    assert attr.shape == (B, 4, D) and gap.shape == (B, 4)
    for j in range(4):
        single, single_gap = integrated_gradients(fn, 8)(x, target=j, return_gap=True)
        np.testing.assert_allclose(attr[:, j], single, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gap[:, j], single_gap, rtol=1e-4, atol=1e-5)


def test_bad_options_and_inputs_raise_named_errors():
    fn = _mlp()
    with pytest.raises(ValueError, match="method: expected one of"):
        integrated_gradients(fn, method="simpson")
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(fn, steps=0)
    with pytest.raises(ValueError, match="chunk_size"):
        integrated_gradients(fn, chunk_size=-2)
    x = jnp.ones((B, D))
    with pytest.raises(ValueError, match="baseline: expected shape"):
        integrated_gradients(fn)(x, 0, jnp.zeros((B, D + 1)))
    with pytest.raises(ValueError, match="NaN"):
        integrated_gradients(fn)(x.at[0, 0].set(jnp.nan), 0)
    with pytest.raises(ValueError, match="x: expected a batch"):
        integrated_gradients(fn)(jnp.ones(D), 0)
