"""`make demo`: train SmallCNN on SynthParts and draw what it was trained on.

Writes to the workdir (default runs/demo): the checkpoints, metrics.jsonl,
training_curve.png, synthparts_samples.png, attribution_grid.png (every
attribution method on held-out images), featviz/ (channel visualizations with
their top dataset patches per layer, a semantic dictionary, an activation grid)
and summary.json (wall time, validation accuracy, how far rendered channels
exceed their best held-out image). Rerunning resumes from the checkpoints.
"""

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import attribution as attribution_experiment
from experiments import common, train_classifier
from experiments import featviz as featviz_experiment
from experiments.configs import FeatvizConfig, TrainConfig
from interp import train as trainlib
from interp import viz
from interp.data import SynthParts
from interp.train import read_metrics


def draw_samples(dataset: SynthParts, count: int = 8):
    batch = jax.device_get(dataset.batch(jnp.arange(count, dtype=jnp.int32)))
    return viz.part_overlay_grid(
        np.asarray(batch["image"]),
        np.asarray(batch["part_mask"]),
        np.asarray(batch["landmarks"]),
        np.asarray(batch["landmark_visible"]),
        [dataset.class_names[k] for k in batch["label"]],
        dataset.part_names,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="runs/demo")
    common.config_arguments(parser, default="small_cnn_synthparts")
    parser.add_argument("--featviz-config", default="featviz", help="the figures' FeatvizConfig (experiments/configs)")
    args = parser.parse_args(argv)
    config = common.config_from(args, TrainConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        workdir = pathlib.Path(args.workdir)

        start = time.perf_counter()
        val = train_classifier.run(config, workdir, progress=args.progress, force_new_config=args.force_new_config)
        seconds = time.perf_counter() - start

        viz.training_curve(read_metrics(workdir / "metrics.jsonl")).savefig(workdir / "training_curve.png", dpi=120)
        dataset, held_out = common.run_streams(config)
        draw_samples(dataset).savefig(workdir / "synthparts_samples.png", dpi=120)
        model = common.restore(workdir).model
        figure = attribution_experiment.attribution_figure(model, held_out, progress=args.progress)
        figure.savefig(workdir / "attribution_grid.png", dpi=110)
        featviz = featviz_experiment.run(model, held_out, workdir / "featviz",
                                         common.load_config(args.featviz_config, FeatvizConfig), run_dir=workdir,
                                         force_new_config=args.force_new_config, progress=args.progress)

        summary = {
            "val_accuracy": val["accuracy"],
            "val_loss": val["loss"],
            "steps": config.steps,
            "train_seconds_this_invocation": round(seconds, 1),
            "featviz_render_over_best_held_out_median": {
                layer: r["ratio_median"] for layer, r in featviz["layers"].items()
            },
            "devices": [str(d) for d in jax.devices()],
        }
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary))
        return summary


if __name__ == "__main__":
    main()
