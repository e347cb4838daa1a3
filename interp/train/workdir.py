"""One writer per workdir: an advisory lock that the kernel releases on any exit.

    with hold_workdir("runs/x"):
        ...  # a second process's hold_workdir("runs/x") raises WorkdirBusyError, naming this one

The lock is `fcntl.flock` on `workdir/.lock.<process index>`. The kernel drops
it when the holder's file is closed, so a process that exits in any way,
SIGKILL included, leaves no stale lock: the file stays, the lock does not.
While held, the file names its holder (pid, host, start time, command), which
is what the error shows.

Multi-host: every process of a run writes its shards of each checkpoint, so
every process locks, each its own file (the process index in the name). On a
filesystem the hosts share, process 0 of one run and process 0 of another
meet on `.lock.0` (Linux NFS maps flock to byte-range locks, which span
clients), while the processes of one run never meet each other.

Holding is reentrant within a process: an experiment that holds its workdir
may call `fit` on it, which holds it too.
"""

import contextlib
import datetime
import fcntl
import os
import pathlib
import socket
import sys
from collections.abc import Iterator

import jax


class WorkdirBusyError(RuntimeError):
    """Another process holds the workdir's lock."""


_held: dict[pathlib.Path, int] = {}  # lock file -> how many holds this process has on it


@contextlib.contextmanager
def hold_workdir(workdir: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Holds `workdir`'s writer lock (creating the folder) for the `with` block; yields the workdir.

    Raises:
      WorkdirBusyError: another process holds it; the message names that process.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = (workdir / f".lock.{jax.process_index()}").resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield workdir
        finally:
            _held[path] -= 1
        return
    # "a": the holder's description must not be truncated before the lock is ours.
    with path.open("a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not written its name yet"
            raise WorkdirBusyError(
                f"workdir {workdir} is in use by {holder}; wait for it to finish, stop it, or use another "
                "workdir (two writers would interleave its checkpoints and metrics)"
            ) from None
        file.truncate(0)
        file.write(_description() + "\n")
        file.flush()
        _held[path] = 1
        try:
            yield workdir
        finally:
            del _held[path]
            file.truncate(0)  # still locked: no other process reads a former holder as the current one


def _description() -> str:
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()} (started {started}: {' '.join(sys.argv)})"
