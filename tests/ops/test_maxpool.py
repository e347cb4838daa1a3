"""The switch max-pool equals `lax.reduce_window` max in values and derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp.nets import _layers
from interp.ops import max_pool, maxpool


def reference_pool(x, window, stride, pad=0, ceil_mode=False):
    """`_layers.max_pool` as it was written with `lax.reduce_window` (select_and_scatter)."""
    pads = []
    for size in x.shape[1:3]:
        out = _layers._pool_out_size(size, window, stride, pad, ceil_mode)
        extra = (out - 1) * stride + window - (size + 2 * pad)
        pads.append((pad, pad + max(extra, 0)))
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), ((0, 0), pads[0], pads[1], (0, 0))
    )


def _assert_same_values_and_derivatives(new, ref, x):
    """Values, a VJP and a JVP of `new` equal `ref`'s exactly."""
    np.testing.assert_array_equal(new(x), ref(x))
    out, pull_new = jax.vjp(new, x)
    ct = jax.random.normal(jax.random.key(1), out.shape)
    np.testing.assert_array_equal(pull_new(ct)[0], jax.vjp(ref, x)[1](ct)[0])
    dx = jax.random.normal(jax.random.key(2), x.shape)
    np.testing.assert_array_equal(jax.jvp(new, (x,), (dx,))[1], jax.jvp(ref, (x,), (dx,))[1])


CONFIGS = [  # window, stride, pad, ceil_mode
    (2, 2, 0, False),
    (3, 2, 0, False),
    (3, 2, 0, True),  # VGG-M / AlexNet-Caffe pools on odd sizes
    (3, 3, 0, True),
    (3, 2, 1, False),  # ResNet stem
    (2, 2, 1, True),
]


@pytest.mark.parametrize("window,stride,pad,ceil_mode", CONFIGS)
def test_layers_max_pool_matches_reduce_window(window, stride, pad, ceil_mode):
    # Negative inputs check that -inf padding never wins; normal draws have no ties.
    x = jax.random.normal(jax.random.key(0), (2, 13, 10, 3)) - 2.0
    new = lambda x: _layers.max_pool(x, window, stride, pad, ceil_mode)
    ref = lambda x: reference_pool(x, window, stride, pad, ceil_mode)
    _assert_same_values_and_derivatives(new, ref, x)


def test_general_windows_and_ranks():
    x = jax.random.normal(jax.random.key(3), (3, 9, 7))
    args = ((1, 3, 2), (1, 2, 3), ((0, 0), (1, 0), (0, 2)))
    ref = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, *args)
    new = lambda x: max_pool(x, *args)
    np.testing.assert_array_equal(new(x), ref(x))
    np.testing.assert_array_equal(
        jax.grad(lambda x: (new(x) ** 2).sum())(x), jax.grad(lambda x: (ref(x) ** 2).sum())(x)
    )


@pytest.mark.parametrize("shape, window", [((2, 12, 10, 3), (1, 2, 2, 1)), ((3, 9, 8), (1, 3, 2)), ((4, 6), (2, 3))])
def test_windows_that_tile_the_input_match_reduce_window_ties_included(shape, window):
    # Stride = window, no padding, no remainder: the tangent is read from blocks
    # of the input (`_tangent_of_tiles`). Rounded draws make many ties.
    assert maxpool._windows_tile(shape, window, window, ((0, 0),) * len(shape))
    x = jnp.round(2 * jax.random.normal(jax.random.key(5), shape))
    padding = ((0, 0),) * len(shape)
    new = lambda x: max_pool(x, window, window, padding)
    ref = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, window, window, padding)
    _assert_same_values_and_derivatives(new, ref, x)


def test_ties_go_to_the_first_offset_like_select_and_scatter():
    x = jnp.ones((1, 4, 4, 1))
    new = jax.grad(lambda x: _layers.max_pool(x, 3, 1).sum())(x)
    ref = jax.grad(lambda x: reference_pool(x, 3, 1).sum())(x)
    np.testing.assert_array_equal(new, ref)


def test_jit_vmap_and_second_order():
    x = jax.random.normal(jax.random.key(4), (2, 6, 6, 2))
    pool = lambda x: _layers.max_pool(x, 3, 2, 1)
    np.testing.assert_array_equal(jax.jit(pool)(x), pool(x))
    np.testing.assert_array_equal(jax.vmap(pool)(x[:, None])[:, 0], pool(x))
    loss = lambda x: (pool(x) ** 3).sum()
    hvp = jax.jvp(jax.grad(loss), (x,), (jnp.ones_like(x),))[1]
    ref_hvp = jax.jvp(jax.grad(lambda x: (reference_pool(x, 3, 2, 1) ** 3).sum()), (x,), (jnp.ones_like(x),))[1]
    np.testing.assert_allclose(hvp, ref_hvp, rtol=1e-6)


def test_rank_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one entry per dimension"):
        max_pool(jnp.ones((2, 4, 4, 1)), (2, 2), (2, 2), ((0, 0), (0, 0)))


# --- with_switch_max_pools: reduce_window max-pools of any function routed through max_pool ---

K = jax.random.normal(jax.random.key(7), (3, 3, 3, 4))


