"""A grid of attribution maps: one row per image, one column per method."""

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def heatmap(attribution: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """One attribution map [h, w] or [h, w, c] as magnitudes in [0, 1].

    Channels are summed in absolute value; the map is divided by its
    `percentile`-th value (not its max), so a few extreme pixels do not wash
    out the rest, as is usual for gradient maps.
    """
    magnitude = np.abs(np.asarray(attribution, np.float32))
    if magnitude.ndim == 3:
        magnitude = magnitude.sum(-1)
    scale = np.percentile(magnitude, percentile)
    return np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)


def attribution_grid(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    titles: Sequence[str] | None = None,
    overlay: Sequence[str] = (),
) -> Figure:
    """Images in the first column, then one column per method.

    Args:
      images: [n, h, w, 3] in [0, 1].
      maps: method name -> attributions [n, h, w] or [n, h, w, c], in column order.
      titles: n row labels (e.g. "bird (p=0.97)").
      overlay: methods drawn as a heatmap over the image (CAM-like maps)
        rather than alone.
    """
    n, columns = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, columns, figsize=(1.6 * columns, 1.6 * n), squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(images[row])
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=8)
        for col, (name, values) in enumerate(maps.items(), start=1):
            heat = heatmap(values[row])
            if name in overlay:
                axes[row, col].imshow(images[row])
                axes[row, col].imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            else:
                axes[row, col].imshow(heat, cmap="inferno", vmin=0, vmax=1)
    for col, name in enumerate(["image", *maps]):
        axes[0, col].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
