"""Memory per call and memory kept, with tracemalloc (run apart from the timing: tracing slows
every allocation, so no timed sample ever runs under it).

- per_call(): each of n calls runs between a tracemalloc peak reset and a reading, which gives
  the most memory that call held at once above what was allocated before it (its transient
  allocations plus what it keeps); the same for the empty function of the same kind is
  subtracted (the bookkeeping's own few bytes). `bytes_per_op` is the median over calls,
  `peak_bytes` the highest traced memory of the whole phase above its start.
- leak_check(): after a warm-up round, `rounds` rounds of `per_round` calls, each followed by
  a full garbage collection and a reading of the traced memory. The memory kept per call is
  the median of the rounds' growth per call (see verdict()). A function is said to leak only
  when both hold: that is at least LEAK_MIN_BYTES_PER_OP, and the memory grew in at least
  LEAK_MIN_GROWING of the rounds. A function that allocates and frees leaves the readings flat;
  a one-off growth (a cache filling, a table resizing) grows one round, not most of them.
"""
from __future__ import annotations

import gc
import statistics
import tracemalloc
from array import array
from itertools import repeat as _repeat

from . import stats
from .measure import Target, empty_like

LEAK_ROUNDS = 8
LEAK_MIN_BYTES_PER_OP = 1.0
LEAK_MIN_GROWING = 0.75


def _sync_peaks(fn, args, kwargs, n: int, out: array) -> None:
    traced, reset = tracemalloc.get_traced_memory, tracemalloc.reset_peak
    if not (args or kwargs):             # the plain call form: no argument tuple or dict
        for i in range(n):
            before = traced()[0]
            reset()
            fn()
            out[i] = traced()[1] - before
        return
    for i in range(n):
        before = traced()[0]
        reset()
        fn(*args, **kwargs)
        out[i] = traced()[1] - before


async def _async_peaks(fn, args, kwargs, n: int, out: array) -> None:
    traced, reset = tracemalloc.get_traced_memory, tracemalloc.reset_peak
    if not (args or kwargs):
        for i in range(n):
            before = traced()[0]
            reset()
            await fn()
            out[i] = traced()[1] - before
        return
    for i in range(n):
        before = traced()[0]
        reset()
        await fn(*args, **kwargs)
        out[i] = traced()[1] - before


def _sync_calls(fn, args, kwargs, n: int) -> None:
    if not (args or kwargs):
        for _ in _repeat(None, n):
            fn()
        return
    for _ in _repeat(None, n):
        fn(*args, **kwargs)


async def _async_calls(fn, args, kwargs, n: int) -> None:
    if not (args or kwargs):
        for _ in _repeat(None, n):
            await fn()
        return
    for _ in _repeat(None, n):
        await fn(*args, **kwargs)


class _Tracing:
    """tracemalloc on for the block (left as found when it was already on)."""

    def __enter__(self):
        self.was = tracemalloc.is_tracing()
        if not self.was:
            tracemalloc.start()
        return self

    def __exit__(self, *exc):
        if not self.was:
            tracemalloc.stop()


def per_call(target: Target, n: int) -> dict:
    """bytes_per_op and peak_bytes over n calls (see the module docstring)."""
    target.probe()
    sampler = target.sampler()
    try:
        out, empty = array("q", bytes(8 * n)), array("q", bytes(8 * n))
        with _Tracing():
            if target.is_async:
                noop = empty_like(target.args, target.kwargs, True)
                sampler.run(_async_peaks(noop, target.args, target.kwargs, n, empty))
                start = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                sampler.run(_async_peaks(target.fn, target.args, target.kwargs, n, out))
            else:
                noop = empty_like(target.args, target.kwargs, False)
                _sync_peaks(noop, target.args, target.kwargs, n, empty)
                start = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                _sync_peaks(target.fn, target.args, target.kwargs, n, out)
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        sampler.close()
    base = statistics.median(empty)
    per = statistics.median(out)
    return {"bytes_per_op": max(0.0, float(per - base)), "peak_bytes": max(0, int(peak - start)),
            "memory_calls": n}


def leak_check(target: Target, per_round: int, rounds: int = LEAK_ROUNDS) -> dict:
    """The leak verdict and the memory kept per call (see the module docstring)."""
    target.probe()
    sampler = target.sampler()
    readings = array("q", bytes(8 * (rounds + 1)))
    try:
        if target.is_async:
            def calls():
                sampler.run(_async_calls(target.fn, target.args, target.kwargs, per_round))
        else:
            def calls():
                _sync_calls(target.fn, target.args, target.kwargs, per_round)
        with _Tracing():
            calls()                                  # warm-up round: caches fill, tables grow
            gc.collect()
            readings[0] = tracemalloc.get_traced_memory()[0]
            for r in range(1, rounds + 1):
                calls()
                gc.collect()
                readings[r] = tracemalloc.get_traced_memory()[0]
    finally:
        sampler.close()
    return verdict(list(readings), per_round)


def verdict(readings: list, per_round: int) -> dict:
    """Judge traced-memory readings taken every `per_round` calls (the first before them).

    The memory kept per call is the median of the rounds' growth per call: a regression slope
    that a one-off step (a table resized, a cache filled, or a container allocated before
    tracing began reallocated during it, whose old block tracemalloc never saw) moves by one
    round in eight, where it would drag a least-squares slope (kept beside it, with its t)."""
    x = [i * per_round for i in range(len(readings))]
    steps = [readings[i + 1] - readings[i] for i in range(len(readings) - 1)]
    kept = statistics.median(steps) / per_round if steps else float("nan")
    growing = sum(1 for d in steps if d > 0) / len(steps) if steps else 0.0
    b, se = stats.slope(x, readings)
    t = b / se if se > 0 else (float("inf") if b > 0 else 0.0)
    leak = bool(kept == kept and kept >= LEAK_MIN_BYTES_PER_OP and growing >= LEAK_MIN_GROWING)
    return {"leak": leak, "leak_bytes_per_op": round(kept, 3) if kept == kept else None,
            "leak_rounds": [[xi, int(yi)] for xi, yi in zip(x, readings)],
            "leak_calls_per_round": per_round,
            "leak_ols_bytes_per_op": round(b, 3) if b == b else None,
            "leak_ols_t": round(t, 2) if t not in (float("inf"), float("-inf")) and t == t else None,
            "leak_growing_share": round(growing, 3)}
