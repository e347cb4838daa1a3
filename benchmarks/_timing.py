"""Timing shared by the benchmarks: alternating runs so that machine drift falls on every side."""

import time

import numpy as np


def time_alternating(runs: list, repeats: int) -> list[np.ndarray]:
    """Seconds of `repeats` calls of each run; each round starts with the next run, so drift is shared."""
    times = [[] for _ in runs]
    for r in range(repeats):
        for i in np.roll(np.arange(len(runs)), -r):
            start = time.perf_counter()
            runs[i]()
            times[i].append(time.perf_counter() - start)
    return [np.asarray(t) for t in times]
