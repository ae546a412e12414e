"""Side-by-side timing: every contender runs once per round, in a rotating order, and a
ratio is the median over rounds of the ratio measured within one round, so that the load
of a shared machine, which drifts over seconds, mostly cancels out.

In-process, CPU-bound work is timed by this process's CPU time (``time.process_time``):
on a machine whose cores other jobs share, wall time also counts the moments the
process waited for a core, which is noise, not cost. Work that waits on another process
(a server) is timed by the wall clock."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

CPU = time.process_time
WALL = time.perf_counter


@dataclass(frozen=True)
class Timings:
    """Seconds per unit of work of each contender, one entry per round."""

    samples: dict[str, list[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, name: str, baseline: str) -> float:
        """Median over rounds of name / baseline, both measured in the same round."""
        pairs = zip(self.samples[name], self.samples[baseline], strict=True)
        return statistics.median(a / b for a, b in pairs)


def interleaved(
    contenders: Mapping[str, Callable[[], object]],
    rounds: int,
    units: Mapping[str, int] | None = None,
    warmup: bool = True,
    clock: Callable[[], float] = CPU,
) -> Timings:
    """Time each contender once per round (rotating who goes first).

    ``units[name]`` is how many units of work one call does (for example steps); the
    samples are seconds per unit.
    """
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = clock()
            contenders[name]()
            elapsed = clock() - start
            samples[name].append(elapsed / (units or {}).get(name, 1))
    return Timings(samples)


def calls_for(seconds: float, call: Callable[[], object], limit: int = 100_000) -> int:
    """How many calls of ``call`` take about ``seconds`` of CPU (at least 1)."""
    call()
    start = CPU()
    call()
    once = max(CPU() - start, 1e-7)
    return max(1, min(limit, int(seconds / once)))
