"""Bilinear upsampling of activation maps to the segmentation grid, as two matrices.

Both of NetDissect's choices are linear interpolation between the positions
of the units on the segmentation grid, clamped at the border; they differ only
in where a unit sits:

  * "receptive_field" (NetDissect, Bau et al. 2017, `upsampleL`): unit i sits
    at the center of its receptive field, `start + i * stride + (size - 1) / 2`
    in input pixels. NetDissect rounds the center down to `size // 2`; here it
    is exact (the same for odd fields).
  * "resize" (NetDissect-Lite, `imresize(..., mode='F')`): the map is
    stretched over the image like any picture, unit i's center at
    `(i + 0.5) * seg / h - 0.5`.

Pixel (r, c) of every grid has its center at (r, c), so an input-pixel
position p lies at `(p + 0.5) * seg / image - 0.5` on the segmentation grid.
The upsampled map of one channel is then `rows @ a @ cols.T`, batched over
images and channels as one einsum.

The tally upsamples only where a unit can be on, so it takes the matrices cut
into `Bands` of pixel rows: each band reads a few activation rows, whose
maxima bound every pixel of the band.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp._checks import check_positive_int
from interp.nets import ReceptiveField

UPSAMPLING = ("receptive_field", "resize")


def unit_positions(num_units: int, seg_length: int, image_length: int, upsampling: str,
                   field: ReceptiveField | None = None, axis: int = 0) -> np.ndarray:
    """Where each unit along one spatial axis sits on the segmentation grid.

    Args:
      num_units: units along the axis (the activation map's h or w).
      seg_length: pixels of the segmentation along the axis.
      image_length: pixels of the network input along the axis.
      upsampling: "receptive_field" or "resize".
      field: the layer's receptive field (needed for "receptive_field").
      axis: 0 for rows, 1 for columns (selects the field's entries).

    Returns:
      float64 [num_units], ascending positions in segmentation pixels.
    """
    units = np.arange(num_units, dtype=np.float64)
    if upsampling == "resize":
        return (units + 0.5) * seg_length / num_units - 0.5
    if upsampling != "receptive_field":
        raise ValueError(f"upsampling: expected one of {UPSAMPLING}, got {upsampling!r}")
    if field is None or field.stride[axis] <= 0:
        raise ValueError("upsampling='receptive_field' needs a spatial receptive field (stride > 0); "
                         f"got {field}")
    centers = field.center(units, units)[axis]
    return (centers + 0.5) * seg_length / image_length - 0.5


def interpolation_matrix(positions: np.ndarray, seg_length: int) -> np.ndarray:
    """float32 [seg_length, n]: linear interpolation from samples at `positions`.

    Row p holds the weights of the n samples at segmentation pixel p: the two
    neighbors of p, or all weight on the first (last) sample before (after)
    them, as NetDissect's clamped spline and PIL's bilinear resize do.
    """
    pixels = np.arange(seg_length, dtype=np.float64)
    basis = np.eye(len(positions))
    return np.stack([np.interp(pixels, positions, basis[j]) for j in range(len(positions))],
                    axis=1).astype(np.float32)


def upsampling_matrices(activation_hw: tuple[int, int], seg_hw: tuple[int, int],
                        image_hw: tuple[int, int], upsampling: str,
                        field: ReceptiveField | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows [sh, h], cols [sw, w]): `up[b, y, x, k] = sum rows[y, i] a[b, i, j, k] cols[x, j]`."""
    return tuple(
        interpolation_matrix(unit_positions(activation_hw[axis], seg_hw[axis], image_hw[axis],
                                            upsampling, field, axis), seg_hw[axis])
        for axis in (0, 1))


def upsample(acts: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """float32 [B, sh, sw, K]: maps [B, h, w, K] upsampled by `upsampling_matrices`' (rows, cols)."""
    return jnp.einsum("yi,bijk,xj->byxk", rows, acts.astype(jnp.float32), cols)


class Bands(NamedTuple):
    """The upsampling matrices cut into bands of pixel rows: what `tally_batch` takes.

    Band r covers pixel rows `[r * height, (r + 1) * height)` of the
    segmentation; its row t is `weights[r, t] @ a[units[r]]` in activation
    rows, then `cols` across. All sizes are in the array shapes, so a band
    plan can be a traced argument of a jitted function.

    Attributes:
      units: int32 [R, U] the activation rows band r reads.
      weights: float32 [R, height, U] their weights in each of its pixel rows
        (0 for rows past the segmentation).
      rows_valid: bool [R, height] the band's rows that lie on the segmentation.
      cols: float32 [sw, w] the column matrix (`upsampling_matrices`' second).
    """

    units: np.ndarray
    weights: np.ndarray
    rows_valid: np.ndarray
    cols: np.ndarray


def bands(rows: np.ndarray, cols: np.ndarray, height: int | None = None) -> Bands:
    """`Bands` of `height` pixel rows (default: the upsampling factor) from `upsampling_matrices`' (rows, cols).

    Both matrices must interpolate (non-negative weights, each pixel's summing
    to 1): the tally skips a band when the weighted maxima of its activation
    rows do not pass a threshold, which bounds the band's pixels only then.
    """
    if height is not None:
        check_positive_int("height", height)
    rows, cols = np.asarray(rows, np.float32), np.asarray(cols, np.float32)
    for name, matrix in (("rows", rows), ("cols", cols)):
        if matrix.ndim != 2 or (matrix < 0).any() or not np.allclose(matrix.sum(1), 1, atol=1e-5):
            raise ValueError(f"{name}: expected an interpolation matrix (2-D, non-negative, rows summing to 1), "
                             f"got shape {matrix.shape}")
    seg_rows, num_units = rows.shape
    height = height or max(1, round(seg_rows / num_units))
    num_bands = -(-seg_rows // height)
    padded = np.zeros((num_bands * height, num_units), np.float32)
    padded[:seg_rows] = rows
    per_band = padded.reshape(num_bands, height, num_units)
    used = per_band.any(1)  # [R, h]
    first = used.argmax(1)
    last = num_units - 1 - used[:, ::-1].argmax(1)
    span = int((last - first).max()) + 1  # activation rows read by the widest band
    units = np.minimum(first[:, None] + np.arange(span), num_units - 1)
    weights = np.take_along_axis(per_band, np.broadcast_to(units[:, None, :], (num_bands, height, span)), axis=2)
    weights = weights * (first[:, None] + np.arange(span) < num_units)[:, None, :]  # a clamped unit counts once
    rows_valid = np.arange(num_bands * height).reshape(num_bands, height) < seg_rows
    return Bands(units.astype(np.int32), weights.astype(np.float32), rows_valid, cols)
