"""A SmallCNN trained briefly on SynthParts, shared by the test files that need a trained net."""

import jax
import jax.numpy as jnp
import optax

from interp import nets
from interp import train as trainlib
from interp.data import SynthParts


def train_small_cnn(workdir, steps: int, batch_size: int = 32, num_classes: int = 6) -> tuple[nets.Model, nets.Model]:
    """(trained, random-init) SmallCNNs: Adam 2e-3 on SynthParts(seed=0, 64 px)."""
    data = SynthParts(seed=0, image_size=64, num_classes=num_classes)
    module = nets.create("small_cnn", num_classes=num_classes)

    def batches(step, rows):
        b = data.batch(step * batch_size + jnp.arange(batch_size, dtype=jnp.int32))
        return {"image": b["image"][rows], "label": b["label"][rows]}

    state = trainlib.train(
        module, optax.adam(2e-3), batches, num_steps=steps, batch_size=batch_size,
        workdir=workdir, sample_input=jnp.zeros((1, 64, 64, 3)),
        checkpoint_every=steps, log_every=steps, progress=False,
    )
    trained = nets.from_linen(module, jax.device_get(trainlib.variables_of(state)))
    random_init = nets.from_linen(module, module.init(jax.random.key(5), jnp.zeros((1, 64, 64, 3))))
    return trained, random_init
