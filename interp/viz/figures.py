"""Figures of training runs, of annotated datasets, and of scores side by side (sweeps)."""

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def training_curve(records: Sequence[dict[str, Any]]) -> Figure:
    """Loss and accuracy against step, train and validation, from `metrics.jsonl` records."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for split, style in (("train", "-"), ("val", "o-")):
        rows = [r for r in records if r["split"] == split]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        ax_loss.plot(steps, [r["loss"] for r in rows], style, label=split)
        ax_acc.plot(steps, [r["accuracy"] for r in rows], style, label=split)
    ax_loss.set(xlabel="step", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def part_overlay_grid(
    images: np.ndarray,
    part_masks: np.ndarray,
    landmarks: np.ndarray,
    landmark_visible: np.ndarray,
    titles: Sequence[str],
    part_names: Sequence[str],
) -> Figure:
    """Each image above the same image with its part mask and landmarks drawn over it.

    Args:
      images: [n, h, w, 3] in [0, 1].
      part_masks: [n, h, w] int, 0 for background, k for part `part_names[k-1]`.
      landmarks: [n, P, 2] (row, col) pixel positions of the part centers.
      landmark_visible: [n, P] bool.
      titles: n strings (e.g. class names).
      part_names: the P part names.
    """
    n = len(images)
    colors = plt.get_cmap("tab20")(np.arange(len(part_names)) % 20)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.2), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i])
        axes[0, i].set_title(titles[i], fontsize=9)
        overlay = np.asarray(images[i]).copy()
        inside = part_masks[i] > 0
        overlay[inside] = 0.35 * overlay[inside] + 0.65 * colors[part_masks[i][inside] - 1, :3]
        axes[1, i].imshow(overlay)
        for p in np.flatnonzero(landmark_visible[i]):
            row, col = landmarks[i, p]
            axes[1, i].plot(col, row, "o", ms=5, mfc=colors[p], mec="black", mew=0.8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].set_ylabel("parts + landmarks", fontsize=9)
    present = sorted({int(k) for k in np.unique(part_masks) if k > 0})
    handles = [plt.Line2D([], [], ls="", marker="s", mfc=colors[k - 1], mec="none") for k in present]
    fig.legend(
        handles,
        [part_names[k - 1] for k in present],
        loc="lower center",
        ncol=min(len(present), 8),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def metric_bars(values: Mapping[tuple[str, str], float], *, errors: Mapping[tuple[str, str], float] | None = None,
                ylabel: str = "") -> Figure:
    """One bar per (group, bar) key, bars of a group side by side: e.g. `{(model, method): score}`.

    Args:
      values: the bars' heights, keyed by (group, bar), in the order shown.
      errors: half-heights of error bars with the same keys (e.g. a std over seeds).
      ylabel: what the heights are.
    """
    groups = list(dict.fromkeys(group for group, _ in values))
    bars = list(dict.fromkeys(bar for _, bar in values))
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(bars) * len(groups) + 1.5), 3.4), layout="constrained")
    for i, group in enumerate(groups):
        keys = [(group, bar) for bar in bars if (group, bar) in values]
        positions = [bars.index(bar) + (i - (len(groups) - 1) / 2) * width for _, bar in keys]
        ax.bar(positions, [values[k] for k in keys], width, label=group,
               yerr=None if errors is None else [errors[k] for k in keys], capsize=3)
    ax.set_xticks(range(len(bars)), bars, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=7, frameon=False)
    return fig
