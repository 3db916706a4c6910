"""Wall-clock timing: laps of one run, and repeated runs of several models interleaved.

Every time is the median of ``repeats`` runs after ``warmup`` runs, with the 10th and 90th
percentiles as its spread; on CUDA the device is synchronised at each lap.
"""

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

__all__ = ["Stats", "PhaseTimer", "measure_interleaved", "measure_phases"]


@dataclass
class Stats:
    """Milliseconds over repeated runs: median, 10th and 90th percentiles, number of runs."""

    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Stats":
        ms = np.asarray(seconds, dtype=np.float64) * 1000
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), len(ms))


class PhaseTimer:
    """Wall-clock laps of one run; ``lap(name)`` synchronises CUDA, then records the time since
    the previous lap (or ``start``) under ``name``, adding to it if the name repeats."""

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self.laps: Dict[str, float] = {}
        self.start()

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        self._sync()
        self._last = time.perf_counter()

    def lap(self, name: str):
        self._sync()
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def measure_interleaved(
    runs: Dict[str, Callable[[PhaseTimer], None]], device, warmup: int, repeats: int
) -> Dict[str, Dict[str, Stats]]:
    """Time several ``run(timer)`` callables round-robin: ``warmup`` untimed rounds, then
    ``repeats`` timed rounds, each calling every run once, so that a change of machine load
    affects all of them alike. Returns per run the :class:`Stats` of each lap name and of their
    sum, ``"total"``."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        for run in runs.values():
            run(PhaseTimer(device))
    laps: Dict[str, Dict[str, List[float]]] = {name: {} for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            timer = PhaseTimer(device)
            run(timer)
            for lap, seconds in timer.laps.items():
                laps[name].setdefault(lap, []).append(seconds)
            laps[name].setdefault("total", []).append(sum(timer.laps.values()))
    return {
        name: {lap: Stats.of(seconds) for lap, seconds in per_run.items()}
        for name, per_run in laps.items()
    }


def measure_phases(
    run: Callable[[PhaseTimer], None], device, warmup: int, repeats: int
) -> Dict[str, Stats]:
    """:func:`measure_interleaved` of one run."""
    return measure_interleaved({"run": run}, device, warmup, repeats)["run"]
