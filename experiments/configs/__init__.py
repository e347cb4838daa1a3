"""Experiment configs as code: the config types, and one module per named config.

Each module here other than this one is a named config: its `get_config()`
returns one of the types below, and `--config NAME` (or `--config PATH.py`)
selects it, `--set FIELD=VALUE` overrides a field (`experiments.common.load_config`).
Configs are plain data: nothing here imports an experiment. Each checks its
fields at construction (`_check`), so a bad value fails naming the field.

    small_cnn_synthparts  TrainConfig        experiments.train_classifier, experiments.demo
    attribution           AttributionConfig  experiments.attribution
    dissect               DissectConfig      experiments.dissect
    featviz               FeatvizConfig      experiments.featviz (and the demo's figures)
    icnn                  IcnnConfig         experiments.icnn
    inversion             InversionConfig    experiments.inversion
    sweep_units           interp.sweep.Sweep experiments.sweep (render every unit of two layers)
    sweep_checkpoints     interp.sweep.Sweep experiments.sweep (dissect every checkpoint of a run)
    sweep_methods         interp.sweep.Sweep experiments.sweep (every attribution method, five seeds)
"""

import dataclasses
import math
import typing


def _check(config, positive: tuple[str, ...] = ()) -> None:
    """Every field has its annotated type (an int where a float is expected too); `positive` ones are > 0.

    Raises:
      ValueError: naming the first field that fails.
    """
    for field, kind in typing.get_type_hints(type(config)).items():
        value = getattr(config, field)
        origin = typing.get_origin(kind) or kind
        allowed = (int, float) if kind is float else origin
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, allowed):
            name = kind.__name__ if isinstance(kind, type) else str(kind)
            raise ValueError(f"{type(config).__name__}.{field}: expected a {name}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{type(config).__name__}.{field}: expected a finite number, got {value!r}")
        if field in positive and value <= 0:
            raise ValueError(f"{type(config).__name__}.{field}: expected a positive number, got {value!r}")


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

    def __post_init__(self):
        _check(self, positive=("image_size", "num_classes", "batch_size", "steps", "learning_rate", "checkpoint_every",
                               "log_every", "eval_every", "eval_batches"))


@dataclasses.dataclass(frozen=True)
class AttributionConfig:
    images: int = 256  # held-out images evaluated
    sanity_images: int = 32  # of those, the first ones the cascading randomization check reads

    def __post_init__(self):
        _check(self, positive=("images", "sanity_images"))


@dataclasses.dataclass(frozen=True)
class DissectConfig:
    images: int = 1024  # held-out images dissected
    layers: tuple[str, ...] = ("relu1", "relu2", "relu3", "relu4")
    convention: str = "category"  # one of interp.dissect.CONVENTIONS
    upsampling: str = "receptive_field"  # one of interp.dissect.UPSAMPLING
    batch_size: int = 64

    def __post_init__(self):
        _check(self, positive=("images", "batch_size"))


@dataclasses.dataclass(frozen=True)
class FeatvizConfig:
    channels: int = 8  # per layer, the most active on held-out data
    steps: int = 256
    examples: int = 1024  # held-out images searched for top patches
    patches: int = 4
    seed: int = 0

    def __post_init__(self):
        _check(self, positive=("channels", "steps", "examples", "patches"))


@dataclasses.dataclass(frozen=True)
class IcnnConfig:
    model: str = "small_cnn"
    image_size: int = 64
    steps: int = 1500  # multi-category training steps
    single_steps: int = 800  # per single-category network
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight: float = 0.02  # lambda of the filter loss (sum over filters)
    variant: str = "paper"
    eval_images: int = 1024
    single_classes: tuple[str, ...] = ("quadruped", "car")
    landmark_share: float = 0.5  # a category's landmarks: parts visible on at least this share of its images
    top_resolution: int = 8  # small_cnn: side of the last conv layer's map (8 or 16 at 64 px: fewer pools)
    seed: int = 0

    def __post_init__(self):
        _check(self, positive=("image_size", "steps", "single_steps", "batch_size", "learning_rate", "eval_images",
                               "top_resolution"))


@dataclasses.dataclass(frozen=True)
class InversionConfig:
    steps: int = 1000  # decoder training steps per layer
    batch_size: int = 32
    random_init: bool = True  # also invert the random-init twin
    pool_size: int = 2048  # decoder training images
    test_size: int = 256  # held-out images scored

    def __post_init__(self):
        _check(self, positive=("steps", "batch_size", "pool_size", "test_size"))
