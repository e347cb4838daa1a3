"""What the experiments share: configs from the command line, data streams, trained runs, tables, results.

- Configs: `config_arguments(parser, default)` adds `--config NAME|PATH.py`,
  `--set FIELD=VALUE`, `--force-new-config` and `--[no-]progress` to a parser; `config_from(args, kind)`
  reads them (`load_config`, `with_overrides`: the one override parser);
  `check_same_config` (from `interp.files`) is the rule that a rerun's config matches its workdir's.
- Data: `synthparts_streams` (the training stream and the held-out one, seed + 1),
  a run's streams (`run_streams(config)`, `held_out(config)`), and
  `make_data(config)`: a training run's batch sources.
- Runs: `restore(workdir)` gives a trained run's config, its `Model` and its
  random-init twin; `optimizer(config)` the run's optax optimizer.
- Output: `markdown_table`, and `Results`, a workdir's results.json, written as
  each part finishes so that a rerun skips what is done.
"""

import argparse
import dataclasses
import importlib
import importlib.util
import json
import pathlib
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs import TrainConfig
from interp import nets
from interp import train as trainlib
from interp.data import BatchSource, SynthParts, sized
from interp.files import ConfigMismatchError as ConfigMismatchError  # re-exported: the experiments raise it
from interp.files import CorruptFileError, check_same_config, read_json, write_json

# --- configs ---------------------------------------------------------------------------------------------------


def load_config(name_or_path: str, kind: type, overrides: Sequence[str] = ()) -> Any:
    """`get_config()` of a module in experiments/configs or of a .py file, with `field=value` overrides.

    Args:
      name_or_path: a module name in experiments/configs (`small_cnn_synthparts`) or a path to a .py file.
      kind: the config type the experiment reads (e.g. `TrainConfig`).
      overrides: `field=value` strings (`with_overrides`).

    Raises:
      FileNotFoundError: no such file or config module.
      ValueError: the config is not a `kind`, or an override is malformed.
    """
    if name_or_path.endswith(".py"):
        path = pathlib.Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"--config: no such file {name_or_path}")
        spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        if importlib.util.find_spec(f"experiments.configs.{name_or_path}") is None:
            raise FileNotFoundError(f"--config: no config module experiments/configs/{name_or_path}.py")
        module = importlib.import_module(f"experiments.configs.{name_or_path}")
    config = module.get_config()
    if not isinstance(config, kind):
        raise ValueError(f"--config: {name_or_path} gives a {type(config).__name__}; expected a {kind.__name__}")
    return with_overrides(config, overrides)


def with_overrides(config: Any, overrides: Sequence[str]) -> Any:
    """A dataclass config with `field=value` overrides, each value parsed as its field's type.

    A tuple field takes comma-separated values of its element type (`single_classes=car,tree`,
    `seeds=0,1,2`; empty for none), a bool field `true`/`false` (or 1/0, yes/no). A field of a
    nested dataclass is `field.subfield=value` (a sweep's `measure.steps=64`).

    Raises:
      ValueError: naming the override: not `field=value`, an unknown field, or a value of the wrong type.
    """
    for override in overrides:
        key, _, rest = override.partition("=")
        head, dot, tail = key.partition(".")
        if dot and dataclasses.is_dataclass(getattr(config, head, None)):
            config = dataclasses.replace(config, **{head: with_overrides(getattr(config, head), [f"{tail}={rest}"])})
        else:
            config = dataclasses.replace(config, **dict([_parse_override(config, override)]))
    return config


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse_override(config: Any, override: str) -> tuple[str, Any]:
    key, sep, value = override.partition("=")
    kinds = {field: kind for field, kind in typing.get_type_hints(type(config)).items()
             if typing.get_origin(kind) is not typing.ClassVar}
    if not sep or key not in kinds:
        raise ValueError(f"--set: expected field=value with field one of {', '.join(kinds)}; got {override!r}")
    kind = kinds[key]
    if typing.get_origin(kind) is tuple:
        element = (typing.get_args(kind) or (str,))[0]
        try:
            return key, tuple(element(v) for v in value.split(",") if v)
        except ValueError:
            raise ValueError(f"--set {key}: expected comma-separated {element.__name__}s, got {value!r}") from None
    if kind is bool:
        if value.lower() not in _BOOLS:
            raise ValueError(f"--set {key}: expected true or false, got {value!r}")
        return key, _BOOLS[value.lower()]
    try:
        return key, kind(value)
    except ValueError:
        article = "an" if kind is int else "a"
        raise ValueError(f"--set {key}: expected {article} {kind.__name__}, got {value!r}") from None


