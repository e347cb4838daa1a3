"""Feature-visualization figures: channel grids with dataset patches, semantic dictionaries, activation grids."""

import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _note(fig: Figure, note: str, width_inches: float) -> None:
    """`note` as the figure's title, wrapped to its width (about 13 characters of 8-point text per inch)."""
    if note:
        fig.suptitle(textwrap.fill(note, max(int(width_inches * 13), 30)), fontsize=8)


def channel_grid(
    visualizations: np.ndarray,
    patches: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    columns: int = 2,
    note: str = "",
) -> Figure:
    """Each unit's rendered image with its top dataset patches beside it.

    Args:
      visualizations: [n, H, W, 3] in [0, 1], one rendered image per unit.
      patches: [n, k, h, w, 3] in [0, 1], each unit's top dataset patches
        (strongest first), or None for visualizations alone.
      titles: n labels, e.g. "relu3:5".
      columns: units per row of the figure.
      note: text above the grid that says what the titles' numbers and the
        patches are (wrapped to the figure's width).
    """
    visualizations = np.asarray(visualizations)
    n = len(visualizations)
    k = 0 if patches is None else np.shape(patches)[1]
    rows = -(-n // columns)
    per_unit = 1 + k
    size = (1.2 * columns * per_unit, 1.35 * rows + (0.45 if note else 0.0))
    fig, axes = plt.subplots(rows, columns * per_unit, figsize=size, squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for unit in range(n):
        row, col = divmod(unit, columns)
        ax = axes[row, col * per_unit]
        ax.axis("on")
        ax.imshow(np.clip(visualizations[unit], 0, 1))
        _bare(ax)
        if titles is not None:
            ax.set_title(titles[unit], fontsize=7)
        for j in range(k):
            ax = axes[row, col * per_unit + 1 + j]
            ax.axis("on")
            ax.imshow(np.clip(np.asarray(patches[unit, j]), 0, 1))
            _bare(ax)
            if unit < columns:
                ax.set_title(f"top {j + 1}", fontsize=6)
    _note(fig, note, size[0])
    return fig


def semantic_dictionary_figure(
    image: np.ndarray,
    position: tuple[int, int],
    stride: float,
    channels: Sequence[int],
    values: Sequence[float],
    visualizations: np.ndarray,
    layer: str = "",
    render_layer: str = "",
) -> Figure:
    """An image with one position marked, and that position's top channels with their visualizations.

    The figure's title says what the numbers are: each channel's activation
    at the position, in the layer's own units.

    Args:
      image: [H, W, 3] in [0, 1].
      position: (row, col) in the layer's map.
      stride: input pixels per layer position, to mark where the position lies.
      channels, values: the top channels and their activations (from `featviz.semantic_dictionary`).
      visualizations: [k, h, w, 3] their rendered images.
      layer: the layer's name, for titles.
      render_layer: the layer the channels were rendered at, if not `layer`.
    """
    k = len(channels)
    row, col = position
    size = (1.6 * (1 + k), 2.75)
    fig, axes = plt.subplots(1, 1 + k, figsize=size, squeeze=False)
    axes[0, 0].imshow(np.clip(image, 0, 1))
    axes[0, 0].add_patch(
        plt.Rectangle((col * stride - 0.5, row * stride - 0.5), stride, stride, fill=False, color="red", lw=1.5)
    )
    axes[0, 0].set_title(f"{layer} position\n(row {row}, col {col})", fontsize=8)
    for j in range(k):
        axes[0, 1 + j].imshow(np.clip(visualizations[j], 0, 1))
        axes[0, 1 + j].set_title(f"{layer}:{int(channels[j])}\nactivation {float(values[j]):.2f}", fontsize=7)
    for ax in axes.flat:
        _bare(ax)
    rendered = f" (rendered at {render_layer})" if render_layer and render_layer != layer else ""
    _note(
        fig,
        f"The {k} strongest {layer} channels at the position in the red box (its {stride:g}x{stride:g}-pixel "
        f"cell; the receptive field is larger), strongest first, each titled with its activation there "
        f"({layer}'s output, in the layer's own units) and shown by its feature visualization{rendered}.",
        size[0],
    )
    fig.tight_layout(pad=0.3)
    return fig


def activation_grid_figure(image: np.ndarray, grid_image: np.ndarray, layer: str = "") -> Figure:
    """An image beside its activation grid (tiled with `featviz.grid_to_image`)."""
    size = (7.0, 4.3)
    fig, axes = plt.subplots(1, 2, figsize=size, squeeze=False, layout="constrained")
    axes[0, 0].imshow(np.clip(image, 0, 1))
    axes[0, 0].set_title("image", fontsize=9)
    axes[0, 1].imshow(np.clip(grid_image, 0, 1))
    axes[0, 1].set_title(f"activation grid of {layer}", fontsize=9)
    for ax in axes.flat:
        _bare(ax)
    _note(
        fig,
        f"Cell (i, j) of the grid: an image rendered to produce the activation vector that {layer} "
        f"has at position (i, j) on the image at left, i.e. what the network sees there.",
        size[0],
    )
    return fig


def reconstruction_grid(images: np.ndarray, reconstructions: dict[str, np.ndarray]) -> Figure:
    """Images in the first column, then their reconstruction from each layer (one column per layer).

    Args:
      images: [n, H, W, 3] in [0, 1].
      reconstructions: layer -> [n, H, W, 3], in column order (e.g. from `featviz.Inverter`).
    """
    n, columns = len(images), 1 + len(reconstructions)
    fig, axes = plt.subplots(n, columns, figsize=(1.3 * columns, 1.3 * n), squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(np.clip(images[row], 0, 1))
        for col, recon in enumerate(reconstructions.values(), start=1):
            axes[row, col].imshow(np.clip(recon[row], 0, 1))
    for col, name in enumerate(["image", *reconstructions]):
        axes[0, col].set_title(name, fontsize=8)
    for ax in axes.flat:
        _bare(ax)
    fig.tight_layout(pad=0.3)
    return fig
