"""Batch sources that show another source's examples differently: object crops, mirror images, a chosen subset.

    crops = object_crops(SynthParts(seed=0))       # each image cut to its object's box, resized back
    mirrored = flipped(crops)                       # the same examples mirrored
    chosen = subset(crops, [4, 9, 9], flip=[False, False, True])   # 4, 9 and 9 mirrored as examples 0, 1, 2

Every view moves what is spatial with the image: masks (nearest), landmarks
(with the pixel-centre convention of `interp.data`: pixel (r, c) is centred
at (r, c)) and boxes; other fields pass through unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp.data.stream import BatchSource, check_indices, check_source

SPATIAL_MASKS = ("object_mask", "part_mask", "color", "texture")


@dataclasses.dataclass(frozen=True, eq=False)
class object_crops:  # noqa: N801 -- reads as a function: object_crops(source)
    """Each example cut to its object's bounding box and resized to the source's size (the release's `getI.m`).

    The box is the object mask's extent (`box="object_mask"`) or a
    (ymin, xmin, ymax, xmax) edge box field such as CUB's 'bbox' (`box="bbox"`).
    Like the release, the box is stretched to the square image (aspect not
    kept). An example without object pixels is left whole.
    """

    source: BatchSource
    box: str = "object_mask"

    def __post_init__(self):
        check_source(self.source, "source")
        if self.box not in ("object_mask", "bbox"):
            raise ValueError(f"box: expected 'object_mask' or a box field 'bbox', got {self.box!r}")

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        batch = dict(self.source.batch(np.asarray(check_indices(indices))))
        images = np.asarray(batch["image"], np.float32)
        size = images.shape[1:3]
        if self.box == "object_mask":
            top, left, bottom, right = _mask_boxes(np.asarray(batch["object_mask"]))
        else:
            edges = np.asarray(batch[self.box], np.float64)
            top, left = np.floor(edges[:, 0]), np.floor(edges[:, 1])
            bottom, right = np.ceil(edges[:, 2]) - 1, np.ceil(edges[:, 3]) - 1
        scale = np.stack([size[0] / (bottom - top + 1), size[1] / (right - left + 1)], -1).astype(np.float32)
        offset = np.stack([top, left], -1).astype(np.float32)
        out = dict(batch)
        out["image"] = np.asarray(_resample(jnp.asarray(images), scale, offset))
        # Nearest for masks: the source pixel under each output pixel's centre, so labels never blend.
        rows = np.clip(np.floor((np.arange(size[0]) + 0.5) / scale[:, :1] + offset[:, :1]), 0, size[0] - 1)
        cols = np.clip(np.floor((np.arange(size[1]) + 0.5) / scale[:, 1:] + offset[:, 1:]), 0, size[1] - 1)
        picks = np.arange(len(images))[:, None, None], rows.astype(int)[:, :, None], cols.astype(int)[:, None, :]
        for key in SPATIAL_MASKS:
            if key in batch and np.ndim(batch[key]) == 3:
                out[key] = np.asarray(batch[key])[picks]
        if "landmarks" in batch:
            points = np.asarray(batch["landmarks"], np.float32)
            out["landmarks"] = ((points + 0.5 - offset[:, None, :]) * scale[:, None, :] - 0.5).astype(np.float32)
        return out


def _mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, ...]:
    """(top, left, bottom, right) inclusive pixel rows and columns of each mask's pixels; the whole image if empty."""
    b, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    empty = ~rows.any(1)
    top = np.where(empty, 0, rows.argmax(1))
    bottom = np.where(empty, h - 1, h - 1 - rows[:, ::-1].argmax(1))
    left = np.where(empty, 0, cols.argmax(1))
    right = np.where(empty, w - 1, w - 1 - cols[:, ::-1].argmax(1))
    return top.astype(np.float64), left.astype(np.float64), bottom.astype(np.float64), right.astype(np.float64)


@jax.jit
def _resample(images: jax.Array, scale: jax.Array, offset: jax.Array) -> jax.Array:
    """Output pixel y samples input `(y + 0.5) / scale + offset - 0.5` bilinearly: a crop from `offset`, resized."""

    def one(image, scale, offset):
        return jax.image.scale_and_translate(image, image.shape, (0, 1), scale, -offset * scale, method="linear",
                                             antialias=False)

    return jax.vmap(one)(images, scale, offset)


@dataclasses.dataclass(frozen=True, eq=False)
class flipped:  # noqa: N801 -- reads as a function: flipped(source)
    """The source's examples mirrored left to right (masks and landmarks with them; part ids unchanged)."""

    source: BatchSource

    def __post_init__(self):
        check_source(self.source, "source")

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        indices = np.asarray(check_indices(indices))
        return mirror(self.source.batch(indices), np.ones(len(indices), bool))


@dataclasses.dataclass(frozen=True, eq=False)
class subset:  # noqa: N801 -- reads as a function: subset(source, indices)
    """Examples `indices` of `source` (repeats allowed) as examples 0 ... len(indices) - 1, mirrored where `flip`.

    One batch of the subset is one batch of the source, of the same size.
    """

    source: BatchSource
    indices: Any
    flip: Any = None

    def __post_init__(self):
        check_source(self.source, "source")
        indices = np.asarray(check_indices(self.indices, "indices"))
        if indices.ndim != 1 or not len(indices) or indices.min() < 0 or indices.max() >= len(self.source):
            raise ValueError(f"indices: expected a non-empty list of example indices below len(source) = "
                             f"{len(self.source)}, got shape {list(indices.shape)}")
        if self.flip is not None and np.shape(self.flip) != indices.shape:
            raise ValueError(f"flip: expected bool [{len(indices)}] like indices, "
                             f"got shape {list(np.shape(self.flip))}")

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, indices: Sequence[int] | np.ndarray) -> Any:
        indices = np.asarray(check_indices(indices))
        batch = self.source.batch(np.asarray(self.indices)[indices])
        return batch if self.flip is None else mirror(batch, np.asarray(self.flip, bool)[indices])


def mirror(batch: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """`batch` with examples `rows` (bool [B]) mirrored left to right: image, masks, landmarks and boxes."""
    out = dict(batch)
    width = np.shape(batch["image"])[2]

    def flip(array):
        array = np.array(array)
        array[rows] = array[rows][:, :, ::-1]
        return array

    out["image"] = flip(batch["image"])
    for key in SPATIAL_MASKS:
        if key in batch and np.ndim(batch[key]) == 3:
            out[key] = flip(batch[key])
    if "landmarks" in batch:
        points = np.array(batch["landmarks"], np.float32)
        points[rows, :, 1] = width - 1 - points[rows, :, 1]
        out["landmarks"] = points
    if "bbox" in batch:
        boxes = np.array(batch["bbox"], np.float32)
        boxes[rows] = boxes[rows][:, [0, 3, 2, 1]] * [1, -1, 1, -1] + [0, width, 0, width]
        out["bbox"] = boxes
    return out
