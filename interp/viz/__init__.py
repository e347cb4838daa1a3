"""Figures. Each function returns a matplotlib Figure; the caller decides where it goes."""

from interp.viz.attribution import attribution_grid, heatmap
from interp.viz.figures import part_overlay_grid, training_curve

__all__ = ["attribution_grid", "heatmap", "part_overlay_grid", "training_curve"]
