"""One GPU benchmark: training steps, integrated gradients' FLOP/s, `render_each`, dissection and a sweep.

Run: `python -m benchmarks.gpu [--size large|small|tiny] [--only train ig ...] [--out results.json]`
(`--size large` by default on an accelerator, `small` on a CPU; every
measurement unless `--only` names some of `MEASUREMENTS`). Prints one line
per measurement as it finishes (stderr), then a markdown table (stdout);
`--out` also writes every timing as JSON. Large sizes are meant to finish in
under 8 minutes on one GPU (not yet measured), small ones in about 2 minutes on 2 CPU cores (114 s);
`tiny` (SmallCNN only, 32 px) is the test's, ~40 s of CPU, nearly all compiling.

Measurements, each the median of `repeats` timed calls after a compiling one,
random weights (seed 0) and random or SynthParts inputs:

  * training step of SmallCNN, ResNet-18 and VGG-16: `benchmarks.train_step`'s
    library step (`interp.train.make_train_step`, AdamW, cross-entropy,
    state donated); images/s.
  * integrated gradients (`interp.attribution.integrated_gradients`, all path
    points in one call, no chunking) at a large batch; attributions/s and the
    achieved FLOP/s. The FLOPs are XLA's own count for the compiled program,
    `jax.jit(f).lower(...).compile().cost_analysis()["flops"]`, divided by
    the median time, against the device's peak for float32 at JAX's default
    precision (`PEAK_FLOPS`; TF32 tensor cores on NVIDIA Ampere and later,
    bfloat16 passes on TPU). XLA counts a while loop's body once, so the
    program must have none (checked); chunked IG would be undercounted.
  * `interp.featviz.render_each` over every channel of a layer: the program
    `render_each` compiles (`jax.jit(make_render_each(...))`, compiled once,
    since `render_each` jits anew per call); objectives/s at the stated steps.
  * `interp.dissect.dissect` on SynthParts concepts (generated on the device,
    both passes: thresholds and tally); images/s, compiled steps reused.
  * an `interp.sweep` `Render` sweep over every unit of a layer x seeds, on an
    `InMemory` source, into a fresh temporary workdir per run (so each run
    measures every cell, and writes each cell's arrays and PNG); cells/s of a
    warm run, one after a first run compiled the programs (the sweep reuses
    them across runs).

Everything runs on one device, the first (`jax.devices()[0]`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import time_alternating
from benchmarks.train_step import time_steps
from interp import attribution, dissect, nets, sharding, sweep
from interp import featviz as fv
from interp.data import SynthParts

# Dense peak FLOP/s per chip by `device_kind`: bf16, tf32 (tensor cores) and plain fp32.
# Sources: NVIDIA's datasheets (the H100 Tensor Core GPU datasheet, the H200 datasheet and
# the A100 datasheet; their tensor figures are "with sparsity", halved here for dense), and
# Google Cloud's TPU v4 and v5e system-architecture pages (bf16 per chip; no fp32 figure).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "NVIDIA H100 80GB HBM3": {"bf16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12},  # SXM5
    "NVIDIA H100 PCIe": {"bf16": 756.5e12, "tf32": 378.0e12, "fp32": 51.2e12},
    "NVIDIA H200": {"bf16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12},  # SXM
    "NVIDIA A100-SXM4-40GB": {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "NVIDIA A100-SXM4-80GB": {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "NVIDIA A100-PCIE-40GB": {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "NVIDIA A100 80GB PCIe": {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "TPU v4": {"bf16": 275e12},
    "TPU v5 lite": {"bf16": 197e12},  # v5e
}
# The arithmetic float32 convolutions run in at JAX's default precision, per platform.
_DEFAULT_FLOAT32 = {"gpu": "tf32", "tpu": "bf16"}


@dataclasses.dataclass(frozen=True)
class Train:
    """A training step of zoo `model` on `batch` random images of `size` px."""

    model: str
    size: int
    batch: int


@dataclasses.dataclass(frozen=True)
class IG:
    """Integrated gradients of zoo `model`: `batch` images of `size` px, `steps` path points each."""

    model: str
    size: int
    batch: int
    steps: int


@dataclasses.dataclass(frozen=True)
class Render:
    """`render_each` over every channel of `layer` of zoo `model`: `image` px images, `steps` steps."""

    model: str
    layer: str
    image: int  # side of the rendered image
    steps: int


@dataclasses.dataclass(frozen=True)
class Dissection:
    """`dissect` of `layers` of zoo `model` on `images` SynthParts images of `size` px, `batch` per step."""

    model: str
    size: int
    images: int
    layers: tuple[str, ...]
    batch: int


@dataclasses.dataclass(frozen=True)
class RenderSweep:
    """A `sweep.Render` sweep of every unit of `layer` of zoo `model` x seeds 0..`seeds`-1.

    `image` px images, `steps` steps, at most `units_per_call` units per call.
    """

    model: str
    layer: str
    image: int
    steps: int
    seeds: int
    units_per_call: int


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every measurement's shapes, and how many timed calls each gets."""

    train: tuple[Train, ...]
    ig: IG
    render: Render
    dissection: Dissection
    sweep: RenderSweep
    repeats: int  # timed calls of a step or an attribution
    job_repeats: int  # timed renders, dissections and sweeps (seconds each on a GPU)


