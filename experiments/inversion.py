"""Up-convolutional inversion (Dosovitskiy & Brox, CVPR 2016) of every SmallCNN layer, trained vs random init.

    python -m experiments.inversion --run runs/demo --workdir runs/inversion [--set steps=200]

Reads the trained run (`make demo` writes runs/demo). For each layer, trains a
decoder from the layer's features back to the image on a pool of SynthParts
images the classifier never saw (indices from 100,000), in shuffled epochs
(`train_inverter`'s stream), for the trained network and for
the same network at random initialization (`experiments.common.random_init`),
and scores held-out images: the per-image mean squared pixel error against the
mean-image baseline. Writes results.json, results.md and reconstructions.png
(held-out images and their reconstruction from each layer of the trained
network) to the workdir; a rerun skips the layers results.json holds.
"""

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.configs import InversionConfig
from interp import featviz as fv
from interp import nets, viz
from interp import train as trainlib
from interp.data import SynthParts, in_memory

LAYERS = ("relu1", "pool1", "relu2", "pool2", "relu3", "relu4", "gap")
DECODER_POOL = 100_000  # first index of the decoders' training images, far from the classifier's


def study(models: dict[str, nets.Model], data: SynthParts, held_out: SynthParts, config: InversionConfig,
          store: common.Results, draw: bool, progress: bool | None = None) -> dict:
    """Per network and layer not yet in `store`: held-out error (mean and standard error).

    Returns the inverters trained for the trained network's layers; with `draw`, for all of them (the figure's).
    """
    pool = data.batch(DECODER_POOL + jnp.arange(config.pool_size, dtype=jnp.int32))["image"]
    test = held_out.batch(jnp.arange(config.test_size, dtype=jnp.int32))["image"]

    def baseline():
        errors = np.asarray(fv.mean_image_error(pool, test))
        return {"error": float(errors.mean()), "sem": float(errors.std() / np.sqrt(config.test_size))}

    store.get_or_compute("mean_image", baseline)
    inverters = {}
    for kind, model in models.items():
        for layer in LAYERS:
            needed = draw and kind == "trained"
            if f"{kind}/{layer}" in store and not needed:
                continue
            start = time.perf_counter()
            inverter, losses = fv.train_inverter(
                model, layer, in_memory(pool), key=jax.random.key(0), steps=config.steps, batch_size=config.batch_size,
                progress=progress,
            )
            inverters[kind, layer] = inverter
            if f"{kind}/{layer}" in store:
                continue
            errors = np.asarray(fv.reconstruction_error(inverter, model, test))
            store.put(f"{kind}/{layer}", {
                "error": float(errors.mean()),
                "sem": float(errors.std() / np.sqrt(config.test_size)),
                "final_train_loss": float(np.mean(losses[-50:])),
                "seconds": round(time.perf_counter() - start, 1),
            })
            print(f"{kind:11s} {layer:6s} held-out mse {errors.mean():.5f}", flush=True)
    return inverters


def table(results: dict) -> str:
    """Markdown: one row per layer, trained and random-init error beside the mean-image baseline."""
    base = results["mean_image"]["error"]
    rows = []
    for layer in LAYERS:
        trained, random_init = results[f"trained/{layer}"], results.get(f"random_init/{layer}")
        other = f"{random_init['error']:.4f}" if random_init else "-"
        rows.append([layer, f"{trained['error']:.4f} ± {trained['sem']:.4f}", other, f"{trained['error'] / base:.2f}"])
    return f"Mean-image baseline: {base:.4f}\n\n" + common.markdown_table(
        ["layer", "error, trained", "error, random init", "trained / mean image"], rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo", help="a training run's workdir")
    parser.add_argument("--workdir", default="runs/inversion")
    common.config_arguments(parser, default="inversion")
    args = parser.parse_args(argv)
    config = common.config_from(args, InversionConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        workdir = pathlib.Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)

        run = common.restore(args.run)
        models = {"trained": run.model}
        if config.random_init:
            models["random_init"] = run.random_init
        data, held_out = common.run_streams(run.config)

        store = common.Results(workdir, {**common.run_identity(args.run), **vars(config)},
                               force_new_config=args.force_new_config)
        figure = workdir / "reconstructions.png"
        inverters = study(models, data, held_out, config, store, draw=not figure.exists(), progress=args.progress)
        results = store.values
        (workdir / "results.md").write_text(table(results))
        if not figure.exists():
            images = held_out.batch(jnp.arange(6, dtype=jnp.int32))["image"]
            reconstructions = {layer: np.asarray(inverters["trained", layer](run.model, images)) for layer in LAYERS}
            viz.reconstruction_grid(np.asarray(images), reconstructions).savefig(figure, dpi=110)
        print(table(results))
        return results


if __name__ == "__main__":
    main()
