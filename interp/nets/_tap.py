"""Layer names that any JAX function can carry.

A layer is named by passing its output through `tap(x, name)`. The mark is JAX's
own `checkpoint_name` primitive: an identity that stays visible in the jaxpr of
every caller (under `jit`, `vmap`, `grad`, Flax Linen or NNX), so one adapter
(`interp.nets.adapter`) reads and differentiates named activations of a Flax
model and of a hand-written function alike. As a bonus, remat policies such as
`jax.checkpoint_policies.save_only_these_names` understand the same names.
"""

import jax
from jax.ad_checkpoint import checkpoint_name


def tap(x: jax.Array, name: str) -> jax.Array:
    """Returns `x` unchanged, marked as the output of the layer called `name`."""
    return checkpoint_name(x, name)
