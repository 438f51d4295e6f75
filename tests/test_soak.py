"""Soak: a long run's bookkeeping, made to happen fast. What the coordinator, the host sampler
and the companions keep must not grow with the run's length, and the work of one interval or
one sample must not grow either (issue 11). The sampler is driven with a fake clock (real
/proc reads, a real burner process), the interval loop with snapshots built here (real shared
memory, real results files, the real companions); memory is measured with tracemalloc."""
from __future__ import annotations

import gc
import math
import os
import random
import sys
import time
import tracemalloc

import numpy as np
import pytest
from report_fixtures import summary as run_v1_summary

from stressx.engine import _core
from stressx.engine.coordinator import Coordinator, Shard
from stressx.engine.shm import Reading, ShardMemory, live_slots, new_run_id
from stressx.explore import adaptive
from stressx.explore.adaptive import MAX_DECISIONS, AdaptiveRamp
from stressx.hostload.burners import make_spec
from stressx.hostload.burners.group import BurnerGroup
from stressx.hostload import hostmetrics
from stressx.hostload.hostmetrics import MAX_PER_SECOND, SETTLE_S, BurnerWindows, HostSampler, read_host
from stressx.judge import thresholds as T
from stressx.judge import safety as safety_module
from stressx.judge.safety import MAX_EVENTS, MAX_NOTES, SafetyMonitor
from stressx.load import shapes
from stressx.load.config import resolve
from stressx.report.text import format_summary
from stressx.results.files import ResultsWriter, read_intervals
from stressx.results.hdr import HEADER_SLOTS, counts_index

SLOTS = _core.SLOTS
HIST = _core.HDR_PARAMS["slots"]


class FakeClock:
    """Monotonic ns that move only when told: a long run's timeline in a few seconds."""

    def __init__(self):
        self.ns = time.monotonic_ns()

    def __call__(self) -> int:
        return self.ns


def _soak(step, n: int, warm: int, timed: int) -> tuple[int, tuple, tuple]:
    """Run step(i) for i in range(n): (bytes allocated after the first `warm` + `timed` steps
    and still held at the end, the cost of a step early on, and at the end). The first `warm`
    steps fill what is bounded (caps, sliding windows); the next `timed` and the last `timed`
    are measured, untraced; the steps between run under tracemalloc, the first 100 of them
    before the baseline, so that what is held at the baseline and replaced later (a sliding
    window's rows) was allocated under it. A step's cost is (function calls, Python's and
    C's, per step: the same work gives the same count, whatever else the machine does; the
    lower quartile of its CPU time, which is noisy on a shared machine, for gross changes)."""
    calls, times = [0], np.zeros(n)     # before tracing: the measurement keeps nothing itself

    def count(frame, event, arg):
        if event in ("call", "c_call"):
            calls[0] += 1

    blocks = {}
    traced = range(warm + timed, n - timed)
    try:
        for i in range(n):
            if i == traced.start:
                gc.collect()
                tracemalloc.start()
            if i == traced.start + 100:
                gc.collect()
                base = tracemalloc.get_traced_memory()[0]
            if i == traced.stop:
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - base
                tracemalloc.stop()
            measured = i < traced.start and i >= warm or i >= traced.stop
            if measured:
                before = calls[0]
                sys.setprofile(count)
            t0 = time.thread_time()
            step(i)
            times[i] = time.thread_time() - t0
            if measured:
                sys.setprofile(None)
                block = "early" if i < traced.start else "late"
                blocks[block] = blocks.get(block, 0) + calls[0] - before
    finally:
        sys.setprofile(None)
        tracemalloc.stop()
    early = (blocks["early"] / timed, float(np.percentile(times[warm:warm + timed], 25)))
    late = (blocks["late"] / timed, float(np.percentile(times[n - timed:], 25)))
    return grown, early, late


# -- the host sampler --------------------------------------------------------------------------

