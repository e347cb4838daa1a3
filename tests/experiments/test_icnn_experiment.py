"""`python -m experiments.icnn`: the released comparison over seeds on SynthParts, CUB and VOC-Part folders."""

import json

import numpy as np
import pytest

from experiments import common
from experiments import icnn as experiment
from experiments.configs import IcnnConfig
from interp import explain, files
from tests.data.fixtures import write_cub, write_voc_part

TINY = ["--no-progress", "--set", "pretrain_steps=8", "--set", "train_images=24", "--set", "epochs=2",
        "--set", "single_epochs=2", "--set", "batch_size=8", "--set", "eval_images=48", "--set", "fc_width=16"]
# The one-category tasks run in the CUB and VOC-Part tests below; here only the multi-category one, on two seeds.
SYNTH = TINY + ["--set", "seeds=0,1", "--set", "framings=crop", "--set", "single_classes=",
                "--set", "strength_factors=0"]


def measured(results):
    return {task: {net: {seed: {k: v for k, v in m.items() if k != "seconds"} for seed, m in seeds.items()}
                   for net, seeds in nets.items()} for task, nets in results.items()}


@pytest.fixture(scope="module")
def synthparts_run(tmp_path_factory):
    """The comparison on SynthParts, run once: its workdir and what it returned (the decision trees read it too)."""
    workdir = tmp_path_factory.mktemp("icnn")
    return workdir, experiment.main(["--workdir", str(workdir)] + SYNTH)


def test_synthparts_comparison_over_seeds(synthparts_run):
    tmp_path, out = synthparts_run
    results, summary = out["results"], out["summary"]
    assert set(results) == {"multi/crop"}
    assert set(results["multi/crop"]) == {"ordinary", "interpretable", "masked_no_loss", "references"}
    for networks in results.values():
        for name, seeds in networks.items():
            assert set(seeds) == {"seed0", "seed1"}
            for r in seeds.values():
                if name == "references":  # a part tracker at the map's resolution beats a random cell
                    assert 0 < r["part_tracker"] < r["random_cell"]
                    continue
                assert r["filters"] == 128 and r["cells"] == 256 and 0 <= r["accuracy"] <= 1
                assert r["images"] == 48  # one category: 24 of its images, 24 others
                assert 0 < r["instability_official"] < 1 and r["silent_filters"] <= 128
                assert ("ratio_icnn" in r) == (name != "ordinary") and len(r.get("ratio_fc7", [0, 0])) == 2
                assert 0 <= r["part_iou"] <= 1
    # The masks narrow the measured maps around their centres, from the first steps on (here a few of them).
    spreads = {n: [results["multi/crop"][n][s]["spread"] for s in ("seed0", "seed1")]
               for n in ("ordinary", "interpretable")}
    print(f"MEASURED spread of firing maps, in cells: {spreads}")
    assert all(i < 0.9 * o for i, o in zip(spreads["interpretable"], spreads["ordinary"])), spreads
    # The summary is the mean and spread over seeds, the paired difference seed by seed.
    seeds = results["multi/crop"]
    values = [seeds["interpretable"][s]["instability_official"] for s in ("seed0", "seed1")]
    stat = summary["multi/crop"]["networks"]["interpretable"]["instability_official"]
    assert stat["mean"] == pytest.approx(np.mean(values)) and stat["std"] == pytest.approx(np.std(values, ddof=1))
    diffs = [seeds["interpretable"][s]["instability_official"] - seeds["ordinary"][s]["instability_official"]
             for s in ("seed0", "seed1")]
    paired = summary["multi/crop"]["paired"]["interpretable"]["instability_official"]
    assert paired["mean"] == pytest.approx(np.mean(diffs)) and paired["lower"] == sum(d < 0 for d in diffs)
    table = (tmp_path / "table.md").read_text()
    accuracy = summary["multi/crop"]["networks"]["interpretable"]["accuracy"]
    assert f"| multi/crop | interpretable | {experiment._pm(accuracy, 3)} | {experiment._pm(stat, 4)} |" in table
    assert "| multi/crop | references |" in table
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == results and saved["config"]["seeds"] == [0, 1]
    for figure in ("feature_maps", "instability", "gradient_ratio", "strength"):
        assert (tmp_path / f"{figure}.png").stat().st_size > 10_000
    # A rerun resumes every run and reads the results back; a result taken out is measured again, the same.
    stored = files.read_json(tmp_path / "results.json")
    del stored["results"]["multi/crop"]["interpretable"]["seed1"]
    files.write_json(tmp_path / "results.json", stored)
    assert measured(experiment.main(["--workdir", str(tmp_path)] + SYNTH)["results"]) == measured(results)
    with pytest.raises(common.ConfigMismatchError, match="epochs"):
        experiment.main(["--workdir", str(tmp_path)] + SYNTH + ["--set", "epochs=3"])


