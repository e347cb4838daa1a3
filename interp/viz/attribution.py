"""A grid of attribution maps: one row per image, one column per method."""

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PERCENTILE = 99.0
ALONE_CMAP, OVERLAY_CMAP = "inferno", "jet"


def heatmap(attribution: np.ndarray, percentile: float = PERCENTILE) -> np.ndarray:
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


def first_of_each_class(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` examples that cover as many classes as the data has.

    Round by round, each class (in class order) gives its earliest example not
    yet taken, so the first rows are the first example of each class, right or
    wrong; further rounds take each class's second example, and so on.

    Args:
      labels: [N] int class of each example, in dataset order.
      count: rows wanted, 1..N.

    Returns:
      [count] int indices into `labels`, class by class.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels: expected one class per example [N], got shape {list(labels.shape)}")
    if not 1 <= count <= len(labels):
        raise ValueError(f"count: expected 1..{len(labels)} (the examples given), got {count}")
    queues = [list(np.flatnonzero(labels == k)) for k in np.unique(labels)]
    chosen = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return np.asarray(chosen, np.int64)


def prediction_title(label: int, probabilities: np.ndarray, class_names: Sequence[str]) -> str:
    """ "true: bird / pred: bird / p=0.97 (right)": the true class, the argmax and its softmax probability."""
    predicted = int(np.argmax(probabilities))
    verdict = "right" if predicted == int(label) else "wrong"
    return (
        f"true: {class_names[int(label)]}\npred: {class_names[predicted]}\n"
        f"p={float(probabilities[predicted]):.2f} ({verdict})"
    )


# The grid's geometry, in inches: square cells, a margin left for the row
# titles, one above for column titles (and the figure's title), one below for
# the color bars, their ticks and their labels' lines.
CELL, GAP, LEFT, RIGHT, TOP, BAR, BAR_GAP, LINE, TITLE_LINE = 1.5, 0.08, 1.3, 0.15, 0.3, 0.13, 0.4, 0.15, 0.19


def attribution_grid(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    overlay: Sequence[str] = (),
    title: str = "",
) -> Figure:
    """Images in the first column, then one column per method, with the color scale below.

    Every map is drawn as `heatmap` makes it: absolute values (summed over
    channels), each map divided by its own 99th percentile and clipped to 1,
    so colors compare places within a map, not maps with each other. The
    color bars say so. Each row is titled by `prediction_title`.

    Args:
      images: [n, h, w, 3] in [0, 1].
      maps: method name -> attributions [n, h, w] or [n, h, w, c], in column order.
      labels: [n] int true class of each image.
      probabilities: [n, classes] the model's softmax output for each image.
      class_names: a name per class.
      overlay: methods drawn as a heatmap over the image (CAM-like maps)
        rather than alone.
      title: the figure's title, e.g. which class the maps explain and how
        the rows were chosen.
    """
    n, columns = len(images), 1 + len(maps)
    if not maps:
        raise ValueError("maps: expected at least one method's attributions, got none")
    if np.shape(labels) != (n,) or np.shape(probabilities)[:1] != (n,):
        raise ValueError(
            f"labels, probabilities: expected [{n}] and [{n}, classes] for {n} images, "
            f"got {list(np.shape(labels))} and {list(np.shape(probabilities))}"
        )
    alone = [name for name in maps if name not in overlay]
    bars = _color_bars(alone, [name for name in maps if name in overlay], columns)
    width = LEFT + columns * CELL + (columns - 1) * GAP + RIGHT
    # About 11 characters of 10-point text per inch.
    title = textwrap.fill(title, int(width * 11))
    top = TOP + (0.15 + TITLE_LINE * (title.count("\n") + 1) if title else 0.0)
    bottom = 0.3 + BAR + 0.25 + LINE * max(label.count("\n") + 1 for _, label, _, _ in bars)
    height = top + n * CELL + (n - 1) * GAP + bottom
    fig = plt.figure(figsize=(width, height))

    def place(left: float, bottom: float, w: float, h: float):
        return fig.add_axes((left / width, bottom / height, w / width, h / height))

    names = ["image", *maps]
    for row in range(n):
        for col, name in enumerate(names):
            ax = place(LEFT + col * (CELL + GAP), height - top - (row + 1) * CELL - row * GAP, CELL, CELL)
            if col == 0 or name in overlay:
                ax.imshow(images[row])
            if col > 0:
                overlaid = name in overlay
                ax.imshow(heatmap(maps[name][row]), cmap=OVERLAY_CMAP if overlaid else ALONE_CMAP,
                          alpha=0.5 if overlaid else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(prediction_title(labels[row], probabilities[row], class_names), fontsize=8,
                              rotation=0, ha="right", va="center", labelpad=6)
    for i, (cmap, label, alpha, bar_width) in enumerate(bars):
        cax = place(LEFT + CELL + GAP + i * (bar_width + BAR_GAP), bottom - 0.3 - BAR, bar_width, BAR)
        mappable = plt.cm.ScalarMappable(plt.Normalize(0, 1), cmap)
        bar = fig.colorbar(mappable, cax=cax, orientation="horizontal", alpha=alpha)
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig


def _color_bars(alone: list[str], overlaid: list[str], columns: int) -> list[tuple[str, str, float, float]]:
    """`(color map, wrapped label, alpha, width in inches)` of one color bar per color map in use.

    The bars share the width of the map columns, side by side.
    """
    scale = f"|attribution| / its map's {PERCENTILE:g}th percentile (sign dropped, clipped at 1)"
    bars = [(ALONE_CMAP, f"maps drawn alone: {scale}", 1.0)] if alone else []
    if overlaid:
        what = f"maps over the image, 50% opaque ({', '.join(overlaid)})"
        bars.append((OVERLAY_CMAP, f"{what}: the same scale" if alone else f"{what}: {scale}", 0.5))
    span = (columns - 1) * (CELL + GAP) - GAP
    width = (span - BAR_GAP * (len(bars) - 1)) / len(bars)
    # About 15 characters of 8-point text per inch.
    return [(cmap, textwrap.fill(label, max(int(width * 15), 20)), alpha, width) for cmap, label, alpha in bars]
