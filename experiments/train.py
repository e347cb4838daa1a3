"""Train a zoo model on SynthParts or on a real dataset found on disk.

    python -m experiments.train --config small_cnn_synthparts --workdir runs/small_cnn
    python -m experiments.train --config experiments/configs/small_cnn_synthparts.py \
        --workdir runs/x --set steps=500 --set learning_rate=1e-3

`--config` is a module in experiments/configs (or a path to a .py file) whose
`get_config()` returns a `TrainConfig`; `--set field=value` overrides a field.
Rerunning with the same workdir resumes from its latest checkpoint.
"""

import argparse
import dataclasses
import importlib
import importlib.util
import json
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from interp import train as trainlib
from interp.data import BatchSource, SynthParts, sized
from interp.nets import zoo


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, for how long."""

    model: str = "small_cnn"
    dataset: str = "synthparts"  # "synthparts", "cub" (a CUB_200_2011 folder) or "tfds:<name>"
    data_dir: str = ""  # the dataset's folder (real datasets only; nothing is downloaded)
    image_size: int = 64
    num_classes: int = 6  # SynthParts; a real dataset brings its own (recorded in config.json)
    clutter: float = 0.5  # SynthParts only
    batch_size: int = 64
    steps: int = 3000
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int = 500
    eval_batches: int = 32  # a real test split is evaluated once at most, whole if it fits


@dataclasses.dataclass(frozen=True)
class Data:
    """Batch sources for training and evaluation (see `interp.data.stream`)."""

    train: BatchSource
    eval: BatchSource
    num_classes: int
    eval_examples: int  # evaluated: examples 0 ... eval_examples - 1 of `eval`
    shuffle: bool  # whether training visits each epoch in a seeded random order


def synthparts_data(config: TrainConfig) -> Data:
    train_set = SynthParts(
        seed=config.seed, image_size=config.image_size, num_classes=config.num_classes, clutter=config.clutter
    )
    # Another seed is another stream of examples from the same distribution.
    eval_set = dataclasses.replace(train_set, seed=config.seed + 1)
    # SynthParts' examples are independent draws: read in index order.
    return Data(ImageLabel(train_set), ImageLabel(eval_set), config.num_classes,
                config.eval_batches * config.batch_size, shuffle=False)


def source_data(config: TrainConfig, train_source: Any, eval_source: Any) -> Data:
    """Batch sources from readers with `batch(indices, image_size)` (CUB, tfds).

    Training visits the examples epoch after epoch, each epoch in an order
    drawn from (seed, epoch) (`interp.data.epoch_indices`); evaluation is one
    ordered pass over at most `eval_batches` batches, padded at weight 0.
    """
    eval_examples = min(config.eval_batches * config.batch_size, len(eval_source))
    return Data(ImageLabel(sized(train_source, config.image_size)), ImageLabel(sized(eval_source, config.image_size)),
                train_source.num_classes, eval_examples, shuffle=True)


@dataclasses.dataclass(frozen=True)
class ImageLabel:
    """A batch source's 'image' (float32) and 'label' (int32), the fields training reads."""

    source: BatchSource

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices) -> dict[str, Any]:
        batch = self.source.batch(indices)
        return {"image": np.asarray(batch["image"], np.float32), "label": np.asarray(batch["label"], np.int32)}


def make_data(config: TrainConfig) -> Data:
    """The config's dataset: SynthParts, or a real one read from `data_dir`."""
    if config.dataset == "synthparts":
        return synthparts_data(config)
    if config.dataset == "cub":
        from interp.data import CUB200

        return source_data(config, CUB200(config.data_dir, split="train"), CUB200(config.data_dir, split="test"))
    if config.dataset.startswith("tfds:"):
        from interp.data import tfds_source

        name = config.dataset.removeprefix("tfds:")
        return source_data(
            config,
            tfds_source(name, split="train", data_dir=config.data_dir),
            tfds_source(name, split="test", data_dir=config.data_dir),
        )
    raise ValueError(f"dataset: expected 'synthparts', 'cub' or 'tfds:<name>', got {config.dataset!r}")


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, max(config.steps, config.warmup_steps + 1)
    )
    return optax.adamw(schedule, weight_decay=config.weight_decay)


def run(config: TrainConfig, workdir: str | pathlib.Path, progress: bool = True) -> dict[str, Any]:
    """Trains (or resumes) the run in `workdir`; returns the final validation metrics."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = make_data(config)
    # Recorded with the dataset's own class count, so `restore` needs no data.
    config = dataclasses.replace(config, num_classes=data.num_classes)
    (workdir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    module = zoo.create_module(config.model, num_classes=data.num_classes)
    evaluate = trainlib.make_evaluator(data.eval, config.batch_size, num_examples=data.eval_examples)
    state = trainlib.fit(
        module,
        optimizer(config),
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


def restore(workdir: str | pathlib.Path) -> tuple[TrainConfig, Any, dict[str, Any]]:
    """The config, module and trained variables of the run in `workdir` (latest checkpoint).

    Raises:
      FileNotFoundError: `workdir` has no config.json or no checkpoint.
    """
    workdir = pathlib.Path(workdir)
    if not (workdir / "config.json").exists():
        raise FileNotFoundError(f"workdir: {workdir / 'config.json'} not found; is {workdir} a training run?")
    config = TrainConfig(**json.loads((workdir / "config.json").read_text()))
    module = zoo.create_module(config.model, num_classes=config.num_classes)
    sample = jnp.zeros((1, config.image_size, config.image_size, 3))
    like = trainlib.create_train_state(module, optimizer(config), sample, config.seed)
    checkpoints = trainlib.Checkpoints(workdir / "checkpoints", every=config.checkpoint_every)
    try:
        state = checkpoints.restore(like)
    finally:
        checkpoints.close()
    return config, module, state.variables


def load_config(name_or_path: str, overrides: list[str]) -> TrainConfig:
    """`get_config()` of a module in experiments/configs or of a .py file, with `field=value` overrides."""
    if name_or_path.endswith(".py"):
        spec = importlib.util.spec_from_file_location("config", name_or_path)
        if spec is None or not pathlib.Path(name_or_path).exists():
            raise FileNotFoundError(f"--config: no such file {name_or_path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(f"experiments.configs.{name_or_path}")
    config = module.get_config()
    return with_overrides(config, overrides)


def with_overrides(config: Any, overrides: list[str]) -> Any:
    """A dataclass config with `field=value` overrides (a tuple field takes comma-separated strings)."""
    return dataclasses.replace(config, **dict(_parse_override(config, o) for o in overrides))


def _parse_override(config: Any, override: str) -> tuple[str, Any]:
    key, sep, value = override.partition("=")
    fields = {f.name: f for f in dataclasses.fields(config)}
    if not sep or key not in fields:
        raise ValueError(f"--set: expected field=value with field one of {', '.join(fields)}; got {override!r}")
    if isinstance(getattr(config, key), tuple):
        return key, tuple(v for v in value.split(",") if v)
    kind: Callable[[str], Any] = type(getattr(config, key))
    return key, kind(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config module name or .py path")
    parser.add_argument("--workdir", required=True, help="run folder (resumed if it has checkpoints)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (coordinator read from the environment)",
    )
    args = parser.parse_args(argv)
    if args.distributed:
        jax.distributed.initialize()
    config = load_config(args.config, args.set)
    print(json.dumps(run(config, args.workdir)))


if __name__ == "__main__":
    main()
