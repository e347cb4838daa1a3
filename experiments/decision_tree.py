"""Decision trees of decision modes (Zhang et al., CVPR 2019) on trained SynthParts networks, with part contributions.

    python -m experiments.decision_tree --run runs/demo --workdir runs/decision_tree [--icnn runs/icnn] \\
        [--set field=value ...]

Networks (each explained at one layer, with its filters labelled by a Network
Dissection on held-out images, `explain.part_matrix`):

- demo: the trained run (`make demo` writes runs/demo; a missing run is
  trained first) at `layer` (relu3), on `images` held-out whole scenes,
  labelled against SynthParts' part, color, texture, object and scene masks;
- icnn_seed<k>/interpretable and icnn_seed<k>/ordinary: `experiments.icnn`'s
  released interpretable SmallCNN of the multi-category task on object crops
  and its ordinary twin, per seed in `icnn_seeds`, at `icnn_layer`, on the
  task's held-out crops, labelled against part masks. They are read from
  (or trained into) `--icnn` (default <workdir>/icnn); pointing it at a
  finished `experiments.icnn` run with the same settings reuses its networks.

For each network and class, the tree is grown from the class's images among
the first half of the images (the positive training images; the score is the
class's margin, positive exactly when the network predicts the class); the
second half's images of the class are explained by their paths. Measured per
depth (0 = root, then the leaves): the share of images whose predicted margin
has the network's sign ("agreement"; on the training images by their own
leaves' ancestors, on the test images by their cosine paths), and the mean
relative L1 error of the node's rationale `|g| w_v * x` against the exact
filter contributions. Per class, on the test images: the positive evidence's
shares by concept category (`explain.evidence_shares`), and of the evidence
on part filters the share on the class's own parts (the parts its layout is
built from) beside the share of part filters that stand for them (what a
credit blind to the class would give).

Writes to the workdir: results.json (a rerun skips what it holds), trees/
(every tree, `.npz`), parts/ (each network's filter labels, which a rerun
reads), summary.json, table.md, depth.png, shares.png, and from the demo's
first class with a tree, tree.png and rationale.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
from typing import Any

import jax.numpy as jnp
import numpy as np

from experiments import common, icnn_tasks
from experiments import icnn as icnn_experiment
from experiments.configs import DecisionTreeConfig, IcnnConfig
from interp import dissect, explain, files, nets, viz
from interp import train as trainlib
from interp._progress import bar
from interp.explain.graph import fingerprint
from interp.viz.figures import plt

KINDS = ("demo", "interpretable", "ordinary")


@dataclasses.dataclass(frozen=True)
class Subject:
    """A network, the layer it is explained at, its images (first half trees, second half tests) and part labels."""

    name: str
    kind: str
    model: nets.Model
    layer: str
    images: np.ndarray
    labels: np.ndarray
    parts: explain.PartMatrix
    class_names: tuple[str, ...]
    class_parts: tuple[tuple[str, ...], ...]

    @property
    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        half = len(self.labels) // 2
        return np.arange(half), np.arange(half, len(self.labels))


def icnn_config(config: DecisionTreeConfig) -> IcnnConfig:
    """The `experiments.icnn` settings whose multi-category networks are explained."""
    return IcnnConfig(seeds=config.icnn_seeds or (0,), framings=("crop",), single_classes=(), strength_factors=(),
                      pretrain_steps=config.icnn_pretrain_steps, train_images=config.icnn_train_images,
                      epochs=config.icnn_epochs, batch_size=config.icnn_batch_size, fc_width=config.icnn_fc_width,
                      eval_images=config.icnn_eval_images)


def check_icnn_dir(icnn_dir: pathlib.Path, settings: IcnnConfig) -> None:
    """Refuses an `experiments.icnn` run whose networks were trained with other settings than `settings`."""
    stored = icnn_dir / "results.json"
    if not stored.exists():
        return
    theirs = json.loads(stored.read_text())["config"]
    fields = ("model", "image_size", "top_resolution", "pretrain_steps", "pretrain_learning_rate", "train_images",
              "epochs", "batch_size", "learning_rate", "dropout", "fc_width", "strength")
    ours = dataclasses.asdict(settings)
    differ = [f for f in fields if theirs.get(f) != ours[f]]
    if differ:
        raise ValueError(f"--icnn: {icnn_dir} holds networks trained with other settings ({', '.join(differ)}: "
                         f"{[theirs.get(f) for f in differ]} there, {[ours[f] for f in differ]} here); "
                         "set the icnn_* fields to match, or pass another --icnn")


def batch_of(source: Any, count: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in source.batch(jnp.arange(count)).items()}


def labelled_filters(path: pathlib.Path, model: nets.Model, layer: str, concepts: Any, batch_size: int,
                     progress: bool | None) -> explain.PartMatrix:
    """The layer's filter->concept matrix from a dissection, read from `path` when it was made there for this model."""
    identity = {"fingerprint": fingerprint(model.params), "layer": layer, "images": len(concepts)}
    if path.exists():
        stored = files.load_arrays(path)
        if json.loads(str(stored["identity"])) == identity:
            meta = json.loads(str(stored["meta"]))
            return explain.PartMatrix(stored["matrix"], tuple(meta["names"]), tuple(meta["categories"]))
    found = dissect.dissect(model, concepts, [layer], batch_size=batch_size, progress=progress)
    parts = explain.part_matrix(found[layer])
    path.parent.mkdir(parents=True, exist_ok=True)
    files.save_arrays(path, {"identity": np.array(json.dumps(identity)), "matrix": np.asarray(parts.matrix),
                             "meta": np.array(json.dumps({"names": parts.names, "categories": parts.categories}))})
    return parts


