"""Broden (the Network Dissection concept dataset) read from its folder.

Expected layout (NetDissect's `broden1_224` / `broden1_227`):

    <root>/index.csv     image,split,ih,iw,sh,sw,<category>,...  one row per image;
                         a category cell is a ';'-separated list of PNG label-map
                         file names or integer image-level labels
    <root>/label.csv     number,name,category,frequency,coverage,syns
                         (category like "color(120);object(30)": count per category)
    <root>/category.csv  name,first,last,count,frequency
    <root>/c_<category>.csv  code,number,name,frequency,coverage
    <root>/images/<image and PNG paths from index.csv>

A PNG label map encodes the global label number of each pixel as R + 256 * G
(0 means unlabeled). Label maps have the segmentation size sh x sw, which may
differ from the image's ih x iw.

Example keys (pixel conventions of `interp.data._reader`):
    'image' uint8 [ih, iw, 3];
    'seg/<category>' int32 [K, sh, sw]: the K label maps of that category
        (K varies per image, often 0);
    'image_labels/<category>' int32 [L]: image-level labels (e.g. scene), L varies.
In `batch`, both are padded along their first axis with 0 (= no label).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from interp.data._reader import IMAGE, KEEP, MASK, Example, Field, Reader, decode_rgb, load_rgb

_NAME = "Broden"
_INDEX_COLUMNS = ("image", "split", "ih", "iw", "sh", "sw")


class Concept(NamedTuple):
    """One row of label.csv: a concept with its global label number.

    Attributes:
        number: the global label number (the value in the PNG label maps).
        name: e.g. 'dog'.
        category: the primary category, where the concept is most frequent.
        categories: count of the concept per category, e.g. {'object': 30}.
        frequency: number of images showing the concept.
        coverage: the concept's total coverage (in images' worth of pixels).
        syns: synonyms.
    """

    number: int
    name: str
    category: str
    categories: dict[str, int]
    frequency: int
    coverage: float
    syns: tuple[str, ...]


class Category(NamedTuple):
    """One row of category.csv (first/last: the range of its codes)."""

    name: str
    first: int
    last: int
    count: int
    frequency: int


class CategoryCode(NamedTuple):
    """One row of c_<category>.csv: a category-local code for a global number."""

    code: int
    number: int
    name: str
    frequency: int
    coverage: float


class _Row(NamedTuple):
    """One parsed row of index.csv."""

    image: str
    size: tuple[int, int]
    seg_size: tuple[int, int]
    maps: dict[str, tuple[str, ...]]
    labels: dict[str, tuple[int, ...]]


class Broden(Reader):
    """Random-access reader of a Broden folder.

    Args:
        root: the folder holding index.csv.
        split: 'train', 'val' (the index's split column), or None for all rows.
        categories: the categories to read (default: every category column of
            index.csv); e.g. ('object', 'part') skips decoding color maps.

    Attributes:
        categories: the categories read, in index.csv column order.
        concepts: {number: Concept} from label.csv.
        concept_names: name by global label number (index 0 is the unlabeled '-').
        category_info: {name: Category} from category.csv.
        category_codes: {category: tuple of CategoryCode} from c_<category>.csv.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None,
                 categories: Sequence[str] | None = None):
        self.root = Path(root)
        header, rows = _read_index(self.root / "index.csv")
        known = header[len(_INDEX_COLUMNS):]
        unknown = sorted(set(categories or ()) - set(known))
        if unknown:
            raise ValueError(f"{_NAME}: categories {unknown} not in index.csv; known: {list(known)}")
        self.categories = tuple(c for c in known if categories is None or c in categories)
        self._rows = [row for row, row_split in rows if split is None or row_split == split]
        self.concepts = read_labels(self.root / "label.csv")
        names = [""] * (max(self.concepts, default=0) + 1)
        for number, concept in self.concepts.items():
            names[number] = concept.name
        self.concept_names = tuple(names)
        self.category_info = {c.name: c for c in read_categories(self.root / "category.csv")}
        self.category_codes = {c: read_category_codes(self.root / f"c_{c}.csv") for c in self.category_info}
        self.fields = {"image": Field(IMAGE)}
        for category in self.categories:
            self.fields[f"seg/{category}"] = Field(MASK, ragged=True, pad_value=0)
            self.fields[f"image_labels/{category}"] = Field(KEEP, ragged=True, pad_value=0)

    def __len__(self) -> int:
        return len(self._rows)

    def _example(self, index: int) -> Example:
        row = self._rows[index]
        image = _load_image(self.root / "images" / row.image, row.size)
        example = {"image": image}
        for category in self.categories:
            maps = [decode_label_png(self.root / "images" / name, row.seg_size) for name in row.maps[category]]
            example[f"seg/{category}"] = (np.stack(maps) if maps
                                          else np.zeros((0, *row.seg_size), np.int32))
            example[f"image_labels/{category}"] = np.array(row.labels[category], np.int32)
        return example


