"""`Reader`, the base of every real-data reader in `interp.data`, and its batching.

A reader is a random-access sequence of examples at their raw resolution:

    reader[i]                            # dict of numpy arrays at raw resolution
    len(reader)
    reader.batch(indices, image_size=S)  # dict of stacked arrays, images S x S
    reader.num_classes, reader.class_names  # None where the dataset has no classes

It resizes at batch time, so it is not itself a batch source (one size per
stream); `interp.data.sized(reader, S)` is.

Geometric conventions, shared by all readers so that resizing is one rule:
  * 'image' is uint8 [H, W, 3] in `src[i]` and float32 [B, S, S, 3] in [0, 1]
    in `src.batch`.
  * Points (landmarks) are float32 [..., 2] as (row, col) in pixel units with
    pixel (r, c) centered at (r, c), as in SynthParts; resizing H -> S maps a
    row r to (r + 0.5) * S / H - 0.5, so a point stays on the same spot of
    the picture (and on the pixel that nearest-neighbor resizing samples).
  * Boxes are float32 [..., 4] as (ymin, xmin, ymax, xmax) edges, where the
    image spans [0, H] x [0, W] (tfds' fractions times the size); resizing
    H -> S maps an edge y to y * S / H.
  * Masks / label maps are integer [..., h, w] (the last two axes are spatial;
    h, w may differ from the image's, as in Broden) and are resized with
    nearest-neighbor so that label values are never blended.

Each reader declares, per key, a `Field` saying how `batch` treats it; keys with
a variable leading length (a list of objects, of label maps) are `ragged` and
padded to the longest in the batch with the field's `pad_value`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from interp.data.stream import check_indices

Example = dict[str, np.ndarray]

# How `batch` treats a key. Points and boxes are scaled relative to the
# example's 'image', masks relative to their own spatial shape.
IMAGE, MASK, POINTS, BOXES, KEEP = "image", "mask", "points", "boxes", "keep"
_KINDS = (IMAGE, MASK, POINTS, BOXES, KEEP)


class Field(NamedTuple):
    """How `Reader.batch` resizes and stacks one key.

    Attributes:
        kind: one of 'image', 'mask', 'points', 'boxes', 'keep'.
        ragged: whether the leading axis varies between examples; such arrays are
            padded along axis 0 to the batch's longest.
        pad_value: the fill for ragged padding (e.g. -1 for "no object").
    """

    kind: str
    ragged: bool = False
    pad_value: Any = 0


class Reader(abc.ABC):
    """A dataset reader (see the module docstring): subclasses give `__len__`, `_example` and `fields`.

    Attributes:
        fields: per key of an example, how `batch` resizes and stacks it.
        num_classes: number of classes of 'label', or None.
        class_names: the name of each class index, or None.
    """

    fields: Mapping[str, Field] = {}
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of examples in the selected split."""

    @abc.abstractmethod
    def _example(self, index: int) -> Example:
        """Reads example `index`, already known to be in range."""

    def __getitem__(self, index: int) -> Example:
        """One example at raw resolution (see the module docstring).

        Raises:
          ValueError: `index` is not an integer.
          IndexError: `index` is out of range.
        """
        if np.ndim(index) != 0:
            raise ValueError(f"{type(self).__name__}: expected one integer index, got {index!r}")
        index = int(check_indices(index, "index"))
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} examples")
        return self._example(index % n)

    def batch(self, indices: Sequence[int], image_size: int) -> Example:
        """Stacks examples, every image (and mask, point, box) resized to S x S.

        Args:
            indices: B example indices.
            image_size: S, the side of the square output images.

        Returns:
            A dict with 'image' float32 [B, S, S, 3] in [0, 1], masks [B, ..., S, S],
            points and boxes rescaled to the S x S pixel grid, other keys stacked
            as they are (ragged keys padded along their leading axis).

        Raises:
            ValueError: `indices` are empty or not integers.
        """
        indices = list(check_indices(indices))
        if not indices:
            raise ValueError(f"{type(self).__name__}.batch: indices is empty")
        resized = [resize_example(self[i], image_size, self.fields) for i in indices]
        return {key: _stack([ex[key] for ex in resized], self.fields[key]) for key in resized[0]}


