"""Explainable building blocks: the interpretable conv layer of Zhang, Wu & Zhu (CVPR 2018).

Two versions of it:

  * as the authors released it (`released_icnn`, `conv_mask`): masks on the
    inputs of two layers, a filter-loss gradient injected in the backward
    pass from the labels, fine-tuned from a trained network with SGD
    (`logistic_loss`, `released_filter_loss`, `released_sgd`);
  * as the paper's text describes it (`interpretable_cnn`, `InterpretableConv`,
    `filter_loss`): a mask on the layer's own output and `-MI(X; T)` added
    to the loss by autograd (`icnn_loss`).
"""

from interp.layers.icnn import MODES, icnn_loss, interpretable_cnn
from interp.layers.interpretable import InterpretableConv, filter_loss, peak_positions, template_masks, templates
from interp.layers.masked_conv import (
    MaskGuide,
    beta_gradient,
    conv_mask,
    injected_gradient,
    mask_center,
    mask_guide,
    released_mask,
    update_slice_mag,
)
from interp.layers.released import (
    MASKED_LAYERS,
    ConvMask,
    ReleasedICNN,
    Supervision,
    epoch_learning_rates,
    gradient_norms,
    load_backbone,
    logistic_loss,
    released_filter_loss,
    released_icnn,
    released_sgd,
    signed_labels,
)

__all__ = [
    "MaskGuide",
    "beta_gradient",
    "conv_mask",
    "injected_gradient",
    "mask_center",
    "mask_guide",
    "released_mask",
    "update_slice_mag",
    "MASKED_LAYERS",
    "ConvMask",
    "ReleasedICNN",
    "Supervision",
    "epoch_learning_rates",
    "gradient_norms",
    "load_backbone",
    "logistic_loss",
    "released_filter_loss",
    "released_icnn",
    "released_sgd",
    "signed_labels",
    "MODES",
    "icnn_loss",
    "interpretable_cnn",
    "InterpretableConv",
    "filter_loss",
    "peak_positions",
    "template_masks",
    "templates",
]
