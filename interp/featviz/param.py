"""Image parameterizations: what the optimizer changes, and how it becomes an image.

A `Param` has `init(key) -> params` and `to_image(params) -> images [b, H, W, 3]`
in [0, 1], and `from_image(images) -> params`, its inverse on (0, 1). The
choices follow Olah et al. (Distill 2017, "Feature Visualization"):

  * pixel: the image itself, before a sigmoid;
  * Fourier: the image's 2-D spectrum, scaled by `1/f**decay_power` so that
    gradient steps change low frequencies as much as high ones and the
    result is not dominated by high-frequency patterns;
  * decorrelated color: three decorrelated channels mixed into RGB by the
    square root of the color covariance, so that a step in one parameter is
    a step along a principal color axis of natural (or dataset) images.

The color matrix is estimated from a dataset with `color_correlation`, or
Lucid's ImageNet estimate is used.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Lucid's square root of ImageNet's RGB covariance (columns: principal axes).
IMAGENET_COLOR_CORRELATION = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)

# Lucid divides the spectrum's image by 4 so that a unit-variance parameter
# gives a sigmoid input of moderate scale; kept for parity with Lucid/Lucent.
_FOURIER_SCALE = 4.0
_EPS = 1e-6


class Param(NamedTuple):
    """A batch of images as a function of parameters.

    Attributes:
      init: `init(key) -> params`, a random start near mid-gray.
      to_image: `to_image(params) -> images` [b, H, W, 3] in [0, 1].
      from_image: `from_image(images) -> params`, the inverse of `to_image`
        on images strictly inside (0, 1) (to start from a real image).
      shape: (b, H, W, 3).
    """

    init: Callable[[jax.Array], Any]
    to_image: Callable[[Any], jax.Array]
    from_image: Callable[[jax.Array], Any]
    shape: tuple[int, int, int, int]


def color_correlation(images: jax.Array) -> np.ndarray:
    """The square root of the RGB covariance of `images` [..., 3], scaled as Lucid scales its constant.

    Returns `U sqrt(S)` for the covariance `U S Uᵀ`, so `x @ M.T` maps white
    noise to noise with the dataset's color covariance. `to_valid_rgb`
    divides by the largest column norm; the result equals Lucid's matrix up
    to the sign of each column when given ImageNet.
    """
    pixels = np.asarray(images, np.float64).reshape(-1, 3)
    if pixels.shape[0] < 2:
        raise ValueError(f"images: expected at least 2 pixels with 3 channels, got shape {np.shape(images)}")
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False))
    order = np.argsort(values)[::-1]
    return (vectors[:, order] * np.sqrt(np.maximum(values[order], 0))).astype(np.float32)


def _normalized(correlation) -> np.ndarray:
    matrix = np.asarray(IMAGENET_COLOR_CORRELATION if correlation is None else correlation, np.float32)
    if matrix.shape != (3, 3):
        raise ValueError(f"color_correlation: expected a [3, 3] matrix, got shape {list(matrix.shape)}")
    norm = np.linalg.norm(matrix, axis=0).max()
    if not np.isfinite(norm) or norm == 0 or abs(np.linalg.det(matrix)) < 1e-12:
        raise ValueError("color_correlation: expected an invertible [3, 3] matrix")
    return matrix / norm


def _valid_rgb(decorrelate: bool, correlation) -> tuple[Callable, Callable]:
    """(to [0, 1] images, back to unconstrained values): color mixing, then a sigmoid."""
    if not decorrelate:
        return jax.nn.sigmoid, lambda images: jax.scipy.special.logit(jnp.clip(images, _EPS, 1 - _EPS))
    matrix = jnp.asarray(_normalized(correlation))
    inverse = jnp.asarray(np.linalg.inv(_normalized(correlation)))

    def to_rgb(x):
        return jax.nn.sigmoid(x @ matrix.T)

    def from_rgb(images):
        return jax.scipy.special.logit(jnp.clip(images, _EPS, 1 - _EPS)) @ inverse.T

    return to_rgb, from_rgb


def _check_shape(height, width, batch, channels=3) -> tuple[int, int, int, int]:
    for name, value in (("height", height), ("width", width), ("batch", batch)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(batch), int(height), int(width), channels


def pixel(
    height: int,
    width: int | None = None,
    *,
    batch: int = 1,
    sd: float = 0.01,
    decorrelate: bool = False,
    color_correlation=None,
) -> Param:
    """Images parameterized by their pixels (before the sigmoid and optional color mixing).

    Args:
      height, width: image size (width defaults to height).
      batch: number of images optimized together.
      sd: standard deviation of the random start (0 starts at mid-gray).
      decorrelate: mix decorrelated color channels into RGB (see module doc).
      color_correlation: [3, 3] matrix from `color_correlation`; None for ImageNet's.
    """
    shape = _check_shape(height, height if width is None else width, batch)
    to_rgb, from_rgb = _valid_rgb(decorrelate, color_correlation)
    return Param(
        init=lambda key: sd * jax.random.normal(key, shape),
        to_image=to_rgb,
        from_image=from_rgb,
        shape=shape,
    )


def spectrum_scale(height: int, width: int, decay_power: float = 1.0) -> np.ndarray:
    """Per-frequency scale [H, W//2+1] of the Fourier parameterization: `sqrt(HW) / max(f, 1/max(H,W))**decay_power`."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequency = np.sqrt(fy * fy + fx * fx)
    scale = 1.0 / np.maximum(frequency, 1.0 / max(height, width)) ** decay_power
    return (scale * np.sqrt(height * width)).astype(np.float32)


def fourier(
    height: int,
    width: int | None = None,
    *,
    batch: int = 1,
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool = True,
    color_correlation=None,
) -> Param:
    """Images parameterized by their spectrum, scaled by `1/f**decay_power` (Lucid's `fft_image`).

    The parameters are the real and imaginary parts [2, b, H, W//2+1, 3] of
    the spectrum before scaling; the image is their scaled inverse real FFT,
    then color mixing (if `decorrelate`) and a sigmoid.

    Args: as `pixel`, plus `decay_power`: how fast the scale falls with frequency.
    """
    b, h, w, c = shape = _check_shape(height, height if width is None else width, batch)
    scale = jnp.asarray(spectrum_scale(h, w, decay_power))[None, :, :, None]
    to_rgb, from_rgb = _valid_rgb(decorrelate, color_correlation)

    def to_image(spectrum):
        coefficients = jax.lax.complex(spectrum[0], spectrum[1]) * scale
        return to_rgb(jnp.fft.irfft2(coefficients, s=(h, w), axes=(1, 2)) / _FOURIER_SCALE)

    def from_image(images):
        coefficients = jnp.fft.rfft2(from_rgb(images) * _FOURIER_SCALE, axes=(1, 2)) / scale
        return jnp.stack([coefficients.real, coefficients.imag])

    return Param(
        init=lambda key: sd * jax.random.normal(key, (2, b, h, w // 2 + 1, c)),
        to_image=to_image,
        from_image=from_image,
        shape=shape,
    )


def image(
    height: int,
    width: int | None = None,
    *,
    batch: int = 1,
    fft: bool = True,
    decorrelate: bool = True,
    sd: float = 0.01,
    color_correlation=None,
) -> Param:
    """Lucid's default: a Fourier (or pixel, `fft=False`) image with decorrelated color."""
    make = fourier if fft else pixel
    return make(height, width, batch=batch, sd=sd, decorrelate=decorrelate, color_correlation=color_correlation)
