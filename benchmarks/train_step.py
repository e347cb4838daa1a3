"""Training throughput of zoo models: the library's own jitted, sharded step.

Run: `python -m benchmarks.train_step [--models small_cnn:64 resnet18:224] [--batch-size 64]`
Prints a markdown table: ms per step (median of timed steps after compilation)
and images per second, on the default devices (all of them, one 'data' mesh).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from interp import sharding
from interp import train as trainlib
from interp.nets import zoo


def time_steps(name: str, size: int, batch_size: int, repeats: int, devices: list | None = None) -> np.ndarray:
    """Seconds per training step of zoo model `name` at `size` px, after one compile step.

    The batch is split over `devices` (default: all), the state replicated on each.
    """
    module = zoo.create_module(name, num_classes=10)
    tx = optax.adamw(1e-3)
    mesh = sharding.data_mesh(devices)
    state = sharding.replicate(
        trainlib.create_train_state(module, tx, jnp.zeros((1, size, size, 3)), seed=0), mesh
    )
    step = jax.jit(
        trainlib.make_train_step(trainlib.classification_loss(), tx),
        in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
        donate_argnums=0,
    )
    keys = jax.random.split(jax.random.key(0), repeats + 1)
    batches = [
        sharding.shard_batch(
            {"image": jax.random.uniform(k, (batch_size, size, size, 3)), "label": jnp.arange(batch_size) % 10},
            mesh,
        )
        for k in keys
    ]
    state, metrics = step(state, batches[0])
    jax.block_until_ready(metrics)
    seconds = []
    for batch in batches[1:]:
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - start)
    return np.asarray(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["small_cnn:64", "resnet18:224"], help="name:size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    devices = jax.devices()
    print(f"devices: {len(devices)} x {devices[0].device_kind}, global batch {args.batch_size}")
    print("| model | input | ms / step (median) | images / s |")
    print("|---|---:|---:|---:|")
    for spec in args.models:
        name, size = spec.split(":")
        s = time_steps(name, int(size), args.batch_size, args.repeats)
        med = float(np.median(s))
        print(f"| {name} | {size} | {1e3 * med:.1f} | {args.batch_size / med:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
