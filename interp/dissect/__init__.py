"""Network Dissection: concept IoU for every unit of a layer (Bau et al., CVPR 2017).

`part_interpretability` restricts it to part concepts: the score Interpretable
CNNs (Zhang et al., CVPR 2018) give their filters.

    from interp import dissect
    data = dissect.SynthPartsConcepts(SynthParts(image_size=64), num_examples=512)
    result = dissect.dissect(model, data, ["relu3", "relu4"])
    result["relu3"].summary()            # detectors and unique concepts per category
    dissect.write_csv(result["relu3"], "relu3.csv")
    dissect.write_report(result, model, data, "report/")   # HTML, opens without a server
"""

from interp.dissect.concepts import BrodenConcepts, ConceptBatch, ConceptSet, PartMaskConcepts, SynthPartsConcepts
from interp.dissect.dissect import QUANTILE, activation_masks, dissect
from interp.dissect.parts import PartInterpretability, part_interpretability
from interp.dissect.report import write_report
from interp.dissect.result import DETECTOR_IOU, LayerDissection, csv_columns, iou, summary, write_csv
from interp.dissect.tally import CONVENTIONS, Counts, tally_batch
from interp.dissect.upsample import (
    UPSAMPLING,
    Bands,
    bands,
    upsample,
    upsampling_matrices,
)

__all__ = [
    "BrodenConcepts",
    "ConceptBatch",
    "ConceptSet",
    "PartMaskConcepts",
    "SynthPartsConcepts",
    "QUANTILE",
    "dissect",
    "activation_masks",
    "PartInterpretability",
    "part_interpretability",
    "write_report",
    "DETECTOR_IOU",
    "LayerDissection",
    "csv_columns",
    "iou",
    "summary",
    "write_csv",
    "CONVENTIONS",
    "Counts",
    "tally_batch",
    "UPSAMPLING",
    "Bands",
    "bands",
    "upsample",
    "upsampling_matrices",
]
