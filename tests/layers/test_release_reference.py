"""Checks of the NumPy transcription of the MATLAB release itself (no JAX here)."""

import numpy as np
import pytest

from tests.layers import release_reference as ref


def test_matlab_round_goes_half_away_from_zero():
    assert ref.matlab_round(0.5) == 1 and ref.matlab_round(-0.5) == -1 and ref.matlab_round(2.5) == 3
    assert ref.matlab_round(0.49999999999999994) == 0 and ref.matlab_round(-2.4) == -2


def test_get_mu_one_hot_and_all_zero():
    h, w = 5, 6
    x = np.zeros((h, w, 2, 1))
    x[1, 4, 0, 0] = 0.7  # 1-based row 2, column 5; channel 1 stays all zero
    mu_x, mu_y, sqrtvar, row, col = ref.get_mu(x)
    assert (row[:, 0] == [2, 1]).all() and (col[:, 0] == [5, 1]).all()
    assert sqrtvar[0, 0] == 0 and sqrtvar[1, 0] == 0
    grid_h = np.linspace(-1, 1, h)
    # the column centre is read from linspace(-1, 1, h) too: 1.0, not linspace(-1, 1, 6)[4] = 0.6
    assert mu_x[0, 0, 0, 0] == pytest.approx(grid_h[1]) and mu_y[0, 0, 0, 0] == pytest.approx(1.0)
    assert mu_x[0, 0, 1, 0] == -1 and mu_y[0, 0, 1, 0] == -1  # all zero: first cell


def test_get_mask_peak_floor_and_non_part_filters():
    mu = np.zeros((1, 1, 2, 1))  # centre of a 7x7 map
    mask = ref.get_mask(mu, mu, np.array([2.0, 2.0]), 7, 7, filter_type=np.array([1, 2]))
    assert mask[3, 3, 0, 0] == 1 and mask[0, 0, 0, 0] == -1 and mask.min() == -1
    assert mask[3, 4, 0, 0] == pytest.approx(1 - 2 / 3)  # one step of linspace(-1, 1, 7) is 1/3
    assert (mask[:, :, 1, :] == 1).all()


def _one_hot_centre(depth, batch, value=0.3):
    x = np.zeros((3, 3, depth, batch))
    x[1, 1] = value
    return x


def test_backward_signs_single_positive_and_negative_by_hand():
    x = _one_hot_centre(1, 2)
    cls = np.array([1.0, -1.0]).reshape(1, 1, 1, 2)
    beta = np.array([2.0])
    mu_x, mu_y, sqrtvar, _, _ = ref.get_mu(x)
    mask = ref.get_mask(mu_x, mu_y, beta, 3, 3)  # centre 1, everything else -1
    dzdx, dzdbeta, strength = ref.conv_mask_backward(
        x, mask, np.ones_like(x), cls, beta, sqrtvar, None, 0, iteration=1, reverse_logz=False
    )
    # One listed image: its strength divided by the mean over the list is 1, then by mag = 1 / 0.1.
    step = 0.1 * 1e-5
    assert dzdx[1, 1, 0, 0] == pytest.approx(1 - step, abs=1e-12)  # positive: pulled down at the peak
    assert dzdx[0, 0, 0, 0] == pytest.approx(0 + step, abs=1e-12)  # mask -1 there, max(mask, 0) = 0
    assert dzdx[1, 1, 0, 1] == pytest.approx(1 + step, abs=1e-12)  # negative: uniform push up
    assert dzdx[0, 2, 0, 1] == pytest.approx(0 + step, abs=1e-12)
    assert strength[0, 0] == pytest.approx(0.3 / 9)
    # sqrtvar 0: 3 / 0 = inf, min(inf, 3) = 3, so beta is pulled to 3
    assert dzdbeta[0] == pytest.approx((3 - 2) * -10000)
    # no positive image at all: 0/0 = NaN, min(NaN, 3) = 3 in MATLAB, target 3 again
    _, dzdbeta, _ = ref.conv_mask_backward(x, mask, np.ones_like(x), -np.abs(cls), beta, sqrtvar, None, 0, iteration=1)
    assert dzdbeta[0] == pytest.approx(-10000)


