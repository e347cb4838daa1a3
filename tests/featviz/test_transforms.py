"""Transforms: exact geometry on known images, and the randomness each one draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import featviz as fv

IMAGES = jax.random.uniform(jax.random.key(0), (2, 9, 9, 3))


def test_pad_fills_a_constant_border():
    out = np.asarray(fv.pad(3, value=0.25)(jax.random.key(1), IMAGES))
    assert out.shape == (2, 15, 15, 3)
    np.testing.assert_array_equal(out[:, 3:-3, 3:-3], IMAGES)
    border = np.ones(out.shape[1:3], bool)
    border[3:-3, 3:-3] = False
    assert np.all(out[:, border] == 0.25)


def test_jitter_is_a_crop_at_every_offset_in_range():
    seen = set()
    for i in range(60):
        out = np.asarray(fv.jitter(3)(jax.random.key(i), IMAGES))
        assert out.shape == (2, 6, 6, 3)
        matches = [
            (dy, dx) for dy in range(3) for dx in range(3) if np.array_equal(out, IMAGES[:, dy : dy + 6, dx : dx + 6])
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9


def test_unit_scale_and_zero_rotation_are_the_identity():
    key = jax.random.key(2)
    np.testing.assert_allclose(fv.random_scale([1.0])(key, IMAGES), IMAGES, atol=1e-6)
    np.testing.assert_allclose(fv.random_rotate([0])(key, IMAGES), IMAGES, atol=1e-6)


def test_quarter_turn_equals_rot90_and_scale_two_zooms_on_the_center():
    turned = fv.random_rotate([90])(jax.random.key(3), IMAGES)
    np.testing.assert_allclose(turned, np.rot90(IMAGES, k=1, axes=(1, 2)), atol=1e-5)
    zoomed = np.asarray(fv.random_scale([2.0])(jax.random.key(3), IMAGES))
    np.testing.assert_allclose(zoomed[:, 4, 4], IMAGES[:, 4, 4], atol=1e-6)  # the center stays
    np.testing.assert_allclose(zoomed[:, 4, 6], IMAGES[:, 4, 5], atol=1e-6)  # 2 px out is 1 px out


def test_scale_rotate_in_one_resampling_reduces_to_each_alone():
    key = jax.random.key(4)
    np.testing.assert_allclose(
        fv.random_scale_rotate([1.0], [90])(key, IMAGES), fv.random_rotate([90])(key, IMAGES), atol=1e-6
    )
    np.testing.assert_allclose(
        fv.random_scale_rotate([2.0], [0])(key, IMAGES), fv.random_scale([2.0])(key, IMAGES), atol=1e-6
    )
    # Zoom 2 then a counterclockwise quarter turn: 2 px right of the center shows what was 1 px below it.
    both = np.asarray(fv.random_scale_rotate([2.0], [90])(key, IMAGES))
    np.testing.assert_allclose(both[:, 4, 6], IMAGES[:, 5, 4], atol=1e-6)


def test_random_choices_cover_the_list():
    outcomes = set()
    for i in range(40):
        out = np.asarray(fv.random_rotate([0, 90, 180])(jax.random.key(i), IMAGES))
        for k in range(3):
            if np.allclose(out, np.rot90(IMAGES, k=k, axes=(1, 2)), atol=1e-5):
                outcomes.add(k)
    assert outcomes == {0, 1, 2}


def test_standard_transforms_shape_and_keys():
    t = fv.standard_transforms()
    images = jnp.full((1, 64, 64, 3), 0.3)
    out = t(jax.random.key(0), images)
    assert out.shape == (1, 76, 76, 3)  # +24 pad, -8 and -4 jitter
    np.testing.assert_array_equal(t(jax.random.key(5), IMAGES), t(jax.random.key(5), IMAGES))
    assert not np.allclose(t(jax.random.key(5), IMAGES), t(jax.random.key(6), IMAGES))


def test_compose_applies_in_order():
    out = fv.compose(fv.pad(2, value=0.0), fv.jitter(4))(jax.random.key(0), IMAGES)
    assert out.shape == (2, 9, 9, 3)
    out = fv.compose(fv.jitter(4), fv.pad(2, value=0.0))(jax.random.key(0), IMAGES)
    assert out.shape == (2, 9, 9, 3) and np.all(np.asarray(out)[:, :2] == 0)


def test_bad_arguments_raise_named_errors():
    with pytest.raises(ValueError, match="distance"):
        fv.jitter(0)
    with pytest.raises(ValueError, match="too small"):
        fv.jitter(9)(jax.random.key(0), IMAGES)
    with pytest.raises(ValueError, match="scales"):
        fv.random_scale([0.0, 1.0])
