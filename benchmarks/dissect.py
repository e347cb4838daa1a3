"""Network dissection's tally stage: `interp.dissect.tally_batch` against NetDissect-Lite's per-image loop.

Run: `python -m benchmarks.dissect [--images 1024] [--repeats 5] [--batch-size 64]` (prints a markdown table).

The tally is the stage that NetDissect-Lite spends its time in: for every
image and every unit, upsample the unit's map to the segmentation, binarize it
at the unit's threshold and count the labels under it. Both sides here get the
SAME inputs, prepared before any timing:

  * activations: SmallCNN (`nets.create_module("small_cnn", num_classes=6)`, random
    He-init weights, seed 0) on SynthParts images (seed 0), one layer at a time;
  * thresholds: each unit's 0.995 quantile over the set (float32, shared);
  * labels: one SynthParts label set, in each side's form. Lite gets, per
    image, Broden-style label maps, one int map per pixel category (object,
    part, color, texture) holding global label numbers (concept id + 1, 0 =
    unlabeled), and the scene as an image-level ("scalar") label; they are
    built from the generator's raw fields (`SynthParts.batch`). interp gets
    `SynthPartsConcepts.batch`: ids [B, D] and boolean masks [B, D, sh, sw],
    the scene as an all-ones mask. The segmentation has the image's size.

The reference, `lite_tally`, is NetDissect-Lite's `tally_job`
(feature_operation.py) transcribed into numpy with its per-image, per-unit
loops, bincounts and its bilinear resize (PIL mode 'F', which scipy's
`imresize(mode='F')` called), the same as interp's `upsampling="resize"`.
interp is timed as `interp.dissect.dissect` runs it: one jitted `tally_batch`
per batch of precomputed activations and masks, summed on the device by the
dissection's accumulator, counts fetched to the host at the end (compilation
excluded). Two interp columns: the dense masks SynthPartsConcepts gives (every
concept, D = 51), and the same masks compacted to the concepts present in the
batch (D padded to a multiple of 8, as `BrodenConcepts` does).

Before timing, every count (intersection, truth, activation and the 'lite'
activation per category) must be equal on both sides; the script stops
otherwise. Runs alternate; the table gives images/s from the median run.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NamedTuple

import jax
import numpy as np
from PIL import Image

from benchmarks._timing import time_alternating
from interp import dissect, nets
from interp.data import SynthParts, pass_indices
from interp.data.synthparts import CONCEPT_CATEGORIES
from interp.dissect.tally import Accumulator

_QUANTILE = 0.995
_PIXEL_CATEGORIES = ("object", "part", "color", "texture")
_SCALAR_CATEGORIES = ("scene",)


class LabelSet(NamedTuple):
    """One SynthParts label set in both forms.

    Attributes:
      images: float32 [N, S, S, 3] network inputs.
      ids, masks: interp's form, int32 [N, D] and bool [N, D, S, S] (dense, D = C).
      lite: Lite's form, per image a dict {category: int32 [S, S] label map
        (pixel categories) or list of int labels (scalar categories)}.
      labelcat: float64 [C + 1, Cat] one-hot primary category of each Lite
        label number (row 0, unlabeled, is zero).
      category_of: int32 [C] interp's primary category per concept.
    """

    images: np.ndarray
    ids: np.ndarray
    masks: np.ndarray
    lite: list[dict]
    labelcat: np.ndarray
    category_of: np.ndarray


def synthparts_labels(size: int, num_images: int, batch_size: int) -> LabelSet:
    """`num_images` SynthParts images (seed 0) with their concept labels in both forms."""
    dataset = SynthParts(seed=0, image_size=size)
    source = dissect.SynthPartsConcepts(dataset, num_examples=num_images)
    offsets = dataset.concept_offsets()
    images, ids, masks, lite = [], [], [], []
    for indices, valid in pass_indices(num_images, batch_size):  # one batch shape, one compile
        batch = source.batch(indices)
        images.append(np.asarray(batch.images)[valid])
        ids.append(np.asarray(batch.ids)[valid])
        masks.append(np.asarray(batch.masks)[valid])
        raw = jax.tree.map(lambda a, valid=valid: a[valid], jax.device_get(dataset.batch(indices)))
        # Global label number = concept id + 1; raw part/color/texture values are already 1-based.
        maps = {
            "object": np.where(raw["object_mask"], raw["label"][:, None, None] + 1, 0),
            "part": np.where(raw["part_mask"] > 0, raw["part_mask"] + offsets["part"], 0),
            "color": np.where(raw["color"] > 0, raw["color"] + offsets["color"], 0),
            "texture": np.where(raw["texture"] > 0, raw["texture"] + offsets["texture"], 0),
        }
        for b in range(int(valid.sum())):
            example = {category: maps[category][b].astype(np.int32) for category in _PIXEL_CATEGORIES}
            example["scene"] = [int(raw["scene"][b]) + offsets["scene"] + 1]
            lite.append(example)
    category_of = np.asarray(source.concepts.category_of, np.int32)
    labelcat = np.zeros((len(category_of) + 1, len(CONCEPT_CATEGORIES)))
    labelcat[np.arange(1, len(category_of) + 1), category_of] = 1
    return LabelSet(np.concatenate(images), np.concatenate(ids), np.concatenate(masks), lite, labelcat,
                    category_of)


def lite_tally(features: np.ndarray, labels: list[dict], thresholds: np.ndarray, labelcat: np.ndarray,
               seg_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """NetDissect-Lite's `tally_job`, image by image and unit by unit.

    Args:
      features: float32 [N, K, h, w] (Lite keeps PyTorch's channel-first layout).
      labels: per image, {category: int label map [sh, sw] or list of labels}.
      thresholds: [K].
      labelcat: [L, Cat] one-hot primary category of each label number.
      seg_hw: (sh, sw).

    Returns:
      Lite's tallies: tally_both [K, L], tally_labels [L], tally_units [K],
      tally_units_cat [K, Cat] (int64).
    """
    sh, sw = seg_hw
    num_units, num_labels = features.shape[1], labelcat.shape[0]
    tally_both = np.zeros((num_units, num_labels), np.int64)
    tally_labels = np.zeros(num_labels, np.int64)
    tally_units = np.zeros(num_units, np.int64)
    tally_units_cat = np.zeros((num_units, labelcat.shape[1]), np.int64)
    for img_index, concept_map in enumerate(labels):
        scalars, pixels = [], []
        for category in concept_map:
            label_group = concept_map[category]
            shape = np.shape(label_group)
            if len(shape) % 2 == 0:
                label_group = [label_group]
            if len(shape) < 2:
                scalars += label_group
            else:
                pixels.append(label_group)
        for scalar in scalars:
            tally_labels[scalar] += sh * sw
        if pixels:
            pixels = np.concatenate(pixels)
            tally_label = np.bincount(pixels.ravel())
            if len(tally_label) > 0:
                tally_label[0] = 0
            tally_labels[:len(tally_label)] += tally_label
        for unit_id in range(num_units):
            feature_map = features[img_index][unit_id]
            if feature_map.max() > thresholds[unit_id]:
                mask = np.asarray(Image.fromarray(feature_map, mode="F").resize((sw, sh), Image.BILINEAR))
                indexes = np.argwhere(mask > thresholds[unit_id])
                tally_units[unit_id] += len(indexes)
                if len(pixels) > 0:
                    tally_bt = np.bincount(pixels[:, indexes[:, 0], indexes[:, 1]].ravel())
                    if len(tally_bt) > 0:
                        tally_bt[0] = 0
                    tally_cat = np.dot(tally_bt[None, :], labelcat[:len(tally_bt), :])[0]
                    tally_both[unit_id, :len(tally_bt)] += tally_bt
                for scalar in scalars:
                    tally_cat += labelcat[scalar]
                    tally_both[unit_id, scalar] += len(indexes)
                tally_units_cat[unit_id] += len(indexes) * (tally_cat > 0)
    return {"tally_both": tally_both, "tally_labels": tally_labels, "tally_units": tally_units,
            "tally_units_cat": tally_units_cat}


class InterpBatch(NamedTuple):
    acts: jax.Array  # [B, h, w, K]
    ids: jax.Array  # [B, D]
    masks: jax.Array  # [B, D, sh, sw]
    valid: jax.Array  # [B]


def interp_batches(acts: np.ndarray, ids: np.ndarray, masks: np.ndarray, batch_size: int,
                   compact: bool) -> list[InterpBatch]:
    """Fixed-size device batches (the last one padded with invalid rows).

    With `compact`, each batch keeps only the concepts some image of it shows
    (ids sorted, D padded to a multiple of 8 with empty masks).
    """
    batches = []
    for start in range(0, len(acts), batch_size):
        rows = np.arange(start, start + batch_size)
        valid = rows < len(acts)
        rows = np.where(valid, rows, 0)
        batch_ids, batch_masks = ids[rows], masks[rows] & valid[:, None, None, None]
        if compact:
            batch_ids, batch_masks = _compact(batch_ids, batch_masks)
        batches.append(InterpBatch(*jax.device_put((acts[rows], batch_ids, batch_masks, valid))))
    return batches


def _compact(ids: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the ids and masks of the concepts it shows, padded to a common D (multiple of 8)."""
    present = masks.any((2, 3))
    width = max(8, -(-present.sum(1).max() // 8) * 8)
    out_ids = np.zeros((len(ids), width), np.int32)
    out_masks = np.zeros((len(ids), width, *masks.shape[2:]), bool)
    for b in range(len(ids)):
        keep = np.flatnonzero(present[b])
        out_ids[b, :len(keep)] = ids[b, keep]
        out_masks[b, :len(keep)] = masks[b, keep]
    return out_ids, out_masks


def interp_tally(batches: list[InterpBatch], thresholds: jax.Array, bands: dissect.Bands, category_of: jax.Array,
                 num_categories: int) -> dissect.Counts:
    """The tally as `dissect` runs it: one `tally_batch` per batch, summed on the device, int64 on the host."""
    seg = batches[0].masks.shape[2:]
    total = Accumulator(len(batches[0].acts) * seg[0] * seg[1])
    for batch in batches:
        total.add(dissect.tally_batch(batch.acts, thresholds, bands, batch.ids, batch.masks, batch.valid,
                                      category_of, num_concepts=len(category_of),
                                      num_categories=num_categories))
    return total.result()


def check_equal(lite: dict[str, np.ndarray], counts: dissect.Counts, name: str) -> None:
    """Raises AssertionError naming every count that differs between Lite and interp."""
    pairs = {
        "intersection vs tally_both[:, 1:]": (counts.intersection, lite["tally_both"][:, 1:]),
        "tally_both[:, 0] (unlabeled) == 0": (np.zeros_like(lite["tally_both"][:, 0]), lite["tally_both"][:, 0]),
        "truth vs tally_labels[1:]": (counts.truth, lite["tally_labels"][1:]),
        "activation vs tally_units": (counts.activation, lite["tally_units"]),
        "activation_lite vs tally_units_cat": (counts.activation_lite, lite["tally_units_cat"]),
    }
    problems = []
    for label, (ours, theirs) in pairs.items():
        if ours.shape != theirs.shape:
            problems.append(f"{label}: shapes {ours.shape} vs {theirs.shape}")
        elif not np.array_equal(ours, theirs):
            where = np.argwhere(ours != theirs)
            first = tuple(int(i) for i in where[0])
            problems.append(f"{label}: {len(where)} entries differ, max |diff| "
                            f"{np.abs(ours.astype(np.int64) - theirs).max()}, first at {first}: "
                            f"interp {ours[first]} vs Lite {theirs[first]}")
    if problems:
        raise AssertionError(f"{name}: interp and NetDissect-Lite counts differ:\n  " + "\n  ".join(problems))


def _model(size: int) -> nets.Model:
    return nets.create("small_cnn", num_classes=6, key=jax.random.key(0), input_size=size)


def _activations(model: nets.Model, images: np.ndarray, layer: str, batch_size: int) -> np.ndarray:
    run = jax.jit(lambda x: model.activations(x, layer)[layer])
    return np.concatenate([np.asarray(run(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])


def benchmark_layer(labels: LabelSet, acts: np.ndarray, layer: str, args) -> str:
    """Checks that both sides agree on `acts`, times them, and returns one markdown row."""
    size = labels.images.shape[1]
    seg = (size, size)
    thresholds = np.quantile(acts.reshape(-1, acts.shape[-1]), _QUANTILE, axis=0).astype(np.float32)
    features = np.ascontiguousarray(acts.transpose(0, 3, 1, 2))  # Lite's [N, K, h, w]
    bands = jax.device_put(dissect.bands(*dissect.upsampling_matrices(acts.shape[1:3], seg, seg, "resize")))
    category_of, device_thresholds = jax.device_put((labels.category_of, thresholds))
    batches = {compact: interp_batches(acts, labels.ids, labels.masks, args.batch_size, compact)
               for compact in (False, True)}

    def lite():
        return lite_tally(features, labels.lite, thresholds, labels.labelcat, seg)

    def ours(compact):
        return interp_tally(batches[compact], device_thresholds, bands, category_of, len(CONCEPT_CATEGORIES))

    reference = lite()
    name = f"{size}px {layer}"
    for compact in (False, True):  # also compiles every batch shape before timing
        check_equal(reference, ours(compact), f"{name} ({'present concepts' if compact else 'dense'})")
    times = time_alternating([lite, lambda: ours(False), lambda: ours(True)], args.repeats)
    for side, t in zip(("Lite", "interp dense", "interp present"), times):
        if t.max() > 1.5 * t.min():
            print(f"WARNING {name}: {side} runs took {t.min():.2f} to {t.max():.2f} s; the CPU was probably "
                  "shared with another process; rerun on an idle machine.", file=sys.stderr)
    lite_rate, dense_rate, compact_rate = (len(acts) / np.median(t) for t in times)
    depth = max(b.ids.shape[1] for b in batches[True])
    on = float(np.mean(features.max((2, 3)) > thresholds))
    _, h, w, k = acts.shape
    return (f"| {size} | {layer} | {h}x{w}x{k} | {on:.0%} | {len(acts)} | {lite_rate:,.0f} "
            f"| {dense_rate:,.0f} | **{dense_rate / lite_rate:.1f}x** | {compact_rate:,.0f} (D<={depth}) "
            f"| **{compact_rate / lite_rate:.1f}x** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024, help="images tallied by each side")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--layers", nargs="+", default=["relu2", "relu3"])
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}, {len(os.sched_getaffinity(0))} cores), "
          f"{args.images} images, batch {args.batch_size}, {args.repeats} alternating runs per side, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| image = seg size | layer | h x w x K | unit-images past threshold | images "
          "| Lite images/s | interp images/s (dense, D=51) | speed-up "
          "| interp images/s (present concepts) | speed-up |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        model = _model(size)
        labels = synthparts_labels(size, args.images, args.batch_size)
        for layer in args.layers:
            acts = _activations(model, labels.images, layer, args.batch_size)
            print(benchmark_layer(labels, acts, layer, args), flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; counts equal on every row.")


if __name__ == "__main__":
    main()
