"""The explanatory graph's EM, one layer at a time, in plain JAX (Zhang et al., AAAI 2018).

A transcription of the release's computation (zqs1022/explanatoryGraph:
`doE.m`, `getProb_local_mex.cpp`, the per-image body and `updateModel` of
`learn_explanatoryGraph.m`, `getOtherProb.cpp`, `getCurDistribution.m`),
rewritten as array programs: every node of a layer and every image of a chunk
at once, where the release loops in C and MATLAB.

Nodes are laid out channel-major, node `c * P + p` is pattern p of channel c
(the release's column-major [P, C]). Positions are (row, col) in map cells,
0-based (the release's are 1-based). For each node and image the E-step scores
a K x K grid of candidate positions around the node's expected place:

  * `prob`, the deformation prior: a 2-D Gaussian of the candidate's offset
    (std `delta`, from the parents or the initial deformation), times the
    parents' agreement `lam`;
  * `prior`, the evidence: the feature map (ReLU'd, normalized), smoothed by a
    Gaussian of std `map_delta` truncated at 3 std, read in a window of
    half-range `half_range` around the rounded expected place.

Nodes of one channel compete for the same activation: each candidate's
`prob` is divided by the sum of the channel's nodes' `prob` at their nearest
candidates (`getOtherProb`) plus `tau`. Where this code departs from the
release, the comment says so and why.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SQRT_2PI = math.sqrt(2 * 3.1415926536)  # the release's pi
TOO_FAR = 3.0  # the smoothing Gaussian is flat beyond 3 std (getProb_local_mex.cpp)


class LayerConfig(NamedTuple):
    """What one layer's EM needs to know that is fixed while it runs (hashable: a jit static argument).

    Attributes:
      num_patterns: P, nodes per channel.
      num_candidates: K, candidate positions per axis.
      max_half_range: the window's largest half-range in cells (its width is 2 * this + 1).
      half_range_cap: `max_range * size / 2`, the half-range before rounding.
      deform_ratio: half-range = round(min(half_range_cap, deform_ratio * deform)).
      map_delta: std in cells of the Gaussian that smooths the feature map.
      valid_tau: the competition's floor, a share of the mean node probability.
      map_shape: (h, w) of the layer's maps.
    """

    num_patterns: int
    num_candidates: int
    max_half_range: int
    half_range_cap: float
    deform_ratio: float
    map_delta: float
    valid_tau: float
    map_shape: tuple[int, int]


def round_half_away(x):
    """MATLAB's and C's `round`: halves away from zero (jnp.round rounds them to even)."""
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


@functools.partial(jax.jit, static_argnames="config")
def half_ranges(deform: jax.Array, config: LayerConfig) -> jax.Array:
    """int32 [...] each node's search half-range in cells (getBasicSettings.m)."""
    return round_half_away(jnp.minimum(config.half_range_cap, deform * config.deform_ratio)).astype(jnp.int32)


def candidate_offsets(half_range: jax.Array, num_candidates: int) -> jax.Array:
    """float32 [..., K]: the centres of K equal bins spanning [-half_range, half_range] (getBasicSettings.m)."""
    # (2k + 1 - K) / K, not (2k + 1) / K - 1: mirrored candidates get exactly opposite offsets, so a
    # symmetric tie stays a tie and goes to the first candidate, as in the release's float64.
    fractions = (2 * jnp.arange(num_candidates, dtype=jnp.float32) + 1 - num_candidates) / num_candidates
    half_range = jnp.asarray(half_range, jnp.float32)[..., None]
    return half_range * fractions.reshape((1,) * (half_range.ndim - 1) + (num_candidates,))


def _gaussian(distance, delta):
    return jnp.exp(-distance**2 / (2 * delta**2)) / (SQRT_2PI * delta)


class Evidence(NamedTuple):
    """The E-step's per-candidate terms of one image, node-major: [C, P, K, K] with axes (row, col) candidates."""

    prob: jax.Array
    prior: jax.Array
    offsets: jax.Array  # [C, P, K] candidate offsets, the same along rows and columns
    centres: jax.Array  # [C, P, 2] the expected place the candidates are around


