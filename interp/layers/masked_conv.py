"""The authors' `conv_mask` as released (zqs1022/interpretableCNN), as pure JAX functions.

The released code does not train an interpretable CNN by differentiating the
paper's `-MI(X; T)` loss. Its `conv_mask` layer (`our_vl_simplenn.m`) masks
its own *input* x [B, h, w, C], a ReLU map, and convolves `relu(x * mask)`;
its backward pass multiplies the task gradient by `relu(mask)` and then
*injects* the filter loss's gradient, per filter c and image b:

  * on the images of c's category (positives), `- k w_pos s+[b, c] mask`:
    raise the map near its centre, lower it at the periphery;
  * on the others, `+ k w_neg s-[b, c]` on every cell: lower the whole map,

with `k = 1e-5`, `s+ = e^{S/a} (S - logZ+ + a)` of `S = mean(x * mask)` and
`s- = e^{-M/a} (-M - logZ- + a)` of `M = mean(x)` (`a = 0.5`), each normalized
to unit mean over the filter's positive (negative) images of the batch and
divided by `10 * epoch`. Which images are a filter's positives comes from the
labels: all positives in a one-output net; else its category, the class whose
images gave it the highest spatial peak by a running mean (`sliceMag`,
`update_slice_mag`). The per-filter `beta` of the mask gets no task gradient,
only a pull toward `clamp(3 / sigma, 1.5, 3)`, sigma the activation's spread
around its centre on the positives (`beta_gradient`).

Forward (`getMu.m`, `getMask.m`): the centre is the activation's centre of
mass rounded to a cell (MATLAB's round, half away from zero; an all-zero map
gives the first cell), the cells are placed on `linspace(-1, 1, n)`, and
`mask = max(1 - beta * L1, -1)`.

Everything a layer needs from the batch, the labels, the epoch, the class
density and its state, reaches the backward pass as a `MaskGuide`, a
non-differentiable input of `conv_mask`. The injected terms are divided by the
batch size: the release sums its loss over the batch and MatConvNet then
divides every gradient by the batch size, so for a loss that is a batch mean
(`interp.layers.logistic_loss`) this keeps the release's ratio of injected to
task gradient.

Quirks of the release, kept because they shape what it trains:
`alpha_logZ_pos` pairs filter c of image b with the mask of filter C-1-c of
image B-1-b (`mask(:,:,end:-1:1,end:-1:1)`; `reverse_logz=False` pairs them
as the paper's formula would), infinities are replaced by the largest finite
value of their group (10000 where none is finite, as the PyTorch port does
where MATLAB fails), `min`/`max` ignore NaN as MATLAB's do (a filter whose
category is absent from the batch is pulled to beta = 3). One departure:
the release reads the centre's column on the rows' grid, `linspace(-1, 1, h)`,
which is the columns' grid on the square maps of every released net and an
error on wider ones; we read it on the columns' own grid.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from interp.ops import relu

ALPHA = 0.5  # the release's `alpha` (not the paper's prior)
STRENGTH = 1e-5  # the injected gradient's constant, tuned for VGG's head
MAG = 0.1  # `l.mag` of every released net: the injection is divided by `epoch / MAG`
BETA_INIT = 2.0
BETA_PULL = 1e4  # `dzdw{3} = -10000 (target - beta)`
NO_FINITE = 1e4  # where no finite value exists to replace an infinity (the PyTorch port's choice)


class MaskGuide(NamedTuple):
    """What the backward pass of one `conv_mask` reads of the batch; nothing in it is differentiated.

    Attributes:
      positive: bool [B, C]: image b is a positive of filter c (an image of its category).
      groups: float32 [C, G] one-hot: the release's `Div` groups, the filters
        sharing a category (one group in a one-output net); an infinity is
        replaced by the largest finite value of its group.
      w_pos, w_neg: float32 [C] weights of the positive and negative terms.
      epoch: float32 scalar, 1 in the first epoch (the release's `iter`).
    """

    positive: jax.Array
    groups: jax.Array
    w_pos: jax.Array
    w_neg: jax.Array
    epoch: jax.Array


def _float(x: jax.Array) -> jax.Array:
    """`x` in float32, or in a wider float if it has one (float64 under `jax.enable_x64`)."""
    return jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))


def matlab_round(x: jax.Array) -> jax.Array:
    """MATLAB's `round`: half away from zero (`jnp.round` takes half to even)."""
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def mask_center(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`getMu.m`: each map's centre of mass, rounded to a cell, and its spread.

    Args:
      x: [B, h, w, C] non-negative maps (a ReLU's output).

    Returns:
      `(rows, cols, sigma)`: int32 [B, C] 0-based cells of the centres (an
      all-zero map gives (0, 0)), and float32 [B, C] the activation-weighted
      root-mean-square distance from the rounded centre, in cells.
    """
    _, h, w, _ = x.shape
    x = _float(x)
    total = jnp.maximum(x.sum((1, 2)), 1e-9)
    row_index = jnp.arange(1, h + 1, dtype=x.dtype)[None, :, None, None]  # MATLAB's 1-based cells
    col_index = jnp.arange(1, w + 1, dtype=x.dtype)[None, None, :, None]
    rows = jnp.clip(matlab_round((x * row_index).sum((1, 2)) / total), 1, h)
    cols = jnp.clip(matlab_round((x * col_index).sum((1, 2)) / total), 1, w)
    spread = (x * ((row_index - rows[:, None, None, :]) ** 2 + (col_index - cols[:, None, None, :]) ** 2)).sum((1, 2))
    return (rows - 1).astype(jnp.int32), (cols - 1).astype(jnp.int32), jnp.sqrt(spread / total)


def released_mask(rows: jax.Array, cols: jax.Array, beta: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """`getMask.m`: `max(1 - beta * L1, -1)` around each centre, on `linspace(-1, 1, n)` coordinates.

    Args:
      rows, cols: int [B, C] 0-based centre cells (`mask_center`).
      beta: [C], one per filter.
      shape: (h, w) of the maps.

    Returns:
      float32 [B, h, w, C] masks in [-1, 1]: 1 at the centre.
    """
    h, w = shape
    beta = _float(beta)
    grid_rows, grid_cols = jnp.linspace(-1.0, 1.0, h, dtype=beta.dtype), jnp.linspace(-1.0, 1.0, w, dtype=beta.dtype)
    mu_rows, mu_cols = grid_rows[rows], grid_cols[cols]
    distance = (jnp.abs(grid_rows[None, :, None, None] - mu_rows[:, None, None, :])
                + jnp.abs(grid_cols[None, None, :, None] - mu_cols[:, None, None, :]))
    return jnp.maximum(1.0 - beta[None, None, None, :] * distance, -1.0)


def mask_guide(labels: jax.Array, slice_mag: jax.Array, density: jax.Array, epoch: jax.Array) -> MaskGuide:
    """The release's filter groups and weights for one batch (`our_vl_simplenn.m`, backward of conv_mask).

    Args:
      labels: float [B, K] in {+1, -1}: image b shows class k (K = 1 for a
        one-category net: its positives).
      slice_mag: float32 [C, K] the layer's running class means of each
        filter's peak (`update_slice_mag`); all zeros before the first update.
      density: float [K] the share of each class among the training images.
      epoch: the epoch, 1-based.

    Returns:
      A `MaskGuide`. One output, or K outputs before the first update: one
      group, every image with a positive label a positive of every filter, unit
      weights. Otherwise filter c belongs to class `argmax_k slice_mag[c, k]`,
      its positives are that class's images, and `w_pos = 0.5 / density`,
      `w_neg = 0.5 / (1 - density)` of its class (with density 1 / K when K > 10).
    """
    labels = jnp.asarray(labels, jnp.float32)
    _, num_outputs = labels.shape
    filters = slice_mag.shape[0]
    category = jnp.argmax(slice_mag, axis=1)  # [C]
    grouped = (num_outputs > 1) & jnp.any(slice_mag != 0)
    density = jnp.asarray(density, jnp.float32)
    if num_outputs > 10:
        density = jnp.full_like(density, 1.0 / num_outputs)
    ones = jnp.ones((filters,), jnp.float32)
    shared = jnp.broadcast_to(jnp.any(labels == 1, axis=1)[:, None], (labels.shape[0], filters))
    return MaskGuide(
        positive=jnp.where(grouped, labels[:, category] == 1, shared),
        groups=jax.nn.one_hot(jnp.where(grouped, category, 0), num_outputs, dtype=jnp.float32),
        w_pos=jnp.where(grouped, 0.5 / density[category], ones),
        w_neg=jnp.where(grouped, 0.5 / (1.0 - density[category]), ones),
        epoch=jnp.asarray(epoch, jnp.float32),
    )


def update_slice_mag(slice_mag: jax.Array, x: jax.Array, labels: jax.Array, momentum: float = 0.9) -> jax.Array:
    """`our_cnn_train.m`'s `sliceMag` after one training batch: per filter, a running mean of its peak per class.

    For each class k with images in the batch, `mean_b max_hw x` over its
    images; a class column still all zero takes `max(mean, 0.1)`, the others
    `momentum * old + (1 - momentum) * mean`, where a zero mean (a filter
    silent on the class's images) is replaced by *column 0* (the release
    indexes the whole matrix with a per-filter mask, which reads the first
    column; its loop over classes has updated column 0 already when k > 0).

    Args:
      slice_mag: float32 [C, K].
      x: [B, h, w, C] the layer's input maps.
      labels: float [B, K] in {+1, -1}.
    """
    peaks = _float(jax.lax.stop_gradient(x)).max((1, 2))  # [B, C]
    shown = (jnp.asarray(labels) == 1).astype(peaks.dtype)  # [B, K]
    counts = shown.sum(0)  # [K]
    means = (peaks.T @ shown) / jnp.maximum(counts, 1.0)[None, :]  # [C, K]
    fresh = slice_mag.sum(0, keepdims=True) == 0
    present = counts[None, :] > 0

    def updated(fill):
        blended = momentum * slice_mag + (1 - momentum) * jnp.where(means == 0, fill, means)
        return jnp.where(present, jnp.where(fresh, jnp.maximum(means, 0.1), blended), slice_mag)

    first = updated(slice_mag[:, :1])  # column 0 is updated first, reading itself
    return updated(jnp.concatenate([slice_mag[:, :1], jnp.broadcast_to(first[:, :1], slice_mag[:, 1:].shape)], 1))


def _replace_infinities(values: jax.Array, valid: jax.Array, groups: jax.Array) -> jax.Array:
    """Each infinity in `values` [B, C] by the largest finite valid value of its filter's group."""
    finite = valid & jnp.isfinite(values)
    per_filter = jnp.where(finite, values, -jnp.inf).max(0)  # [C]
    per_group = jnp.where(groups > 0, per_filter[:, None], -jnp.inf).max(0)  # [G]; `groups` is [C, G]
    fill = groups @ jnp.where(jnp.isfinite(per_group), per_group, NO_FINITE)  # [C]
    return jnp.where(jnp.isinf(values), fill[None, :], values)


def _finite_log_z(log_z: jax.Array) -> jax.Array:
    """`alpha_logZ` [C] with infinities replaced by its largest finite value."""
    finite = jnp.isfinite(log_z)
    largest = jnp.where(finite, log_z, -jnp.inf).max()
    return jnp.where(finite, log_z, jnp.where(jnp.isfinite(largest), largest, NO_FINITE))


def _normalized(terms: jax.Array, valid: jax.Array, groups: jax.Array, magnitude: jax.Array) -> jax.Array:
    """The release's clean-up of s+ or s-: infinities, NaNs, then unit mean over each filter's `valid` images."""
    terms = jnp.where(jnp.isnan(terms), 0.0, _replace_infinities(terms, valid, groups))
    count = valid.sum(0)
    mean = jnp.where(valid, terms, 0.0).sum(0) / jnp.maximum(count, 1)  # [C]
    terms = terms / (mean[None, :] * magnitude)
    terms = jnp.where(jnp.isnan(terms), 0.0, terms)
    return jnp.where(valid, _replace_infinities(terms, valid, groups), 0.0)


def injected_gradient(x: jax.Array, mask: jax.Array, guide: MaskGuide, *, strength: float = STRENGTH,
                      mag: float = MAG, reverse_logz: bool = True) -> jax.Array:
    """The filter loss's gradient that the release adds to `d loss / d x`, per image (not yet divided by B).

    Args:
      x: [B, h, w, C] the layer's input maps.
      mask: [B, h, w, C] their masks (`released_mask`).
      guide: the batch's `MaskGuide`.
      strength: the constant `k` (1e-5 in the release).
      mag: the layer's `mag`; the terms are divided by `epoch / mag`.
      reverse_logz: pair x with the channel- and batch-reversed mask in
        `logZ+`, as the release does.

    Returns:
      float32 [B, h, w, C].
    """
    x = _float(x)
    masked = (x * mask).mean((1, 2))  # S: [B, C], the release's l.strength
    logz_mask = mask[::-1, :, :, ::-1] if reverse_logz else mask
    log_z_pos = _finite_log_z(ALPHA * jnp.log(jnp.mean(jnp.exp((x * logz_mask).mean((1, 2)) / ALPHA), 0)))
    plain = x.mean((1, 2))  # M: [B, C]
    log_z_neg = _finite_log_z(ALPHA * jnp.log(jnp.mean(jnp.exp(-plain / ALPHA), 0)))
    magnitude = guide.epoch / mag
    positive = guide.positive
    s_pos = jnp.exp(masked / ALPHA) * (masked - log_z_pos[None, :] + ALPHA)
    s_neg = jnp.exp(-plain / ALPHA) * (-plain - log_z_neg[None, :] + ALPHA)
    s_pos = _normalized(s_pos, positive, guide.groups, magnitude)
    s_neg = _normalized(s_neg, ~positive, guide.groups, magnitude)
    s_neg, s_pos = s_neg * guide.w_neg[None, :], s_pos * guide.w_pos[None, :]
    return strength * s_neg[:, None, None, :] - strength * mask * s_pos[:, None, None, :]


def beta_gradient(x: jax.Array, mask: jax.Array, sigma: jax.Array, beta: jax.Array, guide: MaskGuide) -> jax.Array:
    """The release's gradient of beta [C]: `10000 (beta - clamp(3 / sigma+, 1.5, 3))` (not yet divided by B).

    `sigma+` is the spread (`mask_center`) averaged over the filter's positive
    images, weighted by `mean(x * mask)`; MATLAB's `min`/`max` skip NaN, so a
    filter without positives in the batch is pulled to 3.
    """
    weight = jnp.where(guide.positive, (_float(x) * mask).mean((1, 2)), 0.0)
    spread = (weight * sigma).sum(0) / weight.sum(0)
    target = jnp.fmax(jnp.fmin(3.0 / spread, 3.0), 1.5)
    return BETA_PULL * (_float(beta) - target)


class MaskOptions(NamedTuple):
    """The static settings of one `conv_mask` (hashable)."""

    padding: tuple[tuple[int, int], tuple[int, int]]
    strength: float = STRENGTH
    mag: float = MAG
    reverse_logz: bool = True


def _conv(inputs: jax.Array, kernel: jax.Array, bias: jax.Array, padding) -> jax.Array:
    y = jax.lax.conv_general_dilated(inputs, kernel.astype(inputs.dtype), (1, 1), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias[None, None, None, :]


def _mask_of(x: jax.Array, beta: jax.Array) -> tuple[jax.Array, jax.Array]:
    # Under stop_gradient, the centre is where a unit looks, not what it sees (`interp.nets.receptive_fields`).
    rows, cols, sigma = mask_center(jax.lax.stop_gradient(x))
    return released_mask(rows, cols, beta, x.shape[1:3]), sigma


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _conv_mask(x, kernel, bias, beta, guide, options):
    mask, _ = _mask_of(x, beta)
    return _conv(relu(x * mask), kernel, bias, options.padding)


def _conv_mask_forward(x, kernel, bias, beta, guide, options):
    mask, sigma = _mask_of(x, beta)
    return _conv(relu(x * mask), kernel, bias, options.padding), (x, kernel, bias, beta, guide, mask, sigma)


def _conv_mask_backward(options, residuals, cotangent):
    x, kernel, bias, beta, guide, mask, sigma = residuals
    open_mask = relu(mask)
    # The release differentiates the conv at x * relu(mask), which is its forward input for x >= 0.
    _, conv_vjp = jax.vjp(lambda i, k, b: _conv(i, k, b, options.padding), x * open_mask, kernel, bias)
    d_inputs, d_kernel, d_bias = conv_vjp(cotangent)
    d_x = d_inputs * open_mask
    if guide is None:
        return d_x, d_kernel, d_bias, jnp.zeros_like(beta), None
    batch = x.shape[0]
    injected = injected_gradient(x, mask, guide, strength=options.strength, mag=options.mag,
                                 reverse_logz=options.reverse_logz)
    d_beta = beta_gradient(x, mask, sigma, beta, guide)
    return (d_x + (injected / batch).astype(d_x.dtype), d_kernel, d_bias, (d_beta / batch).astype(beta.dtype),
            None)


_conv_mask.defvjp(_conv_mask_forward, _conv_mask_backward)


def conv_mask(x: jax.Array, kernel: jax.Array, bias: jax.Array, beta: jax.Array, guide: MaskGuide | None = None,
              *, padding: int = 0, strength: float = STRENGTH, mag: float = MAG,
              reverse_logz: bool = True) -> jax.Array:
    """The released `conv_mask` layer: `conv(relu(x * mask)) + bias`, with the release's backward pass.

    Gradients: x gets the task gradient times `relu(mask)` plus, with a
    `guide`, the injected filter-loss gradient divided by the batch size;
    beta gets only the release's pull (divided by the batch size) and nothing
    without a guide; kernel and bias get the ordinary conv gradients.

    Args:
      x: [B, h, w, C] non-negative input maps (a ReLU's or a max-pool's output).
      kernel: [kh, kw, C, F] (HWIO).
      bias: [F].
      beta: [C] the mask's per-filter sharpness.
      guide: the batch's `MaskGuide` in training; None to inject nothing.
      padding: symmetric zero padding of the conv.
      strength, mag, reverse_logz: see `injected_gradient`.

    Returns:
      [B, h', w', F] the conv's output, before any ReLU.
    """
    if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != x.shape[-1]:
        raise ValueError(f"x, kernel: expected maps [B, h, w, C] and a kernel [kh, kw, C, F] with the same C, got "
                         f"{list(x.shape)} and {list(kernel.shape)}")
    if jnp.shape(beta) != (x.shape[-1],):
        raise ValueError(f"beta: expected one value per input filter, shape [{x.shape[-1]}], "
                         f"got {list(jnp.shape(beta))}")
    options = MaskOptions(((padding, padding), (padding, padding)), float(strength), float(mag), bool(reverse_logz))
    return _conv_mask(x, kernel, bias, beta, guide, options)
