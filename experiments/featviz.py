"""Feature visualization of a trained SmallCNN: channel grids with dataset patches, and how far renders go.

    python -m experiments.featviz --run runs/demo --workdir runs/featviz [--set steps=64]

Reads the trained run (`make demo` writes runs/demo). For each layer it renders
every chosen channel in one `render_each` call (pre-ReLU, as Lucid does: a
ReLU unit silent on the gray start has no gradient), finds each channel's top
held-out patches with the streaming top-k, crops them by the layer's
receptive field, and measures the rendered channel's mean activation against
its best held-out image. Also draws a semantic dictionary and an activation
grid. Writes featviz_<layer>.png, semantic_dictionary.png, activation_grid.png
and results.json to the workdir; a rerun skips the layers results.json holds.
"""

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.configs import FeatvizConfig
from interp import featviz as fv
from interp import nets, viz
from interp import train as trainlib
from interp._progress import bar
from interp.data import SynthParts, pass_indices

LAYERS = ("conv2", "conv3", "conv4")


BATCH = 128  # held-out images per step


def dataset_channel_means(model: nets.Model, layer: str, dataset: SynthParts, count: int,
                          progress: bool | None = None) -> np.ndarray:
    """[count, C] each held-out image's mean activation per channel (what `fv.channel` scores)."""
    mean = jax.jit(lambda x: model.activations(x, layer)[layer].mean((1, 2)))
    means = []
    with bar(count, desc=f"channel means: {layer}", unit="image", progress=progress) as shown:
        for indices, valid in pass_indices(count, BATCH):
            means.append(np.asarray(mean(dataset.batch(indices)["image"]))[valid])
            shown.update(len(means[-1]))
    return np.concatenate(means)


def layer_study(model: nets.Model, dataset: SynthParts, layer: str, config: FeatvizConfig, key,
                progress: bool | None = None) -> dict:
    """Renders, top patches and render-vs-dataset activations for the most active channels of `layer`."""
    means = dataset_channel_means(model, layer, dataset, config.examples, progress)
    channels = np.argsort(-means.max(0))[: config.channels]
    rendering = fv.render_each(
        model, lambda c: fv.channel(layer, c), jnp.asarray(channels), key=key,
        param=fv.image(dataset.image_size), steps=config.steps,
    )
    images = rendering.images[:, -1, 0]
    rendered = np.asarray(model.activations(images, layer)[layer].mean((1, 2)))[np.arange(len(channels)), channels]
    top = fv.dataset_examples(model, layer, dataset, config.patches, num_examples=config.examples, batch_size=BATCH,
                              progress=progress)
    top = jax.tree.map(lambda a: a[channels], top)
    field = nets.receptive_fields(model, images[:1])[layer]
    patches = fv.crop_patches(dataset, top, field, fill=1.0)
    dataset_max = means[:, channels].max(0)
    return {
        "channels": channels,
        "images": np.asarray(images),
        "patches": np.asarray(patches),
        "ratio": rendered / dataset_max,
        "rendered": rendered,
        "dataset_max": dataset_max,
        "receptive_field": field,
    }


def semantic_figures(model: nets.Model, dataset: SynthParts, key, steps: int):
    """A semantic dictionary of one position of relu3 and the activation grid of relu4, for one held-out image."""
    image = dataset.batch(jnp.arange(1, dtype=jnp.int32))["image"]
    position = (4, 4)
    dictionary = fv.semantic_dictionary(
        model, "relu3", image, position, key=key, k=4, render_layer="conv3", param=fv.image(32), steps=steps
    )
    stride = nets.receptive_fields(model, image)["relu3"].stride[0]
    semantic = viz.semantic_dictionary_figure(
        np.asarray(image[0]), position, stride, np.asarray(dictionary.channels[0]),
        np.asarray(dictionary.values[0]), np.asarray(dictionary.visualizations[0]), layer="relu3", render_layer="conv3",
    )
    grid = fv.activation_grid(model, "relu4", image[0], key=key, param=fv.image(24), steps=steps // 2)
    activation = viz.activation_grid_figure(np.asarray(image[0]), fv.grid_to_image(np.asarray(grid)), layer="relu4")
    return semantic, activation


def run(model: nets.Model, dataset: SynthParts, workdir: pathlib.Path, config: FeatvizConfig, *,
        run_dir: str | pathlib.Path, force_new_config: bool = False, progress: bool | None = None) -> dict:
    """Every figure and the render/dataset ratios; writes them to `workdir` and returns the results.

    `progress` shows the bars of the passes over held-out images (see `interp._progress`).

    Resumes: a layer whose results `workdir`/results.json holds for the same
    config and `run_dir` (the trained run `model` comes from) is not rendered again;
    results.json of another config is an error unless `force_new_config`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(config.seed)
    store = common.Results(workdir, {**common.run_identity(run_dir), **vars(config)},
                           force_new_config=force_new_config)
    for index, layer in enumerate(LAYERS):
        if ("layers", layer) in store:
            continue
        start = time.perf_counter()
        study = layer_study(model, dataset, layer, config, jax.random.fold_in(key, index), progress)
        seconds = time.perf_counter() - start
        titles = [f"{layer}:{c}  {r:.1f}x" for c, r in zip(study["channels"], study["ratio"])]
        field = study["receptive_field"]
        note = (
            f"Titles '{layer}:c  N.Nx': channel c; its render (left) activates it N.N times as much (mean over "
            f"positions) as the best of {config.examples} held-out images. top 1-{config.patches}: the images "
            f"whose strongest position activates c most, cropped to that position's "
            f"{field.size[0]}x{field.size[1]}-pixel receptive field (white: outside the image)."
        )
        viz.channel_grid(study["images"], study["patches"], titles, note=note).savefig(
            workdir / f"featviz_{layer}.png", dpi=110
        )
        store.put(("layers", layer), {
            "channels": study["channels"].tolist(),
            "rendered_mean_activation": np.round(study["rendered"], 3).tolist(),
            "best_held_out_mean_activation": np.round(study["dataset_max"], 3).tolist(),
            "ratio_median": round(float(np.median(study["ratio"])), 2),
            "ratio_min": round(float(np.min(study["ratio"])), 2),
            "receptive_field": {"size": field.size, "stride": field.stride},
            "seconds": round(seconds, 1),
        })
    if "semantic_figures" not in store:
        semantic, activation = semantic_figures(model, dataset, key, config.steps)
        semantic.savefig(workdir / "semantic_dictionary.png", dpi=110)
        activation.savefig(workdir / "activation_grid.png", dpi=110)
        store.put("semantic_figures", ["semantic_dictionary.png", "activation_grid.png"])
    return store.values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo", help="a training run's workdir")
    parser.add_argument("--workdir", default="runs/featviz")
    common.config_arguments(parser, default="featviz")
    args = parser.parse_args(argv)
    config = common.config_from(args, FeatvizConfig)  # a bad --set fails before the workdir is made
    with trainlib.hold_workdir(args.workdir):
        trained = common.restore(args.run)
        results = run(trained.model, common.held_out(trained.config), pathlib.Path(args.workdir), config,
                      run_dir=args.run, force_new_config=args.force_new_config, progress=args.progress)
        for layer, r in results["layers"].items():
            print(f"{layer}: rendered / best held-out mean activation, median {r['ratio_median']}x, "
                  f"min {r['ratio_min']}x ({r['seconds']} s)")
        return results


if __name__ == "__main__":
    main()