# The measurements `run` can be limited to (`--only`), in the order they run.
MEASUREMENTS = ("train", "ig", "render", "dissection", "sweep")


SIZES = {
    "large": Sizes(
        train=(Train("small_cnn", 64, 256), Train("resnet18", 224, 256), Train("vgg16", 224, 256)),
        ig=IG("resnet18", 224, 32, 32),
        render=Render("vgg16", "relu4_3", 128, 64),
        dissection=Dissection("resnet18", 224, 1024, ("layer3", "layer4"), 64),
        sweep=RenderSweep("vgg16", "relu4_3", 128, 64, seeds=2, units_per_call=128),
        repeats=10,
        job_repeats=3,
    ),
    "small": Sizes(
        train=(Train("small_cnn", 64, 8), Train("resnet18", 32, 8), Train("vgg16", 32, 8)),
        ig=IG("small_cnn", 64, 8, 8),
        render=Render("small_cnn", "relu3", 32, 4),
        dissection=Dissection("small_cnn", 64, 32, ("relu3",), 16),
        sweep=RenderSweep("small_cnn", "relu3", 32, 4, seeds=2, units_per_call=16),
        repeats=2,
        job_repeats=2,
    ),
    "tiny": Sizes(  # the test's: every code path, compile-bound, no ResNet or VGG
        train=(Train("small_cnn", 32, 4),),
        ig=IG("small_cnn", 32, 4, 4),
        render=Render("small_cnn", "relu1", 32, 2),
        dissection=Dissection("small_cnn", 32, 16, ("relu2",), 8),
        sweep=RenderSweep("small_cnn", "relu1", 32, 2, seeds=2, units_per_call=8),
        repeats=2,
        job_repeats=2,
    ),
}


@dataclasses.dataclass
class Row:
    """One measurement: `work` units (images, attributions, objectives) per timed call.

    Attributes:
      measurement, model, input: what ran, on which zoo model, at which input side (px).
      batch: examples per call (objectives for a render).
      seconds: every timed call, in seconds.
      work: units done per call; `rate` is `work` per median second.
      unit: what one unit of work is.
      note: how to read the row.
      extra: further numbers for the JSON (FLOPs, peaks).
    """

    measurement: str
    model: str
    input: int
    batch: int
    seconds: list[float]
    work: int
    unit: str
    note: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return float(np.median(self.seconds))

    @property
    def rate(self) -> float:
        return self.work / self.median_s

    def as_json(self) -> dict:
        return {**dataclasses.asdict(self), "median_s": self.median_s, "rate": self.rate}


def flops(compiled) -> float:
    """FLOPs of one call of a compiled program by XLA's cost analysis.

    Raises:
      ValueError: the program has a while loop (XLA counts its body once, so
        the count would be too low) or the analysis gives no FLOP count.
    """
    if " while(" in compiled.as_text():
        raise ValueError("compiled: has a while loop, whose FLOPs XLA's cost analysis counts once")
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis  # a list per device before jax 0.4.30
    count = float((analysis or {}).get("flops", 0.0))
    if not count > 0:
        raise ValueError(f"compiled: XLA's cost analysis gave no FLOP count ({analysis})")
    return count


def peak_flops(device: jax.Device) -> tuple[str, float] | None:
    """(arithmetic, peak FLOP/s) of float32 at default precision on `device`; None when unknown (CPUs)."""
    peaks = PEAK_FLOPS.get(device.device_kind, {})
    kind = _DEFAULT_FLOAT32.get(device.platform)
    return (kind, peaks[kind]) if kind in peaks else None


def _timed(compiled, args: tuple, repeats: int) -> list[float]:
    return time_alternating([lambda: jax.block_until_ready(compiled(*args))], repeats)[0].tolist()


