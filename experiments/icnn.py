"""Interpretable CNNs (Zhang, Wu & Zhu, CVPR 2018) against ordinary CNNs of the same backbone.

    python -m experiments.icnn --workdir runs/icnn
    python -m experiments.icnn --workdir runs/icnn_cub --cub data/CUB_200_2011
    python -m experiments.icnn --workdir runs/icnn_voc --voc-part data/VOC2010

On SynthParts (default), trains for the multi-category task (all classes) and
for single-category tasks (one class against the rest) an ordinary network
and an interpretable one: the same backbone with the same extra conv layer on
top of its last conv layer, masked by the templates and trained with the
filter loss in the interpretable one, plain in the ordinary one. Then, on
held-out images, it measures classification accuracy, location instability
of the extra layer's filters (each filter on the images of its category: the
class whose images give it the highest mean peak, and that category's
landmarks), and part interpretability (each filter's best part IoU in a
Network Dissection, SynthParts only). With --cub or --voc-part the same
comparison runs on that dataset's multi-category task (CUB landmarks: parts 1,
6, 14; VOC-Part: head, torso, legs, tail centers).

Writes to the workdir: a run folder per task and network (checkpoints, so a
rerun resumes training), results.json (a rerun skips the networks it holds),
table.md and feature_maps.png (a few filters of each network on many images of
one category).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from experiments.configs import IcnnConfig
from interp import dissect, layers, metrics, nets, ops, viz
from interp import train as trainlib
from interp._progress import bar
from interp.data import CUB200, BatchSource, VOCPart, pass_indices, sized
from interp.data.landmarks import CUB_ICNN_PARTS, select_landmarks
from interp.nets import receptive_fields


@dataclasses.dataclass(frozen=True)
class Task:
    """A classification task with landmarks: how to train on it and what to evaluate on."""

    name: str
    num_classes: int
    image_size: int
    train: BatchSource  # image, label
    shuffle: bool  # whether training visits each epoch of `train` in a seeded random order
    eval: BatchSource  # image, label, category, landmarks, landmark_visible (`EvalSource`)
    eval_examples: int  # evaluated: examples 0 ... eval_examples - 1 of `eval`
    eval_batch_size: int
    mode: str  # "single" or "multi"


@dataclasses.dataclass(frozen=True)
class EvalSource:
    """Held-out examples with what evaluation reads: 'image', 'label', 'category' (the true class), landmarks.

    With `positive`, 'label' is 1 for that class and 0 for the rest (a
    single-category task); with `parts`, only those landmarks (1-based ids,
    `select_landmarks`) are kept.
    """

    source: BatchSource
    positive: int | None = None
    parts: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices) -> dict[str, np.ndarray]:
        batch = self.source.batch(indices)
        if self.parts is not None:
            batch = select_landmarks(batch, self.parts)
        category = np.asarray(batch["label"], np.int32)
        label = category if self.positive is None else (category == self.positive).astype(np.int32)
        return {"image": np.asarray(batch["image"], np.float32), "label": label, "category": category,
                "landmarks": np.asarray(batch["landmarks"]), "landmark_visible": np.asarray(batch["landmark_visible"])}


def synthparts_tasks(config: IcnnConfig) -> list[Task]:
    data, held_out = common.synthparts_streams(config.seed, config.image_size)

    def task(name, num_classes, positive, mode):
        # SynthParts' examples are independent draws: read in index order.
        return Task(name, num_classes, data.image_size, common.ImageLabel(data, positive), False,
                    EvalSource(held_out, positive), config.eval_images, 256, mode)

    tasks = [task("multi", data.num_classes, None, "multi")]
    for name in config.single_classes:
        tasks.append(task(f"single_{name}", 2, data.class_names.index(name), "single"))
    return tasks


def folder_task(name: str, train_source, eval_source, config: IcnnConfig, parts=None) -> Task:
    """The multi-category task of a dataset folder (CUB200, VOCPart): its train and evaluation splits."""
    return Task(name, train_source.num_classes, config.image_size,
                common.ImageLabel(sized(train_source, config.image_size)), True,
                EvalSource(sized(eval_source, config.image_size), parts=None if parts is None else tuple(parts)),
                min(config.eval_images, len(eval_source)), 64, "multi")


def eval_batches(task: Task) -> Iterator[dict[str, np.ndarray]]:
    """One ordered pass over the task's evaluation examples, each batch without its padding rows."""
    for indices, valid in pass_indices(task.eval_examples, task.eval_batch_size):
        yield task.eval.batch(indices[valid])


