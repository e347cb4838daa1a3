"""`interp.layers.masked_conv` against a NumPy transcription of the authors' MATLAB release (`release_reference`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp.layers import masked_conv as cm
from tests.layers import release_reference as ref


def to_matlab(a):
    """[B, h, w, C] -> MATLAB's [h, w, C, B]."""
    return np.transpose(np.asarray(a), (1, 2, 3, 0))


def from_matlab(a):
    return np.transpose(np.asarray(a), (3, 0, 1, 2))


def maps(seed, batch=6, side=7, channels=5, silent=True):
    """Non-negative maps like a ReLU's: sparse bumps, some maps all zero."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(size=(batch, side, side, channels)) - 0.6, 0.0)
    if silent:
        x[0, :, :, 1] = 0.0  # one image where a filter is silent
        x[:, :, :, 2] *= 0.1
    return x


def signed(labels, num_outputs):
    if num_outputs == 1:
        return np.where(np.asarray(labels) == 1, 1.0, -1.0)[:, None]
    return 2.0 * np.eye(num_outputs)[labels] - 1.0


def test_centre_and_mask_equal_getmu_and_getmask():
    x = maps(0)
    beta = np.array([2.0, 1.5, 3.0, 2.5, 1.7])
    rows, cols, sigma = cm.mask_center(jnp.asarray(x, jnp.float32))
    mu_x, mu_y, sqrtvar, row, col = ref.get_mu(to_matlab(x))
    np.testing.assert_array_equal(np.asarray(rows).T + 1, row)
    np.testing.assert_array_equal(np.asarray(cols).T + 1, col)
    np.testing.assert_allclose(np.asarray(sigma).T, sqrtvar, rtol=1e-5, atol=1e-6)
    mask = cm.released_mask(rows, cols, jnp.asarray(beta), (7, 7))
    np.testing.assert_allclose(to_matlab(mask), ref.get_mask(mu_x, mu_y, beta, 7, 7), atol=1e-6)
    assert np.asarray(rows)[0, 1] == 0 and np.asarray(cols)[0, 1] == 0  # a silent map's centre: the first cell


def test_round_is_matlabs():
    np.testing.assert_array_equal(cm.matlab_round(jnp.array([0.5, 1.5, 2.5, -0.5, 0.49])), [1, 2, 3, -1, 0])


# (outputs, slice_mag given?, reverse_logz, epoch): one-output, multi before the first update, multi grouped
# with the density weights, more than ten classes.
CASES = [(1, False, True, 1), (3, False, True, 2), (3, True, True, 3), (3, True, False, 1), (11, True, True, 4)]


@pytest.mark.parametrize("outputs,grouped,reverse,epoch", CASES)
def test_backward_equals_the_release(outputs, grouped, reverse, epoch):
    rng = np.random.default_rng(outputs + 10 * epoch)
    batch, side, channels, features = 12, 6, 5, 4
    x = maps(epoch, batch, side, channels)
    labels = rng.integers(0, max(outputs, 2), batch)
    signs = signed(labels, outputs)
    slice_mag = rng.uniform(0.1, 1.0, (channels, outputs)) if grouped else np.zeros((channels, outputs))
    density = rng.dirichlet(np.ones(outputs)) if outputs > 1 else np.array([0.75])
    beta = rng.uniform(1.5, 3.0, channels)
    kernel = rng.normal(size=(3, 3, channels, features)) * 0.1
    bias = rng.normal(size=features)
    cotangent = rng.normal(size=(batch, side, side, features))

    guide = cm.mask_guide(jnp.asarray(signs), jnp.asarray(slice_mag, jnp.float32), jnp.asarray(density), epoch)
    with jax.enable_x64(True):
        def layer(x, kernel, bias, beta):
            return cm.conv_mask(x, kernel, bias, beta, guide, padding=1, reverse_logz=reverse)

        out, vjp = jax.vjp(layer, *map(jnp.asarray, (x, kernel, bias, beta)))
        dx, dkernel, dbias, dbeta = vjp(jnp.asarray(cotangent) / batch)  # a batch-mean loss

        # The release: getMu/getMask, the conv's own input gradient, then its conv_mask backward.
        mu_x, mu_y, sqrtvar, _, _ = ref.get_mu(to_matlab(x))
        mask = ref.get_mask(mu_x, mu_y, beta, side, side)
        inputs = from_matlab(ref.conv_mask_forward_input(to_matlab(x), mask))
        conv = lambda i, k: jax.lax.conv_general_dilated(i, k, (1, 1), ((1, 1), (1, 1)),
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        expected_out, conv_vjp = jax.vjp(conv, jnp.asarray(inputs), jnp.asarray(kernel))
        d_inputs, d_kernel = conv_vjp(jnp.asarray(cotangent))
        cls = np.transpose(signs)[None, None]  # [1, 1, K, B]
        dzdx, dzdbeta, _ = ref.conv_mask_backward(
            to_matlab(x), mask, to_matlab(d_inputs), cls, beta, sqrtvar, slice_mag if grouped else None,
            density if outputs > 1 else 0.0, epoch, reverse_logz=reverse)

    np.testing.assert_allclose(out, np.asarray(expected_out) + bias[None, None, None, :], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dkernel, np.asarray(d_kernel) / batch, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbias, cotangent.sum((0, 1, 2)) / batch, rtol=1e-10)
    np.testing.assert_allclose(dx, from_matlab(dzdx) / batch, rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(dbeta, dzdbeta / batch, rtol=1e-6)
    # The injected term is there and of the release's size: not lost below the task gradient's rounding.
    injected = from_matlab(dzdx) - np.asarray(d_inputs) * np.maximum(from_matlab(mask), 0)
    assert np.abs(injected).max() > 1e-7


def test_the_logz_reversal_changes_the_injected_gradient():
    with jax.enable_x64(True):
        x = jnp.asarray(maps(3, batch=8))
        rows, cols, _ = cm.mask_center(x)
        mask = cm.released_mask(rows, cols, jnp.full(5, 2.0), (7, 7))
        guide = cm.mask_guide(jnp.asarray(signed(np.arange(8) % 2, 1)), jnp.zeros((5, 1)), jnp.ones(1), 1.0)
        reversed_, plain = (np.asarray(cm.injected_gradient(x, mask, guide, reverse_logz=r)) for r in (True, False))
    assert np.abs(reversed_ - plain).max() > 1e-3 * np.abs(plain).max()
    # Only the positives' term reads logZ+: the negatives' is the same.
    negatives = ~np.asarray(guide.positive)[:, 0]
    np.testing.assert_allclose(reversed_[negatives], plain[negatives], rtol=1e-9)


def test_infinities_are_replaced_as_released():
    """Activations large enough that exp(S / 0.5) overflows float64 as it overflowed the release's float32."""
    x = maps(4, batch=6, channels=3)
    x[1, 3, 3, 0] = 2e4  # S = mean(x * mask) ~ 400 on one positive image of filter 0
    signs = signed(np.array([1, 1, 1, 0, 0, 0]), 1)
    with jax.enable_x64(True):
        rows, cols, sigma = cm.mask_center(jnp.asarray(x))
        beta = jnp.full(3, 2.0)
        mask = cm.released_mask(rows, cols, beta, (7, 7))
        guide = cm.mask_guide(jnp.asarray(signs), jnp.zeros((3, 1)), jnp.ones(1), 1.0)
        injected = cm.injected_gradient(jnp.asarray(x), mask, guide)
        mu_x, mu_y, sqrtvar, _, _ = ref.get_mu(to_matlab(x))
        dzdx, _, _ = ref.conv_mask_backward(to_matlab(x), ref.get_mask(mu_x, mu_y, beta, 7, 7),
                                            np.zeros(to_matlab(x).shape), np.transpose(signs)[None, None], beta,
                                            sqrtvar, None, 0.0, 1.0)
    assert np.all(np.isfinite(np.asarray(injected)))
    np.testing.assert_allclose(injected, from_matlab(dzdx), rtol=1e-6, atol=1e-14)


