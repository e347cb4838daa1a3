"""experiments.common: the override parser, the random-init twin's seed rule, tables, resumable results."""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tomllib

import jax
import numpy as np
import pytest
import setuptools

from experiments import common, train_classifier
from experiments.configs import IcnnConfig, InversionConfig, TrainConfig
from interp import nets
from interp.files import CorruptFileError


def test_overrides_parse_each_fields_type_and_name_the_field():
    config = common.with_overrides(InversionConfig(), ["steps=12", "random_init=false"])
    assert (config.steps, config.random_init) == (12, False)
    assert common.with_overrides(IcnnConfig(), ["single_classes="]).single_classes == ()
    with pytest.raises(ValueError, match=r"--set steps: expected an int, got 'many'"):
        common.with_overrides(InversionConfig(), ["steps=many"])
    with pytest.raises(ValueError, match=r"--set random_init: expected true or false, got 'maybe'"):
        common.with_overrides(InversionConfig(), ["random_init=maybe"])
    with pytest.raises(ValueError, match=r"field one of steps, batch_size, random_init.*got 'steps'"):
        common.with_overrides(InversionConfig(), ["steps"])


def test_a_config_of_another_experiment_is_refused():
    with pytest.raises(ValueError, match="--config: icnn gives a IcnnConfig; expected a TrainConfig"):
        common.load_config("icnn", TrainConfig)
    with pytest.raises(FileNotFoundError, match="--config: no config module experiments/configs/nothing.py"):
        common.load_config("nothing", TrainConfig)


def test_the_twin_is_the_architecture_initialized_from_seed_plus_one(tmp_path):
    config = common.load_config("small_cnn_synthparts", TrainConfig, [
        "steps=2", "batch_size=8", "eval_batches=1", "checkpoint_every=2", "log_every=2", "seed=3"])
    train_classifier.run(config, tmp_path, progress=False)
    run = common.restore(tmp_path)
    expected = nets.create("small_cnn", 6, key=jax.random.key(4), input_size=64)
    for got, want in zip(jax.tree.leaves(run.random_init.params), jax.tree.leaves(expected.params), strict=True):
        np.testing.assert_array_equal(got, want)
    trained = jax.tree.leaves(run.model.params)
    assert any(not np.array_equal(a, b) for a, b in zip(trained, jax.tree.leaves(expected.params)))


def test_a_table_renders_known_markdown():
    table = common.markdown_table(["task", "net", "accuracy"], [["multi", "icnn", "0.907"], ["a", "b", "1"]],
                                  text_columns=2)
    assert table == "| task | net | accuracy |\n|---|---|---:|\n| multi | icnn | 0.907 |\n| a | b | 1 |\n"
    with pytest.raises(ValueError, match="rows: expected 3 cells per row"):
        common.markdown_table(["task", "net", "accuracy"], [["multi", "icnn"]])


def test_results_resume_with_the_same_config_and_refuse_another_unless_forced(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"error": 0.25, "layers": ("relu1",)}

    first = common.Results(tmp_path, InversionConfig())
    assert first.get_or_compute(("trained", "relu1"), compute) == {"error": 0.25, "layers": ["relu1"]}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved.pop("sha256") and saved == {"config": json.loads(json.dumps(dataclasses.asdict(InversionConfig()))),
                     "results": {"trained": {"relu1": {"error": 0.25, "layers": ["relu1"]}}}}
    again = common.Results(tmp_path, InversionConfig())
    assert ("trained", "relu1") in again and again.get_or_compute(("trained", "relu1"), compute) == first.values[
        "trained"]["relu1"]
    assert len(calls) == 1
    with pytest.raises(common.ConfigMismatchError, match=r"results.json was written with another config "
                       r"\(steps: 1000 there, 5 now\)"):
        common.Results(tmp_path, InversionConfig(steps=5))
    other = common.Results(tmp_path, InversionConfig(steps=5), force_new_config=True)
    assert ("trained", "relu1") not in other and other.values == {}


def test_experiments_are_installed_with_the_project_and_run_from_any_directory(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {"experiments", "experiments.configs"} <= set(setuptools.find_packages(root, include=include))
    # `make venv`'s editable install puts the checkout on the path; PYTHONPATH stands in for it here.
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "experiments.train_classifier", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert "--config" in out.stdout and "experiments.train_classifier" in out.stdout
    config = subprocess.run([sys.executable, "-c", "from experiments import common; from experiments.configs import "
                             "TrainConfig; print(common.load_config('small_cnn_synthparts', TrainConfig).steps)"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert config.stdout.strip() == "3000"


def test_a_runs_held_out_stream_is_the_next_seed_of_its_own_distribution():
    train, held_out = common.run_streams(TrainConfig(seed=2, image_size=32, clutter=0.25))
    assert (train.seed, held_out.seed) == (2, 3)
    assert held_out == dataclasses.replace(train, seed=3) and held_out.clutter == 0.25
    with pytest.raises(ValueError, match="run: expected a run trained on SynthParts, got dataset 'cub'"):
        common.held_out(TrainConfig(dataset="cub"))


def test_a_corrupt_results_file_is_named_and_only_forcing_recomputes(tmp_path):
    common.Results(tmp_path, InversionConfig()).put("error", 0.25)
    path = tmp_path / "results.json"
    path.write_text(path.read_text().replace("0.25", "0.52"))  # a hand edit, or bytes flipped on disk
    with pytest.raises(CorruptFileError, match=r"results.json: its contents do not match the checksum") as raised:
        common.Results(tmp_path, InversionConfig())
    assert raised.value.path == path
    path.write_text(path.read_text()[:40])  # cut short
    with pytest.raises(CorruptFileError, match="results.json"):
        common.Results(tmp_path, InversionConfig())
    assert common.Results(tmp_path, InversionConfig(), force_new_config=True).values == {}


@pytest.mark.parametrize("name", ["attribution", "dissect", "featviz", "icnn", "inversion", "demo"])
def test_a_bad_set_value_fails_before_the_workdir_is_made(tmp_path, name):
    experiment = importlib.import_module(f"experiments.{name}")
    field = "steps" if name in ("icnn", "inversion", "demo", "featviz") else "images"
    with pytest.raises(ValueError, match=field):
        experiment.main(["--workdir", str(tmp_path / "out"), "--set", f"{field}=0"])
    assert not (tmp_path / "out").exists()
