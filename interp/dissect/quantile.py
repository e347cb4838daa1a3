"""Per-unit activation thresholds at a top quantile, exact and streaming.

NetDissect's threshold `T_k` has `P(a_k > T_k) = quantile` over every spatial
position of every image. Here it is `numpy.quantile(a_k, 1 - quantile)` (linear
interpolation), computed without holding all activations: for `n` values, that
quantile only reads the `n - floor((n - 1) * (1 - quantile))` largest, so a
running top-m per unit, merged batch by batch on the device, gives it exactly.
At quantile 0.005 that is 0.5% of the values (VGG-16 conv5_3 on the 63k
Broden images: 62k values for each of 512 units, 127 MB).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def values_needed(total: int, quantile: float) -> int:
    """How many of the largest of `total` values `numpy.quantile(., 1 - quantile)` reads."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile: expected a float in (0, 1), got {quantile}")
    return total - math.floor((total - 1) * (1 - quantile))


def top_values_init(num_units: int, count: int) -> jax.Array:
    """An empty running top: float32 [num_units, count] of -inf."""
    return jnp.full((num_units, count), -jnp.inf, jnp.float32)


@jax.jit
def top_values_update(top: jax.Array, acts: jax.Array, valid: jax.Array) -> jax.Array:
    """Merges a batch into the running top.

    Args:
      top: float32 [K, m], the m largest values of each unit so far.
      acts: [B, h, w, K] activations.
      valid: bool [B]; rows that are False (padding) are ignored.

    Returns:
      float32 [K, m], descending.
    """
    values = jnp.where(valid[:, None, None, None], acts.astype(jnp.float32), -jnp.inf)
    candidates = jnp.concatenate([top, values.reshape(-1, values.shape[-1]).T], axis=1)
    return lax.top_k(candidates, top.shape[1])[0]


def thresholds_from_top(top: np.ndarray, total: int, quantile: float) -> np.ndarray:
    """`numpy.quantile(a_k, 1 - quantile)` for each unit, from its largest values.

    Args:
      top: [K, m] each unit's m largest values, descending, with
        `m >= values_needed(total, quantile)`.
      total: n, the number of values each unit had.
      quantile: the top fraction, e.g. 0.005.

    Returns:
      float64 [K].
    """
    top = np.asarray(top, np.float64)
    needed = values_needed(total, quantile)
    if top.shape[1] < needed or not np.isfinite(top[:, :needed]).all():
        raise ValueError(f"top: expected the {needed} largest of {total} values per unit, got "
                         f"{top.shape[1]} (of which finite: {int(np.isfinite(top).all(0).sum())})")
    position = (total - 1) * (1 - quantile)  # into the ascending order, as numpy computes it
    below = math.floor(position)
    fraction = position - below
    lower = top[:, total - 1 - below]
    upper = top[:, max(total - 2 - below, 0)]
    # numpy's _lerp: exact at both ends of the interval.
    difference = upper - lower
    return np.where(fraction >= 0.5, upper - difference * (1 - fraction), lower + difference * fraction)
