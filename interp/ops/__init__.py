"""Plain-JAX building blocks that know no model: the jaxpr interpreter behind
layer names (and, later, the backward-rule rewrites)."""
