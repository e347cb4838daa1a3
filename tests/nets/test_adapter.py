"""The adapter reads and differentiates named layers of Linen, NNX and plain functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

from interp import nets
from interp.nets import adapter, tap

KEY = jax.random.key(0)


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def init_params(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (3, 3, 3, 4)) * 0.3,
        "w2": jax.random.normal(k2, (4, 5)) * 0.3,
    }


def hand_forward(params, x):
    """The network written without any marks: the reference."""
    h = conv(x, params["w1"])
    r = jnp.maximum(h, 0)
    g = r.mean(axis=(1, 2))
    return {"conv": h, "relu": r, "gap": g, "logits": g @ params["w2"]}


def tapped(params, x):
    h = tap(conv(x, params["w1"]), "conv")
    r = tap(jax.nn.relu(h), "relu")
    # A nested jit: the adapter must see through call boundaries.
    g = jax.jit(lambda r: tap(r.mean(axis=(1, 2)), "gap"))(r)
    return tap(g @ params["w2"], "logits")


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = tap(nn.Conv(4, (3, 3), use_bias=False, name="c")(x), "conv")
        r = tap(nn.relu(h), "relu")
        g = tap(r.mean(axis=(1, 2)), "gap")
        return tap(nn.Dense(5, use_bias=False, name="d")(g), "logits")


class NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.c = nnx.Conv(3, 4, (3, 3), use_bias=False, rngs=rngs)
        self.d = nnx.Linear(4, 5, use_bias=False, rngs=rngs)

    def __call__(self, x):
        h = tap(self.c(x), "conv")
        r = tap(nnx.relu(h), "relu")
        g = tap(r.mean(axis=(1, 2)), "gap")
        return tap(self.d(g), "logits")


def three_models():
    """The same network as a plain function, a Linen module and an NNX module."""
    params = init_params(KEY)
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    plain = adapter.from_function(tapped, params, input_spec=(None, None, 3))
    module = LinenNet()
    variables = {"params": {"c": {"kernel": params["w1"]}, "d": {"kernel": params["w2"]}}}
    linen = adapter.from_linen(module, variables)
    nnx_net = NnxNet(nnx.Rngs(0))
    nnx_net.c.kernel[...] = params["w1"]
    nnx_net.d.kernel[...] = params["w2"]
    return params, x, {"plain": plain, "linen": linen, "nnx": adapter.from_nnx(nnx_net)}


@pytest.mark.parametrize("kind", ["plain", "linen", "nnx"])
def test_activations_equal_hand_written_forward(kind):
    params, x, models = three_models()
    model = models[kind]
    expected = hand_forward(params, x)
    acts = model.activations(x, ["conv", "relu", "gap", "logits"])
    for name, value in expected.items():
        np.testing.assert_allclose(acts[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(model(x), expected["logits"], rtol=1e-5, atol=1e-6)
    assert model.layer_names(x) == ("conv", "relu", "gap", "logits")


@pytest.mark.parametrize("kind", ["plain", "linen", "nnx"])
def test_grads_equal_explicitly_split_function(kind):
    params, x, models = three_models()
    targets = jnp.array([1, 3])

    def score(logits):
        return logits[jnp.arange(2), targets]

    scores, acts, grads = models[kind].activations_and_grads(x, ["relu", "gap"], score)

    # Split by hand: the head from 'relu' on, and the head from 'gap' on.
    def head_from_relu(r):
        return score(r.mean(axis=(1, 2)) @ params["w2"]).sum()

    def head_from_gap(g):
        return score(g @ params["w2"]).sum()

    ref = hand_forward(params, x)
    np.testing.assert_allclose(scores, score(ref["logits"]), rtol=1e-5)
    np.testing.assert_allclose(acts["relu"], ref["relu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["relu"], jax.grad(head_from_relu)(ref["relu"]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grads["gap"], jax.grad(head_from_gap)(ref["gap"]), rtol=1e-5, atol=1e-7)


def test_per_example_grads_do_not_mix():
    params, x, models = three_models()
    model = models["plain"]

    def score(logits):
        return logits[:, 0]

    _, _, both = model.activations_and_grads(x, "conv", score)
    _, _, first = model.activations_and_grads(x[:1], "conv", score)
    np.testing.assert_allclose(both["conv"][:1], first["conv"], rtol=1e-5, atol=1e-7)


def test_jit_vmap_and_eager_agree():
    _, x, models = three_models()
    model = models["linen"]
    eager = model.activations(x, "relu")["relu"]
    jitted = jax.jit(lambda m, x: m.activations(x, "relu"))(model, x)["relu"]
    per_example = jax.vmap(lambda xi: model.activations(xi[None], "relu")["relu"][0])(x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(per_example, eager, rtol=1e-6, atol=1e-7)


def test_model_is_a_pytree_of_its_params():
    params, x, models = three_models()
    model = models["plain"]
    assert len(jax.tree.leaves(model)) == len(jax.tree.leaves(params))
    doubled = jax.tree.map(lambda p: 2 * p, model)
    assert isinstance(doubled, adapter.Model)
    np.testing.assert_allclose(doubled.params["w2"], 2 * params["w2"])
    zeroed = model.replace(params=jax.tree.map(jnp.zeros_like, params))
    np.testing.assert_array_equal(zeroed(x), 0.0)


def test_unknown_layer_lists_known_names():
    _, x, models = three_models()
    with pytest.raises(ValueError, match=r"unknown layer 'conv9'; known layers: conv, relu, gap, logits"):
        models["linen"].activations(x, ["relu", "conv9"])
    with pytest.raises(ValueError, match=r"layer: unknown layer 'conv9'; known layers: conv, relu, gap, logits"):
        models["linen"].layer_shape(x, "conv9")
    assert models["linen"].layer_shape(x, "relu") == models["linen"].layer_shapes(x)["relu"]


def test_bad_input_is_named():
    _, x, models = three_models()
    model = models["plain"]
    with pytest.raises(ValueError, match=r"x: expected shape \[batch, \*, \*, 3\], got \[6, 6, 3\]"):
        model(x[0])
    with pytest.raises(ValueError, match=r"x: expected shape"):
        model(x[..., :2])
    with pytest.raises(ValueError, match="x: contains NaN"):
        model(x.at[0, 0, 0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="x: expected a floating-point array"):
        model(x.astype(jnp.int32))
    with pytest.raises(ValueError, match="score_fn: expected per-example scores"):
        model.activations_and_grads(x, "gap", lambda logits: logits)


def test_repeated_layer_names_are_rejected():
    def twice(x):
        return tap(tap(x, "same") * 2, "same")

    with pytest.raises(ValueError, match="repeated: same"):
        adapter.from_function(twice).activations(jnp.ones((1, 2)), "same")


def test_layer_inside_control_flow_is_a_clear_error():
    def scanned(x):
        def body(carry, _):
            return tap(carry * 2, "inner"), None

        return jax.lax.scan(body, x, None, length=2)[0]

    with pytest.raises(NotImplementedError, match="inside 'scan'"):
        adapter.from_function(scanned).activations(jnp.ones((1, 2)), "inner")


def test_a_layer_owns_the_params_that_reach_its_tap_without_another():
    params, x, models = three_models()
    plain, linen = models["plain"], models["linen"]
    # The plain function: conv owns w1; logits owns w2 (reached through the jitted gap).
    np.testing.assert_array_equal(plain.layer_params(x, "conv")["w1"], params["w1"])
    assert list(plain.layer_params(x, "logits")) == ["w2"]
    assert list(linen.layer_params(x, "conv")) == ["c/kernel"]
    assert list(linen.layer_params(x, "logits")) == ["d/kernel"]
    nnx_paths = list(models["nnx"].layer_params(x, "conv"))
    assert len(nnx_paths) == 1 and "kernel" in nnx_paths[0], nnx_paths


def test_zoo_layers_own_their_kernels_biases_and_batchnorm():
    from interp import nets

    x = jnp.zeros((1, 32, 32, 3))
    small = nets.SmallCNN(num_classes=6)
    small = adapter.from_linen(small, small.init(KEY, x))
    assert list(small.layer_params(x, "conv4")) == ["conv4/bias", "conv4/kernel"]
    assert list(small.layer_params(x, "logits")) == ["logits/bias", "logits/kernel"]
    resnet = nets.ResNet18(num_classes=3)
    resnet = adapter.from_linen(resnet, resnet.init(KEY, x))
    assert list(resnet.layer_params(x, "layer1.0.conv1")) == ["layer1_0/conv1/kernel"]
    # BatchNorm's scale and bias, not its running statistics (no trainable parameters).
    assert list(resnet.layer_params(x, "layer1.0.bn1")) == ["layer1_0/bn1/bias", "layer1_0/bn1/scale"]
    assert list(resnet.layer_params(x, "layer2.0.downsample")) == [
        "layer2_0/downsample_bn/bias", "layer2_0/downsample_bn/scale", "layer2_0/downsample_conv/kernel"]


def test_replace_and_reinitialize_round_trip():
    params, x, models = three_models()
    model = models["linen"]
    kernel = model.layer_params(x, "conv")["c/kernel"]
    changed = model.replace_layer_params(x, "conv", {"c/kernel": 2 * kernel})
    np.testing.assert_array_equal(changed.layer_params(x, "conv")["c/kernel"], 2 * kernel)
    np.testing.assert_array_equal(changed.layer_params(x, "logits")["d/kernel"], params["w2"])
    np.testing.assert_allclose(changed.activations(x, "conv")["conv"], 2 * model.activations(x, "conv")["conv"],
                               rtol=1e-6)
    again = changed.replace_layer_params(x, "conv", model.layer_params(x, "conv"))
    jax.tree.map(np.testing.assert_array_equal, again.params, model.params)

    redrawn = model.reinitialize(x, ["conv"], jax.random.key(3))
    new = redrawn.layer_params(x, "conv")["c/kernel"]
    assert not np.allclose(new, kernel)
    np.testing.assert_allclose(np.std(new), np.std(kernel), rtol=0.3)
    np.testing.assert_array_equal(redrawn.layer_params(x, "logits")["d/kernel"], params["w2"])
    kept = model.reinitialize(x, ["conv"], jax.random.key(3), where=jnp.array([False]))
    jax.tree.map(np.testing.assert_array_equal, kept.params, model.params)
    # The draw of a layer does not depend on the others redrawn with it.
    both = model.reinitialize(x, ["logits", "conv"], jax.random.key(3))
    np.testing.assert_array_equal(both.layer_params(x, "conv")["c/kernel"], new)


def test_layer_param_errors_are_named():
    _, x, models = three_models()
    model = models["linen"]
    with pytest.raises(ValueError, match="unknown layer 'nope'; known layers: conv, relu, gap, logits"):
        model.layer_params(x, "nope")
    with pytest.raises(ValueError, match="'relu' owns no parameters; layers with parameters: conv, logits"):
        model.reinitialize(x, ["relu"], KEY)
    with pytest.raises(ValueError, match=r"values: expected the parameters of 'conv' \(c/kernel\)"):
        model.replace_layer_params(x, "conv", {"d/kernel": jnp.zeros((4, 5))})
    with pytest.raises(ValueError, match=r"values: 'c/kernel' must be float32 \[3, 3, 3, 4\]"):
        model.replace_layer_params(x, "conv", {"c/kernel": jnp.zeros((3, 3, 3, 5))})
    with pytest.raises(ValueError, match="bias: expected"):
        model.reinitialize(x, ["conv"], KEY, bias="other")


def test_a_model_jits_as_a_function_and_as_an_argument():
    model = nets.create("small_cnn", 6, key=jax.random.key(0), input_size=32)
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
    np.testing.assert_allclose(jax.jit(model)(x), model(x), rtol=1e-5, atol=1e-6)
    doubled = model.replace(params=jax.tree.map(lambda p: 2 * p, model.params))
    forward = jax.jit(lambda m, x: m(x))
    np.testing.assert_allclose(forward(doubled, x), doubled(x), rtol=1e-5, atol=1e-6)
    assert model != doubled and model == model  # identity, not array comparison
