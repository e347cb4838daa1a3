"""Interpretable CNNs as the paper's text describes them, built from zoo models, and their training loss.

    module = layers.interpretable_cnn("vgg16", num_classes=200, track_classes=True)  # on conv5_3
    baseline = layers.interpretable_cnn("vgg16", num_classes=200, masked=False)
    loss = train.classification_loss() + layers.icnn_loss(weight=1.0, mode="multi")
    train.fit(module, optax.adam(1e-3), data, loss=loss, ...)

The loss adds `weight * sum_f Loss_f` to the cross-entropy. Which images a
filter should fire on sets its prior `alpha`, the batch share of those images:

  * "single" (the paper's single-category nets): positives are the images of
    `positive_class`, negatives the rest, for every filter;
  * "multi": each filter belongs to the category whose images give it the
    highest peak activation, by a per-class running mean kept in the model's
    'icnn_stats' collection (so it is checkpointed with the run).

The authors' released algorithm is another one: `interp.layers.released_icnn`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from interp import nets
from interp.layers.interpretable import InterpretableConv, filter_loss
from interp.train.losses import Forward, Loss

MODES = ("single", "multi")
# Width of the last conv layer of each zoo model (the interpretable layer keeps it).
LAST_CONV_WIDTH = {"alexnet": 256, "vgg16": 512, "vgg_m": 512, "vgg_s": 512}


def interpretable_cnn(name: str, num_classes: int, *, masked: bool = True, track_classes: bool = False,
                      **kw) -> nn.Module:
    """A zoo model with an `InterpretableConv` on top of its last conv layer.

    Args:
      name: "small_cnn", "alexnet", "vgg16", "vgg_m" or "vgg_s".
      num_classes: the classifier's outputs.
      masked: False for the ordinary CNN of the comparison: the same extra
        conv layer, unmasked (trained without the filter loss).
      track_classes: keep the per-class peak means that multi-category
        training assigns filters by.
      **kw: further attributes of the zoo model (e.g. `channels=` of SmallCNN).
    """
    if name == "small_cnn":
        width = tuple(kw.get("channels", (16, 32, 64, 128)))[-1]
    elif name in LAST_CONV_WIDTH:
        width = LAST_CONV_WIDTH[name]
    else:
        raise ValueError(f"name: expected one of small_cnn, {', '.join(LAST_CONV_WIDTH)}, got {name!r}")
    layer = InterpretableConv(width, masked=masked, num_classes=num_classes if track_classes else None)
    return nets.create_module(name, num_classes=num_classes, after_last_conv=layer, **kw)


def _find(tree: Any, key: str) -> tuple[tuple[str, ...], Any]:
    """The one (path, value) of the layer's own collection `tree` whose path ends in `key`."""
    hits = [(path, value) for path, value in traverse_util.flatten_dict(tree).items() if path[-1] == key]
    if len(hits) != 1:
        raise ValueError(f"expected one interpretable layer with {key!r}, found {len(hits)}: "
                         f"{['/'.join(p) for p, _ in hits]}")
    return hits[0]


def update_class_means(means: jax.Array, peaks: jax.Array, labels: jax.Array, momentum: float) -> jax.Array:
    """Running per-class means [K, C] of peak activations [B, C], for the classes in the batch.

    A class seen for the first time takes its batch mean; afterwards
    `m <- momentum * m + (1 - momentum) * batch mean`.
    """
    onehot = jax.nn.one_hot(labels, means.shape[0], dtype=peaks.dtype)  # [B, K]
    counts = onehot.sum(0)  # [K]
    batch_means = (onehot.T @ peaks) / jnp.maximum(counts, 1.0)[:, None]
    fresh = jnp.all(means == 0.0, axis=1, keepdims=True)
    blended = jnp.where(fresh, batch_means, momentum * means + (1 - momentum) * batch_means)
    return jnp.where(counts[:, None] > 0, blended, means)


def icnn_loss(weight: float = 1.0, mode: str = "multi", *, positive_class: int = 1, momentum: float = 0.9) -> Loss:
    """The interpretable CNN's filter loss, a term to add to `classification_loss()` (see the module docstring).

    Reads the unmasked maps of the tap `icnn`. Metrics: 'filter_loss' (the
    mean over filters).

    Args:
      weight: lambda, the filter loss's weight against the cross-entropy.
      mode: "single" or "multi"; "multi" keeps per-class running means in
        the model state, so the network must be built with
        `interpretable_cnn(..., track_classes=True)` (the first step raises
        a `ValueError` otherwise).
      positive_class: the positives' label in "single" mode.
      momentum: of the per-class running means in "multi" mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")

    def fn(forward: Forward, batch):
        maps = forward.activations["icnn"]
        peaks = jax.lax.stop_gradient(maps.max((1, 2)))  # [B, C]
        labels = batch["label"]
        updates = {}
        if mode == "single":
            positive = jnp.broadcast_to((labels == positive_class)[:, None], peaks.shape)
        else:
            if "icnn_stats" not in forward.model_state:
                raise ValueError("mode: 'multi' needs the per-class peak means; build the network with "
                                 "interpretable_cnn(..., track_classes=True), or use mode='single'")
            stats_path, means = _find(forward.model_state["icnn_stats"], "class_means")
            means = update_class_means(means, peaks, labels, momentum)
            positive = labels[:, None] == jnp.argmax(means, axis=0)[None, :]
            updates["icnn_stats"] = traverse_util.unflatten_dict({stats_path: means})
        losses = filter_loss(maps, positive.mean(0))
        return weight * losses.sum(), {"filter_loss": losses.mean()}, updates

    return Loss(fn, layers=("icnn",))
