"""Progress bars: the rule of `interp._progress` and every long job's bar (its total, its unit, its switch)."""

import argparse
import io
import re
import sys

import jax
import numpy as np
import optax
import pytest
from flax import linen as nn
from jax import lax

from experiments import attribution, common, demo, featviz, icnn, inversion, train_classifier
from experiments import dissect as dissect_experiment
from interp import _progress, dissect, metrics, nets, sharding
from interp import featviz as fv
from interp import train as trainlib
from interp.data import in_memory
from tests.train.test_loop import BATCH, COLORS, TinyNet

IMAGES = 20  # with batches of 8: a padded last batch, which a bar must not count


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def no_setting(monkeypatch):
    monkeypatch.delenv("INTERP_PROGRESS", raising=False)


@pytest.mark.parametrize("progress, setting, terminal, process, shown", [
    (None, None, True, 0, True),  # a terminal: shown
    (None, None, False, 0, False),  # a log file or a pipe: off
    (True, None, False, 0, True),  # forced on
    (False, None, True, 0, False),  # asked off
    (None, "1", False, 0, True),  # INTERP_PROGRESS decides where the caller did not
    (None, "0", True, 0, False),
    (None, "off", True, 0, False),
    (True, "0", False, 0, True),  # ... and the caller's word wins over it
    (False, "1", True, 0, False),
    (True, None, True, 1, False),  # never on a process other than 0
    (None, "1", True, 3, False),
])
def test_a_bar_is_shown_on_process_0_on_a_terminal_unless_told(monkeypatch, progress, setting, terminal, process,
                                                                 shown):
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(jax, "process_index", lambda: process)
    if setting is not None:
        monkeypatch.setenv("INTERP_PROGRESS", setting)
    with _progress.bar(7, desc="job", unit="cell", progress=progress) as bar:
        bar.update(7)
    assert ("job: 100%" in stderr.getvalue() and "7/7" in stderr.getvalue()) == shown
    assert shown or stderr.getvalue() == ""


