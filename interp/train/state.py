"""The training state: everything a run needs to continue bit-for-bit."""

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from interp.nets.adapter import Model, from_linen


@flax.struct.dataclass
class TrainState:
    """Parameters, optimizer state and counters of one run, with the module they belong to.

    Attributes:
      step: int32 scalar, the number of updates applied.
      params: the module's 'params' collection.
      model_state: its other collections that change in training
        (e.g. `{'batch_stats': ...}`), `{}` when there are none.
      opt_state: the optax state.
      rng: uint32 [2], the run's key; step `t` draws from `fold_in(rng, t)`, so
        randomness depends on the step alone and a resumed run repeats it.
      module: the Linen module (static: not a leaf, not checkpointed).
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array
    module: nn.Module = flax.struct.field(pytree_node=False)

    @property
    def variables(self) -> dict[str, Any]:
        """The Linen variables: `params` and the other collections."""
        return {"params": self.params, **self.model_state}

    def model(self) -> Model:
        """The trained network as a `Model` in inference mode, its variables fetched to the host."""
        return from_linen(self.module, jax.device_get(self.variables))


def create_train_state(
    module: nn.Module, optimizer: optax.GradientTransformation, sample_input: jax.Array, seed: int,
    initialize: Callable[[Any], Any] | None = None,
) -> TrainState:
    """Initializes `module` on `sample_input` [b, ...] (its shape only) and `optimizer` on its params.

    `initialize`, when given, maps the freshly initialized variables to the
    ones to start from (e.g. a pretrained backbone's weights put in:
    `interp.layers.load_backbone`); it must keep their structure.
    """
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    variables = module.init(init_key, sample_input, train=False)
    if initialize is not None:
        fresh, variables = variables, initialize(variables)
        if jax.tree.structure(fresh) != jax.tree.structure(variables) or any(
                a.shape != b.shape for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(variables))):
            raise ValueError("initialize: expected variables of the module's structure and shapes back")
        # Copies: training donates the state's buffers, which must not be the caller's (a pretrained model's).
        variables = jax.tree.map(jnp.array, variables)
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=optimizer.init(params),
        rng=run_key,
        module=module,
    )