def test_host_sampler_keeps_nothing_per_sample(tmp_path, monkeypatch):
    """2,300 samples (230 s at 100 ms) with a live CPU burner: memory flat over 900 of them,
    the same cost per sample at the end as early on, every sample in host.arrows, and the
    summary's figures those of the samples. (The burner's per-second readings, kept up to
    MAX_PER_SECOND windows, are let go at 60 here, before the memory is measured.)"""
    monkeypatch.setattr(hostmetrics, "MAX_PER_SECOND", 60)
    group = BurnerGroup([make_spec("cpu", 0.02, workers=1)])
    group.launch()
    assert group.failed is None
    clock = FakeClock()
    sampler = HostSampler(burners=group, clock=clock)
    n, warm = 2300, 700
    try:
        group.start(time.monotonic_ns())
        sampler.open(tmp_path)
        sampler.start_ns = clock.ns
        sampler._prev = sampler._read()

        def step(i):
            clock.ns += 100_000_000
            sampler._record(sampler._sample())

        grown, early, late = _soak(step, n, warm, timed=300)
        summary = sampler.finish()
    finally:
        group.stop()
        sampler.stop()
    # the old sampler kept every sample (~1.5 KB each) and every burner reading: ~1.3 MB here
    assert grown < 50_000, f"{grown} bytes kept over 900 samples"
    assert late[0] < 1.01 * early[0], (early, late)       # calls per sample
    assert late[1] < 3 * early[1], (early, late)          # CPU time per sample
    rows = read_host(tmp_path).to_pylist()
    assert len(rows) == summary["samples"] == n
    cpu = [r["cpu_pct"] for r in rows]
    assert summary["cpu_pct"] == {"mean": round(sum(cpu) / n, 3), "min": round(min(cpu), 3),
                                  "max": round(max(cpu), 3)}
    assert summary["net_sent_bytes"] == sum(r["net_sent_bytes"] for r in rows)
    assert summary["mem_available_min_bytes"] == min(r["mem_available_bytes"] for r in rows)
    rep = summary["burners"]["cpu"]
    assert rep["windows"] == n // 10 - 1           # 1 s windows between every 10th sample
    assert rep["requested_mean"] == pytest.approx(2.0)
    assert "per_second" not in rep                 # over 60 windows: stats only


def _batch_report(kind, start_ns, step, series):
    """The report as the sampler built it before issue 11, from the whole series at the end:
    the oracle for BurnerWindows."""
    edges = series[::step]
    windows = []
    for a, b in zip(edges, edges[1:]):
        inside = [p for p in series if a[0] < p[0] <= b[0]]
        req = [p[1] for p in inside]
        span = (b[0] - a[0]) / 1e9
        t_end = (b[0] - start_ns) / 1e9
        if kind == "cpu":
            if a[2] is None or b[2] is None:
                continue
            got, want = 100.0 * (b[2] - a[2]) / (b[0] - a[0]), 100.0 * sum(req) / len(req)
        elif kind == "mem":
            rss = [p[4] for p in inside if p[4] is not None]
            if not rss:
                continue
            got, want = sum(rss) / len(rss), sum(req) / len(req)
        else:
            got, want = (b[3] - a[3]) / span, sum(req) / len(req)
        steady = (t_end - span >= SETTLE_S - 1e-6) and max(req) - min(req) <= 1e-9 * max(1.0, abs(max(req)))
        windows.append((t_end, want, got, steady))
    report = {"kind": kind, "unit": {"cpu": "% of a core", "mem": "bytes", "io": "bytes/s"}[kind]}
    if not windows:
        return report
    steady = [w for w in windows if w[3]]
    err = (lambda w: w[2] - w[1]) if kind == "cpu" else \
        (lambda w: 100.0 * (w[2] - w[1]) / w[1] if w[1] else 0.0)
    use = steady or windows
    report.update({
        "requested_mean": round(sum(w[1] for w in use) / len(use), 3),
        "achieved_mean": round(sum(w[2] for w in use) / len(use), 3),
        "error_mean": round(sum(err(w) for w in use) / len(use), 3),
        "error_max_abs": round(max(abs(err(w)) for w in use), 3),
        "error_unit": "points" if kind == "cpu" else "% of requested",
        "windows": len(windows), "steady_windows": len(steady),
    })
    if kind == "mem":
        reached = next(((p[0] - start_ns) / 1e9 for p in series
                        if p[4] is not None and p[1] > 0 and p[4] >= 0.99 * p[1]), None)
        report["reached_99pct_s"] = round(reached, 3) if reached is not None else None
    if len(windows) <= MAX_PER_SECOND:
        report["per_second"] = [[round(w[0], 3), round(w[1], 3), round(w[2], 3)] for w in windows]
    return report


