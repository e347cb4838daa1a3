"""Deconvnet, guided backprop and guided Grad-CAM on zoo models and plain functions."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from interp import attribution, nets
from interp.nets import _layers


@jax.custom_vjp
def explicit_guided_relu(x):
    return jnp.maximum(x, 0.0)


explicit_guided_relu.defvjp(
    lambda x: (jnp.maximum(x, 0.0), x), lambda x, g: (g * (x > 0) * (g > 0),)
)


@jax.custom_vjp
def explicit_deconvnet_relu(x):
    return jnp.maximum(x, 0.0)


explicit_deconvnet_relu.defvjp(lambda x: (jnp.maximum(x, 0.0), None), lambda _, g: (g * (g > 0),))

EXPLICIT = {"guided": explicit_guided_relu, "deconvnet": explicit_deconvnet_relu}
METHODS = {"guided": attribution.guided_backprop, "deconvnet": attribution.deconvnet}


def conv(x, p, stride, pad):
    y = lax.conv_general_dilated(
        x, p["kernel"], (stride, stride), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"][None, None, None]


def reduce_window_pool(x, window, stride, pad, ceil_mode):
    """Max-pool with XLA's own (select_and_scatter) derivative, as a reference."""
    pads = []
    for size in x.shape[1:3]:
        out = _layers._pool_out_size(size, window, stride, pad, ceil_mode)
        pads.append((pad, pad + max((out - 1) * stride + window - (size + 2 * pad), 0)))
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), ((0, 0), *pads, (0, 0))
    )


def small_cnn_by_hand(params, x, relu):
    """SmallCNN's default config, layer by layer, with an explicit ReLU."""
    for i, pool in enumerate((True, True, False, False), start=1):
        x = relu(conv(x, params[f"conv{i}"], 2 if i == 1 else 1, 1))
        if pool:
            x = reduce_window_pool(x, 2, 2, 0, False)
    return x.mean(axis=(1, 2)) @ params["logits"]["kernel"] + params["logits"]["bias"][None]


class TinyVGG(nn.Module):
    """A VGG-M-like net with padded, ceil-mode `_layers.max_pool`s and `nn.relu`."""

    @nn.compact
    def __call__(self, x):
        x = nets.tap(nn.relu(nn.Conv(6, (3, 3), 2, 0, name="conv1")(x)), "relu1")
        x = nets.tap(_layers.max_pool(x, 3, 2, 0, ceil_mode=True), "pool1")
        x = nets.tap(nn.relu(nn.Conv(8, (3, 3), 1, 1, name="conv2")(x)), "relu2")
        x = nets.tap(_layers.max_pool(x, 3, 2, 1), "pool2")
        x = nets.tap(nn.relu(nn.Dense(10, name="fc3")(_layers.flatten(x))), "relu3")
        return nn.Dense(4, name="logits")(x)


def tiny_vgg_by_hand(params, x, relu):
    x = reduce_window_pool(relu(conv(x, params["conv1"], 2, 0)), 3, 2, 0, True)
    x = reduce_window_pool(relu(conv(x, params["conv2"], 1, 1)), 3, 2, 1, False)
    x = relu(_layers.flatten(x) @ params["fc3"]["kernel"] + params["fc3"]["bias"][None])
    return x @ params["logits"]["kernel"] + params["logits"]["bias"][None]


@pytest.fixture(scope="module")
def small_cnn():
    module = nets.create_module("small_cnn", num_classes=5)
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
    variables = module.init(jax.random.key(1), x)
    return module, variables, x


