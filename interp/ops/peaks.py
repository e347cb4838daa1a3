"""Each channel's peak on a feature map: where its maximum is, and its value.

The interpretable layer masks around it (`interp.layers.peak_positions`) and
location instability measures where it falls (`interp.metrics.filter_peaks`),
so both find the same peak, ties included. Not jitted itself, so that it
inlines into the layer's program as plain equations.
"""

import jax
import jax.numpy as jnp


def map_peaks(maps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each channel's argmax and maximum on each map.

    Args:
      maps: [N, h, w, C] feature maps.

    Returns:
      (positions int32 [N, C, 2] (row, col) unit indices, scores [N, C] the
      peak values). Ties go to the first maximum in row-major order.
    """
    if maps.ndim != 4:
        raise ValueError(f"maps: expected feature maps [N, h, w, C], got shape {list(maps.shape)}")
    n, h, w, c = maps.shape
    flat = jnp.argmax(maps.reshape(n, h * w, c), axis=1)
    positions = jnp.stack([flat // w, flat % w], axis=-1).astype(jnp.int32)
    return positions, maps.max(axis=(1, 2))
