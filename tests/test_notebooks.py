"""Every notebook is run by a test of its own in tests/notebooks/ (a file each, spread over the workers)."""

import pathlib

from tests.notebooks import NOTEBOOKS


def test_every_notebook_has_its_own_test_file():
    tests = pathlib.Path(__file__).parent / "notebooks"
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(
        p.stem.removeprefix("test_") for p in tests.glob("test_*.py"))
