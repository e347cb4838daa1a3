"""CUB-200-2011 read from its own folder layout (nothing downloaded).

Expected layout (as unpacked from CUB_200_2011.tgz):

    <root>/images.txt               image_id path           (ids 1-based)
    <root>/image_class_labels.txt   image_id class_id       (classes 1-based)
    <root>/train_test_split.txt     image_id is_training    (1 train, 0 test)
    <root>/bounding_boxes.txt       image_id x y width height
    <root>/classes.txt              class_id name
    <root>/parts/parts.txt          part_id name            (15 parts)
    <root>/parts/part_locs.txt      image_id part_id x y visible
    <root>/images/<path>

Example keys (pixel conventions of `interp.data._reader`):
    'image' uint8 [H, W, 3]; 'label' int32 [] (0-based class);
    'bbox' float32 [4] (ymin, xmin, ymax, xmax); 'landmarks' float32 [P, 2]
    (row, col) with P = 15; 'landmark_visible' bool [P]; 'image_id' int32 []
    (the 1-based id of images.txt). Invisible parts keep the file's
    coordinates (usually 0, 0); use 'landmark_visible' to mask them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from interp.data._reader import BOXES, IMAGE, KEEP, POINTS, Example, Field, Reader, load_rgb

_NAME = "CUB-200-2011"
_LAYOUT = "the CUB_200_2011 folder layout"
SPLITS = ("train", "test", "all")


class CUB200(Reader):
    """Random-access reader of a CUB-200-2011 folder.

    Args:
        root: the `CUB_200_2011` folder.
        split: 'train', 'test' (from train_test_split.txt) or 'all'.
        crop_to_bbox: crop every image to its bounding box (as the
            interpretable-CNN paper does); landmarks and bbox move with it.

    Attributes:
        num_classes: 200 for the full dataset (the number of lines of classes.txt).
        class_names: names from classes.txt, indexed by 0-based label.
        part_names: names from parts/parts.txt, indexed by landmark row.
        image_ids: the 1-based ids of the selected images, in file order.
    """

    fields = {
        "image": Field(IMAGE),
        "label": Field(KEEP),
        "bbox": Field(BOXES),
        "landmarks": Field(POINTS),
        "landmark_visible": Field(KEEP),
        "image_id": Field(KEEP),
    }

    def __init__(self, root: str | os.PathLike, split: str = "train", crop_to_bbox: bool = False):
        if split not in SPLITS:
            raise ValueError(f"{_NAME}: split {split!r}; expected one of {SPLITS}")
        self.root = Path(root)
        self.crop_to_bbox = crop_to_bbox
        self.class_names = tuple(name for (name,) in self._table("classes.txt", 2).values())
        self.num_classes = len(self.class_names)
        self.part_names = tuple(name for (name,) in self._table("parts/parts.txt", 2).values())
        self._paths = {i: path for i, (path,) in self._table("images.txt", 2).items()}
        self.image_ids = self._select_split(split)
        self._labels = {i: int(c[0]) - 1 for i, c in self._numbers(
            "image_class_labels.txt", 2, "image_id class_id").items()}
        self._bboxes = self._numbers("bounding_boxes.txt", 5, "image_id x y width height")
        self._parts = _read_part_locs(self.root / "parts/part_locs.txt", len(self.part_names))
        for table, name in ((self._labels, "image_class_labels.txt"),
                            (self._bboxes, "bounding_boxes.txt"), (self._parts, "parts/part_locs.txt")):
            _check_covers(table, self.image_ids, self.root / name)

    def _table(self, name: str, num_columns: int) -> dict[int, list[str]]:
        """{id: remaining columns} of the table `name` (relative to root), in file order."""
        path = self.root / name
        table = {}
        for line_no, (key, *rest) in _read_table(path, num_columns, name):
            if not key.isdigit():
                raise ValueError(f"{_NAME}: {path} line {line_no}: expected an integer id first, got {key!r}")
            table[int(key)] = rest
        return table

    def _numbers(self, name: str, num_columns: int, columns: str) -> dict[int, np.ndarray]:
        """{id: float64 [num_columns - 1]} of a numeric table, erroring with the file's name."""
        numbers = {}
        for i, row in self._table(name, num_columns).items():
            try:
                numbers[i] = np.array(row, np.float64)
            except ValueError:
                raise ValueError(f"{_NAME}: {self.root / name} id {i}: expected numbers "
                                 f"'{columns}', got {row}") from None
        return numbers

    def _select_split(self, split: str) -> list[int]:
        """The 1-based image ids of `split`, in images.txt order."""
        is_train = self._table("train_test_split.txt", 2)
        _check_covers(is_train, list(self._paths), self.root / "train_test_split.txt")
        if split == "all":
            return list(self._paths)
        wanted = "1" if split == "train" else "0"
        return [i for i in self._paths if is_train[i][0] == wanted]

    def __len__(self) -> int:
        return len(self.image_ids)

    def _example(self, index: int) -> Example:
        image_id = self.image_ids[index]
        image = load_rgb(self.root / "images" / self._paths[image_id], _NAME,
                         f"{_LAYOUT} with images/<path from images.txt>")
        x, y, w, h = self._bboxes[image_id]
        bbox = np.array([y, x, y + h, x + w], np.float32)
        landmarks, visible = self._parts[image_id]
        example = {
            "image": image,
            "label": np.int32(self._labels[image_id]),
            "bbox": bbox,
            "landmarks": landmarks.copy(),
            "landmark_visible": visible.copy(),
            "image_id": np.int32(image_id),
        }
        return crop_example(example) if self.crop_to_bbox else example