def evidence(x: jax.Array, centres: jax.Array, delta: jax.Array, lam: jax.Array, half_range: jax.Array,
             config: LayerConfig) -> Evidence:
    """doE.m and getProb_local_mex.cpp for one image.

    Args:
      x: [h, w, C] the normalized feature map (non-positive values count as 0).
      centres: [C, P, 2] each node's expected place (its position plus the parents' shift).
      delta: [C, P] the deformation std (cells).
      lam: [C, P] the parents' agreement.
      half_range: int32 [C, P] from the model's deformation (`half_ranges`).
      config: the layer's `LayerConfig`.
    """
    k, reach = config.num_candidates, config.max_half_range
    h, w = config.map_shape
    offsets = candidate_offsets(half_range, k)  # [C, P, K]
    rounded = round_half_away(centres).astype(jnp.int32)
    # A window of (2 * reach + 1)^2 cells around each rounded centre, zero outside the map: pad by 2 * reach
    # so any centre within `reach` of the map reads a whole window; one farther out sees nothing anyway.
    padded = jnp.pad(jnp.maximum(x, 0), ((2 * reach, 2 * reach), (2 * reach, 2 * reach), (0, 0)))
    span = 2 * reach + 1
    steps = jnp.arange(-reach, reach + 1).reshape(1, 1, 1, span)

    def window(channel_map, centre):
        top = jnp.clip(centre[0] + reach, 0, h + 2 * reach)
        left = jnp.clip(centre[1] + reach, 0, w + 2 * reach)
        cells = jax.lax.dynamic_slice(channel_map, (top, left), (span, span))
        near = (centre[0] >= -reach) & (centre[0] < h + reach) & (centre[1] >= -reach) & (centre[1] < w + reach)
        return jnp.where(near, cells, 0.0)

    maps = jnp.moveaxis(padded, -1, 0)  # [C, H', W']
    windows = jax.vmap(jax.vmap(window, in_axes=(None, 0)))(maps, rounded)  # [C, P, span, span]
    inside = (jnp.abs(steps) <= half_range[..., None, None])[:, :, 0]  # [C, P, span]
    windows = windows * inside[..., :, None] * inside[..., None, :]

    # The smoothing template between each candidate (a, b) and each window cell (u, v).
    sigma = config.map_delta
    along = offsets[..., :, None] - steps  # [C, P, K, span], steps [1, 1, 1, span]
    squared = along[..., :, None, :, None] ** 2 + along[..., None, :, None, :] ** 2  # [C, P, K, K, span, span]
    template = jnp.where(squared < (sigma * TOO_FAR) ** 2, jnp.exp(-squared / (2 * sigma**2)),
                         math.exp(-TOO_FAR**2 / 2)) / (SQRT_2PI * sigma)
    prior = jnp.einsum("cpabuv,cpuv->cpab", template, windows)

    deformation = _gaussian(offsets, delta[..., None])  # [C, P, K]
    prob = deformation[..., :, None] * deformation[..., None, :] * lam[..., None, None]
    return Evidence(prob, prior, offsets, centres)


def competition(e: Evidence, valid_tau: float) -> jax.Array:
    """[C, P, K, K] each candidate's `prob` over the channel's competing `prob` there, plus tau.

    getOtherProb.cpp: at candidate (a, b) of node q, every node p of the same
    channel (q included) adds its `prob` at its own candidate nearest that
    place, or nothing when the place lies outside p's candidate grid.
    """
    k = e.offsets.shape[-1]
    first = e.centres + e.offsets[..., :1]  # [C, P, 2] the grid's corners (offsets are the same on both axes)
    last = e.centres + e.offsets[..., -1:]
    spacing = e.offsets[..., 1] - e.offsets[..., 0] if k > 1 else jnp.zeros(e.offsets.shape[:-1])
    targets = e.centres[..., None, :] + e.offsets[..., :, None]  # [C, Q, K, 2] candidate places of node q

    def axis_terms(axis):
        t = targets[:, None, :, :, axis]  # [C, 1, Q, K]
        lo, hi = first[:, :, None, None, axis], last[:, :, None, None, axis]  # [C, P, 1, 1]
        step = spacing[:, :, None, None]
        # The nearest of p's candidates; an exact midpoint goes to the first, as the release's strict `<`.
        nearest = jnp.where(step > 0, jnp.ceil((t - lo) / jnp.where(step > 0, step, 1.0) - 0.5), 0.0)
        return jnp.clip(nearest, 0, k - 1).astype(jnp.int32), (t >= lo) & (t <= hi)  # [C, P, Q, K] each

    (row, row_in), (col, col_in) = axis_terms(0), axis_terms(1)
    # A gather of p's prob at (row, col) for every candidate of every q: [C, P, Q, K, K] (a one-hot einsum
    # computes the same K times slower).
    index = (row[..., :, None] * k + col[..., None, :]).reshape(*row.shape[:2], -1)
    found = jnp.take_along_axis(e.prob.reshape(*e.prob.shape[:2], k * k), index, axis=-1).reshape(
        *row.shape, k)
    other = jnp.sum(found * (row_in[..., :, None] & col_in[..., None, :]), axis=1)  # [C, Q, K, K]
    tau = valid_tau * jnp.mean(jnp.sum(e.prob, axis=(-2, -1)))
    return e.prob / jnp.maximum(other + tau, 1e-7)


