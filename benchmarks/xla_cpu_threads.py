"""How many cores XLA:CPU uses for a convolution, a matmul, and a loop of convolutions;
and how fast a convolution's input gradient runs inside a loop.

    python -m benchmarks.xla_cpu_threads

Prints, per case, milliseconds per call and CPU-seconds per wall-second (2.0
means both cores of a 2-core machine are busy). The finding it reproduces
(benchmarks/RESULTS.md, "Feature visualization vs Lucent"): on jax 0.10.2
XLA:CPU runs a convolution on one thread while a matmul uses every core,
which caps batched attribution and feature visualization near torch's speed.
The last three rows: the input gradient of two 3x3 convs, 8 times, in a
`lax.scan` or unrolled; inside the loop XLA:CPU runs the backward convolution
(kernel read input/output-swapped) on a slow path unless its kernel is
transposed first (`interp.ops.with_canonical_conv_kernels`).
"""

import os
import time

import jax
import jax.numpy as jnp

from interp.ops import with_canonical_conv_kernels


def measure(fn, *args, repeats: int = 5) -> tuple[float, float]:
    """(ms per call, CPU-seconds per wall-second) of a jitted `fn`, after one compile call."""
    fn(*args).block_until_ready()
    start, cpu = time.perf_counter(), os.times()
    for _ in range(repeats):
        fn(*args).block_until_ready()
    wall, after = time.perf_counter() - start, os.times()
    busy = (after.user - cpu.user) + (after.system - cpu.system)
    return wall / repeats * 1e3, busy / wall


def main() -> None:
    x = jax.random.normal(jax.random.key(0), (64, 76, 76, 32))
    w = jax.random.normal(jax.random.key(1), (3, 3, 32, 32)) * 0.05
    a = jax.random.normal(jax.random.key(2), (2048, 2048))

    def conv(x):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.tanh(y)

    def two_conv_input_grad(x):
        return jax.grad(lambda x: jnp.sum(conv(conv(x)) ** 2))(x)

    small = x[:, :32, :32]
    scales = jnp.linspace(0.5, 1.0, 8)

    def grads_in_loop(grad_fn, unroll=1):
        def run(x):
            step = lambda total, s: (total + grad_fn(x * s), None)  # noqa: E731
            return jax.lax.scan(step, jnp.zeros_like(x), scales, unroll=unroll)[0]

        return jax.jit(run)

    cases = {
        "2048x2048 matmul": (jax.jit(lambda a: a @ a), a),
        "one 3x3 conv, [64, 76, 76, 32]": (jax.jit(conv), x),
        "16 convs in a fori_loop": (jax.jit(lambda x: jax.lax.fori_loop(0, 16, lambda i, x: conv(x), x)), x),
        "16 convs unrolled": (jax.jit(lambda x: jax.lax.fori_loop(0, 16, lambda i, x: conv(x), x, unroll=True)), x),
        "8 input gradients of 2 convs [64, 32, 32, 32], scan": (grads_in_loop(two_conv_input_grad), small),
        "the same, unrolled": (grads_in_loop(two_conv_input_grad, unroll=8), small),
        "the same, scan, kernels transposed": (grads_in_loop(with_canonical_conv_kernels(two_conv_input_grad)), small),
    }
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs visible")
    print("| case | ms / call | CPU-s per wall-s |\n|---|---:|---:|")
    for name, (fn, arg) in cases.items():
        ms, cores = measure(fn, arg)
        print(f"| {name} | {ms:.1f} | {cores:.2f} |")


if __name__ == "__main__":
    main()
