"""Shared by the benchmarks (``make bench`` skips files starting with ``_``)."""

from __future__ import annotations

import time


def images_per_second(function, count: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timed calls of ``function`` (which handles ``count`` images), after
    one untimed warm-up call: tracing and compilation are not throughput."""
    return interleaved_images_per_second({"only": (function, count)}, repeats)["only"]


def interleaved_images_per_second(functions: dict[str, tuple], repeats: int = 3) -> dict[str, float]:
    """Best of ``repeats`` for each ``name: (function, count)``, timed in rounds that take every
    function once, after one warm-up call each: a load that comes and goes on a shared machine
    then slows every configuration alike, so their ratios hold even when the absolute numbers drift."""
    for function, _ in functions.values():
        function()
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, (function, _) in functions.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: count / best[name] for name, (_, count) in functions.items()}