def _compile(fn, *args):
    """`fn` jitted and compiled for `args`, and the seconds that took."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def train_row(spec: Train, repeats: int, device: jax.Device) -> Row:
    seconds = time_steps(spec.model, spec.size, spec.batch, repeats, devices=[device])
    return Row("training step", spec.model, spec.size, spec.batch, seconds.tolist(), spec.batch, "images",
               "AdamW, cross-entropy, state donated")


def ig_program(spec: IG):
    """IG's jittable function `(model, x, target) -> attributions`, its arguments, and the model."""
    model = nets.create(spec.model, 10, key=jax.random.key(0), input_size=spec.size)
    x = jax.random.uniform(jax.random.key(1), (spec.batch, spec.size, spec.size, 3))
    target = jnp.arange(spec.batch) % 10

    def attribute(model, x, target):
        return attribution.integrated_gradients(model, steps=spec.steps)(x, target)

    return attribute, (model, x, target)


def ig_row(spec: IG, repeats: int, device: jax.Device) -> Row:
    attribute, args = ig_program(spec)
    compiled, compile_s = _compile(attribute, *args)
    row = Row("integrated gradients", spec.model, spec.size, spec.batch, _timed(compiled, args, repeats),
              spec.batch, "attributions", extra={"steps": spec.steps, "compile_s": compile_s})
    try:
        count = flops(compiled)
    except ValueError as e:  # keep the timing; say why there is no FLOP/s
        row.note = f"{spec.steps} steps; FLOPs not counted: {e}"
        return row
    achieved, peak = count / row.median_s, peak_flops(device)
    row.extra |= {"flops_per_call": count, "flops_per_s": achieved,
                  "flops_counted_by": "XLA cost analysis of the compiled program",
                  "peaks": PEAK_FLOPS.get(device.device_kind, {}), "peak_used": peak and peak[0],
                  "fraction_of_peak": peak and achieved / peak[1]}
    versus = (f" = {achieved / peak[1]:.1%} of the {peak[0]} dense peak ({peak[1] / 1e12:.0f} TFLOP/s)" if peak
              else f" (no peak known for {device.device_kind!r})")
    row.note = (f"{spec.steps} steps; {count / 1e12:.3g} TFLOP / call (XLA cost analysis); "
                f"{achieved / 1e12:.3g} TFLOP/s{versus}")
    return row


def render_row(spec: Render, repeats: int) -> Row:
    model = nets.create(spec.model, 10, key=jax.random.key(0), input_size=spec.image)
    channels = model.layer_shapes(jnp.zeros((1, spec.image, spec.image, 3)))[spec.layer].shape[-1]
    run = fv.make_render_each(lambda c: fv.channel(spec.layer, c), param=fv.image(spec.image), steps=spec.steps)
    args = (model, jnp.arange(channels), jax.random.key(0))
    compiled, compile_s = _compile(lambda *a: run(*a).images, *args)
    return Row("render_each, every channel", spec.model, spec.image, channels, _timed(compiled, args, repeats),
               channels, "objectives", f"{spec.layer}, {spec.steps} steps, Lucid's defaults",
               {"steps": spec.steps, "layer": spec.layer, "compile_s": compile_s})


def dissection_row(spec: Dissection, repeats: int) -> Row:
    model = nets.create(spec.model, 10, key=jax.random.key(0), input_size=spec.size)
    data = dissect.SynthPartsConcepts(SynthParts(seed=0, image_size=spec.size), num_examples=spec.images)

    def run():  # returns host arrays, so the whole dissection is done
        return dissect.dissect(model, data, spec.layers, batch_size=spec.batch)

    start = time.perf_counter()
    run()
    first_s = time.perf_counter() - start
    seconds = time_alternating([run], repeats)[0].tolist()
    return Row("dissection", spec.model, spec.size, spec.batch, seconds, spec.images, "images",
               f"{spec.images} SynthParts images, {', '.join(spec.layers)}, both passes",
               {"layers": list(spec.layers), "first_call_s": first_s})


