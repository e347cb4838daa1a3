"""A few hundred steps of interpretable-CNN training on SynthParts against the ordinary network."""

import json

import optax
import pytest

from interp import layers
from interp import train as trainlib
from interp.data import SynthParts

STEPS, BATCH = 400, 64


def run(workdir, interpretable: bool):
    data = SynthParts(seed=0, image_size=64)
    held_out = SynthParts(seed=1, image_size=64)
    module = layers.interpretable_cnn("small_cnn", 6, masked=interpretable, track_classes=True)
    evaluate = trainlib.make_evaluator(held_out, 128, num_examples=512)
    # The filter loss is logged for both networks: the ordinary one through a zero-weight term.
    loss = trainlib.classification_loss() + layers.icnn_loss(0.02 if interpretable else 0.0, "multi")
    # SynthParts' examples are independent draws: read in index order, as before.
    trainlib.fit(module, optax.adam(2e-3), data, loss=loss, num_steps=STEPS, batch_size=BATCH, workdir=workdir,
                 shuffle=False, checkpoint_every=STEPS, log_every=50, evaluate=evaluate, progress=False)
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    return train, [r for r in records if r["split"] == "val"][-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {name: run(tmp_path_factory.mktemp(name), name == "interpretable") for name in ("ordinary", "interpretable")}


def test_training_lowers_the_filter_loss(runs):
    train, _ = runs["interpretable"]
    first, last = train[0]["filter_loss"], train[-1]["filter_loss"]
    print(f"MEASURED filter loss {first:.4f} -> {last:.4f}, ordinary {runs['ordinary'][0][-1]['filter_loss']:.4f}")
    assert last < first - 0.05, (first, last)
    # Only the interpretable network is trained on it; the ordinary one's maps carry less information.
    assert last < runs["ordinary"][0][-1]["filter_loss"]


def test_accuracy_stays_close_to_the_ordinary_network(runs):
    ordinary, interpretable = runs["ordinary"][1]["accuracy"], runs["interpretable"][1]["accuracy"]
    print(f"MEASURED icnn accuracy ordinary {ordinary:.3f}, interpretable {interpretable:.3f}")
    # Over three numerically different builds of this program (tests/README.md): ordinary 0.756-0.773,
    # interpretable 0.686-0.787 (chance is 0.17); the gap ranged from -0.076 to +0.031.
    assert ordinary > 0.55 and interpretable > 0.55, (ordinary, interpretable)
    assert interpretable > ordinary - 0.15, (ordinary, interpretable)
