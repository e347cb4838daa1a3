"""Evaluation of attributions and interpretable models.

Faithfulness: `deletion`, `insertion` (curves and AUC, RISE), `auc`, `gaussian_blur`.
Localization: `pointing_game`, `mass_in_mask` (= `energy_pointing_game`), `pixel_map`; part centres:
`normalized_distance` (the explanatory graph's part localization).
Sanity: `model_randomization` (Adebayo et al.), `randomize_layers`, `spearman`, `pearson`.
Location instability of filters (Zhang et al.): `filter_peaks`, `peaks_in_image`, `location_instability`,
and the virtual filters it reads against, `reference_instabilities`;
their part interpretability is a Network Dissection, `interp.dissect.part_interpretability`.
"""

from interp.metrics.faithfulness import Curves, auc, deletion, gaussian_blur, insertion
from interp.metrics.localization import (
    energy_pointing_game,
    mass_in_mask,
    normalized_distance,
    pixel_map,
    pointing_game,
)
from interp.metrics.location import (
    LocationInstability,
    Peaks,
    filter_peaks,
    location_instability,
    peaks_in_image,
    reference_instabilities,
)
from interp.metrics.sanity import Randomization, model_randomization, pearson, randomize_layers, spearman

__all__ = [
    "Curves",
    "auc",
    "deletion",
    "gaussian_blur",
    "insertion",
    "energy_pointing_game",
    "mass_in_mask",
    "normalized_distance",
    "pixel_map",
    "pointing_game",
    "LocationInstability",
    "Peaks",
    "filter_peaks",
    "location_instability",
    "peaks_in_image",
    "reference_instabilities",
    "Randomization",
    "model_randomization",
    "pearson",
    "randomize_layers",
    "spearman",
]
