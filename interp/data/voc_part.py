"""PASCAL-Part (VOC-Part) object crops with part masks and part-center landmarks.

Expected layout: the PASCAL-Part release (trainval.tar.gz: `Annotations_Part/`)
unpacked beside the PASCAL VOC2010 folder it annotates:

    <root>/JPEGImages/<id>.jpg                VOC2010 images
    <root>/Annotations_Part/<id>.mat          PASCAL-Part, one per image
    <root>/ImageSets/Main/<split>.txt         image ids, one per line (when split is given)
    <root>/ImageSets/Main/<class>_<split>.txt optional, VOC's 'id flag' lists (flag -1:
                                              class absent); used only to skip reading
                                              .mat files of images without the classes

A .mat file holds a MATLAB struct `anno` with `imname` and `objects`, a struct
array with per object `class` (e.g. 'cat'), `class_ind` (1-based VOC index),
`mask` (H x W object silhouette) and `parts`, a struct array with per part
`part_name` (e.g. 'head', 'leye', 'lfleg') and `mask` (H x W). Read with
scipy's `squeeze_me`, a one-element struct array comes back as a bare struct,
and an object without parts has an empty array.

One example per object of the selected classes (object-level crops, as in the
interpretable-CNN experiments), keys (pixel conventions of `interp.data._reader`):
    'image' uint8 [h, w, 3]: the image cropped to the object mask's bounding box
        (grown by `margin` pixels, clipped to the image);
    'label' int32 []: index into `classes`;
    'object_mask' uint8 [h, w]: 1 on the object's silhouette;
    'part_mask' int32 [h, w]: 0 = no part group, g + 1 = part group g (`part_names`);
        fine parts are painted in the file's order, later ones over earlier ones;
    'landmarks' float32 [P, 2] (row, col): the center of each part group, the mean
        pixel coordinate of the pixels 'part_mask' gives that group; (0, 0) where
        the group is absent;
    'landmark_visible' bool [P]: whether the group has any pixel;
    'crop_box' int32 [4]: (top, left, bottom, right) of the crop in the full image,
        bottom and right exclusive (kept unchanged by `batch`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.io

from interp.data._reader import IMAGE, KEEP, MASK, POINTS, Example, Field, Reader, load_rgb

_NAME = "PASCAL-Part"
_LAYOUT = "the VOC2010 folder with PASCAL-Part's Annotations_Part/ unpacked into it"

# VOC's own class names, spelled as the dataset spells them ("aeroplane").
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
# The six animal categories of the interpretable-CNN experiments (Zhang et al. 2018).
ANIMAL_CLASSES = ("bird", "cat", "cow", "dog", "horse", "sheep")

# Part groups: PASCAL-Part's fine part names (part2ind.m of the release) merged
# into coarse parts shared by the animal classes. Legs gather every class's
# spelling: cat/dog legs and paws (lfleg, lfpa, ...), cow/horse/sheep upper and
# lower legs (lfuleg, lflleg, ...), horse hooves (lfho, ...), bird legs, feet
# and wings. Fine names in no group (e.g. person's 'hair', vehicle parts) are
# left out of 'part_mask'.
ANIMAL_PART_GROUPS: Mapping[str, tuple[str, ...]] = {
    "head": ("head", "leye", "reye", "lear", "rear", "nose", "muzzle", "mouth", "beak",
             "lhorn", "rhorn", "lebrow", "rebrow"),
    "torso": ("torso", "neck"),
    "legs": ("lfleg", "lfpa", "rfleg", "rfpa", "lbleg", "lbpa", "rbleg", "rbpa",
             "lfuleg", "lflleg", "rfuleg", "rflleg", "lbuleg", "lblleg", "rbuleg", "rblleg",
             "lfho", "rfho", "lbho", "rbho", "lleg", "lfoot", "rleg", "rfoot", "lwing", "rwing"),
    "tail": ("tail",),
}
# The landmarks of the paper's location-instability evaluation on PASCAL-Part:
# head, neck and torso of each category (neck apart from the torso). Pass as
# `parts=` to get one landmark per entry.
ICNN_LANDMARK_GROUPS: Mapping[str, tuple[str, ...]] = {
    "head": ANIMAL_PART_GROUPS["head"],
    "neck": ("neck",),
    "torso": ("torso",),
}


class PartObject(NamedTuple):
    """One object of a PASCAL-Part annotation.

    Attributes:
        class_name: its VOC class, e.g. 'cat'.
        mask: bool [H, W] silhouette.
        parts: (fine part name, bool [H, W] mask) per part, in the file's order.
    """

    class_name: str
    mask: np.ndarray
    parts: tuple[tuple[str, np.ndarray], ...]


class VOCPart(Reader):
    """Random-access reader of PASCAL-Part objects as cropped examples.

    Args:
        root: the VOC2010 folder holding JPEGImages/ and Annotations_Part/.
        split: a name under ImageSets/Main (e.g. 'train', 'val'), or None for
            every .mat file of Annotations_Part (sorted by id).
        classes: the VOC classes to read, in label order (default
            `ANIMAL_CLASSES`).
        parts: {group name: fine part names}, in landmark order (default
            `ANIMAL_PART_GROUPS`).
        margin: pixels added on every side of the mask's bounding box.

    Attributes:
        class_names, num_classes: `classes` and their number.
        part_names: the part group names, indexed by landmark row.
        part_groups: {group name: fine part names}.
        objects: (image id, object index in its .mat file) per example.

    Objects with an empty mask are skipped (they have no box to crop).
    """

    fields = {
        "image": Field(IMAGE),
        "label": Field(KEEP),
        "object_mask": Field(MASK),
        "part_mask": Field(MASK),
        "landmarks": Field(POINTS),
        "landmark_visible": Field(KEEP),
        "crop_box": Field(KEEP),
    }

    def __init__(self, root: str | os.PathLike, split: str | None = None,
                 classes: Sequence[str] | None = None,
                 parts: Mapping[str, Sequence[str]] | None = None, margin: int = 0):
        self.root = Path(root)
        for folder in ("JPEGImages", "Annotations_Part"):
            if not (self.root / folder).is_dir():
                raise FileNotFoundError(f"{_NAME}: folder {self.root / folder} not found; expected {_LAYOUT}")
        classes = ANIMAL_CLASSES if classes is None else tuple(classes)
        unknown = [c for c in classes if c not in VOC_CLASSES]
        if unknown or not classes:
            raise ValueError(f"{_NAME}: unknown classes {unknown or '(none given)'}; expected PASCAL VOC "
                             f"class names: {', '.join(VOC_CLASSES)}")
        if margin < 0:
            raise ValueError(f"{_NAME}: margin {margin}; expected pixels >= 0")
        self.class_names, self.num_classes, self.margin = classes, len(classes), int(margin)
        self.part_groups = _check_groups(ANIMAL_PART_GROUPS if parts is None else parts)
        self.part_names = tuple(self.part_groups)
        self._group_of = {fine: g + 1 for g, names in enumerate(self.part_groups.values()) for fine in names}
        self._cached: tuple[str, list[PartObject]] | None = None
        self.objects = []
        for image_id in self._candidate_ids(split):
            for k, obj in enumerate(self._read(image_id)):
                if obj.class_name in classes and obj.mask.any():
                    self.objects.append((image_id, k))

    def _candidate_ids(self, split: str | None) -> list[str]:
        """Image ids of `split`, less those the optional per-class lists rule out."""
        annotations = self.root / "Annotations_Part"
        if split is None:
            return sorted(path.stem for path in annotations.glob("*.mat"))
        ids = [row[0] for row in _read_list(self.root / "ImageSets/Main" / f"{split}.txt", 1)]
        missing = [i for i in ids if not (annotations / f"{i}.mat").is_file()]
        if missing:
            more = " ..." if len(missing) > 3 else ""
            raise FileNotFoundError(f"{_NAME}: {annotations / (missing[0] + '.mat')} not found; "
                                    f"{len(missing)} ids of ImageSets/Main/{split}.txt have no "
                                    f"Annotations_Part/<id>.mat ({missing[:3]}{more})")
        lists = [self.root / "ImageSets/Main" / f"{c}_{split}.txt" for c in self.class_names]
        if all(path.is_file() for path in lists):
            present = {row[0] for path in lists for row in _read_list(path, 2) if row[1] != "-1"}
            ids = [i for i in ids if i in present]
        return ids

    def _read(self, image_id: str) -> list[PartObject]:
        """The objects of one image's .mat file (the last file read is cached)."""
        if self._cached is None or self._cached[0] != image_id:
            self._cached = (image_id, read_annotation(self.root / "Annotations_Part" / f"{image_id}.mat"))
        return self._cached[1]

    def __len__(self) -> int:
        return len(self.objects)

    def _example(self, index: int) -> Example:
        image_id, k = self.objects[index]
        obj = self._read(image_id)[k]
        path = self.root / "JPEGImages" / f"{image_id}.jpg"
        image = load_rgb(path, _NAME, f"{_LAYOUT} with JPEGImages/<id>.jpg")
        for what, mask in (("mask", obj.mask), *((f"part {name!r} mask", m) for name, m in obj.parts)):
            if mask.shape != image.shape[:2]:
                raise ValueError(f"{_NAME}: Annotations_Part/{image_id}.mat object {k} {what} is "
                                 f"{mask.shape[0]}x{mask.shape[1]}; the image {path} is "
                                 f"{image.shape[0]}x{image.shape[1]}")
        top, left, bottom, right = _crop_box(obj.mask, self.margin)
        window = (slice(top, bottom), slice(left, right))
        part_mask = np.zeros(obj.mask.shape, np.int32)
        for name, mask in obj.parts:
            if name in self._group_of:
                part_mask[mask] = self._group_of[name]
        part_mask = part_mask[window]
        landmarks, visible = part_centers(part_mask, len(self.part_names))
        return {
            "image": image[window],
            "label": np.int32(self.class_names.index(obj.class_name)),
            "object_mask": obj.mask[window].astype(np.uint8),
            "part_mask": part_mask,
            "landmarks": landmarks,
            "landmark_visible": visible,
            "crop_box": np.array([top, left, bottom, right], np.int32),
        }


