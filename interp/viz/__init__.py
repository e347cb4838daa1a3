"""Figures. Each function returns a matplotlib Figure; the caller decides where it goes."""

from interp.viz.figures import part_overlay_grid, training_curve

__all__ = ["part_overlay_grid", "training_curve"]
