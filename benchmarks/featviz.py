"""Feature visualization speed: `interp.featviz` (jitted JAX) against Lucent (eager PyTorch) on CPU.

Run (in the benchmark's environment, which has both stacks; `make bench-lucent`
builds it):

  .bench-lucent-venv/bin/python -m benchmarks.featviz [--repeats 5] [--steps-one 128] [--steps-all 16]

One process holds SmallCNN (`interp.nets.create("small_cnn", num_classes=6, key=key(0))`,
random He-init weights, seed 0) in Flax and the same weights in the torch port
(`benchmarks/_torch_reference.py`). Both sides optimize 64x64 images
parameterized by a scaled spectrum with decorrelated color (Lucid's
`fft=True, decorrelate=True`), through Lucid's standard transforms (pad 12,
jitter 8, scale ±10%, rotate ±10°, jitter 4), with Adam (lr 0.05), for:

  * one: one image, one channel (`--layer`:`--channel`);
  * all: every channel of `--layer` at once, image c for channel c
    (interp: `render_each`, a vmap over objectives that share each step's
    transform; Lucent: one batch of C images, one transform per step, and the
    sum of `channel(layer, c, batch=c)`, its documented way).

interp's transforms keep sizes static (pad, then crops), so its network sees
76x76 images; Lucent's are resized to that size (`fixed_image_size`) so both
networks do the same work. Each timed run is a whole render of `--steps-*`
steps: interp's compiled program (first call, i.e. compilation, excluded and
reported apart), Lucent's `render_vis` as a user calls it, and a lean torch
loop of the same ops (`benchmarks/_lucent_cases.py`), in rotating order.
The table gives steps/s from the median run, the speed-up, and each side's
final objective (the channel's mean activation on the untransformed final
image, measured by the same Flax model), so a fast side that does not
optimize would show. The issue's goal: at least 2x Lucent's steps/s for one
image and at least 5x its throughput (image-steps/s) for a layer's channels.

Run it on an idle machine: eager torch with one thread per core slows down
many times over when another process takes a core, so a note warns when any
side's renders vary by more than 1.5x.
"""

import argparse
import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np

from benchmarks._timing import time_alternating

_SIZE = 64
_LEARNING_RATE = 0.05
# Largest |image difference| between the timed program and the public call it stands for.
_SAME_IMAGES = 1e-5


@dataclasses.dataclass(frozen=True)
class Case:
    """One rendering job, on each side a callable that runs it and returns images [b, H, W, 3]."""

    name: str
    channels: tuple[int, ...]  # image i maximizes channel channels[i]
    steps: int
    interp: Callable[[], np.ndarray]
    lucent: Callable[[], np.ndarray]
    lean: Callable[[], np.ndarray]
    compile_s: float
    note: str = ""


def _setup_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def _model_and_net():
    """The Flax SmallCNN as a `Model` and its torch port with the same weights."""
    import jax

    from benchmarks import _torch_reference
    from interp import nets

    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0), input_size=_SIZE)
    return model, _torch_reference.from_flax(model.params, num_classes=6)


def _port_difference(model, net, layer: str) -> float:
    """Largest |Flax - torch| at `layer` on random images: the two sides compute the same function."""
    import jax

    from benchmarks import _lucent_cases, _torch_reference

    x = jax.random.uniform(jax.random.key(1), (2, 76, 76, 3))
    ours = np.asarray(model.activations(x, layer)[layer])
    theirs = _torch_reference.to_nhwc(_lucent_cases.truncated_forward(net, layer)(_torch_reference.to_nchw(x)))
    return float(np.abs(ours - theirs).max())


def _render_options(batch: int, steps: int) -> dict:
    """`make_render`'s options: Lucid's parameterization, transforms and optimizer."""
    import optax

    from interp import featviz as fv

    return {
        "param": fv.image(_SIZE, _SIZE, batch=batch, fft=True, decorrelate=True),
        "transforms": fv.standard_transforms(),
        "optimizer": optax.adam(_LEARNING_RATE),
        "steps": steps,
    }


def _network_input_size(options: dict) -> int:
    """Height of the image the network sees after interp's transforms (they fix it statically)."""
    import jax

    shape = jax.ShapeDtypeStruct(options["param"].shape, np.float32)
    return jax.eval_shape(options["transforms"], jax.random.key(0), shape).shape[1]


