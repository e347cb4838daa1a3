"""The interpretable conv layer and its filter loss (Zhang, Wu & Zhu, CVPR 2018) against the formulas."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from interp import layers
from interp import train as trainlib
from interp.layers.icnn import update_class_means


def test_templates_equal_the_formula():
    h, w = 5, 4
    positive, negative = layers.templates((h, w))
    tau = 0.5 / (h * w)
    assert positive.shape == (h * w, h, w) and negative == pytest.approx(-tau)
    for m, (mu_i, mu_j) in enumerate(itertools.product(range(h), range(w))):
        for i, j in itertools.product(range(h), range(w)):
            distance = abs(i - mu_i) / h + abs(j - mu_j) / w
            assert positive[m, i, j] == pytest.approx(tau * max(1 - 4 * distance, -1))


def test_the_mask_follows_the_peak_and_silences_the_rest():
    maps = np.full((2, 8, 8, 3), 0.5, np.float32)
    peaks = [[[1, 2], [6, 6], [3, 0]], [[7, 7], [0, 0], [4, 4]]]
    for b, c in itertools.product(range(2), range(3)):
        maps[b, peaks[b][c][0], peaks[b][c][1], c] = 9.0
    positions = layers.peak_positions(jnp.asarray(maps))
    assert positions.tolist() == peaks
    masks = layers.template_masks(positions, (8, 8), 4.0)
    for b, c in itertools.product(range(2), range(3)):
        i, j = peaks[b][c]
        assert masks[b, i, j, c] == 1.0
        assert masks[b, :, :, c].max() == 1.0  # nowhere else as high
    # Through the layer: an identity conv passes the maps, and the output vanishes beyond n/4 (L1) of the peak.
    layer = layers.InterpretableConv(3, kernel_size=1)
    params = {"params": {"conv": {"kernel": jnp.eye(3)[None, None], "bias": jnp.zeros(3)}}}
    out = np.asarray(layer.apply(params, jnp.asarray(maps)))
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    for b, c in itertools.product(range(2), range(3)):
        i, j = peaks[b][c]
        far = np.abs(rows - i) / 8 + np.abs(cols - j) / 8 >= 0.25
        assert out[b, i, j, c] == 9.0
        assert not out[b][far, c].any()
        assert out[b][~far, c].min() > 0


def mutual_information_directly(maps, alpha):
    """MI(X; T) per filter with probabilities, not logs, in float64."""
    b, h, w, c = maps.shape
    positive, negative = (np.asarray(t, np.float64) for t in layers.templates((h, w)))
    result = []
    for f in range(c):
        x = maps[..., f].astype(np.float64)
        fit = np.concatenate([np.einsum("bij,mij->bm", x, positive), negative * x.sum((1, 2))[:, None]], 1)
        likelihood = np.exp(fit) / np.exp(fit).sum(0, keepdims=True)  # p(x | T), [B, T]
        prior = np.r_[np.full(h * w, alpha / (h * w)), 1 - alpha]
        evidence = likelihood @ prior
        result.append(np.sum(prior * likelihood * np.log(likelihood / evidence[:, None])))
    return np.array(result)


def test_filter_loss_is_minus_the_mutual_information():
    maps = np.abs(np.random.default_rng(0).normal(size=(6, 4, 4, 3))).astype(np.float32) * 20
    np.testing.assert_allclose(layers.filter_loss(jnp.asarray(maps), 0.3),
                               -mutual_information_directly(maps, 0.3), rtol=1e-4, atol=1e-7)


def test_filter_loss_is_finite_for_silent_and_huge_maps():
    for maps in (jnp.zeros((4, 6, 6, 2)), jax.nn.relu(jax.random.normal(jax.random.key(0), (4, 6, 6, 2))) * 1e7):
        value, grad = jax.value_and_grad(lambda m: layers.filter_loss(m, 0.5).sum())(maps)
        assert np.isfinite(value) and np.isfinite(np.asarray(grad)).all()
    np.testing.assert_allclose(layers.filter_loss(jnp.zeros((4, 6, 6, 2))), 0.0, atol=1e-6)  # silence: no information


def test_one_place_on_positives_and_silence_on_negatives_beats_random_maps():
    rng = np.random.default_rng(1)
    part = np.zeros((16, 6, 6, 1), np.float32)
    for b in range(8):  # positives: one place, slightly jittered; negatives (8..15) silent
        part[b, 2 + rng.integers(0, 2), 3, 0] = 40.0
    scattered = np.abs(rng.normal(size=(16, 6, 6, 1))).astype(np.float32)
    scattered *= part.sum() / scattered.sum()  # the same total activation
    part_loss, scattered_loss = (float(layers.filter_loss(jnp.asarray(m), 0.5)[0]) for m in (part, scattered))
    assert part_loss < 10 * scattered_loss < 0  # measured: -0.0077 against -0.0001


def test_class_means_start_at_the_first_batch_and_then_move_slowly():
    means = jnp.zeros((3, 2))
    peaks = jnp.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    means = update_class_means(means, peaks, jnp.array([0, 0, 2]), 0.9)
    np.testing.assert_allclose(means, [[2.0, 1.0], [0.0, 0.0], [5.0, 5.0]])
    means = update_class_means(means, jnp.array([[12.0, 11.0]]), jnp.array([0]), 0.9)
    np.testing.assert_allclose(means, [[3.0, 2.0], [0.0, 0.0], [5.0, 5.0]])


@pytest.mark.parametrize("name, size, width, hw", [
    ("small_cnn", 64, 128, 8), ("alexnet", 227, 256, 13), ("vgg16", 224, 512, 14),
    ("vgg_m", 224, 512, 13), ("vgg_s", 224, 512, 18)])
def test_every_paper_backbone_takes_the_layer_on_its_last_conv(name, size, width, hw):
    from interp import nets

    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    module = layers.interpretable_cnn(name, 10)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)  # shapes only: no VGG-16 weights
    assert variables["params"]["after_last_conv"]["conv"]["kernel"].shape == (3, 3, width, width)
    model = nets.from_linen(module, variables)
    assert model.layer_shape(x, "icnn").shape == (1, hw, hw, width)
    assert model.layer_shape(x, "icnn_masked").shape == (1, hw, hw, width)
    assert model.layer_shape(x, "logits").shape == (1, 10)


def test_icnn_loss_reads_the_maps_by_tap_name():
    module = layers.interpretable_cnn("small_cnn", 6, channels=(4, 8, 8, 8))
    x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3))
    batch = {"image": x, "label": jnp.arange(8) % 6}
    state = trainlib.create_train_state(module, optax.sgd(0.0), x[:1], seed=0)
    loss = trainlib.classification_loss() + layers.icnn_loss(1.0, "single", positive_class=1)
    _, got = trainlib.make_train_step(loss, optax.sgd(0.0))(state, batch)
    maps = state.model().activations(x, "icnn")["icnn"]
    positive = jnp.broadcast_to((batch["label"] == 1)[:, None], (8, 8))
    np.testing.assert_allclose(got["filter_loss"], layers.filter_loss(maps, positive.mean(0)).mean(), rtol=1e-5)
    np.testing.assert_allclose(got["loss"], got["cross_entropy"] + float(
        layers.filter_loss(maps, positive.mean(0)).sum()), rtol=1e-5)
    with pytest.raises(ValueError, match=r"interpretable_cnn\(\.\.\., track_classes=True\)"):
        trainlib.make_train_step(trainlib.classification_loss() + layers.icnn_loss(1.0, "multi"),
                                 optax.sgd(0.0))(state, batch)
