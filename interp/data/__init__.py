"""Datasets: the embedded SynthParts dataset with ground truth, and readers for real data."""

from interp.data._reader import Field, Reader, resize_image, resize_nearest
from interp.data.broden import Broden, decode_label_png
from interp.data.cub import CUB200
from interp.data.landmarks import CUB_ICNN_PARTS, select_landmarks
from interp.data.stream import (
    BatchSource,
    batch_images,
    check_indices,
    check_source,
    check_span,
    epoch_indices,
    in_memory,
    pass_indices,
    sized,
)
from interp.data.synthparts import SynthParts
from interp.data.tfds_sources import TFDS_SOURCES, TfdsSource, tfds_source
from interp.data.views import flipped, mirror, object_crops, subset
from interp.data.voc_part import ANIMAL_CLASSES, ANIMAL_PART_GROUPS, ICNN_LANDMARK_GROUPS, VOCPart

__all__ = [
    "BatchSource",
    "batch_images",
    "check_indices",
    "check_source",
    "check_span",
    "epoch_indices",
    "in_memory",
    "pass_indices",
    "sized",
    "object_crops",
    "flipped",
    "mirror",
    "subset",
    "SynthParts",
    "Reader",
    "Field",
    "resize_image",
    "resize_nearest",
    "CUB200",
    "VOCPart",
    "ANIMAL_CLASSES",
    "ANIMAL_PART_GROUPS",
    "ICNN_LANDMARK_GROUPS",
    "select_landmarks",
    "CUB_ICNN_PARTS",
    "Broden",
    "decode_label_png",
    "TfdsSource",
    "tfds_source",
    "TFDS_SOURCES",
]
