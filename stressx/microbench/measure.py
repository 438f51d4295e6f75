"""Timing one function honestly, in one process: pyperf's method, kept small.

A *sample* times `loops` back-to-back calls with one pair of clock reads, so the clock's
resolution and its own cost vanish: `loops` is calibrated (doubling from 1) until a sample lasts
at least SAMPLE_FACTOR times the larger of the two (and MIN_SAMPLE_NS). The calling loop's own
cost per call is measured the same way on an empty function of the same kind (sync or async,
with or without arguments) and subtracted. The first calls and the calibration samples warm the
function up (caches, the interpreter's specialisation, the CPU's clock) and are dropped; then
warm-up samples at the final `loops` (time-based by default), then the timed samples until
`min_time` has passed and at least `repeat` samples are in.

Concurrent callers (threads here; processes in workers.py) are started together after their
warm-up (a barrier) and each records its own samples and time window, which gives throughput
(calls / window, summed over callers) beside per-call latency.

Async functions are awaited in the timed loop on a uvloop event loop (one per calling thread).
A plain function that returns an awaitable is detected on its first call and awaited likewise.

Only the standard library and time are used while timing; numpy comes in afterwards.
"""
from __future__ import annotations

import asyncio
import inspect
import keyword
import os
import statistics
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from itertools import repeat as _repeat

#: A sample must last this many times the clock's resolution and its read cost ...
SAMPLE_FACTOR = 1000
#: ... and at least this long (ns).
MIN_SAMPLE_NS = 20_000
#: Empty-loop samples taken before and after the timed samples (the median is subtracted).
OVERHEAD_SAMPLES = 11
DEFAULT_MIN_TIME_S = 1.0
#: Auto warm-up: this share of min_time, capped at WARMUP_CAP_S (and at least one sample).
WARMUP_SHARE = 0.1
WARMUP_CAP_S = 0.25
MAX_LOOPS = 1 << 40


class BenchmarkError(RuntimeError):
    """The function under test raised, or a worker process failed."""


def gil_enabled() -> bool:
    """False on a free-threaded build running without the GIL (3.13t+)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return bool(probe()) if probe is not None else True


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def empty_like(args: tuple, kwargs: dict, is_async: bool):
    """An empty function taking the same call as the target: as many positional parameters,
    and the keyword arguments by name (or **kwargs when a name is not an identifier), so the
    empty call binds its arguments the way a Python function under test does. (A C function
    binds its arguments more cheaply than any Python function: what remains of a very cheap
    builtin after the subtraction can be near zero.)"""
    params = [f"_a{i}" for i in range(len(args))]
    names = list(kwargs)
    if names and all(n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_a")
                     for n in names):
        params += ["*"] + [f"{n}=None" for n in names]
    elif names:
        params.append("**_kw")
    source = (f"{'async ' if is_async else ''}def empty({', '.join(params)}):\n"
              f"    return None\n")
    space: dict = {}
    exec(compile(source, "<stressx empty call>", "exec"), space)   # noqa: S102 - names checked
    return space["empty"]


def _sync_loop(fn, args, kwargs):
    """A sample function: `loops` calls between two clock reads, specialised on the call form
    so the loop costs the same for the function and for the empty one."""
    if kwargs:
        def run(loops, timer):
            it = _repeat(None, loops)
            t0 = timer()
            for _ in it:
                fn(*args, **kwargs)
            return timer() - t0
    elif args:
        def run(loops, timer):
            it = _repeat(None, loops)
            t0 = timer()
            for _ in it:
                fn(*args)
            return timer() - t0
    else:
        def run(loops, timer):
            it = _repeat(None, loops)
            t0 = timer()
            for _ in it:
                fn()
            return timer() - t0
    return run


def _async_loop(fn, args, kwargs):
    if kwargs:
        async def run(loops, timer):
            it = _repeat(None, loops)
            t0 = timer()
            for _ in it:
                await fn(*args, **kwargs)
            return timer() - t0
    elif args:
        async def run(loops, timer):
            it = _repeat(None, loops)
            t0 = timer()
            for _ in it:
                await fn(*args)
            return timer() - t0
    else:
        async def run(loops, timer):
            it = _repeat(None, loops)
            t0 = timer()
            for _ in it:
                await fn()
            return timer() - t0
    return run


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for odd platforms
        return asyncio.new_event_loop()


def _awaiting(fn):
    """A coroutine function awaiting what the plain callable `fn` returns."""
    async def call(*args, **kwargs):
        return await fn(*args, **kwargs)
    call.__qualname__ = getattr(fn, "__qualname__", "call")
    return call


class Target:
    """The function under test and its arguments, and where a worker process can find it.

    `spec` is ("file", path, module_name, qualname) for functions loaded from a file by
    `stressx bench` (a spawned worker loads the file again); None otherwise (pickled by
    reference when that works, else the worker is forked)."""

    def __init__(self, fn, args=(), kwargs=None, name: str | None = None, spec=None):
        if not callable(fn):
            raise TypeError(f"benchmark: {fn!r} is not callable")
        self.fn = fn
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.name = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
        self.spec = spec
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None))
        self._probed = self.is_async

    def probe(self) -> None:
        """The first (cold) call; a plain callable returning an awaitable becomes async."""
        if self._probed:
            return
        self._probed = True
        result = self.fn(*self.args, **self.kwargs)
        if inspect.isawaitable(result):
            loop = new_event_loop()
            try:
                async def finish():
                    return await result
                loop.run_until_complete(finish())
            finally:
                loop.close()
            self.fn = _awaiting(self.fn)
            self.is_async = True

    def sampler(self) -> "Sampler":
        return Sampler(self)


class Sampler:
    """Timed loops over the target and over the matching empty function, for one thread
    (async targets get their own event loop, closed by close())."""

    def __init__(self, target: Target):
        empty = empty_like(target.args, target.kwargs, target.is_async)
        self.loop = None
        if target.is_async:
            self.loop = new_event_loop()
            run_fn = _async_loop(target.fn, target.args, target.kwargs)
            run_empty = _async_loop(empty, target.args, target.kwargs)
            ruc = self.loop.run_until_complete
            self.sample = lambda loops, timer: ruc(run_fn(loops, timer))
            self.sample_empty = lambda loops, timer: ruc(run_empty(loops, timer))
        else:
            self.sample = _sync_loop(target.fn, target.args, target.kwargs)
            self.sample_empty = _sync_loop(empty, target.args, target.kwargs)

    def run(self, coro):
        """Run a coroutine on this sampler's loop (async targets only)."""
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
            self.loop = None


