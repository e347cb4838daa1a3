"""Orbax checkpoints of a `TrainState`, checksummed, with errors that say what went wrong.

A step's folder counts as a checkpoint once it is *complete*: orbax has
renamed it from its temporary name (so every array is on disk) and a
manifest, `checksums.json`, lists the sha256 of every file in it. The
manifest is written after orbax finishes, atomically (temporary file, then
rename), so a run killed at any moment leaves either a complete step or an
incomplete one: an orbax temporary folder (killed while writing arrays), a
step folder without a manifest (killed after orbax but before the manifest),
or an empty folder. Restoring the latest step skips incomplete ones with a
warning; the first save of a run removes them, since training writes them again.

Restoring verifies every file against the manifest (about 0.3 s per 500 MB,
against 1.7 s for orbax to read it), because orbax itself does not: a
checkpoint with 64 flipped bytes in an array file restores without error.
"""

import json
import pathlib
import shutil
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp

from interp.files import CHECKSUMS, CorruptFileError, file_sha256, write_atomically

# Orbax writes step N to "N.orbax-checkpoint-tmp-<time>" and renames it when done.
_ORBAX_TMP = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read back as the expected state."""


class CorruptCheckpointError(CheckpointError, CorruptFileError):
    """A complete checkpoint's file differs from its manifest's checksum (`path`; the step is `step`)."""

    def __init__(self, message: str, path: pathlib.Path, step: int):
        super().__init__(message, path)
        self.step = step


class Checkpoints:
    """Saves every `every` steps (and when asked) under `directory`; restores the latest complete one.

    Saves are asynchronous: a step's manifest is written once its save has
    finished, at the next save, `wait` or `close`.

    Args:
      directory: where step folders go (created if missing).
      every: save interval in steps; `save(..., force=True)` saves off-interval.
      keep: how many recent complete checkpoints to keep, at least 2 so that
        one earlier checkpoint remains when the latest is found corrupt.
    """

    def __init__(self, directory: str | pathlib.Path, every: int, keep: int = 3):
        if every < 1:
            raise ValueError(f"checkpoint_every: expected a positive number of steps, got {every}")
        if keep < 2:
            raise ValueError(f"keep: expected at least 2 checkpoints (one to fall back on), got {keep}")
        self.directory = pathlib.Path(directory).absolute()
        self.keep = keep
        # Orbax would count incomplete steps among those it keeps; `_prune` keeps complete ones.
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=None)
        )
        self._unverified: list[int] = []  # saves started whose manifests are not written yet
        self._cleared = False

    def complete_steps(self) -> list[int]:
        """The steps with a complete checkpoint (finished by orbax, manifest written), in order."""
        return [step for step in self._step_folders() if (self.directory / str(step) / CHECKSUMS).exists()]

    def latest_step(self) -> int | None:
        """The latest complete step, or None."""
        steps = self.complete_steps()
        return steps[-1] if steps else None

    def should_save(self, step: int) -> bool:
        """Whether `save(step, ...)` without `force` would save (orbax also saves a run's first step)."""
        return self._manager.should_save(step)

    def save(self, step: int, state: Any, force: bool = False) -> bool:
        """Starts saving `state` as `step` (asynchronously); whether a save was started.

        The first call removes incomplete step folders (with a warning): they
        are left by a run killed while saving, and this run writes them again.
        """
        if not self._cleared:
            self._remove_incomplete()
        started = self._manager.save(step, args=ocp.args.StandardSave(state), force=force)
        if started:
            # Orbax waited for the previous save before starting this one.
            self._write_manifests(self._unverified[:])
            self._unverified.append(step)
        return started

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at `step` (default: the latest complete), shaped and placed like `like`.

        Every file is checked against the step's manifest first. Incomplete
        steps newer than the latest complete one are skipped with a warning.

        Raises:
          FileNotFoundError: no complete checkpoint in the directory (or not that step).
          CorruptCheckpointError: a file differs from its checksum; the message
            names it and the earlier complete step to restore instead.
          CheckpointError: the checkpoint holds a different state.
        """
        complete = self.complete_steps()
        if step is None:
            self._warn_skipped(complete)
            step = complete[-1] if complete else None
        if step is None or step not in complete:
            incomplete = step is not None and (self.directory / str(step)).exists()
            raise FileNotFoundError(
                f"no {'complete ' if incomplete else ''}checkpoint{'' if step is None else f' for step {step}'} "
                f"in {self.directory}" + (f"; complete steps: {complete}" if complete else "")
            )
        self._verify(step, earlier=[s for s in complete if s < step])
        self._manager.reload()  # the folders may have changed since this manager listed them
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax raises many types; all mean "unreadable"
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} could not be restored as the "
                f"expected training state: {type(error).__name__}: {error}"
            ) from error

    def wait(self) -> None:
        """Blocks until asynchronous saves are on disk, with their manifests."""
        self._manager.wait_until_finished()
        self._write_manifests(self._unverified[:])

    def close(self) -> None:
        self.wait()
        self._manager.close()

    def _step_folders(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.is_dir() and p.name.isdigit())

    def _incomplete_folders(self, complete: list[int]) -> list[pathlib.Path]:
        tmp = [p for p in self.directory.iterdir() if _ORBAX_TMP in p.name] if self.directory.is_dir() else []
        return sorted(tmp) + [self.directory / str(s) for s in self._step_folders() if s not in complete]

    def _warn_skipped(self, complete: list[int]) -> None:
        latest = complete[-1] if complete else -1
        for folder in self._incomplete_folders(complete):
            if int(folder.name.split(".")[0]) > latest:
                warnings.warn(
                    f"checkpoint folder {folder} is incomplete (no manifest {CHECKSUMS}: the run stopped while "
                    f"writing it); skipped, "
                    + (f"restoring step {latest}" if complete else "no complete checkpoint remains"),
                    stacklevel=3,
                )

    def _remove_incomplete(self) -> None:
        self._cleared = True
        removed = self._incomplete_folders(self.complete_steps())
        if jax.process_index() == 0:
            for folder in removed:
                warnings.warn(f"removing incomplete checkpoint folder {folder} (left by a run stopped while "
                              "saving it; this run writes that step again)", stacklevel=3)
                shutil.rmtree(folder)
        # Every host must forget the removed steps, or they disagree on whether to save them;
        # unconditional, since hosts listing the folder before and after the removal differ.
        ocp.multihost.sync_global_processes("interp:Checkpoints:removed_incomplete")
        self._manager.reload()

    def _write_manifests(self, steps: list[int]) -> None:
        for step in steps:
            self._unverified.remove(step)
            folder = self.directory / str(step)
            # A failed orbax save leaves only its temporary folder: that step stays incomplete.
            if jax.process_index() == 0 and folder.is_dir():
                checksums = {str(p.relative_to(folder)): file_sha256(p) for p in _files(folder)}
                manifest = json.dumps({"step": step, "sha256": checksums}, indent=1, sort_keys=True)
                write_atomically(folder / CHECKSUMS, manifest.encode())
        if steps:
            self._prune()

    def _prune(self) -> None:
        if jax.process_index() != 0:
            return
        for step in self.complete_steps()[: -self.keep]:
            # The manifest goes first, so a deletion cut short leaves an incomplete step, not a corrupt one.
            (self.directory / str(step) / CHECKSUMS).unlink()
            # Not `_manager.delete`: that is a barrier all hosts must reach, and only this one prunes.
            shutil.rmtree(self.directory / str(step))

    def _verify(self, step: int, earlier: list[int]) -> None:
        folder = self.directory / str(step)
        fallback = (
            f"the previous complete checkpoint is step {earlier[-1]}: restore it with "
            f"Checkpoints.restore(like, step={earlier[-1]}), or delete {folder} to resume training from it"
            if earlier else "no earlier complete checkpoint exists; delete the folder to train from scratch"
        )

        def corrupt(name: str, problem: str) -> CorruptCheckpointError:
            return CorruptCheckpointError(
                f"checkpoint {folder} (step {step}) is corrupt: {name} {problem}; {fallback}", folder / name, step
            )

        try:
            listed = json.loads((folder / CHECKSUMS).read_text())["sha256"]
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            raise corrupt(CHECKSUMS, f"(the manifest) is unreadable ({type(error).__name__}: {error})") from error
        present = {str(p.relative_to(folder)): p for p in _files(folder)}
        for name in sorted(set(listed) | set(present)):
            if name not in present:
                raise corrupt(name, "is missing")
            if name not in listed:
                raise corrupt(name, "is not in its manifest")
            if file_sha256(present[name]) != listed[name]:
                raise corrupt(name, "does not match its sha256 checksum")

def _files(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every file of a step folder except its manifest (and the manifest's temporary file)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(CHECKSUMS))
