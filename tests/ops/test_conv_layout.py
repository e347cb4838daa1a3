"""Kernels transposed to [spatial..., in, out]: same values, and no other layout left in the program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp.ops.conv_layout import with_canonical_conv_kernels
from interp.ops.jaxprs import equations

X = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
W = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))


def _convs(f, *args):
    closed = jax.make_jaxpr(f)(*args)
    return [e for e in equations(closed.jaxpr) if e.primitive is lax.conv_general_dilated_p]


def _kernel_labels(f, *args):
    return {tuple(e.params["dimension_numbers"].rhs_spec) for e in _convs(f, *args)}


@pytest.mark.parametrize(
    "stride, padding, rhs_dilation, groups",
    [
        ((1, 1), "SAME", (1, 1), 1),
        ((2, 2), "VALID", (1, 1), 1),
        ((1, 2), ((2, 0), (1, 1)), (2, 1), 1),
        ((1, 1), "SAME", (1, 1), 3),
    ],
)
def test_input_gradient_is_unchanged_and_every_kernel_is_stored_in_out_last(stride, padding, rhs_dilation, groups):
    w = W[..., :1, :3] if groups == 3 else W  # depthwise: one input feature per group

    def loss(x, w):
        y = lax.conv_general_dilated(
            x, w, stride, padding, rhs_dilation=rhs_dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
        )  # fmt: skip
        return jnp.sum(jnp.tanh(y) ** 2)

    grads = jax.grad(loss, argnums=(0, 1))
    fast = with_canonical_conv_kernels(grads)
    # The plain backward pass reads a kernel with input and output swapped (the case to fix).
    assert _kernel_labels(grads, X, w) - {(3, 2, 0, 1)}
    assert _kernel_labels(fast, X, w) == {(3, 2, 0, 1)}
    for ours, ref in zip(jax.jit(fast)(X, w), jax.jit(grads)(X, w), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_pytrees_pass_through_and_convs_in_control_flow_are_left_alone():
    def f(inputs):
        x, w = inputs["x"], inputs["w"]
        inner = lax.cond(
            True,
            lambda: lax.conv(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), (1, 1), "SAME"),
            lambda: jnp.zeros((2, 4, 9, 9)),
        )
        return {"y": inner.sum(), "pair": (x.sum(), w.sum())}

    out = with_canonical_conv_kernels(f)({"x": X, "w": W})
    ref = f({"x": X, "w": W})
    assert jax.tree.structure(out) == jax.tree.structure(ref)
    np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-6)
