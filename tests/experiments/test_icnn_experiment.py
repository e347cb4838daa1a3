"""`python -m experiments.icnn`: SynthParts, CUB-200-2011 and VOC-Part paths, and outputs that agree."""

import json

import numpy as np
import pytest

from experiments import common
from experiments import icnn as experiment
from experiments.configs import IcnnConfig
from tests.data.fixtures import write_cub, write_voc_part

TINY = ["--set", "steps=6", "--set", "single_steps=4", "--set", "batch_size=8", "--set", "eval_images=48"]


def test_synthparts_comparison_writes_consistent_results(tmp_path):
    results = experiment.main(["--workdir", str(tmp_path)] + TINY + ["--set", "single_classes=car"])
    assert set(results) == {"multi", "single_car"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == results and saved["config"]["weight"] == IcnnConfig().weight
    table = (tmp_path / "table.md").read_text()
    for task, networks in results.items():
        assert set(networks) == {"ordinary", "interpretable"}
        for name, r in networks.items():
            assert r["images"] == 48 and r["filters"] == 128
            assert 0.0 <= r["accuracy"] <= 1.0
            assert 0 < r["location_instability"] < 1 and r["location_instability_filters"] <= r["filters"]
            assert f"| {task} | {name} | {r['accuracy']:.3f} | {r['location_instability']:.4f} " in table
    assert 0.0 <= results["multi"]["interpretable"]["part_iou"] <= 1.0
    assert (tmp_path / "feature_maps.png").stat().st_size > 10_000
    # A rerun resumes from the checkpoints and measures the same networks.
    rerun = experiment.main(["--workdir", str(tmp_path)] + TINY + ["--set", "single_classes=car"])

    def measured(r):
        return {t: {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in nets.items()}
                for t, nets in r.items()}

    assert measured(rerun) == measured(results)
    # Without results.json the rerun measures the resumed networks again, and finds the same.
    (tmp_path / "results.json").unlink()
    remeasured = experiment.main(["--workdir", str(tmp_path)] + TINY + ["--set", "single_classes=car"])
    assert measured(remeasured) == measured(results)


def test_cub_folder_runs_with_the_papers_three_landmarks(tmp_path):
    write_cub(tmp_path / "CUB_200_2011", num_classes=3, num_images=8)
    results = experiment.main(["--workdir", str(tmp_path / "run"), "--cub", str(tmp_path / "CUB_200_2011")] + TINY)
    assert set(results) == {"cub"}
    for r in results["cub"].values():
        assert r["images"] == 4  # the odd-numbered images are CUB's test split in the fixture
        assert r["filters"] == 128 and 0.0 <= r["accuracy"] <= 1.0


def test_voc_part_folder_runs(tmp_path):
    write_voc_part(tmp_path / "VOC2010")
    results = experiment.main(["--workdir", str(tmp_path / "run"), "--voc-part", str(tmp_path / "VOC2010")] + TINY)
    assert set(results) == {"voc_part"}
    for r in results["voc_part"].values():
        assert r["images"] >= 1 and r["filters"] == 128


def test_config_overrides_are_checked():
    with pytest.raises(ValueError, match="--set: expected field=value with field one of model, image_size"):
        experiment.main(["--set", "stepz=3"])
    config = common.with_overrides(IcnnConfig(), ["weight=0.5", "single_classes=car,tree"])
    assert config.single_classes == ("car", "tree")
    assert np.isclose(config.weight, 0.5)
