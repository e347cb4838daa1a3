"""Network Dissection of a trained SmallCNN against the same network at random initialization.

    python -m experiments.dissect --run runs/demo --workdir runs/dissect [--set layers=relu3,relu4]

Reads the trained run (`make demo` writes runs/demo; a missing run is trained
first, with `--train-config` and `--train-set`), dissects its layers on held-out SynthParts
images (a seed the network never saw) and does the same for the architecture
at random initialization (`experiments.common.random_init`), as Bau et al.
(2017, Sec. 4.2) compare. Writes to the workdir, per model (trained/, random/):
<layer>.csv in NetDissect's tally format and report/ (HTML pages, open
report/index.html); and for both: summary.json, table.md (detectors and unique
concepts per layer and category) and detectors.png (the paper's bar chart). A
rerun skips a model whose summary results.json holds.
"""

import argparse
import json
import pathlib
import time

from experiments import common
from experiments.configs import DissectConfig
from interp import dissect, nets, viz
from interp import train as trainlib


def table(summaries: dict) -> str:
    """Markdown: detectors (unique concepts) per layer and category, one row per model and layer."""
    first = next(iter(summaries.values()))["layers"]
    categories = list(next(iter(first.values()))["by_category"])
    rows = [[name, layer, str(s["units"]), str(s["detectors"]), str(s["unique_concepts"]),
             *(f"{s['by_category'][c]['detectors']} ({s['by_category'][c]['unique_concepts']})" for c in categories)]
            for name, summary in summaries.items() for layer, s in summary["layers"].items()]
    return common.markdown_table(["model", "layer", "units", "detectors", "unique", *categories], rows,
                                 text_columns=2)


def run(models: dict[str, nets.Model], data, workdir: pathlib.Path, layers, store: common.Results, *,
        progress: bool | None = None, **options) -> dict:
    """Dissects each model not yet in `store` and writes its CSVs and report; returns `{model: summary}`.

    `options` are `dissect.dissect`'s; `progress` shows the bars of the dissection and the report.
    """
    summaries = {}
    for name, model in models.items():
        if name in store:
            summaries[name] = store.get(name)
            continue
        out = workdir / name
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        dissections = dissect.dissect(model, data, list(layers), progress=progress, **options)
        seconds = time.perf_counter() - start
        for layer, result in dissections.items():
            dissect.write_csv(result, out / f"{layer}.csv")
        dissect.write_report(dissections, model, data, out / "report", progress=progress)
        summaries[name] = store.put(name, dissect.summary(dissections) | {"seconds": round(seconds, 1)})
    return summaries


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.trained_run_arguments(parser, workdir="runs/dissect")
    common.config_arguments(parser, default="dissect")
    args = parser.parse_args(argv)
    config = common.config_from(args, DissectConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        run_dir, workdir = pathlib.Path(args.run), pathlib.Path(args.workdir)
        trained = common.trained_run(args)
        models = {"trained": trained.model, "random": trained.random_init}
        data = dissect.SynthPartsConcepts(common.held_out(trained.config), num_examples=config.images)

        store = common.Results(workdir, {**common.run_identity(run_dir), **vars(config)},
                               force_new_config=args.force_new_config)
        summaries = run(models, data, workdir, config.layers, store, convention=config.convention,
                        upsampling=config.upsampling, batch_size=config.batch_size, progress=args.progress)
        (workdir / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
        (workdir / "table.md").write_text(table(summaries))
        viz.dissection_figure(summaries).savefig(workdir / "detectors.png", dpi=120)
        print(table(summaries))
        return summaries


if __name__ == "__main__":
    main()
