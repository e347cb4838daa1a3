"""Attribution methods: `interp` (jitted JAX) against Captum (eager PyTorch) on CPU.

Run (in the benchmark's environment, which has both stacks; `make bench-captum`
builds it):

  .bench-venv/bin/python -m benchmarks.attribution [--batch-size 16] [--repeats 7] [--network both]

One process holds SmallCNN (`interp.nets.create_module("small_cnn", num_classes=6)`,
random He-init weights, seed 0) in Flax and the same weights in a torch
module (`benchmarks/_torch_reference.py`), a batch of 64x64 SynthParts images
and their labels as targets. For every method (`benchmarks/_attribution_cases.py`)
it checks that the two attributions agree, then times interp (jitted, first
call excluded, `block_until_ready`) and Captum (eager) alternately, and prints
a markdown table of medians, the speed-up (Captum ms / interp ms), the
fastest run of each (a check on a busy machine) and the
largest absolute and relative (to the largest |reference|) difference, on the
batch and on the batch plus N(0, 1e-3) noise (no max-pool ties).
`--network plain` (or `both`, the default) runs the same cases on a plain
JAX function with SmallCNN's weights, written with `lax.conv_general_dilated`
and `lax.reduce_window` max-pools as a user's own network would be, through
`nets.from_function`: no tap names, so the CAM cases are left out, and its
pools are routed through the switch max-pool by `interp.ops.for_speed`.
Both frameworks use the same cores (`--threads`, default: all). XLA:CPU runs
each convolution on one thread, so interp splits the machine into `--devices`
host devices (default: one per thread) and shards the batch over them, as it
would over GPUs; torch runs `--threads` intra-op threads. `--devices 1` gives
the unsharded program.

`--memory` adds the peak memory of integrated gradients with many steps
(`--memory-steps 1024`), with and without chunking, each in a fresh
subprocess that imports only one framework.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

from benchmarks._timing import time_alternating


def _setup_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def _model_and_batch(batch_size: int):
    import jax
    import jax.numpy as jnp

    from interp import nets
    from interp.data import SynthParts

    batch = SynthParts(seed=0, image_size=64, num_classes=6).batch(jnp.arange(batch_size))
    module = nets.create_module("small_cnn", num_classes=6)
    variables = module.init(jax.random.key(0), batch["image"])
    return module, variables, batch["image"], batch["label"]


def plain_small_cnn(params, x):
    """SmallCNN's forward pass as a plain function: `lax` convolutions and `reduce_window` max-pools.

    `params` are SmallCNN's Linen params (`variables["params"]`); the logits
    equal `module.apply(variables, x)`'s.
    """
    import jax
    from jax import lax

    def conv(x, name, stride):
        y = lax.conv_general_dilated(
            x, params[name]["kernel"], (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return y + params[name]["bias"]

    def pool(x):
        return lax.reduce_window(x, -np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    x = pool(jax.nn.relu(conv(x, "conv1", 2)))
    x = pool(jax.nn.relu(conv(x, "conv2", 1)))
    x = jax.nn.relu(conv(jax.nn.relu(conv(x, "conv3", 1)), "conv4", 1))
    return x.mean(axis=(1, 2)) @ params["logits"]["kernel"] + params["logits"]["bias"]


def _differences(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Largest |ours - ref| and that divided by the largest |ref|."""
    if ours.shape != ref.shape:
        raise ValueError(f"shapes differ: interp {ours.shape}, reference {ref.shape}")
    diff = float(np.abs(ours.astype(np.float64) - ref).max())
    return diff, diff / max(float(np.abs(ref).max()), 1e-30)


def _case_differences(case, model, x, xt, target, tt) -> tuple[float, float]:
    """Max abs and rel difference of interp and its reference on one batch."""
    import jax

    ours = jax.block_until_ready(case.interp(model, x, target))
    a, c = case.to_common(ours, case.captum(xt, tt))
    return _differences(a, case.reference(x) if case.reference is not None else c)


def _force_host_devices(count: int) -> None:
    """Splits XLA:CPU into `count` devices; must run before jax initializes its backend."""
    flags = os.environ.get("XLA_FLAGS", "")
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", flags)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def _shard(model, x, target):
    """The batch split over every device, the model replicated (as `interp.train` shards)."""
    from interp.sharding import data_mesh, replicate, shard_batch

    mesh = data_mesh()
    if len(x) % mesh.devices.size:
        raise SystemExit(f"--batch-size {len(x)}: expected a multiple of --devices {mesh.devices.size}")
    batch = shard_batch({"x": x, "target": target}, mesh)
    return replicate(model, mesh), batch["x"], batch["target"]


