"""Occlusion: ignored regions give zero, a linear model matches the hand computation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interp.attribution import occlusion


@jax.jit
def _left_half_occlusion(x, w):
    fn = lambda x: jnp.tanh(x * w[None]).sum(axis=(1, 2, 3))
    return occlusion(fn, window=(4, 4), stride=(2, 2), chunk_size=7)(x)


@given(seed=st.integers(0, 2**31 - 1))
def test_occluding_a_zero_weight_region_gives_exactly_zero(seed):
    # The function reads only columns < 8 of a 16-wide image; with 4-wide
    # windows at stride 2, every window covering a column >= 11 lies in the
    # ignored half, so those pixels' attributions are exactly 0.
    kx, kw = jax.random.split(jax.random.key(seed))
    x = jax.random.uniform(kx, (2, 12, 16, 3))
    w = jax.random.normal(kw, (12, 16, 3)).at[:, 8:].set(0.0)
    attr = _left_half_occlusion(x, w)
    assert attr.shape == (2, 12, 16)
    np.testing.assert_array_equal(attr[:, :, 11:], 0.0)
    assert float(jnp.abs(attr[:, :, :8]).max()) > 0


def test_linear_model_matches_hand_computation():
    x = np.asarray(jax.random.uniform(jax.random.key(0), (1, 5, 6, 2)))
    w = np.asarray(jax.random.normal(jax.random.key(1), (5, 6, 2)))
    fn = lambda x: (x * w[None]).sum(axis=(1, 2, 3))
    window, stride, gray = (2, 3), (2, 2), 0.5
    # By hand: each window's drop is sum over it of (x - gray) * w; a pixel
    # gets the mean drop of the windows covering it (row 4 is covered by none).
    total, count = np.zeros((5, 6)), np.zeros((5, 6))
    for r, c in itertools.product(range(0, 4, 2), range(0, 4, 2)):
        drop = ((x[0, r : r + 2, c : c + 3] - gray) * w[r : r + 2, c : c + 3]).sum()
        total[r : r + 2, c : c + 3] += drop
        count[r : r + 2, c : c + 3] += 1
    expected = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    attr = occlusion(fn, window, stride, gray, chunk_size=3)(jnp.asarray(x))
    np.testing.assert_allclose(attr[0], expected, rtol=1e-5, atol=1e-6)


def test_array_baseline_probability_output_and_many_targets():
    W = jax.random.normal(jax.random.key(2), (8 * 8 * 3, 5))
    logits = lambda x: x.reshape(x.shape[0], -1) @ W
    x = jax.random.uniform(jax.random.key(3), (2, 8, 8, 3))
    baseline = jnp.zeros((8, 8, 3))
    occ = jax.jit(occlusion(logits, (4, 4), (2, 2), baseline, chunk_size=4, output="probability"))
    target = jnp.array([[0, 4], [3, 1]])
    many = occ(x, target)
    assert many.shape == (2, 2, 8, 8)
    for j in range(2):
        np.testing.assert_allclose(many[:, j], occ(x, target[:, j]), rtol=1e-5, atol=1e-7)
    whole = occlusion(logits, (4, 4), (2, 2), baseline, chunk_size=None, output="probability")(x, target)
    np.testing.assert_allclose(many, whole, rtol=1e-5, atol=1e-7)
    # Probability drops are bounded by the probabilities themselves.
    assert float(jnp.abs(many).max()) <= 1.0


def test_bad_options_and_inputs_raise_named_errors():
    fn = lambda x: x.sum(axis=(1, 2, 3))
    with pytest.raises(ValueError, match="output: expected one of"):
        occlusion(fn, output="logit")
    with pytest.raises(ValueError, match="window"):
        occlusion(fn, window=(0, 2))
    with pytest.raises(ValueError, match="window"):
        occlusion(fn, window=(9, 9))(jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="x: expected images"):
        occlusion(fn)(jnp.ones((1, 8, 8)))
    with pytest.raises(ValueError, match="target: output='probability'"):
        occlusion(fn, output="probability")(jnp.ones((1, 8, 8, 3)))