def part_centers(part_mask: np.ndarray, num_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Center of each labeled region of a part map.

    Args:
        part_mask: int [h, w], 0 = none, g + 1 = group g.
        num_groups: P.

    Returns:
        landmarks float32 [P, 2]: (row, col) mean of the group's pixel
        coordinates, (0, 0) where it has none; visible bool [P].
    """
    landmarks = np.zeros((num_groups, 2), np.float32)
    visible = np.zeros(num_groups, bool)
    for g in range(num_groups):
        rows, cols = np.nonzero(part_mask == g + 1)
        if rows.size:
            landmarks[g] = rows.mean(), cols.mean()
            visible[g] = True
    return landmarks, visible


def read_annotation(path: Path) -> list[PartObject]:
    """Parses one PASCAL-Part .mat file.

    Args:
        path: Annotations_Part/<id>.mat.

    Returns:
        The objects in the file's order.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not a MATLAB file, or not PASCAL-Part's `anno` structure
            (the message names the file and the missing piece).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{_NAME}: {path} not found; expected {_LAYOUT}")
    try:
        contents = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises ValueError, TypeError or MatReadError on a bad file
        raise ValueError(f"{_NAME}: {path} is not a readable MATLAB .mat file ({err})") from None
    if "anno" not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise ValueError(f"{_NAME}: {path} has no variable 'anno'; expected PASCAL-Part's struct anno "
                         f"(imname, objects), found {found}")
    objects = _field(contents["anno"], "objects", path, "anno")
    parsed = []
    for k, obj in enumerate(_struct_list(objects)):
        where = f"anno.objects({k + 1})"
        parts = tuple((str(_field(part, "part_name", path, f"{where}.parts({p + 1})")),
                       _as_mask(_field(part, "mask", path, f"{where}.parts({p + 1})")))
                      for p, part in enumerate(_struct_list(_field(obj, "parts", path, where))))
        parsed.append(PartObject(str(_field(obj, "class", path, where)),
                                 _as_mask(_field(obj, "mask", path, where)), parts))
    return parsed


def _struct_list(value: Any) -> list[Any]:
    """A MATLAB struct array as a list: squeezed 1x1 arrays are bare structs, empty ones arrays."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _field(struct: Any, name: str, path: Path, where: str) -> Any:
    """struct.name, or a ValueError naming the file and the struct's fields."""
    fields = getattr(struct, "_fieldnames", None)
    if fields is None or name not in fields:
        found = f"fields {fields}" if fields is not None else f"a {type(struct).__name__}, not a struct"
        raise ValueError(f"{_NAME}: {path}: {where} has no field {name!r}; expected PASCAL-Part's anno "
                         f"structure (found {found})")
    return getattr(struct, name)


def _as_mask(value: Any) -> np.ndarray:
    """A MATLAB logical / uint8 mask as bool [H, W]."""
    return np.atleast_2d(np.asarray(value)) != 0


def _crop_box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive ends, of the mask's pixels grown by margin."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    height, width = mask.shape
    return (max(rows[0] - margin, 0), max(cols[0] - margin, 0),
            min(rows[-1] + 1 + margin, height), min(cols[-1] + 1 + margin, width))


def _check_groups(groups: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Validates {group: fine part names}: non-empty, no fine name in two groups."""
    checked = {name: (fine,) if isinstance(fine, str) else tuple(fine) for name, fine in groups.items()}
    owner: dict[str, str] = {}
    for name, fine_names in checked.items():
        if not fine_names:
            raise ValueError(f"{_NAME}: part group {name!r} has no fine part names")
        for fine in fine_names:
            if fine in owner:
                raise ValueError(f"{_NAME}: part {fine!r} is in groups {owner[fine]!r} and {name!r}; "
                                 "expected each fine part name in one group")
            owner[fine] = name
    if not checked:
        raise ValueError(f"{_NAME}: parts is empty; expected {{group name: fine part names}}")
    return checked


def _read_list(path: Path, num_columns: int) -> list[list[str]]:
    """Rows of a whitespace-separated ImageSets file, each with `num_columns` cells."""
    if not path.is_file():
        raise FileNotFoundError(f"{_NAME}: {path} not found; expected {_LAYOUT} and ImageSets/Main lists")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        row = line.split()
        if not row:
            continue
        if len(row) != num_columns:
            raise ValueError(f"{_NAME}: {path} line {line_no}: expected {num_columns} column(s), "
                             f"got {line!r}")
        rows.append(row)
    return rows
