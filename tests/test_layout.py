"""The layout's one-way dependencies, as the README states them, checked on every import.

Each module of `interp` is parsed (not imported) and its `interp.*` imports are
checked against what its subpackage may use, so the layout cannot drift.
"""

import ast
import importlib
import pathlib
import pkgutil

import pytest

import interp

ROOT = pathlib.Path(interp.__file__).parent

# What each part of the library may import, besides itself and the shared private helpers below.
FOUNDATION = {"ops", "sharding", "nets", "data", "files"}
ALLOWED = {
    "ops": set(),  # plain JAX: knows no model
    "sharding": set(),
    "data": set(),  # knows no model
    "files": set(),  # checksummed files: below every part that writes one
    "nets": {"ops"},  # the zoo knows no method and no training
    "train": {"ops", "sharding", "nets", "data", "files"},
    "metrics": FOUNDATION,  # what the method families evaluate with
    "attribution": FOUNDATION,
    "featviz": FOUNDATION | {"metrics"},
    "dissect": FOUNDATION | {"metrics"},
    "explain": FOUNDATION | {"metrics"},
    # A layer brings its own training loss (`layers.icnn_loss` is a `train.Loss` factory),
    # so layers may use train; train never imports a layer.
    "layers": FOUNDATION | {"metrics", "train"},
    "viz": FOUNDATION | {"metrics"},
    "cli": FOUNDATION,
    # Sweeps run the families' measures over a grid, so they sit above them all; no family imports a sweep.
    "sweep": FOUNDATION | {"metrics", "attribution", "featviz", "dissect", "train", "viz"},
}
# Below every part: argument checks, and the progress bar of every long job.
SHARED_PRIVATE = ("_checks", "_progress")


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(("interp",) + parts), path


def _imports(path: pathlib.Path) -> set[str]:
    """Every absolute module name `path` imports, including `from x import y` as x.y."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


@pytest.mark.parametrize("module,path", list(_modules()), ids=[module for module, _ in _modules()])
def test_module_imports_only_what_its_part_may_use(module, path):
    part = _part(module)
    if part in ("__init__", *SHARED_PRIVATE):
        return
    assert part in ALLOWED, f"{module}: part {part!r} has no dependency rule; add it to ALLOWED and the README"
    for name in _imports(path):
        assert name.split(".")[0] not in ("experiments", "benchmarks", "tests"), f"{module} imports {name}"
        if not name.startswith("interp.") or _part(name) in SHARED_PRIVATE:
            continue
        used = _part(name)
        if used == part:
            continue
        assert used in ALLOWED[part], f"{module} imports {name}: {part} may use only {sorted(ALLOWED[part])}"
        private = [p for p in name.split(".")[2:] if p.startswith("_") and not p.startswith("__")]
        assert not private, f"{module} imports {name}, a private name of interp.{used}"


@pytest.mark.parametrize("helper", SHARED_PRIVATE)
def test_the_shared_helpers_import_no_part_of_the_library(helper):
    # `ops` and `data` import `interp._checks` (and long jobs in several parts `interp._progress`),
    # so they must sit below every part.
    assert not [name for name in _imports(ROOT / f"{helper}.py") if name.startswith("interp")]


def test_every_subpackage_imports_and_is_described_at_the_top():
    subpackages = [m.name for m in pkgutil.iter_modules(interp.__path__) if not m.name.startswith("_")]
    assert set(subpackages) >= {"nets", "ops", "sharding", "data", "files", "train", "attribution", "featviz",
                                "dissect", "layers", "metrics", "viz", "cli"}
    for name in subpackages:
        module = importlib.import_module(f"interp.{name}")
        assert module.__doc__, f"interp.{name} has no docstring"
        assert f"`{name}`" in interp.__doc__, f"interp/__init__.py does not describe `{name}`"