class ImageStats(NamedTuple):
    """One image's contribution to the M-step, and its inference, per node [C, P] (learn_explanatoryGraph.m).

    Attributes:
      norm_prob: sum over candidates of normalized prob x prior (totalNormProb).
      shift: [C, P, 2] the same weights times the log-Gaussian's derivative (totalLogDer).
      mass: sum over candidates of prob x prior (totalProb): the node's score on the image.
      spread: prob x prior times the squared candidate-index distance from the grid's centre (totalPosVar).
      position: [C, P, 2] the best candidate's place (totalPos), in cells.
      best: prob x prior at the best candidate (inferredProb).
    """

    norm_prob: jax.Array
    shift: jax.Array
    mass: jax.Array
    spread: jax.Array
    position: jax.Array
    best: jax.Array


def image_stats(e: Evidence, delta: jax.Array, valid_tau: float) -> ImageStats:
    """The release's per-image body after doE: competition, the sums the M-step reads, the best candidate."""
    k = e.offsets.shape[-1]
    weighted = competition(e, valid_tau) * e.prior
    log_derivative = e.offsets / delta[..., None] ** 2  # [C, P, K], the same for rows and columns
    shift = jnp.stack([jnp.einsum("cpab,cpa->cp", weighted, log_derivative),
                       jnp.einsum("cpab,cpb->cp", weighted, log_derivative)], axis=-1)
    joint = e.prob * e.prior
    index = jnp.arange(1, k + 1, dtype=jnp.float32)
    squared = (index - index.mean()) ** 2
    spread = jnp.einsum("cpab,a->cp", joint, squared) + jnp.einsum("cpab,b->cp", joint, squared)
    # The first maximum in the release's order (columns outer, rows inner): argmax over the transposed grid.
    flat = jnp.swapaxes(joint, -1, -2).reshape(*joint.shape[:-2], k * k)
    best = jnp.argmax(flat, axis=-1)
    col, row = best // k, best % k
    pick = lambda values, i: jnp.take_along_axis(values, i[..., None], axis=-1)[..., 0]  # noqa: E731
    position = e.centres + jnp.stack([pick(e.offsets, row), pick(e.offsets, col)], axis=-1)
    return ImageStats(weighted.sum((-2, -1)), shift, joint.sum((-2, -1)), spread, position,
                      jnp.max(flat, axis=-1))


def flip_evidence(e: Evidence) -> jax.Array:
    """doFlipConfigureation.m's score of an orientation: sum of log(prob) x prior (the larger is chosen)."""
    return jnp.sum(jnp.log(e.prob) * e.prior)


class ModelUpdate(NamedTuple):
    coord: jax.Array  # [C, P, 2]
    deform: jax.Array  # [C, P]


@functools.partial(jax.jit, static_argnames="num_candidates")
def m_step(coord, deform, half_range, totals: ImageStats, *, step: float, min_deform: float,
           max_deform: float, num_candidates: int) -> ModelUpdate:
    """updateModel in learn_explanatoryGraph.m, from the image sums of `ImageStats` (each [C, P], shift [C, P, 2]).

    `step` is eta * minDelta^2. Departures: the deformation's unit is the
    candidate spacing the E-step used (the release keeps the layer's first
    one; they agree in the first iteration), and a node with no evidence on
    any image keeps its place and deformation (the release divides 0 by 0).
    """
    coord = coord + totals.shift / jnp.maximum(totals.norm_prob, 1e-8)[..., None] * step
    unit = 2 * half_range.astype(jnp.float32) / num_candidates
    measured = jnp.sqrt(totals.spread / jnp.where(totals.mass > 0, totals.mass, 1.0)) * unit
    deform = jnp.where(totals.mass > 0, jnp.clip(measured, min_deform, max_deform), deform)
    return ModelUpdate(coord, deform)


class ParentTerms(NamedTuple):
    """What the parents say about each node on each image (getCurDistribution.m), node-major [N, C*P]."""

    mu: jax.Array  # [N, C*P, 2] the expected shift in cells of this layer
    delta: jax.Array  # [N, C*P]
    lam: jax.Array  # [N, C*P]


