"""Plain-JAX building blocks that know no model: the jaxpr interpreter behind
layer names, backward-rule rewrites (deconvnet and guided ReLUs), a max-pool
whose derivative follows its argmax switches, and `for_speed`, which applies
the rewrites that only change speed on the platform where they help
(`reduce_window` max-pools through that max-pool, convolution kernels laid out
for XLA:CPU's fast path inside loops, JAX's threefry random bits drawn in one
fused pass; each also callable alone)."""

from interp.ops.backward_rules import (
    RewrittenFn,
    deconvnet_relu,
    guided_relu,
    relu_equations,
    with_relu_backward,
)
from interp.ops.conv_layout import with_canonical_conv_kernels
from interp.ops.maxpool import max_pool, with_switch_max_pools
from interp.ops.prng import with_unrolled_threefry
from interp.ops.speed import for_speed

__all__ = [
    "RewrittenFn",
    "deconvnet_relu",
    "for_speed",
    "guided_relu",
    "max_pool",
    "relu_equations",
    "with_canonical_conv_kernels",
    "with_relu_backward",
    "with_switch_max_pools",
    "with_unrolled_threefry",
]
