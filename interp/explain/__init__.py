"""Post-hoc structure in a CNN: explanatory graphs (AAAI 2018), contributions and decision trees (CVPR 2019).

A filter of a high conv layer fires on a mixture of patterns (a head here, a
leg there). The explanatory graph splits each filter into nodes, one per
pattern that keeps its place on the object across images, and links each node
to the nodes of the layer above that shift with it. It is mined with no
annotations, then localizes parts from one to three annotated images.

A prediction's score splits exactly into its filters' contributions at a
layer (for a piecewise-linear head), and through the filters' labels into
parts; the decision modes of a class's images grow into a tree, general at the
root, one image per leaf, that explains a new image by its path.

    from interp import explain
    graph = explain.explanatory_graph(model, ["relu3", "relu4"], images, negatives=others)
    found = explain.infer(graph, model, new_images)
    peaks = explain.filter_peaks(graph, model, new_images)          # the raw filters, for comparison
    explain.node_stability(graph, found, peaks, landmarks, visible)  # nodes vs filters, per layer
    locator = explain.fit_part_locator(positions, scores, part, visible, image_size=(64, 64))
    explain.write_report(graph, found, new_images, "report/")       # static HTML, opens from disk

    split = explain.contributions(model, "relu3", x, target)        # split.filters.sum(-1) + split.bias == logit
    split.parts(explain.part_matrix(dissection["relu3"]))           # per part, through a Network Dissection
    tree = explain.decision_tree(model, "relu3", images, target, labels=labels)
    explain.explain_predictions(tree, model, new_images).path       # root to leaf, per image
"""

from interp.explain.contributions import (
    SCORES,
    UNEXPLAINED,
    Contributions,
    PartMatrix,
    category_matrix,
    contributions,
    evidence_shares,
    filter_scale,
    part_matrix,
    tangent_error,
)
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
from interp.explain.tree import (
    DecisionTree,
    TreeExplanation,
    decision_tree,
    explain_predictions,
    explanation_along,
    follow,
    grow_tree,
    select_filters,
)

__all__ = [
    "SCORES",
    "UNEXPLAINED",
    "Contributions",
    "PartMatrix",
    "category_matrix",
    "contributions",
    "evidence_shares",
    "filter_scale",
    "part_matrix",
    "tangent_error",
    "DecisionTree",
    "TreeExplanation",
    "decision_tree",
    "explain_predictions",
    "explanation_along",
    "follow",
    "grow_tree",
    "select_filters",
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
