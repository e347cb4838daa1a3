"""Localization against ground truth: attributions against masks (pointing game, mass in mask), and
predicted part centres against annotated ones (`normalized_distance`).

Both metrics compare an attribution map with a boolean mask [b, h, w] (for
SynthParts, `batch["object_mask"]` or `batch["part_mask"] == k`). Maps may be

  * [b, h', w'] (CAM, Grad-CAM, occlusion), or
  * [b, h', w', c] (gradient-like), reduced over channels first by `reduce`:
    "sum" (signed sum) or "abs" (sum of absolute values).

A map at another resolution than the mask (a 7x7 Grad-CAM against a 64x64
mask) is resized bilinearly to the mask's size (`jax.image.resize`, half-pixel
centers, as CAM papers upsample), so both metrics are read at mask resolution.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("sum", "abs")


def pixel_map(attribution: jax.Array, size: tuple[int, int], reduce: str = "sum") -> jax.Array:
    """One float32 value per pixel: channels reduced, resized to `size`.

    Args:
      attribution: [b, h', w'] or [b, h', w', c].
      size: the `(h, w)` to resize to (bilinear when it differs from `(h', w')`).
      reduce: "sum" or "abs" (sum of |values|) over channels; unused for 3-d maps.

    Returns:
      float32 [b, h, w].
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce: expected one of {REDUCTIONS}, got {reduce!r}")
    a = jnp.asarray(attribution, jnp.float32)
    if a.ndim == 4:
        a = jnp.abs(a).sum(-1) if reduce == "abs" else a.sum(-1)
    elif a.ndim != 3:
        raise ValueError(f"attribution: expected a map [b, h, w] or [b, h, w, c], got shape {list(a.shape)}")
    size = tuple(int(s) for s in size)
    if a.shape[1:] != size:
        a = jax.image.resize(a, (a.shape[0], *size), method="bilinear")
    return a


def _check_mask(mask: jax.Array, attribution: jax.Array) -> jax.Array:
    mask = jnp.asarray(mask)
    if mask.ndim != 3 or mask.shape[0] != np.shape(attribution)[0]:
        raise ValueError(
            f"mask: expected [b, h, w] with b={np.shape(attribution)[0]} (the attribution's batch), "
            f"got shape {list(mask.shape)}"
        )
    return mask != 0  # bool, int part masks (`part_mask == k`) and 0/1 floats alike


@functools.partial(jax.jit, static_argnames=("reduce",))
def pointing_game(
    attribution: jax.Array, mask: jax.Array, *, tolerance: float = 15.0, reduce: str = "sum"
) -> jax.Array:
    """Pointing game (Zhang et al., 2016): does the map's maximum fall on the object?

    A hit is a maximum within `tolerance` pixels (Euclidean, on the mask's grid)
    of some mask pixel; the paper uses 15 px on ~224 px images, so scale it
    with the image (0 asks for the maximum exactly inside the mask). Ties for
    the maximum go to the first pixel in row-major order (`argmax`), so a
    constant map points at the top-left corner. An empty mask is a miss.

    Args:
      attribution: [b, h', w'] or [b, h', w', c] (see the module docstring).
      mask: [b, h, w], nonzero on the ground truth.
      tolerance: radius in mask pixels.
      reduce: channel reduction for 4-d maps, "sum" or "abs".

    Returns:
      bool [b], True where the maximum hits the mask.
    """
    mask = _check_mask(mask, attribution)
    b, h, w = mask.shape
    a = pixel_map(attribution, (h, w), reduce).reshape(b, h * w)
    peak = jnp.argmax(a, axis=1)  # [b]
    rows = jnp.arange(h, dtype=jnp.float32)[None, :, None] - (peak // w).astype(jnp.float32)[:, None, None]
    cols = jnp.arange(w, dtype=jnp.float32)[None, None, :] - (peak % w).astype(jnp.float32)[:, None, None]
    near = rows**2 + cols**2 <= jnp.asarray(tolerance, jnp.float32) ** 2  # [b, h, w]
    return jnp.any(near & mask, axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("reduce", "mode"))
def mass_in_mask(
    attribution: jax.Array, mask: jax.Array, *, reduce: str = "sum", mode: str = "positive"
) -> jax.Array:
    """Fraction of the attribution mass that lies inside the mask.

    This is the energy-based pointing game of Score-CAM (Wang et al., 2020),
    sum(map inside) / sum(map), also exported as `energy_pointing_game`.

    Args:
      attribution: [b, h', w'] or [b, h', w', c] (see the module docstring).
      mask: [b, h, w], nonzero on the ground truth.
      reduce: channel reduction for 4-d maps, "sum" or "abs".
      mode: "positive" counts max(map, 0) (evidence for the class, as Score-CAM),
        "abs" counts |map|. Applied after the channel reduction and resizing.

    Returns:
      float32 [b] in [0, 1]; 0 where the map has no mass at all.
    """
    if mode not in ("positive", "abs"):
        raise ValueError(f"mode: expected 'positive' or 'abs', got {mode!r}")
    mask = _check_mask(mask, attribution)
    a = pixel_map(attribution, mask.shape[1:], reduce)
    a = jnp.maximum(a, 0.0) if mode == "positive" else jnp.abs(a)
    total = a.sum(axis=(1, 2))
    inside = jnp.where(mask, a, 0.0).sum(axis=(1, 2))
    # A map with no mass says nothing about location; 0 keeps means finite.
    ratio = inside / jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, jnp.clip(ratio, 0.0, 1.0), 0.0)  # clip: summation-order round-off


