"""Figures. Each function returns a matplotlib Figure; the caller decides where it goes."""

from interp.viz.attribution import attribution_grid, first_of_each_class, heatmap, prediction_title
from interp.viz.decision_tree import rationale, tree_levels
from interp.viz.dissect import dissection_figure, feature_map_grid
from interp.viz.explain import graph_layers, image_patch, node_patches
from interp.viz.featviz import (
    activation_grid_figure,
    channel_grid,
    reconstruction_grid,
    semantic_dictionary_figure,
)
from interp.viz.figures import metric_bars, part_overlay_grid, training_curve

__all__ = [
    "activation_grid_figure",
    "attribution_grid",
    "channel_grid",
    "dissection_figure",
    "feature_map_grid",
    "first_of_each_class",
    "graph_layers",
    "heatmap",
    "image_patch",
    "metric_bars",
    "node_patches",
    "part_overlay_grid",
    "prediction_title",
    "rationale",
    "reconstruction_grid",
    "semantic_dictionary_figure",
    "training_curve",
    "tree_levels",
]