def config_arguments(parser: argparse.ArgumentParser, default: str | None) -> argparse.ArgumentParser:
    """Adds `--config` (required when `default` is None), `--set`, `--force-new-config` and `--[no-]progress`.

    `args.progress` is None unless `--progress` (True) or `--no-progress` (False) is given: the `progress`
    argument of every long job (`interp._progress`: None shows the bars on a terminal only).
    """
    where = "a module in experiments/configs or a .py path"
    parser.add_argument("--config", default=default, required=default is None,
                        help=where + (f" (default {default})" if default else ""))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    parser.add_argument("--force-new-config", action="store_true",
                        help="replace the workdir's config with this one (by default a rerun must match it)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress bars (default: as INTERP_PROGRESS=0/1 says, else on a terminal)")
    return parser


def config_from(args: argparse.Namespace, kind: type) -> Any:
    """The config `config_arguments` read from the command line."""
    return load_config(args.config, kind, args.set)


def distributed_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds `--distributed` and `--coordinator HOST:PORT --num-processes N --process-id I` (several hosts)."""
    parser.add_argument("--distributed", action="store_true",
                        help="several hosts: call jax.distributed.initialize() (a cluster's settings found by jax)")
    parser.add_argument("--coordinator", help="several hosts, by hand: HOST:PORT of process 0 (implies --distributed)")
    parser.add_argument("--num-processes", type=int, help="with --coordinator: how many processes")
    parser.add_argument("--process-id", type=int, help="with --coordinator: this process's index, 0 .. N - 1")
    return parser


def initialize_distributed(args: argparse.Namespace) -> None:
    """`jax.distributed.initialize` as `distributed_arguments` asked (nothing without them).

    jax finds the process count and index itself only on a cluster it knows (SLURM, Cloud TPU, Open MPI,
    Kubernetes); elsewhere they must be given, with the coordinator.

    Raises:
      ValueError: `--coordinator` without `--num-processes` and `--process-id`.
    """
    if args.coordinator and (args.num_processes is None or args.process_id is None):
        raise ValueError("--coordinator: also give --num-processes and --process-id (this process's index)")
    if args.distributed or args.coordinator:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)


# --- data ------------------------------------------------------------------------------------------------------

HELD_OUT_SEED_OFFSET = 1  # the held-out stream: another seed, another stream of the same distribution


def synthparts_streams(seed: int, image_size: int, *, num_classes: int = 6,
                       clutter: float = 0.5) -> tuple[SynthParts, SynthParts]:
    """SynthParts to train on (seed) and held out from training (seed + 1), the same distribution."""
    train = SynthParts(seed=seed, image_size=image_size, num_classes=num_classes, clutter=clutter)
    return train, dataclasses.replace(train, seed=seed + HELD_OUT_SEED_OFFSET)


def run_streams(config: TrainConfig) -> tuple[SynthParts, SynthParts]:
    """The SynthParts a run trained on `config` read, and the held-out stream it never saw (its validation).

    Raises:
      ValueError: the run did not train on SynthParts (the experiments read its masks and landmarks).
    """
    if config.dataset != "synthparts":
        raise ValueError(f"run: expected a run trained on SynthParts, got dataset {config.dataset!r}")
    return synthparts_streams(config.seed, config.image_size, num_classes=config.num_classes, clutter=config.clutter)


def held_out(config: TrainConfig) -> SynthParts:
    """`run_streams(config)`'s held-out stream."""
    return run_streams(config)[1]


@dataclasses.dataclass(frozen=True)
class ImageLabel:
    """A batch source's 'image' (float32) and 'label' (int32), the fields training reads.

    With `positive`, the label is 1 for that class and 0 for the rest (a single-category task).
    """

    source: BatchSource
    positive: int | None = None

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices) -> dict[str, np.ndarray]:
        batch = self.source.batch(indices)
        label = np.asarray(batch["label"], np.int32)
        label = label if self.positive is None else (label == self.positive).astype(np.int32)
        return {"image": np.asarray(batch["image"], np.float32), "label": label}


@dataclasses.dataclass(frozen=True)
class Data:
    """Batch sources for training and evaluation (see `interp.data.stream`)."""

    train: BatchSource
    eval: BatchSource
    num_classes: int
    eval_examples: int  # evaluated: examples 0 ... eval_examples - 1 of `eval`
    shuffle: bool  # whether training visits each epoch in a seeded random order


