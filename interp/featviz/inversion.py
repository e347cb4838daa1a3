"""Inverting a representation with an up-convolutional decoder.

After Dosovitskiy & Brox, *Inverting visual representations with
convolutional networks* (CVPR 2016): a decoder is trained to map the features
of one named layer back to the image they were computed from, minimizing the
mean squared pixel error. What the decoder reconstructs shows what the layer
kept; a blurry or wrong reconstruction shows what it threw away. Unlike
optimization-based inversion, one forward pass of the decoder inverts any
features, and the reconstruction is the *expected* image given the features.

    inverter, losses = train_inverter(model, "relu2", data, key=key, steps=2000, batch_size=32)
    recon = inverter(model, images)                      # [b, H, W, 3]
    err = reconstruction_error(inverter, model, images)  # [b]
    base = mean_image_error(train_images, images)        # [b], the trivial decoder

`data` is a batch source (`interp.data`: SynthParts, `sized(reader, S)`,
`in_memory(images)`); step `s` trains on the images of
`epoch_indices(s, batch_size, ...)`, shuffled epochs over the examples. The
model is frozen: only the decoder is trained, and features are computed
inside the jitted step under `stop_gradient`.
"""

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from interp._checks import check_positive_int
from interp._progress import bar
from interp.data.stream import BatchSource, batch_images, check_source, check_span, epoch_indices
from interp.nets.adapter import Model

_LEAK = 0.2  # leaky-ReLU slope of the paper's decoders


