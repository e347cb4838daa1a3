"""Checkpoints carry checksums: corruption is a named error, incomplete steps are skipped."""

import json
import shutil

import numpy as np
import pytest

from interp import train as trainlib

LIKE = {"w": np.zeros((64, 32), np.float32), "b": np.zeros(32, np.float32)}


def state(step):
    # Random, so orbax's compression leaves a data file of about the arrays' size.
    rng = np.random.default_rng(step)
    return {"w": rng.standard_normal((64, 32), np.float32), "b": rng.standard_normal(32, np.float32)}


def saved(directory, steps, keep=3):
    checkpoints = trainlib.Checkpoints(directory, every=1, keep=keep)
    for step in steps:
        assert checkpoints.save(step, state(step))
    checkpoints.close()
    return trainlib.Checkpoints(directory, every=1, keep=keep)


def largest_file(folder):
    return max((p for p in folder.rglob("*") if p.is_file() and p.name != "checksums.json"),
               key=lambda p: p.stat().st_size)


def test_flipped_bytes_are_a_named_error_that_offers_the_previous_step(tmp_path):
    checkpoints = saved(tmp_path, [1, 2])
    data = largest_file(tmp_path / "2")
    assert data.stat().st_size > 4 * 64 * 32 * 0.8, "the arrays' data file, not metadata"
    flipped = bytearray(data.read_bytes())
    middle = len(flipped) // 2
    flipped[middle:middle + 64] = bytes(b ^ 0xFF for b in flipped[middle:middle + 64])
    data.write_bytes(bytes(flipped))

    with pytest.raises(trainlib.CorruptCheckpointError, match=r"\(step 2\) is corrupt: .* does not match its sha256"
                       r".*previous complete checkpoint is step 1: .*step=1") as error:
        checkpoints.restore(LIKE)
    assert error.value.path == data and error.value.step == 2
    np.testing.assert_array_equal(checkpoints.restore(LIKE, step=1)["w"], state(1)["w"])


def test_a_missing_file_is_corruption_too(tmp_path):
    checkpoints = saved(tmp_path, [1])
    largest_file(tmp_path / "1").unlink()
    with pytest.raises(trainlib.CorruptCheckpointError, match="is missing; no earlier complete checkpoint"):
        checkpoints.restore(LIKE)


@pytest.mark.parametrize("leftover", ["empty folder", "no manifest", "half-written manifest", "orbax tmp folder"])
def test_an_incomplete_latest_step_is_skipped_with_a_warning(tmp_path, leftover):
    saved(tmp_path, [1, 2]).close()
    if leftover == "empty folder":
        incomplete = tmp_path / "3"
        incomplete.mkdir()
    elif leftover == "orbax tmp folder":
        incomplete = tmp_path / "3.orbax-checkpoint-tmp-1234"
        shutil.copytree(tmp_path / "2", incomplete)
        (incomplete / "checksums.json").unlink()
    else:  # orbax finished, the run died before (or while) writing the manifest
        incomplete = tmp_path / "3"
        shutil.copytree(tmp_path / "2", incomplete)
        manifest = incomplete / "checksums.json"
        if leftover == "half-written manifest":
            manifest.rename(manifest.with_name("checksums.json.tmp"))
        else:
            manifest.unlink()
    checkpoints = trainlib.Checkpoints(tmp_path, every=1)
    assert checkpoints.latest_step() == 2
    with pytest.warns(UserWarning, match=f"{incomplete.name} is incomplete .*restoring step 2"):
        restored = checkpoints.restore(LIKE)
    np.testing.assert_array_equal(restored["b"], state(2)["b"])

    # Training goes on from step 2 and writes step 3 again, in place of the leftover.
    with pytest.warns(UserWarning, match=f"removing incomplete checkpoint folder .*{incomplete.name}"):
        checkpoints.save(3, state(3))
    checkpoints.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2", "3"]
    resumed = trainlib.Checkpoints(tmp_path, every=1)
    np.testing.assert_array_equal(resumed.restore(LIKE)["w"], state(3)["w"])


def test_only_incomplete_steps_is_no_checkpoint(tmp_path):
    (tmp_path / "5").mkdir()
    checkpoints = trainlib.Checkpoints(tmp_path, every=1)
    assert checkpoints.latest_step() is None
    with pytest.warns(UserWarning, match="no complete checkpoint remains"), \
         pytest.raises(FileNotFoundError, match="no checkpoint in"):
        checkpoints.restore(LIKE)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint for step 5"):
        checkpoints.restore(LIKE, step=5)


def test_keep_counts_complete_checkpoints(tmp_path):
    checkpoints = saved(tmp_path, range(1, 6), keep=2)
    assert checkpoints.complete_steps() == [4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4", "5"]
    with pytest.raises(ValueError, match="keep: expected at least 2"):
        trainlib.Checkpoints(tmp_path, every=1, keep=1)


def test_the_manifest_lists_every_file_after_an_async_save(tmp_path):
    checkpoints = trainlib.Checkpoints(tmp_path, every=1)
    checkpoints.save(1, state(1))
    checkpoints.wait()
    listed = set(json.loads((tmp_path / "1" / "checksums.json").read_text())["sha256"])
    on_disk = {str(p.relative_to(tmp_path / "1")) for p in (tmp_path / "1").rglob("*") if p.is_file()}
    assert listed == on_disk - {"checksums.json"} and len(listed) > 3
    checkpoints.close()
