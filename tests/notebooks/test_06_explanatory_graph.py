"""notebooks/06_explanatory_graph.ipynb runs top to bottom, and the checks in its cells hold."""

from tests.notebooks import run_notebook


def test_runs_top_to_bottom(monkeypatch, tmp_path):
    run_notebook("06_explanatory_graph.ipynb", monkeypatch, tmp_path)
