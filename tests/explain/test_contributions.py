"""`explain.contributions`: the score split over a layer's filters, checked against NumPy transcriptions of the heads.

For a piecewise-linear head the split's bias must be the head's own bias on
the image's linear region (the head with its gates frozen, fed zeros), which
the transcriptions compute from the weights; the contributions are then the
rest of the score, filter by filter.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import explain, layers, nets
from interp.data import SynthParts

TOL = dict(rtol=1e-4, atol=1e-4)


def _with_biases(model, key, scale=0.2):
    """The model with every bias drawn at random, so that region biases are not zero."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(model.params)
    keys = jax.random.split(key, len(leaves))
    new = [leaf + scale * jax.random.normal(k, leaf.shape) if "bias" in jax.tree_util.keystr(path) else leaf
           for (path, leaf), k in zip(leaves, keys)]
    return model.replace(params=jax.tree.unflatten(treedef, new))


@pytest.fixture(scope="module")
def small_cnn():
    model = nets.zoo.create("small_cnn", num_classes=5, key=jax.random.key(0), input_size=32)
    return _with_biases(model, jax.random.key(1))


@pytest.fixture(scope="module")
def images():
    return jax.random.uniform(jax.random.key(2), (6, 32, 32, 3))


def _params(model, name):
    return {k: np.asarray(v, np.float64) for k, v in model.params["params"][name].items()}


def _head_above_relu3(model, maps, target):
    """NumPy: conv4 (3x3, same) + ReLU + global average pool + dense, gates frozen at `maps`.

    Returns the score, the region's bias and each relu3 filter's contribution.
    """
    conv, dense = _params(model, "conv4"), _params(model, "logits")
    maps = np.asarray(maps, np.float64)
    b, h, w, d = maps.shape
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], 3)  # [b, h, w, 9, d]
    kernel = conv["kernel"].reshape(9, d, -1)
    per_filter = np.einsum("bhwtd,tdk->bhwdk", patches, kernel)  # each input filter's part of conv4
    pre = per_filter.sum(3) + conv["bias"]
    gate = pre > 0
    weight = dense["kernel"][:, target] / (h * w)
    score = np.einsum("bhwk,k->b", np.maximum(pre, 0), weight) + dense["bias"][target]
    bias = np.einsum("bhwk,k,k->b", gate, conv["bias"], weight) + dense["bias"][target]
    filters = np.einsum("bhwdk,bhwk,k->bd", per_filter, gate, weight)
    return score, bias, filters


def test_small_cnn_split_at_relu3_is_the_frozen_head(small_cnn, images):
    split = explain.contributions(small_cnn, "relu3", images, target=3)
    maps = small_cnn.activations(images, "relu3")["relu3"]
    score, bias, filters = _head_above_relu3(small_cnn, maps, 3)
    np.testing.assert_allclose(split.score, score, **TOL)
    np.testing.assert_allclose(split.bias, bias, **TOL)
    np.testing.assert_allclose(split.filters, filters, **TOL)
    np.testing.assert_allclose(split.filters.sum(-1) + split.bias, small_cnn(images)[:, 3], **TOL)
    assert np.abs(bias - np.asarray(_params(small_cnn, "logits")["bias"][3])).max() > 1e-3  # the gates matter


def test_gap_head_mode_is_the_papers_scaled_weight(small_cnn, images):
    scale = explain.filter_scale(small_cnn, "relu4", images)
    split = explain.contributions(small_cnn, "relu4", images, target=1, scale=scale)
    dense = _params(small_cnn, "logits")
    np.testing.assert_allclose(split.bias, np.full(6, dense["bias"][1]), **TOL)
    np.testing.assert_allclose(split.mode, np.broadcast_to(scale * dense["kernel"][:, 1], (6, 128)), **TOL)
    np.testing.assert_allclose(split.mode * split.features, split.filters, **TOL)
    np.testing.assert_allclose(explain.tangent_error(small_cnn, "relu4", images, 1), 0.0, atol=1e-4)


