"""`python -m experiments.dissect`: both models dissected, and every output agrees with the others."""

import csv
import json

from experiments import common, train_classifier
from experiments import dissect as experiment
from experiments.configs import TrainConfig


def test_outputs_agree_with_each_other(tmp_path, capsys):
    run = tmp_path / "run"
    train_classifier.run(common.load_config(
        "small_cnn_synthparts", TrainConfig, ["steps=10", "batch_size=16", "eval_batches=1", "log_every=10",
                                 "checkpoint_every=10", "eval_every=1000"]), run)
    out = tmp_path / "dissect"
    capsys.readouterr()
    summaries = experiment.main(["--run", str(run), "--workdir", str(out), "--set", "images=48",
                                 "--set", "layers=relu3,relu4", "--set", "batch_size=16", "--progress"])
    # --progress reaches every long job: both passes over the 48 images and the report's 192 units, per model.
    err = capsys.readouterr().err
    for bar in ("dissect: thresholds: 100%", "48/48", "dissect: tally: 100%", "dissect: report: 100%", "192/192"):
        assert err.count(bar) >= 2, bar
    assert json.loads((out / "summary.json").read_text()) == summaries
    assert set(summaries) == {"trained", "random"}
    for name, summary in summaries.items():
        for layer, s in summary["layers"].items():
            with open(out / name / f"{layer}.csv") as f:
                rows = list(csv.DictReader(f))
            assert len(rows) == s["units"] == {"relu3": 64, "relu4": 128}[layer]
            detected = [r for r in rows if float(r["score"]) > s["iou_threshold"]]
            assert len(detected) == s["detectors"]
            assert len({(r["category"], r["label"]) for r in detected}) == s["unique_concepts"]
            assert f"| {name} | {layer} | {s['units']} | {s['detectors']} | {s['unique_concepts']} |" in (
                out / "table.md").read_text()
        assert (out / name / "report" / "index.html").is_file()
    assert (out / "detectors.png").stat().st_size > 10_000
