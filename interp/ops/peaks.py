"""Each channel's peak on a feature map: where its maximum is, and its value.

The interpretable layer masks around it (`interp.layers.peak_positions`) and
location instability measures where it falls (`interp.metrics.filter_peaks`),
so both find the same peak, ties included. Not jitted itself, so that it
inlines into the layer's program as plain equations. `image_patch` crops the
image around such a place (NumPy, for figures and reports).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def map_peaks(maps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each channel's argmax and maximum on each map.

    Args:
      maps: [N, h, w, C] feature maps.

    Returns:
      (positions int32 [N, C, 2] (row, col) unit indices, scores [N, C] the
      peak values). Ties go to the first maximum in row-major order.
    """
    if maps.ndim != 4:
        raise ValueError(f"maps: expected feature maps [N, h, w, C], got shape {list(maps.shape)}")
    n, h, w, c = maps.shape
    flat = jnp.argmax(maps.reshape(n, h * w, c), axis=1)
    positions = jnp.stack([flat // w, flat % w], axis=-1).astype(jnp.int32)
    return positions, maps.max(axis=(1, 2))


PATCH_PAD = 1.0  # the value of a patch's pixels that lie outside the image (white)


def image_patch(image: np.ndarray, centre: Sequence[float], size: int) -> np.ndarray:
    """The `size` x `size` square of `image` around `centre`, padded with `PATCH_PAD` where it leaves the image.

    The pixel nearest to `centre` lands at `[size // 2, size // 2]`; a patch at
    the image's border keeps that place (it is padded, never shifted inward).

    Args:
      image: [H, W, channels].
      centre: (row, col) in pixels, 0-based (fractions round to the nearest pixel).
      size: the patch's side in pixels.

    Returns:
      float [size, size, channels].
    """
    image = np.asarray(image)
    top, left = (int(np.floor(float(c) + 0.5)) - size // 2 for c in centre)
    patch = np.full((size, size, image.shape[-1]), PATCH_PAD, np.float32)
    rows = slice(max(top, 0), min(top + size, image.shape[0]))
    cols = slice(max(left, 0), min(left + size, image.shape[1]))
    if rows.start < rows.stop and cols.start < cols.stop:
        patch[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = image[rows, cols]
    return patch
