"""The interpretable conv layer as the text of Zhang, Wu & Zhu, "Interpretable Convolutional Neural Networks"
(CVPR 2018) describes it; the authors' released algorithm differs and is `interp.layers.released`.

Each filter of the layer should fire at one place of an object part and stay
silent elsewhere. Two mechanisms push it there:

  * a mask: the filter's n x n map x is multiplied by the template centered on
    its peak (the argmax), `x_masked = max(x * T_mu, 0)`, the mask held
    constant, so the layers above only see activation near the peak
    (`InterpretableConv`);
  * a loss: `Loss_f = -MI(X; T)` between the maps of the batch and the
    templates (`filter_loss`), which prefers maps that look like one positive
    template on a share `alpha` of the images and like the negative template
    (silence) on the rest.

Templates, for a map of h x w (the paper's n x n), beta = 4:

    t+_ij(mu) = tau * max(1 - beta * (|i - mu_i| / h + |j - mu_j| / w), -1),   t- = -tau,   tau = 0.5 / (h w)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from interp.nets import tap
from interp.ops import map_peaks, relu

PAPER_BETA = 4.0


def peak_positions(maps: jax.Array) -> jax.Array:
    """Each filter's peak: int32 [B, C, 2] (row, col) of maps [B, h, w, C], the first maximum in row-major order."""
    return map_peaks(maps)[0]


def template_masks(positions: jax.Array, shape: tuple[int, int], beta: jax.Array | float = PAPER_BETA) -> jax.Array:
    """`max(1 - beta * d, -1)` around each peak, d the L1 distance over n: float32 [B, h, w, C] (no tau).

    Args:
      positions: int [B, C, 2] peaks (row, col).
      shape: (h, w) of the maps.
      beta: a scalar or [C], one per filter.
    """
    h, w = shape
    beta = jnp.broadcast_to(jnp.asarray(beta, jnp.float32), positions.shape[1:2])
    mu = positions.astype(jnp.float32)  # [B, C, 2]
    rows = jnp.abs(jnp.arange(h, dtype=jnp.float32)[None, :, None] - mu[:, None, :, 0]) / h  # [B, h, C]
    cols = jnp.abs(jnp.arange(w, dtype=jnp.float32)[None, :, None] - mu[:, None, :, 1]) / w  # [B, w, C]
    distance = rows[:, :, None, :] + cols[:, None, :, :]
    return jnp.maximum(1.0 - beta[None, None, None, :] * distance, -1.0)


def templates(shape: tuple[int, int], beta: float = PAPER_BETA) -> tuple[jax.Array, float]:
    """The paper's templates for an h x w map: (positive [h*w, h, w] indexed by mu in row-major order, negative).

    `positive[m][i, j] = tau * max(1 - beta * (|i - mu_i| / h + |j - mu_j| / w), -1)`, the
    negative template is the constant `-tau`, and `tau = 0.5 / (h * w)`.
    """
    h, w = shape
    tau = 0.5 / (h * w)
    cells = jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij"), -1).reshape(1, h * w, 2)
    masks = template_masks(cells, shape, beta)[0]  # [h, w, h*w]: one template per mu
    return tau * jnp.moveaxis(masks, -1, 0), -tau


def filter_loss(maps: jax.Array, alpha: jax.Array | float = 0.5, beta: float = PAPER_BETA) -> jax.Array:
    """`Loss_f = -MI(X; T)` of every filter over a batch: float32 [C].

    With `p(x | T) = exp(tr(x . T)) / Z_T`, `Z_T` summed over the batch's maps,
    priors `p(T_mu) = alpha / (h w)` and `p(T-) = 1 - alpha`, and `p(x)` the
    prior-weighted mixture, `MI = sum_T p(T) sum_x p(x | T) log(p(x | T) / p(x))`.
    Every quantity is kept as a log and combined by logsumexp, so the loss and
    its gradient are finite for all-zero maps and for very large activations.

    Args:
      maps: [B, h, w, C] the filters' maps (after their ReLU), B >= 1.
      alpha: the prior share of images on which a filter should fire: a scalar
        or [C] (e.g. the batch share of each filter's category), in (0, 1).
      beta: the templates' beta.
    """
    b, h, w, c = maps.shape
    positive, negative = templates((h, w), beta)
    maps = maps.astype(jnp.float32)
    fit_positive = jnp.einsum("bijc,mij->bcm", maps, positive)  # tr(x . T_mu): [B, C, h*w]
    fit_negative = negative * maps.sum((1, 2))[..., None]  # [B, C, 1]
    fit = jnp.concatenate([fit_positive, fit_negative], axis=-1)  # [B, C, T]
    log_likelihood = fit - jax.nn.logsumexp(fit, axis=0, keepdims=True)  # log p(x | T)
    alpha = jnp.clip(jnp.broadcast_to(jnp.asarray(alpha, jnp.float32), (c,)), 1e-6, 1 - 1e-6)
    log_prior = jnp.concatenate(
        [jnp.broadcast_to(jnp.log(alpha / (h * w))[:, None], (c, h * w)), jnp.log1p(-alpha)[:, None]], axis=-1)
    log_evidence = jax.nn.logsumexp(log_prior[None] + log_likelihood, axis=-1, keepdims=True)  # log p(x)
    mutual_information = jnp.sum(
        jnp.exp(log_prior[None] + log_likelihood) * (log_likelihood - log_evidence), axis=(0, 2))
    return -mutual_information


class InterpretableConv(nn.Module):
    """A conv layer + ReLU whose maps are masked by the template at their peak.

    Put on top of a network's last conv layer; the layers above see the
    masked maps. The unmasked maps are the tap `icnn` (what `filter_loss`,
    the training loss and location instability read) and the masked ones
    `icnn_masked`.

    Attributes:
      features: number of filters (the paper keeps the top conv layer's width).
      kernel_size: the conv's kernel (3 x 3 in the paper's added layer).
      num_classes: when set, a running per-class mean of each filter's peak
        activation is kept in the 'icnn_stats' collection, for assigning
        filters to categories (`interp.layers.icnn_loss` in multi-category mode).
      masked: False gives the ordinary CNN's version of the same layer (a conv
        and a ReLU, nothing masked), the baseline of the paper's comparison.
    """

    features: int
    kernel_size: int = 3
    num_classes: int | None = None
    masked: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = nn.Conv(self.features, (self.kernel_size,) * 2, padding="SAME", name="conv",
                       kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"))
        maps = tap(relu(conv(x)), "icnn")
        if self.num_classes is not None:
            self.variable("icnn_stats", "class_means", jnp.zeros, (self.num_classes, self.features))
        if not self.masked:
            return maps
        mask = jax.lax.stop_gradient(template_masks(peak_positions(maps), maps.shape[1:3]))
        return tap(relu(maps * mask), "icnn_masked")
