"""Path and perturbation methods on a batch sharded over the test mesh: same values, no resharding.

Each method evaluates many variants of every example (path points, noisy
copies, occluded images) in one batch. Folded in example-major, a sharded
batch stays sharded and every device works on its own examples; folded in
variant-major (what a vmap over the variants does), XLA must move
activations between devices, which a collective in the compiled program shows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import nets
from interp.attribution import integrated_gradients, occlusion, saliency, smooth_grad
from interp.sharding import data_mesh, replicate, shard_batch

DEVICES = jax.device_count()
MODULE = nets.create_module("small_cnn", num_classes=4, channels=(4, 8, 8, 8))
X = jax.random.uniform(jax.random.key(0), (DEVICES, 16, 16, 3))
MODEL = nets.as_model(MODULE, MODULE.init(jax.random.key(1), X))
TARGET = jnp.arange(DEVICES) % 4
KEY = jax.random.key(2)

METHODS = {
    "integrated_gradients": lambda m, x, t: integrated_gradients(m, 6)(x, t),
    "integrated_gradients_chunked": lambda m, x, t: integrated_gradients(m, 6, chunk_size=2)(x, t),
    "integrated_gradients_baseline": lambda m, x, t: integrated_gradients(m, 4)(x, t, baseline=1.0 - x),
    "smooth_grad": lambda m, x, t: smooth_grad(saliency(m), samples=4)(x, t, key=KEY),
    "smooth_grad_chunked": lambda m, x, t: smooth_grad(saliency(m), samples=4, chunk_size=3)(x, t, key=KEY),
    "occlusion": lambda m, x, t: occlusion(m, (8, 8), (4, 4), chunk_size=3)(x, t),
    # Many targets share one forward pass and vmap the backward pass over the
    # targets, which folds them in target-major: on a mesh that costs an
    # all-gather (values still equal; checked below, not the collectives).
    "smooth_grad_many_targets": lambda m, x, t: smooth_grad(saliency(m), samples=4, chunk_size=3)(
        x, jnp.stack([t, (t + 1) % 4], axis=1), key=KEY
    ),
}
RESHARDS = {"smooth_grad_many_targets"}
COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "all-reduce", "reduce-scatter")


@pytest.mark.skipif(DEVICES < 2, reason="needs several devices (the suite forces 8 CPU devices)")
@pytest.mark.parametrize("name", sorted(METHODS))
def test_sharded_batch_gives_the_same_attributions_without_moving_data(name):
    method = jax.jit(METHODS[name])
    mesh = data_mesh()
    batch = shard_batch({"x": X, "target": TARGET}, mesh)
    sharded = (replicate(MODEL, mesh), batch["x"], batch["target"])
    compiled = method.lower(*sharded).compile().as_text()
    moved = [c for c in COLLECTIVES if c in compiled]
    assert bool(moved) == (name in RESHARDS), f"{name}: collectives {moved}"
    one_device = jax.device_put((MODEL, X, TARGET), jax.devices()[0])
    np.testing.assert_allclose(method(*sharded), method(*one_device), rtol=2e-5, atol=1e-6)
