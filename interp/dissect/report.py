"""The browsable HTML report of a dissection; it opens from disk, with no server.

    out_dir/index.html                    one row per layer: units, detectors, unique
                                          concepts, and per category detectors (unique concepts)
    out_dir/<layer>.html                  one row per unit, highest IoU first: unit (1-based,
                                          as NetDissect numbers them), label "category/name",
                                          IoU, a detector mark, and the unit's top images
    out_dir/images/<layer>-unit0001.png   those top images, one strip per unit

Each top image is drawn as NetDissect draws it: where the unit is off (its
activation, upsampled as in the dissection, is below its threshold) pixels are
dimmed to a quarter, and the edge of where it is on is outlined in yellow.
Links and images are relative paths and the CSS is inline, so nothing is
fetched.
"""

from __future__ import annotations

import html
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from interp._checks import check_positive_int
from interp._progress import bar
from interp.data.stream import pass_indices
from interp.dissect.dissect import mask_function
from interp.dissect.result import LayerDissection
from interp.files import file_stems

DIM = 0.25  # brightness of the pixels where a unit is off
OUTLINE = (1.0, 1.0, 0.0)  # color of the edge of where it is on
GAP = 4  # white pixels between the images of a strip

_CSS = """
body { font: 14px/1.4 sans-serif; margin: 16px; color: #111; background: #fff; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: middle; }
td.number, th.number { text-align: right; }
tr.off td.label { color: #888; }
td.detector { color: #060; font-weight: bold; }
img { display: block; image-rendering: pixelated; }
"""


def write_report(
    dissections: Mapping[str, LayerDissection],
    model: Any,
    data: Any,
    out_dir: str | os.PathLike,
    *,
    images_per_unit: int | None = None,
    image_size: int = 96,
    batch_size: int = 64,
    progress: bool | None = None,
) -> pathlib.Path:
    """Writes the report of `dissect(...)`'s result into `out_dir`.

    Args:
      dissections: `{layer: LayerDissection}`, as `dissect` returns it.
      model: the dissected model.
      data: the concept data it was dissected on (its `batch(indices).images`
        are the top images).
      out_dir: the report's folder, created if missing; files in it are replaced.
      images_per_unit: top images shown per unit (default: all that were kept).
      image_size: height in pixels of each shown image (its width keeps the
        images' aspect ratio); masks are computed at this size.
      batch_size: images per forward pass when computing masks.
      progress: show a progress bar of the units drawn: None on a terminal (see `interp._progress`).

    Returns:
      The path of `index.html`.
    """
    if not dissections:
        raise ValueError("dissections: expected at least one layer")
    check_positive_int("images_per_unit", images_per_unit, allow_none=True)
    check_positive_int("image_size", image_size)
    check_positive_int("batch_size", batch_size)
    out = pathlib.Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    stems = file_stems(list(dissections))
    units = sum(d.num_units for d in dissections.values())
    with bar(units, desc="dissect: report", unit="unit", progress=progress) as shown:
        for layer, dissection in dissections.items():
            strips = _strips(model, dissection, data, images_per_unit, image_size, batch_size)
            sources = {}
            for unit, strip in enumerate(strips):
                if strip is not None:
                    sources[unit] = f"images/{stems[layer]}-unit{unit + 1:04d}.png"
                    Image.fromarray(strip).save(out / sources[unit])
                shown.update()
            (out / f"{stems[layer]}.html").write_text(_layer_page(dissection, strips, sources, images_per_unit))
    index = out / "index.html"
    index.write_text(_index_page(dissections, stems))
    return index


def _strips(model: Any, dissection: LayerDissection, data: Any, count: int | None, height: int,
            batch_size: int) -> list[np.ndarray | None]:
    """Each unit's top images with its mask drawn over them, side by side: uint8 [h, w', 3] or None.

    The masks of all the layer's distinct top images are computed in batches
    and each batch's images are drawn for every unit that has them.
    """
    top = dissection.top_images[:, :count]  # [K, n]
    width = max(1, round(height * data.image_size[1] / data.image_size[0]))
    tiles = np.zeros((*top.shape, height, width, 3), np.uint8)
    wanted = np.unique(top[top >= 0])
    batch_size = min(batch_size, max(len(wanted), 1))
    masks_of = mask_function(model, dissection, (batch_size, *data.image_size, 3), size=(height, width))
    for positions, valid in pass_indices(len(wanted), batch_size):  # one shape for every batch
        padded, indices = wanted[positions], wanted[positions[valid]]
        images = jnp.asarray(data.batch(padded).images, jnp.float32)
        masks = np.asarray(masks_of(images))  # [b, h, w, K]
        shown = np.asarray(jax.image.resize(images, (len(padded), height, width, 3), "linear"))
        units, slots = np.nonzero(np.isin(top, indices))
        rows = np.searchsorted(indices, top[units, slots])
        tiles[units, slots] = _draw(shown[rows], masks[rows, :, :, units])
    gap = np.full((height, GAP, 3), 255, np.uint8)
    strips = []
    for unit_tiles, unit_top in zip(tiles, top):
        parts = []
        for tile in unit_tiles[unit_top >= 0]:
            parts += [gap, tile] if parts else [tile]
        strips.append(np.concatenate(parts, axis=1) if parts else None)
    return strips