def test_slice_mag_follows_the_release_with_its_column_zero_quirk():
    rng = np.random.default_rng(5)
    slice_mag = np.zeros((4, 3))
    with jax.enable_x64(True):
        ours = jnp.zeros((4, 3))
        for step in range(5):
            x = maps(step, batch=9, channels=4)
            if step:
                x[:, :, :, 3] = 0.0  # silent after step 0: its zero means take column 0's value
            labels = rng.integers(0, 3 if step else 2, 9)  # class 2 first appears at step 1
            cls = np.transpose(signed(labels, 3))[None, None]
            slice_mag = ref.update_slice_mag(slice_mag, to_matlab(x), cls)
            ours = cm.update_slice_mag(ours, jnp.asarray(x), jnp.asarray(signed(labels, 3)))
            np.testing.assert_allclose(ours, slice_mag, rtol=1e-12)
            if step == 0:
                gap = abs(slice_mag[3, 1] - slice_mag[3, 0])
    # Column 0 leaks into the silent filter's class-1 mean (a per-class update would keep it where it was).
    assert abs(slice_mag[3, 1] - slice_mag[3, 0]) < 0.8 * gap, (gap, slice_mag[3])


def test_guide_groups_filters_by_their_class():
    slice_mag = jnp.array([[0.2, 0.9], [0.8, 0.1], [0.5, 0.5]])
    labels = jnp.asarray(signed(np.array([0, 1, 1]), 2))
    guide = cm.mask_guide(labels, slice_mag, jnp.array([0.25, 0.75]), 2)
    np.testing.assert_array_equal(guide.positive, [[False, True, True], [True, False, False], [True, False, False]])
    np.testing.assert_allclose(guide.w_pos, [0.5 / 0.75, 0.5 / 0.25, 0.5 / 0.25])
    np.testing.assert_allclose(guide.w_neg, [0.5 / 0.25, 0.5 / 0.75, 0.5 / 0.75])
    fresh = cm.mask_guide(labels, jnp.zeros((3, 2)), jnp.array([0.25, 0.75]), 1)  # before the first update
    assert bool(fresh.positive.all()) and np.allclose(fresh.w_pos, 1.0)


def test_without_a_guide_beta_gets_nothing_and_inputs_the_masked_gradient():
    x = jnp.asarray(maps(6), jnp.float32)
    kernel = jnp.ones((3, 3, 5, 2)) * 0.1
    grads = jax.grad(lambda x, b: cm.conv_mask(x, kernel, jnp.zeros(2), b, padding=1).sum(), (0, 1))(
        x, jnp.full(5, 2.0))
    assert not np.any(np.asarray(grads[1]))
    rows, cols, _ = cm.mask_center(x)
    mask = cm.released_mask(rows, cols, jnp.full(5, 2.0), (7, 7))
    plain = jax.grad(lambda i: jax.lax.conv_general_dilated(i, kernel, (1, 1), ((1, 1), (1, 1)),
                                                            dimension_numbers=("NHWC", "HWIO", "NHWC")).sum())(x)
    np.testing.assert_allclose(grads[0], plain * jnp.maximum(mask, 0), rtol=1e-6)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="beta: expected one value per input filter"):
        cm.conv_mask(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 2)), jnp.zeros(2), jnp.ones(2))
    with pytest.raises(ValueError, match=r"x, kernel: expected maps \[B, h, w, C\]"):
        cm.conv_mask(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 4, 2)), jnp.zeros(2), jnp.ones(3))
