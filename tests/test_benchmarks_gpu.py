"""`python -m benchmarks.gpu` at its tiny size, in-process: every row, sane times, FLOPs XLA agrees with."""

import contextlib
import io
import json
import math
import types

import jax
import jax.numpy as jnp
import pytest

from benchmarks import gpu
from interp import attribution, nets

pytestmark = pytest.mark.slow  # ~40 s of CPU, nearly all of it compiling SmallCNN's programs

EXPECTED = [("training step", "small_cnn"), ("integrated gradients", "small_cnn"),
            ("render_each, every channel", "small_cnn"), ("dissection", "small_cnn"),
            ("sweep, render every unit", "small_cnn")]


def _main(out, *argv):
    """(report from --out, stdout, stderr) of `main(argv)`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        gpu.main([*argv, "--out", str(out)])
    return json.loads(out.read_text()), stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """(report from --out, stdout, stderr) of `main --size tiny`: every measurement."""
    return _main(tmp_path_factory.mktemp("gpu") / "results.json", "--size", "tiny")


def _table_rows(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")][1:]  # past the header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _check_rows(ran, expected):
    report, stdout, stderr = ran
    assert [(r["measurement"], r["model"]) for r in report["rows"]] == expected
    assert [(cells[0], cells[1]) for cells in _table_rows(stdout)] == expected
    progress = [line for line in stderr.splitlines() if " batch " in line]  # one line per measurement
    assert len(progress) == len(expected)
    assert all(line.startswith(f"{m} {model} ") for line, (m, model) in zip(progress, expected)), progress


def test_every_measurement_is_a_row_of_the_table_the_json_and_the_log(ran):
    assert ran[0]["size"] == "tiny" and ran[0]["only"] == list(gpu.MEASUREMENTS)
    _check_rows(ran, EXPECTED)


def test_only_the_measurements_asked_for_run_in_their_usual_order(ran, tmp_path):
    # Two whose compiled programs `ran` left cached (dissect's steps, the sweep's render), so this is quick.
    only = _main(tmp_path / "results.json", "--size", "tiny", "--only", "sweep", "dissection")
    assert only[0]["only"] == ["sweep", "dissection"]
    _check_rows(only, EXPECTED[3:])
    with pytest.raises(ValueError, match=r"only: expected some of train, ig, render, dissection, sweep, "
                                         r"got \['lime'\]"):
        gpu.run(gpu.SIZES["tiny"], only=("lime",))


def test_the_default_size_is_small_on_a_cpu_and_large_on_an_accelerator():
    assert gpu.default_size(jax.devices("cpu")[0]) == "small"
    assert gpu.default_size(types.SimpleNamespace(platform="gpu")) == "large"
    assert gpu.default_size(types.SimpleNamespace(platform="tpu")) == "large"


def test_times_are_positive_finite_and_counted(ran):
    report, _, _ = ran
    sizes = report["sizes"]
    for row in report["rows"]:
        whole_job = row["measurement"] in ("render_each, every channel", "dissection", "sweep, render every unit")
        assert len(row["seconds"]) == sizes["job_repeats" if whole_job else "repeats"], row["measurement"]
        assert all(math.isfinite(s) and s > 0 for s in row["seconds"]), row
    assert 0 < report["total_s"] < 600


def test_rates_agree_with_times_and_batches_in_the_json_and_the_table(ran):
    report, stdout, _ = ran
    for row, cells in zip(report["rows"], _table_rows(stdout)):
        assert row["rate"] * row["median_s"] == pytest.approx(row["work"], rel=1e-9)
        per_call = {"dissection": report["sizes"]["dissection"]["images"],
                    "sweep, render every unit": row["work"]}.get(row["measurement"], row["batch"])
        assert row["work"] == per_call
        ms, rate = float(cells[4].replace(",", "")), float(cells[5].split()[0].replace(",", ""))
        assert int(cells[3]) == row["batch"]
        # Both are printed to at least 4 significant digits, so each is off by at most 5e-4 of itself.
        assert rate == pytest.approx(per_call / (ms / 1e3), rel=2e-3), cells


def test_render_row_covers_every_channel_of_the_layer(ran):
    report, _, _ = ran
    spec = report["sizes"]["render"]
    row = next(r for r in report["rows"] if r["measurement"].startswith("render_each"))
    model = nets.create(spec["model"], 10, key=jax.random.key(0), input_size=spec["image"])
    shapes = model.layer_shapes(jnp.zeros((1, spec["image"], spec["image"], 3)))
    assert row["batch"] == row["work"] == shapes[spec["layer"]].shape[-1]


def test_sweep_row_counts_every_unit_of_the_layer_times_the_seeds(ran):
    report, _, _ = ran
    spec = gpu.RenderSweep(**report["sizes"]["sweep"])
    row = next(r for r in report["rows"] if r["measurement"].startswith("sweep"))
    model = nets.create(spec.model, 10, key=jax.random.key(0), input_size=spec.image)
    units = model.layer_shapes(jnp.zeros((1, spec.image, spec.image, 3)))[spec.layer].shape[-1]
    assert row["work"] == units * spec.seeds
    assert row["extra"]["groups"] == spec.seeds * math.ceil(units / spec.units_per_call)
    assert row["batch"] == row["extra"]["cells_per_call"] == spec.units_per_call
    # The first run and every timed one wrote a table of one row per cell into its own workdir.
    assert row["extra"]["table_rows"] == [units * spec.seeds] * (1 + report["sizes"]["job_repeats"])
    assert "warm" in row["note"] and f"{row['extra']['groups']} groups" in row["note"]


def test_ig_flops_equal_steps_times_one_forward_and_backward(ran):
    """IG evaluates the input gradient at `steps` path points per example, so its FLOPs are
    `steps` times one gradient's at the same batch, plus the path's interpolation and
    weighting: ~10 FLOPs per input value per point against ~2,000 of SmallCNN's
    convolutions, i.e. under 1%; the count must not fall below the gradients' at all."""
    report, _, _ = ran
    spec = gpu.IG(**report["sizes"]["ig"])
    row = next(r for r in report["rows"] if r["measurement"] == "integrated gradients")
    _, (model, x, target) = gpu.ig_program(spec)

    def gradient(model, x, target):  # written here, not through interp.attribution
        return jax.grad(lambda x: jnp.take_along_axis(model(x), target[:, None], axis=1).sum())(x)

    one = gpu.flops(jax.jit(gradient).lower(model, x, target).compile())
    assert 0.999 <= row["extra"]["flops_per_call"] / (spec.steps * one) <= 1.02
    assert row["extra"]["flops_per_s"] == pytest.approx(row["extra"]["flops_per_call"] / row["median_s"])
    assert "XLA cost analysis" in row["note"]
    assert row["extra"]["fraction_of_peak"] is None  # no peak is known for a CPU


