"""Figures of an explanatory graph (Zhang et al., AAAI 2018): one node's image patches, and the graph's layers.

They take plain arrays (what `interp.explain.infer` and a `GraphLayer` hold),
so that this package knows nothing of `interp.explain`.
"""

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from interp.ops import image_patch  # noqa: E402

BAND = 0.8  # the share of a layer's band its map fills; the rest separates the layers


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def node_patches(images: np.ndarray, node_positions: np.ndarray, node_scores: np.ndarray,
                 filter_positions: np.ndarray | None = None, filter_scores: np.ndarray | None = None, *,
                 patch_size: int, top: int = 8, title: str | None = None) -> Figure:
    """The paper's figure of one node: its patches on its best images, above its filter's on the filter's.

    Row 1 ("graph node") shows the patches centred at the node's inferred
    place on the `top` images where the node scores highest; row 2 ("raw
    filter"), when filter peaks are given, the patches centred at the raw
    filter's strongest unit on the filter's own `top` images. A node keeps one
    part of the object, where its filter fires on several. Each patch's title
    is its image's index and score.

    Args:
      images: [N, H, W, 3] in [0, 1].
      node_positions: [N, 2] the node's place (row, col) on each image, in pixels.
      node_scores: [N] the node's score on each image.
      filter_positions: [N, 2] the filter's peak (row, col) on each image in pixels, or None (one row).
      filter_scores: [N] the filter's peak activation on each image (required with `filter_positions`).
      patch_size: the patches' side in pixels.
      top: patches per row (at most N).
      title: the figure's title.
    """
    images = np.asarray(images)
    rows = [("graph node", node_positions, node_scores)]
    if filter_positions is not None:
        if filter_scores is None:
            raise ValueError("filter_scores: expected [N] peak activations with filter_positions, got None")
        rows.append(("raw filter", filter_positions, filter_scores))
    for name, positions, scores in rows:
        if np.shape(positions) != (len(images), 2) or np.shape(scores) != (len(images),):
            raise ValueError(f"{name}: expected positions [{len(images)}, 2] and scores [{len(images)}] for the "
                             f"{len(images)} images, got {list(np.shape(positions))} and {list(np.shape(scores))}")
    columns = min(top, len(images))
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.15 * columns + 0.5, 1.35 * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    for axes_row, (name, positions, scores) in zip(axes, rows):
        best = np.argsort(-np.asarray(scores), kind="stable")[:columns]
        for ax, n in zip(axes_row, best):
            ax.imshow(np.clip(image_patch(images[n], positions[n], patch_size), 0, 1))
            ax.set_title(f"#{n}  {scores[n]:.2f}", fontsize=7)
            _bare(ax)
        axes_row[0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _band_xy(cells: np.ndarray, map_shape: Sequence[int], band: int) -> np.ndarray:
    """[n, 2] places (row, col) in map cells to (x, y) in the figure's band `band` (row 0 at the band's top)."""
    h, w = map_shape[:2]
    cells = np.asarray(cells, np.float64).reshape(-1, 2)
    x = (cells[:, 1] + 0.5) / w
    y = band + (1 - BAND) / 2 + BAND * (1 - (cells[:, 0] + 0.5) / h)
    return np.stack([x, y], axis=-1)


def _check_graph_arrays(layer_names, node_positions, node_scores, parents, map_shapes) -> None:
    count = len(layer_names)
    for name, value in (("node_positions", node_positions), ("node_scores", node_scores), ("parents", parents),
                        ("map_shapes", map_shapes)):
        if len(value) != count:
            raise ValueError(f"{name}: expected one entry per layer ({count}), got {len(value)}")
    for k, name in enumerate(layer_names):
        nodes = len(node_scores[k])
        if np.shape(node_positions[k]) != (nodes, 2) or np.ndim(parents[k]) != 2 or len(parents[k]) != nodes:
            raise ValueError(f"layer {name!r}: expected node_positions [{nodes}, 2] and parents [{nodes}, T] for "
                             f"its {nodes} scores, got {list(np.shape(node_positions[k]))} and "
                             f"{list(np.shape(parents[k]))}")


def graph_layers(layer_names: Sequence[str], node_positions: Sequence[np.ndarray], node_scores: Sequence[np.ndarray],
                 parents: Sequence[np.ndarray], map_shapes: Sequence[Sequence[int]], *, strongest: int = 3,
                 top_nodes: int = 30) -> Figure:
    """The graph's layers as horizontal bands, bottom to top, each with its best nodes and their edges.

    In band k a node is a dot at its mean place on layer k's map (column to x,
    row 0 at the band's top), its area proportional to its mean score. Each
    drawn node has lines to its `strongest` parents in the band above; a parent
    that is not among that layer's `top_nodes` is a small grey dot.

    Args:
      layer_names: the L layers' names, bottom to top.
      node_positions: per layer, [nodes, 2] each node's mean place (row, col) in map cells.
      node_scores: per layer, [nodes] each node's mean score.
      parents: per layer, int [nodes, T] each node's parents, best first, as indices into the next layer's
        nodes (T may be 0; the top layer's are not drawn).
      map_shapes: per layer, the map's (h, w).
      strongest: edges drawn per node.
      top_nodes: nodes drawn per layer, the best by mean score.
    """
    _check_graph_arrays(layer_names, node_positions, node_scores, parents, map_shapes)
    fig, ax = plt.subplots(figsize=(7.0, 1.7 * len(layer_names) + 0.8), layout="constrained")
    largest = max(float(np.max(s)) if len(s) else 0.0 for s in node_scores) or 1.0
    colors = plt.get_cmap("tab10")(np.arange(len(layer_names)) % 10)
    drawn = [np.argsort(-np.asarray(s), kind="stable")[:top_nodes] for s in node_scores]
    for k, nodes in enumerate(drawn):
        xy = _band_xy(np.asarray(node_positions[k])[nodes], map_shapes[k], k)
        sizes = 10 + 190 * np.clip(np.asarray(node_scores[k])[nodes], 0, None) / largest
        ax.scatter(xy[:, 0], xy[:, 1], s=sizes, color=colors[k], edgecolors="black", linewidths=0.4, zorder=3)
        if k + 1 == len(layer_names) or strongest < 1:
            continue
        chosen = np.asarray(parents[k])[nodes, :strongest]
        ends = _band_xy(np.asarray(node_positions[k + 1])[np.clip(chosen, 0, None)], map_shapes[k + 1], k + 1)
        starts = np.repeat(xy, chosen.shape[1], axis=0)
        valid = chosen.reshape(-1) >= 0
        ax.add_collection(LineCollection(np.stack([starts, ends], axis=1)[valid], colors="grey", linewidths=0.6,
                                         alpha=0.5, zorder=1))
        others = np.setdiff1d(chosen[chosen >= 0], drawn[k + 1])
        if others.size:
            xy = _band_xy(np.asarray(node_positions[k + 1])[others], map_shapes[k + 1], k + 1)
            ax.scatter(xy[:, 0], xy[:, 1], s=6, color="grey", zorder=2)
    for k in range(1, len(layer_names)):
        ax.axhline(k, color="#ccc", linewidth=0.8, zorder=0)
    ax.set(xlim=(0, 1), ylim=(0, len(layer_names)), xticks=[], xlabel="column on each layer's map")
    ax.set_yticks(np.arange(len(layer_names)) + 0.5, layer_names)
    ax.set_title(f"best {top_nodes} nodes per layer at their mean places (area: mean score), "
                 f"{strongest} strongest parents each", fontsize=9)
    return fig