def demo_subject(trained: common.Run, config: DecisionTreeConfig, workdir: pathlib.Path,
                 progress: bool | None) -> Subject:
    held = common.held_out(trained.config)
    batch = batch_of(held, config.images)
    concepts = dissect.SynthPartsConcepts(held, num_examples=config.dissect_images)
    parts = labelled_filters(workdir / "parts" / "demo.npz", trained.model, config.layer, concepts,
                             config.batch_size, progress)
    return Subject("demo", "demo", trained.model, config.layer, batch["image"], batch["label"], parts,
                   held.class_names, held.class_parts())


def icnn_subjects(config: DecisionTreeConfig, icnn_dir: pathlib.Path, workdir: pathlib.Path,
                  progress: bool | None) -> list[Subject]:
    settings = icnn_config(config)
    check_icnn_dir(icnn_dir, settings)
    subjects = []
    for seed in config.icnn_seeds:
        task = icnn_tasks.synthparts_tasks(settings, seed)[0]  # multi-category, object crops
        pretrained = icnn_experiment.pretrain(settings, seed, icnn_dir / f"seed{seed}" / "pretrained", "synthparts",
                                              "", progress)
        batch = batch_of(task.eval, len(task.eval))
        stream = common.synthparts_streams(seed, settings.image_size)[0]
        for name, masked in (("interpretable", True), ("ordinary", False)):
            run = icnn_dir / f"seed{seed}" / task.name / task.framing / name
            model = icnn_experiment.finetune(task, icnn_experiment.Net(name, masked), pretrained, seed, run, settings,
                                             progress)
            concepts = dissect.PartMaskConcepts(task.eval, task.part_names)
            parts = labelled_filters(workdir / "parts" / f"icnn_seed{seed}_{name}.npz", model, config.icnn_layer,
                                     concepts, config.batch_size, progress)
            subjects.append(Subject(f"icnn_seed{seed}/{name}", name, model, config.icnn_layer, batch["image"],
                                    batch["label"], parts, stream.class_names, stream.class_parts()))
    return subjects


