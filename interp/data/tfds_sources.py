"""tensorflow-datasets datasets read by random access, without TensorFlow.

`tfds.data_source` reads a dataset prepared in the array_record format from a
local `data_dir`; nothing is downloaded here (`download=False`). Each dataset is
normalized to the `interp.data` example contract (pixel conventions of
`interp.data._reader`):

  cifar10            'image' uint8 [32, 32, 3], 'label' int32 []
  caltech_birds2011  'image', 'label' int32 [] (200 classes), 'bbox' float32 [4],
                     'object_mask' uint8 [H, W] (the bird's segmentation, raw
                     values; present when the dataset has it)
  voc                'image', 'object_bbox' float32 [N, 4], 'object_label'
                     int32 [N], and 'label' int32 []: the class of the largest
                     object by box area (the first such on ties; -1 without
                     objects). In `batch`, objects are padded to the longest
                     with label -1 and an all-zero box.
  celeb_a            'image' uint8 [218, 178, 3], 'attributes' bool [40] (order
                     in `attribute_names`), 'landmarks' float32 [5, 2] (row, col)
                     (order in `landmark_names`); no 'label'.

tfds stores boxes as fractions (ymin, xmin, ymax, xmax); they are returned here
in pixels of the raw image so that every reader shares one convention.

To prepare a dataset (on a machine with network, once):

    tfds.builder(name, data_dir=DIR, file_format="array_record").download_and_prepare()
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.data._reader import BOXES, IMAGE, KEEP, MASK, POINTS, Example, Field, Reader

CELEB_A_LANDMARKS = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")


def open_data_source(name: str, split: str, data_dir: str | os.PathLike) -> Sequence[Mapping[str, Any]]:
    """`tfds.data_source` with downloads off and a clear error when unprepared.

    Args:
        name: tfds name, optionally with config and version ('voc/2012:5.0.0').
        split: a tfds split ('train', 'test[:10%]', ...).
        data_dir: the local tensorflow-datasets directory.

    Returns:
        The random-access data source of raw tfds examples.

    Raises:
        FileNotFoundError: the dataset is not prepared (as array_record) in data_dir.
    """
    # Imported here so that `import interp.data` stays light for SynthParts users.
    import tensorflow_datasets as tfds

    data_dir = os.fspath(data_dir)
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except (NotImplementedError, FileNotFoundError, AssertionError) as err:
        # tfds reports a missing dataset as an unsupported TFRECORD format,
        # which misleads; say what is missing and how to prepare it instead.
        if _is_prepared(tfds, name, data_dir):
            raise
        raise FileNotFoundError(
            f"tensorflow-datasets {name!r} not found in data_dir={data_dir!r} (random access needs "
            f"the array_record format, and interp never downloads); prepare it once on a machine with "
            f"network: tfds.builder({name!r}, data_dir=..., file_format='array_record')"
            ".download_and_prepare(), then copy that data_dir here") from err


def _is_prepared(tfds, name: str, data_dir: str) -> bool:
    """Whether tfds finds a prepared copy of `name` in `data_dir`."""
    try:
        return tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # an unreadable copy is as good as none for the message
        return False


class TfdsSource(Reader):
    """A tfds dataset normalized to the `interp.data` example contract.

    Subclasses set `fields`, `class_feature` (the path of the ClassLabel
    feature naming the classes) and `normalize`. Use `tfds_source(name, ...)`.

    Args:
        name: tfds name, optionally with config and version ('voc/2012').
        split: a tfds split.
        data_dir: the local tensorflow-datasets directory (required: nothing is
            downloaded).
    """

    class_feature: tuple[str, ...] | None = ("label",)

    def __init__(self, name: str, *, split: str, data_dir: str | os.PathLike):
        self.name, self.split, self.data_dir = name, split, data_dir
        self._source = open_data_source(name, split, data_dir)
        self.features = self._source.dataset_info.features
        if self.class_feature is not None:
            feature = self.features
            for key in self.class_feature:
                feature = feature[key]
            self.class_names = tuple(feature.names)
            self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self._source)

    def _example(self, index: int) -> Example:
        return self.normalize(self._source[index])

    def normalize(self, raw: Mapping[str, Any]) -> Example:
        """Maps one raw tfds example to the normalized keys of this dataset."""
        raise NotImplementedError


class Cifar10(TfdsSource):
    """cifar10: 'image' uint8 [32, 32, 3], 'label' int32 []."""

    fields = {"image": Field(IMAGE), "label": Field(KEEP)}

    def normalize(self, raw: Mapping[str, Any]) -> Example:
        return {"image": np.asarray(raw["image"], np.uint8), "label": np.int32(raw["label"])}


class CaltechBirds2011(TfdsSource):
    """caltech_birds2011: 'image', 'label', 'bbox' [4] pixels, 'object_mask' [H, W]."""

    fields = {"image": Field(IMAGE), "label": Field(KEEP), "bbox": Field(BOXES), "object_mask": Field(MASK)}

    def normalize(self, raw: Mapping[str, Any]) -> Example:
        image = np.asarray(raw["image"], np.uint8)
        example = {"image": image, "label": np.int32(raw["label"]),
                   "bbox": pixel_boxes(raw["bbox"], image.shape[:2])}
        if "segmentation_mask" in raw:
            example["object_mask"] = np.asarray(raw["segmentation_mask"], np.uint8)[..., 0]
        return example


class Voc(TfdsSource):
    """voc: 'image', 'object_bbox' [N, 4], 'object_label' [N], 'label' (largest object)."""

    class_feature = ("objects", "label")
    fields = {"image": Field(IMAGE), "label": Field(KEEP),
              "object_bbox": Field(BOXES, ragged=True, pad_value=0.0),
              "object_label": Field(KEEP, ragged=True, pad_value=-1)}

    def normalize(self, raw: Mapping[str, Any]) -> Example:
        image = np.asarray(raw["image"], np.uint8)
        objects = raw["objects"]
        boxes = pixel_boxes(np.asarray(objects["bbox"], np.float32).reshape(-1, 4), image.shape[:2])
        labels = np.asarray(objects["label"], np.int32).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(f"voc example: {len(boxes)} objects/bbox but {len(labels)} objects/label")
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        label = labels[np.argmax(areas)] if len(labels) else -1  # argmax: first on ties
        return {"image": image, "label": np.int32(label), "object_bbox": boxes, "object_label": labels}


class CelebA(TfdsSource):
    """celeb_a: 'image', 'attributes' bool [40], 'landmarks' [5, 2] (row, col).

    Attributes:
        attribute_names: the 40 attribute names, in the order of 'attributes'.
        landmark_names: the 5 landmark names, in the order of 'landmarks'.
    """

    class_feature = None
    fields = {"image": Field(IMAGE), "attributes": Field(KEEP), "landmarks": Field(POINTS)}
    landmark_names = CELEB_A_LANDMARKS

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(self.features["attributes"].keys())

    def normalize(self, raw: Mapping[str, Any]) -> Example:
        points = raw["landmarks"]
        landmarks = [(points[f"{name}_y"], points[f"{name}_x"]) for name in self.landmark_names]
        return {"image": np.asarray(raw["image"], np.uint8),
                "attributes": np.array([raw["attributes"][a] for a in self.attribute_names], bool),
                "landmarks": np.array(landmarks, np.float32)}


TFDS_SOURCES: dict[str, type[TfdsSource]] = {
    "cifar10": Cifar10, "caltech_birds2011": CaltechBirds2011, "voc": Voc, "celeb_a": CelebA}


def tfds_source(name: str, *, split: str, data_dir: str | os.PathLike) -> TfdsSource:
    """Opens a supported tfds dataset, prepared in `data_dir`, as an `interp.data` reader.

    Args:
        name: one of TFDS_SOURCES, optionally with config and version
            ('voc/2012', 'cifar10:3.0.2').
        split: a tfds split ('train', 'test', 'train[:1000]', ...).
        data_dir: the local tensorflow-datasets directory.

    Returns:
        A `TfdsSource` whose examples follow the module docstring.
    """
    base = name.split("/")[0].split(":")[0]
    if base not in TFDS_SOURCES:
        raise ValueError(f"tfds dataset {name!r} has no reader; supported: {sorted(TFDS_SOURCES)}")
    return TFDS_SOURCES[base](name, split=split, data_dir=data_dir)


def pixel_boxes(boxes: Any, image_size: tuple[int, int]) -> np.ndarray:
    """tfds fractional boxes -> pixels.

    Args:
        boxes: float [..., 4] as fractions (ymin, xmin, ymax, xmax).
        image_size: (H, W) of the raw image.

    Returns:
        float32 [..., 4] (ymin, xmin, ymax, xmax) in pixels.
    """
    height, width = image_size
    return np.asarray(boxes, np.float32) * np.array([height, width, height, width], np.float32)