def test_backward_groups_by_slice_mag_with_density_weights():
    x = _one_hot_centre(3, 3)
    cls = -np.ones((1, 1, 2, 3))
    cls[0, 0, 0, 0] = 1  # image 1: label 1; image 2: label 2; image 3: neither
    cls[0, 0, 1, 1] = 1
    slice_mag = np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 1.0]])  # tie in row 1 goes to label 1
    beta = np.full(3, 2.0)
    mu_x, mu_y, sqrtvar, _, _ = ref.get_mu(x)
    mask = ref.get_mask(mu_x, mu_y, beta, 3, 3)
    dzdx, _, _ = ref.conv_mask_backward(
        x, mask, np.zeros_like(x), cls, beta, sqrtvar, slice_mag, np.array([0.25, 0.5]), iteration=2
    )
    step = 0.1 / 2 * 1e-5  # 1 / mag with mag = iteration / 0.1
    w_pos, w_neg = 0.5 / np.array([0.25, 0.5]), 0.5 / (1 - np.array([0.25, 0.5]))
    for filt, lab in [(0, 0), (1, 1), (2, 0)]:
        for img in range(3):
            if cls[0, 0, lab, img] == 1:  # positive: -mask * strength, mask centre 1, edge -1
                assert dzdx[1, 1, filt, img] == pytest.approx(-step * w_pos[lab], abs=1e-15)
                assert dzdx[0, 1, filt, img] == pytest.approx(step * w_pos[lab], abs=1e-15)
            else:  # negative (setdiff with the group's positives): equal strengths, uniform
                assert np.allclose(dzdx[:, :, filt, img], step * w_neg[lab], rtol=0, atol=1e-15)


def test_reversed_logz_changes_the_positive_term():
    rng = np.random.default_rng(0)
    x = rng.random((4, 4, 2, 3))
    cls = np.array([1.0, 1.0, -1.0]).reshape(1, 1, 1, 3)
    beta = np.full(2, 2.0)
    mu_x, mu_y, sqrtvar, _, _ = ref.get_mu(x)
    mask = ref.get_mask(mu_x, mu_y, beta, 4, 4)
    args = (x, mask, np.zeros_like(x), cls, beta, sqrtvar, None, 0, 1)
    flipped, _, _ = ref.conv_mask_backward(*args, reverse_logz=True)
    plain, _, _ = ref.conv_mask_backward(*args, reverse_logz=False)
    assert not np.allclose(flipped[..., :2], plain[..., :2], rtol=0, atol=1e-12)
    assert np.array_equal(flipped[..., 2], plain[..., 2])  # the negative term has no mask in it


def test_update_slice_mag_init_blend_and_column_one_quirk():
    x = np.zeros((2, 2, 2, 2))
    x[0, 0, 0] = [0.4, 0.8]  # channel 0 spatial max per image
    x[1, 1, 1] = [0.02, 0.04]  # channel 1: mean 0.03, floored to 0.1
    cls = np.ones((1, 1, 1, 2))
    first = ref.update_slice_mag(None, x, cls)
    assert np.allclose(first[:, 0], [0.6, 0.1])
    second = ref.update_slice_mag(first, 2 * x, cls)
    assert np.allclose(second[:, 0], [0.9 * 0.6 + 0.1 * 1.2, 0.9 * 0.1 + 0.1 * 0.06])

    slice_mag = np.array([[0.5, 0.7], [0.2, 0.9]])
    x = np.zeros((2, 2, 2, 1))
    x[0, 0, 1, 0] = 1.0  # channel 0 is all zero, so its mean peak is replaced
    cls = np.array([-1.0, 1.0]).reshape(1, 1, 2, 1)  # only label 2 has a positive
    out = ref.update_slice_mag(slice_mag, x, cls)
    assert out[0, 1] == pytest.approx(0.9 * 0.7 + 0.1 * 0.5)  # from column 1 (0.5), not its own 0.7
    assert out[1, 1] == pytest.approx(0.9 * 0.9 + 0.1 * 1.0) and (out[:, 0] == slice_mag[:, 0]).all()
