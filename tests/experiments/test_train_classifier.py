"""`python -m experiments.train_classifier`: configs, SynthParts and real folders, resuming."""

import dataclasses

import numpy as np
import pytest

from experiments import common
from experiments import train_classifier as experiment
from experiments.configs import TrainConfig
from interp.data import epoch_indices, pass_indices
from interp.train import CheckpointError, Checkpoints, read_metrics
from tests.data.fixtures import write_cub

SHORT = ["batch_size=16", "eval_batches=1", "log_every=10", "checkpoint_every=10", "eval_every=1000"]


def test_config_overrides_are_typed_and_checked(tmp_path):
    config = common.load_config("small_cnn_synthparts", TrainConfig, ["steps=7", "learning_rate=0.01"])
    assert (config.steps, config.learning_rate, config.model) == (7, 0.01, "small_cnn")
    with pytest.raises(ValueError, match="--set: expected field=value with field one of model, dataset"):
        common.load_config("small_cnn_synthparts", TrainConfig, ["step=7"])
    with pytest.raises(FileNotFoundError, match="--config: no such file"):
        common.load_config(str(tmp_path / "missing.py"), TrainConfig, [])


def test_synthparts_run_resumes_where_it_stopped(tmp_path):
    args = ["--config", "small_cnn_synthparts", "--workdir", str(tmp_path)]
    sets = [a for s in SHORT for a in ("--set", s)]
    experiment.main(args + sets + ["--set", "steps=20"])
    before = common.run_identity(tmp_path)
    with pytest.raises(common.ConfigMismatchError, match=r"config.json was written with another config \(steps: 20 "
                       r"there, 30 now\); .*--force-new-config"):
        experiment.main(args + sets + ["--set", "steps=30"])
    assert '"steps": 20' in (tmp_path / "config.json").read_text()
    experiment.main(args + sets + ["--set", "steps=30", "--force-new-config"])
    # An analysis of this run stored with `before` now sees another run: a mismatch, never stale results.
    after = common.run_identity(tmp_path)
    assert (before["run_step"], after["run_step"]) == (20, 30)
    assert (before["run_config"]["steps"], after["run_config"]["steps"]) == (20, 30)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [10, 20, 30]
    assert [r["step"] for r in records if r["split"] == "val"] == [20, 30]
    checkpoints = Checkpoints(tmp_path / "checkpoints", every=10)
    assert checkpoints.latest_step() == 30
    checkpoints.close()
    assert '"steps": 30' in (tmp_path / "config.json").read_text()

    # The restored weights are the ones that were evaluated at step 30.
    run = common.restore(tmp_path)
    data = common.make_data(run.config)
    batch = data.eval.batch(np.arange(data.eval_examples))
    logits = run.model(batch["image"])
    assert float((logits.argmax(-1) == batch["label"]).mean()) == pytest.approx(records[-1]["accuracy"])
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        common.restore(tmp_path / "nothing")


def test_trains_on_a_cub_folder_with_its_own_classes(tmp_path):
    truth = write_cub(tmp_path / "CUB_200_2011", num_classes=3, num_images=8)
    config = dataclasses.replace(
        common.load_config("small_cnn_synthparts", TrainConfig, SHORT),
        dataset="cub",
        data_dir=str(tmp_path / "CUB_200_2011"),
        image_size=32,
        batch_size=8,
        steps=2,
    )
    data = common.make_data(config)
    assert data.num_classes == 3
    batch = data.train.batch(epoch_indices(0, config.batch_size, len(data.train), config.seed, shuffle=data.shuffle))
    assert batch["image"].shape == (8, 32, 32, 3) and set(batch["label"]) <= {0, 1, 2}
    # 4 training images, batch 8: one batch holds every image twice, in two epoch orders.
    assert sorted(batch["label"]) == sorted(2 * [truth["labels"][i] for i in range(0, 8, 2)])
    # 4 test images: evaluated once each, in one padded batch.
    passes = list(pass_indices(data.eval_examples, config.batch_size))
    assert len(passes) == 1 and passes[0][1].sum() == 4
    result = experiment.run(config, tmp_path / "run", progress=False)
    assert common.restore(tmp_path / "run").config.num_classes == 3  # the folder's, not the config's 6
    last = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    assert (last["step"], last["split"], last["accuracy"]) == (2, "val", result["accuracy"])
    assert len(truth["labels"]) == 8


def test_unknown_dataset_is_named(tmp_path):
    config = dataclasses.replace(common.load_config("small_cnn_synthparts", TrainConfig, []), dataset="imagenet")
    with pytest.raises(ValueError, match="dataset: expected 'synthparts', 'cub' or 'tfds:<name>', got 'imagenet'"):
        common.make_data(config)


def test_a_forced_config_the_checkpoints_do_not_fit_leaves_the_workdirs_config(tmp_path):
    config = common.load_config("small_cnn_synthparts", TrainConfig, SHORT + ["steps=2", "image_size=32"])
    experiment.run(config, tmp_path, progress=False)
    written = (tmp_path / "config.json").read_text()
    with pytest.raises(CheckpointError, match="could not be restored"):
        experiment.run(dataclasses.replace(config, num_classes=4), tmp_path, progress=False, force_new_config=True)
    assert (tmp_path / "config.json").read_text() == written
    common.restore(tmp_path)


@pytest.mark.parametrize("override,message", [
    ("steps=abc", r"--set steps: expected an int, got 'abc'"),
    ("steps=1.5", r"--set steps: expected an int, got '1.5'"),
    ("steps=0", r"TrainConfig.steps: expected a positive number, got 0"),
    ("batch_size=0", r"TrainConfig.batch_size: expected a positive number, got 0"),
    ("batch_size=-4", r"TrainConfig.batch_size: expected a positive number, got -4"),
    ("learning_rate=nan", r"TrainConfig.learning_rate: expected a finite number, got nan"),
])
def test_each_bad_set_value_fails_naming_its_field(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        experiment.main(["--config", "small_cnn_synthparts", "--workdir", str(tmp_path), "--set", override])
    assert not (tmp_path / "config.json").exists()