def train_network(task: Task, interpretable: bool, workdir: pathlib.Path, config: IcnnConfig,
                  progress: bool | None = None) -> nets.Model:
    """Trains (or resumes) the ordinary or the interpretable network of `task`."""
    kw = {}
    if config.model == "small_cnn":
        pools = round(np.log2(task.image_size / (2 * config.top_resolution)))  # after the stride-2 stem
        kw["pools"] = (True,) * pools + (False,) * (4 - pools)
    module = layers.interpretable_cnn(config.model, task.num_classes, variant=config.variant, masked=interpretable,
                                      track_classes=task.mode == "multi", **kw)
    loss = trainlib.classification_loss()
    if interpretable:
        loss = loss + layers.icnn_loss(config.weight, task.mode)
    steps = config.steps if task.mode == "multi" else config.single_steps
    state = trainlib.fit(
        module, optax.adam(config.learning_rate), task.train, loss=loss, num_steps=steps,
        batch_size=config.batch_size, workdir=workdir, seed=config.seed, shuffle=task.shuffle,
        checkpoint_every=max(steps // 4, 1), log_every=max(steps // 10, 1), progress=progress)
    return state.model()


def evaluate(model: nets.Model, task: Task, config: IcnnConfig, progress: bool | None = None) -> dict[str, Any]:
    """Accuracy, location instability (official and firing-only) of the 'icnn' layer's filters."""
    step = jax.jit(lambda x: (model(x), model.activations(x, "icnn")["icnn"]))
    field = None
    columns: dict[str, list] = {k: [] for k in ("logits", "positions", "scores", "label", "category",
                                                "landmarks", "visible")}
    with bar(task.eval_examples, desc=f"evaluate: {task.name}", unit="image", progress=progress) as shown:
        for batch in eval_batches(task):
            images = jnp.asarray(batch["image"])
            logits, maps = step(images)
            field = field or receptive_fields(model, images[:1])["icnn"]
            positions, scores = ops.map_peaks(maps)
            for key, value in (("logits", logits), ("positions", metrics.peaks_in_image(positions, field)),
                               ("scores", scores), ("label", batch["label"]), ("category", batch["category"]),
                               ("landmarks", batch["landmarks"]), ("visible", batch["landmark_visible"])):
                columns[key].append(np.asarray(value))
            shown.update(len(images))
    data = {k: np.concatenate(v) for k, v in columns.items()}
    accuracy = float((data["logits"].argmax(-1) == data["label"]).mean())
    category = data["category"]
    if task.mode == "single":
        positives = data["label"] == 1
        assigned = np.full(data["scores"].shape[1], int(category[positives][0]))
    else:
        present = np.unique(category)
        means = np.stack([data["scores"][category == c].mean(0) for c in present])
        assigned = present[means.argmax(0)]
    results = {"accuracy": accuracy, "images": int(len(category))}
    for key, firing_only in (("location_instability", False), ("location_instability_firing", True)):
        per_filter = instability_by_category(data, assigned, task.image_size, config, firing_only)
        finite = per_filter[np.isfinite(per_filter)]
        results[key] = float(finite.mean()) if finite.size else float("nan")  # NaN: no filter had 2 images
        results[f"{key}_filters"] = int(np.isfinite(per_filter).sum())
    results["filters"] = int(data["scores"].shape[1])
    results["silent_filters"] = int((data["scores"].max(0) <= 0).sum())
    return results


def instability_by_category(data: dict[str, np.ndarray], assigned: np.ndarray, image_size: int,
                            config: IcnnConfig, firing_only: bool) -> np.ndarray:
    """Each filter's location instability on the images of its category, with that category's landmarks."""
    per_filter = np.full(len(assigned), np.nan)
    for c in np.unique(assigned):
        images = data["category"] == c
        parts = np.flatnonzero(data["visible"][images].mean(0) >= config.landmark_share)
        filters = np.flatnonzero(assigned == c)
        if len(parts) == 0 or images.sum() < 2:
            continue
        result = metrics.location_instability(
            data["positions"][images][:, filters], data["scores"][images][:, filters],
            data["landmarks"][images][:, parts], data["visible"][images][:, parts],
            (image_size, image_size), firing_only=firing_only)
        per_filter[filters] = result.per_filter
    return per_filter


def part_iou(model: nets.Model, config: IcnnConfig, progress: bool | None = None) -> float:
    """Mean over the 'icnn' filters of their best part IoU on held-out SynthParts (Network Dissection)."""
    held_out = common.synthparts_streams(config.seed, config.image_size)[1]
    data = dissect.SynthPartsConcepts(held_out, num_examples=config.eval_images)
    return float(dissect.part_interpretability(model, "icnn", data, batch_size=64, progress=progress).value)


def feature_map_figure(models: dict[str, nets.Model], task: Task, filters_per_model: int = 3, images: int = 8):
    """The paper's figure: a few filters of each network on the top images of one category."""
    batch = next(eval_batches(task))
    category = np.asarray(batch["category"])
    chosen = np.flatnonzero(category == category[0])[:images]
    pictures = np.asarray(batch["image"])[chosen]
    maps, filters = {}, {}
    for name, model in models.items():
        activations = np.asarray(model.activations(jnp.asarray(pictures), "icnn")["icnn"])
        filters[name] = np.argsort(-activations.max((1, 2)).mean(0))[:filters_per_model]
        maps[name] = activations
    return viz.feature_map_grid(pictures, maps, filters)


def table(results: dict[str, Any]) -> str:
    rows = [[task, name, f"{r['accuracy']:.3f}",
             f"{r['location_instability']:.4f} ({r['location_instability_filters']}/{r['filters']})",
             f"{r['location_instability_firing']:.4f} ({r['location_instability_firing_filters']})",
             f"{r['part_iou']:.3f}" if "part_iou" in r else "-"]
            for task, networks in results.items() for name, r in networks.items()]
    return common.markdown_table(["task", "network", "accuracy", "location instability", "(firing filters only)",
                                  "part IoU"], rows, text_columns=2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/icnn")
    parser.add_argument("--cub", help="a CUB_200_2011 folder: run its multi-category task instead of SynthParts")
    parser.add_argument("--voc-part", help="a VOC2010 folder with Annotations_Part: run its animal task instead")
    common.config_arguments(parser, default="icnn")
    args = parser.parse_args(argv)
    config = common.config_from(args, IcnnConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        workdir = pathlib.Path(args.workdir)
        if args.cub:
            tasks = [folder_task("cub", CUB200(args.cub, split="train"), CUB200(args.cub, split="test"), config,
                                 CUB_ICNN_PARTS)]
        elif args.voc_part:
            tasks = [folder_task("voc_part", VOCPart(args.voc_part, split="train"),
                                 VOCPart(args.voc_part, split="val"), config)]
        else:
            tasks = synthparts_tasks(config)

        store = common.Results(workdir, {"dataset": args.cub or args.voc_part or "synthparts", **vars(config)},
                               force_new_config=args.force_new_config)
        for task in tasks:
            models = {}
            for name, interpretable in (("ordinary", False), ("interpretable", True)):
                start = time.perf_counter()
                models[name] = train_network(task, interpretable, workdir / task.name / name, config, args.progress)
                if (task.name, name) not in store:
                    measured = evaluate(models[name], task, config, args.progress)
                    if task.name == "multi" and not (args.cub or args.voc_part):
                        measured["part_iou"] = part_iou(models[name], config, args.progress)
                    store.put((task.name, name), measured | {"seconds": round(time.perf_counter() - start, 1)})
                print(task.name, name, json.dumps(store.get((task.name, name))), flush=True)
            if task is tasks[0] and not (workdir / "feature_maps.png").exists():
                feature_map_figure(models, task).savefig(workdir / "feature_maps.png", dpi=110)
        results = store.values
        (workdir / "table.md").write_text(table(results))
        print(table(results))
        return results


if __name__ == "__main__":
    main()
