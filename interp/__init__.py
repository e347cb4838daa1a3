"""interp: visual interpretability of convolutional networks, as JAX function transforms.

Subpackages: `nets` (model zoo, layer names, the adapter every method uses),
`data` (SynthParts and readers for real datasets), `train` (optax loop, sharding,
orbax checkpoints).
"""

__version__ = "0.1.0"
