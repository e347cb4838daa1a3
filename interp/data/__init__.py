"""Datasets: the embedded SynthParts dataset with ground truth, and readers for real data."""

from interp.data.synthparts import SynthParts
from interp.data._source import Field, Source
from interp.data.broden import Broden, decode_label_png
from interp.data.cub import CUB200
from interp.data.tfds_sources import TFDS_SOURCES, TfdsSource, tfds_source

__all__ = [
    "SynthParts",
    "Source",
    "Field",
    "CUB200",
    "Broden",
    "decode_label_png",
    "TfdsSource",
    "tfds_source",
    "TFDS_SOURCES",
]
