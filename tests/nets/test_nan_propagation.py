"""The zoo keeps NaN under jit: a NaN conv1 kernel gives NaN logits, as eagerly."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import ops
from interp.nets import zoo


@pytest.mark.parametrize("name, size", [("small_cnn", 32), ("alexnet", 64), ("vgg16", 32), ("resnet18", 32)])
def test_nan_conv1_kernel_gives_nan_logits_under_jit(name, size):
    module = zoo.create_module(name, num_classes=6)
    variables = module.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False)
    params = flax.traverse_util.flatten_dict(variables["params"])
    conv1 = next(key for key in params if key[-1] == "kernel")
    params[conv1] = jnp.full_like(params[conv1], jnp.nan)
    variables = {**variables, "params": flax.traverse_util.unflatten_dict(params)}
    logits = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, jnp.ones((2, size, size, 3)))
    assert np.isnan(np.asarray(logits)).all()


def test_relu_keeps_nan_in_a_fused_mean_and_has_relus_gradient():
    x = jnp.full((2, 4, 4, 8), jnp.nan)
    assert np.isnan(np.asarray(jax.jit(lambda x: ops.relu(x).mean(axis=(1, 2)))(x))).all()
    points = jnp.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(jax.grad(lambda x: ops.relu(x).sum())(points),
                                  jax.grad(lambda x: jax.nn.relu(x).sum())(points))
    np.testing.assert_array_equal(ops.relu(points), jax.nn.relu(points))
    assert len(ops.relu_equations(jax.make_jaxpr(ops.relu)(points))) == 1  # guided backprop finds it
