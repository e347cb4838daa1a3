"""The browsable HTML report of an explanatory graph; it opens from disk, with no server.

    out_dir/index.html                     one row per graph layer: filters, nodes per filter,
                                           nodes, mean deformation (cells), mean parents per node
    out_dir/<layer>.html                   the layer's best nodes by mean score: node, filter, mean
                                           score, mean place (pixels), deformation, its 3 strongest
                                           parents (links into the upper layer's page), its patches
    out_dir/images/<layer>-node00012.png   a node's patches on its best images, side by side
    out_dir/images/<layer>-filter0003.png  the raw filter's patches at its peaks on its best images

A patch is the square of the image centred at the node's inferred place
(the filter's peak), padded with white where it leaves the image. Links and
images are relative paths and the CSS is inline, so nothing is fetched.
"""

from __future__ import annotations

import html
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from interp._checks import check_positive_int
from interp._progress import bar
from interp.explain.graph import ExplanatoryGraph, GraphLayer
from interp.explain.mining import Inference
from interp.files import file_stems
from interp.ops import PATCH_PAD, image_patch

GAP = 4  # white pixels between the patches of a strip
SHOWN = 64  # a strip's patches are enlarged (nearest neighbour, by a whole factor) to about this height
PARENTS = 3  # strongest parents listed per node

_CSS = """
body { font: 14px/1.4 sans-serif; margin: 16px; color: #111; background: #fff; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: middle; }
td.number, th.number { text-align: right; }
img { display: block; image-rendering: pixelated; }
"""


def write_report(graph: ExplanatoryGraph, inference: Inference, images: Any, out_dir: str | os.PathLike, *,
                 filter_peaks: Mapping[str, tuple[Any, Any]] | None = None, nodes_per_layer: int = 20,
                 images_per_node: int = 8, patch_size: int | None = None,
                 progress: bool | None = None) -> pathlib.Path:
    """Writes the report of `graph` as inferred on `images` into `out_dir`.

    Args:
      graph: the `ExplanatoryGraph`.
      inference: `explain.infer(graph, model, images)`, on these `images`.
      images: float [N, H, W, channels] the images the patches are cut from. Three channels are drawn as
        RGB, one as grey, any other number as the grey of their mean; values outside [0, 1] are stretched
        to it by the images' min and max.
      out_dir: the report's folder, created if missing; files in it are replaced.
      filter_peaks: `{layer: (positions [N, C, 2] in pixels (row, col), scores [N, C])}` each raw filter's
        strongest unit on each image; a layer's node rows then show their filter's patches beside theirs.
      nodes_per_layer: nodes listed per layer, the best by mean score over the images.
      images_per_node: patches per strip, the node's (filter's) best images.
      patch_size: the patches' side in pixels; None: 3 times the layer's stride, at least 8.
      progress: show a progress bar of the nodes drawn: None on a terminal (see `interp._progress`).

    Returns:
      The path of `index.html`.

    Raises:
      ValueError: `inference` lacks a graph layer or was not inferred on as many images; `filter_peaks`
        names a layer the graph lacks or has the wrong shapes; a count is not a positive int.
    """
    display = _displayable(images)
    _check_inputs(graph, inference, len(display), filter_peaks or {})
    nodes_per_layer = check_positive_int("nodes_per_layer", nodes_per_layer)
    images_per_node = check_positive_int("images_per_node", images_per_node)
    check_positive_int("patch_size", patch_size, allow_none=True)
    out = pathlib.Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    stems = file_stems(list(graph.layer_names))
    shown = {layer.name: _best_nodes(inference[layer.name].scores, nodes_per_layer) for layer in graph.layers}
    with bar(sum(len(n) for n in shown.values()), desc="explain: report", unit="node", progress=progress) as done:
        for k, layer in enumerate(graph.layers):
            upper = graph.layers[k + 1] if k + 1 < len(graph.layers) else None
            size = patch_size or max(8, round(3 * layer.stride))
            peaks = (filter_peaks or {}).get(layer.name)
            rows = _layer_rows(out, layer, inference[layer.name], upper, shown, stems, display, peaks, size,
                               images_per_node, done)
            page = _layer_page(layer, rows, size, peaks is not None, len(display))
            (out / f"{stems[layer.name]}.html").write_text(page)
    index = out / "index.html"
    index.write_text(_index_page(graph, inference, stems))
    return index