def test_margin_score_and_many_targets_share_one_pass(small_cnn, images):
    targets = jnp.array([[0, 2, 4]] * 6)
    many = explain.contributions(small_cnn, "relu3", images, targets, score="margin")
    logits = np.asarray(small_cnn(images))
    for k in range(3):
        one = explain.contributions(small_cnn, "relu3", images, int(targets[0, k]), score="margin")
        np.testing.assert_allclose(many.filters[:, k], one.filters, **TOL)
        others = np.delete(logits, int(targets[0, k]), axis=1).max(1)
        np.testing.assert_allclose(many.score[:, k], logits[:, targets[0, k]] - others, **TOL)
        np.testing.assert_allclose(many.filters[:, k].sum(-1) + many.bias[:, k], many.score[:, k], **TOL)


def test_jit_and_chunks_agree_with_eager(small_cnn, images):
    eager = explain.contributions(small_cnn, "relu3", images, 2)
    jitted = jax.jit(lambda x: explain.contributions(small_cnn, "relu3", x, 2))(images)
    chunked = explain.contributions(small_cnn, "relu3", images, 2, batch_size=4)
    for other in (jitted, chunked):
        np.testing.assert_allclose(other.filters, eager.filters, **TOL)
        np.testing.assert_allclose(other.bias, eager.bias, **TOL)


def test_interpretable_small_cnn_split_at_its_unmasked_maps_has_the_dense_bias(images):
    module = layers.interpretable_cnn("small_cnn", 5)
    variables = module.init(jax.random.key(3), images[:1])
    model = _with_biases(nets.from_linen(module, variables), jax.random.key(4))
    split = explain.contributions(model, "icnn", images, 4)
    np.testing.assert_allclose(split.filters.sum(-1) + split.bias, model(images)[:, 4], **TOL)
    # Above `icnn`: relu(maps * mask), global average pool, dense; the region's bias is the dense bias alone.
    np.testing.assert_allclose(split.bias, np.full(6, _params(model, "logits")["bias"][4]), **TOL)
    assert float(jnp.std(split.mode[:, 0])) > 0  # the mask makes each image's mode its own


class _PoolMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        maps = nets.tap(jax.nn.relu(nn.Conv(6, (3, 3))(x)), "maps")
        pooled = nets.tap(maps.max((1, 2)), "pooled")
        hidden = jax.nn.relu(nn.Dense(8, name="hidden")(pooled))
        return nn.Dense(3, name="out")(hidden)


def test_plain_function_with_max_pool_and_mlp_head(images):
    module = _PoolMLP()
    variables = _with_biases(nets.from_linen(module, module.init(jax.random.key(5), images[:1])),
                             jax.random.key(6)).params

    def fn(x):
        return module.apply(variables, x)

    split = explain.contributions(fn, "maps", images, 1)
    maps = np.asarray(nets.as_model(fn).activations(images, "maps")["maps"], np.float64)
    hidden = {k: np.asarray(v, np.float64) for k, v in variables["params"]["hidden"].items()}
    out = {k: np.asarray(v, np.float64) for k, v in variables["params"]["out"].items()}
    pooled = maps.max((1, 2))
    gate = pooled @ hidden["kernel"] + hidden["bias"] > 0
    bias = (gate * hidden["bias"]) @ out["kernel"][:, 1] + out["bias"][1]
    filters = pooled * ((gate * out["kernel"][:, 1]) @ hidden["kernel"].T)
    np.testing.assert_allclose(split.bias, bias, **TOL)
    np.testing.assert_allclose(split.filters, filters, **TOL)


def test_a_smooth_head_is_a_first_order_approximation(images):
    module = _PoolMLP()
    variables = module.init(jax.random.key(7), images[:1])

    def smooth(x):
        maps = nets.as_model(lambda v: module.apply(variables, v)).activations(x, "maps")["maps"]
        return nets.tap(jax.nn.softplus(maps), "soft").mean((1, 2)) ** 2 @ jnp.ones((6, 2))

    split = explain.contributions(smooth, "soft", images, 0)
    np.testing.assert_allclose(split.filters.sum(-1) + split.bias, smooth(images)[:, 0], **TOL)
    assert float(explain.tangent_error(smooth, "soft", images, 0).min()) > 1e-3


