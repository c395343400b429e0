"""Timing helpers shared by the benchmarks: medians with the interquartile range."""
from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of `repeats` calls of fn, after `warmup` uncounted ones (allocator, oneDNN caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def summary(times: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """'median (q1-q3)' of times multiplied by scale."""
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return f"{statistics.median(times) * scale:.{digits}f} ({q[0] * scale:.{digits}f}-{q[2] * scale:.{digits}f})"
