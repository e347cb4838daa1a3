"""Random image transforms that make rendered features robust (Lucid's "transformation robustness").

A transform is `transform(key, images [b, H, W, c]) -> images`; every image of
the batch gets the same random draw, as in Lucid and Lucent. Sizes are
static so a render loop compiles once: `pad` grows the image and `jitter`
crops it by a fixed amount, while `random_scale` and `random_rotate` resample
within the same canvas (Lucent changes the size when it scales; here a scale
above 1 zooms in and one below 1 zooms out, filling with the nearest edge).
"""

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Transform = Callable[[jax.Array, jax.Array], jax.Array]


def pad(width: int, mode: str = "constant", value: float = 0.5) -> Transform:
    """Pads `width` pixels on every side (`mode` as `jnp.pad`: constant, edge, reflect, ...)."""
    if width < 0:
        raise ValueError(f"width: expected a non-negative integer, got {width}")
    widths = ((0, 0), (width, width), (width, width), (0, 0))

    def transform(key, images):
        del key
        if mode == "constant":
            return jnp.pad(images, widths, constant_values=value)
        return jnp.pad(images, widths, mode=mode)

    return transform


def jitter(distance: int) -> Transform:
    """A random crop `distance` pixels smaller on each axis: a shift by 0..distance-1 pixels."""
    if distance < 1:
        raise ValueError(f"distance: expected a positive integer, got {distance}")

    def transform(key, images):
        b, h, w, c = images.shape
        if min(h, w) <= distance:
            raise ValueError(f"jitter({distance}): images of size {h}x{w} are too small")
        dy, dx = jax.random.randint(key, (2,), 0, distance)
        return jax.lax.dynamic_slice(images, (0, dy, dx, 0), (b, h - distance, w - distance, c))

    return transform


def _choice(key, values: Sequence[float]) -> jax.Array:
    values = jnp.asarray(np.asarray(values, np.float32))
    return values[jax.random.randint(key, (), 0, values.shape[0])]


def _affine(images: jax.Array, scale: jax.Array, angle: jax.Array) -> jax.Array:
    """Resamples `images` zoomed by `scale` and rotated by `angle` radians about the center (bilinear)."""
    b, h, w, c = images.shape
    rows, cols = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing="ij")
    cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale
    # Positive angles turn the picture counterclockwise as displayed (rows down), as kornia does.
    source = jnp.stack([cos * rows + sin * cols + (h - 1) / 2, cos * cols - sin * rows + (w - 1) / 2])

    def resample(plane):
        return jax.scipy.ndimage.map_coordinates(plane, list(source), order=1, mode="nearest")

    planes = jnp.moveaxis(images, -1, 1).reshape(b * c, h, w)
    return jnp.moveaxis(jax.vmap(resample)(planes).reshape(b, c, h, w), 1, -1)


def random_scale(scales: Sequence[float]) -> Transform:
    """Zooms by a factor drawn uniformly from `scales` (1.1: 10% larger), keeping the size."""
    if not len(scales) or min(scales) <= 0:
        raise ValueError(f"scales: expected positive factors, got {scales}")
    return lambda key, images: _affine(images, _choice(key, scales), jnp.zeros(()))


def random_rotate(angles: Sequence[float]) -> Transform:
    """Rotates counterclockwise by an angle in degrees drawn uniformly from `angles`, keeping the size."""
    if not len(angles):
        raise ValueError("angles: expected at least one angle in degrees")
    return lambda key, images: _affine(images, jnp.ones(()), _choice(key, angles) * (math.pi / 180))


def random_scale_rotate(scales: Sequence[float], angles: Sequence[float]) -> Transform:
    """`random_scale(scales)` then `random_rotate(angles)` as one resampling: one interpolation, half the work."""
    if not len(scales) or min(scales) <= 0:
        raise ValueError(f"scales: expected positive factors, got {scales}")
    if not len(angles):
        raise ValueError("angles: expected at least one angle in degrees")

    def transform(key, images):
        scale_key, angle_key = jax.random.split(key)
        return _affine(images, _choice(scale_key, scales), _choice(angle_key, angles) * (math.pi / 180))

    return transform


def compose(*transforms: Transform) -> Transform:
    """Applies `transforms` in order, each with its own key."""
    def transform(key, images):
        for t, k in zip(transforms, jax.random.split(key, max(len(transforms), 1))):
            images = t(k, images)
        return images

    return transform


def identity() -> Transform:
    """No transform (for plain gradient ascent)."""
    return lambda key, images: images


def standard_transforms() -> Transform:
    """Lucid's and Lucent's default: pad 12 (gray), jitter 8, scale ±10%, rotate ±10°, jitter 4."""
    # Lucent scales and then rotates, resampling twice; one resampling does the
    # same geometry with one interpolation at half the cost (the backward pass
    # of a resampling is a scatter-add, the slowest op of a render on CPU).
    return compose(
        pad(12, value=0.5),
        jitter(8),
        random_scale_rotate([1 + (i - 5) / 50 for i in range(11)], list(range(-10, 11)) + 5 * [0]),
        jitter(4),
    )
