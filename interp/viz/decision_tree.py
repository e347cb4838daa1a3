"""Figures of a decision tree of decision modes (Zhang et al., CVPR 2019): its top levels, and one image's rationale.

Like the explanatory graph's figures they take plain arrays (what an
`interp.explain.DecisionTree` and its explanations hold), so that this package
knows nothing of `interp.explain`.
"""

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def tree_levels(parent: np.ndarray, node_text: Sequence[str], size: np.ndarray, *, depth: int = 2,
                widest: int = 6, title: str | None = None) -> Figure:
    """The tree's top levels: each node a box with its text, under its parent, children by size.

    Args:
      parent: int [N] each node's parent, -1 for the root (node ids run top-down).
      node_text: [N] what each box says (e.g. its images and leading parts).
      size: [N] how many images each node explains; boxes are ordered and shaded by it.
      depth: the deepest level drawn (the root is level 0).
      widest: children drawn per node, the largest; the rest are counted in a note.
    """
    parent, size = np.asarray(parent), np.asarray(size)
    if parent.ndim != 1 or len(node_text) != len(parent) or size.shape != parent.shape:
        raise ValueError(f"node_text, size: expected one per node ({len(parent)}), got {len(node_text)} texts and "
                         f"size {list(size.shape)}")
    if depth < 0 or widest < 1:
        raise ValueError(f"depth, widest: expected depth >= 0 and widest >= 1, got {depth} and {widest}")
    levels, hidden = [[int(np.flatnonzero(parent < 0)[0])]], {}
    for _ in range(depth):
        below = []
        for node in levels[-1]:
            kids = np.flatnonzero(parent == node)
            kids = kids[np.argsort(-size[kids], kind="stable")]
            below.extend(int(k) for k in kids[:widest])
            hidden[node] = len(kids) - min(len(kids), widest)
        if not below:
            break
        levels.append(below)
    width = max(len(level) for level in levels)
    fig, ax = plt.subplots(figsize=(max(2.2 * width, 4.0), 1.9 * len(levels) + 0.4), layout="constrained")
    place = {}
    for row, level in enumerate(levels):
        for col, node in enumerate(level):
            place[node] = ((col + 0.5) * width / len(level), -row)
    shade = plt.get_cmap("Blues")
    for node, (x, y) in place.items():
        if parent[node] in place:
            px, py = place[parent[node]]
            ax.plot([px, x], [py - 0.22, y + 0.22], color="grey", linewidth=0.8, zorder=1)
        note = f"\n(+{hidden[node]} more)" if hidden.get(node) else ""
        ax.text(x, y, node_text[node] + note, ha="center", va="center", fontsize=7, zorder=2,
                bbox=dict(boxstyle="round", facecolor=shade(0.15 + 0.5 * size[node] / size.max()), edgecolor="grey"))
    ax.set_xlim(-0.1, width + 0.1)
    ax.set_ylim(-len(levels) + 0.5, 0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def rationale(image: np.ndarray, names: Sequence[str], values: np.ndarray, maps: Sequence[np.ndarray], *,
              path: str = "", top: int = 6, title: str | None = None) -> Figure:
    """One prediction's rationale: the parts' contributions as bars beside the image, their filters' maps on it.

    Args:
      image: [H, W, 3] in [0, 1].
      names: [P] the parts (or filters) contributions are given for.
      values: [P] their contributions to the score.
      maps: [P] each part's filters' activation map [h, w] (any resolution; stretched over the image).
      path: the parse-tree path (e.g. "root > 4 > 17 > leaf 203"), written under the image.
      top: the parts shown, by absolute contribution; the three strongest positive ones are overlaid.
    """
    values = np.asarray(values, np.float64)
    if len(names) != len(values) or len(maps) != len(values):
        raise ValueError(f"names, maps: expected one per value ({len(values)}), got {len(names)} and {len(maps)}")
    chosen = np.argsort(-np.abs(values), kind="stable")[:top]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.2), layout="constrained",
                                      gridspec_kw=dict(width_ratios=[1, 1.3]))
    height, width = np.shape(image)[:2]
    left.imshow(np.clip(image, 0, 1))
    colors = plt.get_cmap("tab10")
    overlaid = [p for p in chosen if values[p] > 0][:3]
    for k, p in enumerate(overlaid):
        heat = np.asarray(maps[p], np.float64)
        if heat.max() > 0:
            # The map's cell centres over the image's pixels: cell (0, 0) at the top left.
            step_y, step_x = height / heat.shape[0], width / heat.shape[1]
            left.contour(heat / heat.max(), levels=[0.5], colors=[colors(k)], linewidths=1.5,
                         extent=(step_x / 2 - 0.5, width - step_x / 2 - 0.5, step_y / 2 - 0.5,
                                 height - step_y / 2 - 0.5))
    left.set_xticks([])
    left.set_yticks([])
    left.set_xlabel(path, fontsize=7)
    shown = chosen[::-1]
    bar_colors = ["#999" if p not in overlaid else colors(overlaid.index(p)) for p in shown]
    right.barh(np.arange(len(shown)), values[shown], color=bar_colors)
    right.set_yticks(np.arange(len(shown)), [names[p] for p in shown], fontsize=7)
    right.axvline(0, color="black", linewidth=0.6)
    right.set_xlabel("contribution to the score", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
