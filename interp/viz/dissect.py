"""The figure of Network Dissection's comparison across layers and models (Bau et al. 2017, Fig. 5)."""

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def dissection_figure(summaries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Unique detected concepts and detectors per layer, stacked by category, one column per model.

    Args:
      summaries: `{model name: interp.dissect.summary(...)}`, every model
        dissected at the same layers.
    """
    names = list(summaries)
    layers = list(next(iter(summaries.values()))["layers"])
    categories = list(next(iter(summaries.values()))["layers"][layers[0]]["by_category"])
    colors = plt.get_cmap("tab10")(np.arange(len(categories)))
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names) + 1.4, 6.2), sharey="row", squeeze=False)
    for column, name in enumerate(names):
        for row, (key, label) in enumerate((("unique_concepts", "unique concepts"), ("detectors", "detectors"))):
            ax = axes[row, column]
            bottom = np.zeros(len(layers))
            for category, color in zip(categories, colors):
                heights = np.array([summaries[name]["layers"][layer]["by_category"][category][key]
                                    for layer in layers])
                ax.bar(layers, heights, bottom=bottom, color=color, label=category)
                bottom += heights
            ax.set(title=f"{name}: {label}" if row == 0 else None, ylabel=label if column == 0 else None)
            ax.grid(axis="y", alpha=0.3)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig
