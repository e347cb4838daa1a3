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


def feature_map_grid(images: np.ndarray, maps: Mapping[str, np.ndarray], filters: Mapping[str, Any]) -> Figure:
    """Chosen filters' feature maps over the same images, one row per (network, filter).

    Each map is stretched over its image (bilinear) and drawn over it, scaled
    per row so that a filter's strongest response across the images is red.

    Args:
      images: [n, H, W, 3] in [0, 1].
      maps: `{network name: [n, h, w, C] activations}` of the images.
      filters: `{network name: filter indices}` to show.
    """
    from PIL import Image

    rows = [(name, int(f)) for name in maps for f in filters[name]]
    n, height, width = images.shape[:3]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 1.2, 1.35 * len(rows)), squeeze=False)
    for row, (name, f) in enumerate(rows):
        top = max(float(maps[name][..., f].max()), 1e-9)
        for column in range(n):
            heat = np.asarray(Image.fromarray(maps[name][column, :, :, f].astype(np.float32), mode="F")
                              .resize((width, height), Image.BILINEAR)) / top
            ax = axes[row, column]
            ax.imshow(images[column])
            ax.imshow(np.clip(heat, 0, 1), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{name}\nfilter {f}", fontsize=8)
    fig.tight_layout()
    return fig
