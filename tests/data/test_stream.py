"""The batch-source convention: epoch order, ordered passes, readers at a fixed size."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interp.data import SynthParts, batch_images, check_source, check_span, epoch_indices, in_memory, pass_indices


@given(st.integers(1, 40), st.integers(1, 17), st.integers(0, 5), st.integers(0, 3))
def test_epoch_indices_visit_each_example_once_per_epoch(num_examples, batch_size, first_step, seed):
    steps = range(first_step, first_step + 3 * num_examples)
    stream = np.concatenate([epoch_indices(s, batch_size, num_examples, seed) for s in steps])
    start = first_step * batch_size
    # Whole epochs inside the stream are permutations of range(num_examples).
    first_epoch = -(-start // num_examples)
    for epoch in range(first_epoch, first_epoch + 2):
        lo = epoch * num_examples - start
        np.testing.assert_array_equal(np.sort(stream[lo:lo + num_examples]), np.arange(num_examples))
    np.testing.assert_array_equal(stream[first_epoch * num_examples - start:][:num_examples],
                                  np.random.default_rng([seed, first_epoch]).permutation(num_examples))


def test_epoch_indices_depend_on_the_seed_unless_in_order():
    assert not np.array_equal(epoch_indices(0, 64, 64, 0), epoch_indices(0, 64, 64, 1))
    np.testing.assert_array_equal(epoch_indices(3, 8, 20, 0, shuffle=False), (24 + np.arange(8)) % 20)


@given(st.integers(1, 50), st.integers(1, 16), st.integers(0, 7))
def test_pass_indices_cover_each_example_once_in_order(num_examples, batch_size, first):
    batches = list(pass_indices(num_examples, batch_size, first))
    assert len(batches) == -(-num_examples // batch_size)
    assert all(i.shape == v.shape == (batch_size,) for i, v in batches)
    seen = np.concatenate([i[v] for i, v in batches])
    np.testing.assert_array_equal(seen, first + np.arange(num_examples))
    assert all(i.min() >= first and i.max() < first + num_examples for i, _ in batches)


def test_check_source_names_the_argument():
    assert check_source(SynthParts(num_examples=4)) is not None
    with pytest.raises(ValueError, match="data: expected a batch source"):
        check_source(lambda step, rows: {}, "data")
    with pytest.raises(ValueError, match="images: expected a batch source.*got list"):
        check_source([1, 2], "images")


def test_in_memory_takes_rows_of_every_leaf_and_checks_lengths():
    images, labels = np.arange(5 * 2 * 2 * 3).reshape(5, 2, 2, 3), np.arange(5) * 10
    source = in_memory({"image": images, "label": labels})
    assert check_source(source) is source and len(source) == 5
    batch = source.batch(np.array([4, 0, 4]))
    np.testing.assert_array_equal(batch["image"], images[[4, 0, 4]])
    np.testing.assert_array_equal(batch["label"], [40, 0, 40])
    np.testing.assert_array_equal(batch_images(batch), images[[4, 0, 4]])
    with pytest.raises(
        ValueError, match=r"arrays: expected arrays with one leading length, got shapes \[\[5\], \[4\]\]"
    ):
        in_memory({"a": np.zeros(5), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="data: the batch source is empty"):
        check_source(in_memory(np.zeros((0, 2))))


def test_batch_images_reads_arrays_or_the_image_entry():
    images = np.zeros((2, 4, 4, 3))
    assert batch_images(images) is images and batch_images({"image": images, "label": 0}) is images
    with pytest.raises(ValueError, match=r"source: expected batches of images .*got a dict with keys \['label'\]"):
        batch_images({"label": np.zeros(2)}, "source")
    with pytest.raises(ValueError, match=r"data: expected batches of images .*got shape \[2, 4\]"):
        batch_images(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="data: expected batches of images .*got tuple"):
        batch_images((images, np.arange(2)))


def test_check_span_counts_examples_from_first_and_names_the_argument():
    source = in_memory(np.zeros(10))
    assert check_span(source, None) == 10 and check_span(source, None, 3) == 7 and check_span(source, 7, 3) == 7
    with pytest.raises(
        ValueError, match=r"num_examples: expected first \+ num_examples <= len\(images\) = 10, got 3 \+ 8"
    ):
        check_span(source, 8, 3, "images")
    with pytest.raises(ValueError, match=r"first: expected an index below len\(data\) = 10, got 10"):
        check_span(source, None, 10)
    with pytest.raises(ValueError, match="first: expected a non-negative int, got -1"):
        check_span(source, 2, -1)
    with pytest.raises(ValueError, match="num_examples: expected a positive int, got 0"):
        check_span(source, 0)