@pytest.mark.parametrize("kind", ["cpu", "mem", "io"])
@pytest.mark.parametrize("samples", [0, 7, 10, 11, 95, 6100])
def test_burner_windows_as_they_arrive_equal_the_whole_series(kind, samples):
    """Windows closed one sample at a time give the report the whole series gave: level steps,
    gaps in the readings (None), and over MAX_PER_SECOND windows."""
    rng = random.Random(samples * 7 + len(kind))
    start = 10**12
    series, cpu, work = [], 0, 0
    for i in range(samples):
        ns = start + 90_000_000 + i * 100_000_000 + rng.randrange(-3_000_000, 3_000_000)
        level = [0.25, 0.5, 0.0, 0.5][(i // 37) % 4] * (1e9 if kind == "mem" else 1.0)
        cpu += rng.randrange(0, 60_000_000)
        work += rng.randrange(0, 5_000_000)
        rss = None if rng.random() < 0.1 else level * rng.uniform(0.9, 1.01)
        series.append((ns, level, None if rng.random() < 0.05 else cpu, work, rss))
    w = BurnerWindows(kind, start, 10)
    for p in series:
        w.add(p)
    assert w.report() == _batch_report(kind, start, 10, series)
    assert w.per_second is None or len(w.per_second) <= MAX_PER_SECOND


# -- the interval loop -------------------------------------------------------------------------

def _hist_base(name: str) -> int:
    return SLOTS["histograms"] + _core.HISTOGRAMS.index(name) * HIST


def _advance(slots: np.ndarray, k: int, slow: bool) -> None:
    """One more second of a shard's counts into cumulative slots: 500 requests, latencies
    around 1 ms (around 80 ms when `slow`), a few errors, snapshot k."""
    n = 500
    for key in ("sent", "completed", "due", "connect_attempts"):
        slots[SLOTS[key]] += n
    slots[SLOTS["ok"]] += n - 5
    slots[SLOTS["errors"]] += 5
    slots[SLOTS["error_kinds"]] += 5
    slots[SLOTS["bytes_in"]] += n * 120
    slots[SLOTS["bytes_out"]] += n * 60
    slots[SLOTS["status"] + 200] += n - 5
    base_us = 80_000 if slow else 1_000
    for name, count in (("latency", n - 5), ("all_latency", n), ("send_lag", n)):
        b = _hist_base(name)
        for j, v in enumerate((base_us, base_us * 2, base_us * 3, base_us * 5, base_us * 9)):
            slots[b + HEADER_SLOTS + counts_index(v + k % 17)] += count // 5 + (count % 5 if j == 0 else 0)
        slots[b] += count
        slots[b + 1] = min(int(slots[b + 1]) or base_us, base_us)
        slots[b + 2] = max(int(slots[b + 2]), base_us * 9 + 16)
    slots[SLOTS["snap_index"]] = k


def test_interval_loop_keeps_nothing_per_interval(tmp_path, monkeypatch):
    """1,000 one-second intervals through Coordinator._interval with the companions that keep
    state between intervals (sliding-window thresholds, request safety limits that back off
    the rate, an adaptive ramp changing the rate at every step): memory flat over 450 of
    them, the same cost per interval at the end as early on, every row in the results files,
    what the companions report bounded, with counts of what they let go. (Their caps are
    lowered so they fill before the memory is measured.)"""
    monkeypatch.setattr(adaptive, "MAX_DECISIONS", 40)
    monkeypatch.setattr(safety_module, "MAX_EVENTS", 20)
    monkeypatch.setattr(shapes, "MAX_SEGMENTS", 16)
    cfg = resolve("http://127.0.0.1:9/", rate=500, duration=10**6, workers=1, progress=False)
    window = T.WindowThresholds([T.parse_threshold("p99<50ms"), T.parse_threshold("error_rate<5%")],
                                window_s=10)
    safety = SafetyMonitor(["p99>50ms:warn", "errors>0.5%:backoff"], cooldown_s=1.0)
    ramp = AdaptiveRamp(start=500, step=50, max_rate=5000, step_every=1.0,
                        slo=[T.parse_threshold("p99<50ms")], max_error_rate=0.05, cooldown=1.0)
    companions = [window, safety, ramp]
    coord = Coordinator(cfg, tmp_path, companions=companions)
    writer = ResultsWriter(tmp_path)
    mem = ShardMemory.create(new_run_id(), 0, 1)
    n, warm = 1000, 150
    try:
        for c in companions:
            c.control = coord.control
            c.prepare(cfg, tmp_path)
        start = coord.start_ns = time.monotonic_ns()
        writer.start_latency_log(time.time())
        shard = Shard(0, mem, None)
        shard.last = Reading.zero(1)
        coord.shards = [shard]
        coord._cut_k, coord._cut_ns = 0, start
        slots = np.zeros(live_slots(1), dtype=np.int64)

        def step(i):
            k = i + 1
            _advance(slots, k, slow=k % 9 == 0)      # a slow second now and then: back-offs
            shard.pending[k] = Reading(slots.copy())
            # live rate changes are timed on the clock: k s after the start, for them too
            coord.start_ns = coord.control.start_ns = time.monotonic_ns() - k * 1_000_000_000
            coord._interval(writer, start, k)

        grown, early, late = _soak(step, n, warm, timed=150)
    finally:
        writer.close()
        mem.close()
    # before issue 11: every adaptive decision and every rate change's segment was kept
    # (~200 KB over these 450 intervals)
    assert grown < 30_000, f"{grown} bytes kept over 450 intervals"
    assert late[0] < 1.01 * early[0], (early, late)       # calls per interval
    assert late[1] < 3 * early[1], (early, late)          # CPU time per interval
    assert read_intervals(tmp_path / "intervals.arrows").num_rows == n
    assert len(coord.control.schedule.shape.segments) <= 16 + 60 // 1 + 1   # the cap, and the last minute's changes
    assert len(window.rows) <= 11
    a = ramp.finish()
    assert len(a["decisions"]) == 40 and a["decisions_dropped"] == n - 40
    assert a["decisions"][-1]["t_s"] == pytest.approx(n, abs=0.01)   # the latest are kept
    s = safety.finish()
    assert len(s["events"]) == 20 and s["events_dropped"] > 0
    assert s["backoffs"] >= n // 9 - 1
    assert window.finish()["evaluations"] == n - 9


# -- what the companions report when they let things go ---------------------------------------

def test_adaptive_text_report_says_how_many_decisions_it_left_out():
    ramp = AdaptiveRamp(start=10, step=1, max_rate=20, step_every=1.0, slo=[], max_error_rate=0.5)

    class Steer:
        def change_rate(self, rate, source=None):
            pass

    ramp.control = Steer()
    row = {"completed": 10, "errors": 0, "sent": 10, "send_lag_ms_p99": 0.1}
    for t in range(1, 1001):
        ramp.on_interval(float(t), row)
    a = ramp.finish()
    assert a["decisions_dropped"] == 1000 - MAX_DECISIONS
    assert [d["t_s"] for d in a["decisions"][:2]] == [1.0, 2.0]
    assert a["decisions"][-1]["t_s"] == 1000.0
    text = format_summary(dict(run_v1_summary(), adaptive=a))
    assert "1000 decisions" in text
    lines = text.splitlines()
    gap = lines.index(f"    ... {1000 - MAX_DECISIONS} decisions not kept ...")
    assert lines[gap - 1].strip().startswith(f"{MAX_DECISIONS - MAX_DECISIONS // 2:.1f}s")
    assert lines[gap + 1].strip().startswith(f"{1000 - MAX_DECISIONS // 2 + 1:.1f}s")


def test_safety_notes_are_bounded():
    """A backoff hook that fails on every backoff leaves MAX_NOTES notes and a count."""
    safety = SafetyMonitor(["errors>1%:backoff"], cooldown_s=0.0)

    def broken(factor, reason):
        raise RuntimeError(f"broken at {reason}")

    safety.add_backoff_hook(broken)
    for t in range(500):
        safety.on_interval(float(t), {"completed": 100, "errors": 50})
    s = safety.finish()
    assert safety.backoffs == 500
    assert len(s["events"]) == MAX_EVENTS and s["events_dropped"] == 500 - MAX_EVENTS
    assert len(s["notes"]) == MAX_NOTES + 1
    assert s["notes"][-1] == f"{500 - MAX_NOTES} more note(s) not kept"


# -- live rate changes -------------------------------------------------------------------------

def test_a_shape_changed_all_day_stays_small_and_keeps_its_integral():
    """A rate change every 10 s for a day: at most MAX_SEGMENTS (give or take the last
    minute's), the sends due up to any later instant unchanged, the last minute exact."""
    shape = shapes.Shape("steady", (shapes.Segment("const", math.inf, 100.0),), {})
    due, rate = 0.0, 100.0                     # the integral, kept by hand
    for i in range(1, 8641):
        t = i * 10.0
        due += rate * 10.0
        rate = 100.0 + (i % 7) * 25.0
        shape = shape.with_rate_from(t, rate)
        assert len(shape.segments) <= shapes.MAX_SEGMENTS + 1
        if i % 1000 == 0:
            assert shape.integral(t) == pytest.approx(due, rel=1e-12)
    t = 86_400.0
    assert shape.integral(t + 5) == pytest.approx(due + 5 * rate, rel=1e-12)
    assert shape.mean_rate(t - 9, t - 1) == pytest.approx(100.0 + (8639 % 7) * 25.0)
    assert shape.rate_at(t - 5) == 100.0 + (8639 % 7) * 25.0


# -- the allocator -----------------------------------------------------------------------------

_HEAP_PROBE = """
import sys
import numpy as np
from stressx.system import steady_heap
if sys.argv[1] == "steady":
    assert steady_heap()
def in_heap(addr):
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False
big = np.ones(1_300_000 // 8)     # a snapshot copy's size: mapped, then freed
del big
# histogram-sized blocks, held together: a free chunk already in the heap may take one or
# two whatever the threshold, the rest show where the allocator puts new large blocks
hs = [np.ones(188_416 // 8) for _ in range(20)]
print(sum(in_heap(h.ctypes.data) for h in hs))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, /proc/self/maps")
def test_steady_heap_keeps_large_blocks_out_of_the_heap():
    """glibc moves its mmap threshold up to the largest block freed, so after one 1.3 MB
    snapshot copy every histogram-sized block lands in the heap (and fragments it over a
    long run); with steady_heap() they stay mapped blocks of their own."""
    import subprocess
    out = {mode: subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True,
                                text=True, timeout=60) for mode in ("default", "steady")}
    assert out["steady"].returncode == 0, out["steady"].stderr
    assert int(out["steady"].stdout) <= 2
    if int(out["default"].stdout) < 18:
        pytest.skip("this C library does not move its mmap threshold (not glibc)")


def _rss_shmem() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssShmem:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status")
def test_a_touched_segment_is_resident_whole_from_the_start():
    """A shard touches its segment when it attaches: its resident size then holds the whole
    segment, instead of creeping up through a long run as latencies first reach histogram
    buckets (pages) not used before."""
    created = ShardMemory.create(new_run_id(), 0, 2)
    shard = ShardMemory.attach(created.path)
    try:
        before = _rss_shmem()
        pages = shard.touch()
        grown = _rss_shmem() - before
        page = os.sysconf("SC_PAGE_SIZE")
        assert pages == -(-shard.slots.nbytes // page)
        assert grown >= 0.95 * shard.slots.nbytes, (grown, shard.slots.nbytes)
        assert np.array_equal(shard.slots, created.slots)    # the same memory, as it was
    finally:
        shard.close()
        created.close()