@dataclass
class ClockInfo:
    """What the clock costs and resolves, measured here (ns)."""
    name: str
    resolution_ns: float          # as the clock declares it (at least 1 ns)
    min_step_ns: float            # the smallest step seen between two reads that differ
    read_ns: float                # the median time between two back-to-back reads
    sample_ns: int                # the least duration of a sample this implies

    def to_dict(self) -> dict:
        return {"clock": self.name, "resolution_ns": self.resolution_ns,
                "min_step_ns": self.min_step_ns, "read_ns": round(self.read_ns, 2),
                "min_sample_ns": self.sample_ns}


def clock_info(timer=time.perf_counter_ns, reads: int = 2001) -> ClockInfo:
    pairs, steps = [], []
    for _ in _repeat(None, reads):
        a = timer()
        b = timer()
        pairs.append(b - a)
    last = timer()
    for _ in _repeat(None, 200):
        now, spins = timer(), 0
        while now == last and spins < 100_000:    # a clock that never moves (tests' fakes)
            now, spins = timer(), spins + 1
        if now == last:
            break
        steps.append(now - last)
        last = now
    declared = 1e9 * time.get_clock_info("perf_counter").resolution if timer is time.perf_counter_ns else 1
    resolution = max(declared, 1.0)
    read = float(statistics.median(pairs))
    # the smallest step bounds the resolution from above; it is no smaller than a read
    step = float(min(steps)) if steps else resolution
    need = int(max(SAMPLE_FACTOR * max(resolution, step), SAMPLE_FACTOR * read, MIN_SAMPLE_NS))
    name = getattr(timer, "__name__", "timer")
    return ClockInfo(name, float(resolution), step, read, need)


@dataclass
class Options:
    """How to sample in one process (see benchmark() for the meaning of each)."""
    warmup: int | None = None          # warm-up samples; None: time-based
    min_time: float = DEFAULT_MIN_TIME_S
    repeat: int = 1                    # at least this many timed samples per caller
    threads: int = 1
    loops: int | None = None           # fixed loops (workers after the first, sequential)
    sample_ns: int | None = None       # override of the least sample duration (tests)
    overhead_ns: float | None = None   # override of the empty-call cost (tests' fake clocks)
    rss: bool = False                  # record RSS before and after (memory=True)


@dataclass
class CallerSamples:
    """One caller's timed samples: elapsed ns for `loops` calls each, and its window."""
    raw_ns: list
    start_ns: int
    end_ns: int


@dataclass
class ProcessRun:
    """Everything one process measured."""
    loops: int
    overhead_ns: float                 # empty-call cost per call, subtracted
    callers: list
    warmup_samples: int
    calibration: list                  # (loops, ns) samples of the calibration
    clock: dict
    pid: int = field(default_factory=os.getpid)
    rss_before: int | None = None
    rss_after: int | None = None
    gil_enabled: bool = field(default_factory=gil_enabled)
    is_async: bool = False             # awaited (a coroutine function, or returned awaitables)