def crop_example(example: Example) -> Example:
    """Crops 'image' to 'bbox', moving landmarks and bbox into the crop's frame.

    The crop is the smallest whole-pixel window containing the box, clipped to
    the image: rows floor(ymin)..ceil(ymax), cols floor(xmin)..ceil(xmax).

    Args:
        example: with 'image' [H, W, 3], 'bbox' [4], 'landmarks' [P, 2].

    Returns:
        A new example; landmarks are shifted by (-top, -left) and the bbox too.
    """
    height, width = example["image"].shape[:2]
    ymin, xmin, ymax, xmax = example["bbox"]
    top, left = max(int(np.floor(ymin)), 0), max(int(np.floor(xmin)), 0)
    bottom, right = min(int(np.ceil(ymax)), height), min(int(np.ceil(xmax)), width)
    offset = np.array([top, left], np.float32)
    out = dict(example)
    out["image"] = example["image"][top:bottom, left:right]
    out["landmarks"] = (example["landmarks"] - offset).astype(np.float32)
    out["bbox"] = (example["bbox"] - np.tile(offset, 2)).astype(np.float32)
    return out


def _read_part_locs(path: Path, num_parts: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Parses part_locs.txt into {image_id: (landmarks [P, 2] (row, col), visible [P])}."""
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for line_no, (image_id, part_id, x, y, visible) in _read_table(path, 5, "parts/part_locs.txt"):
        try:
            image_id, part, visible = int(image_id), int(part_id) - 1, bool(int(visible))
            point = (float(y), float(x))
        except ValueError as err:
            raise ValueError(f"{_NAME}: {path} line {line_no}: expected 'image_id part_id x y visible' "
                             f"with numbers ({err})") from None
        if not 0 <= part < num_parts:
            raise ValueError(f"{_NAME}: {path} line {line_no}: part_id {part + 1} outside 1..{num_parts} "
                             "(parts/parts.txt)")
        landmarks, mask = parts.setdefault(
            image_id, (np.zeros((num_parts, 2), np.float32), np.zeros(num_parts, bool)))
        landmarks[part], mask[part] = point, visible
    return parts


def _read_table(path: Path, num_columns: int, name: str) -> list[tuple[int, list[str]]]:
    """Reads a whitespace-separated CUB table; the last column may hold spaces.

    Args:
        path: the file.
        num_columns: expected columns per line.
        name: the file's path inside the CUB folder, for messages.

    Returns:
        (1-based line number, `num_columns` strings) per non-empty line.

    Raises:
        FileNotFoundError: the file is missing (the message names the layout).
        ValueError: a line has too few columns (the message names file and line).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{_NAME}: {path} not found; expected {_LAYOUT} with {name}")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = line.split(maxsplit=num_columns - 1)
        if len(row) != num_columns:
            raise ValueError(f"{_NAME}: {path} line {line_no}: expected {num_columns} columns, "
                             f"got {len(row)}: {line!r}")
        rows.append((line_no, row))
    return rows


def _check_covers(table: dict[int, object], image_ids: list[int], path: Path) -> None:
    """Raises ValueError naming `path` if it lacks an entry for some image id."""
    missing = [i for i in image_ids if i not in table]
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise ValueError(f"{_NAME}: {path} has no entry for image ids {missing[:5]}{more} "
                         "listed in images.txt")
