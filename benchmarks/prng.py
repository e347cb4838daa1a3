"""JAX's threefry draws on CPU: its own lowering against `interp.ops.with_unrolled_threefry`.

    python -m benchmarks.prng [--size 6291456] [--repeats 15]

6,291,456 words is SmoothGrad's noise for 32 copies of 16 64x64x3 images.
Prints a markdown table: milliseconds per jitted draw (median of alternating
runs), the speed-up, and whether the two draws are identical (bits are by
construction; floats made from them may differ in erf_inv's last place).
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import time_alternating
from interp.ops import with_unrolled_threefry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=6_291_456, help="words per draw")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    key = jax.random.key(0)
    draws = {
        "bits": lambda k: jax.random.bits(k, (args.size,)),
        "uniform": lambda k: jax.random.uniform(k, (args.size,)),
        "normal": lambda k: jax.random.normal(k, (args.size,)),
    }
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s); "
          f"{args.size:,} words, median of {args.repeats} alternating runs\n")
    print("| draw | jax ms | unrolled ms | speed-up | identical |")
    print("|---|---:|---:|---:|---:|")
    for name, draw in draws.items():
        theirs, ours = jax.jit(draw), jax.jit(with_unrolled_threefry(draw))
        identical = bool(jnp.array_equal(ours(key), theirs(key)))
        t_theirs, t_ours = time_alternating(
            [lambda f=f: f(key).block_until_ready() for f in (theirs, ours)], args.repeats
        )
        ms_theirs, ms_ours = 1e3 * np.median(t_theirs), 1e3 * np.median(t_ours)
        print(f"| {name} | {ms_theirs:.1f} | {ms_ours:.1f} | {ms_theirs / ms_ours:.1f}x | {identical} |")


if __name__ == "__main__":
    main()
