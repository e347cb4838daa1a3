"""A sweep's workdir: one folder per finished group, renamed into place whole, and the table made from them.

    WORKDIR/sweep.json                the sweep's config (checksummed)
    WORKDIR/groups/<id>/cells.json    the group's cells and their row values, with its files' checksums
    WORKDIR/groups/<id>/arrays.npz    each cell's arrays under its index ("0/image", ...)
    WORKDIR/groups/<id>/<index>.png   each cell's image, where its measure makes one
    WORKDIR/table.jsonl               one row per cell, in grid order, once every group is done

A group is written into a temporary folder that is renamed to `<id>` when
complete: a kill at any moment leaves either no folder or a whole one, so a
half-written group is never read. A rerun skips the groups it finds.
"""

import json
import os
import pathlib
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np

from interp.files import (
    CorruptFileError,
    file_sha256,
    load_arrays,
    read_json,
    save_arrays,
    write_atomically,
    write_json,
)
from interp.sweep.grid import Group
from interp.sweep.measures import CellResult

TABLE = "table.jsonl"
_TEMPORARY = ".partial."


class Store:
    """The groups folder of a sweep's workdir."""

    def __init__(self, workdir: str | pathlib.Path):
        workdir = pathlib.Path(workdir)
        self.workdir = workdir
        self.root = workdir / "groups"

    def done(self, group: Group) -> bool:
        """Whether `group` was written whole (its cells.json verified; see `read`)."""
        if not (self.root / group.id).exists():
            return False
        self.read(group)
        return True

    def read(self, group: Group) -> list[dict[str, Any]]:
        """The rows of a finished group: each cell's coordinates and values.

        Raises:
          CorruptFileError: its cells.json fails its checksum or holds other cells than `group`.
        """
        path = self.root / group.id / "cells.json"
        try:
            stored = read_json(path)
        except FileNotFoundError:
            raise CorruptFileError(f"{path.parent}: a group folder without its cells.json (not written by "
                                   "interp.sweep); delete the folder to measure the group again", path) from None
        if stored.get("cells") != _as_json(group.cells):
            raise CorruptFileError(f"{path}: holds other cells than group {group.id} of this sweep; delete "
                                   f"{path.parent} to measure the group again", path)
        return [{**cell, **values} for cell, values in zip(stored["cells"], stored["values"])]

    def arrays(self, row: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The arrays of the cell a table row describes (its `group` names the folder), checksums verified.

        Raises:
          CorruptFileError: the group's cells.json fails its checksum.
          KeyError: the row's coordinates are no cell of its group.
        """
        folder = self.root / row["group"]
        cells = read_json(folder / "cells.json")["cells"]
        index = next((i for i, cell in enumerate(cells) if all(row.get(k) == v for k, v in cell.items())), None)
        if index is None:
            raise KeyError(f"row: {dict(row)} is no cell of group {row['group']}")
        return load_arrays(folder / "arrays.npz").get(str(index), {})

    def write(self, group: Group, results: Sequence[CellResult]) -> None:
        """Writes a group's results into a temporary folder, then renames it into place."""
        if len(results) != len(group.cells):
            raise ValueError(f"measure: expected {len(group.cells)} results for group {group.id}, got {len(results)}")
        partial = self.root / f"{_TEMPORARY}{group.id}.{jax.process_index()}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        save_arrays(partial / "arrays.npz", {str(i): dict(r.arrays) for i, r in enumerate(results)})
        for i, result in enumerate(results):
            if result.image is not None:
                plt.imsave(partial / f"{i}.png", np.clip(np.asarray(result.image, np.float32), 0.0, 1.0))
        files = {path.name: file_sha256(path) for path in sorted(partial.iterdir())}
        write_json(partial / "cells.json", {"cells": _as_json(group.cells),
                                            "values": _as_json([dict(r.values) for r in results]), "files": files})
        _sync_folder(partial)
        try:
            os.rename(partial, self.root / group.id)
        except OSError:
            # Another process finished the same group first (a rerun alongside a live one): keep its folder.
            shutil.rmtree(partial, ignore_errors=True)
        _sync_folder(self.root)

    def remove_partial(self, everyone: bool) -> None:
        """Deletes temporary folders left by killed runs: this process's (`everyone`: every process's)."""
        if not self.root.exists():
            return
        for path in self.root.glob(f"{_TEMPORARY}*"):
            _, writer, _ = path.name.removeprefix(_TEMPORARY).split(".")  # <group>.<process index>.<pid>
            if everyone or writer == str(jax.process_index()):
                shutil.rmtree(path, ignore_errors=True)

    def remove_others(self, groups: Sequence[Group]) -> None:
        """Deletes group folders that no group of `groups` owns (results of a config that was replaced)."""
        wanted = {group.id for group in groups}
        for path in self.root.iterdir() if self.root.exists() else ():
            if not path.name.startswith(_TEMPORARY) and path.name not in wanted:
                shutil.rmtree(path, ignore_errors=True)

    def write_table(self, rows: Sequence[Mapping[str, Any]]) -> None:
        write_atomically(self.workdir / TABLE, "".join(json.dumps(row) + "\n" for row in rows).encode())


def read_table(workdir: str | pathlib.Path) -> list[dict[str, Any]]:
    """The rows of a finished sweep's table.jsonl (see `interp.sweep.run`)."""
    path = pathlib.Path(workdir) / TABLE
    if not path.exists():
        raise FileNotFoundError(f"workdir: {path} not found; has the sweep in {workdir} finished?")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sync_folder(path: pathlib.Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))