def sweep_row(spec: RenderSweep, repeats: int, device: jax.Device) -> Row:
    model = nets.create(spec.model, 10, key=jax.random.key(0), input_size=spec.image)
    models = sweep.InMemory({spec.model: sweep.Subject(model, SynthParts(seed=0, image_size=spec.image))})
    grid = sweep.Sweep(sweep.Render(steps=spec.steps, image_size=spec.image, units_per_call=spec.units_per_call),
                       models=(spec.model,), layers=(spec.layer,), seeds=tuple(range(spec.seeds)))
    mesh = sharding.data_mesh([device])
    groups = sweep.plan(grid, models, mesh)
    tables = []

    def run():  # into a fresh workdir, so that no cell is skipped as already written
        with tempfile.TemporaryDirectory(prefix="benchmarks-gpu-sweep-") as workdir:
            tables.append(sweep.run(grid, workdir, models, mesh=mesh, progress=False))

    start = time.perf_counter()
    run()
    first_s = time.perf_counter() - start
    seconds = time_alternating([run], repeats)[0].tolist()
    cells = sum(len(group.cells) for group in groups)
    return Row("sweep, render every unit", spec.model, spec.image, spec.units_per_call, seconds, cells, "cells",
               f"{spec.layer} x {spec.seeds} seeds: {cells} cells in {len(groups)} groups of <= "
               f"{spec.units_per_call} per call, {spec.steps} steps; warm (each timed run into a fresh workdir "
               f"after a first one, {first_s:.3g} s, compiled the programs); arrays and a PNG written per cell",
               {"layer": spec.layer, "steps": spec.steps, "seeds": spec.seeds, "groups": len(groups),
                "cells_per_call": spec.units_per_call, "table_rows": [len(table) for table in tables],
                "first_run_s": first_s})


def run(sizes: Sizes, device: jax.Device | None = None, log=None, only: tuple[str, ...] = MEASUREMENTS) -> list[Row]:
    """The measurements named in `only` (all by default) at `sizes`, in `MEASUREMENTS` order.

    Each is printed to `log` (default stderr) as it finishes.

    Raises:
      ValueError: `only` names no measurement, or one not in `MEASUREMENTS`.
    """
    unknown = [name for name in only if name not in MEASUREMENTS]
    if unknown or not only:
        raise ValueError(f"only: expected some of {', '.join(MEASUREMENTS)}, got {list(only)!r}")
    device = jax.devices()[0] if device is None else device
    log = sys.stderr if log is None else log
    jobs = {"train": [lambda spec=spec: train_row(spec, sizes.repeats, device) for spec in sizes.train],
            "ig": [lambda: ig_row(sizes.ig, sizes.repeats, device)],
            "render": [lambda: render_row(sizes.render, sizes.job_repeats)],
            "dissection": [lambda: dissection_row(sizes.dissection, sizes.job_repeats)],
            "sweep": [lambda: sweep_row(sizes.sweep, sizes.job_repeats, device)]}
    rows = []
    for job in (job for name in MEASUREMENTS if name in only for job in jobs[name]):
        row = job()
        print(f"{row.measurement} {row.model} {row.input}px batch {row.batch}: {1e3 * row.median_s:.1f} ms, "
              f"{row.rate:,.1f} {row.unit}/s {row.note}".rstrip(), file=log, flush=True)
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| measurement | model | input | batch | ms / call (median) | throughput | notes |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.measurement} | {r.model} | {r.input} | {r.batch} | {_digits(1e3 * r.median_s)} "
                     f"| {_digits(r.rate)} {r.unit}/s | {r.note} |")
    return "\n".join(lines)


def _digits(value: float, significant: int = 4) -> str:
    """`value` to at least `significant` digits, never in exponent notation: 0.9629, 21.03, 292,178."""
    decimals = max(0, significant - 1 - math.floor(math.log10(value)))
    return f"{value:,.{decimals}f}"


def default_size(device: jax.Device) -> str:
    """The size `main` runs at without `--size`: small on a CPU, large on an accelerator."""
    return "small" if device.platform == "cpu" else "large"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default=None,
                        help="default: large on an accelerator, small on a CPU (tiny: the test's)")
    parser.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=MEASUREMENTS,
                        help="run only these measurements (default: all)")
    parser.add_argument("--out", default=None, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    size = args.size or default_size(device)
    only = tuple(args.only)
    header = (f"jax {jax.__version__}, {jax.device_count()} x {device.device_kind} ({device.platform}), "
              f"--size {size}" + ("" if only == MEASUREMENTS else f" --only {' '.join(only)}"))
    print(header, file=sys.stderr, flush=True)
    start = time.perf_counter()
    rows = run(SIZES[size], device, only=only)
    total_s = time.perf_counter() - start
    print(f"{header}; {total_s:.0f} s in all\n\n{table(rows)}", flush=True)
    if args.out:
        report = {"jax": jax.__version__, "device_kind": device.device_kind, "platform": device.platform,
                  "device_count": jax.device_count(), "size": size, "only": list(only),
                  "sizes": dataclasses.asdict(SIZES[size]),
                  "total_s": total_s, "rows": [r.as_json() for r in rows]}
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
