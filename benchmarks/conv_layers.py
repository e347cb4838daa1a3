"""SmallCNN's convolutions one by one on XLA:CPU: speed, and which library runs them.

    python -m benchmarks.conv_layers [--batch-size 136] [--repeats 20]

For each convolution of SmallCNN on 64x64 images (random weights), the
forward pass and the input gradient (what attribution needs): milliseconds
per call, GFLOP/s (nominal: 2 x output elements x kernel taps x input
channels), CPU-seconds per wall-second, GFLOP/s per busy core (the two
divided: Eigen spreads a convolution over the cores, YNNPACK does not), and
whether XLA:CPU compiled it to a YNNPACK fusion. The default batch, 136, is one device's network call in the
occlusion benchmark (8 images x 16 variants + the 8 clean images).

The finding it reproduces (benchmarks/RESULTS.md, "Attribution vs Captum"):
on jax 0.10.2 XLA:CPU hands a convolution to YNNPACK only if it has more
than 16 input or output features and no lhs dilation. conv2-conv4 qualify
and run near one core's peak; conv1 (3 -> 16 features, stride 2) and its
input gradient (an lhs-dilated convolution) do not, and run through Eigen
several times slower per FLOP. The last row gives conv1 17 output features
(a zero-padded kernel): YNNPACK takes it, and is slower still on 3 input
channels.
"""

import argparse

import jax

from benchmarks.xla_cpu_threads import measure

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(stride: int):
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=_DIMENSIONS)

    return conv


def _input_grad(conv):
    def grad(x, w, cotangent):
        return jax.vjp(lambda x: conv(x, w), x)[1](cotangent)[0]

    return grad


def _uses_ynnpack(jitted, *args) -> bool:
    return "ynn_fusion" in jitted.lower(*args).compile().as_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=136)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    n = args.batch_size
    # name, input [h, w, c], output features, stride: SmallCNN's convs on 64x64 images.
    layers = [
        ("conv1", (64, 64, 3), 16, 2),
        ("conv2", (16, 16, 16), 32, 1),
        ("conv3", (8, 8, 32), 64, 1),
        ("conv4", (8, 8, 64), 128, 1),
        ("conv1, 17 output features", (64, 64, 3), 17, 2),
    ]
    platform = jax.devices()[0].platform
    print(f"jax {jax.__version__}, {platform}, batch {n}, mean of {args.repeats} calls after a compile call\n")
    print("| conv | input | features | stride | pass | ms | GFLOP/s | CPU/wall | GFLOP/s per busy core | YNNPACK |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---|")
    keys = jax.random.split(jax.random.key(0), 3)
    for name, (h, w, c), features, stride in layers:
        x = jax.random.normal(keys[0], (n, h, w, c))
        kernel = jax.random.normal(keys[1], (3, 3, c, features)) * 0.1
        conv = _conv(stride)
        out = jax.eval_shape(conv, x, kernel)
        cotangent = jax.random.normal(keys[2], out.shape)
        flops = 2 * out.size * 9 * c
        for pass_name, fn, fn_args in [
            ("forward", conv, (x, kernel)),
            ("input gradient", _input_grad(conv), (x, kernel, cotangent)),
        ]:
            jitted = jax.jit(fn)
            ms, cpu = measure(jitted, *fn_args, repeats=args.repeats)
            ynn = "yes" if _uses_ynnpack(jitted, *fn_args) else "no"
            # os.times counts CPU time in clock ticks: a few short calls can read as none.
            per_core = f"{flops / ms / 1e6 / cpu:.0f}" if cpu > 0 else "-"
            print(
                f"| {name} | {h}x{w}x{c} | {features} | {stride} | {pass_name} | {ms:.2f} | "
                f"{flops / ms / 1e6:.0f} | {cpu:.2f} | {per_core} | {ynn} |"
            )


if __name__ == "__main__":
    main()