def resize_example(example: Example, size: int, fields: Mapping[str, Field]) -> Example:
    """Resizes one example to an S x S image grid following `fields`.

    Args:
        example: raw example; must hold 'image' uint8 [H, W, 3].
        size: S.
        fields: how each key is treated; a key missing here is an error, so that
            no array is silently left on the wrong pixel grid.

    Returns:
        The resized example (image float32 in [0, 1]).
    """
    height, width = example["image"].shape[:2]
    scale = np.array([size / height, size / width], np.float32)
    out = {}
    for key, value in example.items():
        if key not in fields:
            raise KeyError(f"no Field declared for key {key!r}; declared: {sorted(fields)}")
        kind = fields[key].kind
        if kind == IMAGE:
            out[key] = resize_image(value, size)
        elif kind == MASK:
            out[key] = resize_nearest(value, size)
        elif kind == POINTS:
            out[key] = ((value + 0.5) * scale - 0.5).astype(np.float32)
        elif kind == BOXES:
            out[key] = (value * np.tile(scale, 2)).astype(np.float32)
        elif kind == KEEP:
            out[key] = value
        else:
            raise ValueError(f"Field kind {kind!r} for key {key!r}; expected one of {_KINDS}")
    return out


def load_rgb(path, dataset: str, expected: str) -> np.ndarray:
    """Reads an image file as uint8 [H, W, 3] (grayscale and palette images converted).

    Raises:
        FileNotFoundError: `path` is no file; the message names `dataset` and
            where the image was `expected`.
        OSError: the file is no image PIL can decode, e.g. a truncated JPEG;
            the message names `dataset` and `path` (see `decode_rgb`).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: image {path} not found; expected {expected}")
    return decode_rgb(path, dataset)


def decode_rgb(path, dataset: str) -> np.ndarray:
    """An image file's pixels as uint8 [H, W, 3], converted to RGB.

    Raises:
        OSError: naming `dataset` and `path`, where PIL cannot decode the file
            (corrupt, truncated, or not an image); PIL's own error says neither.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:  # PIL's UnidentifiedImageError is an OSError too
        raise OSError(f"{dataset}: cannot decode image {path} ({error}); the file is corrupt or truncated") from error


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a uint8 image, scaled to [0, 1].

    Args:
        image: uint8 [H, W, 3].
        size: S.

    Returns:
        float32 [S, S, 3] in [0, 1].
    """
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return image.astype(np.float32) / 255.0


def resize_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbor resize of the last two (spatial) axes, any dtype.

    Done in numpy rather than PIL so that int32 label numbers >= 256 and leading
    channel axes survive unchanged.

    Args:
        mask: [..., h, w].
        size: S.

    Returns:
        [..., S, S], same dtype; output pixel i samples input pixel
        floor((i + 0.5) * h / S), the one whose area contains its center.
    """
    height, width = mask.shape[-2:]
    rows = np.minimum(((np.arange(size) + 0.5) * height / size).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * width / size).astype(np.int64), width - 1)
    return mask[..., rows[:, None], cols[None, :]]


def _stack(arrays: list[np.ndarray], field: Field) -> np.ndarray:
    """Stacks along a new batch axis, padding ragged leading axes first."""
    if field.ragged:
        longest = max(a.shape[0] for a in arrays)
        arrays = [_pad_leading(a, longest, field.pad_value) for a in arrays]
    return np.stack(arrays)


def _pad_leading(array: np.ndarray, length: int, value: Any) -> np.ndarray:
    """Pads axis 0 of `array` up to `length` with `value`."""
    pad = [(0, length - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
    return np.pad(array, pad, constant_values=value)
