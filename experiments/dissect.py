"""Network Dissection of a trained SmallCNN against the same network at random initialization.

    python -m experiments.dissect --run runs/demo --workdir runs/dissect

Reads the trained run (`make demo` writes runs/demo; a missing run is trained
first with the default config), dissects its layers on held-out SynthParts
images (a seed the network never saw) and does the same for the architecture
at random initialization, as Bau et al. (2017, Sec. 4.2) compare. Writes to the
workdir, per model (trained/, random/): <layer>.csv in NetDissect's tally
format and report/ (HTML pages, open report/index.html); and for both:
summary.json, table.md (detectors and unique concepts per layer and category)
and detectors.png (the paper's bar chart).
"""

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp

from experiments import train as train_experiment
from interp import dissect, nets, viz
from interp.data import SynthParts

LAYERS = ("relu1", "relu2", "relu3", "relu4")


def table(summaries: dict) -> str:
    """Markdown: detectors (unique concepts) per layer and category, one row per model and layer."""
    first = next(iter(summaries.values()))["layers"]
    categories = list(next(iter(first.values()))["by_category"])
    lines = ["| model | layer | units | detectors | unique | " + " | ".join(categories) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(categories)]
    for name, summary in summaries.items():
        for layer, s in summary["layers"].items():
            cells = [f"{s['by_category'][c]['detectors']} ({s['by_category'][c]['unique_concepts']})"
                     for c in categories]
            lines.append(f"| {name} | {layer} | {s['units']} | {s['detectors']} | {s['unique_concepts']} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(models: dict[str, nets.Model], data, workdir: pathlib.Path, layers, **options) -> dict:
    """Dissects each model and writes its CSVs and report; returns `{model: summary}`."""
    summaries = {}
    for name, model in models.items():
        out = workdir / name
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        dissections = dissect.dissect(model, data, list(layers), **options)
        seconds = time.perf_counter() - start
        for layer, result in dissections.items():
            dissect.write_csv(result, out / f"{layer}.csv")
        dissect.write_report(dissections, model, data, out / "report")
        summaries[name] = dissect.summary(dissections) | {"seconds": round(seconds, 1)}
    return summaries


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo", help="a training run's workdir")
    parser.add_argument("--workdir", default="runs/dissect")
    parser.add_argument("--images", type=int, default=1024, help="held-out images dissected")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS))
    parser.add_argument("--convention", choices=dissect.CONVENTIONS, default="category")
    parser.add_argument("--upsampling", choices=dissect.UPSAMPLING, default="receptive_field")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="training config overrides, used only when the run has to be trained")
    args = parser.parse_args(argv)
    run_dir, workdir = pathlib.Path(args.run), pathlib.Path(args.workdir)
    if not (run_dir / "config.json").exists():
        train_experiment.run(train_experiment.load_config("small_cnn_synthparts", args.set), run_dir)
    config, module, variables = train_experiment.restore(run_dir)
    sample = jnp.zeros((1, config.image_size, config.image_size, 3))
    models = {"trained": nets.from_linen(module, variables),
              "random": nets.from_linen(module, module.init(jax.random.key(config.seed + 1), sample))}
    held_out = SynthParts(seed=config.seed + 1, image_size=config.image_size, num_classes=config.num_classes)
    data = dissect.SynthPartsConcepts(held_out, num_examples=args.images)

    summaries = run(models, data, workdir, args.layers, convention=args.convention,
                    upsampling=args.upsampling, batch_size=args.batch_size)
    (workdir / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    (workdir / "table.md").write_text(table(summaries))
    viz.dissection_figure(summaries).savefig(workdir / "detectors.png", dpi=120)
    print(table(summaries))
    return summaries


if __name__ == "__main__":
    main()