def test_flops_refuses_a_program_whose_loop_it_would_count_once():
    _, (model, x, target) = gpu.ig_program(gpu.IG("small_cnn", 16, 2, 4))
    chunked = jax.jit(lambda m, x, t: attribution.integrated_gradients(m, steps=4, chunk_size=2)(x, t))
    with pytest.raises(ValueError, match="while loop"):
        gpu.flops(chunked.lower(model, x, target).compile())


def test_peaks_are_looked_up_for_the_arithmetic_float32_runs_in():
    def device(kind, platform):
        return types.SimpleNamespace(device_kind=kind, platform=platform)

    assert gpu.peak_flops(device("NVIDIA H200", "gpu")) == ("tf32", 494.7e12)
    assert gpu.peak_flops(device("TPU v4", "tpu")) == ("bf16", 275e12)
    assert gpu.peak_flops(device("cpu", "cpu")) is None
    assert gpu.peak_flops(device("NVIDIA GeForce GTX 1080", "gpu")) is None
    for kind, peaks in gpu.PEAK_FLOPS.items():  # tensor-core rates double as precision halves
        rates = [peaks[k] for k in ("bf16", "tf32", "fp32") if k in peaks]
        assert rates == sorted(rates, reverse=True) and all(r > 1e12 for r in rates), kind
