"""stressx.benchmark(): time a function (or coroutine function), optionally with concurrent
callers, memory per call and a leak check, into a BenchmarkResult."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import ConfigError
from . import memory as _memory
from . import stats
from .measure import (DEFAULT_MIN_TIME_S, Options, ProcessRun, Target, free_threaded_build,
                      gil_enabled, measure_process)
from .result import BenchmarkResult

#: Timed samples per caller when `repeat` is not given.
DEFAULT_REPEAT = 5


def benchmark(fn, *args, warmup=None, min_time=None, repeat=None, processes=1, threads=1,
              memory=False, leak_check=False, sequential=False, **kwargs) -> BenchmarkResult:
    """Time `fn(*args, **kwargs)` and return a BenchmarkResult (seconds per call).

    warmup      warm-up samples dropped after calibration (default: 10% of min_time, at most
                0.25 s, at least one sample)
    min_time    seconds of timed samples per caller (default 1.0; 0 when only `repeat` is given)
    repeat      at least this many timed samples per caller (default 5)
    processes   worker processes: run at once as N concurrent callers (throughput and
                per-call latency under contention), or one after another with
                sequential=True (pyperf's way of averaging out per-process noise)
    threads     concurrent calling threads (in each process); on a build with the GIL,
                CPU-bound callers take turns
    memory      also measure tracemalloc bytes per call, the peak, and RSS growth
    leak_check  also judge whether calls keep memory: `leak`, `leak_bytes_per_op`

    A coroutine function is awaited in the timed loop on uvloop. The keyword names above are
    taken by benchmark(); pass a function needing them through functools.partial."""
    return run(Target(fn, args, kwargs), warmup=warmup, min_time=min_time, repeat=repeat,
               processes=processes, threads=threads, memory=memory, leak_check=leak_check,
               sequential=sequential)


def _count(value, name: str, low: int, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(name, f"expected a whole number >= {low}, got {value!r}")
    return int(value)


def options(warmup=None, min_time=None, repeat=None, threads=1, rss=False) -> Options:
    """Validated sampling options (ConfigError naming the argument otherwise)."""
    warmup = _count(warmup, "warmup", 0)
    repeat = _count(repeat, "repeat", 1)
    threads = _count(threads, "threads", 1, allow_none=False)
    if min_time is None:
        min_time = 0.0 if repeat is not None else DEFAULT_MIN_TIME_S
    elif (isinstance(min_time, bool) or not isinstance(min_time, numbers.Real)
          or not math.isfinite(min_time) or min_time < 0):
        raise ConfigError("min_time", f"expected seconds >= 0, got {min_time!r}")
    return Options(warmup=warmup, min_time=float(min_time),
                   repeat=repeat if repeat is not None else DEFAULT_REPEAT,
                   threads=threads, rss=bool(rss))


def run(target: Target, *, warmup=None, min_time=None, repeat=None, processes=1, threads=1,
        memory=False, leak_check=False, sequential=False, timer=None, sample_ns=None,
        overhead_ns=None) -> BenchmarkResult:
    """benchmark() on a Target; `timer`, `sample_ns` and `overhead_ns` replace the clock, the
    least sample duration and the measured empty-call cost (the tests' known inputs)."""
    opts = options(warmup, min_time, repeat, threads, rss=memory)
    opts.sample_ns, opts.overhead_ns = sample_ns, overhead_ns
    processes = _count(processes, "processes", 1, allow_none=False)
    if processes == 1:
        kw = {"timer": timer} if timer is not None else {}
        runs, method = [measure_process(target, opts, **kw)], "inline"
    else:
        if timer is not None:
            raise ConfigError("timer", "a replacement clock is for one process only")
        from .workers import run_workers
        runs, method = run_workers(target, opts, processes, bool(sequential))
    result = assemble(target.name, runs, opts, processes=processes,
                      sequential=bool(sequential) and processes > 1, is_async=runs[0].is_async,
                      start_method=method)
    mean_s = result.mean if result.mean == result.mean and result.mean > 0 else 1e-6
    if memory:
        n = int(min(2000, max(20, min(0.2, max(0.02, 0.2 * opts.min_time)) / mean_s)))
        m = _memory.per_call(target, n)
        result.memory = True
        result.bytes_per_op, result.peak_bytes = m["bytes_per_op"], m["peak_bytes"]
        r0 = runs[0]
        if r0.rss_before is not None and r0.rss_after is not None:
            result.rss_growth = r0.rss_after - r0.rss_before
    if leak_check:
        per_round = int(min(5000, max(100, min(0.05, max(0.01, 0.05 * opts.min_time)) / mean_s)))
        v = _memory.leak_check(target, per_round)
        result.leak_check = True
        result.leak, result.leak_bytes_per_op = v["leak"], v["leak_bytes_per_op"]
        result.leak_detail = {k: v[k] for k in v if k not in ("leak", "leak_bytes_per_op")}
    return result


def assemble(name: str, runs: list[ProcessRun], opts: Options, *, processes: int = 1,
             sequential: bool = False, is_async: bool = False,
             start_method: str = "inline") -> BenchmarkResult:
    """The figures of the processes' samples: per call = sample / loops - overhead."""
    per_call, raw, loops, proc, caller = [], [], [], [], []
    rates, windows, calls = [], [], 0
    for pi, r in enumerate(runs):
        for ci, c in enumerate(r.callers):
            x = np.asarray(c.raw_ns, dtype=np.float64)
            per_call.append(x / r.loops - r.overhead_ns)
            raw.append(np.asarray(c.raw_ns, dtype=np.int64))
            loops.append(np.full(x.size, r.loops, dtype=np.int64))
            proc.append(np.full(x.size, pi, dtype=np.int16))
            caller.append(np.full(x.size, ci, dtype=np.int16))
            window = max(c.end_ns - c.start_ns, 1)
            rates.append(x.size * r.loops / (window / 1e9))
            windows.append(window / 1e9)
            calls += x.size * r.loops
    samples = np.concatenate(per_call) if per_call else np.empty(0)
    s = stats.summarize(samples)
    concurrent = opts.threads > 1 or (processes > 1 and not sequential)
    mean_ns = max(s["mean"], 0.0) if samples.size else math.nan
    if concurrent:
        # callers at once add up; processes run one after another (threads within each) are
        # averaged
        ops = float(sum(rates) / (len(runs) if sequential else 1))
    else:
        ops = 1e9 / mean_ns if mean_ns and mean_ns > 0 else math.inf
    first = runs[0]
    return BenchmarkResult(
        name=name, mean=mean_ns / 1e9,
        stdev=s["stdev"] / 1e9, min=max(s["min"], 0.0) / 1e9, max=s["max"] / 1e9,
        p50=s["p50"] / 1e9, p90=s["p90"] / 1e9, p95=s["p95"] / 1e9, p99=s["p99"] / 1e9,
        p999=s["p999"] / 1e9, ops_per_s=ops, iterations=int(calls), loops=int(first.loops),
        overhead=float(np.mean([r.overhead_ns for r in runs])) / 1e9, samples=int(samples.size),
        processes=processes, threads=opts.threads, sequential=sequential, is_async=is_async,
        warmup=first.warmup_samples, min_time=opts.min_time, elapsed=max(windows, default=0.0),
        gil_enabled=first.gil_enabled if runs else gil_enabled(),
        free_threaded=free_threaded_build(), clock=dict(first.clock), start_method=start_method,
        samples_ns=samples, histogram=s["histogram"],
        sample_meta={"raw_ns": np.concatenate(raw) if raw else np.empty(0, np.int64),
                     "loops": np.concatenate(loops) if loops else np.empty(0, np.int64),
                     "process": np.concatenate(proc) if proc else np.empty(0, np.int16),
                     "caller": np.concatenate(caller) if caller else np.empty(0, np.int16)})