def _rss() -> int | None:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except Exception:  # pragma: no cover - psutil is a dependency
        return None


def calibrate(sample, timer, need_ns: int, start: int = 1, wall_cap_s: float = 0.5) -> tuple[int, list]:
    """The least power-of-two loops (from `start`) whose sample lasts need_ns or more (by
    `timer`), twice in a row (one sample an interrupt stretched does not end the doubling
    early); doubling also stops once a sample takes wall_cap_s of real time (a clock that does
    not see the calls, such as the tests' fakes around an empty function)."""
    loops, history = max(1, start), []
    while True:
        w0 = time.perf_counter()
        ns = sample(loops, timer)
        history.append((loops, ns))
        if loops >= MAX_LOOPS or time.perf_counter() - w0 >= wall_cap_s:
            return loops, history
        if ns >= need_ns:
            again = sample(loops, timer)
            history.append((loops, again))
            if again >= need_ns:
                return loops, history
        loops *= 2


def overhead_per_call(sampler: Sampler, timer, need_ns: int, n: int = OVERHEAD_SAMPLES) -> list[float]:
    """Per-call cost of the timed loop around an empty function: n samples (ns per call)."""
    loops, _ = calibrate(sampler.sample_empty, timer, need_ns)
    return [sampler.sample_empty(loops, timer) / loops for _ in range(n)]


def run_samples(sample, loops: int, timer, min_time_ns: int, repeat: int) -> CallerSamples:
    raw = []
    append = raw.append
    start = timer()
    deadline = start + min_time_ns
    while True:
        append(sample(loops, timer))
        if len(raw) >= repeat and timer() >= deadline:
            break
    return CallerSamples(raw, start, timer())


def measure_process(target: Target, opts: Options, timer=time.perf_counter_ns, go=None) -> ProcessRun:
    """Calibrate, warm up and time `target` in this process, with opts.threads callers.

    `go(loops) -> loops`, when given, is called after the warm-up and before the timed samples
    (a worker's rendezvous with its siblings); it may raise the loops to use."""
    rss_before = _rss() if opts.rss else None
    clock = clock_info(timer)
    need = opts.sample_ns if opts.sample_ns is not None else clock.sample_ns
    try:
        target.probe()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise BenchmarkError(f"{target.name} raised on its first call: {exc!r}") from exc
    sampler = target.sampler()
    try:
        if opts.loops:
            loops, history = opts.loops, []
            sampler.sample(loops, timer)
        else:
            loops, history = calibrate(sampler.sample, timer, need)
        fixed = opts.overhead_ns
        overheads = [fixed] if fixed is not None else overhead_per_call(sampler, timer, need)
        warm = 0
        warm_until = timer() + int(min(WARMUP_SHARE * opts.min_time, WARMUP_CAP_S) * 1e9)
        while True:
            if opts.warmup is not None:
                if warm >= opts.warmup:
                    break
            elif warm >= 1 and timer() >= warm_until:
                break
            sampler.sample(loops, timer)
            warm += 1
        if go is not None:
            new = go(loops)
            if new != loops:
                loops = new
                sampler.sample(loops, timer)
        min_time_ns = int(opts.min_time * 1e9)
        if opts.threads <= 1:
            callers = [run_samples(sampler.sample, loops, timer, min_time_ns, opts.repeat)]
        else:
            callers = _threaded(target, opts.threads, loops, timer, min_time_ns, opts.repeat)
        if fixed is None:
            overheads += overhead_per_call(sampler, timer, need)
    except BenchmarkError:
        raise
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise BenchmarkError(f"{target.name} raised: {exc!r}") from exc
    finally:
        sampler.close()
    return ProcessRun(loops=loops, overhead_ns=statistics.median(overheads), callers=callers,
                      warmup_samples=warm, calibration=history, clock=clock.to_dict(),
                      rss_before=rss_before, rss_after=_rss() if opts.rss else None,
                      is_async=target.is_async)


def _threaded(target: Target, n: int, loops: int, timer, min_time_ns: int, repeat: int) -> list:
    """n threads, each with its own sampler (and event loop), released together."""
    barrier = threading.Barrier(n)
    out: list = [None] * n
    errors: list = []

    def caller(i: int) -> None:
        sampler = None
        try:
            sampler = target.sampler()
            sampler.sample(loops, timer)                 # this thread's own warm-up sample
            barrier.wait()
            out[i] = run_samples(sampler.sample, loops, timer, min_time_ns, repeat)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:                     # noqa: BLE001 - re-raised below
            errors.append(exc)
            barrier.abort()
        finally:
            if sampler is not None:
                sampler.close()

    threads = [threading.Thread(target=caller, args=(i,), name=f"stressx-bench-{i}", daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out