def compare(args) -> None:
    _force_host_devices(args.devices)
    _setup_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
    import jax
    import torch

    from benchmarks import _torch_reference
    from interp import nets

    module, variables, x, target = _model_and_batch(args.batch_size)
    networks = {
        "SmallCNN": nets.from_linen(module, variables),
        "plain function": nets.from_function(plain_small_cnn, variables["params"], module.input_spec),
    }
    if args.network != "both":
        networks = {name: m for name, m in networks.items() if (name == "SmallCNN") == (args.network == "small_cnn")}
    net = _torch_reference.from_flax(variables, num_classes=6)
    xt, tt = _torch_reference.to_nchw(x), torch.from_numpy(np.asarray(target, np.int64))
    sharded = {}
    for name, m in networks.items():
        sharded[name], x_sharded, target_sharded = _shard(m, x, target)
    x, target = x_sharded, target_sharded
    logits_diff = max(np.abs(np.asarray(m(x)) - net(xt).detach().numpy()).max() for m in sharded.values())
    print(
        f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), captum {_captum_version()}; "
        f"interp on {jax.device_count()} {jax.devices()[0].platform} devices (batch sharded over them); "
        f"batch {args.batch_size}x64x64x3, {args.repeats} timed runs each ({args.warm_up} untimed before each); "
        f"max |logits diff| {logits_diff:.2e} (every network)\n"
    )
    for name, model in sharded.items():
        print(f"\n{name}:\n")
        _compare_cases(args, model, net, x, target, xt, tt, plain=name != "SmallCNN")
    if args.memory:
        memory_table(args)


