"""The batch-source convention: epoch order, ordered passes, readers at a fixed size."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interp.data import SynthParts, check_source, epoch_indices, pass_indices


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
