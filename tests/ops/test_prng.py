"""Threefry with unrolled rounds: the published hash, JAX's bits for every draw, and JAX's own path where it must."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp.ops.jaxprs import equations
from interp.ops.prng import threefry2x32, with_unrolled_threefry


def _primitives(f, *args) -> set[str]:
    return {e.primitive.name for e in equations(jax.make_jaxpr(f)(*args).jaxpr)}


@pytest.mark.parametrize(
    "key, counter, expected",
    [  # Random123's known answers for threefry2x32 with 20 rounds (kat_vectors).
        ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ],
)
def test_hash_gives_the_published_answers(key, counter, expected):
    k1, k2, x1, x2 = (jnp.asarray(v, jnp.uint32) for v in (*key, *counter))
    assert tuple(int(v) for v in threefry2x32(k1, k2, x1, x2)) == expected


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32])
@pytest.mark.parametrize("shape", [(7,), (3, 5, 2), (1, 1), (0, 3)])
def test_bits_equal_jax_and_no_random_bits_is_left(dtype, shape):
    key = jax.random.key(11)
    draw = lambda k: jax.random.bits(k, shape, dtype)  # noqa: E731
    np.testing.assert_array_equal(jax.jit(with_unrolled_threefry(draw))(key), draw(key))
    assert "random_bits" not in _primitives(with_unrolled_threefry(draw), key)


def test_64_bit_words_equal_jax():
    with jax.enable_x64(True):
        key = jax.random.key(4)
        draw = lambda k: jax.random.bits(k, (6, 3), jnp.uint64)  # noqa: E731
        np.testing.assert_array_equal(with_unrolled_threefry(draw)(key), draw(key))


@pytest.mark.parametrize(
    "draw",
    [
        lambda k: jax.random.uniform(k, (4, 33), minval=-2.0, maxval=3.0),
        lambda k: jax.random.bernoulli(k, 0.3, (50,)),
        lambda k: jax.random.randint(k, (9,), 0, 1000),
        lambda k: jax.random.permutation(k, 17),
    ],
    ids=["uniform", "bernoulli", "randint", "permutation"],
)
def test_draws_built_on_bits_equal_jax(draw):
    key = jax.random.key(5)
    np.testing.assert_array_equal(jax.jit(with_unrolled_threefry(draw))(key), draw(key))


def test_normals_equal_jax_up_to_the_last_place_of_erf_inv():
    key = jax.random.key(2)
    draw = lambda k: jax.random.normal(k, (16, 300))  # noqa: E731
    ours = jax.jit(with_unrolled_threefry(draw))(key)
    np.testing.assert_allclose(ours, draw(key), rtol=2e-7, atol=2e-7)


def test_batched_keys_raw_keys_and_split_keys():
    keys = jax.random.split(jax.random.key(8), 3)
    draw = lambda k: jax.random.uniform(k, (4, 6))  # noqa: E731
    np.testing.assert_array_equal(jax.vmap(with_unrolled_threefry(draw))(keys), jax.vmap(draw)(keys))
    np.testing.assert_array_equal(with_unrolled_threefry(jax.vmap(draw))(keys), jax.vmap(draw)(keys))
    raw = jax.random.PRNGKey(8)
    np.testing.assert_array_equal(with_unrolled_threefry(draw)(raw), draw(raw))


def test_other_key_implementations_are_left_to_jax():
    key = jax.random.key(3, impl="rbg")
    draw = lambda k: jax.random.uniform(k, (5, 4))  # noqa: E731
    np.testing.assert_array_equal(with_unrolled_threefry(draw)(key), draw(key))
    assert "random_bits" in _primitives(with_unrolled_threefry(draw), key)


def test_the_legacy_counter_layout_is_left_to_jax():
    key = jax.random.key(6)
    draw = lambda k: jax.random.bits(k, (3, 7))  # noqa: E731
    with jax.threefry_partitionable(False):
        np.testing.assert_array_equal(with_unrolled_threefry(draw)(key), draw(key))
        assert "random_bits" in _primitives(with_unrolled_threefry(draw), key)


def test_pytrees_in_and_out():
    def draw(inputs):
        return {"noisy": inputs["x"] + jax.random.normal(inputs["key"], inputs["x"].shape), "n": inputs["n"]}

    inputs = {"x": jnp.arange(6.0).reshape(2, 3), "key": jax.random.key(1), "n": 3}
    ours, ref = with_unrolled_threefry(draw)(inputs), draw(inputs)
    assert ours["n"] == 3
    np.testing.assert_allclose(ours["noisy"], ref["noisy"], rtol=2e-7, atol=2e-7)
