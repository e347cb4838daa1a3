"""The interpretable CNN as the authors released it: architecture, losses, optimizer and diagnostics.

    backbone = ...  # a trained zoo classifier's variables (e.g. SmallCNN with pools=(True, False, False, False))
    module = layers.released_icnn("small_cnn", 6, pools=(True, False, False, False))
    twin = layers.released_icnn("small_cnn", 6, masked=False, pools=(True, False, False, False))
    loss = layers.logistic_loss(6) + layers.released_filter_loss(density, steps_per_epoch)
    optimizer = layers.released_sgd(layers.epoch_learning_rates(1e-2, 30), steps_per_epoch, top_conv="conv4")
    train.fit(module, optimizer, data, loss=loss, ..., initialize=lambda v: layers.load_backbone(v, backbone))

The network (`network_init.m`, `vgg_vd_16.m`): a pretrained backbone cut at
its top ReLU, then `conv_mask6` (3x3, the backbone's width, masking the top
ReLU: tap `icnn`, the map whose filters are measured, before its ReLU),
ReLU, a max-pool (2x2 for SmallCNN and VGG-16, 3x3 stride 2 for AlexNet and
VGG-M/S), `conv_mask7` (masking the pooled map, a kernel as large as it: an
fc layer as a conv, tap `fc7`), ReLU, dropout, fc8, ReLU, dropout and one
logit per class (`logits`), trained with one logistic loss per class. New
layers start from N(0, 0.01) weights and zero biases, the masks' beta at 2.
The ordinary twin (`masked=False`) has plain convs where the masks are, with
the same initial weights.

Taps: the backbone's, then `icnn` (conv_mask6's output), `icnn_relu`,
`icnn_pool`, `fc7`, `relu7`, `fc8`, `relu8`, `logits`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from interp import nets
from interp.layers.masked_conv import (
    BETA_INIT,
    MAG,
    STRENGTH,
    conv_mask,
    injected_gradient,
    mask_center,
    mask_guide,
    released_mask,
    update_slice_mag,
)
from interp.ops import max_pool, relu
from interp.train.losses import Forward, Loss

# The pool between the two masked convs, (window, stride), by backbone (`vgg_vd_16.m`, `alexnet.m`, ...).
HEAD_POOLS = {"small_cnn": (2, 2), "vgg16": (2, 2), "alexnet": (3, 2), "vgg_m": (3, 2), "vgg_s": (3, 2)}
MASKED_LAYERS = ("icnn", "fc7")  # the taps of the two masked convs' outputs
_HEAD = ("icnn", "fc7", "fc8", "logits")  # the new layers' module names
_INIT = nn.initializers.normal(0.01)  # the release's 'gaussian' init (init_weight.m)


class Supervision(NamedTuple):
    """What the masked layers read of a training batch (the release's `class`, `iter` and `density`).

    Attributes:
      labels: float32 [B, K] in {+1, -1}: image b shows class k (K = 1: the
        positives of a one-category net).
      epoch: float32 scalar, 1-based.
      density: float32 [K] each class's share of the training set.
    """

    labels: jax.Array
    epoch: jax.Array
    density: jax.Array


class ConvMask(nn.Module):
    """The released `conv_mask` layer (`interp.layers.masked_conv`) or, with `masked=False`, its plain conv twin.

    Attributes:
      features: output channels.
      kernel_size: (kh, kw).
      padding: symmetric zero padding.
      num_outputs: the network's outputs K (the columns of the class means).
      masked: False for the ordinary network's plain conv (no beta, no state).
      strength, mag, reverse_logz: of the injected gradient (`injected_gradient`).

    Variables: params `kernel` [kh, kw, C, F], `bias` [F], `beta` [C]
    (masked only); 'icnn_stats' `slice_mag` [C, K] (masked only), the running
    class means of each input filter's peak that assign it a category,
    updated by every training pass that gets a `Supervision`.
    """

    features: int
    kernel_size: tuple[int, int]
    padding: int = 0
    num_outputs: int = 1
    masked: bool = True
    strength: float = STRENGTH
    mag: float = MAG
    reverse_logz: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, supervision: Supervision | None = None) -> jax.Array:
        channels = x.shape[-1]
        kernel = self.param("kernel", _INIT, (*self.kernel_size, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if not self.masked:
            pad = ((self.padding, self.padding),) * 2
            y = jax.lax.conv_general_dilated(x, kernel, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y + bias[None, None, None, :]
        beta = self.param("beta", nn.initializers.constant(BETA_INIT), (channels,))
        slice_mag = self.variable("icnn_stats", "slice_mag", jnp.zeros, (channels, self.num_outputs))
        guide = None
        if supervision is not None:
            guide = mask_guide(supervision.labels, slice_mag.value, supervision.density, supervision.epoch)
            if self.is_mutable_collection("icnn_stats") and not self.is_initializing():
                slice_mag.value = update_slice_mag(slice_mag.value, x, supervision.labels)
        return conv_mask(x, kernel, bias, beta, guide, padding=self.padding, strength=self.strength,
                         mag=self.mag, reverse_logz=self.reverse_logz)


class ReleasedICNN(nn.Module):
    """The released interpretable (or ordinary) network on a zoo backbone; see the module docstring.

    Attributes:
      backbone: a zoo module built with `features_only=True`.
      num_outputs: K, one logit per class (1 for a one-category net).
      pool: (window, stride) of the max-pool between the masked convs.
      fc_width: the width of fc7 and fc8 (4096 in the release).
      dropout: the rate after relu7 and relu8 (the release's demo uses 0.8).
      masked, strength, mag, reverse_logz: of both `ConvMask` layers.
    """

    backbone: nn.Module
    num_outputs: int
    pool: tuple[int, int] = (2, 2)
    fc_width: int = 4096
    dropout: float = 0.5
    masked: bool = True
    strength: float = STRENGTH
    mag: float = MAG
    reverse_logz: bool = True

    @property
    def input_spec(self):
        return getattr(self.backbone, "input_spec", None)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, supervision: Supervision | None = None) -> jax.Array:
        """Images [B, H, W, 3] to logits [B, K]; `supervision` in training only (`released_filter_loss` feeds it)."""
        kw = dict(num_outputs=self.num_outputs, masked=self.masked, strength=self.strength, mag=self.mag,
                  reverse_logz=self.reverse_logz)
        x = self.backbone(x, train=train)
        x = nets.tap(ConvMask(x.shape[-1], (3, 3), padding=1, name="icnn", **kw)(x, supervision), "icnn")
        x = nets.tap(relu(x), "icnn_relu")
        window, stride = self.pool  # MatConvNet's floor mode: no padding
        x = nets.tap(max_pool(x, (1, window, window, 1), (1, stride, stride, 1), ((0, 0),) * 4), "icnn_pool")
        x = nets.tap(ConvMask(self.fc_width, x.shape[1:3], name="fc7", **kw)(x, supervision), "fc7")
        x = nets.tap(relu(x.reshape(x.shape[0], -1)), "relu7")
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nets.tap(nn.Dense(self.fc_width, kernel_init=_INIT, name="fc8")(x), "fc8")
        x = nets.tap(relu(x), "relu8")
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nets.tap(nn.Dense(self.num_outputs, kernel_init=_INIT, name="logits")(x), "logits")


def released_icnn(backbone: str, num_outputs: int, *, masked: bool = True, fc_width: int | None = None,
                  dropout: float = 0.5, strength: float = STRENGTH, mag: float = MAG, reverse_logz: bool = True,
                  **backbone_kw) -> ReleasedICNN:
    """The released interpretable network (or with `masked=False` its ordinary twin) on zoo model `backbone`.

    Args:
      backbone: "small_cnn", "alexnet", "vgg16", "vgg_m" or "vgg_s".
      num_outputs: K logits (1 for a one-category net, else the classes).
      masked: False for the ordinary twin.
      fc_width: of fc7 and fc8 (default 4096, 256 for SmallCNN).
      dropout, strength, mag, reverse_logz: see `ReleasedICNN`, `conv_mask`.
      **backbone_kw: attributes of the backbone (SmallCNN's `pools=` sets the
        top map's size: `(True, False, False, False)` gives 16x16 at 64 px).
    """
    if backbone not in HEAD_POOLS:
        raise ValueError(f"backbone: expected one of {', '.join(HEAD_POOLS)}, got {backbone!r}")
    features = nets.create_module(backbone, num_classes=1, features_only=True, **backbone_kw)
    width = fc_width if fc_width is not None else (256 if backbone == "small_cnn" else 4096)
    return ReleasedICNN(features, int(num_outputs), HEAD_POOLS[backbone], width, dropout, masked, strength, mag,
                        reverse_logz)


def load_backbone(variables: dict[str, Any], pretrained: Any) -> dict[str, Any]:
    """`variables` of a `ReleasedICNN` with the backbone's parameters taken from a trained zoo classifier.

    Args:
      variables: the network's variables (e.g. fresh from `module.init`).
      pretrained: the classifier's variables, or its `nets.Model`, of the same
        zoo architecture; its own head (`logits`, fc6, ...) is not used.

    Raises:
      ValueError: a backbone layer is missing from `pretrained` or has another shape.
    """
    pretrained = getattr(pretrained, "params", pretrained)
    source = pretrained.get("params", pretrained)
    backbone = variables["params"]["backbone"]
    missing = sorted(set(backbone) - set(source))
    if missing:
        raise ValueError(f"pretrained: expected the backbone's layers {', '.join(sorted(backbone))}; "
                         f"missing {', '.join(missing)}")
    loaded = {name: jax.tree.map(jnp.asarray, source[name]) for name in backbone}
    for name in backbone:
        for (path, new), old in zip(jax.tree_util.tree_flatten_with_path(loaded[name])[0],
                                    jax.tree.leaves(backbone[name])):
            if new.shape != old.shape:
                where = "/".join([name, *(str(getattr(k, "key", k)) for k in path)])
                raise ValueError(f"pretrained: {where} has shape {list(new.shape)}, the backbone {list(old.shape)}")
    return {**variables, "params": {**variables["params"], "backbone": loaded}}


def signed_labels(labels: jax.Array, num_outputs: int) -> jax.Array:
    """int labels [B] to the release's float32 [B, K] in {+1, -1} (K = 1: label 1 is the positive class)."""
    labels = jnp.asarray(labels)
    if num_outputs == 1:
        return jnp.where(labels == 1, 1.0, -1.0)[:, None]
    return 2.0 * jax.nn.one_hot(labels, num_outputs) - 1.0


def logistic_loss(num_outputs: int) -> Loss:
    """The release's 'ourloss_logistic': `sum_k log(1 + exp(-y_k z_k))` per image, averaged over the batch.

    Reads `batch['label']` int [B] (with one output, 1 marks a positive).
    Metrics: 'logistic_loss' and 'accuracy' (the sign of the one logit, else
    the argmax).
    """

    def fn(forward: Forward, batch):
        logits = forward.outputs
        signs = signed_labels(batch["label"], num_outputs)
        value = jax.nn.softplus(-signs * logits).sum(-1).mean()
        if num_outputs == 1:
            correct = (logits[:, 0] > 0) == (batch["label"] == 1)
        else:
            correct = jnp.argmax(logits, -1) == batch["label"]
        return value, {"logistic_loss": value, "accuracy": correct.mean()}, {}

    return Loss(fn)


def released_filter_loss(density: Sequence[float], steps_per_epoch: int) -> Loss:
    """The released filter loss: no value of its own; it feeds the masked layers the `Supervision` they inject from.

    Add it to the task loss of a masked `released_icnn`; its gradient reaches
    the network through the masked layers' backward pass. Metrics:
    'beta_icnn', 'beta_fc7' (the masks' mean beta).

    Args:
      density: [K] each class's share of the training set (K = 1: the
        positives' share, unused by the release).
      steps_per_epoch: steps of one epoch; step s is in epoch `s //
        steps_per_epoch + 1`, which divides the injected terms.
    """
    density = np.asarray(density, np.float32).reshape(-1)
    steps_per_epoch = int(steps_per_epoch)

    def fn(forward: Forward, batch):
        params = forward.model.params["params"]
        missing = [name for name in MASKED_LAYERS if "beta" not in params.get(name, {})]
        if missing:
            raise ValueError(f"loss: released_filter_loss trains the masked layers {', '.join(missing)} of a "
                             "released_icnn(..., masked=True); this network has none")
        betas = {f"beta_{name}": jax.lax.stop_gradient(params[name]["beta"]).mean() for name in MASKED_LAYERS}
        return jnp.zeros((), jnp.float32), betas, {}

    def inputs(batch, step):
        epoch = (step // steps_per_epoch + 1).astype(jnp.float32)
        return {"supervision": Supervision(signed_labels(batch["label"], len(density)), epoch, jnp.asarray(density))}

    return Loss(fn, inputs=inputs)


def epoch_learning_rates(first: float, epochs: int, decay_epochs: int | None = None) -> np.ndarray:
    """The release's schedule: log-spaced from `first` to `first / 10` over `decay_epochs`, then flat.

    Its one-category nets decay over the first 10 of 50 epochs, its multi-category
    nets over all 80 (`network_init.m`). Returns float32 [epochs].
    """
    decay_epochs = epochs if decay_epochs is None else min(int(decay_epochs), epochs)
    rates = np.full(epochs, first / 10, np.float64)
    rates[:decay_epochs] = np.logspace(np.log10(first), np.log10(first / 10), decay_epochs)
    return rates.astype(np.float32)


def released_sgd(learning_rates: Sequence[float], steps_per_epoch: int, *, top_conv: str | None = None,
                 momentum: float = 0.9, weight_decay: float = 5e-4) -> optax.GradientTransformation:
    """MatConvNet's SGD as the release trains with it (`our_cnn_train.m`).

    `update = -lr_epoch * mult * trace`, `trace <- momentum * trace + (g + decay * w)`,
    with per-parameter multipliers: the new layers' biases learn at 2x and
    the masks' beta at 0.05x (`add_block_mask.m`), the backbone's top conv
    bias at 5x (`net.layers{end-1}.learningRate=[1,5]`), the rest at 1x;
    weight decay on kernels only.

    Args:
      learning_rates: one rate per epoch (`epoch_learning_rates`); the last is
        kept if training runs longer.
      steps_per_epoch: steps of one epoch.
      top_conv: the backbone's last conv layer (e.g. "conv4" for SmallCNN).
      momentum, weight_decay: the release's 0.9 and 5e-4.
    """
    rates = jnp.asarray(learning_rates, jnp.float32)
    steps_per_epoch = int(steps_per_epoch)

    def schedule(step):
        return rates[jnp.minimum(step // steps_per_epoch, rates.shape[0] - 1)]

    def multiplier(path, _):
        names = [getattr(k, "key", str(k)) for k in path]
        if names[-1] == "beta":
            return 0.05
        if names[-1] == "bias":
            return 2.0 if names[0] in _HEAD else 5.0 if top_conv in names else 1.0
        return 1.0

    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask=lambda p: jax.tree_util.tree_map_with_path(
            lambda path, _: getattr(path[-1], "key", None) == "kernel", p)),
        _scale_by_path(multiplier),
        optax.trace(decay=momentum),
        optax.scale_by_learning_rate(schedule),
    )


def _scale_by_path(multiplier) -> optax.GradientTransformation:
    """Multiplies each update by `multiplier(path, leaf)`, a constant per parameter."""

    def update(updates, state, params=None):
        del params
        return jax.tree_util.tree_map_with_path(lambda path, u: u * multiplier(path, u), updates), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def gradient_norms(model: nets.Model, images: jax.Array, supervision: Supervision, *, strength: float = STRENGTH,
                   mag: float = MAG, reverse_logz: bool = True) -> dict[str, dict[str, float]]:
    """At each masked layer's input: the norm of the task gradient and of the injected filter-loss gradient.

    Both are the gradients of the batch-mean loss (`logistic_loss`) that the
    training step would add at that layer, on one batch; the task gradient is
    measured in inference mode (no dropout), through the masks.

    Args:
      model: a masked `released_icnn` as a `nets.Model` (e.g. `state.model()`).
      images: [B, H, W, 3].
      supervision: the batch's `Supervision`.
      strength, mag, reverse_logz: as the network was built with.

    Returns:
      `{layer: {'task': norm, 'injected': norm, 'ratio': injected / task}}` for 'icnn' and 'fc7'.
    """
    names = model.layer_names(images)
    inputs = tuple((layer, names[names.index(layer) - 1]) for layer in MASKED_LAYERS)
    found = _gradient_norms(model, jnp.asarray(images), supervision, inputs, strength, mag, reverse_logz)
    norms = {}
    for layer, (task, injected) in jax.device_get(found).items():
        task, injected = float(task), float(injected)
        norms[layer] = {"task": task, "injected": injected, "ratio": injected / task if task else float("inf")}
    return norms


# Jitted with the model as an argument, so one program serves every epoch's (and seed's) weights: the experiment
# measures the ratio once per epoch of every masked net.
@functools.partial(jax.jit, static_argnames=("inputs", "strength", "mag", "reverse_logz"))
def _gradient_norms(model: nets.Model, images: jax.Array, supervision: Supervision,
                    inputs: tuple[tuple[str, str], ...], strength: float, mag: float,
                    reverse_logz: bool) -> dict[str, tuple[jax.Array, jax.Array]]:
    batch = images.shape[0]
    labels = supervision.labels

    def loss_per_image(logits):
        return jax.nn.softplus(-labels * logits).sum(-1)

    _, acts, grads = model.activations_and_grads(images, [source for _, source in inputs], loss_per_image)
    variables = model.params
    norms = {}
    for layer, source in inputs:
        x = acts[source]
        rows, cols, _ = mask_center(x)
        mask = released_mask(rows, cols, variables["params"][layer]["beta"], x.shape[1:3])
        guide = mask_guide(labels, variables["icnn_stats"][layer]["slice_mag"], supervision.density,
                           supervision.epoch)
        injected = injected_gradient(x, mask, guide, strength=strength, mag=mag, reverse_logz=reverse_logz)
        norms[layer] = (jnp.linalg.norm(grads[source] / batch), jnp.linalg.norm(injected / batch))
    return norms

