"""notebooks/02_attribution.ipynb runs top to bottom, and the checks in its cells hold."""

from tests.notebooks import run_notebook


def test_runs_top_to_bottom(monkeypatch, tmp_path):
    run_notebook("02_attribution.ipynb", monkeypatch, tmp_path)
