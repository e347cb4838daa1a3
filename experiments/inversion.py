"""Up-convolutional inversion (Dosovitskiy & Brox, CVPR 2016) of every SmallCNN layer, trained vs random init.

    python -m experiments.inversion --run runs/demo --workdir runs/inversion

Reads the trained run (`make demo` writes runs/demo). For each layer, trains a
decoder from the layer's features back to the image on a pool of SynthParts
images the classifier never saw (indices from 100,000), in shuffled epochs
(`train_inverter`'s stream), for the trained network and for
the same network at random initialization, and scores held-out images: the
per-image mean squared pixel error against the mean-image baseline. Writes
results.json, results.md and reconstructions.png (held-out images and their
reconstruction from each layer of the trained network) to the workdir.
"""

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import train as train_experiment
from interp import featviz as fv
from interp import nets, viz
from interp.data import SynthParts, in_memory

LAYERS = ("relu1", "pool1", "relu2", "pool2", "relu3", "relu4", "gap")
DECODER_POOL = 100_000  # first index of the decoders' training images, far from the classifier's


def study(models: dict[str, nets.Model], data: SynthParts, held_out: SynthParts, steps: int, batch_size: int,
          pool_size: int = 2048, test_size: int = 256) -> tuple[dict, dict]:
    """Per network and layer: held-out error (mean and standard error) and the trained inverters."""
    pool = data.batch(DECODER_POOL + jnp.arange(pool_size, dtype=jnp.int32))["image"]
    test = held_out.batch(jnp.arange(test_size, dtype=jnp.int32))["image"]

    baseline = np.asarray(fv.mean_image_error(pool, test))
    results = {"mean_image": {"error": float(baseline.mean()), "sem": float(baseline.std() / np.sqrt(test_size))}}
    inverters = {}
    for kind, model in models.items():
        for layer in LAYERS:
            start = time.perf_counter()
            inverter, losses = fv.train_inverter(
                model, layer, in_memory(pool), key=jax.random.key(0), steps=steps, batch_size=batch_size
            )
            errors = np.asarray(fv.reconstruction_error(inverter, model, test))
            results[f"{kind}/{layer}"] = {
                "error": float(errors.mean()),
                "sem": float(errors.std() / np.sqrt(test_size)),
                "final_train_loss": float(np.mean(losses[-50:])),
                "seconds": round(time.perf_counter() - start, 1),
            }
            inverters[kind, layer] = inverter
            print(f"{kind:11s} {layer:6s} held-out mse {errors.mean():.5f}", flush=True)
    return results, inverters


def table(results: dict) -> str:
    """Markdown: one row per layer, trained and random-init error beside the mean-image baseline."""
    base = results["mean_image"]["error"]
    lines = [
        f"Mean-image baseline: {base:.4f}",
        "",
        "| layer | error, trained | error, random init | trained / mean image |",
        "|---|---:|---:|---:|",
    ]
    for layer in LAYERS:
        trained, random_init = results[f"trained/{layer}"], results.get(f"random_init/{layer}")
        other = f"{random_init['error']:.4f}" if random_init else "-"
        lines.append(f"| {layer} | {trained['error']:.4f} ± {trained['sem']:.4f} | {other} | {trained['error'] / base:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo", help="a training run's workdir")
    parser.add_argument("--workdir", default="runs/inversion")
    parser.add_argument("--steps", type=int, default=1000, help="decoder training steps per layer")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-random-init", action="store_true", help="skip the random-init network")
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    config, module, variables = train_experiment.restore(args.run)
    sample = jnp.zeros((1, config.image_size, config.image_size, 3))
    models = {"trained": nets.from_linen(module, variables)}
    if not args.no_random_init:
        models["random_init"] = nets.from_linen(module, module.init(jax.random.key(config.seed + 5), sample))
    data = SynthParts(seed=config.seed, image_size=config.image_size, num_classes=config.num_classes)
    held_out = SynthParts(seed=config.seed + 1, image_size=config.image_size, num_classes=config.num_classes)

    results, inverters = study(models, data, held_out, args.steps, args.batch_size)
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (workdir / "results.md").write_text(table(results))
    images = held_out.batch(jnp.arange(6, dtype=jnp.int32))["image"]
    reconstructions = {layer: np.asarray(inverters["trained", layer](models["trained"], images)) for layer in LAYERS}
    viz.reconstruction_grid(np.asarray(images), reconstructions).savefig(workdir / "reconstructions.png", dpi=110)
    print(table(results))
    return results


if __name__ == "__main__":
    main()