# The decision trees read the comparison's networks: the same settings, through --icnn.
TREES = ["--no-progress", "--set", "images=96", "--set", "dissect_images=64", "--set", "depths=3",
         "--set", "batch_size=8", "--set", "icnn_seeds=0", "--set", "icnn_pretrain_steps=8",
         "--set", "icnn_train_images=24", "--set", "icnn_epochs=2", "--set", "icnn_batch_size=8",
         "--set", "icnn_fc_width=16", "--set", "icnn_eval_images=48"]
TRAIN = ["--train-set", "steps=10", "--train-set", "eval_batches=1", "--train-set", "log_every=10",
         "--train-set", "checkpoint_every=10", "--train-set", "eval_every=1000"]


def test_decision_trees_of_the_demo_and_the_interpretable_networks(synthparts_run, tmp_path):
    from experiments import decision_tree

    icnn_dir = synthparts_run[0]
    args = ["--run", str(tmp_path / "run"), "--workdir", str(tmp_path / "trees"), "--icnn", str(icnn_dir)]
    found = decision_tree.main(args + TRAIN + TREES)
    results, summary = found["results"], found["summary"]
    assert set(results) == {"demo", "icnn_seed0/interpretable", "icnn_seed0/ordinary"}
    grown = 0
    for name, network in results.items():
        classes = list(network["classes"])
        assert len(classes) == 6 and all(p.split("/")[0] in ("part", "color", "texture", "object", "scene")
                                         for p in network["parts"])
        for cls, r in network["classes"].items():
            if "skipped" in r:
                assert 0 in r["images"].values()
                continue
            grown += 1
            # A training image's own leaf gives its margin exactly, and the network's sign.
            assert r["train"]["agreement"][-1] == 1.0 and r["train"]["rationale_error"][-1] < 1e-3
            assert len(r["train"]["agreement"]) == len(r["test"]["rationale_error"]) == 4
            assert sum(r["shares"].values()) == pytest.approx(1.0, abs=1e-4)
            tree = explain.DecisionTree.load(tmp_path / "trees" / "trees" / name / f"class{classes.index(cls)}.npz")
            assert (np.asarray(tree.leaf_image) >= 0).sum() == r["images"]["train"] and tree.num_nodes == r["nodes"]
    assert grown >= 8
    assert {k: v["networks"] for k, v in summary.items()} == {"demo": 1, "interpretable": 1, "ordinary": 1}
    table = (tmp_path / "trees" / "table.md").read_text()
    leaves = summary["interpretable"]["train_agreement"]
    assert f"| interpretable (1): train agreement | {decision_tree._pm(leaves, 0)} |" in table
    for figure in ("depth", "shares", "tree", "rationale"):
        assert (tmp_path / "trees" / f"{figure}.png").stat().st_size > 10_000
    # A rerun reads every tree and result back.
    assert decision_tree.main(args + TRAIN + TREES)["results"] == results
    other = ["--run", str(tmp_path / "run"), "--workdir", str(tmp_path / "other"), "--icnn", str(icnn_dir)]
    with pytest.raises(ValueError, match="--icnn: .* holds networks trained with other settings .*epochs"):
        decision_tree.main(other + TRAIN + TREES + ["--set", "icnn_epochs=3"])


def test_cub_folder_runs_cropped_and_whole(tmp_path):
    write_cub(tmp_path / "CUB_200_2011", num_classes=3, num_images=8)
    args = TINY + ["--set", "seeds=0", "--set", "strength_factors="]
    results = experiment.main(["--workdir", str(tmp_path / "run"), "--cub", str(tmp_path / "CUB_200_2011")] + args)
    assert set(results["results"]) == {"cub/crop", "cub/whole"}
    for task in results["results"].values():
        for name in ("ordinary", "interpretable"):
            r = task[name]["seed0"]
            assert r["images"] == 4 and r["filters"] == 128 and "part_iou" not in r  # CUB has no part masks


def test_voc_part_folder_runs(tmp_path):
    write_voc_part(tmp_path / "VOC2010")
    args = TINY + ["--set", "seeds=0", "--set", "strength_factors="]
    results = experiment.main(["--workdir", str(tmp_path / "run"), "--voc-part", str(tmp_path / "VOC2010")] + args)
    assert set(results["results"]) == {"voc_part/crop"}
    r = results["results"]["voc_part/crop"]["interpretable"]["seed0"]
    assert r["images"] >= 1 and r["filters"] == 128 and 0 <= r["part_iou"] <= 1


def test_config_overrides_are_checked():
    with pytest.raises(ValueError, match="--set: expected field=value with field one of model, image_size"):
        experiment.main(["--set", "stepz=3"])
    with pytest.raises(ValueError, match=r"IcnnConfig.framings: expected some of \('crop', 'whole'\)"):
        experiment.main(["--set", "framings=crops"])
    config = common.with_overrides(IcnnConfig(), ["strength=1e-4", "single_classes=car,tree", "seeds=3,4"])
    assert config.single_classes == ("car", "tree") and config.seeds == (3, 4)
    assert np.isclose(config.strength, 1e-4)
