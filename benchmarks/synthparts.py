"""Throughput of SynthParts generation (compiled, on the default JAX device).

Run: `python -m benchmarks.synthparts` (prints a markdown table).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from interp.data import SynthParts


def time_batches(ds: SynthParts, batch_size: int, repeats: int) -> np.ndarray:
    """Seconds per call of `ds.batch` for `repeats` fresh batches, after one compile call."""
    jax.block_until_ready(ds.batch(jnp.arange(batch_size, dtype=jnp.int32)))
    seconds = []
    for r in range(1, repeats + 1):
        indices = jnp.arange(r * batch_size, (r + 1) * batch_size, dtype=jnp.int32)
        start = time.perf_counter()
        jax.block_until_ready(ds.batch(indices))
        seconds.append(time.perf_counter() - start)
    return np.asarray(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, batch {args.batch_size}")
    print("| image size | ms / batch (median) | ms / batch (min) | images / s (median) |")
    print("|---:|---:|---:|---:|")
    for size in args.sizes:
        s = time_batches(SynthParts(image_size=size), args.batch_size, args.repeats)
        med = float(np.median(s))
        print(f"| {size} | {1e3 * med:.1f} | {1e3 * s.min():.1f} | {args.batch_size / med:,.0f} |")


if __name__ == "__main__":
    main()