def _planted(part_weights, extra_weights):
    """A network whose layer `detectors` is the part masks (and two more maps) pooled 4x4, under a linear head.

    Input: the image with the one-hot part masks stacked as channels after it.
    """
    weights = jnp.concatenate([part_weights, extra_weights])[:, None]

    def fn(x):
        masks = x[..., 3:]
        brightness = x[..., :3].mean(-1, keepdims=True)
        maps = jnp.concatenate([masks, brightness, jnp.ones_like(brightness)], -1)
        b, h, w, c = maps.shape
        pooled = maps.reshape(b, h // 4, 4, w // 4, 4, c).mean((2, 4))
        detectors = nets.tap(pooled, "detectors")
        return detectors.mean((1, 2)) @ weights + 0.5

    return fn


def test_planted_part_detectors_get_their_weights_and_name_the_favoured_parts():
    data = SynthParts(image_size=32, num_classes=6)
    batch = data.batch(jnp.arange(48))
    names = data.part_names
    one_hot = jax.nn.one_hot(batch["part_mask"] - 1, len(names))  # part id 0 (none) is all zeros
    x = jnp.concatenate([batch["image"], one_hot], -1)
    favoured = [names.index("head"), names.index("wheel")]
    part_weights = jnp.full(len(names), 0.1).at[jnp.asarray(favoured)].set(3.0)
    fn = _planted(part_weights, jnp.array([0.5, 0.2]))
    split = explain.contributions(fn, "detectors", x, 0)
    area = np.asarray(one_hot).mean((1, 2))
    np.testing.assert_allclose(split.filters[:, :len(names)], area * np.asarray(part_weights), **TOL)
    np.testing.assert_allclose(split.bias, 0.5, **TOL)
    parts = explain.PartMatrix.from_labels([*range(len(names)), len(names), -1],
                                           [f"part/{n}" for n in names] + ["texture/brightness"],
                                           ["part"] * len(names) + ["texture"])
    per_part = np.asarray(split.parts(parts))[:, :len(names)]
    has = area[:, favoured].sum(1) > 0
    assert set(per_part[has].argmax(1)) <= set(favoured)
    shares = explain.evidence_shares(split, parts)
    np.testing.assert_allclose(sum(shares.values()), 1.0, **TOL)
    evidence = np.maximum(np.asarray(split.filters), 0)
    np.testing.assert_allclose(shares["unexplained"], evidence[:, -1] / evidence.sum(1), **TOL)
    np.testing.assert_allclose(shares["texture"], evidence[:, -2] / evidence.sum(1), **TOL)


def test_category_matrix_assigns_each_filter_its_strongest_class():
    means = np.array([[0.0, 2.0, 0.1, 0.0], [0.0, 1.0, 0.5, 0.0], [0.0, 0.2, 0.4, 0.3]])
    matrix = explain.category_matrix(means, ["cat", "dog", "car"])
    assert matrix.names == ("object/cat", "object/dog", "object/car")
    np.testing.assert_array_equal(matrix.matrix, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_bad_inputs_are_named(small_cnn, images):
    with pytest.raises(ValueError, match="layer: 'gap' is not a spatial layer"):
        explain.contributions(small_cnn, "gap", images, 0)
    with pytest.raises(ValueError, match="layer: unknown layer 'relu9'"):
        explain.contributions(small_cnn, "relu9", images, 0)
    with pytest.raises(ValueError, match="target: contributions explain one class"):
        explain.contributions(small_cnn, "relu3", images, None)
    with pytest.raises(ValueError, match=r"scale: expected \[D\] = \[64\]"):
        explain.contributions(small_cnn, "relu3", images, 0, scale=jnp.ones(3))
    with pytest.raises(ValueError, match="score: expected one of"):
        explain.contributions(small_cnn, "relu3", images, 0, score="prob")
    with pytest.raises(ValueError, match="NaN"):
        explain.contributions(small_cnn, "relu3", images.at[0, 0, 0, 0].set(jnp.nan), 0)
    split = explain.contributions(small_cnn, "relu3", images, 0)
    wrong = explain.PartMatrix.from_labels(np.zeros(10, int), ["part/head"], "part")
    with pytest.raises(ValueError, match=r"parts: expected a filter->part matrix with one column per filter \(64\)"):
        split.parts(wrong)
    with pytest.raises(ValueError, match="columns sum to at most 1"):
        explain.evidence_shares(split, explain.PartMatrix(np.ones((2, 64)), ("a", "b"), ("part", "part")))