def make_data(config: TrainConfig) -> Data:
    """The config's dataset: SynthParts, or a real one read from `data_dir`.

    Real datasets (readers with `batch(indices, image_size)`: CUB, tfds) are
    visited epoch after epoch, each epoch in an order drawn from (seed, epoch)
    (`interp.data.epoch_indices`); evaluation is one ordered pass over at most
    `eval_batches` batches, padded at weight 0. SynthParts' examples are
    independent draws, read in index order.
    """
    if config.dataset == "synthparts":
        train, evaluation = synthparts_streams(config.seed, config.image_size, num_classes=config.num_classes,
                                               clutter=config.clutter)
        return Data(ImageLabel(train), ImageLabel(evaluation), config.num_classes,
                    config.eval_batches * config.batch_size, shuffle=False)
    if config.dataset == "cub":
        from interp.data import CUB200

        train, evaluation = CUB200(config.data_dir, split="train"), CUB200(config.data_dir, split="test")
    elif config.dataset.startswith("tfds:"):
        from interp.data import tfds_source

        name = config.dataset.removeprefix("tfds:")
        train = tfds_source(name, split="train", data_dir=config.data_dir)
        evaluation = tfds_source(name, split="test", data_dir=config.data_dir)
    else:
        raise ValueError(f"dataset: expected 'synthparts', 'cub' or 'tfds:<name>', got {config.dataset!r}")
    eval_examples = min(config.eval_batches * config.batch_size, len(evaluation))
    return Data(ImageLabel(sized(train, config.image_size)), ImageLabel(sized(evaluation, config.image_size)),
                train.num_classes, eval_examples, shuffle=True)


# --- trained runs ----------------------------------------------------------------------------------------------

TWIN_SEED_OFFSET = 1


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay over the run's steps."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, max(config.steps, config.warmup_steps + 1)
    )
    return optax.adamw(schedule, weight_decay=config.weight_decay)


