"""Timing shared by the benchmarks: alternating runs so that machine drift falls on every side."""

import time

import numpy as np


def time_alternating(runs: list, repeats: int, warm_up: int = 0) -> list[np.ndarray]:
    """Seconds of `repeats` calls of each run; each round starts with the next run, so drift is shared.

    `warm_up` untimed calls of a run precede each of its timed calls, so a
    timed call follows a call of the same run, as in a loop over batches, and
    not a call of another framework whose threads may still hold the cores.
    """
    times = [[] for _ in runs]
    for r in range(repeats):
        for i in np.roll(np.arange(len(runs)), -r):
            for _ in range(warm_up):
                runs[i]()
            start = time.perf_counter()
            runs[i]()
            times[i].append(time.perf_counter() - start)
    return [np.asarray(t) for t in times]
