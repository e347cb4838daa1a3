"""The training state: everything a run needs to continue bit-for-bit."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn


@flax.struct.dataclass
class TrainState:
    """Parameters, optimizer state and counters of one run.

    Attributes:
      step: int32 scalar, the number of updates applied.
      params: the module's 'params' collection.
      model_state: its other collections that change in training
        (e.g. `{'batch_stats': ...}`), `{}` when there are none.
      opt_state: the optax state.
      rng: uint32 [2], the run's key; step `t` draws from `fold_in(rng, t)`, so
        randomness depends on the step alone and a resumed run repeats it.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array


def create_train_state(
    module: nn.Module, tx: optax.GradientTransformation, sample_input: jax.Array, seed: int
) -> TrainState:
    """Initializes `module` on `sample_input` [b, ...] and `tx` on its params."""
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    variables = module.init(init_key, sample_input, train=False)
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=run_key,
    )


def variables_of(state: TrainState) -> dict[str, Any]:
    """The Linen variables (`params` and the other collections) held by `state`."""
    return {"params": state.params, **state.model_state}
