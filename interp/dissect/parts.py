"""Part interpretability (Interpretable CNNs, Zhang et al., CVPR 2018): each filter's best IoU with a part concept.

The paper scores its interpretable filters by a Network Dissection of their
layer (Bau et al., CVPR 2017) restricted to part concepts; location
instability, the other score, is `interp.metrics.location_instability`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from interp.dissect.dissect import dissect
from interp.dissect.result import LayerDissection


class PartInterpretability(NamedTuple):
    """Part interpretability of a layer from its Network Dissection.

    Attributes:
      value: mean of `per_filter` over the filters.
      per_filter: float64 [K] each filter's best IoU among the part concepts.
      part: int [K] global concept index of that best part
        (`dissection.concepts.names[part[k]]`).
      dissection: the layer's `LayerDissection`.
    """

    value: float
    per_filter: np.ndarray
    part: np.ndarray
    dissection: LayerDissection


def part_interpretability(model: Any, layer: str, data: Any, **dissect_options) -> PartInterpretability:
    """Each filter's best IoU with a part concept, from a Network Dissection of `layer`.

    Args:
      model: a `nets.Model` or anything `nets.as_model` accepts.
      layer: one layer name, with activations [b, h, w, K].
      data: concept data with a "part" category (`SynthPartsConcepts`,
        `BrodenConcepts`).
      **dissect_options: passed to `dissect` (quantile,
        convention, upsampling, batch_size, progress, ...).

    Returns:
      `PartInterpretability(value, per_filter [K], part [K], dissection)`;
      higher is better.
    """
    if not isinstance(layer, str):
        raise ValueError(f"layer: expected one layer name, got {layer!r}")
    categories = tuple(data.concepts.categories)
    if "part" not in categories:
        raise ValueError(f"data: expected concepts with a 'part' category, got categories {categories}")
    result = dissect(model, data, layer, **dissect_options)[layer]
    concepts, scores = result.best_per_category
    j = categories.index("part")
    per_filter = np.asarray(scores[j], np.float64)
    return PartInterpretability(float(per_filter.mean()), per_filter, np.asarray(concepts[j]), result)
