"""Train a zoo classifier on SynthParts or on a real dataset found on disk.

    python -m experiments.train_classifier --config small_cnn_synthparts --workdir runs/small_cnn
    python -m experiments.train_classifier --config experiments/configs/small_cnn_synthparts.py \
        --workdir runs/x --set steps=500 --set learning_rate=1e-3

`--config` is a module in experiments/configs (or a path to a .py file) whose
`get_config()` returns a `TrainConfig`; `--set field=value` overrides a field.
Rerunning with the same workdir resumes from its latest checkpoint, with the
same config: a rerun whose config differs from the workdir's config.json fails
naming the fields, before anything is written (`--force-new-config` replaces it,
if the checkpoints still fit). One process at a time writes a workdir
(`interp.train.hold_workdir`). `experiments.common.restore(workdir)` reads the
trained network back.
"""

import argparse
import dataclasses
import json
import pathlib
from typing import Any

from experiments import common
from experiments.configs import TrainConfig
from interp import nets
from interp import train as trainlib


def run(config: TrainConfig, workdir: str | pathlib.Path, progress: bool | None = None,
        force_new_config: bool = False) -> dict[str, Any]:
    """Trains (or resumes) the run in `workdir`; returns the final validation metrics.

    `progress` is `fit`'s: show a progress bar of the steps, None on a terminal (see `interp._progress`).

    Raises:
      ConfigMismatchError: `workdir` holds a run of another config and not `force_new_config`.
      WorkdirBusyError: another process is writing `workdir`.
    """
    with trainlib.hold_workdir(workdir) as workdir:
        data = common.make_data(config)
        # Recorded with the dataset's own class count, so `restore` needs no data.
        config = dataclasses.replace(config, num_classes=data.num_classes)
        module = nets.create_module(config.model, num_classes=data.num_classes)  # a bad name fails here
        path = workdir / "config.json"
        previous = path.read_text() if path.exists() else None
        if previous is not None:
            common.check_same_config(json.loads(previous), dataclasses.asdict(config), path, force_new_config)
        path.write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        try:
            return _train(config, module, data, workdir, progress)
        except trainlib.CheckpointError:
            if previous is not None:  # the checkpoints are of the old config: it stays the workdir's
                path.write_text(previous)
            raise


def _train(config: TrainConfig, module, data: common.Data, workdir: pathlib.Path,
           progress: bool | None) -> dict[str, Any]:
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
    common.distributed_arguments(parser)
    args = parser.parse_args(argv)
    common.initialize_distributed(args)
    config = common.config_from(args, TrainConfig)
    print(json.dumps(run(config, args.workdir, progress=args.progress, force_new_config=args.force_new_config)))


if __name__ == "__main__":
    main()
