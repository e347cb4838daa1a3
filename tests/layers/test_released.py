"""The released interpretable CNN as a network: its head, its twin, its losses, its optimizer, its training step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from interp import layers, nets
from interp import train as trainlib
from interp.data import in_memory
from interp.layers.masked_conv import BETA_INIT

SMALL = dict(channels=(4, 8, 8, 8), pools=(True, False, False, False))


def small_net(masked=True, outputs=3, **kw):
    return layers.released_icnn("small_cnn", outputs, masked=masked, fc_width=16, dropout=0.0, **SMALL, **kw)


@pytest.mark.parametrize("name, size, width, side, pooled", [
    ("small_cnn", 64, 128, 16, 8), ("alexnet", 227, 256, 13, 6), ("vgg16", 224, 512, 14, 7),
    ("vgg_m", 224, 512, 13, 6), ("vgg_s", 224, 512, 18, 8)])
def test_every_released_backbone_takes_the_head_on_its_top_relu(name, size, width, side, pooled):
    kw = {"pools": (True, False, False, False)} if name == "small_cnn" else {}
    module = layers.released_icnn(name, 5, **kw)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)  # shapes only: no VGG-16 weights
    params = variables["params"]
    assert params["icnn"]["kernel"].shape == (3, 3, width, width) and params["icnn"]["beta"].shape == (width,)
    assert params["fc7"]["kernel"].shape == (pooled, pooled, width, module.fc_width)  # an fc layer as a conv
    assert variables["icnn_stats"]["icnn"]["slice_mag"].shape == (width, 5)
    model = nets.from_linen(module, variables)
    assert model.layer_shape(x, "icnn").shape == (1, side, side, width)
    assert model.layer_shape(x, "icnn_pool").shape == (1, pooled, pooled, width)
    assert model.layer_shape(x, "logits").shape == (1, 5)
    assert "fc6" not in model.layer_names(x)  # the zoo's own head is cut off


def test_twins_share_their_initial_weights_and_load_the_pretrained_backbone():
    x = jnp.zeros((1, 32, 32, 3))
    masked, twin = (small_net(m).init(jax.random.key(0), x) for m in (True, False))
    assert "beta" not in twin["params"]["icnn"] and "icnn_stats" not in twin
    without_beta = jax.tree_util.tree_map_with_path(lambda p, a: a, masked["params"])
    for name in ("icnn", "fc7"):
        del without_beta[name]["beta"]
    jax.tree.map(np.testing.assert_array_equal, without_beta, twin["params"])
    assert float(jnp.std(masked["params"]["fc7"]["kernel"])) == pytest.approx(0.01, rel=0.05)  # the release's init
    classifier = nets.create_module("small_cnn", num_classes=7, **SMALL).init(jax.random.key(1), x)
    loaded = layers.load_backbone(masked, classifier)
    jax.tree.map(np.testing.assert_array_equal, loaded["params"]["backbone"],
                 {k: v for k, v in classifier["params"].items() if k != "logits"})
    jax.tree.map(np.testing.assert_array_equal, loaded["params"]["icnn"], masked["params"]["icnn"])
    with pytest.raises(ValueError, match="pretrained: expected the backbone's layers conv1, conv2, conv3, conv4; "
                                         "missing conv4"):
        layers.load_backbone(masked, {"params": {k: v for k, v in classifier["params"].items() if k != "conv4"}})
    wider = nets.create_module("small_cnn", num_classes=7, channels=(4, 8, 8, 16), pools=SMALL["pools"])
    with pytest.raises(ValueError, match=r"pretrained: conv4/bias has shape \[16\], the backbone \[8\]"):
        layers.load_backbone(masked, wider.init(jax.random.key(1), x))


def test_the_logistic_loss_is_the_releases():
    logits = jnp.array([[2.0, -1.0, 0.5], [-0.5, 0.3, 3.0]])
    forward = trainlib.Forward(logits, {}, {}, None, None)
    value, metrics, _ = layers.logistic_loss(3)(forward, {"label": jnp.array([0, 1])})
    signs = np.array([[1, -1, -1], [-1, 1, -1]])
    np.testing.assert_allclose(value, np.log1p(np.exp(-signs * np.asarray(logits))).sum(1).mean(), rtol=1e-6)
    assert metrics["accuracy"] == 0.5
    one = trainlib.Forward(jnp.array([[1.5], [-2.0], [0.2]]), {}, {}, None, None)
    value, metrics, _ = layers.logistic_loss(1)(one, {"label": jnp.array([1, 1, 0])})
    np.testing.assert_allclose(value, np.mean(np.log1p(np.exp([-1.5, 2.0, 0.2]))), rtol=1e-6)
    assert metrics["accuracy"] == pytest.approx(1 / 3)


def test_a_training_step_adds_the_injected_gradients_to_autograd():
    """The step's gradient equals an independent formulation: autograd of the task loss, plus the injected
    terms as a linear loss `sum(stop_gradient(g / B) * x)` on each masked layer's input, plus beta's pull."""
    module = small_net()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(8, 32, 32, 3)), jnp.float32)
    labels = jnp.array([0, 1, 2, 0, 1, 2, 0, 0])
    density = np.array([0.5, 0.25, 0.25])
    state = trainlib.create_train_state(module, optax.sgd(1.0), x[:1], seed=0)
    slice_mag = {name: jnp.asarray(rng.uniform(0.1, 1.0, (8, 3)), jnp.float32) for name in layers.MASKED_LAYERS}
    state = state.replace(model_state={"icnn_stats": {n: {"slice_mag": v} for n, v in slice_mag.items()}},
                          step=jnp.asarray(25, jnp.int32))  # epoch 3 of 10 steps
    loss = layers.logistic_loss(3) + layers.released_filter_loss(density, steps_per_epoch=10)
    new, metrics = jax.jit(trainlib.make_train_step(loss, optax.sgd(1.0)))(state, {"image": x, "label": labels})
    got = jax.tree.map(lambda a, b: a - b, state.params, new.params)  # sgd(1.0): the gradient

    signs = layers.signed_labels(labels, 3)
    inputs = {"icnn": "relu4", "fc7": "icnn_pool"}

    @jax.jit  # one program, not hundreds of eagerly dispatched ones
    def independent(model, x):
        acts = model.activations(x, list(inputs.values()))
        injected, pulls = {}, {}
        for layer, source in inputs.items():
            beta = model.params["params"][layer]["beta"]
            rows, cols, sigma = layers.mask_center(acts[source])
            mask = layers.released_mask(rows, cols, beta, acts[source].shape[1:3])
            guide = layers.mask_guide(signs, slice_mag[layer], density, 3.0)
            injected[source] = layers.injected_gradient(acts[source], mask, guide) / 8
            pulls[layer] = layers.beta_gradient(acts[source], mask, sigma, beta, guide) / 8

        def surrogate(params):
            m = model.replace(params={**model.params, "params": params})
            task = jax.nn.softplus(-signs * m(x)).sum(-1).mean()  # through the masks, nothing injected
            linear = sum(jnp.sum(jax.lax.stop_gradient(g) * a) for g, a in
                         zip(injected.values(), m.activations(x, list(injected)).values()))
            return task + linear + sum(jnp.sum(pulls[n] * params[n]["beta"]) for n in pulls)

        return jax.grad(surrogate)(model.params["params"]), acts, injected

    want, acts, injected = independent(state.model(), x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7), got, want)
    assert float(jnp.abs(injected["relu4"]).max()) > 1e-8  # the injected term is there to find
    # The class means are updated after the step, from the batch's masked-layer inputs.
    for layer, source in inputs.items():
        np.testing.assert_allclose(new.model_state["icnn_stats"][layer]["slice_mag"],
                                   layers.update_slice_mag(slice_mag[layer], acts[source], signs), rtol=1e-6)
    np.testing.assert_allclose(metrics["beta_icnn"], BETA_INIT)


def test_the_filter_loss_needs_masked_layers():
    module = small_net(masked=False)
    x = jnp.zeros((8, 32, 32, 3))
    state = trainlib.create_train_state(module, optax.sgd(1.0), x[:1], seed=0)
    loss = layers.logistic_loss(3) + layers.released_filter_loss([1 / 3] * 3, 10)
    with pytest.raises(ValueError, match="loss: released_filter_loss trains the masked layers icnn, fc7"):
        trainlib.make_train_step(loss, optax.sgd(1.0))(state, {"image": x, "label": jnp.zeros(8, jnp.int32)})


def test_released_sgd_is_matconvnets_update():
    rng = np.random.default_rng(0)
    shapes = {"backbone": {"conv1": {"kernel": (2, 3), "bias": (3,)}, "conv4": {"kernel": (3, 2), "bias": (2,)}},
              "icnn": {"kernel": (2, 2), "bias": (2,), "beta": (2,)}, "logits": {"kernel": (2, 1), "bias": (1,)}}
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s), jnp.float32), shapes,
                          is_leaf=lambda s: isinstance(s, tuple))
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params) for _ in range(3)]
    rates = [0.1, 0.03]
    optimizer = layers.released_sgd(rates, steps_per_epoch=2, top_conv="conv4")
    opt_state, ours = optimizer.init(params), params
    for g in grads:
        updates, opt_state = optimizer.update(g, opt_state, ours)
        ours = optax.apply_updates(ours, updates)

    # our_cnn_train.m: parDer = g + decay * w; state = 0.9 * state - parDer; w += lr * lrMult * state.
    multipliers = {"backbone": {"conv1": {"kernel": 1, "bias": 1}, "conv4": {"kernel": 1, "bias": 5}},
                   "icnn": {"kernel": 1, "bias": 2, "beta": 0.05}, "logits": {"kernel": 1, "bias": 2}}
    flat_p, tree = jax.tree.flatten_with_path(params)
    flat_m = jax.tree.leaves(multipliers)
    weights = [np.asarray(p, np.float64) for _, p in flat_p]
    momenta = [np.zeros_like(w) for w in weights]
    for step, g in enumerate(grads):
        lr = rates[step // 2]
        for i, ((path, _), gi) in enumerate(zip(flat_p, jax.tree.leaves(g))):
            decay = 5e-4 if path[-1].key == "kernel" else 0.0
            momenta[i] = 0.9 * momenta[i] - (np.asarray(gi) + decay * weights[i])
            weights[i] = weights[i] + lr * flat_m[i] * momenta[i]
    for (_, got), want in zip(jax.tree.flatten_with_path(ours)[0], weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_epoch_rates_decay_tenfold_then_stay():
    rates = layers.epoch_learning_rates(1e-2, 6, 3)
    np.testing.assert_allclose(rates, [1e-2, 10 ** -2.5, 1e-3, 1e-3, 1e-3, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(layers.epoch_learning_rates(1.0, 3), [1.0, 10 ** -0.5, 0.1], rtol=1e-6)


def test_gradient_norms_scale_with_the_injected_constant():
    module = small_net(outputs=1)
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(8, 32, 32, 3)), jnp.float32)
    model = nets.from_linen(module, module.init(jax.random.key(0), x[:1]))
    supervision = layers.Supervision(layers.signed_labels(jnp.arange(8) % 2, 1), jnp.float32(2), jnp.ones(1))
    base, tenfold = (layers.gradient_norms(model, x, supervision, strength=s) for s in (1e-5, 1e-4))
    for layer in layers.MASKED_LAYERS:
        assert base[layer]["task"] == pytest.approx(tenfold[layer]["task"])
        assert tenfold[layer]["injected"] == pytest.approx(10 * base[layer]["injected"], rel=1e-4)
        assert base[layer]["ratio"] == pytest.approx(base[layer]["injected"] / base[layer]["task"])


def test_a_masked_layer_keeps_its_conv_receptive_field():
    x = jnp.zeros((1, 32, 32, 3))
    fields = [nets.receptive_fields(nets.from_linen(m, m.init(jax.random.key(0), x)), x)
              for m in (small_net(True), small_net(False))]
    assert fields[0]["icnn"] == fields[1]["icnn"] and not fields[0]["icnn"].is_global
    assert fields[0]["icnn"].stride == (4, 4)


def test_fine_tuning_starts_from_the_pretrained_backbone(tmp_path):
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(16, 32, 32, 3)), jnp.float32)
    data = in_memory({"image": np.asarray(x), "label": np.arange(16) % 3})
    classifier = nets.create_module("small_cnn", num_classes=3, **SMALL).init(jax.random.key(3), x[:1])
    for masked in (True, False):
        state = trainlib.fit(small_net(masked), layers.released_sgd([0.0], 2), data, num_steps=1, batch_size=8,
                             workdir=tmp_path / str(masked), loss=layers.logistic_loss(3), progress=False,
                             initialize=lambda v: layers.load_backbone(v, classifier))
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params["backbone"]),
                     {k: v for k, v in classifier["params"].items() if k != "logits"})
