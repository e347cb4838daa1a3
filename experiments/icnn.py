"""Interpretable CNNs as the authors released them (Zhang, Wu & Zhu, CVPR 2018) against ordinary twins, over seeds.

    python -m experiments.icnn --workdir runs/icnn
    python -m experiments.icnn --workdir runs/icnn_cub --cub data/CUB_200_2011
    python -m experiments.icnn --workdir runs/icnn_voc --voc-part data/VOC2010

For each seed: a backbone (SmallCNN with a 16x16 top map by default) is
trained as an ordinary classifier on whole images (SynthParts' stream, or the
folder's train split); then, for every task (`experiments.icnn_tasks`: the
multi-category one and one-category ones, on object crops and on whole
scenes), the released interpretable network and its ordinary twin are both
fine-tuned from it with the release's protocol (`interp.layers.released`:
SGD, momentum 0.9, weight decay 5e-4, a log-spaced per-epoch rate, a finite
training set with mirrored objects, per-class logistic loss). On the first
multi-category task, more interpretable networks scale the injected
gradient's constant (`strength_factors`).

Each network is measured on held-out images: accuracy (one category:
balanced), location instability of the measured map `icnn` (the official
readout before its ReLU, each filter on its category's images; also read
after the ReLU and over firing images only), silent filters, how many of a
firing map's cells are on and the activation's spread around its centre (in
cells), part IoU (a dissection against part masks, where the data has them),
and, per epoch, the ratio of injected to task gradient norms at each masked
layer. Beside them, the instability of three virtual filters on the same
images (`metrics.reference_instabilities`).

Writes to the workdir: a run folder per seed, task and network (checkpoints;
a rerun resumes), results.json (a rerun skips what it holds), table.md, and
the figures instability.png, gradient_ratio.png, strength.png and
feature_maps.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments import icnn_tasks as tasks_lib
from experiments.configs import IcnnConfig, TrainConfig
from interp import dissect, layers, metrics, nets, ops, viz
from interp import train as trainlib
from interp._progress import bar
from interp.data import pass_indices
from interp.viz.figures import plt

TOP_CONV = {"small_cnn": "conv4", "vgg16": "conv5_3", "alexnet": "conv5", "vgg_m": "conv5", "vgg_s": "conv5"}
MEASURED = "icnn"  # conv_mask6's output, before its ReLU


@dataclasses.dataclass(frozen=True)
class Net:
    name: str
    masked: bool
    strength_factor: float = 1.0


def nets_of(task: tasks_lib.Task, first_multi: bool, config: IcnnConfig) -> list[Net]:
    chosen = [Net("ordinary", False), Net("interpretable", True)]
    if first_multi:
        chosen += [Net(strength_name(f), True, float(f)) for f in config.strength_factors if f != 1]
    return chosen


def strength_name(factor: float) -> str:
    """The interpretable network whose injected constant is `factor` times the release's (0: masks, no loss)."""
    return "interpretable" if factor == 1 else "masked_no_loss" if factor == 0 else f"interpretable_x{factor:g}"


def backbone_kwargs(config: IcnnConfig) -> dict[str, Any]:
    if config.model != "small_cnn":
        return {}
    pools = round(math.log2(config.image_size / (2 * config.top_resolution)))  # after the stride-2 stem
    return {"pools": (True,) * pools + (False,) * (4 - pools)}