def _lucent_options(options: dict) -> dict:
    """The Lucent side's keyword arguments for the same render as interp's `options`."""
    return {
        "size": _SIZE,
        "input_size": _network_input_size(options),
        "steps": options["steps"],
        "learning_rate": _LEARNING_RATE,
    }


def _compiled(fn, *args) -> tuple[Callable[[], np.ndarray], float]:
    """`fn` jitted and compiled for `args`, as a no-argument call, and the seconds compiling took."""
    import jax

    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    return lambda: np.asarray(jax.block_until_ready(compiled(*args))), seconds


def _seeded(run: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """`run` with torch's and numpy's seeds reset, so every timed run draws the same transforms."""
    import torch

    def seeded():
        torch.manual_seed(0)
        np.random.seed(0)
        return run()

    return seeded


def _first_call_note(function: str, steps: int, seconds: float, difference: float) -> str:
    """What the public call costs when used directly (it jits anew each call) and that it matches.

    Raises:
      RuntimeError: the timed program's images differ from the public call's,
        i.e. the benchmark no longer times what `fv.{function}` runs.
    """
    if not difference <= _SAME_IMAGES:
        raise RuntimeError(
            f"the timed program differs from fv.{function} (max |image diff| {difference:.1e}); "
            f"update benchmarks/featviz.py to follow interp/featviz/render.py"
        )
    return (
        f"`fv.{function}` itself (jit + run, {steps} steps): {seconds:.1f} s; "
        f"max |its images - the timed program's| {difference:.1e}"
    )


def one_channel_case(model, net, layer: str, channel: int, steps: int) -> Case:
    """One image maximizing one channel: `fv.render`'s program against `render_vis`.

    The timed interp program is `jax.jit(fv.make_render(...))` compiled once,
    since `render` jits anew on each call; it is checked to give `render`'s images.
    """
    import jax

    from benchmarks import _lucent_cases
    from interp import featviz as fv

    options = _render_options(batch=1, steps=steps)
    render = fv.make_render(fv.channel(layer, channel), **options)
    interp, compile_s = _compiled(lambda m, k: render(m, k).images[-1], model, jax.random.key(0))
    start = time.perf_counter()
    reference = fv.render(model, fv.channel(layer, channel), key=jax.random.key(0), **options)
    first_call_s = time.perf_counter() - start
    same = float(np.abs(interp() - np.asarray(reference.images[-1])).max())
    lucent_objective = _lucent_cases.channel_objective(layer, channel)
    common = _lucent_options(options)
    return Case(
        name=f"one image, {layer}:{channel}",
        channels=(channel,),
        steps=steps,
        interp=interp,
        lucent=_seeded(lambda: _lucent_cases.render(net, lucent_objective, batch=1, **common)),
        lean=_seeded(lambda: _lucent_cases.lean(net, layer, [channel], **common)),
        compile_s=compile_s,
        note=_first_call_note("render", steps, first_call_s, same),
    )


def all_channels_case(model, net, layer: str, steps: int) -> Case:
    """Every channel of `layer` at once: `render_each` against one Lucent batch.

    The timed interp program is `jax.jit(fv.make_render_each(...))` compiled
    once, since `render_each` itself jits anew on each call; it is checked to
    give `render_each`'s images.
    """
    import jax
    import jax.numpy as jnp

    from benchmarks import _lucent_cases
    from interp import featviz as fv

    options = _render_options(batch=1, steps=steps)
    channels = model.layer_shapes(jnp.zeros((1, _SIZE, _SIZE, 3)))[layer].shape[-1]
    indices, key = jnp.arange(channels), jax.random.key(0)

    render_each = fv.make_render_each(lambda c: fv.channel(layer, c), **options)

    def each(m, k):
        return render_each(m, indices, k).images[:, -1, 0]

    interp, compile_s = _compiled(each, model, key)
    start = time.perf_counter()
    reference = fv.render_each(model, lambda c: fv.channel(layer, c), indices, key=key, **options)
    first_call_s = time.perf_counter() - start
    same = float(np.abs(interp() - np.asarray(reference.images[:, -1, 0])).max())
    lucent_objective = _lucent_cases.all_channels_objective(layer, channels)
    common = _lucent_options(options)
    return Case(
        name=f"all {channels} channels of {layer}",
        channels=tuple(range(channels)),
        steps=steps,
        interp=interp,
        lucent=_seeded(lambda: _lucent_cases.render(net, lucent_objective, batch=channels, **common)),
        lean=_seeded(lambda: _lucent_cases.lean(net, layer, range(channels), **common)),
        compile_s=compile_s,
        note=_first_call_note("render_each", steps, first_call_s, same),
    )


def _final_objective(model, layer: str, channels: tuple[int, ...], images: np.ndarray) -> float:
    """Median over images of channel channels[i]'s mean activation on image i (no transforms)."""
    import jax.numpy as jnp

    acts = np.asarray(model.activations(jnp.asarray(images, jnp.float32), layer)[layer])
    return float(np.median(acts[np.arange(len(channels)), :, :, list(channels)].mean((1, 2))))


def _row(case: Case, times: list[np.ndarray], objectives: list[float]) -> str:
    """One markdown row: steps/s (median run), speed-ups, fastest runs and final objectives."""
    rates = [case.steps / np.median(t) for t in times]
    ours, lucent, lean = rates
    b = len(case.channels)
    return (
        f"| {case.name} | {b} | {case.steps} | {ours:.1f} | {lucent:.2f} | **{ours / lucent:.1f}x** "
        f"| {lean:.2f} | {ours / lean:.1f}x | {b * ours:.0f} / {b * lucent:.0f} "
        f"| {times[0].min():.2f} / {times[1].min():.2f} / {times[2].min():.2f} "
        f"| {objectives[0]:.2f} / {objectives[1]:.2f} / {objectives[2]:.2f} |"
    )


def _instability_notes(name: str, times: list[np.ndarray], spread: float = 1.5) -> list[str]:
    """A warning per side whose slowest render took over `spread` times its fastest.

    Eager torch with as many threads as cores slows down many times over when
    another process takes a core (each op waits on its thread barrier), far
    more than one compiled XLA program does; such a run says little about
    either library.
    """
    return [
        f"- WARNING {name}: {side} renders took {t.min():.2f} to {t.max():.2f} s; the CPU was "
        "probably shared with another process; rerun on an idle machine."
        for side, t in zip(("interp", "Lucent", "torch lean"), times)
        if t.max() > spread * t.min()
    ]


def compare(args) -> None:
    _setup_threads(args.threads)
    import jax
    import lucent
    import torch

    model, net = _model_and_net()
    print(
        f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), lucent {lucent.__version__}; "
        f"{args.repeats} timed renders per side; load average {os.getloadavg()[0]:.1f}; "
        f"max |{args.layer} diff| Flax vs torch port {_port_difference(model, net, args.layer):.1e}\n"
    )
    print(
        "| case | images | steps / render | interp steps/s | Lucent steps/s | speed-up "
        "| torch lean steps/s | vs lean | image-steps/s (interp / Lucent) "
        "| fastest render s (interp / Lucent / lean) | final objective (interp / Lucent / lean) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    builders = {
        "one": lambda: one_channel_case(model, net, args.layer, args.channel, args.steps_one),
        "all": lambda: all_channels_case(model, net, args.layer, args.steps_all),
    }
    for name in args.cases:
        case = builders[name]()
        runs = (case.interp, case.lucent, case.lean)
        objectives = [_final_objective(model, args.layer, case.channels, run()) for run in runs]
        times = time_alternating(runs, args.repeats)
        print(_row(case, times, objectives), flush=True)
        notes.append(f"- {case.name}: interp compile {case.compile_s:.1f} s. {case.note}".rstrip(". ") + ".")
        notes += _instability_notes(case.name, times)
    print("\n" + "\n".join(notes) + f"\n- load average at the end {os.getloadavg()[0]:.1f}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--layer", default="relu3")
    parser.add_argument("--channel", type=int, default=5)
    parser.add_argument("--steps-one", type=int, default=128, help="steps per render, one image")
    parser.add_argument("--steps-all", type=int, default=16, help="steps per render, all channels")
    parser.add_argument("--cases", nargs="*", choices=("one", "all"), default=["one", "all"])
    compare(parser.parse_args())


if __name__ == "__main__":
    main()