def decode_label_png(path: Path, seg_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decodes a Broden label map: label number = R + 256 * G.

    Args:
        path: the PNG file.
        seg_size: the expected (sh, sw) from index.csv, or None to skip the check.

    Returns:
        int32 [sh, sw] of global label numbers (0 = unlabeled).

    Raises:
        FileNotFoundError: no file at `path`.
        OSError: the file cannot be decoded (corrupt or truncated); names it.
        ValueError: its size differs from `seg_size`.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{_NAME}: label map {path} not found; expected it under images/ "
                                "as named in index.csv")
    rgb = decode_rgb(path, _NAME).astype(np.int32)
    if seg_size is not None and rgb.shape[:2] != tuple(seg_size):
        raise ValueError(f"{_NAME}: label map {path} is {rgb.shape[0]}x{rgb.shape[1]}; "
                         f"index.csv says sh x sw = {seg_size[0]}x{seg_size[1]}")
    return rgb[..., 0] + 256 * rgb[..., 1]


def read_labels(path: Path) -> dict[int, Concept]:
    """Parses label.csv into {global label number: Concept}."""
    concepts = {}
    _, rows = _read_csv(path, ("number", "name", "category", "frequency", "coverage", "syns"))
    for line_no, row in rows:
        try:
            counts = _parse_category_counts(row["category"])
            number = int(row["number"])
            concepts[number] = Concept(
                number=number, name=row["name"],
                category=max(counts, key=counts.get) if counts else "",
                categories=counts, frequency=int(row["frequency"]), coverage=float(row["coverage"]),
                syns=tuple(s for s in row["syns"].split(";") if s))
        except ValueError as err:
            raise ValueError(f"{_NAME}: {path.name} line {line_no}: {err}") from None
    return concepts


def read_categories(path: Path) -> list[Category]:
    """Parses category.csv."""
    _, rows = _read_csv(path, Category._fields)
    return [_typed(Category, (str, int, int, int, int), row, path, line_no) for line_no, row in rows]


def read_category_codes(path: Path) -> tuple[CategoryCode, ...]:
    """Parses a c_<category>.csv (category-local code -> global number)."""
    _, rows = _read_csv(path, CategoryCode._fields)
    converters = (int, int, str, int, float)
    return tuple(_typed(CategoryCode, converters, row, path, line_no) for line_no, row in rows)


def _typed(cls, converters, row: dict[str, str], path: Path, line_no: int):
    """Builds the NamedTuple `cls` from a csv row, one converter per field."""
    try:
        return cls(*(convert(row[k]) for k, convert in zip(cls._fields, converters)))
    except ValueError as err:
        raise ValueError(f"{_NAME}: {path.name} line {line_no}: {err}") from None


def _parse_category_counts(cell: str) -> dict[str, int]:
    """'color(120);object(30)' -> {'color': 120, 'object': 30}."""
    counts = {}
    for entry in filter(None, cell.split(";")):
        name, sep, rest = entry.partition("(")
        if not sep or not rest.endswith(")"):
            raise ValueError(f"category {entry!r}; expected 'name(count)'")
        counts[name] = int(rest[:-1])
    return counts


def _read_index(path: Path) -> tuple[list[str], list[tuple[_Row, str]]]:
    """Parses index.csv into its header and (row, split) pairs."""
    header, rows = _read_csv(path, _INDEX_COLUMNS, prefix=True)
    parsed = []
    for line_no, row in rows:
        try:
            size, seg_size = (int(row["ih"]), int(row["iw"])), (int(row["sh"]), int(row["sw"]))
        except ValueError:
            raise ValueError(f"{_NAME}: index.csv line {line_no}: expected integer ih, iw, sh, sw, "
                             f"got {[row[k] for k in _INDEX_COLUMNS[2:]]}") from None
        maps, labels = {}, {}
        for category in header[len(_INDEX_COLUMNS):]:
            maps[category], labels[category] = _split_cell(row[category])
        parsed.append((_Row(row["image"], size, seg_size, maps, labels), row["split"]))
    return header, parsed


def _split_cell(cell: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """'a_object.png;b_object.png' or '12;40' -> (PNG names, image-level labels)."""
    entries = [e.strip() for e in cell.split(";") if e.strip()]
    return tuple(e for e in entries if not e.isdigit()), tuple(int(e) for e in entries if e.isdigit())


def _read_csv(path: Path, columns: Sequence[str],
              prefix: bool = False) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Reads a csv with a header, checking the header and every row's width.

    Args:
        path: the file.
        columns: the expected header (or its first columns, when `prefix`).
        prefix: whether further columns may follow `columns`.

    Returns:
        The header, and (line number, {column: cell}) per data row (the header
        is line 1).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{_NAME}: {path} not found; expected the Broden folder layout "
                                f"with {path.name} ({','.join(columns)}{',...' if prefix else ''})")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if tuple(header[:len(columns)] if prefix else header) != tuple(columns):
            raise ValueError(f"{_NAME}: {path.name} header {header}; expected "
                             f"{list(columns)}{' followed by category columns' if prefix else ''}")
        rows = []
        for cells in reader:
            if not cells:
                continue
            if len(cells) != len(header):
                raise ValueError(f"{_NAME}: {path.name} line {reader.line_num}: expected {len(header)} "
                                 f"columns ({','.join(header)}), got {len(cells)}")
            rows.append((reader.line_num, dict(zip(header, cells))))
    return header, rows


def _load_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 [ih, iw, 3], checked against index.csv's (ih, iw)."""
    pixels = load_rgb(path, _NAME, "it under images/ as named in index.csv")
    if pixels.shape[:2] != size:
        raise ValueError(f"{_NAME}: image {path} is {pixels.shape[0]}x{pixels.shape[1]}; "
                         f"index.csv says ih x iw = {size[0]}x{size[1]}")
    return pixels
