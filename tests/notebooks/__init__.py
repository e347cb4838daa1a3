"""The notebooks run top to bottom, and the checks written in their cells hold: one test file per notebook.

One file each, so that the notebooks (each trains its own network) are spread over the test workers
(`--dist loadfile` keeps a file on one worker) instead of running one after another on one of them.
"""

import json
import pathlib

import matplotlib

NOTEBOOKS = pathlib.Path(__file__).parent.parent.parent / "notebooks"


def run_notebook(name: str, monkeypatch, tmp_path) -> dict:
    """Executes the notebook's code cells in order in one namespace, in `tmp_path`; returns the namespace."""
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    path = NOTEBOOKS / name
    namespace: dict = {}
    for number, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}[cell {number}]", "exec"), namespace)
    return namespace
