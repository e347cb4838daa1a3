"""notebooks/07_decision_tree.ipynb runs top to bottom, and the checks in its cells hold."""

from tests.notebooks import run_notebook


def test_runs_top_to_bottom(monkeypatch, tmp_path):
    run_notebook("07_decision_tree.ipynb", monkeypatch, tmp_path)
