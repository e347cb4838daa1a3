"""A non-finite training state stops `fit` with a named error before it is checkpointed."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import linen as nn

from interp import ops
from interp import train as trainlib
from tests.train.test_loop import BATCH, COLORS, Colors, TinyNet


def nan_init(key, shape, dtype=jnp.float32):
    return jnp.full(shape, jnp.nan, dtype)


class NanStem(nn.Module):
    """SmallCNN's shape in small: conv, ReLU, global average pool, dense; the conv kernel is all NaN.

    With `jax.nn.relu`, XLA:CPU's fused max + mean made the logits 0 under
    jit, so the loss stayed a finite ln 3 while the kernel was NaN.
    """

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3), kernel_init=nan_init, name="conv1")(x)
        return nn.Dense(3, name="logits")(ops.relu(x).mean(axis=(1, 2)))


def fit(module, optimizer, workdir):
    return trainlib.fit(module, optimizer, COLORS, num_steps=12, batch_size=BATCH, workdir=workdir,
                        shuffle=False, checkpoint_every=4, log_every=4, progress=False)


def saved_steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_nan_kernel_stops_before_any_checkpoint(tmp_path):
    with pytest.raises(trainlib.NonFiniteError, match=r"at step 1 .*non-finite: .*params/conv1/kernel"):
        fit(NanStem(), optax.adam(1e-2), tmp_path)
    assert saved_steps(tmp_path) == []


def test_diverging_run_keeps_only_finite_checkpoints(tmp_path):
    # A learning rate of 1e30 overflows the parameters to inf within a few steps.
    schedule = optax.piecewise_constant_schedule(1e-2, {6: 1e30})
    with pytest.raises(trainlib.NonFiniteError, match=r"at step 8 .*non-finite: .*params/"):
        fit(TinyNet(), optax.sgd(schedule), tmp_path)
    assert saved_steps(tmp_path) == [1, 4]
    restored = ocp.StandardCheckpointer().restore(tmp_path / "checkpoints" / "4" / "default")
    for leaf in jax.tree.leaves(restored):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_the_step_flags_a_non_finite_update():
    state = trainlib.create_train_state(NanStem(), optax.sgd(0.1), jnp.zeros((1, 8, 8, 3)), seed=0)
    batch = {"image": jnp.ones((2, 8, 8, 3)), "label": jnp.zeros((2,), jnp.int32)}
    _, metrics = jax.jit(trainlib.make_train_step(trainlib.classification_loss(), optax.sgd(0.1)))(state, batch)
    assert float(metrics["finite"]) == 0.0
    assert np.isnan(float(metrics["loss"]))  # ops.relu keeps the NaN that jax.nn.relu lost under jit


def test_an_interrupt_after_a_non_finite_step_saves_nothing_new(tmp_path):
    # The image of step 5 turns NaN; step 6 is interrupted before the next check (at step 8).
    def poison(step, batch):
        if step == 5:
            raise KeyboardInterrupt
        return {**batch, "image": batch["image"] * jnp.nan} if step == 4 else batch

    with pytest.raises(KeyboardInterrupt):
        trainlib.fit(TinyNet(), optax.adam(1e-2), Colors(poison), num_steps=12, batch_size=BATCH, workdir=tmp_path,
                     shuffle=False, checkpoint_every=4, log_every=4, progress=False)
    assert saved_steps(tmp_path) == [1, 4]
