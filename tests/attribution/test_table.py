"""Every method under jit, under vmap over several batches, and eagerly per batch: they agree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import nets
from interp.attribution import (
    cam,
    grad_cam,
    grad_cam_plus_plus,
    gradient_x_input,
    integrated_gradients,
    occlusion,
    saliency,
    smooth_grad,
)

C, N, B = 5, 2, 2
MODULE = nets.create_module("small_cnn", num_classes=C)
XS = jax.random.uniform(jax.random.key(0), (N, B, 16, 16, 3))  # N batches of B images
MODEL = nets.as_model(MODULE, MODULE.init(jax.random.key(1), XS[0]))
TARGETS = jnp.array([[1, 3], [0, 4]])  # one [b] target per batch
KEY = jax.random.key(3)

# name -> attribute(x, target); key-taking methods get a fixed key.
METHODS = {
    "saliency": saliency(MODEL),
    "saliency_abs": saliency(MODEL, "absolute"),
    "saliency_max": saliency(MODEL, "max_abs_channel"),
    "gradient_x_input": gradient_x_input(MODEL),
    "integrated_gradients": lambda x, t: integrated_gradients(MODEL, 6, chunk_size=4)(x, t),
    "ig_many_baselines": lambda x, t: integrated_gradients(MODEL, 4)(x, t, jnp.stack([x * 0, x * 0 + 1])),
    "smooth_grad": lambda x, t: smooth_grad(saliency(MODEL), samples=3, chunk_size=2)(x, t, key=KEY),
    "var_grad": lambda x, t: smooth_grad(gradient_x_input(MODEL), samples=2, mode="var")(x, t, key=KEY),
    "occlusion": occlusion(MODEL, (8, 8), (4, 4), chunk_size=4),
    "cam": cam(MODEL, "relu4"),
    "grad_cam": grad_cam(MODEL, "relu3"),
    "grad_cam_plus_plus": grad_cam_plus_plus(MODEL, "relu4", upsample=False),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_jit_vmap_and_eager_agree(name):
    method = METHODS[name]
    eager = jnp.stack([method(x, t) for x, t in zip(XS, TARGETS)])
    jitted = jnp.stack([jax.jit(method)(x, t) for x, t in zip(XS, TARGETS)])
    mapped = jax.jit(jax.vmap(method))(XS, TARGETS)
    assert eager.shape[:2] == (N, B) and bool(jnp.all(jnp.isfinite(eager)))
    assert float(jnp.abs(eager).max()) > 0
    # float32 rounding differs between compiled and eager, batched and not.
    scale = float(jnp.abs(eager).max())
    np.testing.assert_allclose(jitted, eager, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(mapped, eager, rtol=1e-4, atol=1e-5 * scale)