@pytest.fixture(scope="module")
def tiny_vgg():
    module = TinyVGG()
    x = jax.random.normal(jax.random.key(2), (2, 15, 15, 3))
    variables = module.init(jax.random.key(3), x)
    return module, variables, x


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
@pytest.mark.parametrize("net", ["small_cnn", "tiny_vgg"])
def test_zoo_models_match_a_hand_built_copy_with_explicit_relus(request, net, rule):
    module, variables, x = request.getfixturevalue(net)
    by_hand = {"small_cnn": small_cnn_by_hand, "tiny_vgg": tiny_vgg_by_hand}[net]
    target = jnp.array([1, 3])
    hand_fn = lambda x: by_hand(variables["params"], x, EXPLICIT[rule])
    want = _grads(hand_fn, x, target)
    model = nets.from_linen(module, variables)
    for fn in (model, lambda x: module.apply(variables, x)):
        got = METHODS[rule](fn)(x, target)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plain = _grads(lambda x: module.apply(variables, x), x, target)
    assert not np.allclose(plain, want, rtol=1e-3, atol=1e-5)


def _grads(fn, x, target):
    return jax.grad(lambda x: jnp.take_along_axis(fn(x), target[:, None], 1).sum())(x)


def test_forward_unchanged_and_model_stays_a_model(small_cnn):
    from interp.attribution.guided import _rewrite

    module, variables, x = small_cnn
    model = nets.from_linen(module, variables)
    for rule in ("guided", "deconvnet"):
        rewritten = _rewrite(model, rule)
        assert isinstance(rewritten, nets.Model)
        np.testing.assert_array_equal(rewritten(x), model(x))
        assert rewritten.layer_names(x) == model.layer_names(x)


def test_eager_jit_vmap_and_many_targets_agree(small_cnn):
    module, variables, x = small_cnn
    attribute = attribution.guided_backprop(nets.from_linen(module, variables))
    target = jnp.array([0, 4])
    eager = attribute(x, target)
    assert eager.shape == x.shape
    np.testing.assert_allclose(jax.jit(attribute)(x, target), eager, rtol=1e-5, atol=1e-6)
    per_example = jax.vmap(lambda xi, ti: attribute(xi[None], ti[None])[0])(x, target)
    np.testing.assert_allclose(per_example, eager, rtol=1e-5, atol=1e-6)
    many = attribute(x, jnp.array([[0, 2], [4, 1]]))
    assert many.shape == (2, 2, *x.shape[1:])
    np.testing.assert_allclose(many[:, 0], attribute(x, jnp.array([0, 4])), rtol=1e-5, atol=1e-6)


def test_plain_conv_function_with_scores():
    k = jax.random.split(jax.random.key(4), 3)
    w, v = jax.random.normal(k[0], (3, 3, 3, 4)), jax.random.normal(k[1], (4,))
    x = jax.random.normal(k[2], (2, 8, 8, 3))

    def f(x, relu=jax.nn.relu):
        h = relu(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return h.mean(axis=(1, 2)) @ v

    want = jax.grad(lambda x: f(x, explicit_guided_relu).sum())(x)
    np.testing.assert_allclose(attribution.guided_backprop(f)(x), want, rtol=1e-5, atol=1e-6)


def test_relu_in_scan_is_an_error():
    def f(x):
        return lax.scan(lambda c, _: (jax.nn.relu(c), None), x, None, length=2)[0].sum(axis=1)

    with pytest.raises(NotImplementedError, match="scan"):
        attribution.deconvnet(f)(jnp.ones((2, 3)))


def test_guided_grad_cam_is_guided_backprop_times_grad_cam(small_cnn):
    module, variables, x = small_cnn
    model = nets.from_linen(module, variables)
    target = jnp.array([1, 2])
    got = attribution.guided_grad_cam(model, "relu4")(x, target)
    heat = attribution.grad_cam(model, "relu4")(x, target)
    guided = attribution.guided_backprop(model)(x, target)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, guided * heat[..., None], rtol=1e-6, atol=1e-8)
    many = attribution.guided_grad_cam(module, "relu4", variables=variables)(x, jnp.array([[1, 0], [2, 3]]))
    np.testing.assert_allclose(many[:, 0], got, rtol=1e-5, atol=1e-7)
