"""The training loop: learns, resumes bit-for-bit, shards, and fails loudly."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from interp import nets, sharding
from interp import train as trainlib

BATCH = 16


class TinyNet(nn.Module):
    """Exercises every kind of state the loop carries: params, batch stats, dropout."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3), use_bias=False)(x)  # a bias before BatchNorm has no gradient
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x).mean(axis=(1, 2))
        x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(3)(x)


def example(index):
    """A learnable task: the label is the color channel lifted above the noise."""
    noise_key, label_key = jax.random.split(jax.random.fold_in(jax.random.key(42), index))
    label = jax.random.randint(label_key, (), 0, 3)
    image = 0.5 * jax.random.uniform(noise_key, (8, 8, 3)) + 0.3 * jax.nn.one_hot(label, 3)[None, None]
    return {"image": image, "label": label}


class Colors:
    """A batch source of `example`s; `poison(step, batch)` may change the batch of step `indices[0] // BATCH`."""

    def __init__(self, poison=None, size=10_000):
        self.poison, self.size = poison, size
        self.examples = jax.jit(jax.vmap(example))

    def __len__(self):
        return self.size

    def batch(self, indices):
        batch = self.examples(jnp.asarray(indices))
        return batch if self.poison is None else self.poison(int(indices[0]) // BATCH, batch)


COLORS = Colors()


def run(workdir, num_steps, mesh=None, data=COLORS, **kw):
    return trainlib.fit(
        TinyNet(),
        optax.adam(1e-2),
        data,
        num_steps=num_steps,
        batch_size=BATCH,
        workdir=workdir,
        shuffle=False,
        checkpoint_every=kw.pop("checkpoint_every", 5),
        log_every=5,
        mesh=mesh,
        progress=False,
        **kw,
    )


def assert_bit_identical(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_loss_decreases(tmp_path):
    run(tmp_path, 60)
    records = [r for r in trainlib.read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in records] == list(range(5, 61, 5))
    print(f"MEASURED loop loss {records[0]['loss']:.4f} -> {records[-1]['loss']:.4f}")
    assert records[-1]["loss"] < 0.6 * records[0]["loss"]


def test_resume_is_bit_identical(tmp_path):
    straight = run(tmp_path / "straight", 20)
    run(tmp_path / "halves", 10)
    resumed = run(tmp_path / "halves", 20)
    assert int(resumed.step) == 20
    assert_bit_identical(straight, resumed)
    steps = [(r["step"], r["split"]) for r in trainlib.read_metrics(tmp_path / "halves" / "metrics.jsonl")]
    assert len(steps) == len(set(steps))


def test_interrupted_run_loses_nothing_and_resumes_identically(tmp_path):
    def interrupted(step, batch):
        if step == 13:
            raise KeyboardInterrupt
        return batch

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "stopped", 20, data=Colors(interrupted))
    checkpoints = trainlib.Checkpoints(tmp_path / "stopped" / "checkpoints", every=5)
    assert checkpoints.latest_step() == 13
    checkpoints.close()
    resumed = run(tmp_path / "stopped", 20)
    assert_bit_identical(run(tmp_path / "straight", 20), resumed)


def test_mesh_of_eight_equals_one_device(tmp_path):
    assert jax.device_count() == 8, "conftest forces 8 CPU devices"
    one = run(tmp_path / "one", 1, mesh=sharding.data_mesh(jax.devices()[:1]))
    eight = run(tmp_path / "eight", 1, mesh=sharding.data_mesh())
    assert len(eight.params["Conv_0"]["kernel"].sharding.device_set) == 8
    # Only the order of the batch reductions differs: float32 round-off.
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_batch_must_split_over_devices(tmp_path):
    with pytest.raises(ValueError, match="batch_size: expected a multiple of the 8 devices"):
        trainlib.fit(TinyNet(), optax.adam(1e-2), COLORS, num_steps=1, batch_size=12, workdir=tmp_path,
                     progress=False)


def test_nan_loss_stops_the_run_without_checkpointing_it(tmp_path):
    def poisoned(step, batch):
        return batch if step < 5 else {**batch, "image": batch["image"] * jnp.nan}

    with pytest.raises(trainlib.NonFiniteError, match="at step 10"):
        run(tmp_path, 20, data=Colors(poisoned))
    checkpoints = trainlib.Checkpoints(tmp_path / "checkpoints", every=5)
    assert checkpoints.latest_step() == 5


def test_missing_and_corrupt_checkpoints_are_named(tmp_path):
    like = jax.device_get(run(tmp_path / "ok", 5))
    empty = trainlib.Checkpoints(tmp_path / "empty", every=5)
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*empty"):
        empty.restore(like)
    empty.close()

    step_dir = tmp_path / "ok" / "checkpoints" / "5"
    for path in step_dir.rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"not a checkpoint" * 4)
    corrupt = trainlib.Checkpoints(tmp_path / "ok" / "checkpoints", every=5)
    with pytest.raises(trainlib.CorruptCheckpointError, match=r"checkpoints/5 \(step 5\) is corrupt"):
        corrupt.restore(like)
    corrupt.close()


def test_checkpoint_of_a_different_model_is_an_error(tmp_path):
    run(tmp_path, 5)

    class Wider(TinyNet):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return nn.Dense(3)(nn.Conv(16, (3, 3))(x).mean(axis=(1, 2)))

    with pytest.raises(trainlib.CheckpointError, match="could not be restored"):
        trainlib.fit(Wider(), optax.adam(1e-2), COLORS, num_steps=6, batch_size=BATCH, workdir=tmp_path,
                     progress=False)


def test_evaluator_counts_every_example(tmp_path):
    state = run(tmp_path, 30)
    # 40 examples: two full batches and one of 8 padded with weight-0 rows.
    evaluate = trainlib.make_evaluator(COLORS, batch_size=BATCH, num_examples=40)
    result = evaluate(state)
    batch = COLORS.batch(np.arange(40))
    logits = state.model()(batch["image"])
    assert result["accuracy"] == pytest.approx(float(jnp.mean(jnp.argmax(logits, -1) == batch["label"])))
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 30


def test_initialize_sets_the_starting_weights_and_is_not_called_on_resume(tmp_path):
    from interp.data import in_memory

    module = nets.create_module("small_cnn", num_classes=2, channels=(4, 4, 4, 4))
    data = in_memory({"image": np.zeros((8, 16, 16, 3), np.float32), "label": np.zeros(8, np.int32)})
    start = jax.tree.map(lambda a: jnp.full_like(a, 0.5),
                         module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"])
    seen = []

    def initialize(variables):
        seen.append(True)
        return {**variables, "params": start}

    state = trainlib.fit(module, optax.sgd(0.0), data, num_steps=1, batch_size=8, workdir=tmp_path, shuffle=False,
                         initialize=initialize, progress=False)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), start)

    def never(variables):
        raise AssertionError("initialize called on resume")

    trainlib.fit(module, optax.sgd(0.0), data, num_steps=2, batch_size=8, workdir=tmp_path, shuffle=False,
                 initialize=never, progress=False)
    assert seen == [True]
    with pytest.raises(ValueError, match="initialize: expected variables of the module's structure"):
        trainlib.create_train_state(module, optax.sgd(0.0), jnp.zeros((1, 16, 16, 3)), 0,
                                    initialize=lambda v: {"params": {}})
