"""Explanatory graphs (Zhang et al., AAAI 2018) mined from a trained SmallCNN: node stability and few-shot parts.

    python -m experiments.explanatory_graph --run runs/demo --workdir runs/explanatory_graph \\
        [--cub data/CUB_200_2011] [--voc-part data/VOC2010] [--set field=value ...]

Reads the trained run (`make demo` writes runs/demo; a missing run is trained
first, with `--train-config` and `--train-set`). Per task, the graph of the
config's `layers` is mined, with no annotations, from `mine_images` images of
one category, once per seed: the seed draws the `MINE_SHARE` of the mining
images the graph is mined from (nodes seeded on the filters' peaks would
otherwise give one graph for every seed), the nodes' first places with
`init=random`, and the annotated images of the few-shot evaluation:

- synthparts: the config's `category` from the held-out stream the network
  never trained on; the first `mine_images` of them are mined, the next
  `test_images` tested; the negatives (whose per-unit std normalizes the maps,
  as the release's 1,000 unrelated images do) are the stream's images of the
  other classes.
- cub (`--cub`): every bird is one category, as in the paper; images spread
  evenly over the train split are mined, over the test split tested; its 15
  parts; the negatives are the synthparts task's.
- voc_part/<animal> (`--voc-part`, one task per `voc_categories`): the
  animal's objects of the train split mined, of the val split tested; part
  centres of head, neck and torso (`ICNN_LANDMARK_GROUPS`); the negatives are
  the other animals' train objects.

The run's network (trained on SynthParts) reads every task, at the run's image
size; with `crop`, SynthParts and CUB objects are cut to their boxes
(VOC-Part's reader always does).

Measured per task and seed: per layer, the location instability of the best
nodes against as many of the best raw filters (`explain.node_stability`, on
the mining images, over the category's parts visible on at least 2 of them;
lower is more stable); and few-shot part localization: for each part and
number of shots, `draws` random choices of annotated mining images fit three
locators, evaluated on the test images by normalized distance (lower is
better): the top graph layer's nodes ("explanatory graph"), the top layer's
raw filter peaks ("raw filter") and a ridge regression from the network's
pooled top features (the `gap` tap, else the top layer's mean; the paper's
"fc7 + linear SVM"). The same draws serve all three.

Writes to the workdir: results.json (a rerun skips what it holds; each task's
seed<k>/graph.npz is reused), summary.json, table.md (mean ± std over seeds,
beside the published numbers), stability.png and localization.png (every
task), and per task, from seed 0: node_patches.png (the top layer's best node
against its raw filter, on the test images), graph.png and report/ (open
report/index.html).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.configs import ExplanatoryGraphConfig, TrainConfig
from interp import explain, metrics, nets, viz
from interp import train as trainlib
from interp._progress import bar
from interp.data import ANIMAL_CLASSES, CUB200, ICNN_LANDMARK_GROUPS, VOCPart, object_crops, sized
from interp.files import check_same_config
from interp.viz.figures import plt

METHODS = {"explanatory_graph": "explanatory graph", "raw_filter": "raw filter", "linear": "linear"}
CHUNK = 64  # SynthParts images generated per batch (one compiled shape, a training batch's)
MINE_SHARE = 0.8  # of the mining images, the share each seed's graph is mined from
PUBLISHED = (
    "Published (Zhang et al.'s slides; VGG-16, 3-shot part localization, normalized distance): on CUB-200-2011 "
    "explanatory graph 0.0862, fc7 + linear SVM 0.3120, Fast-RCNN fine-tuned twice 0.4131; on PASCAL VOC Part "
    "(6 animals, average) explanatory graph 0.177, fc7 + linear SVM 0.244."
)


@dataclasses.dataclass(frozen=True)
class Task:
    """One category's images: `mine` and `test` hold 'image' [N, H, W, 3], 'landmarks' [N, P, 2] (row, col)
    pixels and 'visible' [N, P]; `negatives` [M, H, W, 3]; `data` names where they come from."""

    name: str
    mine: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    negatives: np.ndarray
    part_names: tuple[str, ...]
    data: str


def _fields(batch: dict[str, Any], rows: Any = slice(None)) -> dict[str, np.ndarray]:
    return {"image": np.asarray(batch["image"], np.float32)[rows],
            "landmarks": np.asarray(batch["landmarks"], np.float32)[rows],
            "visible": np.asarray(batch["landmark_visible"], bool)[rows]}


def _concat(parts: list[dict[str, np.ndarray]], count: int) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts])[:count] for key in parts[0]}


def _read(source: Any, indices: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    return _concat([_fields(source.batch(indices[s:s + batch_size])) for s in range(0, len(indices), batch_size)],
                   len(indices))


def _spread(count: int, wanted: int) -> np.ndarray:
    """min(count, wanted) indices spread evenly over 0 ... count - 1 (every class of a sorted split)."""
    return np.linspace(0, count - 1, min(count, wanted)).round().astype(np.int64)


def synthparts_task(run_config: TrainConfig, config: ExplanatoryGraphConfig) -> Task:
    """The category's held-out images (mined, then tested) and the other classes' (negatives), in stream order."""
    stream = common.held_out(run_config)
    if config.category not in stream.class_names:
        raise ValueError(f"category: expected one of the run's classes {', '.join(stream.class_names)}, got "
                         f"{config.category!r}")
    k = stream.class_names.index(config.category)
    source = object_crops(stream) if config.crop else stream
    wanted = config.mine_images + config.test_images
    found, others, start = [], [], 0
    while sum(len(f["image"]) for f in found) < wanted or sum(len(o) for o in others) < config.negative_images:
        batch = source.batch(np.arange(start, start + CHUNK))
        label = np.asarray(batch["label"])
        found.append(_fields(batch, label == k))
        others.append(np.asarray(batch["image"], np.float32)[label != k])
        start += CHUNK
    images = _concat(found, wanted)
    mine = {key: v[:config.mine_images] for key, v in images.items()}
    test = {key: v[config.mine_images:] for key, v in images.items()}
    return Task("synthparts", mine, test, np.concatenate(others)[:config.negative_images], stream.part_names,
                f"synthparts:{config.category}")


def cub_task(root: str, image_size: int, config: ExplanatoryGraphConfig, negatives: np.ndarray) -> Task:
    """Every bird as one category: images spread over the train split mined, over the test split tested."""
    train, test = (CUB200(root, split=split, crop_to_bbox=config.crop) for split in ("train", "test"))
    mine = _read(sized(train, image_size), _spread(len(train), config.mine_images), config.batch_size)
    tested = _read(sized(test, image_size), _spread(len(test), config.test_images), config.batch_size)
    return Task("cub", mine, tested, negatives, train.part_names, str(pathlib.Path(root).resolve()))


def voc_part_tasks(root: str, image_size: int, config: ExplanatoryGraphConfig) -> list[Task]:
    """One task per animal: its train objects mined, its val objects tested, the other animals' train objects
    as negatives; the landmarks are the centres of head, neck and torso."""
    tasks = []
    for animal in config.voc_categories:
        def reader(split, classes):
            return VOCPart(root, split=split, classes=classes, parts=ICNN_LANDMARK_GROUPS)
        train, val = reader("train", (animal,)), reader("val", (animal,))
        others = reader("train", tuple(c for c in ANIMAL_CLASSES if c != animal))
        mine = _read(sized(train, image_size), np.arange(min(len(train), config.mine_images)), config.batch_size)
        tested = _read(sized(val, image_size), np.arange(min(len(val), config.test_images)), config.batch_size)
        negatives = _read(sized(others, image_size), np.arange(min(len(others), config.negative_images)),
                          config.batch_size)["image"]
        tasks.append(Task(f"voc_part/{animal}", mine, tested, negatives, train.part_names,
                          f"{pathlib.Path(root).resolve()}:{animal}"))
    return tasks


# --- one seed ----------------------------------------------------------------------------------------------------


def mined_graph(model: nets.Model, task: Task, seed: int, config: ExplanatoryGraphConfig, folder: pathlib.Path,
                store: common.Results, progress: bool | None) -> explain.ExplanatoryGraph:
    """The seed's graph: read from graph.npz when results.json records it, else mined and saved."""
    key = (task.name, f"seed{seed}", "mining")
    path = folder / "graph.npz"
    if key in store and path.exists():
        return explain.ExplanatoryGraph.load(path)
    start = time.perf_counter()
    count = len(task.mine["image"])
    rows = np.sort(np.random.default_rng(seed).permutation(count)[:max(2, round(MINE_SHARE * count))])
    graph = explain.explanatory_graph(model, list(config.layers), task.mine["image"][rows],
                                      negatives=task.negatives, iterations=config.iterations,
                                      density=config.density, init=config.init, flip=config.flip,
                                      batch_size=config.batch_size, key=jax.random.key(seed), progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    graph.save(path)
    store.put(key, {"seconds": round(time.perf_counter() - start, 1), "images": len(rows),
                    "negatives": len(task.negatives)})
    return graph


def pooled_features(model: nets.Model, images: np.ndarray, top: str, batch_size: int) -> np.ndarray:
    """float [N, D] the network's pooled top features: the `gap` tap, else the mean of `top` over space."""
    probe = jax.ShapeDtypeStruct((1, *images.shape[1:]), jnp.float32)
    name = "gap" if "gap" in model.layer_names(probe) else top
    out = np.concatenate([np.asarray(_activation(model, jnp.asarray(images[s:s + batch_size]), name))
                          for s in range(0, len(images), batch_size)])
    return out if out.ndim == 2 else out.mean(axis=(1, 2))


@functools.partial(jax.jit, static_argnames="name")
def _activation(model: nets.Model, images: jax.Array, name: str) -> jax.Array:
    return model.activations(images, name)[name]


@dataclasses.dataclass(frozen=True)
class Readings:
    """One image set read by the graph's top layer three ways: nodes (with orientations), raw peaks, pooled."""

    nodes: explain.NodeInference
    flipped: np.ndarray
    peaks: explain.Peaks
    pooled: np.ndarray


def locate(mine: Readings, test: Readings, task: Task, parts: np.ndarray, seed: int,
           config: ExplanatoryGraphConfig) -> dict[str, Any]:
    """Per number of shots: each method's normalized distance, averaged over the draws and then the parts."""
    size = task.test["image"].shape[1:3]
    out = {}
    for shots in config.shots:
        per_part = {}
        for p in parts:
            rng = np.random.default_rng([seed, shots, int(p)])
            shown = np.flatnonzero(task.mine["visible"][:, p])
            truth, visible = task.test["landmarks"][:, p], task.test["visible"][:, p]
            found = {method: [] for method in METHODS}
            for _ in range(config.draws):
                rows = rng.choice(shown, shots, replace=False)
                part, ones = task.mine["landmarks"][rows, p], np.ones(shots, bool)
                graph = explain.fit_part_locator(mine.nodes.positions[rows], mine.nodes.scores[rows], part, ones,
                                                 image_size=size, flipped=mine.flipped[rows])
                raw = explain.fit_part_locator(mine.peaks.positions[rows], mine.peaks.scores[rows], part, ones,
                                               image_size=size)
                linear = explain.fit_linear_locator(mine.pooled[rows], part, ones)
                predicted = {
                    "explanatory_graph": explain.locate_part(graph, test.nodes.positions, test.nodes.scores,
                                                             flipped=test.flipped),
                    "raw_filter": explain.locate_part(raw, test.peaks.positions, test.peaks.scores),
                    "linear": explain.locate_linear(linear, test.pooled)}
                for method, centres in predicted.items():
                    found[method].append(metrics.normalized_distance(centres, truth, visible, size))
            per_part[task.part_names[p]] = {method: float(np.mean(v)) for method, v in found.items()}
        out[str(shots)] = {method: float(np.mean([r[method] for r in per_part.values()])) for method in METHODS}
        out[str(shots)]["parts"] = per_part
    return out


def read(graph: explain.ExplanatoryGraph, model: nets.Model, images: np.ndarray, config: ExplanatoryGraphConfig,
         progress: bool | None) -> tuple[explain.Inference, dict[str, explain.Peaks], np.ndarray]:
    """The graph's inference, every layer's raw filter peaks and the pooled features on `images`."""
    found = explain.infer(graph, model, images, batch_size=config.batch_size, progress=progress)
    peaks = explain.filter_peaks(graph, model, images, batch_size=config.batch_size)
    pooled = pooled_features(model, images, graph.layer_names[-1], config.batch_size)
    return found, peaks, pooled


def run_seed(model: nets.Model, task: Task, seed: int, config: ExplanatoryGraphConfig, workdir: pathlib.Path,
             store: common.Results, progress: bool | None) -> None:
    """Mines (or reads) the seed's graph and measures it; seed 0 also draws the task's figures and report."""
    key = (task.name, f"seed{seed}")
    out = workdir / task.name
    drawn = seed != config.seeds[0] or (out / "report" / "index.html").exists()
    if "localization" in store.get(key, {}) and drawn:
        return
    graph = mined_graph(model, task, seed, config, out / f"seed{seed}", store, progress)
    top = graph.layer_names[-1]
    mine, mine_peaks, mine_pooled = read(graph, model, task.mine["image"], config, progress)
    test, test_peaks, test_pooled = read(graph, model, task.test["image"], config, progress)
    if "localization" not in store.get(key, {}):
        visible = task.mine["visible"]
        measured = np.flatnonzero(visible.sum(0) >= 2)  # the category's parts, on at least 2 images
        stability = explain.node_stability(graph, mine, mine_peaks, task.mine["landmarks"][:, measured],
                                           visible[:, measured])
        store.put(key + ("layers",), {layer: {"nodes": s.nodes.value, "filters": s.filters.value, "count": s.count}
                                      for layer, s in stability.items()})
        located = np.flatnonzero((visible.sum(0) >= max(config.shots)) & task.test["visible"].any(0))
        if not len(located):
            raise ValueError(f"{task.name}: no part is visible on {max(config.shots)} mining images and a test "
                             "image; mine more images")
        store.put(key + ("localization",), locate(
            Readings(mine[top], mine.flipped, mine_peaks[top], mine_pooled),
            Readings(test[top], test.flipped, test_peaks[top], test_pooled), task, located, seed, config))
    if not drawn:
        draw_task(graph, test, test_peaks, task.test["image"], out, progress)


# --- figures -----------------------------------------------------------------------------------------------------


def draw_task(graph: explain.ExplanatoryGraph, found: explain.Inference, peaks: dict[str, explain.Peaks],
              images: np.ndarray, out: pathlib.Path, progress: bool | None) -> None:
    """node_patches.png, graph.png and report/ of one graph, inferred on the test `images`."""
    top = graph.layers[-1]
    nodes = found[top.name]
    best = int(np.argmax(nodes.scores.mean(axis=0)))
    channel = int(top.node_channel(best))
    raw = peaks[top.name]
    figure = viz.node_patches(images, nodes.positions[:, best], nodes.scores[:, best], raw.positions[:, channel],
                              raw.scores[:, channel], patch_size=max(8, round(3 * top.stride)),
                              title=f"{top.name}: node {best} (filter {channel}) against its raw filter")
    _save(figure, out / "node_patches.png")
    figure = viz.graph_layers(graph.layer_names, [found[n].cells.mean(axis=0) for n in graph.layer_names],
                              [found[n].scores.mean(axis=0) for n in graph.layer_names],
                              [np.asarray(layer.parents) for layer in graph.layers],
                              [layer.config.map_shape for layer in graph.layers])
    _save(figure, out / "graph.png")
    explain.write_report(graph, found, images, out / "report",
                         filter_peaks={name: (p.positions, p.scores) for name, p in peaks.items()}, progress=progress)


def _save(figure, path: pathlib.Path) -> None:
    figure.savefig(path, dpi=110)
    plt.close(figure)


def stability_figure(summary: dict[str, Any]):
    """Per task, each layer's node and raw-filter instability (bars: mean over seeds; whiskers: std)."""
    fig, axes = plt.subplots(1, len(summary), figsize=(3.6 * len(summary), 3.2), squeeze=False)
    for ax, (task, found) in zip(axes[0], summary.items()):
        layers = list(found["stability"])
        x = np.arange(len(layers))
        for offset, (kind, color) in zip((-0.2, 0.2), (("nodes", "tab:red"), ("filters", "tab:gray"))):
            stats = [found["stability"][layer][kind] for layer in layers]
            ax.bar(x + offset, [s["mean"] for s in stats], 0.4, yerr=[s["std"] for s in stats], color=color,
                   capsize=3, label="graph nodes" if kind == "nodes" else "raw filters")
        ax.set_xticks(x, layers)
        ax.set_ylabel("location instability")
        ax.set_title(task, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def localization_figure(summary: dict[str, Any]):
    """Per task, normalized distance against the number of annotated images, one line per method."""
    fig, axes = plt.subplots(1, len(summary), figsize=(3.6 * len(summary), 3.2), squeeze=False)
    for ax, (task, found) in zip(axes[0], summary.items()):
        shots = sorted(found["localization"], key=int)
        for method, label in METHODS.items():
            stats = [found["localization"][s][method] for s in shots]
            ax.errorbar([int(s) for s in shots], [s["mean"] for s in stats], [s["std"] for s in stats],
                        marker="o", capsize=3, label=label)
        ax.set_xticks([int(s) for s in shots])
        ax.set_xlabel("annotated images per part")
        ax.set_ylabel("normalized distance")
        ax.set_title(task, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- summaries ---------------------------------------------------------------------------------------------------


def _stat(values: list[float]) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return {"mean": float(finite.mean()) if len(finite) else float("nan"),
            "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0, "n": int(len(finite))}


def summarize(results: dict[str, Any], config: ExplanatoryGraphConfig) -> dict[str, Any]:
    """Per task: each layer's instabilities and each method's distance per shots, as mean and std over seeds."""
    summary = {}
    for task, found in results.items():
        seeds = [found[f"seed{s}"] for s in config.seeds if "localization" in found.get(f"seed{s}", {})]
        if not seeds:
            continue
        stability = {layer: {kind: _stat([s["layers"][layer][kind] for s in seeds]) for kind in ("nodes", "filters")}
                     | {"count": seeds[0]["layers"][layer]["count"]} for layer in seeds[0]["layers"]}
        localization = {shots: {method: _stat([s["localization"][shots][method] for s in seeds]) for method in METHODS}
                        for shots in seeds[0]["localization"]}
        summary[task] = {"seeds": len(seeds), "stability": stability, "localization": localization}
    return summary


def _pm(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def table(summary: dict[str, Any]) -> str:
    """Markdown: node against filter instability per task and layer; distance per task, shots and method."""
    stability = [[task, layer, _pm(s["nodes"]), _pm(s["filters"]), str(s["count"])]
                 for task, found in summary.items() for layer, s in found["stability"].items()]
    localization = [[task, shots, *(_pm(s[m]) for m in METHODS)]
                    for task, found in summary.items() for shots, s in found["localization"].items()]
    seeds = ", ".join(f"{task}: {found['seeds']}" for task, found in summary.items())
    return ("Location instability of the best graph nodes and as many of the best raw filters (lower is more "
            f"stable); mean ± std over seeds ({seeds}).\n\n"
            + common.markdown_table(["task", "layer", "node instability", "filter instability", "count"], stability,
                                    text_columns=2)
            + "\nFew-shot part localization on the test images, normalized distance (lower is better); mean ± std "
              "over seeds.\n\n"
            + common.markdown_table(["task", "shots", *METHODS.values()], localization, text_columns=2)
            + f"\n{PUBLISHED}\n")


def write_outputs(workdir: pathlib.Path, results: dict[str, Any], config: ExplanatoryGraphConfig) -> dict[str, Any]:
    """table.md, summary.json, stability.png and localization.png from every stored result; returns the summary."""
    summary = summarize(results, config)
    (workdir / "table.md").write_text(table(summary))
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _save(stability_figure(summary), workdir / "stability.png")
    _save(localization_figure(summary), workdir / "localization.png")
    return summary


# --- the command -------------------------------------------------------------------------------------------------


def tasks_of(args: argparse.Namespace, run_config: TrainConfig, config: ExplanatoryGraphConfig) -> list[Task]:
    synthparts = synthparts_task(run_config, config)
    tasks = [synthparts]
    if args.cub:
        tasks.append(cub_task(args.cub, run_config.image_size, config, synthparts.negatives))
    if args.voc_part:
        tasks += voc_part_tasks(args.voc_part, run_config.image_size, config)
    return tasks


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.trained_run_arguments(parser, workdir="runs/explanatory_graph")
    parser.add_argument("--cub", help="a CUB_200_2011 folder: add the cub task")
    parser.add_argument("--voc-part", help="a VOC2010 folder with Annotations_Part: add a task per voc_categories")
    common.config_arguments(parser, default="explanatory_graph")
    args = parser.parse_args(argv)
    config = common.config_from(args, ExplanatoryGraphConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        run_dir, workdir = pathlib.Path(args.run), pathlib.Path(args.workdir)
        trained = common.trained_run(args)
        store = common.Results(workdir, {**common.run_identity(run_dir), **dataclasses.asdict(config)},
                               force_new_config=args.force_new_config)
        tasks = tasks_of(args, trained.config, config)
        with bar(len(tasks) * len(config.seeds), desc="explanatory graph: tasks", unit="seed",
                 progress=args.progress) as shown:
            for task in tasks:  # a task's data is part of its identity: another folder is another config
                check_same_config({"data": store.get((task.name, "data"), task.data)}, {"data": task.data},
                                  store.path, args.force_new_config)
                store.put((task.name, "data"), task.data)
                for seed in config.seeds:
                    run_seed(trained.model, task, seed, config, workdir, store, args.progress)
                    shown.update(1)
        summary = write_outputs(workdir, {task.name: store.get(task.name) for task in tasks}, config)
        print((workdir / "table.md").read_text())
        return {"results": store.values, "summary": summary}


if __name__ == "__main__":
    main()
