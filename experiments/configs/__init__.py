"""Experiment configs as code: the config types, and one module per named config.

Each module here other than this one is a named config: its `get_config()`
returns one of the types below, and `--config NAME` (or `--config PATH.py`)
selects it, `--set FIELD=VALUE` overrides a field (`experiments.common.load_config`).
Configs are plain data: nothing here imports an experiment. Each checks its
fields at construction (`_check`), so a bad value fails naming the field.

    small_cnn_synthparts  TrainConfig            experiments.train_classifier, experiments.demo
    attribution           AttributionConfig      experiments.attribution
    decision_tree         DecisionTreeConfig     experiments.decision_tree
    dissect               DissectConfig          experiments.dissect
    explanatory_graph     ExplanatoryGraphConfig experiments.explanatory_graph
    featviz               FeatvizConfig          experiments.featviz (and the demo's figures)
    icnn                  IcnnConfig             experiments.icnn
    inversion             InversionConfig        experiments.inversion
    sweep_units           interp.sweep.Sweep     experiments.sweep (render every unit of two layers)
    sweep_checkpoints     interp.sweep.Sweep     experiments.sweep (dissect every checkpoint of a run)
    sweep_methods         interp.sweep.Sweep     experiments.sweep (every attribution method, five seeds)
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
class ExplanatoryGraphConfig:
    """Explanatory graphs (Zhang et al., AAAI 2018) mined from a trained run: node stability, few-shot parts."""

    layers: tuple[str, ...] = ("relu3", "relu4")  # the graph's layers; the last is the top one parts are read from
    category: str = "bird"  # the SynthParts class mined: the one with the most parts (6)
    crop: bool = True  # SynthParts and CUB objects cut to their boxes, as the paper's images are
    mine_images: int = 240  # the category's held-out images the graph is mined from (and shots drawn from)
    test_images: int = 120  # other images of the category, parts located on
    negative_images: int = 120  # other categories' images, whose per-unit std normalizes the maps
    iterations: int = 20  # EM iterations per layer
    density: float = 0.1  # nodes per filter: ceil(h * w * density)
    init: str = "peaks"  # nodes start on each filter's strongest cells ("peaks") or on random ones (the release's)
    flip: bool = True  # each image read as it is or mirrored, whichever the top layer fits better (the release's)
    seeds: tuple[int, ...] = (0, 1, 2)  # each: the mining images' subset, the random init, the annotated draws
    shots: tuple[int, ...] = (1, 2, 3)  # annotated images per part
    draws: int = 5  # random choices of the annotated images, per part and number of shots
    voc_categories: tuple[str, ...] = ("bird", "cat", "cow", "dog", "horse", "sheep")  # with --voc-part: a task each
    batch_size: int = 64

    def __post_init__(self):
        _check(self, positive=("mine_images", "test_images", "negative_images", "iterations", "density", "draws",
                               "batch_size"))
        if not self.layers or not self.seeds or not self.shots:
            raise ValueError("ExplanatoryGraphConfig: expected at least one layer, one seed and one shot count")
        if min(self.shots) < 1:
            raise ValueError(f"ExplanatoryGraphConfig.shots: expected counts >= 1, got {self.shots!r}")
        if not 0 < self.density <= 1:
            raise ValueError(f"ExplanatoryGraphConfig.density: expected a share in (0, 1], got {self.density!r}")
        if self.init not in ("peaks", "random"):
            raise ValueError(f"ExplanatoryGraphConfig.init: expected 'peaks' or 'random', got {self.init!r}")


@dataclasses.dataclass(frozen=True)
class DecisionTreeConfig:
    """Decision trees of decision modes (Zhang et al., CVPR 2019): the demo SmallCNN and released interpretable ones."""

    layer: str = "relu3"  # the demo network's layer; above it conv4, ReLU, global average pool, dense
    images: int = 1536  # the demo's held-out images: the first half grows the trees, the second half tests them
    dissect_images: int = 1024  # held-out images the demo's filters are labelled on (Network Dissection)
    complexity: float = 1.0  # the objective's reward per merge
    lasso: float = 0.01  # a node's Lasso penalty per sqrt(image)
    depths: int = 6  # tree depths reported, from the root (0); the leaves besides
    # The interpretable networks (experiments.icnn's multi-category task on object crops), one per seed, with
    # their ordinary twins; their held-out crops (icnn_eval_images) split in halves as the demo's images are.
    icnn_seeds: tuple[int, ...] = (0, 1, 2)
    icnn_layer: str = "icnn_relu"  # the masked top conv layer after its ReLU; above it max-pool, fc7, fc8, logits
    icnn_pretrain_steps: int = 3000
    icnn_train_images: int = 1200
    icnn_epochs: int = 10
    icnn_batch_size: int = 32
    icnn_fc_width: int = 256
    icnn_eval_images: int = 1024
    batch_size: int = 64

    def __post_init__(self):
        _check(self, positive=("images", "dissect_images", "depths", "icnn_pretrain_steps", "icnn_train_images",
                               "icnn_epochs", "icnn_batch_size", "icnn_fc_width", "icnn_eval_images", "batch_size"))
        if self.complexity < 0 or self.lasso < 0:
            raise ValueError(f"DecisionTreeConfig.complexity, lasso: expected numbers >= 0, got "
                             f"{self.complexity!r} and {self.lasso!r}")


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
    """The released interpretable CNN against its ordinary twin, both fine-tuned from one trained backbone."""

    model: str = "small_cnn"
    image_size: int = 64
    top_resolution: int = 16  # small_cnn: side of the measured map (16: one pool fewer than the zoo's 8)
    seeds: tuple[int, ...] = (0, 1, 2)  # each: its own SynthParts draw, backbone and fine-tuning
    framings: tuple[str, ...] = ("crop", "whole")  # object crops (as released) and whole scenes
    single_classes: tuple[str, ...] = ("quadruped", "car")  # one-category tasks, besides the multi-category one
    pretrain_steps: int = 3000  # the backbone: an ordinary classifier trained with Adam on whole images
    pretrain_learning_rate: float = 2e-3
    train_images: int = 1200  # the finite training set's objects (each also mirrored)
    epochs: int = 10  # multi-category fine-tuning; the rate decays 10x over all of them
    single_epochs: int = 30  # one-category fine-tuning; the rate decays over the first fifth
    batch_size: int = 32
    learning_rate: float = 1e-2  # SGD's first-epoch rate (the release's 1e-4 times its per-net lrMag)
    dropout: float = 0.5
    fc_width: int = 256  # fc7 and fc8 (4096 on the release's nets)
    strength: float = 1e-5  # the injected gradient's constant
    # More masked nets on the first multi-category task, the constant scaled (0: the masks without the loss).
    strength_factors: tuple[float, ...] = (0.0, 0.1, 10.0, 100.0)
    eval_images: int = 1024
    landmark_share: float = 0.5  # a category's landmarks: parts visible on at least this share of its images

    def __post_init__(self):
        _check(self, positive=("image_size", "top_resolution", "pretrain_steps", "pretrain_learning_rate",
                               "train_images", "epochs", "single_epochs", "batch_size", "learning_rate", "fc_width",
                               "strength", "eval_images", "landmark_share"))
        if not self.seeds:
            raise ValueError("IcnnConfig.seeds: expected at least one seed")
        if not self.framings or any(f not in ("crop", "whole") for f in self.framings):
            raise ValueError(f"IcnnConfig.framings: expected some of ('crop', 'whole'), got {self.framings!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"IcnnConfig.dropout: expected a rate in [0, 1), got {self.dropout!r}")


@dataclasses.dataclass(frozen=True)
class InversionConfig:
    steps: int = 1000  # decoder training steps per layer
    batch_size: int = 32
    random_init: bool = True  # also invert the random-init twin
    pool_size: int = 2048  # decoder training images
    test_size: int = 256  # held-out images scored

    def __post_init__(self):
        _check(self, positive=("steps", "batch_size", "pool_size", "test_size"))
