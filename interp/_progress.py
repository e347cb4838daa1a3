"""The progress bar every long job shows: on process 0 only, on a terminal only, off when asked.

A job reports to stderr, so a bar on a log file or a CI pipe would be a wall
of carriage returns: there it is off unless `progress=True` forces it.
`INTERP_PROGRESS=0` turns every bar off, `INTERP_PROGRESS=1` forces them on.
"""

import os
import sys

import jax
from tqdm.auto import tqdm

__all__ = ["bar"]


def bar(total: int | None, *, desc: str, unit: str = "it", initial: int = 0, progress: bool | None = None) -> tqdm:
    """A tqdm bar for a job of `total` units, shown where `progress` (None: on a terminal) allows.

    Args:
      total: units the job has in all (None when unknown).
      desc: what the job is (shown left of the bar).
      unit: what one unit is ("image", "step", "cell").
      initial: units already done (a resumed job).
      progress: True shows the bar, False hides it, None (default) shows it when stderr is a terminal;
        `INTERP_PROGRESS` overrides None. Never on a process other than 0.
    """
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=1.0, dynamic_ncols=True,
                disable=not _shown(progress))


def _shown(progress: bool | None) -> bool:
    if jax.process_index() != 0:
        return False
    if progress is not None:
        return progress
    setting = os.environ.get("INTERP_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty()
