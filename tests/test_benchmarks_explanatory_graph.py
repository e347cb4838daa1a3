"""`python -m benchmarks.explanatory_graph` at a tiny size, in-process: the two sides agree, the table is the JSON."""

import contextlib
import io
import json

import jax
import numpy as np
import pytest

from benchmarks import explanatory_graph as eg

TINY = dict(images=6, channels=3, reference_images=2, batch_size=4, repeats=2)


def _argv(sizes):
    return [f"--{key.replace('_', '-')}={value}" for key, value in sizes.items()]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """(report from --out, stdout) of `main` at the tiny size."""
    out = tmp_path_factory.mktemp("explanatory_graph") / "results.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        eg.main([*_argv(TINY), "--out", str(out)])
    return json.loads(out.read_text()), stdout.getvalue()


def _table_rows(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")][1:]  # past the header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_table_rows_are_the_json_rows(ran):
    report, stdout = ran
    rows, cells = report["rows"], _table_rows(stdout)
    assert [c[0] for c in cells] == [r["implementation"] for r in rows]
    assert [r["images"] for r in rows] == [TINY["reference_images"], TINY["images"]]
    for row, line in zip(rows, cells):
        assert int(line[1]) == row["images"]
        seconds, rate = float(line[2].replace(",", "")), float(line[3].replace(",", ""))
        assert seconds == pytest.approx(row["seconds"], rel=1e-3)  # 4 significant digits at least
        assert rate == pytest.approx(row["images_per_s"], rel=1e-3)
        assert row["images_per_s"] == pytest.approx(row["images"] / row["seconds"])
        assert line[4] == f"{row['speedup']:.1f}x"
    release, interp = rows
    assert len(release["runs_s"]) == TINY["reference_images"] and len(interp["runs_s"]) == TINY["repeats"]
    assert interp["seconds"] == pytest.approx(float(np.median(interp["runs_s"])))
    assert release["seconds"] >= sum(release["runs_s"])  # the images and updateModel on their sums
    assert report["speedup"] == pytest.approx(interp["images_per_s"] / release["images_per_s"])
    assert report["goal_met"] == (report["speedup"] >= eg.GOAL)


def test_the_setup_is_the_release_layer_scaled_down(ran):
    setup = ran[0]["setup"]
    assert setup["patterns"] == 20 and setup["candidates"] == 6 and setup["half_range"] == 2  # 14 x 14, 0.1
    assert setup["nodes"] == 20 * TINY["channels"]
    assert ran[0]["cpu_cores"] >= 1 and ran[0]["devices"] == str(jax.devices())


def test_every_quantity_agrees_and_ties_are_counted(ran):
    found = ran[0]["agreement"]
    assert set(found) == set(eg.TOLERANCES)
    assert all(v["max_abs"] < 1e-5 for v in found.values()), found  # agreement() raises past its tolerances
    assert found["position"]["nodes"] == TINY["reference_images"] * 20 * TINY["channels"]
    assert 0 <= found["position"]["ties"] < found["position"]["nodes"] / 2


@pytest.fixture(scope="module")
def both_sides(ran):  # after `ran`: its compiled chunk is reused
    inputs = eg.make_inputs(TINY["images"], TINY["channels"])
    stats, _ = eg.interp_iteration(inputs, TINY["batch_size"])
    subset = jax.tree.map(lambda a: a[:TINY["reference_images"]], stats)
    theirs, theirs_update = eg.release_iteration(inputs, TINY["reference_images"])
    return inputs, subset, theirs, theirs_update


def test_a_difference_stops_the_benchmark(both_sides):
    inputs, subset, theirs, theirs_update = both_sides
    eg.agreement(inputs, subset, eg.interp_m_step(inputs.layer, subset), theirs, theirs_update)
    off = subset._replace(mass=subset.mass * np.float32(1 + 1e-3))
    with pytest.raises(AssertionError, match=r"mass: \d+ of \d+ entries past"):
        eg.agreement(inputs, off, eg.interp_m_step(inputs.layer, off), theirs, theirs_update)
    moved = subset.position.copy()
    moved[0, 0, 0, 0] += 0.25  # not on any candidate
    off = subset._replace(position=moved)
    with pytest.raises(AssertionError, match=r"position: 1 of \d+ entries past"):
        eg.agreement(inputs, off, eg.interp_m_step(inputs.layer, off), theirs, theirs_update)


def test_too_many_reference_images_are_refused():
    with pytest.raises(ValueError, match=r"reference_images: expected 1\.\.3, got 4"):
        eg.run(3, 2, 4, 2, 1)
