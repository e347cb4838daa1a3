"""Max-pool gradients on CPU: `lax.reduce_window` (select_and_scatter) against `interp.ops.max_pool`.

    python -m benchmarks.max_pool [--shape 16 64 64 32] [--repeats 9]

For each square window/stride/padding, the jitted gradient of
`sum(pool(x) ** 2)` both ways (median of alternating runs), the speed-up,
whether the two gradients are identical, and whether
`interp.ops.with_switch_max_pools` routes that pool (it routes the shapes
where the switch pool was measured faster on XLA:CPU).
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
    args = parser.parse_args()
    x = jax.random.normal(jax.random.key(0), args.shape)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s); "
          f"x {list(args.shape)}, median of {args.repeats} alternating runs\n")
    print("| window / stride / pad | reduce_window ms | max_pool ms | speed-up | identical | routed |")
    print("|---|---:|---:|---:|---:|---:|")
    for window, stride, pad in POOLS:
        dims, strides = (1, window, window, 1), (1, stride, stride, 1)
        padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
        theirs = jax.jit(jax.grad(lambda x: (lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, padding) ** 2).sum()))
        ours = jax.jit(jax.grad(lambda x: (max_pool(x, dims, strides, padding) ** 2).sum()))
        identical = bool(jnp.array_equal(ours(x), theirs(x)))
        t_theirs, t_ours = time_alternating(
            [lambda: theirs(x).block_until_ready(), lambda: ours(x).block_until_ready()], args.repeats
        )
        ms_theirs, ms_ours = 1e3 * np.median(t_theirs), 1e3 * np.median(t_ours)
        routed = maxpool.switch_is_faster(dims, strides)
        print(f"| {window} / {stride} / {pad} | {ms_theirs:.1f} | {ms_ours:.1f} | {ms_theirs / ms_ours:.1f}x "
              f"| {identical} | {routed} |", flush=True)


if __name__ == "__main__":
    main()
