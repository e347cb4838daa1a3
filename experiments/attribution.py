"""Attribution on a trained SmallCNN: localization, faithfulness, sanity check, figure.

    python -m experiments.attribution --run runs/demo --workdir runs/attribution [--set images=64]

Reads the trained run (`make demo` writes runs/demo), and compares every method
on held-out SynthParts images against the same network at random
initialization (`experiments.common.random_init`): attribution mass inside
the object mask, pointing game, deletion/insertion AUC, and the cascading
model-randomization check. Writes results.json, results.md and
attribution_grid.png to the workdir; a rerun reuses the parts results.json holds.
"""

import argparse
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.configs import AttributionConfig
from interp import attribution as attr
from interp import metrics, nets, viz
from interp import train as trainlib
from interp._progress import bar
from interp.data import SynthParts

CAM_LAYER = "relu4"  # the layer SmallCNN's global average pool reads
# Parameter names of SmallCNN from the top down, for cascading randomization.
CASCADE = ("logits", "conv4", "conv3", "conv2", "conv1")


def methods(model: nets.Model, key: jax.Array) -> dict[str, Callable]:
    """`name -> attribute(x, target)` for every method, on `model`."""
    saliency = attr.saliency(model)
    return {
        "saliency": saliency,
        "gradient x input": attr.gradient_x_input(model),
        "integrated gradients": attr.integrated_gradients(model, steps=32, chunk_size=8),
        "SmoothGrad": lambda x, target: attr.smooth_grad(saliency, samples=16, chunk_size=8)(x, target=target, key=key),
        "Grad-CAM": attr.grad_cam(model, CAM_LAYER),
        "Grad-CAM++": attr.grad_cam_plus_plus(model, CAM_LAYER),
        "guided backprop": attr.guided_backprop(model),
        "deconvnet": attr.deconvnet(model),
        "guided Grad-CAM": attr.guided_grad_cam(model, CAM_LAYER),
        "occlusion": attr.occlusion(model, window=(8, 8), stride=(4, 4), chunk_size=64),
    }


def compute_maps(model: nets.Model, images, labels, key, batch_size: int = 64,
                 progress: bool | None = None) -> dict[str, np.ndarray]:
    """Every method's maps for all images, in jitted batches; `progress` shows a bar of the methods done."""
    maps = {}
    chosen = methods(model, key)
    with bar(len(chosen), desc="attribution maps", unit="method", progress=progress) as shown:
        for name, attribute in chosen.items():
            run = jax.jit(attribute)
            parts = [
                run(images[i : i + batch_size], target=labels[i : i + batch_size])
                for i in range(0, len(images), batch_size)
            ]
            maps[name] = np.concatenate([np.asarray(p) for p in parts])
            shown.update()
    return maps


def attribution_figure(
    model: nets.Model, data: SynthParts, count: int = 6, key: jax.Array | None = None, candidates: int = 64,
    progress: bool | None = None,
):
    """Every method's maps for the first held-out image of each class (of the first `candidates`), one row each.

    The maps explain the true class's logit, whatever the prediction; each row
    says whether the prediction is right.
    """
    batch = data.batch(jnp.arange(candidates, dtype=jnp.int32))
    rows = viz.first_of_each_class(np.asarray(batch["label"]), count)
    images, labels = batch["image"][rows], batch["label"][rows]
    maps = compute_maps(model, images, labels, jax.random.key(0) if key is None else key, progress=progress)
    return viz.attribution_grid(
        np.asarray(images), maps, np.asarray(labels), np.asarray(jax.nn.softmax(model(images))), data.class_names,
        overlay=("Grad-CAM", "Grad-CAM++", "occlusion"),
        title="Rows: the first held-out image of each class; p is the predicted class's softmax probability. "
        "Every map explains the TRUE class's logit (target = label), whether the prediction is right or wrong.",
    )


def localization(maps: dict[str, np.ndarray], object_mask) -> dict[str, dict[str, float]]:
    """Mean attribution mass inside the object, and pointing-game hit rate, per method."""
    results = {}
    for name, values in maps.items():
        values = jnp.asarray(values)
        results[name] = {
            "mass_in_object": float(metrics.mass_in_mask(values, object_mask, reduce="abs", mode="abs").mean()),
            "pointing_game": float(metrics.pointing_game(values, object_mask, tolerance=0.0, reduce="abs").mean()),
        }
    return results