def two_units(x):
    """'pixels': the red and green channels; 'pooled': them averaged over 2 x 2 blocks."""
    pixels = nets.tap(x[..., :2], "pixels")
    pooled = lax.reduce_window(pixels, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
    return nets.tap(pooled, "pooled").sum((1, 2, 3))


class Halves:
    """Concept data of random 16 x 16 images, each showing two part concepts: its top half and its left half."""

    concepts = dissect.ConceptSet(names=("top", "left"), categories=("part",), category_of=(0, 0))
    image_size = seg_size = (16, 16)
    rows, cols = np.indices(image_size)
    masks = np.stack([rows < 8, cols < 8])

    def __len__(self):
        return IMAGES

    def batch(self, indices):
        images = np.random.default_rng(0).uniform(size=(len(indices), 16, 16, 3)).astype(np.float32)
        return dissect.ConceptBatch(images, np.tile(np.arange(2, dtype=np.int32), (len(indices), 1)),
                                    np.broadcast_to(self.masks, (len(indices), 2, 16, 16)))


class Upsampled(nn.Module):
    """A small decoder: features resized to 16 x 16, then a 1 x 1 conv to RGB."""

    @nn.compact
    def __call__(self, features):
        return nn.Conv(3, (1, 1))(jax.image.resize(features, (len(features), 16, 16, features.shape[-1]), "nearest"))


MODEL = nets.from_function(two_units)
CONCEPTS = Halves()
PICTURES = in_memory(jax.random.uniform(jax.random.key(0), (IMAGES, 16, 16, 3)))
ONE_DEVICE = sharding.data_mesh(jax.devices()[:1])


def report(tmp_path, **kw):
    result = dissect.dissect(MODEL, CONCEPTS, "pooled", batch_size=8, progress=False)
    dissect.write_report(result, MODEL, CONCEPTS, tmp_path / "report", **kw)


# Each long job, run small, and the bars it must show: (desc, total, unit).
JOBS = {
    "dissect": (lambda tmp_path, **kw: dissect.dissect(MODEL, CONCEPTS, "pooled", batch_size=8, **kw),
                [("dissect: thresholds", IMAGES, "image"), ("dissect: tally", IMAGES, "image")]),
    "part_interpretability": (
        lambda tmp_path, **kw: dissect.part_interpretability(MODEL, "pooled", CONCEPTS, batch_size=8, **kw),
        [("dissect: thresholds", IMAGES, "image"), ("dissect: tally", IMAGES, "image")]),
    "write_report": (report, [("dissect: report", 2, "unit")]),
    "dataset_examples": (lambda tmp_path, **kw: fv.dataset_examples(MODEL, "pooled", PICTURES, 3, batch_size=8, **kw),
                         [("dataset examples: pooled", IMAGES, "image")]),
    "filter_peaks": (lambda tmp_path, **kw: metrics.filter_peaks(MODEL, "pooled", PICTURES, batch_size=8, **kw),
                     [("filter peaks: pooled", IMAGES, "image")]),
    "train_inverter": (lambda tmp_path, **kw: fv.train_inverter(MODEL, "pooled", PICTURES, key=jax.random.key(0),
                                                                steps=3, batch_size=4, decoder=Upsampled(), **kw),
                       [("inversion: pooled", 3, "step")]),
    "fit": (lambda tmp_path, **kw: trainlib.fit(TinyNet(), optax.adam(1e-2), COLORS, num_steps=3, batch_size=BATCH,
                                                workdir=tmp_path / "run", shuffle=False, mesh=ONE_DEVICE, **kw),
            [("train: run", 3, "step")]),
}


def bar_line(desc: str, total: int, unit: str) -> str:
    """What a finished tqdm bar ends with: `desc: 100%|...| total/total [time, rate]`, rate `N unit/s` or `N s/unit`."""
    return rf"{re.escape(desc)}: 100%\|[^|]*\| {total}/{total} \[[^\]]*(?:{unit}s?/s|s/{unit})"


@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("progress, setting, shown", [
    (True, None, True),
    (False, None, False),
    ("default", None, False),  # the default is None: off where stderr is no terminal (as under pytest) ...
    ("default", "1", True),  # ... and INTERP_PROGRESS reaches it
])
def test_every_long_job_shows_its_bars_with_their_totals_only_when_asked(tmp_path, monkeypatch, capsys, job,
                                                                         progress, setting, shown):
    run, bars = JOBS[job]
    if setting is not None:
        monkeypatch.setenv("INTERP_PROGRESS", setting)
    run(tmp_path, **({} if progress == "default" else {"progress": progress}))
    err = capsys.readouterr().err
    if shown:
        for desc, total, unit in bars:
            assert re.search(bar_line(desc, total, unit), err), f"no bar {desc!r} of {total} {unit}s in {err!r}"
    else:  # (a library's own log line on stderr is not a bar)
        assert not [desc for desc, _, _ in bars if desc in err], err


def test_inverting_several_layers_shows_one_bar_per_layer(tmp_path, capsys):
    fv.invert_layers(MODEL, ["pooled", "pixels"], PICTURES, key=jax.random.key(0), steps=2, batch_size=4,
                     decoder_fn=lambda layer: Upsampled(), progress=True)
    err = capsys.readouterr().err
    assert re.search(bar_line("inversion: pooled", 2, "step"), err)
    assert re.search(bar_line("inversion: pixels", 2, "step"), err)


def test_a_resumed_fit_counts_from_its_checkpoint(tmp_path, capsys):
    JOBS["fit"][0](tmp_path, progress=False)
    trainlib.fit(TinyNet(), optax.adam(1e-2), COLORS, num_steps=5, batch_size=BATCH, workdir=tmp_path / "run",
                 shuffle=False, mesh=ONE_DEVICE, progress=True)
    assert re.search(bar_line("train: run", 5, "step"), capsys.readouterr().err)


@pytest.mark.parametrize("argv, progress", [([], None), (["--progress"], True), (["--no-progress"], False)])
def test_the_command_lines_pass_progress_through(argv, progress):
    parser = common.config_arguments(argparse.ArgumentParser(), default="dissect")
    assert parser.parse_args(argv).progress is progress


@pytest.mark.parametrize("experiment", [attribution, demo, dissect_experiment, featviz, icnn, inversion,
                                        train_classifier], ids=lambda m: m.__name__)
def test_every_experiment_takes_the_progress_switches(experiment, capsys):
    with pytest.raises(SystemExit):
        experiment.main(["--help"])
    assert "--progress, --no-progress" in capsys.readouterr().out
