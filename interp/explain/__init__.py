"""Post-hoc structure in a CNN: the explanatory graph (Zhang et al., AAAI 2018).

A filter of a high conv layer fires on a mixture of patterns (a head here, a
leg there). The explanatory graph splits each filter into nodes, one per
pattern that keeps its place on the object across images, and links each node
to the nodes of the layer above that shift with it. It is mined with no
annotations, then localizes parts from one to three annotated images.

    from interp import explain
    graph = explain.explanatory_graph(model, ["relu3", "relu4"], images, negatives=others)
    found = explain.infer(graph, model, new_images)
    peaks = explain.filter_peaks(graph, model, new_images)          # the raw filters, for comparison
    explain.node_stability(graph, found, peaks, landmarks, visible)  # nodes vs filters, per layer
    locator = explain.fit_part_locator(positions, scores, part, visible, image_size=(64, 64))
    explain.write_report(graph, found, new_images, "report/")       # static HTML, opens from disk
"""

from interp.explain.evaluate import (
    FILTER_SHARE,
    LinearLocator,
    PartLocator,
    Peaks,
    Stability,
    filter_peaks,
    fit_linear_locator,
    fit_part_locator,
    locate_linear,
    locate_part,
    node_stability,
)
from interp.explain.graph import ExplanatoryGraph, GraphLayer
from interp.explain.mining import Inference, NodeInference, explanatory_graph, infer
from interp.explain.report import write_report

__all__ = [
    "FILTER_SHARE",
    "LinearLocator",
    "PartLocator",
    "Peaks",
    "Stability",
    "filter_peaks",
    "fit_linear_locator",
    "fit_part_locator",
    "locate_linear",
    "locate_part",
    "node_stability",
    "ExplanatoryGraph",
    "GraphLayer",
    "Inference",
    "NodeInference",
    "explanatory_graph",
    "infer",
    "write_report",
]
