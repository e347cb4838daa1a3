"""Parameterizations: valid range, round trips, and the estimated color decorrelation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import featviz as fv

PARAMS = {
    "pixel": lambda **kw: fv.pixel(12, 10, batch=2, **kw),
    "pixel decorrelated": lambda **kw: fv.pixel(12, 10, batch=2, decorrelate=True, **kw),
    "fourier": lambda **kw: fv.fourier(12, 10, batch=2, decorrelate=False, **kw),
    "fourier decorrelated": lambda **kw: fv.fourier(12, 11, batch=2, **kw),
}


@pytest.mark.parametrize("name", PARAMS)
def test_images_lie_in_the_valid_range_even_for_huge_parameters(name):
    param = PARAMS[name]()
    params = 1e3 * param.init(jax.random.key(0)) / 0.01
    images = np.asarray(param.to_image(params))
    assert images.shape == param.shape
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.std() > 0.1  # large parameters reach the whole range


@pytest.mark.parametrize("name", PARAMS)
def test_from_image_inverts_to_image(name):
    param = PARAMS[name]()
    images = jax.random.uniform(jax.random.key(1), param.shape, minval=0.02, maxval=0.98)
    np.testing.assert_allclose(param.to_image(param.from_image(images)), images, atol=1e-4)


def test_fourier_start_is_smooth_gray_with_low_frequencies_dominating():
    param = fv.fourier(32, batch=1, sd=0.05, decorrelate=False)
    image = np.asarray(param.to_image(param.init(jax.random.key(2))))[0, :, :, 0]
    assert abs(image.mean() - 0.5) < 0.05
    power = np.abs(np.fft.rfft2(image - image.mean())) ** 2
    assert power[:4, :4].sum() > power[8:24, 8:].sum()  # 1/f scaling: the start is not white noise


def test_spectrum_scale_falls_with_frequency():
    scale = fv.spectrum_scale(8, 8, decay_power=1.0)
    np.testing.assert_allclose(scale[0, 0], np.sqrt(64) * 8, rtol=1e-6)  # DC is clamped to f = 1/8
    np.testing.assert_allclose(scale[0, 2], np.sqrt(64) / 0.25, rtol=1e-6)
    assert scale[0, 1] > scale[0, 2] > scale[0, 3] > scale[0, 4]


def test_color_correlation_whitens_the_dataset_it_was_estimated_on():
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.5, 0.2], [0.9, 0.1, -0.3], [0.8, -0.4, 0.1]], np.float32)
    pixels = rng.normal(size=(20000, 3)).astype(np.float32) @ mixing.T
    matrix = fv.color_correlation(pixels.reshape(100, 200, 3))
    np.testing.assert_allclose(matrix @ matrix.T, np.cov(pixels, rowvar=False), rtol=0.02, atol=0.02)
    whitened = (pixels - pixels.mean(0)) @ np.linalg.inv(matrix).T
    np.testing.assert_allclose(np.cov(whitened, rowvar=False), np.eye(3), atol=0.03)
    # Columns are ordered by variance, as Lucid's ImageNet matrix is.
    norms = np.linalg.norm(matrix, axis=0)
    assert norms[0] >= norms[1] >= norms[2]


def test_a_dataset_correlation_is_used_by_the_parameterization():
    matrix = np.diag([1.0, 0.5, 0.25]).astype(np.float32)
    param = fv.pixel(2, batch=1, decorrelate=True, color_correlation=matrix)
    params = jnp.ones(param.shape)
    np.testing.assert_allclose(param.to_image(params)[0, 0, 0], jax.nn.sigmoid(jnp.array([1.0, 0.5, 0.25])), rtol=1e-6)


def test_bad_arguments_raise_named_errors():
    with pytest.raises(ValueError, match="color_correlation: expected a \\[3, 3\\]"):
        fv.fourier(8, color_correlation=np.eye(2))
    with pytest.raises(ValueError, match="invertible"):
        fv.pixel(8, decorrelate=True, color_correlation=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="batch: expected a positive integer"):
        fv.image(8, batch=0)