def faithfulness(model: nets.Model, maps, images, labels, names) -> dict[str, dict[str, float]]:
    """Deletion and insertion AUC (softmax of the target) for `names`, and a random ranking."""
    delete = jax.jit(metrics.deletion(model, steps=16, chunk_size=8))
    insert = jax.jit(metrics.insertion(model, steps=16, chunk_size=8))
    random_map = jax.random.uniform(jax.random.key(7), images.shape[:3])
    results = {}
    for name in (*names, "random ranking"):
        values = random_map if name == "random ranking" else jnp.asarray(maps[name])
        results[name] = {
            "deletion_auc": float(delete(images, values, labels).auc.mean()),
            "insertion_auc": float(insert(images, values, labels).auc.mean()),
        }
    return results


def sanity(model: nets.Model, images, labels, key) -> dict[str, list[float]]:
    """Mean Spearman correlation (of |map|) with the original map, as layers are randomized."""
    factories = {
        "saliency": lambda m: attr.saliency(m),
        "integrated gradients": lambda m: attr.integrated_gradients(m, steps=16),
        "guided backprop": lambda m: attr.guided_backprop(m),
        "Grad-CAM": lambda m: attr.grad_cam(m, CAM_LAYER),
    }
    results = {}
    for name, factory in factories.items():
        check = metrics.model_randomization(factory, model, CASCADE, images, labels, key=key, reduce="abs")
        results[name] = [float(np.nanmean(row)) for row in np.asarray(check.spearman_abs)]
    return results


def markdown(results: dict) -> str:
    local = results["localization"]
    localized = common.markdown_table(
        ["method", "mass in object (trained)", "(random init)", "pointing game (trained)", "(random init)"],
        [[name, f"{t['mass_in_object']:.3f}", f"{local['random_init'][name]['mass_in_object']:.3f}",
          f"{t['pointing_game']:.3f}", f"{local['random_init'][name]['pointing_game']:.3f}"]
         for name, t in local["trained"].items()])
    faithful = common.markdown_table(
        ["method", "deletion AUC (lower is better)", "insertion AUC (higher is better)"],
        [[n, f"{v['deletion_auc']:.3f}", f"{v['insertion_auc']:.3f}"] for n, v in results["faithfulness"].items()])
    sane = common.markdown_table(
        ["method", *(f"after {layer}" for layer in CASCADE)],
        [[n, *(f"{v:.3f}" for v in row)] for n, row in results["sanity_spearman_abs"].items()])
    fraction = f"Object area fraction (mass of a uniform map): {results['object_fraction']:.3f}"
    return f"{localized}\n{fraction}\n\n{faithful}\n{sane}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo", help="a trained run (experiments.train_classifier / make demo)")
    parser.add_argument("--workdir", default="runs/attribution")
    common.config_arguments(parser, default="attribution")
    args = parser.parse_args(argv)
    config = common.config_from(args, AttributionConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        workdir = pathlib.Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)

        run = common.restore(args.run)
        data = common.held_out(run.config)
        batch = data.batch(jnp.arange(config.images, dtype=jnp.int32))
        images, labels, object_mask = batch["image"], batch["label"], batch["object_mask"]
        key = jax.random.key(0)
        trained, random_init = run.model, run.random_init
        store = common.Results(workdir, {**common.run_identity(args.run), **vars(config)},
                               force_new_config=args.force_new_config)
        trained_maps = {}

        def maps_of_trained():
            if not trained_maps:
                trained_maps.update(compute_maps(trained, images, labels, key, progress=args.progress))
            return trained_maps

        store.get_or_compute("images", lambda: config.images)
        store.get_or_compute("accuracy", lambda: float((trained(images).argmax(-1) == labels).mean()))
        store.get_or_compute("object_fraction", lambda: float(object_mask.mean()))
        store.get_or_compute(("localization", "trained"), lambda: localization(maps_of_trained(), object_mask))
        store.get_or_compute(("localization", "random_init"), lambda: localization(
            compute_maps(random_init, images, labels, key, progress=args.progress), object_mask))
        store.get_or_compute("faithfulness", lambda: faithfulness(
            trained, maps_of_trained(), images, labels, ("saliency", "integrated gradients", "Grad-CAM", "occlusion")))
        store.get_or_compute("sanity_spearman_abs", lambda: sanity(
            trained, images[: config.sanity_images], labels[: config.sanity_images], jax.random.key(1)))
        results = store.values
        (workdir / "results.md").write_text(markdown(results))
        if not (workdir / "attribution_grid.png").exists():
            attribution_figure(trained, data, progress=args.progress).savefig(workdir / "attribution_grid.png", dpi=110)
        print(markdown(results))
        return results


if __name__ == "__main__":
    main()