energy_pointing_game = mass_in_mask


def normalized_distance(predicted: Any, truth: Any, visible: Any, image_size: tuple[int, int]) -> float:
    """Part localization error: `||p_hat - p*|| / sqrt(h^2 + w^2)`, averaged over the images that show the part.

    The metric of the explanatory graph's part localization (Zhang et al.,
    AAAI 2018). Where an image has several instances of the part (two eyes),
    the nearest visible one counts.

    Args:
      predicted: float [N, 2] the predicted centre (row, col) on each image, in pixels.
      truth: float [N, 2] or [N, I, 2] the annotated centre(s), in pixels.
      visible: bool [N] or [N, I] which annotations exist.
      image_size: (h, w), the images' size in pixels.

    Returns:
      The mean over images with at least one visible instance; NaN when no image has one.

    Raises:
      ValueError: the shapes do not match, `image_size` is not two positive sizes, or a prediction on an
        image that shows the part is not finite.
    """
    predicted = np.asarray(predicted, np.float64)
    truth = np.asarray(truth, np.float64)
    visible = np.asarray(visible, bool)
    if truth.ndim == 2:
        truth, visible = truth[:, None], visible[:, None]
    if predicted.ndim != 2 or predicted.shape[-1] != 2:
        raise ValueError(f"predicted: expected (row, col) centres [N, 2], got shape {list(predicted.shape)}")
    if truth.ndim != 3 or truth.shape[0] != predicted.shape[0] or truth.shape[-1] != 2:
        raise ValueError(f"truth: expected [N, 2] or [N, I, 2] with N={predicted.shape[0]}, got {list(truth.shape)}")
    if visible.shape != truth.shape[:2]:
        raise ValueError(f"visible: expected shape {list(truth.shape[:2])}, got {list(visible.shape)}")
    if len(image_size) != 2 or min(image_size) <= 0:
        raise ValueError(f"image_size: expected (h, w) > 0, got {image_size!r}")
    shown = visible.any(axis=1)
    if not np.isfinite(predicted[shown]).all():
        raise ValueError("predicted: has NaN or infinite centres on images that show the part")
    if not shown.any():
        return float("nan")
    distance = np.linalg.norm(predicted[:, None] - truth, axis=-1)  # [N, I]
    nearest = np.where(visible, distance, np.inf).min(axis=1)[shown]
    return float(nearest.mean() / np.hypot(*image_size))
