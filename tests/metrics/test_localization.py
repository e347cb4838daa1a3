"""Pointing game and mass in mask on constructed maps and masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import metrics


def _peak_map(b, h, w, points):
    a = np.zeros((b, h, w), np.float32)
    for i, (r, c) in enumerate(points):
        a[i, r, c] = 1.0
    return jnp.asarray(a)


def test_pointing_game_hit_miss_and_tolerance():
    mask = np.zeros((3, 32, 32), bool)
    mask[:, 10:20, 10:20] = True
    # inside; 3 px right of the box; far away
    a = _peak_map(3, 32, 32, [(15, 15), (15, 22), (0, 0)])
    exact = metrics.pointing_game(a, mask, tolerance=0)
    np.testing.assert_array_equal(exact, [True, False, False])
    near = metrics.pointing_game(a, mask, tolerance=3)  # distance to column 19 is exactly 3
    np.testing.assert_array_equal(near, [True, True, False])
    np.testing.assert_array_equal(metrics.pointing_game(a, mask, tolerance=2.9), [True, False, False])
    # An empty mask is a miss whatever the tolerance.
    assert not metrics.pointing_game(a, np.zeros_like(mask), tolerance=100)[0]


def test_pointing_game_channels_and_low_resolution():
    mask = np.zeros((2, 32, 32), bool)
    mask[:, 16:, 16:] = True  # bottom-right quadrant
    grad = np.zeros((2, 32, 32, 3), np.float32)
    grad[0, 24, 24] = [1.0, 1.0, 1.0]  # inside by sum
    grad[1, 24, 24] = [-2.0, 0.0, 0.0]  # negative: a miss by "sum", a hit by "abs"
    grad[1, 2, 2] = [0.5, 0.0, 0.0]
    np.testing.assert_array_equal(metrics.pointing_game(grad, mask, tolerance=0), [True, False])
    np.testing.assert_array_equal(metrics.pointing_game(grad, mask, tolerance=0, reduce="abs"), [True, True])
    cam = np.zeros((2, 4, 4), np.float32)  # a 4x4 CAM, upsampled 8x
    cam[0, 3, 3] = 1.0
    cam[1, 0, 1] = 1.0
    np.testing.assert_array_equal(metrics.pointing_game(cam, mask, tolerance=0), [True, False])


def test_mass_in_mask_matches_numpy():
    k1, k2 = jax.random.split(jax.random.key(0))
    a = np.asarray(jax.random.normal(k1, (5, 16, 16, 3)))
    mask = np.asarray(jax.random.bernoulli(k2, 0.3, (5, 16, 16)))
    s = a.sum(-1)
    pos = np.maximum(s, 0)
    want = (pos * mask).sum((1, 2)) / pos.sum((1, 2))
    np.testing.assert_allclose(metrics.mass_in_mask(a, mask), want, rtol=1e-5)
    absmap = np.abs(a).sum(-1)
    want_abs = (absmap * mask).sum((1, 2)) / absmap.sum((1, 2))
    np.testing.assert_allclose(metrics.mass_in_mask(a, mask, reduce="abs", mode="abs"), want_abs, rtol=1e-5)
    assert metrics.energy_pointing_game is metrics.mass_in_mask
    np.testing.assert_array_equal(metrics.mass_in_mask(np.zeros((1, 4, 4)), np.ones((1, 4, 4))), [0.0])


def test_part_masks_and_errors():
    # A SynthParts-like int part mask: 0 background, 1 and 2 two parts.
    part = np.zeros((2, 16, 16), np.int32)
    part[:, 2:8, 2:8] = 1
    part[:, 9:14, 9:14] = 2
    obj = part > 0
    # The mask itself as a map: all mass inside, and its maximum is on the object.
    np.testing.assert_array_equal(metrics.mass_in_mask(obj.astype(np.float32), obj), [1.0, 1.0])
    hits = metrics.pointing_game(obj.astype(np.float32), obj, tolerance=0)
    np.testing.assert_array_equal(hits, [True, True])
    np.testing.assert_array_equal(metrics.mass_in_mask((~obj).astype(np.float32), obj), [0.0, 0.0])
    on_part2 = (part == 2).astype(np.float32)
    np.testing.assert_allclose(metrics.mass_in_mask(on_part2, part == 1), [0.0, 0.0])
    np.testing.assert_allclose(metrics.mass_in_mask(on_part2 + (part == 1), part == 1), [36 / 61, 36 / 61])
    with pytest.raises(ValueError, match=r"mask: expected \[b, h, w\]"):
        metrics.pointing_game(jnp.ones((2, 8, 8)), obj[0])
    with pytest.raises(ValueError, match="reduce"):
        metrics.mass_in_mask(jnp.ones((2, 8, 8, 3)), obj, reduce="max")
