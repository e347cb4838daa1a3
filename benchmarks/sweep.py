"""What a sweep's grouping buys: cells per second with the cells that share a program in one call, against one
call per cell, in the same run, and what a durable write of each group costs.

    python -m benchmarks.sweep [--units 64] [--steps 32] [--repeats 3]

Every unit of a SmallCNN layer is rendered (`interp.sweep.Render`) on this
process's devices, once with `units_per_call=units` (one vmapped, sharded
call) and once with `units_per_call=1` (a call per unit, as a loop over
`featviz.render` would make), each into a fresh workdir after a run that
compiled its programs. Prints one JSON line: seconds and cells/s of each,
their ratio, and the milliseconds each group's durable write took.
"""

import argparse
import json
import tempfile
import time

import jax

from benchmarks._timing import time_alternating
from interp import nets, sweep
from interp.data import SynthParts
from interp.sweep import store


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=64, help="units of relu3 rendered (SmallCNN has 64)")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model = nets.create("small_cnn", num_classes=6, key=jax.random.key(0), input_size=args.image_size)
    models = sweep.InMemory({"net": sweep.Subject(model, SynthParts(image_size=args.image_size))})

    def grid(per_call: int) -> sweep.Sweep:
        return sweep.Sweep(sweep.Render(steps=args.steps, image_size=args.image_size, units_per_call=per_call),
                           models=("net",), layers=("relu3",), units=tuple(range(args.units)), seeds=(0,))

    writing = []
    write = store.Store.write

    def timed_write(self, group, results):
        start = time.perf_counter()
        write(self, group, results)
        writing.append((len(results), time.perf_counter() - start))

    store.Store.write = timed_write

    def runner(per_call: int):
        def run():
            sweep.run(grid(per_call), tempfile.mkdtemp(), models, progress=False)
        return run

    runs = [runner(args.units), runner(1)]
    for run in runs:
        run()  # compiles
    writing.clear()
    grouped, alone = time_alternating(runs, args.repeats)

    def write_ms(cells: int) -> float:
        seconds = [s for n, s in writing if n == cells]
        return 1e3 * sum(seconds) / len(seconds)

    result = {
        "devices": len(jax.local_devices()), "platform": jax.default_backend(), "units": args.units,
        "steps": args.steps, "image_size": args.image_size,
        "grouped_s": float(grouped.min()), "one_per_call_s": float(alone.min()),
        "grouped_cells_per_s": args.units / float(grouped.min()),
        "one_per_call_cells_per_s": args.units / float(alone.min()),
        "speedup": float(alone.min() / grouped.min()),
        "write_ms_per_group": {"grouped": write_ms(args.units), "one_per_call": write_ms(1)},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
