"""Threefry random bits with the hash's rounds unrolled: JAX's numbers, drawn faster on CPU.

JAX hashes counters with threefry2x32: five groups of four add-rotate-xor
rounds. On CPU it lowers the five groups as a loop (`fori_loop`), so each
group reads and writes every word of the output; on GPU and TPU it unrolls
them, and XLA fuses the whole hash into one pass over the counters. Unrolled
on CPU, the same draws take a third to a sixth of the time (`python -m
benchmarks.prng`; figures in benchmarks/RESULTS.md, "Speed workarounds").

`with_unrolled_threefry(f)` runs `f` with every `random_bits` equation of a
threefry key computed by the unrolled hash on the counters JAX uses, so
`jax.random.bits`, `uniform`, `normal`, ... inside `f` draw exactly the bits
they draw outside it. (Floats made from them can differ in the last place
where XLA fuses a transform such as `erf_inv` differently.) Keys of another
implementation, the legacy (non-partitionable) counter layout, and draws of
2^32 words or more are left to JAX.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax import lax
from jax.extend import core as jcore

from interp.ops import jaxprs

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def with_unrolled_threefry(f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` with its threefry random bits drawn by the unrolled hash; the same bits.

    `f` may take and return pytrees (keys included). Draws inside control flow
    (e.g. a `lax.scan` body) are left to JAX: apply this to the body instead.
    """
    return jaxprs.rewrite_for_speed(f, *UNROLLED_THREEFRY)


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The threefry2x32 hash (Salmon et al., 2011) of the counter pairs (x1, x2) under key (k1, k2).

    All uint32, broadcast against each other (equal ranks). Twenty rounds
    with a key injection after every four, written out so XLA fuses them.
    """
    keys = (k1, k2, k1 ^ k2 ^ _KEY_PARITY)
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for group in range(5):
        for rotation in _ROTATIONS[group % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, rotation) ^ x1
        x1 = x1 + keys[(group + 1) % 3]
        x2 = x2 + keys[(group + 2) % 3] + np.uint32(group + 1)
    return x1, x2


def _rotate_left(x: jax.Array, bits: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(bits)) | lax.shift_right_logical(x, np.uint32(32 - bits))


@functools.cache
def _threefry_key_dtype():
    return jax.eval_shape(lambda: jax.random.key(0, impl="threefry2x32")).dtype


def _is_threefry_draw(eqn: jcore.JaxprEqn) -> bool:
    if eqn.primitive.name != "random_bits":
        return False
    size = int(np.prod(eqn.params["shape"]))
    return (
        eqn.invars[0].aval.dtype == _threefry_key_dtype()
        and jax.config.jax_threefry_partitionable
        and size < 2**32
    )


def _unrolled_bits(eqn: jcore.JaxprEqn, invals: list[Any]) -> list[jax.Array]:
    """`random_bits` of threefry keys [*k]: words [*k, *shape] of the given width.

    The counters are those of JAX's partitionable layout: the row-major index
    of each word as a 64-bit number, split into high (zero here) and low words.
    """
    (keys,) = invals
    shape, width = tuple(eqn.params["shape"]), eqn.params["bit_width"]
    data = jax.random.key_data(keys)  # [*k, 2]
    key_shape = data.shape[:-1]
    k1, k2 = (data[..., i].reshape(key_shape + (1,) * len(shape)) for i in (0, 1))
    low = lax.iota(np.uint32, int(np.prod(shape))).reshape((1,) * len(key_shape) + shape)
    bits_high, bits_low = threefry2x32(k1, k2, lax.full_like(low, 0), low)
    if width == 64:
        wide = np.uint64
        return [lax.shift_left(bits_high.astype(wide), wide(32)) | bits_low.astype(wide)]
    bits = bits_high ^ bits_low
    return [bits if width == 32 else bits.astype(f"uint{width}")]


# (select, rule) for `jaxprs.rewrite_for_speed`; `interp.ops.for_speed` combines it with others.
UNROLLED_THREEFRY = (_is_threefry_draw, _unrolled_bits)
