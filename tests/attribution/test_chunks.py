"""Chunking of path and perturbation methods: as few padded evaluations as the chunk bound allows."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from interp.attribution import integrated_gradients, occlusion
from interp.attribution._chunks import even_chunks


@given(n=st.integers(1, 2000), chunk_size=st.integers(1, 300))
def test_even_chunks_respect_the_bound_with_the_fewest_chunks_and_least_padding(n, chunk_size):
    chunks, size = even_chunks(n, chunk_size)
    assert size <= chunk_size
    assert chunks == -(-n // chunk_size)  # no more calls than plain chunks of chunk_size
    assert chunks * size >= n
    assert chunks * size - n < chunks  # fewer padded items than chunks


def _traced_batches(method):
    """The batch sizes `fn` is traced with, and the attribution, for a smooth score."""
    seen = []
    w = jax.random.normal(jax.random.key(0), (12, 16, 3))

    def fn(x):
        seen.append(x.shape[0])
        return (jnp.tanh(x) * w[None]).sum(axis=(1, 2, 3))

    x = jax.random.uniform(jax.random.key(1), (2, 12, 16, 3))
    return seen, method(fn)(x)


def test_occlusion_splits_windows_into_equal_chunks():
    # 5 x 7 = 35 windows at most 16 at a time: 3 calls of 12 windows (one
    # padded), not 3 of 16 (13 padded). Each call holds 2 images x (clean + 12).
    seen, chunked = _traced_batches(lambda fn: occlusion(fn, (4, 4), (2, 2), chunk_size=16))
    assert set(seen) == {2 * 13}
    _, whole = _traced_batches(lambda fn: occlusion(fn, (4, 4), (2, 2), chunk_size=None))
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_splits_steps_into_equal_chunks():
    # 50 steps at most 16 at a time: 4 calls of 13 steps (two padded), not 4 of 16 (14 padded).
    seen, chunked = _traced_batches(lambda fn: integrated_gradients(fn, 50, chunk_size=16))
    assert set(seen) == {2 * 13}
    _, whole = _traced_batches(lambda fn: integrated_gradients(fn, 50, chunk_size=None))
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
