"""Explainable building blocks: the interpretable conv layer (Zhang et al., CVPR 2018)."""

from interp.layers.icnn import MODES, icnn_loss, interpretable_cnn
from interp.layers.interpretable import (
    VARIANTS,
    InterpretableConv,
    beta_target,
    filter_loss,
    peak_positions,
    template_masks,
    templates,
)

__all__ = [
    "MODES",
    "icnn_loss",
    "interpretable_cnn",
    "VARIANTS",
    "InterpretableConv",
    "beta_target",
    "filter_loss",
    "peak_positions",
    "template_masks",
    "templates",
]
