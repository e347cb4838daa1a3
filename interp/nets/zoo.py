"""The model zoo: every network by name, with the input size of its paper."""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from interp._checks import check_positive_int
from interp.nets.adapter import Model, from_linen
from interp.nets.alexnet import AlexNet
from interp.nets.resnet import ResNet18, ResNet50
from interp.nets.small_cnn import SmallCNN
from interp.nets.vgg import VGG16, VGGM, VGGS

# name -> (constructor taking num_classes and keyword attributes, paper input side)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "small_cnn": (SmallCNN, 64),
    "alexnet": (AlexNet, 227),
    "vgg16": (VGG16, 224),
    "vgg_m": (VGGM, 224),
    "vgg_s": (VGGS, 224),
    "resnet18": (ResNet18, 224),
    "resnet50": (ResNet50, 224),
}


def names() -> tuple[str, ...]:
    """Names of all zoo models, in a stable order."""
    return tuple(_REGISTRY)


def _lookup(name: str) -> tuple[Callable[..., nn.Module], int]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_module(name: str, num_classes: int = 1000, **kw) -> nn.Module:
    """Builds zoo model `name` as a Linen module (to train, or to wrap), e.g. `create_module("vgg16", 200)`.

    Args:
      name: one of `names()`.
      num_classes: number of output logits.
      **kw: further module attributes (e.g. `dropout=0.0`, `channels=...`).

    Returns:
      An unbound Flax Linen module called as `module.apply(variables, x,
      train=False)` on images [B, H, W, 3].

    Raises:
      ValueError: an unknown `name`, or `num_classes` not a positive int.
    """
    constructor = _lookup(name)[0]
    return constructor(num_classes=check_positive_int("num_classes", num_classes), **kw)


def create(name: str, num_classes: int = 1000, *, key: jax.Array, input_size: int | None = None, **kw) -> Model:
    """Zoo model `name`, initialized from `key`, as a ready `Model`, e.g. `create("small_cnn", 6, key=k)`.

    Args:
      name: one of `names()`.
      num_classes: number of output logits.
      key: the PRNG key of the initialization.
      input_size: the side of the square input initialized on (default: the
        paper's, `paper_input_size(name)`). The zoo's parameters do not depend
        on it (adaptive pools precede the dense layers); a smaller side only
        makes the initializing forward pass cheaper.
      **kw: further module attributes, as in `create_module`.

    Returns:
      `from_linen(module, module.init(key, zeros [1, s, s, 3]))`, in inference mode.

    Raises:
      ValueError: an unknown `name`, or `num_classes` or `input_size` not a positive int.
    """
    module = create_module(name, num_classes, **kw)
    side = _lookup(name)[1] if input_size is None else check_positive_int("input_size", input_size)
    return from_linen(module, module.init(key, jnp.zeros((1, side, side, 3)), train=False))


def paper_input_size(name: str) -> tuple[int, int]:
    """(H, W) input size of model `name` in its paper (227 for AlexNet, 64 for SmallCNN)."""
    side = _lookup(name)[1]
    return side, side
