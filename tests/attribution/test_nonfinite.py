"""A NaN in the input of a jitted attribution shows in its output (nothing checks traced inputs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp import attribution
from interp.nets import zoo


@pytest.mark.parametrize("make", [
    attribution.saliency,
    # Its gradients are summed over the path before the non-finite scores' NaN is added, once.
    lambda model: attribution.integrated_gradients(model, steps=4, chunk_size=2),
])
def test_nan_patch_under_jit_is_not_silently_finite(make):
    model = zoo.create("small_cnn", 6, key=jax.random.key(0), input_size=32)
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3)).at[0, :4, :4].set(jnp.nan)
    maps = jax.jit(lambda x: make(model)(x, target=0))(x)
    assert np.isnan(np.asarray(maps[0])).all()  # its score is NaN, so is its whole map
    assert np.isfinite(np.asarray(maps[1])).all()  # and stays in its own example