def pretrain(config: IcnnConfig, seed: int, workdir: pathlib.Path, dataset: str, root: str,
             progress: bool | None) -> dict[str, Any]:
    """The backbone: an ordinary zoo classifier trained with AdamW (warm-up, cosine) on whole images."""
    source, num_classes, shuffle = tasks_lib.pretraining_source(config, seed, dataset, root)
    module = nets.create_module(config.model, num_classes=num_classes, **backbone_kwargs(config))
    steps = config.pretrain_steps
    schedule = TrainConfig(steps=steps, learning_rate=config.pretrain_learning_rate, batch_size=config.batch_size,
                           warmup_steps=min(100, max(steps // 10, 1)))
    state = trainlib.fit(module, common.optimizer(schedule), source, num_steps=steps, batch_size=config.batch_size,
                         workdir=workdir, seed=seed, shuffle=shuffle, checkpoint_every=max(steps // 4, 1),
                         log_every=max(steps // 10, 1), progress=progress)
    return jax.device_get(state.variables)


def finetune(task: tasks_lib.Task, net: Net, pretrained: dict[str, Any], seed: int, workdir: pathlib.Path,
             config: IcnnConfig, progress: bool | None) -> nets.Model:
    """Fine-tunes the released network (or its ordinary twin) from `pretrained` with the release's protocol."""
    strength = config.strength * net.strength_factor
    module = layers.released_icnn(config.model, task.num_outputs, masked=net.masked, fc_width=config.fc_width,
                                  dropout=config.dropout, strength=strength, **backbone_kwargs(config))
    steps_per_epoch = max(len(task.train) // config.batch_size, 1)
    loss = layers.logistic_loss(task.num_outputs)
    if net.masked:
        loss = loss + layers.released_filter_loss(task.density, steps_per_epoch)
    rates = layers.epoch_learning_rates(config.learning_rate, task.epochs, task.decay_epochs)
    optimizer = layers.released_sgd(rates, steps_per_epoch, top_conv=TOP_CONV[config.model])
    state = trainlib.fit(
        module, optimizer, task.train, loss=loss, num_steps=task.epochs * steps_per_epoch,
        batch_size=config.batch_size, workdir=workdir, seed=seed, shuffle=True, checkpoint_every=steps_per_epoch,
        log_every=steps_per_epoch, eval_every=steps_per_epoch, progress=progress,
        evaluate=gradient_logger(task, steps_per_epoch, strength) if net.masked else None,
        initialize=lambda variables: layers.load_backbone(variables, pretrained))
    return state.model()


def gradient_logger(task: tasks_lib.Task, steps_per_epoch: int, strength: float):
    """Per epoch: the injected and task gradient norms at each masked layer, on a fixed training batch."""
    probe = task.train.batch(np.arange(min(64, len(task.train))))
    labels = layers.signed_labels(jnp.asarray(probe["label"]), task.num_outputs)

    def evaluate(state: trainlib.TrainState) -> dict[str, float]:
        epoch = float(int(state.step) // steps_per_epoch)
        supervision = layers.Supervision(labels, jnp.float32(epoch), jnp.asarray(task.density, jnp.float32))
        norms = layers.gradient_norms(state.model(), jnp.asarray(probe["image"]), supervision, strength=strength)
        return {f"{kind}_{layer}": value for layer, found in norms.items() for kind, value in found.items()}

    return evaluate


def read_maps(model: nets.Model, task: tasks_lib.Task, progress: bool | None) -> dict[str, np.ndarray]:
    """One pass over the evaluation images: logits, the measured map's peaks (before and after its ReLU), map stats."""
    step = jax.jit(lambda x: (model(x), model.activations(x, MEASURED)[MEASURED]))
    columns: dict[str, list] = {}
    count = len(task.eval)
    with bar(count, desc=f"evaluate: {task.key}", unit="image", progress=progress) as shown:
        for indices, valid in pass_indices(count, min(256, count)):
            batch = task.eval.batch(indices)
            logits, maps = step(jnp.asarray(batch["image"]))
            relu_maps = jnp.maximum(maps, 0.0)
            found = {"logits": logits, "label": batch["label"], "category": batch["category"],
                     "landmarks": batch["landmarks"], "visible": batch["landmark_visible"],
                     "cells_on": (relu_maps > 0).sum((1, 2)), "peak": relu_maps.max((1, 2)),
                     "spread": layers.mask_center(relu_maps)[2]}  # [B, C], in cells
            for reading, values in (("official", maps), ("after_relu", relu_maps)):
                found[f"{reading}_cells"], found[f"{reading}_scores"] = ops.map_peaks(values)
            for key, value in found.items():
                columns.setdefault(key, []).append(np.asarray(value)[valid])
            shown.update(int(valid.sum()))
    return {key: np.concatenate(parts) for key, parts in columns.items()}


def evaluate(model: nets.Model, task: tasks_lib.Task, config: IcnnConfig, progress: bool | None) -> dict[str, Any]:
    """The comparison's measurements of one fine-tuned network (see the module docstring)."""
    data = read_maps(model, task, progress)
    field = nets.receptive_fields(model, jnp.asarray(task.eval.batch(np.arange(1))["image"]))[MEASURED]
    size = (config.image_size, config.image_size)
    if task.num_outputs == 1:
        said, truth = data["logits"][:, 0] > 0, data["label"] == 1
        accuracy = 0.5 * (said[truth].mean() + (~said[~truth]).mean())  # balanced: the set is half positives
        chosen = truth  # a one-category net is measured on its category
    else:
        accuracy = (data["logits"].argmax(-1) == data["label"]).mean()
        chosen = np.ones(len(data["label"]), bool)
    results = {"accuracy": float(accuracy), "images": int(len(data["label"]))}
    readings = (("official", "official", False), ("after_relu", "after_relu", False), ("firing", "after_relu", True))
    for name, reading, firing_only in readings:
        peaks = np.asarray(metrics.peaks_in_image(data[f"{reading}_cells"][chosen], field))
        result = metrics.location_instability(
            peaks, data[f"{reading}_scores"][chosen], data["landmarks"][chosen], data["visible"][chosen], size,
            firing_only=firing_only, categories=data["category"][chosen], landmark_share=config.landmark_share)
        results[f"instability_{name}"] = result.value
        results[f"instability_{name}_filters"] = int(np.isfinite(result.per_filter).sum())
    fires = data["peak"] > 0
    results["filters"] = int(fires.shape[1])
    results["silent_filters"] = int((~fires.any(0)).sum())
    results["cells_on"] = float(data["cells_on"][fires].mean()) if fires.any() else 0.0
    results["cells"] = int(np.prod(model.layer_shape(jnp.zeros((1, *size, 3)), MEASURED).shape[1:3]))
    results["spread"] = float(data["spread"][fires].mean()) if fires.any() else float("nan")
    if task.part_names is not None:
        concepts = dissect.PartMaskConcepts(task.eval, task.part_names)
        results["part_iou"] = float(dissect.part_interpretability(model, MEASURED, concepts, batch_size=64,
                                                                  progress=progress).value)
    return results


def references(model: nets.Model, task: tasks_lib.Task, config: IcnnConfig) -> dict[str, float]:
    """The virtual filters' instabilities on the task's evaluation images, at the measured map's resolution."""
    batch = task.eval.batch(np.arange(len(task.eval)))
    chosen = batch["label"] == 1 if task.num_outputs == 1 else np.ones(len(batch["label"]), bool)
    images = jnp.asarray(batch["image"][:1])
    field = nets.receptive_fields(model, images)[MEASURED]
    h, w = model.layer_shape(images, MEASURED).shape[1:3]
    cells = np.asarray(metrics.peaks_in_image(jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij"), -1),
                                              field))
    return metrics.reference_instabilities(
        batch["landmarks"][chosen], batch["landmark_visible"][chosen], (config.image_size,) * 2, cells,
        categories=batch["category"][chosen], landmark_share=config.landmark_share)


def gradient_ratios(workdir: pathlib.Path) -> dict[str, list[float]]:
    """The per-epoch injected/task gradient ratios that `gradient_logger` wrote to the run's metrics.jsonl."""
    records = [r for r in trainlib.read_metrics(workdir / "metrics.jsonl") if r["split"] == "val"]
    return {f"ratio_{layer}": [r[f"ratio_{layer}"] for r in records] for layer in layers.MASKED_LAYERS}


# --- summaries ---------------------------------------------------------------------------------------------------

NUMBERS = ("accuracy", "instability_official", "instability_after_relu", "instability_firing", "silent_filters",
           "cells_on", "spread", "part_iou")


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per task and network: each number's mean and std over seeds; per task: the paired differences."""
    summary = {}
    for task, networks in results.items():
        rows = {}
        for name, seeds in networks.items():
            values = {key: [seed[key] for seed in seeds.values() if key in seed] for key in NUMBERS}
            rows[name] = {key: common.spread(v) for key, v in values.items() if v}
            rows[name]["seeds"] = len(seeds)
            rows[name]["diverged"] = sum("diverged" in seed for seed in seeds.values())
        paired = {}
        for name in networks:
            if name in ("ordinary", "references"):
                continue
            both = [s for s in networks[name] if s in networks.get("ordinary", {}) and "diverged" not in
                    networks[name][s]]
            for key in ("instability_official", "instability_firing", "accuracy"):
                diffs = [networks[name][s][key] - networks["ordinary"][s][key] for s in both]
                paired.setdefault(name, {})[key] = common.spread(diffs) | {"lower": int(sum(d < 0 for d in diffs))}
        summary[task] = {"networks": rows, "paired": paired}
    return summary


def _pm(stat: dict[str, float] | None, digits: int) -> str:
    if not stat:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def table(summary: dict[str, Any]) -> str:
    rows = []
    for task, found in summary.items():
        for name, r in found["networks"].items():
            if name == "references":
                refs = r
                rows.append([task, "references", "-", f"part tracker {_pm(refs.get('part_tracker'), 4)}",
                             f"image centre {_pm(refs.get('image_centre'), 4)}",
                             f"random cell {_pm(refs.get('random_cell'), 4)}", "-", "-", "-", "-"])
                continue
            if r["diverged"] == r["seeds"]:
                rows.append([task, name, f"diverged ({r['diverged']} of {r['seeds']} seeds)"] + ["-"] * 7)
                continue
            rows.append([task, name + (f" ({r['diverged']} diverged)" if r["diverged"] else ""),
                         _pm(r.get("accuracy"), 3), _pm(r.get("instability_official"), 4),
                         _pm(r.get("instability_after_relu"), 4), _pm(r.get("instability_firing"), 4),
                         _pm(r.get("silent_filters"), 1), _pm(r.get("cells_on"), 1), _pm(r.get("spread"), 2),
                         _pm(r.get("part_iou"), 3)])
    header = ["task", "network", "accuracy", "instability (official)", "after ReLU", "firing only", "silent",
              "cells on", "spread", "part IoU"]
    text = common.markdown_table(header, rows, text_columns=2)
    paired = [[task, name, _pm(d["instability_official"], 4), f"{d['instability_official']['lower']}/"
               f"{d['instability_official']['n']}", _pm(d["instability_firing"], 4), _pm(d["accuracy"], 3)]
              for task, found in summary.items() for name, d in found["paired"].items()]
    text += "\nPaired over seeds, network minus ordinary twin:\n\n" + common.markdown_table(
        ["task", "network", "instability (official)", "seeds lower", "firing only", "accuracy"], paired,
        text_columns=2)
    return text


def summarize_references(references: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    names = ("part_tracker", "image_centre", "random_cell")
    return {name: common.spread([seed[name] for seed in references.values()]) for name in names}


# --- figures -----------------------------------------------------------------------------------------------------


def instability_figure(summary: dict[str, Any]):
    """Official location instability per task, ordinary against interpretable (mean ± std over seeds)."""
    tasks = list(summary)
    fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 2, 3.6))
    x = np.arange(len(tasks))
    for offset, name, color in ((-0.2, "ordinary", "tab:gray"), (0.2, "interpretable", "tab:red")):
        stats = [summary[t]["networks"].get(name, {}).get("instability_official") for t in tasks]
        means, stds = [s["mean"] if s else np.nan for s in stats], [s["std"] if s else 0 for s in stats]
        ax.bar(x + offset, means, 0.38, yerr=stds, color=color, label=name, capsize=3)
    for key, color in (("part_tracker", "tab:green"), ("image_centre", "tab:blue"), ("random_cell", "black")):
        values = [summary[t]["networks"].get("references", {}).get(key, {}).get("mean", np.nan) for t in tasks]
        ax.scatter(x, values, marker="_", s=900, color=color, label=key.replace("_", " "))
    ax.set_xticks(x, [t.replace("/", "\n") for t in tasks], fontsize=8)
    ax.set_ylabel("location instability (lower is better)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def ratio_figure(results: dict[str, Any]):
    """Injected / task gradient norm per epoch at each masked layer, every masked network (mean over seeds)."""
    fig, axes = plt.subplots(1, len(layers.MASKED_LAYERS), figsize=(9, 3.4), squeeze=False)
    for ax, layer in zip(axes[0], layers.MASKED_LAYERS):
        for task, networks in results.items():
            for name, seeds in networks.items():
                curves = [s[f"ratio_{layer}"] for s in seeds.values() if f"ratio_{layer}" in s]
                if not curves or not np.any(curves[0]):  # the masks without the loss inject nothing
                    continue
                length = min(len(c) for c in curves)
                mean = np.mean([c[:length] for c in curves], axis=0)
                ax.plot(np.arange(1, length + 1), mean, label=f"{task} {name}", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{layer}: injected / task gradient", fontsize=9)
    axes[0, -1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def strength_figure(summary: dict[str, Any], task: str, config: IcnnConfig):
    """Instability and accuracy of the interpretable networks against the injected constant, ordinary as a line."""
    found = summary[task]["networks"]
    factors = sorted({1.0, *config.strength_factors} - {0.0})
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key in zip(axes, ("instability_official", "accuracy")):
        stats = [found.get(strength_name(f), {}).get(key) for f in factors]
        ax.errorbar([config.strength * f for f in factors], [s["mean"] if s else np.nan for s in stats],
                    [s["std"] if s else 0 for s in stats], marker="o", color="tab:red", label="interpretable")
        for f, stat in zip(factors, stats):
            if not stat:
                ax.annotate("diverged", (config.strength * f, ax.get_ylim()[0]), fontsize=7, rotation=90,
                            va="bottom", ha="center", color="tab:red")
        ax.axhline(found["ordinary"][key]["mean"], color="tab:gray", ls="--", label="ordinary")
        if "masked_no_loss" in found:
            ax.axhline(found["masked_no_loss"][key]["mean"], color="tab:orange", ls=":", label="masks, no loss")
        ax.set_xscale("log")
        ax.set_xlabel("injected gradient constant")
        ax.set_title(f"{task}: {key.replace('_', ' ')}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def feature_map_figure(models: dict[str, nets.Model], task: tasks_lib.Task, filters_per_model: int = 3,
                       images: int = 8):
    """The paper's figure: a few filters of each network (after the ReLU) on images of one category."""
    batch = task.eval.batch(np.arange(min(len(task.eval), 64)))
    category = np.asarray(batch["category"])
    chosen = np.flatnonzero(category == category[0])[:images]
    pictures = np.asarray(batch["image"])[chosen]
    maps, filters = {}, {}
    for name, model in models.items():
        activations = np.maximum(np.asarray(model.activations(jnp.asarray(pictures), MEASURED)[MEASURED]), 0)
        filters[name] = np.argsort(-activations.max((1, 2)).mean(0))[:filters_per_model]
        maps[name] = activations
    return viz.feature_map_grid(pictures, maps, filters)


# --- the command -------------------------------------------------------------------------------------------------


def run_seed(seed: int, config: IcnnConfig, dataset: str, root: str, workdir: pathlib.Path,
             store: common.Results, progress: bool | None) -> None:
    """Pretrains the seed's backbone, then fine-tunes and measures every network of every task (or reads them)."""
    tasks = (tasks_lib.synthparts_tasks(config, seed) if dataset == "synthparts"
             else tasks_lib.folder_tasks(config, dataset, root))
    pretrained = pretrain(config, seed, workdir / f"seed{seed}" / "pretrained", dataset, root, progress)
    shown = {}
    for index, task in enumerate(tasks):
        for net in nets_of(task, index == 0, config):
            run = workdir / f"seed{seed}" / task.name / task.framing / net.name
            key = (task.key, net.name, f"seed{seed}")
            if "diverged" in store.get(key, {}):
                continue
            start = time.perf_counter()
            try:
                model = finetune(task, net, pretrained, seed, run, config, progress)
            except trainlib.NonFiniteError as error:  # a result of the sweep, not a failure of the run
                store.put(key, {"diverged": str(error).split(";")[0]})
                print(task.key, net.name, f"seed{seed}", "diverged:", store.get(key)["diverged"], flush=True)
                continue
            if key not in store:
                measured = evaluate(model, task, config, progress) | (gradient_ratios(run) if net.masked else {})
                store.put(key, measured | {"seconds": round(time.perf_counter() - start, 1)})
            if (task.key, "references", f"seed{seed}") not in store:
                store.put((task.key, "references", f"seed{seed}"), references(model, task, config))
            if index == 0 and net.name in ("ordinary", "interpretable"):
                shown[net.name] = model
            print(task.key, net.name, f"seed{seed}", json.dumps(store.get(key)), flush=True)
    if seed == config.seeds[0]:
        feature_map_figure(shown, tasks[0]).savefig(workdir / "feature_maps.png", dpi=110)


def write_outputs(workdir: pathlib.Path, results: dict[str, Any], config: IcnnConfig) -> dict[str, Any]:
    """table.md, summary.json and the figures from every stored result; returns the summary."""
    networks = {task: {n: s for n, s in found.items() if n != "references"} for task, found in results.items()}
    summary = summarize(networks)
    for task, found in results.items():
        summary[task]["networks"]["references"] = summarize_references(found["references"])
    (workdir / "table.md").write_text(table(summary))
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    instability_figure(summary).savefig(workdir / "instability.png", dpi=110)
    ratio_figure(networks).savefig(workdir / "gradient_ratio.png", dpi=110)
    if config.strength_factors:
        strength_figure(summary, next(iter(results)), config).savefig(workdir / "strength.png", dpi=110)
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/icnn")
    parser.add_argument("--cub", help="a CUB_200_2011 folder: run its multi-category task instead of SynthParts")
    parser.add_argument("--voc-part", help="a VOC2010 folder with Annotations_Part: run its animal task instead")
    common.config_arguments(parser, default="icnn")
    args = parser.parse_args(argv)
    config = common.config_from(args, IcnnConfig)  # a bad --set fails before the workdir is made
    dataset, root = ("cub", args.cub) if args.cub else ("voc_part", args.voc_part) if args.voc_part else (
        "synthparts", "")
    with trainlib.hold_workdir(args.workdir):
        workdir = pathlib.Path(args.workdir)
        store = common.Results(workdir, {"dataset": root or dataset, **dataclasses.asdict(config)},
                               force_new_config=args.force_new_config)
        for seed in config.seeds:
            run_seed(seed, config, dataset, root, workdir, store, args.progress)
        summary = write_outputs(workdir, store.values, config)
        print((workdir / "table.md").read_text())
        return {"results": store.values, "summary": summary}


if __name__ == "__main__":
    main()