def _compare_cases(args, model, net, x, target, xt, tt, plain: bool) -> None:
    """The table of every case on `model` (a `Model`) against Captum on `net`, the same weights."""
    import jax

    from benchmarks import _attribution_cases, _torch_reference

    # The same images plus N(0, 1e-3) noise: no two pixels are equal, so no
    # max-pool window has a tie (see the notes on ties in RESULTS.md).
    x_jitter = x + 1e-3 * jax.random.normal(jax.random.key(1), x.shape, x.dtype)
    cases = _attribution_cases.build(
        model, net, x, target, ig_steps=args.ig_steps, ig_chunk=args.ig_chunk, sg_samples=args.sg_samples,
        sg_chunk=args.sg_chunk, occlusion_chunk=args.occlusion_chunk,
    )  # fmt: skip
    if args.methods:
        cases = [c for c in cases if any(c.name.startswith(m) for m in args.methods)]
    if plain:  # a plain function has no tap names for Grad-CAM to read
        cases = [c for c in cases if "cam" not in c.name]
    print(
        "| method | interp ms | captum ms | speed-up | (min: interp / captum ms) "
        "| max abs diff | max rel diff | max rel diff, jittered x |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for case in cases:
        start = time.perf_counter()
        jax.block_until_ready(case.interp(model, x, target))
        compile_s = time.perf_counter() - start
        abs_diff, rel_diff = _case_differences(case, model, x, xt, target, tt)
        _, rel_jitter = _case_differences(case, model, x_jitter, _torch_reference.to_nchw(x_jitter), target, tt)
        t_ours, t_theirs = time_alternating(
            [
                lambda case=case: jax.block_until_ready(case.interp(model, x, target)),
                lambda case=case: case.captum(xt, tt),
            ],
            args.repeats,
            args.warm_up,
        )
        ms_ours, ms_theirs = 1e3 * np.median(t_ours), 1e3 * np.median(t_theirs)
        print(
            f"| {case.name} | {ms_ours:.1f} | {ms_theirs:.1f} | {ms_theirs / ms_ours:.1f}x "
            f"| {1e3 * t_ours.min():.1f} / {1e3 * t_theirs.min():.1f} | {abs_diff:.1e} | {rel_diff:.1e} "
            f"| {rel_jitter:.1e} |",
            flush=True,
        )
        notes.append(f"- {case.name}: first interp call (compile) {compile_s:.1f} s. {case.note}".rstrip(". ") + ".")
    print("\n" + "\n".join(notes))


def _captum_version() -> str:
    import captum

    return captum.__version__


# --- peak memory of integrated gradients, one framework per subprocess ----------


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_child(args) -> None:
    """Runs one IG attribution in this fresh process; prints a JSON line of MiB figures."""
    side, chunk = args.memory_child, args.chunk
    result = {"side": side, "chunk": chunk}
    if side == "interp":
        import jax

        from interp import attribution as A
        from interp import nets

        module, variables, x, target = _model_and_batch(args.memory_batch)
        model = nets.from_linen(module, variables)
        f = jax.jit(lambda m, x, t: A.integrated_gradients(m, args.memory_steps, chunk_size=chunk)(x, t))
        compiled = f.lower(model, x, target).compile()
        mem = compiled.memory_analysis()
        result["xla_temp_mib"] = mem.temp_size_in_bytes / 2**20
        result["xla_total_mib"] = (
            mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
        ) / 2**20
        run = lambda: jax.block_until_ready(compiled(model, x, target))  # noqa: E731
    else:
        _setup_threads(args.threads)
        import torch
        from captum.attr import IntegratedGradients

        from benchmarks import _torch_reference

        _, variables, x, target = _model_and_batch(args.memory_batch)
        net = _torch_reference.from_flax(variables, num_classes=6)
        xt, tt = _torch_reference.to_nchw(x), torch.from_numpy(np.asarray(target, np.int64))
        ig = IntegratedGradients(net)
        run = lambda: ig.attribute(  # noqa: E731
            xt, target=tt, n_steps=args.memory_steps, internal_batch_size=None if chunk is None else chunk * len(xt)
        )
    result["before_mib"] = _rss_mib()
    result["peak_before_mib"] = _peak_mib()
    start = time.perf_counter()
    run()
    result["seconds"] = time.perf_counter() - start
    result["peak_mib"] = _peak_mib()
    print(json.dumps(result))


def memory_table(args) -> None:
    """Peak RSS over the process's RSS just before the call, interp and Captum, chunked or not."""
    print(
        f"\nIntegrated gradients, {args.memory_steps} steps (gauss_legendre), batch {args.memory_batch}; "
        "peak RSS increase during the call (MiB), each in a fresh process:\n"
    )
    print("| library | steps per chunk | peak RSS increase | XLA temp buffers | seconds |")
    print("|---|---:|---:|---:|---:|")
    for side in ("interp", "captum"):
        for chunk in (None, args.memory_chunk):
            cmd = [
                sys.executable, "-m", "benchmarks.attribution", "--memory-child", side,
                "--memory-steps", str(args.memory_steps), "--memory-batch", str(args.memory_batch),
                "--threads", str(args.threads),
            ]  # fmt: skip
            if chunk is not None:
                cmd += ["--chunk", str(chunk)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"| {side} | {chunk or 'all'} | failed: {out.stderr.strip().splitlines()[-1:]} | | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            increase = r["peak_mib"] - r["before_mib"]
            xla = f"{r['xla_temp_mib']:.0f}" if "xla_temp_mib" in r else "-"
            print(f"| {side} | {chunk or 'all'} | {increase:.0f} | {xla} | {r['seconds']:.2f} |", flush=True)
    print(
        "\nCaptum's `internal_batch_size` counts expanded rows (steps x batch), so "
        f"chunk c steps is `internal_batch_size = c * {args.memory_batch}`. interp's compiled "
        "program is built before the measurement; the peak RSS of compilation itself is not counted "
        "unless the call exceeds it (then the increase is a lower bound)."
    )


def _int_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--devices", type=int, default=None, help="XLA:CPU host devices to shard the batch over (default: --threads)"
    )
    parser.add_argument("--ig-steps", type=int, default=64)
    parser.add_argument("--ig-chunk", type=_int_or_none, default=4, help="IG steps per network call ('none': all)")
    parser.add_argument("--sg-samples", type=int, default=32)
    parser.add_argument("--sg-chunk", type=_int_or_none, default=4, help="SmoothGrad samples per call ('none': all)")
    parser.add_argument("--occlusion-chunk", type=int, default=16, help="occlusion windows per network call")
    parser.add_argument("--methods", nargs="*", help="only the methods whose names start with these")
    parser.add_argument(
        "--network", choices=("small_cnn", "plain", "both"), default="both",
        help="SmallCNN (zoo module), the same weights as a plain lax function, or both",
    )  # fmt: skip
    parser.add_argument(
        "--warm-up", type=int, default=0,
        help="untimed calls of the same library before each timed call (torch's OpenMP threads spin after "
        "each Captum call and slow interp for about 20 ms; 5 calls measure each library's steady state)",
    )  # fmt: skip
    parser.add_argument("--memory", action="store_true", help="also measure peak memory of IG")
    parser.add_argument("--memory-steps", type=int, default=1024)
    parser.add_argument("--memory-batch", type=int, default=4)
    parser.add_argument("--memory-chunk", type=int, default=64, help="IG steps per chunk")
    parser.add_argument("--memory-child", choices=("interp", "captum"), help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.devices = args.devices or args.threads
    if args.memory_child:
        memory_child(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
