"""Shared by the benchmarks (``make bench`` skips files starting with ``_``)."""

from __future__ import annotations

import time


def images_per_second(function, count: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timed calls of ``function`` (which handles ``count`` images), after
    one untimed warm-up call: tracing and compilation are not throughput."""
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return count / best
