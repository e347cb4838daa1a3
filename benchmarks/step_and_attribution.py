"""Milliseconds of the jitted training step and of four attribution methods on SmallCNN: a regression check.

Run: `python -m benchmarks.step_and_attribution` prints one JSON line (medians
after the compiling call). To compare two commits, run it alternately from
both checkouts on the same machine, e.g.

    for r in 1 2 3; do for tree in /tmp/before .; do
      PYTHONPATH=$tree .venv/bin/python -m benchmarks.step_and_attribution; done; done

Shapes: the step at batch 64 of 64x64 images (Adam, cross-entropy, one
device); saliency, integrated gradients (16 steps), Grad-CAM (relu4) and guided
backprop at batch 32 of 64x64 images, random weights and inputs.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from interp import attribution, nets
from interp import train as trainlib


def median_ms(f, *args, repeats: int = 15) -> float:
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    module = nets.create_module("small_cnn", num_classes=6)
    tx = optax.adam(1e-3)
    state = trainlib.create_train_state(module, tx, jnp.zeros((1, 64, 64, 3)), seed=0)
    step = jax.jit(trainlib.make_train_step(trainlib.classification_loss(), tx))
    batch = {"image": jax.random.uniform(jax.random.key(0), (64, 64, 64, 3)), "label": jnp.arange(64) % 6}
    timings = {"train step b64": median_ms(lambda s: step(s, batch)[1]["loss"], state, repeats=30)}
    model = nets.create("small_cnn", 6, key=jax.random.key(0), input_size=64)
    x, y = jax.random.uniform(jax.random.key(1), (32, 64, 64, 3)), jnp.arange(32) % 6
    methods = {
        "saliency": attribution.saliency(model),
        "integrated_gradients 16": attribution.integrated_gradients(model, steps=16),
        "grad_cam": attribution.grad_cam(model, "relu4"),
        "guided_backprop": attribution.guided_backprop(model),
    }
    for name, method in methods.items():
        timings[f"{name} b32"] = median_ms(jax.jit(method), x, y)
    print(json.dumps({k: round(v, 2) for k, v in timings.items()}))


if __name__ == "__main__":
    main()
