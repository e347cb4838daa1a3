"""Plain-JAX building blocks that know no model: the jaxpr toolkit
(`interp.ops.jaxprs`: call bodies, equation walking, the interpreter behind
layer names, tap lookup), a ReLU that keeps NaN under XLA:CPU's fusions
(`relu`), backward-rule rewrites (deconvnet and guided ReLUs), a max-pool
whose derivative follows its argmax switches, running top-k
accumulators, each channel's peak on a feature map (`map_peaks`) and the
image patch around a place (`image_patch`), and
`for_speed`, which applies the rewrites that only change speed on the platform
where they help (`reduce_window` max-pools through that max-pool, convolution
kernels laid out for XLA:CPU's fast path inside loops, JAX's threefry random
bits drawn in one fused pass; each also callable alone)."""

from interp.ops.backward_rules import (
    RewrittenFn,
    deconvnet_relu,
    guided_relu,
    relu,
    relu_equations,
    with_relu_backward,
)
from interp.ops.conv_layout import with_canonical_conv_kernels
from interp.ops.maxpool import max_pool, with_switch_max_pools
from interp.ops.peaks import PATCH_PAD, image_patch, map_peaks
from interp.ops.prng import with_unrolled_threefry
from interp.ops.speed import for_speed
from interp.ops.topk import TopK, top_k_init, top_k_update

__all__ = [
    "PATCH_PAD",
    "RewrittenFn",
    "TopK",
    "deconvnet_relu",
    "for_speed",
    "guided_relu",
    "image_patch",
    "map_peaks",
    "max_pool",
    "relu",
    "relu_equations",
    "top_k_init",
    "top_k_update",
    "with_canonical_conv_kernels",
    "with_relu_backward",
    "with_switch_max_pools",
    "with_unrolled_threefry",
]
