"""Zoo models: output shapes, layer names and shapes, and the shared layer helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interp import nets
from interp.nets import _layers, zoo
from interp.ops.jaxprs import tap_name


def tapped_shapes(jaxpr) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tap in a jaxpr, recursing into sub-jaxprs, in order."""
    found = []
    for eqn in jaxpr.eqns:
        if tap_name(eqn) is not None:
            found.append((tap_name(eqn), tuple(eqn.outvars[0].aval.shape)))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    found += tapped_shapes(inner)
    return found


def trace_taps(name: str, num_classes: int = 10, size: tuple[int, int] | None = None):
    """Abstractly traces zoo model `name` on one image: (logits shape, {tap: shape}, tap list)."""
    model = zoo.create_module(name, num_classes=num_classes)
    x = jax.ShapeDtypeStruct((1, *(size or zoo.paper_input_size(name)), 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    closed = jax.make_jaxpr(lambda v, x: model.apply(v, x))(variables, x)
    taps = tapped_shapes(closed.jaxpr)
    return closed.out_avals[0].shape, dict(taps), [n for n, _ in taps]


EXPECTED = {
    "small_cnn": {"conv1": (1, 32, 32, 16), "pool2": (1, 8, 8, 32), "relu4": (1, 8, 8, 128), "gap": (1, 128)},
    "alexnet": {"conv1": (1, 56, 56, 64), "pool2": (1, 13, 13, 192), "conv5": (1, 13, 13, 256),
                "pool5": (1, 6, 6, 256), "fc6": (1, 4096), "relu7": (1, 4096)},
    "vgg16": {"conv1_1": (1, 224, 224, 64), "conv5_3": (1, 14, 14, 512), "pool5": (1, 7, 7, 512),
              "fc6": (1, 4096), "relu7": (1, 4096)},
    "vgg_m": {"conv1": (1, 109, 109, 96), "norm1": (1, 109, 109, 96), "pool1": (1, 54, 54, 96),
              "norm2": (1, 26, 26, 256), "pool2": (1, 13, 13, 256), "pool5": (1, 6, 6, 512), "fc7": (1, 4096)},
    "vgg_s": {"norm1": (1, 109, 109, 96), "pool1": (1, 37, 37, 96), "conv2": (1, 35, 35, 256),
              "pool2": (1, 18, 18, 256), "pool5": (1, 6, 6, 512)},
    "resnet18": {"conv1": (1, 112, 112, 64), "maxpool": (1, 56, 56, 64), "layer1.0.relu1": (1, 56, 56, 64),
                 "layer2.0.downsample": (1, 28, 28, 128), "layer4.1.conv2": (1, 7, 7, 512),
                 "layer4": (1, 7, 7, 512), "avgpool": (1, 512)},
    "resnet50": {"layer1.0.conv3": (1, 56, 56, 256), "layer1.0.downsample": (1, 56, 56, 256),
                 "layer3.5.relu2": (1, 14, 14, 256), "layer4.2": (1, 7, 7, 2048), "avgpool": (1, 2048)},
}
# Layers every model of a family has, to catch a dropped tap.
COUNTS = {"small_cnn": 12, "alexnet": 18, "vgg16": 36, "vgg_m": 20, "vgg_s": 19, "resnet18": 61, "resnet50": 158}


def test_registry_covers_every_model():
    assert set(zoo.names()) == set(EXPECTED)
    assert zoo.paper_input_size("alexnet") == (227, 227)
    with pytest.raises(ValueError, match="unknown model 'vgg19'.*resnet50"):
        zoo.create_module("vgg19")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_paper_size_outputs_and_named_layers(name):
    out_shape, shapes, order = trace_taps(name)
    assert out_shape == (1, 10)
    assert len(order) == len(set(order)), "tap names must be unique"
    assert len(order) == COUNTS[name]
    assert order[-1] == "logits" and shapes["logits"] == (1, 10)
    for layer, shape in EXPECTED[name].items():
        assert shapes.get(layer) == shape, f"{name}.{layer}: {shapes.get(layer)} != {shape}"


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg_m", "resnet18"])
def test_other_input_sizes_reach_the_same_head(name):
    out_shape, shapes, _ = trace_taps(name, num_classes=3, size=(96, 128))
    assert out_shape == (1, 3)
    assert shapes.get("fc6", shapes.get("avgpool"))[0] == 1


def test_resnet_names_follow_torchvision_blocks():
    _, shapes, order = trace_taps("resnet18")
    block = [n[len("layer3.1."):] for n in order if n.startswith("layer3.1.")]
    assert block == ["conv1", "bn1", "relu1", "conv2", "bn2"]
    assert "layer3.1.downsample" not in shapes and "layer3.0.downsample" in shapes


def test_small_cnn_runs_under_jit_and_vmap():
    model = nets.SmallCNN(num_classes=5)
    x = jax.random.normal(jax.random.key(1), (4, 64, 64, 3))
    variables = model.init(jax.random.key(0), x[:1])
    batched = jax.jit(model.apply)(variables, x)
    per_example = jax.vmap(lambda xi: model.apply(variables, xi[None])[0])(x)
    assert batched.shape == (4, 5)
    np.testing.assert_allclose(batched, per_example, rtol=1e-5, atol=1e-5)


def test_resnet_train_mode_updates_batch_stats():
    model = nets.ResNet18(num_classes=2)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    train_step = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    _, updates = train_step(variables, x)
    before, after = variables["batch_stats"]["bn1"]["mean"], updates["batch_stats"]["bn1"]["mean"]
    assert not np.allclose(before, after)


def test_dropout_is_active_only_in_training():
    model = nets.AlexNet(num_classes=3)
    x = jax.random.normal(jax.random.key(1), (1, 64, 64, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    apply = jax.jit(model.apply, static_argnames="train")
    a, b = (apply(variables, x, train=True, rngs={"dropout": jax.random.key(k)}) for k in (1, 2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(apply(variables, x), apply(variables, x))


def test_max_pool_pads_with_minus_infinity():
    x = -1.0 - jnp.arange(16.0).reshape(1, 4, 4, 1)  # all negative: zero padding would win
    y = _layers.max_pool(x, 3, 2, pad=1)
    assert y.shape == (1, 2, 2, 1)
    assert float(y.max()) == -1.0 and bool((y < 0).all())


@given(size=st.integers(3, 40), window=st.integers(2, 3), stride=st.integers(1, 3), ceil=st.booleans())
def test_max_pool_matches_a_naive_loop(size, window, stride, ceil):
    x = np.random.default_rng(size).normal(size=(1, size, size + 1, 2)).astype(np.float32)
    y = np.asarray(_layers.max_pool(jnp.asarray(x), window, stride, ceil_mode=ceil))
    for axis, length in ((1, size), (2, size + 1)):
        rounding = np.ceil if ceil else np.floor
        out = int(rounding((length - window) / stride)) + 1
        out -= int(ceil and (out - 1) * stride >= length)
        assert y.shape[axis] == out
    i, j = y.shape[1] - 1, y.shape[2] - 1  # the last window, clipped at the border
    np.testing.assert_allclose(
        y[0, i, j], x[0, i * stride: i * stride + window, j * stride: j * stride + window].max((0, 1))
    )


@given(h=st.integers(1, 30), w=st.integers(1, 30), out=st.integers(1, 7))
def test_adaptive_avg_pool_matches_torch_windows(h, w, out):
    x = np.random.default_rng(h * 31 + w).normal(size=(2, h, w, 3)).astype(np.float32)
    y = np.asarray(_layers.adaptive_avg_pool(jnp.asarray(x), (out, out)))
    for i in range(out):
        for j in range(out):
            hs, he = (i * h) // out, -((-(i + 1) * h) // out)
            ws, we = (j * w) // out, -((-(j + 1) * w) // out)
            np.testing.assert_allclose(y[:, i, j], x[:, hs:he, ws:we].mean((1, 2)), rtol=1e-5, atol=1e-6)


def test_local_response_norm_matches_the_caffe_formula():
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 7)).astype(np.float32)
    y = np.asarray(_layers.local_response_norm(jnp.asarray(x), size=5, alpha=5e-4, beta=0.75, k=2.0))
    for c in range(7):
        window = (x[..., max(c - 2, 0): c + 3] ** 2).sum(-1)
        np.testing.assert_allclose(y[..., c], x[..., c] / (2.0 + 5e-4 / 5 * window) ** 0.75, rtol=1e-5)


def test_create_gives_a_ready_model_in_one_call():
    key = jax.random.key(3)
    model = zoo.create("small_cnn", num_classes=6, key=key)
    module = zoo.create_module("small_cnn", num_classes=6)
    expected = module.init(key, jnp.zeros((1, 64, 64, 3)))
    jax.tree.map(np.testing.assert_array_equal, model.params, expected)
    x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
    np.testing.assert_array_equal(model(x), module.apply(expected, x))
    # The zoo's parameters do not depend on the size initialized on (adaptive pools before the dense layers).
    small = zoo.create("small_cnn", num_classes=6, key=key, input_size=16)
    jax.tree.map(np.testing.assert_array_equal, small.params, model.params)
    with pytest.raises(TypeError, match="key"):
        zoo.create("small_cnn", num_classes=6)