def _net(pool):
    """A conv, a ReLU and `pool(h)`: the shape of a user's own network."""

    def f(x):
        h = jax.nn.relu(lax.conv_general_dilated(x, K, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return pool(h)

    return f


def _reduce_window(window, stride, padding, dilation=(1, 1)):
    return lambda h: lax.reduce_window(
        h, -jnp.inf, lax.max, (1, *window, 1), (1, *stride, 1), ((0, 0), *padding, (0, 0)),
        window_dilation=(1, *dilation, 1),
    )  # fmt: skip


def _primitive_names(f, *args) -> list[str]:
    from interp.ops.jaxprs import equations

    return [e.primitive.name for e in equations(jax.make_jaxpr(f)(*args).jaxpr)]


ROUTED = [  # window, stride, padding: the pools the rewrite takes
    ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((2, 2), (2, 2), ((0, 1), (1, 0))),
    ((3, 3), (2, 2), ((1, 1), (1, 1))),  # overlapping, ResNet's stem pool
    ((3, 3), (2, 2), ((0, 0), (0, 0))),
    ((2, 2), (1, 1), ((0, 0), (0, 0))),  # overlapping, 4 elements
    ((3, 3), (3, 3), ((0, 0), (0, 0))),
    ((1, 3), (1, 2), ((0, 0), (1, 1))),
]


@pytest.mark.parametrize("window, stride, padding", ROUTED)
def test_routed_pools_keep_values_and_derivatives_exactly_ties_included(window, stride, padding):
    # Rounded inputs and the ReLU's zeros make many ties: both ways send a
    # tied window's gradient to its first maximum in row-major order.
    x = jnp.round(jax.random.normal(jax.random.key(8), (2, 9, 10, 3)))
    ref = _net(_reduce_window(window, stride, padding))
    new = maxpool.with_switch_max_pools(ref)
    assert "reduce_window_max" in _primitive_names(ref, x)
    assert "reduce_window_max" not in _primitive_names(new, x)
    assert "select_and_scatter_add" not in _primitive_names(jax.grad(lambda x: new(x).sum()), x)
    _assert_same_values_and_derivatives(new, ref, x)
    _assert_same_values_and_derivatives(jax.jit(new), jax.jit(ref), x)


def test_flax_max_pool_is_routed():
    import flax.linen as nn

    x = jnp.round(jax.random.normal(jax.random.key(9), (2, 8, 8, 3)))
    ref = _net(lambda h: nn.max_pool(h, (2, 2), (2, 2), padding="SAME"))
    new = maxpool.with_switch_max_pools(ref)
    assert "reduce_window_max" not in _primitive_names(new, x)
    _assert_same_values_and_derivatives(new, ref, x)


def test_ties_go_to_the_first_maximum_in_row_major_order_both_ways():
    x = jnp.ones((1, 4, 4, 1))
    pool = _reduce_window((2, 2), (1, 1), ((0, 0), (0, 0)))
    expected = np.zeros((1, 4, 4, 1))
    expected[0, :3, :3, 0] = 1.0  # every 2x2 window's top-left element
    for f in (pool, maxpool.with_switch_max_pools(pool)):
        np.testing.assert_array_equal(jax.grad(lambda x, f=f: f(x).sum())(x), expected)


@pytest.mark.parametrize(
    "pool",
    [
        _reduce_window((3, 3), (1, 1), ((1, 1), (1, 1))),  # overlapping at stride 1: slower as a switch pool
        _reduce_window((4, 4), (2, 2), ((1, 1), (1, 1))),  # 16 elements, overlapping
        _reduce_window((2, 2), (2, 2), ((0, 0), (0, 0)), dilation=(2, 2)),  # dilated: max_pool has no dilation
        lambda h: lax.cond(True, _reduce_window((2, 2), (2, 2), ((0, 0), (0, 0))), lambda h: h[:, :8:2, ::2], h),
    ],
    ids=["3x3-stride-1", "4x4-stride-2", "dilation", "in-control-flow"],
)
def test_pools_the_rewrite_does_not_take_are_left_alone(pool, request):
    x = jax.random.normal(jax.random.key(10), (2, 9, 10, 3))
    ref = _net(pool)
    new = maxpool.with_switch_max_pools(ref)
    pools = [_primitive_names(f, x).count("reduce_window_max") for f in (new, ref)]
    assert pools == [1, 1]
    np.testing.assert_array_equal(new(x), ref(x))
    dx = jax.random.normal(jax.random.key(2), x.shape)
    np.testing.assert_array_equal(jax.jvp(new, (x,), (dx,))[1], jax.jvp(ref, (x,), (dx,))[1])
    if "dilation" not in request.node.callspec.id:  # JAX has no VJP of a dilated max-pool
        grad = lambda f: jax.grad(lambda x: (f(x) ** 2).sum())(x)
        np.testing.assert_array_equal(grad(new), grad(ref))


def test_integer_pools_are_left_alone():
    x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.int32).reshape(2, 4, 4, 1)
    pool = lambda x: lax.reduce_window(x, np.iinfo(np.int32).min, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    new = maxpool.with_switch_max_pools(pool)
    assert "reduce_window_max" in _primitive_names(new, x)
    np.testing.assert_array_equal(new(x), pool(x))


def test_switch_is_faster_follows_the_measured_shapes():
    faster = [((2, 2), (2, 2)), ((2, 2), (1, 1)), ((3, 3), (2, 2)), ((3, 3), (3, 3)), ((4, 4), (4, 4))]
    slower = [((3, 3), (1, 1)), ((4, 4), (2, 2)), ((5, 5), (2, 2))]
    assert all(maxpool.switch_is_faster((1, *w, 1), (1, *s, 1)) for w, s in faster)
    assert not any(maxpool.switch_is_faster((1, *w, 1), (1, *s, 1)) for w, s in slower)
