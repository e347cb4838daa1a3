"""Dataset examples: streamed top-k against brute force, crops against slicing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import nets
from interp.featviz import (
    ReceptiveField,
    TopK,
    crop_patches,
    dataset_examples,
    receptive_fields,
    top_k_init,
    top_k_update,
)


def brute_force(acts, indices, k, mode):
    """Top-k per channel by sorting every candidate of the whole dataset in numpy."""
    acts = np.asarray(acts)
    spatial = acts.ndim == 4
    grid = acts if spatial else acts[:, None, None, :]
    n, h, w, c = grid.shape
    scores, owners, positions = [], [], []
    for ch in range(c):
        flat = grid[..., ch].reshape(n, h * w)
        if mode == "images":
            cand, who, where = flat.max(1), np.arange(n), flat.argmax(1)
        else:
            cand, who, where = flat.reshape(-1), np.repeat(np.arange(n), h * w), np.tile(np.arange(h * w), n)
        order = np.argsort(-cand, kind="stable")[:k]
        scores.append(cand[order])
        owners.append(np.asarray(indices)[who[order]])
        pos = np.stack([where[order] // w, where[order] % w], -1)
        positions.append(pos if spatial else np.full_like(pos, -1))
    return np.stack(scores), np.stack(owners), np.stack(positions)


def assert_same(top, expected):
    np.testing.assert_allclose(top.scores, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(top.indices, expected[1])
    np.testing.assert_array_equal(top.positions, expected[2])


@pytest.mark.parametrize("mode", ["images", "patches"])
@pytest.mark.parametrize("shape", [(37, 3, 4, 5), (37, 6)])
@pytest.mark.parametrize("batch", [8, 10, 37])
def test_streamed_top_k_equals_brute_force(mode, shape, batch):
    acts = jax.random.normal(jax.random.key(0), shape)
    indices = jax.random.permutation(jax.random.key(1), 1000)[: shape[0]]  # arbitrary dataset ids
    state = top_k_init(shape[-1], 6)
    for s in range(0, shape[0], batch):  # the last batch is ragged for 8 and 10
        state = top_k_update(state, acts[s : s + batch], indices[s : s + batch], mode=mode)
    assert_same(state, brute_force(acts, indices, 6, mode))


def test_padding_rows_and_short_streams():
    acts = jax.random.normal(jax.random.key(2), (4, 2, 2, 3))
    padded = jnp.concatenate([acts, jnp.full((2, 2, 2, 3), 100.0)])  # huge but padding
    state = top_k_update(top_k_init(3, 5), padded, jnp.array([0, 1, 2, 3, -1, -1]))
    # Only four images were seen: the fifth slot stays empty.
    np.testing.assert_array_equal(state.indices[:, 4], -1)
    assert bool(jnp.all(state.scores[:, 4] == -jnp.inf))
    expected = brute_force(acts, np.arange(4), 4, "images")
    assert_same(TopK(state.scores[:, :4], state.indices[:, :4], state.positions[:, :4]), expected)


def test_bad_arguments_raise():
    state = top_k_init(3, 2)
    with pytest.raises(ValueError, match="acts"):
        top_k_update(state, jnp.zeros((2, 4, 4, 5)), jnp.arange(2))
    with pytest.raises(ValueError, match="indices"):
        top_k_update(state, jnp.zeros((2, 4, 4, 3)), jnp.arange(3))
    with pytest.raises(ValueError, match="mode"):
        top_k_update(state, jnp.zeros((2, 3)), jnp.arange(2), mode="pixels")
    with pytest.raises(ValueError, match="k"):
        top_k_init(3, 0)


@pytest.fixture(scope="module")
def small_cnn():
    module = nets.create_module("small_cnn", num_classes=3)
    return nets.from_linen(module, jax.jit(module.init)(jax.random.key(3), jnp.zeros((1, 32, 32, 3))))


@pytest.mark.parametrize("mode", ["images", "patches"])
@pytest.mark.parametrize("batch", [7, 16])
def test_dataset_examples_equals_brute_force(small_cnn, mode, batch):
    images = jax.random.uniform(jax.random.key(4), (30, 32, 32, 3))
    ids = np.asarray(jax.random.permutation(jax.random.key(5), 500)[:30])
    # conv2 is before the ReLU, so random data has no ties.
    acts = jax.jit(lambda m, x: m.activations(x, "conv2")["conv2"])(small_cnn, images)
    pairs = ((images[s : s + batch], ids[s : s + batch]) for s in range(0, 30, batch))
    assert_same(dataset_examples(small_cnn, "conv2", pairs, 5, mode=mode), brute_force(acts, ids, 5, mode))
    # Bare image batches are numbered in stream order.
    counted = dataset_examples(small_cnn, "conv2", (images[s : s + batch] for s in range(0, 30, batch)), 5, mode=mode)
    assert_same(counted, brute_force(acts, np.arange(30), 5, mode))


def test_dataset_examples_of_a_global_layer(small_cnn):
    images = jax.random.uniform(jax.random.key(6), (12, 32, 32, 3))
    top = dataset_examples(small_cnn, "logits", [images[:8], images[8:]], 4)
    assert_same(top, brute_force(jax.jit(lambda m, x: m(x))(small_cnn, images), np.arange(12), 4, "images"))
    with pytest.raises(ValueError, match="conv9"):
        dataset_examples(small_cnn, "conv9", [images], 4)


def brute_crop(image, top, left, size, fill):
    margin = 40
    padded = np.pad(np.asarray(image), ((margin, margin), (margin, margin), (0, 0)), constant_values=fill)
    return padded[top + margin : top + margin + size[0], left + margin : left + margin + size[1]]


def test_crops_match_slicing_including_borders():
    images = np.asarray(jax.random.uniform(jax.random.key(7), (6, 20, 24, 3)))
    rf = ReceptiveField(size=(7, 9), stride=(4, 3), start=(-3, -2))
    # Unit 0 of the first pair, (5, 8) reaching past the bottom/right, an
    # interior unit, and an empty slot.
    indices = np.array([[2, 5], [0, -1]], np.int32)
    positions = np.array([[[0, 0], [5, 8]], [[2, 3], [-1, -1]]], np.int32)
    top = TopK(jnp.zeros((2, 2)), jnp.asarray(indices), jnp.asarray(positions))
    calls = []

    def images_of(i):
        calls.append(np.asarray(i))
        return jnp.asarray(images)[i]

    from_array = np.asarray(crop_patches(images, top, rf, fill=0.5))
    from_fn = np.asarray(crop_patches(images_of, top, rf, fill=0.5))
    assert from_array.shape == (2, 2, 7, 9, 3)
    np.testing.assert_array_equal(from_array, from_fn)
    assert len(calls) == 1 and len(set(calls[0].tolist())) == len(calls[0])  # distinct indices, one call
    for c in range(2):
        for r in range(2):
            if indices[c, r] < 0:
                expected = np.full((7, 9, 3), 0.5, np.float32)
            else:
                i, j = positions[c, r]
                expected = brute_crop(images[indices[c, r]], -3 + 4 * i, -2 + 3 * j, (7, 9), 0.5)
            np.testing.assert_array_equal(from_array[c, r], expected, err_msg=str((c, r)))
    resized = crop_patches(images, top, rf, fill=0.5, size=(14, 18))
    np.testing.assert_allclose(
        resized, jax.image.resize(jnp.asarray(from_array), (2, 2, 14, 18, 3), "linear"), atol=1e-6
    )


def test_global_field_crops_whole_images():
    images = np.asarray(jax.random.uniform(jax.random.key(8), (3, 10, 12, 3)))
    top = TopK(jnp.zeros((1, 2)), jnp.array([[2, 0]]), jnp.full((1, 2, 2), -1))
    crops = crop_patches(images, top, ReceptiveField((10, 12), (0, 0), (0, 0), is_global=True))
    np.testing.assert_array_equal(crops[0], images[[2, 0]])


def test_top_patches_of_conv1_reproduce_their_scores_from_the_crops(small_cnn):
    """End to end: a conv1 unit is its 3x3 kernel applied to its cropped field."""
    images = jax.random.uniform(jax.random.key(10), (24, 32, 32, 3))
    batches = ((images[s : s + 8], np.arange(s, s + 8)) for s in range(0, 24, 8))
    top = dataset_examples(small_cnn, "conv1", batches, 4, mode="patches")
    rf = receptive_fields(small_cnn, images)["conv1"]
    crops = crop_patches(images, top, rf)  # zero fill = the conv's zero padding
    conv = small_cnn.params["params"]["conv1"]
    recomputed = jnp.einsum("ckhwi,hwic->ck", crops, conv["kernel"]) + conv["bias"][:, None]
    np.testing.assert_allclose(recomputed, top.scores, rtol=1e-4, atol=1e-4)
