"""On a SmallCNN trained on SynthParts: localization against the ground-truth
object masks, and the model-randomization sanity check.

One short training run (the session fixture `trained_small_cnn`) serves every test here; the
full-length numbers come from `python -m experiments.attribution` (README).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import attribution, metrics
from interp.data import SynthParts

HELD_OUT = SynthParts(seed=1, image_size=64, num_classes=6)


@pytest.fixture(scope="module")
def models(trained_small_cnn):
    return trained_small_cnn[700]


def density_ratio(maps, mask):
    """Attribution per object pixel over attribution per background pixel (1 = no localization)."""
    inside = np.asarray(metrics.mass_in_mask(maps, mask, reduce="abs", mode="abs"))
    area = np.asarray(mask, np.float32).reshape(len(mask), -1).mean(1)
    return float(np.mean(inside / area) / np.mean((1 - inside) / (1 - area)))


def test_trained_net_is_trained(models):
    batch = HELD_OUT.batch(jnp.arange(256, dtype=jnp.int32))
    accuracy = float((models[0](batch["image"]).argmax(-1) == batch["label"]).mean())
    print(f"MEASURED trained accuracy {accuracy:.3f}")
    assert accuracy > 0.6, accuracy  # 6 classes: chance is 0.17


@pytest.mark.parametrize(
    "name, make",
    [
        ("grad_cam", lambda m: attribution.grad_cam(m, "relu4")),
        ("integrated_gradients", lambda m: attribution.integrated_gradients(m, steps=16)),
    ],
)
def test_maps_concentrate_on_the_object_more_than_at_random_init(models, name, make):
    batch = HELD_OUT.batch(jnp.arange(64, dtype=jnp.int32))
    ratios = [
        density_ratio(jax.jit(make(model))(batch["image"], batch["label"]), batch["object_mask"])
        for model in models
    ]
    print(f"MEASURED {name}: object/background attribution density, trained {ratios[0]:.2f}, "
          f"random init {ratios[1]:.2f}")
    assert ratios[0] > 1.5, ratios  # clearly more attribution per object pixel than per background pixel
    assert ratios[0] > ratios[1] + 0.3, ratios


def test_sanity_check_separates_gradients_from_guided_backprop(models):
    batch = HELD_OUT.batch(jnp.arange(16, dtype=jnp.int32))
    correlations = {
        name: np.nanmean(np.asarray(
            metrics.model_randomization(
                make,
                models[0],
                ("logits", "conv4"),
                batch["image"],
                batch["label"],
                key=jax.random.key(1),
                reduce="abs",
            ).spearman_abs[-1]
        ))
        for name, make in (("saliency", attribution.saliency), ("guided", attribution.guided_backprop))
    }
    print(f"MEASURED Spearman |map| after randomizing logits and conv4: {correlations}")
    # Adebayo et al.: guided backprop barely changes when the top layers are randomized.
    assert correlations["guided"] > correlations["saliency"] + 0.05, correlations
