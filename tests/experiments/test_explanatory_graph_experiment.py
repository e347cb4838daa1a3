"""`python -m experiments.explanatory_graph`: every task, seed, layer and shot stored, tabled and resumed."""

import json

import numpy as np
import pytest

from experiments import common
from experiments import explanatory_graph as experiment
from interp import explain
from interp.data import CUB200
from interp.files import read_json, write_json
from tests.data.fixtures import write_cub

# The run trains on batches of 64, the size the experiment generates SynthParts in (one compiled shape); every
# image set is a multiple of batch_size=6 (CUB's splits hold 6 images), so that each step compiles once.
TRAIN = ["--train-set", "steps=10", "--train-set", "eval_batches=1",
         "--train-set", "log_every=10", "--train-set", "checkpoint_every=10", "--train-set", "eval_every=1000"]
TINY = ["--no-progress", "--set", "mine_images=24", "--set", "test_images=18", "--set", "negative_images=12",
        "--set", "batch_size=6", "--set", "iterations=2", "--set", "density=0.05", "--set", "draws=2",
        "--set", "seeds=0,1", "--set", "shots=1,3"]
CHANNELS = {"relu3": 64, "relu4": 128}


def pm(values):
    """A table cell: the mean and (sample) std of the two seeds' values."""
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def test_every_number_stored_tabled_and_resumed(tmp_path):
    write_cub(tmp_path / "CUB_200_2011", num_classes=3, num_images=12)  # 6 train, 6 test
    out = tmp_path / "eg"
    args = ["--run", str(tmp_path / "run"), "--workdir", str(out), "--cub", str(tmp_path / "CUB_200_2011")]
    found = experiment.main(args + TRAIN + TINY)  # the missing run is trained first
    results, summary = found["results"], found["summary"]
    assert set(results) == {"synthparts", "cub"}
    for task, seeds in results.items():
        for seed in ("seed0", "seed1"):
            r = seeds[seed]
            mined = round(experiment.MINE_SHARE * (24 if task == "synthparts" else 6))  # the seed's share
            assert r["mining"]["images"] == mined and r["mining"]["negatives"] == 12
            assert set(r["layers"]) == set(CHANNELS)
            for layer, s in r["layers"].items():  # as many nodes as filters: the release's 167 of 512
                assert s["count"] == round(CHANNELS[layer] * explain.FILTER_SHARE)
                assert 0 < s["nodes"] < 1 and 0 < s["filters"] < 1
            assert set(r["localization"]) == {"1", "3"}
            for shots in r["localization"].values():
                parts = shots["parts"]  # the fixture's CUB landmarks are random points, often outside the box
                assert parts and all(0 < v < (1 if task == "synthparts" else np.inf) for p in parts.values()
                                     for v in p.values())
                for method in experiment.METHODS:  # the mean over the parts
                    assert shots[method] == pytest.approx(np.mean([p[method] for p in parts.values()]))
        # Only the category's parts: a SynthParts bird has 6; CUB annotates 15 (random ones in the fixture).
        names = set(seeds["seed0"]["localization"]["1"]["parts"])
        assert names <= ({"tail", "leg", "torso", "wing", "head", "beak"} if task == "synthparts"
                         else set(CUB200(tmp_path / "CUB_200_2011").part_names))
        assert (out / task / "seed0" / "graph.npz").is_file() and (out / task / "seed1" / "graph.npz").is_file()
        assert (out / task / "report" / "index.html").is_file()
        for figure in ("node_patches", "graph"):
            assert (out / task / f"{figure}.png").stat().st_size > 10_000
    # The raw filters do not depend on the seed; the images mined and the annotated images drawn do.
    table = (out / "table.md").read_text()
    for task, seeds in results.items():
        assert [seeds["seed0"]["layers"][layer]["filters"] == seeds["seed1"]["layers"][layer]["filters"]
                for layer in CHANNELS] == [True, True]
        assert seeds["seed0"]["layers"]["relu4"]["nodes"] != seeds["seed1"]["layers"]["relu4"]["nodes"]
        assert seeds["seed0"]["localization"]["1"]["parts"] != seeds["seed1"]["localization"]["1"]["parts"]
        for layer in CHANNELS:
            nodes, filters = ([seeds[s]["layers"][layer][k] for s in ("seed0", "seed1")] for k in ("nodes", "filters"))
            count = seeds["seed0"]["layers"][layer]["count"]
            assert f"| {task} | {layer} | {pm(nodes)} | {pm(filters)} | {count} |" in table
        for shots in ("1", "3"):
            cells = [pm([seeds[s]["localization"][shots][m] for s in ("seed0", "seed1")]) for m in experiment.METHODS]
            assert f"| {task} | {shots} | {' | '.join(cells)} |" in table
    assert table.count("\n| synthparts |") == table.count("\n| cub |") == len(CHANNELS) + 2
    assert "0.0862" in table and "0.3120" in table and "0.177" in table
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    saved = read_json(out / "results.json")
    assert saved["results"] == results and saved["config"]["seeds"] == [0, 1]
    for figure in ("stability", "localization"):
        assert (out / f"{figure}.png").stat().st_size > 10_000

    # A rerun resumes: a seed's measurements taken out are measured again from its saved graph, not re-mined.
    mtimes = {path: path.stat().st_mtime_ns for path in out.rglob("graph.npz")}
    del saved["results"]["synthparts"]["seed1"]["layers"], saved["results"]["synthparts"]["seed1"]["localization"]
    write_json(out / "results.json", saved)
    again = experiment.main(args + TRAIN + TINY)
    assert {path: path.stat().st_mtime_ns for path in out.rglob("graph.npz")} == mtimes
    assert again["results"] == results
    with pytest.raises(common.ConfigMismatchError, match="iterations"):
        experiment.main(args + TRAIN + TINY + ["--set", "iterations=3"])