def parent_candidates(upper_positions: np.ndarray, upper_mass: np.ndarray, upper_size: tuple[int, int],
                      top_m: int, *, min_var_rate: float = 0.5, edge_cut_rate: float = 0.1) -> np.ndarray:
    """The upper layer's nodes that may be parents (getCurDistribution.m): int [M], best first.

    The half of the nodes whose inferred place varies least over the images
    is left out (a node that never moves says nothing about a shift), and so
    are nodes whose mean place is within `edge_cut_rate` of the map's edge;
    of the rest the `top_m` with the largest total score are kept. Departure:
    the edge is the upper map's (the release measures against the lower
    map's size).

    Args:
      upper_positions: [N, U, 2] the upper nodes' places in cells on the training images.
      upper_mass: [N, U] their scores.
      upper_size: the upper map's (h, w).
    """
    variance = upper_positions.var(axis=0, ddof=1).sum(-1) if len(upper_positions) > 1 else np.zeros(
        upper_positions.shape[1])
    still = np.argsort(variance, kind="stable")[: math.ceil(variance.size * min_var_rate)]
    mean = upper_positions.mean(axis=0) + 1  # the release's 1-based places
    size = np.asarray(upper_size, np.float64)
    edge = np.flatnonzero(np.any(size / 2 - np.abs(size / 2 - mean) < size * edge_cut_rate, axis=-1))
    order = np.argsort(-upper_mass.sum(axis=0), kind="stable")
    keep = order[~np.isin(order, np.concatenate([still, edge]))]
    return keep[:top_m]


@functools.partial(jax.jit, static_argnames="top_n")
def choose_parents(deviations: jax.Array, upper_deviations: jax.Array, best: jax.Array, top_n: int) -> jax.Array:
    """int32 [L, top_n] for each node, its parents among the candidates (getCurDistribution.m), best first.

    A candidate parent scores the node's score-weighted agreement with it over
    the images, `sum_n best[n] exp(-d_n^2 / (2 mean(d^2)))` with d_n the distance
    between the two nodes' shifts from their mean places on image n, in image
    pixels.

    Args:
      deviations: [N, L, 2] each node's shift from its mean place, in pixels.
      upper_deviations: [N, M, 2] the candidates' shifts, in pixels.
      best: [N, L] each node's inferred probability on each image.
    """

    def one(node_deviation, node_best):  # [N, 2], [N]
        squared = jnp.sum((node_deviation[:, None, :] - upper_deviations) ** 2, axis=-1)  # [N, M]
        scale = 2 * jnp.mean(squared)
        agreement = jnp.sum(jnp.exp(-squared / jnp.where(scale > 0, scale, 1.0)) * node_best[:, None], axis=0)
        return jax.lax.top_k(agreement, top_n)[1]  # ties keep the lower index, as MATLAB's stable sort

    return jax.lax.map(lambda args: one(*args), (jnp.swapaxes(deviations, 0, 1), best.T), batch_size=256)


@jax.jit
def parent_terms(parents: jax.Array, upper_deviations: jax.Array, upper_deform: jax.Array) -> ParentTerms:
    """curMu, curDelta and curLambda of getCurDistribution.m from the chosen parents.

    Args:
      parents: int [L, T] indices into the upper nodes.
      upper_deviations: [N, U, 2] the upper nodes' shifts from their mean places on each image, already in
        this layer's cells (the release leaves them in the upper layer's cells; a departure that matters only
        where the two layers' strides differ).
      upper_deform: [U] the upper nodes' deformation std, in this layer's cells.
    """
    top_n = parents.shape[1]
    shifts = upper_deviations[:, parents]  # [N, L, T, 2]
    stds = upper_deform[parents]  # [L, T]
    weights = (1.0 / top_n) / stds**2
    total = weights.sum(-1)  # [L]
    mu = jnp.einsum("nltd,lt->nld", shifts, weights) / total[None, :, None]
    delta = jnp.sqrt(1.0 / total)
    squared = jnp.sum((mu[:, :, None, :] - shifts) ** 2, axis=-1)  # [N, L, T]
    log_lam = jnp.sum(-squared / (2 * top_n * stds[None] ** 2) - jnp.log(stds)[None], axis=-1) + jnp.log(delta)[None]
    n = upper_deviations.shape[0]
    return ParentTerms(mu, jnp.broadcast_to(delta, (n, delta.shape[0])), jnp.exp(log_lam))
