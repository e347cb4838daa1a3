"""Plain-JAX building blocks that know no model: the jaxpr interpreter behind
layer names, backward-rule rewrites (deconvnet and guided ReLUs) and a max-pool
whose derivative follows its argmax switches."""

from interp.ops.backward_rules import (
    RewrittenFn,
    deconvnet_relu,
    guided_relu,
    relu_equations,
    with_relu_backward,
)
from interp.ops.maxpool import max_pool

__all__ = [
    "RewrittenFn",
    "deconvnet_relu",
    "guided_relu",
    "max_pool",
    "relu_equations",
    "with_relu_backward",
]