def random_init(config: TrainConfig) -> nets.Model:
    """The run's random-init twin: its architecture initialized from `jax.random.key(config.seed + 1)`.

    The one rule every experiment's "random init" baseline follows. Training
    initializes from `split(PRNGKey(seed))[0]`, so the twin never shares the
    trained network's starting point.
    """
    return nets.create(config.model, config.num_classes, key=jax.random.key(config.seed + TWIN_SEED_OFFSET),
                       input_size=config.image_size)


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run: its config, the trained network, and the same architecture at random initialization."""

    config: TrainConfig
    model: nets.Model
    random_init: nets.Model


def trained_run_arguments(parser: argparse.ArgumentParser, workdir: str) -> None:
    """--run, --workdir, --train-config and --train-set: the arguments of an experiment on a trained run."""
    parser.add_argument("--run", default="runs/demo",
                        help="a training run's workdir (trained first with --train-config if it has none)")
    parser.add_argument("--workdir", default=workdir)
    parser.add_argument("--train-config", default="small_cnn_synthparts",
                        help="the TrainConfig of a missing run (experiments/configs)")
    parser.add_argument("--train-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of --train-config")


def trained_run(args: argparse.Namespace) -> "Run":
    """The run in `args.run`, trained first (`--train-config`, `--train-set`) when it has no config.json."""
    from experiments import train_classifier  # which imports this module

    run_dir = pathlib.Path(args.run)
    if not (run_dir / "config.json").exists():
        train_classifier.run(load_config(args.train_config, TrainConfig, args.train_set), run_dir,
                             progress=args.progress)
    return restore(run_dir)


def restore(workdir: str | pathlib.Path, step: int | None = None) -> Run:
    """The run in `workdir` (written by `experiments.train_classifier`), from checkpoint `step` (default: latest).

    Raises:
      FileNotFoundError: `workdir` has no config.json or no checkpoint.
    """
    workdir = pathlib.Path(workdir)
    if not (workdir / "config.json").exists():
        raise FileNotFoundError(f"workdir: {workdir / 'config.json'} not found; is {workdir} a training run?")
    config = TrainConfig(**json.loads((workdir / "config.json").read_text()))
    module = nets.create_module(config.model, num_classes=config.num_classes)
    sample = jnp.zeros((1, config.image_size, config.image_size, 3))
    like = trainlib.create_train_state(module, optimizer(config), sample, config.seed)
    checkpoints = trainlib.Checkpoints(workdir / "checkpoints", every=config.checkpoint_every)
    try:
        state = checkpoints.restore(like, step=step)
    finally:
        checkpoints.close()
    return Run(config, state.model(), random_init(config))


def run_identity(workdir: str | pathlib.Path) -> dict[str, Any]:
    """What an analysis of the run in `workdir` depends on: its path, its config and its latest complete step.

    Stored in the analysis's results.json config, so that retraining or
    extending the run (even with `--force-new-config`) is a config mismatch
    for the analysis, not a silent reuse of results from the old network.
    """
    workdir = pathlib.Path(workdir)
    checkpoints = trainlib.Checkpoints(workdir / "checkpoints", every=1)
    try:
        step = checkpoints.latest_step()
    finally:
        checkpoints.close()
    return {"run": str(workdir.resolve()), "run_config": json.loads((workdir / "config.json").read_text()),
            "run_step": step}


# --- output ----------------------------------------------------------------------------------------------------


def spread(values: Sequence[Any]) -> dict[str, Any]:
    """Over the first axis (seeds, networks): the mean and sample std (ddof=1; 0 for a single value) of what is
    finite, and how many values were (`n`). Array-valued entries give lists; NaN where no value is finite."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    count = finite.sum(0)
    mean = np.where(count > 0, np.where(finite, values, 0.0).sum(0) / np.maximum(count, 1), np.nan)
    squares = np.where(finite, (values - mean) ** 2, 0.0).sum(0)
    std = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)
    return {"mean": mean.tolist(), "std": std.tolist(), "n": count.tolist()}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, text_columns: int = 1) -> str:
    """A markdown table of formatted cells: the first `text_columns` columns left-aligned, the rest right.

    Raises:
      ValueError: a row's length differs from the header's.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * text_columns + "---:|" * (len(header) - text_columns)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"rows: expected {len(header)} cells per row ({', '.join(header)}), got {list(row)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


class Results:
    """A workdir's results.json, `{"config": ..., "results": {...}}`, rewritten as each part finishes.

    A rerun with the same config reuses every stored part (`get_or_compute`)
    and computes only what is missing; a different config is an error naming
    the fields that differ, unless `force_new_config` (then it starts afresh).
    Values are stored as JSON reads them back (tuples become lists), and are
    returned that way on the first run too, so a rerun returns the same.

    Raises:
      ConfigMismatchError: results.json holds another config's results and not `force_new_config`.
      CorruptFileError: results.json does not match its checksum and not `force_new_config`.
    """

    def __init__(self, workdir: str | pathlib.Path, config: Any, force_new_config: bool = False):
        self.path = pathlib.Path(workdir) / "results.json"
        self.config = _as_json(dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config)
        stored = {"config": self.config, "results": {}}
        if self.path.exists():
            try:
                stored = _read_checksummed(self.path)
            except CorruptFileError:
                if not force_new_config:
                    raise
        check_same_config(stored["config"], self.config, self.path, force_new_config)
        self.values: dict[str, Any] = stored["results"] if stored["config"] == self.config else {}

    def get(self, path: str | Sequence[str], default: Any = None) -> Any:
        """The stored value at `path` (a key, or keys into nested dicts), or `default`."""
        node = self.values
        for key in _keys(path):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def __contains__(self, path: str | Sequence[str]) -> bool:
        return self.get(path, _MISSING) is not _MISSING

    def put(self, path: str | Sequence[str], value: Any) -> Any:
        """Stores `value` at `path`, rewrites results.json, and returns the value as stored."""
        *parents, last = _keys(path)
        node = self.values
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = _as_json(value)
        self.write()
        return node[last]

    def get_or_compute(self, path: str | Sequence[str], compute: Callable[[], Any]) -> Any:
        """The stored value at `path`, or `compute()` stored there."""
        return self.get(path) if path in self else self.put(path, compute())

    def write(self) -> None:
        write_json(self.path, {"config": self.config, "results": self.values})  # atomic: a stop keeps the old file


def _read_checksummed(path: pathlib.Path) -> dict[str, Any]:
    """results.json's config and results, verified against the checksum written with them."""
    try:
        stored = read_json(path)
        return {"config": stored["config"], "results": stored["results"]}
    except KeyError:
        raise CorruptFileError(f"{path}: expected the keys config and results, got {sorted(stored)}", path) from None


_MISSING = object()


def _keys(path: str | Sequence[str]) -> tuple[str, ...]:
    return (path,) if isinstance(path, str) else tuple(path)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))
