"""Dataset examples against brute force, crops against slicing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import nets
from interp.data import SynthParts, in_memory
from interp.featviz import crop_patches, dataset_examples
from interp.nets import ReceptiveField, receptive_fields
from interp.ops import TopK, top_k_init, top_k_update
from tests.ops.test_topk import assert_same, brute_force


@pytest.fixture(scope="module")
def small_cnn():
    module = nets.create_module("small_cnn", num_classes=3)
    return nets.from_linen(module, jax.jit(module.init)(jax.random.key(3), jnp.zeros((1, 32, 32, 3))))


@pytest.mark.parametrize("mode", ["images", "patches"])
@pytest.mark.parametrize("batch", [7, 16])
def test_dataset_examples_equals_brute_force(small_cnn, mode, batch):
    images = jax.random.uniform(jax.random.key(4), (30, 32, 32, 3))
    # conv2 is before the ReLU, so random data has no ties.
    acts = jax.jit(lambda m, x: m.activations(x, "conv2")["conv2"])(small_cnn, images)
    top = dataset_examples(small_cnn, "conv2", in_memory(images), 5, mode=mode, batch_size=batch)
    assert_same(top, brute_force(acts, np.arange(30), 5, mode))
    # A span of the source: indices stay the source's.
    span = dataset_examples(small_cnn, "conv2", in_memory(images), 5, mode=mode, batch_size=batch,
                            num_examples=20, first=10)
    assert_same(span, brute_force(acts[10:], np.arange(10, 30), 5, mode))


def test_dataset_examples_of_a_source_equals_the_per_batch_loop(small_cnn):
    """The old calling convention, a hand-written loop of top-k updates over (images, indices), on the same images."""
    data = SynthParts(seed=3, image_size=32, num_classes=3)
    images = data.batch(jnp.arange(40, 60, dtype=jnp.int32))["image"]
    state = top_k_init(small_cnn.layer_shape(images, "conv2").shape[-1], 4)
    for s in range(0, 20, 8):  # ragged last batch, as an iterable gave it
        acts = small_cnn.activations(images[s : s + 8], "conv2")["conv2"]
        state = top_k_update(state, acts, jnp.arange(40 + s, 40 + min(s + 8, 20)), mode="patches")
    top = dataset_examples(small_cnn, "conv2", data, 4, mode="patches", batch_size=8, num_examples=20, first=40)
    assert_same(top, state)
    # Dict batches are read by their 'image' entry, like SynthParts' own.
    assert_same(dataset_examples(small_cnn, "conv2", in_memory({"image": images}), 4, mode="patches",
                                 batch_size=8), state._replace(indices=state.indices - 40))


def test_dataset_examples_of_a_global_layer(small_cnn):
    images = jax.random.uniform(jax.random.key(6), (12, 32, 32, 3))
    top = dataset_examples(small_cnn, "logits", in_memory(images), 4, batch_size=8)
    assert_same(top, brute_force(jax.jit(lambda m, x: m(x))(small_cnn, images), np.arange(12), 4, "images"))
    with pytest.raises(ValueError, match="conv9"):
        dataset_examples(small_cnn, "conv9", in_memory(images), 4)


def test_dataset_examples_and_crops_name_bad_data(small_cnn):
    images = jax.random.uniform(jax.random.key(6), (12, 32, 32, 3))
    with pytest.raises(ValueError, match="data: expected a batch source .*got list"):
        dataset_examples(small_cnn, "conv2", [images], 4)
    with pytest.raises(ValueError, match="data: expected a batch source .*got generator"):
        dataset_examples(small_cnn, "conv2", (b for b in [images]), 4)
    with pytest.raises(
        ValueError,
        match=r"data: expected batches of images \[B, H, W, C\] or dicts with an 'image' entry, "
        r"got a dict with keys \['label'\]",
    ):
        dataset_examples(small_cnn, "conv2", in_memory({"label": np.arange(12)}), 4)
    with pytest.raises(
        ValueError, match=r"num_examples: expected first \+ num_examples <= len\(data\) = 12, got 4 \+ 9"
    ):
        dataset_examples(small_cnn, "conv2", in_memory(images), 4, num_examples=9, first=4)
    with pytest.raises(ValueError, match="batch_size: expected a positive int"):
        dataset_examples(small_cnn, "conv2", in_memory(images), 4, batch_size=0)
    top = TopK(jnp.zeros((1, 1)), jnp.array([[0]]), jnp.zeros((1, 1, 2), jnp.int32))
    with pytest.raises(ValueError, match="data: expected a batch source .*got ArrayImpl"):
        crop_patches(images, top, ReceptiveField((3, 3), (1, 1), (0, 0)))


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

    class Recorded(in_memory):
        def batch(self, indices):
            calls.append(np.asarray(indices))
            return {"image": super().batch(indices)}

    from_array = np.asarray(crop_patches(in_memory(images), top, rf, fill=0.5))
    from_fn = np.asarray(crop_patches(Recorded(images), top, rf, fill=0.5))
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
    resized = crop_patches(in_memory(images), top, rf, fill=0.5, size=(14, 18))
    np.testing.assert_allclose(
        resized, jax.image.resize(jnp.asarray(from_array), (2, 2, 14, 18, 3), "linear"), atol=1e-6
    )


def test_global_field_crops_whole_images():
    images = np.asarray(jax.random.uniform(jax.random.key(8), (3, 10, 12, 3)))
    top = TopK(jnp.zeros((1, 2)), jnp.array([[2, 0]]), jnp.full((1, 2, 2), -1))
    crops = crop_patches(in_memory(images), top, ReceptiveField((10, 12), (0, 0), (0, 0), is_global=True))
    np.testing.assert_array_equal(crops[0], images[[2, 0]])


def test_top_patches_of_conv1_reproduce_their_scores_from_the_crops(small_cnn):
    """End to end: a conv1 unit is its 3x3 kernel applied to its cropped field."""
    images = jax.random.uniform(jax.random.key(10), (24, 32, 32, 3))
    top = dataset_examples(small_cnn, "conv1", in_memory(images), 4, mode="patches", batch_size=8)
    rf = receptive_fields(small_cnn, images)["conv1"]
    crops = crop_patches(in_memory(images), top, rf)  # zero fill = the conv's zero padding
    conv = small_cnn.params["params"]["conv1"]
    recomputed = jnp.einsum("ckhwi,hwic->ck", crops, conv["kernel"]) + conv["bias"][:, None]
    np.testing.assert_allclose(recomputed, top.scores, rtol=1e-4, atol=1e-4)
