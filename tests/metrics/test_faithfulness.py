"""Deletion and insertion curves on a model that is linear in the pixels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import metrics

B, H, W, C = 4, 12, 12, 3


def _linear_setup(seed=0):
    kw, kx = jax.random.split(jax.random.key(seed))
    w = jax.random.normal(kw, (H, W, C))
    x = jax.random.uniform(kx, (B, H, W, C))

    def fn(x):  # logits [b, 2]: class 0 scores sum(w * x), class 1 is fixed at 0
        s = (x * w[None]).sum(axis=(1, 2, 3)) / 4.0
        return jnp.stack([s, jnp.zeros_like(s)], axis=1)

    exact = x * w[None]  # the exact per-pixel contributions (gradient x input)
    return fn, x, exact


def test_exact_attribution_beats_random_ranking():
    fn, x, exact = _linear_setup()
    rand = jax.random.normal(jax.random.key(7), (B, H, W, C))
    for make, better in ((metrics.deletion, np.less), (metrics.insertion, np.greater)):
        for baseline in ("zeros", "blur"):
            evaluate = make(fn, steps=12, baseline=baseline)
            good = evaluate(x, exact, target=0).auc
            bad = evaluate(x, rand, target=0).auc
            assert good.shape == (B,)
            assert np.all(better(np.asarray(good), np.asarray(bad))), (make.__name__, baseline, good, bad)


@pytest.mark.parametrize("make", [metrics.deletion, metrics.insertion])
def test_curves_start_and_end_at_image_and_baseline(make):
    fn, x, exact = _linear_setup(1)
    curves = make(fn, steps=7, baseline="blur", blur_sigma=2.0)(x, exact, target=jnp.zeros((B,), jnp.int32))
    prob = lambda img: jax.nn.softmax(fn(img), axis=1)[:, 0]  # noqa: E731
    full, base = prob(x), prob(metrics.gaussian_blur(x, 2.0))
    first, last = (full, base) if make is metrics.deletion else (base, full)
    assert curves.scores.shape == (B, 8)
    np.testing.assert_allclose(curves.scores[:, 0], first, rtol=1e-5)
    np.testing.assert_allclose(curves.scores[:, -1], last, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(curves.fractions)[[0, -1]], [0.0, 1.0])
    # A linear model with a zero baseline: removing the k largest contributions
    # leaves the smallest possible score, so the exact curve lies below any other.
    if make is metrics.deletion:
        evaluate = make(fn, steps=7, output="score")
        exact_curve = evaluate(x, exact, target=0).scores
        other = evaluate(x, jax.random.normal(jax.random.key(5), (B, H, W)), target=0).scores
        assert np.all(np.asarray(exact_curve) <= np.asarray(other) + 1e-5)
        assert np.all(np.asarray(exact_curve)[:, 1:-1] < np.asarray(other)[:, 1:-1])


def test_auc_of_a_constant_curve_is_the_constant():
    np.testing.assert_allclose(metrics.auc(jnp.full((3, 9), 0.37)), 0.37, rtol=1e-6)
    const = lambda x: jnp.full((x.shape[0],), 0.25)  # noqa: E731
    x = jnp.ones((2, 5, 7, 3))  # 35 pixels over 4 steps: unequal fractions
    ranking = jax.random.normal(jax.random.key(0), (2, 5, 7))
    curves = metrics.deletion(const, steps=4, output="score")(x, ranking)
    np.testing.assert_allclose(curves.auc, 0.25, rtol=1e-6)


def test_chunked_equals_unchunked_and_low_resolution_maps():
    fn, x, exact = _linear_setup(2)
    coarse = jax.random.normal(jax.random.key(3), (B, 3, 3))  # a CAM-sized map, upsampled
    full = metrics.insertion(fn, steps=10)(x, coarse, target=0)
    for chunk in (1, 4):
        part = metrics.insertion(fn, steps=10, chunk_size=chunk)(x, coarse, target=0)
        np.testing.assert_allclose(part.scores, full.scores, rtol=1e-6)
        np.testing.assert_allclose(part.auc, full.auc, rtol=1e-6)


def test_errors_name_what_was_expected():
    fn, x, exact = _linear_setup()
    with pytest.raises(ValueError, match="target"):
        metrics.deletion(fn)(x, exact)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        metrics.deletion(fn)(x, exact, target=5)
    with pytest.raises(ValueError, match="baseline"):
        metrics.deletion(fn, baseline="noise")(x, exact, target=0)
    # One vocabulary with attribution.occlusion's `output`.
    with pytest.raises(ValueError, match="output: expected one of 'score', 'probability'; got 'softmax'"):
        metrics.insertion(fn, output="softmax")
    with pytest.raises(ValueError, match="target: needed with output='probability'"):
        metrics.deletion(fn, output="probability")(x, exact)


def test_curves_under_an_outer_jit_equal_eager():
    fn, x, exact = _linear_setup(2)
    evaluate = metrics.deletion(fn, steps=6)
    eager = evaluate(x, exact, jnp.zeros((B,), jnp.int32)).scores
    jitted = jax.jit(evaluate)(x, exact, jnp.zeros((B,), jnp.int32)).scores
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
