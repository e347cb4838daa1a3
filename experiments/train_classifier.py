"""Train a zoo classifier on SynthParts or on a real dataset found on disk.

    python -m experiments.train_classifier --config small_cnn_synthparts --workdir runs/small_cnn
    python -m experiments.train_classifier --config experiments/configs/small_cnn_synthparts.py \
        --workdir runs/x --set steps=500 --set learning_rate=1e-3

`--config` is a module in experiments/configs (or a path to a .py file) whose
`get_config()` returns a `TrainConfig`; `--set field=value` overrides a field.
Rerunning with the same workdir resumes from its latest checkpoint;
`experiments.common.restore(workdir)` reads the trained network back.
"""

import argparse
import dataclasses
import json
import pathlib
from typing import Any

import jax

from experiments import common
from experiments.configs import TrainConfig
from interp import nets
from interp import train as trainlib


def run(config: TrainConfig, workdir: str | pathlib.Path, progress: bool = True) -> dict[str, Any]:
    """Trains (or resumes) the run in `workdir`; returns the final validation metrics."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = common.make_data(config)
    # Recorded with the dataset's own class count, so `restore` needs no data.
    config = dataclasses.replace(config, num_classes=data.num_classes)
    (workdir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    module = nets.create_module(config.model, num_classes=data.num_classes)
    evaluate = trainlib.make_evaluator(data.eval, config.batch_size, num_examples=data.eval_examples)
    state = trainlib.fit(
        module,
        common.optimizer(config),
        data.train,
        num_steps=config.steps,
        batch_size=config.batch_size,
        workdir=workdir,
        seed=config.seed,
        shuffle=data.shuffle,
        checkpoint_every=config.checkpoint_every,
        log_every=config.log_every,
        evaluate=evaluate,
        eval_every=config.eval_every,
        progress=progress,
    )
    return evaluate(state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.config_arguments(parser, default=None)
    parser.add_argument("--workdir", required=True, help="run folder (resumed if it has checkpoints)")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (coordinator read from the environment)",
    )
    args = parser.parse_args(argv)
    if args.distributed:
        jax.distributed.initialize()
    config = common.config_from(args, TrainConfig)
    print(json.dumps(run(config, args.workdir)))


if __name__ == "__main__":
    main()
