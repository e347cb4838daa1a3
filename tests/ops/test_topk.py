"""Running top-k: streamed updates against a brute-force sort of the whole dataset."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp.ops import TopK, top_k_init, top_k_update


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
