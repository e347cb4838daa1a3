"""Max-pool gradients on CPU: `lax.reduce_window` (select_and_scatter) against `interp.ops.max_pool`.

    python -m benchmarks.max_pool [--shape 16 64 64 32] [--repeats 9] [--attribution]

For each square window/stride/padding, the jitted gradient of
`sum(pool(x) ** 2)` both ways (median of alternating runs), the speed-up,
whether the two gradients are identical, and whether
`interp.ops.with_switch_max_pools` routes that pool (it routes the shapes
where the switch pool was measured faster on XLA:CPU).

`--attribution` instead times saliency and integrated gradients of
SmallCNN's weights as a plain function with `reduce_window` pools
(`benchmarks.attribution.plain_small_cnn`, batch 16 of SynthParts) with
`interp.ops.for_speed`'s max-pool rewrite left out and in, alternately in
one process; the batch is sharded over the host devices XLA_FLAGS makes.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks._timing import time_alternating
from interp.ops import max_pool, maxpool

POOLS = [  # window, stride, padding
    (2, 2, 0),
    (2, 1, 0),
    (3, 3, 0),
    (3, 2, 0),
    (3, 2, 1),
    (3, 1, 1),
    (4, 4, 0),
    (4, 2, 1),
    (5, 2, 2),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=4, default=(16, 64, 64, 32), help="NHWC input")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--attribution", action="store_true", help="A/B of attribution on a plain function")
    args = parser.parse_args()
    if args.attribution:
        attribution_ab(args.repeats)
        return
    x = jax.random.normal(jax.random.key(0), args.shape)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s); "
          f"x {list(args.shape)}, median of {args.repeats} alternating runs\n")
    print("| window / stride / pad | reduce_window ms | max_pool ms | speed-up | identical | routed |")
    print("|---|---:|---:|---:|---:|---:|")
    for window, stride, pad in POOLS:
        dims, strides = (1, window, window, 1), (1, stride, stride, 1)
        padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
        theirs, ours = _squared_sum_gradients(dims, strides, padding)
        identical = bool(jnp.array_equal(ours(x), theirs(x)))
        t_theirs, t_ours = time_alternating(
            [lambda f=f: f(x).block_until_ready() for f in (theirs, ours)], args.repeats
        )
        ms_theirs, ms_ours = 1e3 * np.median(t_theirs), 1e3 * np.median(t_ours)
        routed = maxpool.switch_is_faster(dims, strides)
        print(f"| {window} / {stride} / {pad} | {ms_theirs:.1f} | {ms_ours:.1f} | {ms_theirs / ms_ours:.1f}x "
              f"| {identical} | {routed} |", flush=True)


def _squared_sum_gradients(dims, strides, padding):
    """The jitted gradients of `(pool(x) ** 2).sum()`, pooling with `reduce_window` (theirs) and `max_pool` (ours)."""
    pool = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, padding)  # noqa: E731
    theirs = jax.jit(jax.grad(lambda x: (pool(x) ** 2).sum()))
    ours = jax.jit(jax.grad(lambda x: (max_pool(x, dims, strides, padding) ** 2).sum()))
    return theirs, ours


def attribution_ab(repeats: int) -> None:
    from benchmarks.attribution import _model_and_batch, _shard, plain_small_cnn
    from interp import attribution, nets
    from interp.ops import conv_layout, prng, speed

    module, variables, x, target = _model_and_batch(16)
    plain = nets.from_function(plain_small_cnn, variables["params"], module.input_spec)
    plain, x, target = _shard(plain, x, target)
    methods = {
        "saliency": lambda m: attribution.saliency(m, mode="absolute"),
        "integrated_gradients (64 steps, 4 per chunk)": lambda m: attribution.integrated_gradients(m, 64, chunk_size=4),
    }
    routed = speed.REWRITES["cpu"]
    unrouted = (conv_layout.CANONICAL_KERNELS, prng.UNROLLED_THREEFRY)
    print(f"jax {jax.__version__}, batch 16 on {jax.device_count()} device(s), median of {repeats} alternating runs\n")
    print("| method | pools as reduce_window ms | routed ms | speed-up | identical |")
    print("|---|---:|---:|---:|---:|")
    try:
        for name, make in methods.items():
            compiled = []
            for rewrites in (unrouted, routed):
                speed.REWRITES["cpu"] = rewrites  # read when the program is traced, here by lower()
                compiled.append(jax.jit(lambda m, x, t, make=make: make(m)(x, t)).lower(plain, x, target).compile())
            a, b = (np.asarray(f(plain, x, target)) for f in compiled)
            runs = [lambda f=f: jax.block_until_ready(f(plain, x, target)) for f in compiled]
            times = time_alternating(runs, repeats, 1)
            ms = [1e3 * np.median(t) for t in times]
            print(f"| {name} | {ms[0]:.1f} | {ms[1]:.1f} | {ms[0] / ms[1]:.1f}x | {np.array_equal(a, b)} |", flush=True)
    finally:
        speed.REWRITES["cpu"] = routed


if __name__ == "__main__":
    main()