def _draw(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """uint8 [n, h, w, 3]: `images` [n, h, w, 3] in [0, 1] dimmed outside `masks` [n, h, w], edges outlined."""
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)), mode="edge")
    interior = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    drawn = np.where(masks[..., None], images, DIM * images)
    drawn[masks & ~interior] = OUTLINE
    return np.round(np.clip(drawn, 0.0, 1.0) * 255).astype(np.uint8)


def _layer_page(dissection: LayerDissection, strips: list[np.ndarray | None], sources: dict[int, str],
                count: int | None) -> str:
    """The units of one layer, one table row each, highest IoU first."""
    category, concept, score = dissection.best
    summary = dissection.summary()
    rows = []
    for unit in dissection.order:
        label = dissection.concepts.label(concept[unit]) if concept[unit] >= 0 else "-"
        detector = bool(dissection.detectors[unit])
        image = "-"
        if unit in sources:
            height, width = strips[unit].shape[:2]
            indices = ", ".join(str(i) for i in dissection.top_images[unit, :count] if i >= 0)
            image = (f'<img src="{html.escape(sources[unit])}" width="{width}" height="{height}" '
                     f'alt="unit {unit + 1}: top images" title="dataset images {indices}">')
        rows.append(
            f'<tr id="unit{unit + 1:04d}" class="{"on" if detector else "off"}">'
            f'<td class="unit number">{unit + 1}</td><td class="label">{html.escape(label)}</td>'
            f'<td class="iou number">{score[unit]:.3f}</td>'
            f'<td class="detector">{"detector" if detector else ""}</td><td>{image}</td></tr>')
    layer = html.escape(dissection.layer)
    body = (
        f'<p><a href="index.html">all layers</a></p><h1>{layer}</h1>'
        f'<p>{summary["units"]} units, {summary["detectors"]} detectors (IoU &gt; {dissection.iou_threshold:g}), '
        f'{summary["unique_concepts"]} unique concepts; {summary["images"]} images, top {dissection.quantile:g} '
        f'of activations on, {html.escape(dissection.upsampling)} upsampling, '
        f'{html.escape(dissection.convention)} convention.</p>'
        '<table><tr><th class="number">unit</th><th>label</th><th class="number">IoU</th><th>detector</th>'
        '<th>top images (dimmed where the unit is off)</th></tr>\n' + "\n".join(rows) + "\n</table>")
    return _page(f"{dissection.layer}: network dissection", body)


def _index_page(dissections: Mapping[str, LayerDissection], stems: dict[str, str]) -> str:
    """One row per layer, linking to its page."""
    summaries = {layer: d.summary() for layer, d in dissections.items()}
    categories = list(dict.fromkeys(c for s in summaries.values() for c in s["by_category"]))
    head = "".join(f'<th class="number">{html.escape(c)}</th>' for c in categories)
    rows = []
    for layer, s in summaries.items():
        cells = "".join(
            f'<td class="number">{s["by_category"][c]["detectors"]} ({s["by_category"][c]["unique_concepts"]})</td>'
            if c in s["by_category"] else "<td></td>" for c in categories)
        rows.append(f'<tr><td><a href="{html.escape(stems[layer])}.html">{html.escape(layer)}</a></td>'
                    f'<td class="number">{s["units"]}</td><td class="number">{s["detectors"]}</td>'
                    f'<td class="number">{s["unique_concepts"]}</td>{cells}</tr>')
    body = ('<h1>Network dissection</h1>'
            '<table><tr><th>layer</th><th class="number">units</th><th class="number">detectors</th>'
            f'<th class="number">unique concepts</th>{head}</tr>\n' + "\n".join(rows) + "\n</table>"
            '<p>Per category: detectors (unique concepts), each detector counted in the category '
            'of its best label.</p>')
    return _page("Network dissection", body)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