def _displayable(images: Any) -> np.ndarray:
    """float [N, H, W, 3] in [0, 1]: RGB as is, grey for one channel or the mean of any other number."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images: expected [N, H, W, channels] with N >= 1, got shape {list(images.shape)}")
    if images.shape[-1] != 3:
        images = np.repeat(images.mean(axis=-1, keepdims=True), 3, axis=-1)
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        images = (images - low) / (high - low if high > low else 1.0)
    return images


def _check_inputs(graph: ExplanatoryGraph, inference: Inference, n: int, filter_peaks: Mapping) -> None:
    for layer in graph.layers:
        found = inference[layer.name]
        if found.scores.shape != (n, layer.num_nodes):
            raise ValueError(f"inference: expected scores [{n}, {layer.num_nodes}] for {layer.name!r} on the "
                             f"{n} images, got {list(found.scores.shape)}; infer the graph on these images")
    for name, (positions, scores) in filter_peaks.items():
        channels = graph.layer(name).num_channels
        if np.shape(positions) != (n, channels, 2) or np.shape(scores) != (n, channels):
            raise ValueError(f"filter_peaks: expected positions [{n}, {channels}, 2] and scores [{n}, {channels}] "
                             f"for {name!r}, got {list(np.shape(positions))} and {list(np.shape(scores))}")


def _best_nodes(scores: np.ndarray, count: int) -> np.ndarray:
    """int [<= count] the nodes with the highest mean score over the images [N, nodes], best first."""
    return np.argsort(-np.asarray(scores).mean(axis=0), kind="stable")[:count]


def _strip(images: np.ndarray, positions: np.ndarray, scores: np.ndarray, size: int,
           count: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [s, count * s + gaps, 3], the images shown): the patches at `positions` [N, 2] of the `count`
    images with the highest `scores` [N], each enlarged to s = size * max(1, SHOWN // size) pixels."""
    best = np.argsort(-np.asarray(scores), kind="stable")[:count]
    scale = max(1, SHOWN // size)
    tiles = [np.repeat(np.repeat(image_patch(images[n], positions[n], size), scale, 0), scale, 1) for n in best]
    gap = np.full((size * scale, GAP, 3), PATCH_PAD, np.float32)
    parts = [part for tile in tiles for part in (gap, tile)][1:]
    return np.round(np.clip(np.concatenate(parts, axis=1), 0, 1) * 255).astype(np.uint8), best


def _write_strip(out: pathlib.Path, stem: str, images, positions, scores, size, count) -> str:
    """Saves a strip (`_strip`) as `images/<stem>.png`; returns its `<img>` tag."""
    strip, best = _strip(images, np.asarray(positions), np.asarray(scores), size, count)
    source = f"images/{stem}.png"
    Image.fromarray(strip).save(out / source)
    shown = ", ".join(f"{n} ({scores[n]:.2f})" for n in best)
    return (f'<img src="{html.escape(source)}" width="{strip.shape[1]}" height="{strip.shape[0]}" '
            f'alt="{html.escape(stem)}" title="images (score): {shown}">')


def _layer_rows(out, layer: GraphLayer, found, upper: GraphLayer | None, shown, stems, display, peaks, size: int,
                count: int, done) -> list[str]:
    """Writes the strips of the layer's listed nodes (and of their filters) and returns their table rows."""
    rows, filters = [], {}
    for node in shown[layer.name]:
        stem = stems[layer.name]
        strip = _write_strip(out, f"{stem}-node{node:05d}", display, found.positions[:, node],
                             found.scores[:, node], size, count)
        channel = int(layer.node_channel(node))
        if peaks is not None and channel not in filters:
            filters[channel] = _write_strip(out, f"{stem}-filter{channel:04d}", display,
                                            np.asarray(peaks[0])[:, channel], np.asarray(peaks[1])[:, channel],
                                            size, count)
        rows.append(_node_row(layer, found, int(node), upper, shown, stems, strip, filters.get(channel)))
        done.update()
    return rows


def _node_row(layer: GraphLayer, found, node: int, upper: GraphLayer | None, shown: Mapping[str, np.ndarray],
              stems: Mapping[str, str], strip: str, raw: str | None) -> str:
    """One node's table row; its parents link to their rows on the upper layer's page when listed there."""
    row, col = layer.to_pixels(np.asarray(found.cells)[:, node].mean(axis=0))
    deform = float(np.asarray(layer.deform).reshape(-1)[node])
    parents = []
    if upper is not None:
        listed = set(shown[upper.name].tolist())
        for parent in np.asarray(layer.parents)[node, :PARENTS]:
            parent = int(parent)
            parents.append(f'<a href="{html.escape(stems[upper.name])}.html#node{parent}">{parent}</a>'
                           if parent in listed else str(parent))
    cells = (f'<td class="number">{node}</td><td class="number">{int(layer.node_channel(node))}</td>'
             f'<td class="number score">{float(np.mean(found.scores[:, node])):.3f}</td>'
             f'<td class="number">({row:.1f}, {col:.1f})</td><td class="number">{deform:.2f}</td>'
             f'<td class="parents">{", ".join(parents) or "-"}</td><td>{strip}</td>')
    return f'<tr id="node{node}">{cells}' + ("" if raw is None else f"<td>{raw}</td>") + "</tr>"


def _layer_page(layer: GraphLayer, rows: list[str], size: int, with_filters: bool, n: int) -> str:
    """The layer's listed nodes, one table row each, best mean score first."""
    h, w = layer.config.map_shape
    name = html.escape(layer.name)
    head = ('<tr><th class="number">node</th><th class="number">filter</th><th class="number">mean score</th>'
            '<th class="number">mean place (row, col) px</th><th class="number">deformation (cells)</th>'
            '<th>strongest parents</th><th>node: patches on its best images</th>'
            + ("<th>raw filter: patches at its peaks on its best images</th>" if with_filters else "") + "</tr>")
    body = (f'<p><a href="index.html">all layers</a></p><h1>{name}</h1>'
            f'<p>{layer.num_nodes} nodes ({layer.num_channels} filters x {layer.num_patterns}) on a {h}x{w} map, '
            f'a stride of {layer.stride:g} px per cell; the {len(rows)} best by mean score over {n} images. A '
            f'place is the mean over the images in the orientation the graph read each in; patches are {size} px '
            f'square around the node\'s place on each image. Parents listed on the upper layer\'s page are links.</p>'
            f'<table>{head}\n' + "\n".join(rows) + "\n</table>")
    return _page(f"{layer.name}: explanatory graph", body)


def _index_page(graph: ExplanatoryGraph, inference: Inference, stems: Mapping[str, str]) -> str:
    """One row per graph layer, bottom to top, linking to its page."""
    rows = []
    for layer in graph.layers:
        parents = np.asarray(layer.parents)
        mean_parents = float((parents >= 0).sum(axis=1).mean()) if parents.size else 0.0
        rows.append(f'<tr><td><a href="{html.escape(stems[layer.name])}.html">{html.escape(layer.name)}</a></td>'
                    f'<td class="number">{layer.num_channels}</td><td class="number">{layer.num_patterns}</td>'
                    f'<td class="number">{layer.num_nodes}</td>'
                    f'<td class="number">{float(np.mean(np.asarray(layer.deform))):.2f}</td>'
                    f'<td class="number">{mean_parents:.1f}</td></tr>')
    flipped = np.asarray(inference.flipped)
    body = ('<h1>Explanatory graph</h1>'
            f'<p>{len(graph.layers)} layers, bottom to top; inferred on {len(flipped)} images '
            f'({int(flipped.sum())} read mirrored).</p>'
            '<table><tr><th>layer</th><th class="number">filters</th><th class="number">nodes per filter</th>'
            '<th class="number">nodes</th><th class="number">mean deformation (cells)</th>'
            '<th class="number">mean parents</th></tr>\n' + "\n".join(rows) + "\n</table>")
    return _page("Explanatory graph", body)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
