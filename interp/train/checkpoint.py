"""Orbax checkpoints of a `TrainState`, with errors that say what went wrong."""

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read back as the expected state."""


class Checkpoints:
    """Saves every `every` steps (and when asked) under `directory`; restores the latest.

    Args:
      directory: where step folders go (created if missing).
      every: save interval in steps; `save(..., force=True)` saves off-interval.
      keep: how many recent checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, every: int, keep: int = 3):
        if every < 1:
            raise ValueError(f"checkpoint_every: expected a positive number of steps, got {every}")
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def should_save(self, step: int) -> bool:
        """Whether `save(step, ...)` without `force` would save (orbax also saves a run's first step)."""
        return self._manager.should_save(step)

    def save(self, step: int, state: Any, force: bool = False) -> bool:
        """Starts saving `state` as `step` (asynchronously); whether a save was started."""
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at `step` (default: the latest), shaped and placed like `like`.

        Raises:
          FileNotFoundError: no checkpoint in the directory (or not that step).
          CheckpointError: the checkpoint is corrupt or holds a different state.
        """
        step = self.latest_step() if step is None else step
        if step is None or step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"no checkpoint{'' if step is None else f' for step {step}'} in {self.directory}"
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax raises many types; all mean "unreadable"
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} could not be restored as the "
                f"expected training state: {type(error).__name__}: {error}"
            ) from error

    def wait(self) -> None:
        """Blocks until asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