def tree_of(subject: Subject, target: int, config: DecisionTreeConfig, path: pathlib.Path,
            progress: bool | None) -> explain.DecisionTree:
    """The class's tree, read from `path` when it was grown there for this network, else grown and saved."""
    if path.exists():
        tree = explain.DecisionTree.load(path)
        if (tree.fingerprint, tree.complexity, tree.lasso) == (
                fingerprint(subject.model.params), config.complexity, config.lasso):
            return tree
    train, _ = subject.halves
    tree = explain.decision_tree(subject.model, subject.layer, subject.images[train], target,
                                 labels=subject.labels[train], complexity=config.complexity, lasso=config.lasso,
                                 batch_size=config.batch_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.save(path)
    return tree


def by_depth(values: Any, depths: int) -> list[float]:
    """Values per depth [L] cut to depths 0 .. depths-1 (past a tree's depth, its leaves'), then the leaves'."""
    values = np.asarray(values, np.float64)
    return [float(values[min(d, len(values) - 1)]) for d in range(depths)] + [float(values[-1])]


def own_part_shares(split: explain.Contributions, subject: Subject, target: int) -> tuple[float, float]:
    """Of the positive evidence on part filters, the share on the class's own parts; and a blind credit's share."""
    rows = [i for i, name in enumerate(subject.parts.names) if name.startswith("part/")]
    own = np.array([subject.parts.names[i].split("/", 1)[1] in subject.class_parts[target] for i in rows], bool)
    if not rows or not own.any():
        return float("nan"), float("nan")
    matrix = np.asarray(subject.parts.matrix)[rows]
    evidence = np.maximum(np.asarray(split.filters), 0.0) @ matrix.T  # [b, part rows]
    total = evidence.sum(1)
    on_parts = total > 0
    share = float((evidence[on_parts][:, own].sum(1) / total[on_parts]).mean()) if on_parts.any() else float("nan")
    filters = matrix.sum(1)
    return share, float(filters[own].sum() / filters.sum())


def measure_class(subject: Subject, target: int, config: DecisionTreeConfig, workdir: pathlib.Path,
                  progress: bool | None) -> dict[str, Any]:
    train, test = subject.halves
    positives = {"train": train[subject.labels[train] == target], "test": test[subject.labels[test] == target]}
    result: dict[str, Any] = {"images": {k: int(len(v)) for k, v in positives.items()}}
    if not (len(positives["train"]) and len(positives["test"])):
        return result | {"skipped": "no image of the class in one of the halves"}
    tree = tree_of(subject, target, config, workdir / "trees" / subject.name / f"class{target}.npz", progress)
    exact = explain.contributions(subject.model, subject.layer, subject.images[positives["train"]], target,
                                  scale=tree.scale, score=tree.score, batch_size=config.batch_size)
    found = {"train": explain.explanation_along(tree, exact, tree.training_paths()),
             "test": explain.explain_predictions(tree, subject.model, subject.images[positives["test"]],
                                                 batch_size=config.batch_size)}
    result |= {"nodes": tree.num_nodes, "root_children": int(len(tree.children(0))), "depth": int(tree.depth.max())}
    for split, explained in found.items():
        result[split] = {"agreement": by_depth(explained.agreement(), config.depths),
                         "rationale_error": by_depth(explained.rationale_error(), config.depths),
                         "network_says_class": float((np.asarray(explained.exact.score) > 0).mean())}
    test_split = found["test"].exact
    shares = explain.evidence_shares(test_split, subject.parts)
    result["shares"] = {k: float(np.mean(v)) for k, v in shares.items()}
    result["own_part_share"], result["own_part_chance"] = own_part_shares(test_split, subject, target)
    return result


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per kind (demo, interpretable, ordinary): class means per network, then mean and std over networks."""
    summary: dict[str, Any] = {}
    for kind in KINDS:
        networks = [v for name, v in results.items() if (name == "demo") == (kind == "demo")
                    and (kind == "demo" or name.endswith("/" + kind)) and v.get("classes")]
        if not networks:
            continue
        per_network = [_class_mean(net["classes"]) for net in networks]
        summary[kind] = {"networks": len(per_network),
                         **{key: _spread([p[key] for p in per_network]) for key in per_network[0]}}
    return summary


def _class_mean(classes: dict[str, Any]) -> dict[str, Any]:
    rows = [row for row in classes.values() if "skipped" not in row]
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        for metric in ("agreement", "rationale_error"):
            out[f"{split}_{metric}"] = common.spread([r[split][metric] for r in rows])["mean"]
    for key in ("own_part_share", "own_part_chance"):
        out[key] = common.spread([r[key] for r in rows])["mean"]
    categories = sorted({c for r in rows for c in r["shares"]})
    out["shares"] = {c: float(np.mean([r["shares"].get(c, 0.0) for r in rows])) for c in categories}
    out["nodes"] = float(np.mean([r["nodes"] for r in rows]))
    out["root_children"] = float(np.mean([r["root_children"] for r in rows]))
    return out


def _spread(values: list[Any]) -> dict[str, Any]:
    """`common.spread` over networks, entry by entry for dicts of values."""
    if isinstance(values[0], dict):
        return {k: _spread([v[k] for v in values]) for k in values[0]}
    return common.spread(values)


def _pm(stat: dict[str, Any], index: int | None = None, digits: int = 3) -> str:
    mean, std = (stat["mean"], stat["std"]) if index is None else (stat["mean"][index], stat["std"][index])
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(summary: dict[str, Any], depths: int) -> str:
    columns = [f"depth {d}" for d in range(depths)] + ["leaves"]
    rows = []
    for kind, stats in summary.items():
        for split in ("train", "test"):
            for metric in ("agreement", "rationale_error"):
                stat = stats[f"{split}_{metric}"]
                rows.append([f"{kind} ({stats['networks']}): {split} {metric.replace('_', ' ')}",
                             *[_pm(stat, i) for i in range(len(columns))]])
    by_depth_table = common.markdown_table(["network: images measure", *columns], rows)
    categories = sorted({c for stats in summary.values() for c in stats["shares"]})
    share_rows = [[kind, *[_pm(stats["shares"][c]) if c in stats["shares"] else "-" for c in categories],
                   _pm(stats["own_part_share"]), _pm(stats["own_part_chance"]), f"{stats['nodes']['mean']:.0f}",
                   f"{stats['root_children']['mean']:.1f}"] for kind, stats in summary.items()]
    shares_table = common.markdown_table(
        ["network", *[f"evidence: {c}" for c in categories], "own parts", "own parts (blind credit)", "nodes",
         "root children"], share_rows)
    return ("Agreement: the share of a class's images whose margin, predicted by the mode of the node at that "
            "depth, has the network's sign; rationale error: relative L1 error of the node's filter "
            "contributions (mean over classes, then mean ± std over networks).\n\n" + by_depth_table
            + "\n\nOn the test images: the positive evidence by the category of the concept its filter stands for; "
              "of the evidence on part filters, the share on the class's own parts.\n\n" + shares_table + "\n")


def class_table(results: dict[str, Any]) -> str:
    """Per class and kind of network: the evidence on parts, and of it the share on the class's own parts."""
    rows = []
    for kind in KINDS:
        networks = [v for name, v in results.items() if name == kind or name.endswith("/" + kind)]
        classes = list(dict.fromkeys(c for net in networks for c in net.get("classes", {})))
        for cls in classes:
            found = [net["classes"][cls] for net in networks
                     if "skipped" not in net["classes"].get(cls, {"skipped": True})]
            if not found:
                continue
            cells = [common.spread([r[key] for r in found])["mean"] for key in ("own_part_share", "own_part_chance")]
            part = np.mean([r["shares"].get("part", 0.0) for r in found])
            rows.append([kind, cls, f"{part:.3f}", *[f"{float(c):.3f}" for c in cells]])
    return common.markdown_table(["network", "class", "evidence on part filters", "of it on the class's own parts",
                                  "blind credit"], rows, text_columns=2)


def depth_figure(summary: dict[str, Any], depths: int):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    ticks = list(range(depths)) + [depths + 0.5]
    for kind, stats in summary.items():
        for split, style in (("train", "-"), ("test", "--")):
            for ax, metric in zip(axes, ("agreement", "rationale_error")):
                stat = stats[f"{split}_{metric}"]
                ax.errorbar(ticks, stat["mean"], yerr=stat["std"], linestyle=style, marker="o", markersize=3,
                            label=f"{kind} {split}")
    for ax, name in zip(axes, ("agreement with the network's decision", "rationale error (relative L1)")):
        ax.set_xticks(ticks, [str(d) for d in range(depths)] + ["leaves"])
        ax.set_xlabel("tree depth")
        ax.set_title(name, fontsize=9)
    axes[0].legend(fontsize=7)
    return fig


def shares_figure(summary: dict[str, Any]):
    categories = sorted({c for stats in summary.values() for c in stats["shares"]})
    fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
    left = np.zeros(len(summary))
    for category in categories:
        widths = [stats["shares"].get(category, {"mean": 0.0})["mean"] for stats in summary.values()]
        ax.barh(list(summary), widths, left=left, label=category)
        left += widths
    ax.set_xlabel("share of the positive evidence (test images)")
    ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def node_texts(tree: explain.DecisionTree, subject: Subject, features: np.ndarray) -> list[str]:
    """Per node: its images and its two leading parts by mean contribution `A (w_v * x)` over its images."""
    leaf_image = np.asarray(tree.leaf_image)
    members = [[] for _ in range(tree.num_nodes)]
    for leaf in np.flatnonzero(leaf_image >= 0):
        for node in tree.ancestors(leaf):
            members[node].append(int(leaf_image[leaf]))
    matrix = np.asarray(subject.parts.matrix)
    texts = []
    for node in range(tree.num_nodes):
        contribution = matrix @ (tree.weights[node] * features[members[node]].mean(0))
        lead = np.argsort(-contribution)[:2]
        total = max(np.abs(contribution).sum(), 1e-12)
        names = [f"{subject.parts.names[p].split('/')[-1]} {contribution[p] / total:.0%}" for p in lead
                 if contribution[p] > 0]
        texts.append(f"node {node} · {len(members[node])} images\n" + "\n".join(names))
    return texts


def demo_figures(subject: Subject, config: DecisionTreeConfig, workdir: pathlib.Path) -> None:
    trees = [workdir / "trees" / subject.name / f"class{t}.npz" for t in range(len(subject.class_names))]
    grown = [t for t, path in enumerate(trees) if path.exists()]
    if not grown:
        return
    target = grown[0]
    tree = explain.DecisionTree.load(trees[target])
    train, test = subject.halves
    positives = train[subject.labels[train] == target]
    exact = explain.contributions(subject.model, subject.layer, subject.images[positives], target, scale=tree.scale,
                                  score=tree.score, batch_size=config.batch_size)
    fig = viz.tree_levels(np.asarray(tree.parent), node_texts(tree, subject, np.asarray(exact.features)),
                          np.asarray(tree.size), depth=2,
                          title=f"{subject.class_names[target]}: the tree's top levels (demo, {subject.layer})")
    fig.savefig(workdir / "tree.png", dpi=110)
    plt.close(fig)
    image_index = test[subject.labels[test] == target][0]
    image = subject.images[image_index:image_index + 1]
    found = explain.explain_predictions(tree, subject.model, image)
    per_part = np.asarray(found.exact.parts(subject.parts))[0]
    maps = np.asarray(subject.model.activations(jnp.asarray(image), subject.layer)[subject.layer])[0]
    part_maps = [maps[..., subject.parts.filters_of(name)].sum(-1) for name in subject.parts.names]
    path = " > ".join(str(n) for n in dict.fromkeys(np.asarray(found.path)[0].tolist()))
    fig = viz.rationale(image[0], subject.parts.names, per_part, part_maps, path=f"path: {path}",
                        title=f"{subject.class_names[target]}: margin {float(found.exact.score[0]):.2f}, "
                              f"its part contributions (exact)")
    fig.savefig(workdir / "rationale.png", dpi=110)
    plt.close(fig)


def write_outputs(workdir: pathlib.Path, results: dict[str, Any], config: DecisionTreeConfig) -> dict[str, Any]:
    summary = summarize(results)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    (workdir / "table.md").write_text(table(summary, config.depths) + "\nPer class (mean over networks):\n\n"
                                      + class_table(results) + "\n")
    for name, fig in (("depth", depth_figure(summary, config.depths)), ("shares", shares_figure(summary))):
        fig.savefig(workdir / f"{name}.png", dpi=110)
        plt.close(fig)
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.trained_run_arguments(parser, workdir="runs/decision_tree")
    parser.add_argument("--icnn", help="where the interpretable networks are read from or trained (default "
                                       "<workdir>/icnn); a finished experiments.icnn run with the same settings")
    common.config_arguments(parser, default="decision_tree")
    args = parser.parse_args(argv)
    config = common.config_from(args, DecisionTreeConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        workdir = pathlib.Path(args.workdir)
        trained = common.trained_run(args)
        store = common.Results(workdir, {**common.run_identity(pathlib.Path(args.run)), **dataclasses.asdict(config)},
                               force_new_config=args.force_new_config)
        icnn_dir = pathlib.Path(args.icnn) if args.icnn else workdir / "icnn"
        subjects = [demo_subject(trained, config, workdir, args.progress)] + icnn_subjects(config, icnn_dir, workdir,
                                                                                          args.progress)
        classes = len(subjects[0].class_names)
        with bar(len(subjects) * classes, desc="decision trees", unit="tree", progress=args.progress) as shown:
            for subject in subjects:
                store.put((subject.name, "parts"), list(subject.parts.names))
                for target in range(classes):
                    key = (subject.name, "classes", subject.class_names[target])
                    if key not in store:
                        store.put(key, measure_class(subject, target, config, workdir, args.progress))
                    shown.update(1)
        demo_figures(subjects[0], config, workdir)
        summary = write_outputs(workdir, store.values, config)
        print((workdir / "table.md").read_text())
        return {"results": store.values, "summary": summary}


if __name__ == "__main__":
    main()
