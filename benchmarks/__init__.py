"""Benchmarks of ntlib against what a user would otherwise write or install.

Run them with ``make bench`` or ``python -m benchmarks [--quick] [--only NAME]``.
Each ``benchmarks/bench_*.py`` module exposes ``run(quick: bool = False) -> list[dict]``
(optionally with a ``device`` keyword, used for the GPU column) returning rows
with the keys

``benchmark``  name of the comparison (the same for all rows of one comparison)
``method``     what was timed (ntlib's path or an alternative)
``wall_s``     median wall time in seconds of one call
``hvps``       Hessian-vector products used (optional)
``rel_error``  relative error against a reference (optional)
``ratio``      ``wall_s`` of the baseline of this benchmark divided by this row's
               ``wall_s`` (> 1: faster than the baseline; the baseline row has 1)
``note``       one short sentence

Benchmarks are never part of the timed unit tests: timings on shared CI
machines are too noisy to assert on.
"""

from __future__ import annotations

import time
from typing import Callable


def timeit(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeat`` calls after ``warmup`` calls.

    Example
    -------
    >>> timeit(lambda: sum(range(10)), repeat=3) >= 0.0
    True
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def timed(fn: Callable[[], object], *, repeat: int = 3, warmup: int = 0) -> tuple[float, object]:
    """``(median wall time, result of the last call)`` of ``fn()`` (see :func:`timeit`).

    Example
    -------
    >>> wall, out = timed(lambda: 2 + 2, repeat=1)
    >>> out
    4
    """
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], out


def with_ratios(rows: list[dict], baseline: str) -> list[dict]:
    """Fill ``ratio`` = baseline wall time / row wall time for each row (in place, returned).

    Example
    -------
    >>> with_ratios([{"method": "a", "wall_s": 2.0}, {"method": "b", "wall_s": 1.0}], "a")[1]["ratio"]
    2.0
    """
    base = next(r["wall_s"] for r in rows if r["method"] == baseline)
    for r in rows:
        r["ratio"] = base / r["wall_s"] if r.get("wall_s") else None
    return rows