class UpConv(nn.Module):
    """A stride-2 up-convolution: [B, h, w, C] to [B, 2h, 2w, features].

    Computed as a 3x3 convolution to `4 * features` channels followed by a
    depth-to-space shuffle (sub-pixel convolution, Shi et al. 2016). This is
    exactly a stride-2 transposed convolution with a 6x6 kernel (SAME padding):
    each of the four output phases sees a 3x3 input window through its own
    weights. It contains the paper's 4x4 up-convolutions as a special case and,
    unlike `nn.ConvTranspose`, does not multiply through a zero-dilated input:
    on XLA:CPU (32 -> 16 channels, 32x32 -> 64x64, batch 32, forward and
    backward) it takes 46 ms against 700 ms for a 4x4 `nn.ConvTranspose` and
    1560 ms for the equal 6x6 one.

    Attributes:
      features: output channels.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps [B, h, w, C] to [B, 2h, 2w, features]."""
        return depth_to_space(nn.Conv(4 * self.features, (3, 3), padding=1, name="conv")(x), 2)


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
    """[B, h, w, block * block * C] to [B, block * h, block * w, C].

    Channel `(a * block + b) * C + c` of input pixel (i, j) becomes channel `c`
    of output pixel (block * i + a, block * j + b).
    """
    b, h, w, c = x.shape
    if c % (block * block):
        raise ValueError(f"x: expected channels divisible by block**2={block * block}, got {c}")
    x = x.reshape(b, h, w, block, block, c // (block * block))
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * block, w * block, c // (block * block))


class UpConvDecoder(nn.Module):
    """Features of one layer to images: convs, then stride-2 up-convolutions.

    Spatial features [B, h, w, C] first pass `num_convs` 3x3 convs at their own
    resolution; global features [B, C] (an fc layer, GAP, logits) first pass a
    Dense layer to a `fc_side` x `fc_side` map, as in the paper's fc decoders.
    Then `ceil(log2(max(H / h, W / w)))` stride-2 up-convolutions (`UpConv`)
    double the resolution until it reaches or passes (H, W); each halves the
    width, down to `min_width`. Every hidden layer is followed by a leaky ReLU
    (slope 0.2). When the ratio is not a power of two (e.g. 13 -> 227), the map
    is bilinearly resized to (H, W) rather than cropped: a feature map spans the
    whole image, so cropping would shift the reconstruction against it. A last
    3x3 conv maps to 3 channels at full resolution (after the resize, so it
    also smooths it).

    Output goes through a sigmoid, so reconstructions lie in [0, 1] like the
    images and can be shown as they are. (The paper's decoders are linear
    because their targets are mean-subtracted images of unbounded range.)

    The default widths are small, for a CPU; the paper's are 4-16x wider.

    Attributes:
      image_shape: (H, W) of the images to reconstruct.
      width: channels of the convs at feature resolution.
      min_width: fewest channels of an up-convolution.
      num_convs: 3x3 convs before the first up-convolution.
      fc_side: side of the map a global [B, C] feature is reshaped to.
    """

    image_shape: tuple[int, int]
    width: int = 32
    min_width: int = 8
    num_convs: int = 1
    fc_side: int = 4

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        """Maps features [B, h, w, C] or [B, C] to images [B, H, W, 3] in [0, 1]."""
        x = _as_map(features, self.width, self.fc_side)
        for i in range(self.num_convs):
            x = _lrelu(nn.Conv(self.width, (3, 3), padding=1, name=f"conv{i + 1}")(x))
        for i in range(num_upsamplings(x.shape[1:3], self.image_shape)):
            channels = max(self.width // 2 ** (i + 1), self.min_width)
            x = _lrelu(UpConv(channels, name=f"upconv{i + 1}")(x))
        if x.shape[1:3] != tuple(self.image_shape):
            x = jax.image.resize(x, (x.shape[0], *self.image_shape, x.shape[-1]), "bilinear")
        return nn.sigmoid(nn.Conv(3, (3, 3), padding=1, name="to_rgb")(x))


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, _LEAK)


def _as_map(features: jax.Array, width: int, fc_side: int) -> jax.Array:
    """Spatial features unchanged; global features [B, C] through Dense to [B, s, s, width]."""
    if features.ndim == 4:
        return features
    if features.ndim == 2:
        x = nn.Dense(fc_side * fc_side * width, name="fc")(features)
        return _lrelu(x).reshape(features.shape[0], fc_side, fc_side, width)
    raise ValueError(f"features: expected [B, h, w, C] or [B, C], got shape {list(features.shape)}")


def num_upsamplings(feature_shape: Sequence[int], image_shape: Sequence[int]) -> int:
    """Stride-2 up-convolutions needed to grow (h, w) to at least (H, W); 0 if already there."""
    ratio = max(image_shape[0] / feature_shape[0], image_shape[1] / feature_shape[1])
    return max(0, math.ceil(math.log2(ratio) - 1e-9))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Inverter:
    """A trained decoder for one layer of a model; a pytree (params and scale are leaves).

    Attributes:
      decoder: the (unbound) decoder module, e.g. an `UpConvDecoder`.
      params: its variables, `{'params': ...}`.
      layer: the name of the layer it inverts.
      feature_scale: features are multiplied by it before decoding; one over
        their root mean square on the first training batch, so one learning rate
        fits layers whose activations differ in scale by orders of magnitude.
    """

    decoder: nn.Module = dataclasses.field(metadata={"static": True})
    params: Any
    layer: str = dataclasses.field(metadata={"static": True})
    feature_scale: jax.Array

    def decode(self, features: jax.Array) -> jax.Array:
        """Features of `layer` [B, h, w, C] or [B, C] to reconstructed images [B, H, W, 3]."""
        return self.decoder.apply(self.params, features * self.feature_scale)

    def __call__(self, model: Model, images: jax.Array) -> jax.Array:
        """Reconstructs `images` [B, H, W, 3] from `model`'s features at `layer`."""
        return self.decode(features_of(model, self.layer, images))


def features_of(model: Model, layer: str, images: jax.Array) -> jax.Array:
    """`model`'s activations at `layer` for `images`, with no gradient to the model."""
    return jax.lax.stop_gradient(model.activations(images, layer)[layer])


def reconstruction_error(inverter: Inverter, model: Model, images: jax.Array) -> jax.Array:
    """Per-image mean squared pixel error [B] of `inverter`'s reconstruction of `images` [B, H, W, 3]."""
    return _per_image_mse(inverter(model, images), images)


def mean_image_error(train_images: jax.Array, images: jax.Array) -> jax.Array:
    """Per-image error [B] of predicting the mean of `train_images` [N, H, W, 3] for every image.

    The trivial decoder, which ignores the features: a decoder that does not
    beat it has learned nothing about the images.
    """
    if train_images.shape[1:] != images.shape[1:]:
        raise ValueError(
            f"train_images: expected per-image shape {list(images.shape[1:])} like images, "
            f"got {list(train_images.shape[1:])}"
        )
    mean = jnp.mean(train_images, axis=0, keepdims=True)
    return _per_image_mse(jnp.broadcast_to(mean, images.shape), images)


def _per_image_mse(recon: jax.Array, images: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(recon - images), axis=tuple(range(1, images.ndim)))


def _check_layer(model: Model, layer: str, images: jax.Array) -> jax.ShapeDtypeStruct:
    """The shape of `layer`'s features for `images`; a named ValueError if it is unknown."""
    shape = model.layer_shape(jax.ShapeDtypeStruct(images.shape, images.dtype), layer)
    if len(shape.shape) not in (2, 4):
        raise ValueError(f"layer: expected features [B, h, w, C] or [B, C] at {layer!r}, got shape {list(shape.shape)}")
    return shape


def _check_images(images: jax.Array, batch_size: int) -> None:
    if images.shape[0] != batch_size:
        raise ValueError(
            f"data: expected images [batch_size={batch_size}, H, W, C], got shape {list(images.shape)}"
        )


def make_inverter_step(decoder: nn.Module, layer: str, optimizer: optax.GradientTransformation):
    """One jitted optax step on the L2 reconstruction loss.

    Returns:
      `step(model, params, opt_state, feature_scale, images) -> (params,
      opt_state, loss)`; `images` [B, H, W, 3], `loss` a scalar, the mean
      squared pixel error before the update.
    """

    def loss_fn(params, features, images):
        recon = decoder.apply(params, features)
        return jnp.mean(jnp.square(recon - images))

    # Params and optimizer state are replaced every step, so their buffers are reused.
    @functools.partial(jax.jit, donate_argnums=(1, 2))
    def step(model, params, opt_state, feature_scale, images):
        features = features_of(model, layer, images) * feature_scale
        loss, grads = jax.value_and_grad(loss_fn)(params, features, images)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def train_inverter(
    model: Model,
    layer: str,
    data: BatchSource,
    *,
    key: jax.Array,
    steps: int,
    batch_size: int,
    num_examples: int | None = None,
    first: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    optimizer: optax.GradientTransformation | None = None,
    decoder: nn.Module | None = None,
    progress: bool | None = None,
) -> tuple[Inverter, np.ndarray]:
    """Trains a decoder from `model`'s features at `layer` back to the images.

    Args:
      model: the frozen network to invert.
      layer: a named layer of `model` with features [B, h, w, C] or [B, C].
      data: a batch source whose batches are images [B, H, W, 3] in [0, 1] or
        dicts with an 'image' entry; only images are read.
      key: PRNG key for the decoder's initialization.
      steps: optimizer steps.
      batch_size: images per step.
      num_examples: examples trained on, `first ... first + num_examples - 1`;
        None trains on all of `data` from `first`.
      first: the index of the first example trained on.
      seed: the seed of the epochs' order (`interp.data.epoch_indices`).
      shuffle: False visits the examples in index order, for sources whose
        examples are already independent draws (SynthParts).
      optimizer: any optax transformation; defaults to `optax.adam(1e-3)`.
      decoder: a Linen module mapping features to [B, H, W, 3]; defaults to
        `UpConvDecoder(image_shape=(H, W))`.
      progress: show a progress bar of the steps: None on a terminal (see `interp._progress`).

    Returns:
      `(inverter, losses)`: the trained `Inverter` and the per-step training
      loss [steps] (mean squared pixel error, before each update).

    Raises:
      ValueError: unknown `layer`, data that is no batch source of images, a
        non-positive `steps`, or a decoder whose output does not match the images.
    """
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    data = check_source(data, "data")
    count = check_span(data, num_examples, first, "data")

    def images_at(step: int) -> jax.Array:
        indices = first + epoch_indices(step, batch_size, count, seed, shuffle=shuffle)
        return jnp.asarray(batch_images(data.batch(indices), "data"))

    first_images = images_at(0)
    _check_images(first_images, batch_size)
    _check_layer(model, layer, first_images)
    decoder = decoder if decoder is not None else UpConvDecoder(image_shape=first_images.shape[1:3])
    features = features_of(model, layer, first_images)
    feature_scale = jax.lax.rsqrt(jnp.mean(jnp.square(features)) + 1e-12)
    out = jax.eval_shape(decoder.init_with_output, key, features)[0]
    if out.shape != first_images.shape:
        raise ValueError(f"decoder: expected output shape {list(first_images.shape)}, got {list(out.shape)}")
    params = jax.jit(decoder.init)(key, features * feature_scale)
    optimizer = optimizer if optimizer is not None else optax.adam(1e-3)
    opt_state = optimizer.init(params)
    step_fn = make_inverter_step(decoder, layer, optimizer)
    losses = []
    with bar(steps, desc=f"inversion: {layer}", unit="step", progress=progress) as shown:
        for step in range(steps):
            images = first_images if step == 0 else images_at(step)
            params, opt_state, loss = step_fn(model, params, opt_state, feature_scale, images)
            losses.append(loss)
            shown.update()
    return Inverter(decoder, params, layer, feature_scale), np.asarray(jax.device_get(losses))


def invert_layers(
    model: Model,
    layers: Sequence[str],
    data: BatchSource,
    *,
    key: jax.Array,
    steps: int,
    batch_size: int,
    num_examples: int | None = None,
    first: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    optimizer: optax.GradientTransformation | None = None,
    decoder_fn: Callable[[str], nn.Module | None] = lambda layer: None,
    progress: bool | None = None,
) -> tuple[dict[str, Inverter], dict[str, np.ndarray]]:
    """One `train_inverter` per layer, on the same images; keys are folded in per layer.

    Arguments not listed here are as in `train_inverter`.

    Args:
      decoder_fn: `decoder_fn(layer)` gives the decoder for that layer (`None`
        for the default).
      progress: show a progress bar of each layer's steps: None on a terminal (see `interp._progress`).

    Returns:
      `({layer: inverter}, {layer: losses [steps]})`.
    """
    inverters, losses = {}, {}
    for i, layer in enumerate(layers):
        inverters[layer], losses[layer] = train_inverter(
            model, layer, data, key=jax.random.fold_in(key, i), steps=steps, batch_size=batch_size,
            num_examples=num_examples, first=first, seed=seed, shuffle=shuffle, optimizer=optimizer,
            decoder=decoder_fn(layer), progress=progress,
        )
    return inverters, losses
