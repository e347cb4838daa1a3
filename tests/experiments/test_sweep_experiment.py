"""`python -m experiments.sweep`: checkpoints named by step, a table, a summary that agrees with it, a rerun."""

import json

import pytest

from experiments import common, train_classifier
from experiments import sweep as experiment
from experiments.configs import TrainConfig
from interp import sweep
from interp.files import CHECKSUMS, ConfigMismatchError, file_sha256


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A ten-step SmallCNN run with checkpoints at steps 1 (fit saves the first step too), 5 and 10."""
    run = tmp_path_factory.mktemp("sweep_run") / "run"
    train_classifier.run(common.load_config(
        "small_cnn_synthparts", TrainConfig, ["steps=10", "batch_size=16", "eval_batches=1", "log_every=5",
                                              "checkpoint_every=5", "eval_every=1000", "image_size=32"]),
        run, progress=False)
    return run


def test_every_checkpoint_dissected_and_the_outputs_agree(run, tmp_path):
    out = tmp_path / "sweep"
    argv = ["--config", "sweep_checkpoints", "--workdir", str(out), "--no-progress", "--set", f"models={run}@all",
            "--set", "layers=relu3", "--set", "measure.images=32", "--set", "measure.batch_size=16"]
    results = experiment.main(argv)
    rows = sweep.read_table(out)
    assert [(r["model"], r["unit"]) for r in rows] == [(f"{run}@{s}", u) for s in (1, 5, 10) for u in range(64)]
    for entry in results["summary"]:
        mine = [r for r in rows if r["model"] == entry["model"]]
        assert entry["cells"] == 64
        assert entry["detector"] == pytest.approx(sum(r["detector"] for r in mine) / 64)
        assert entry["iou"] == pytest.approx(sum(r["iou"] for r in mine) / 64)
        assert f"| {entry['model']} | relu3 | 64 | {entry['iou']:.3f} | {entry['detector']:.3f} |" in (
            out / "summary.md").read_text()
    assert json.loads((out / "results.json").read_text())["results"]["summary"] == results["summary"]
    assert (out / "sweep.png").stat().st_size > 5_000
    assert experiment.main(argv) == results  # a rerun reads every group back


def test_a_run_named_without_a_step_is_pinned_to_its_latest_checkpoint(run):
    assert experiment.pin([str(run), f"{run}@5", f"{run}@all"]) == (
        f"{run}@10", f"{run}@5", f"{run}@1", f"{run}@5", f"{run}@10")
    identities = {step: experiment.RunCheckpoints().describe(f"{run}@{step}").identity for step in (1, 5, 10)}
    assert identities[5] == file_sha256(run / "checkpoints" / "5" / CHECKSUMS) and len(set(identities.values())) == 3
    with pytest.raises(ValueError, match=r"models: '.*@7': .* has no complete checkpoint at step 7; its steps: 1, 5"):
        experiment.RunCheckpoints().describe(f"{run}@7")
    with pytest.raises(ValueError, match=r"models: '.*nowhere' is not a training run"):
        experiment.pin([str(run.parent / "nowhere")])


def test_a_rerun_with_another_grid_is_refused(run, tmp_path):
    out = tmp_path / "sweep"
    base = ["--config", "sweep_units", "--workdir", str(out), "--no-progress", "--set", f"models={run}@5",
            "--set", "layers=relu1", "--set", "measure.steps=2", "--set", "measure.image_size=32"]
    experiment.main(base + ["--set", "units=0,1"])
    with pytest.raises(ConfigMismatchError, match=r"units: \[0, 1\] there, \[0, 2\] now"):
        experiment.main(base + ["--set", "units=0,2"])
    with pytest.raises(ValueError, match=r"--set units: expected comma-separated ints, got 'a'"):
        experiment.main(base + ["--set", "units=a"])


def test_coordinator_without_the_process_count_and_index_is_refused():
    with pytest.raises(ValueError, match=r"--coordinator: also give --num-processes and --process-id"):
        experiment.main(["--config", "sweep_units", "--workdir", "unused", "--coordinator", "127.0.0.1:1"])
