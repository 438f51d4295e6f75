"""stressx.benchmark(): every result field against known inputs (a fake clock the function
advances by known amounts), real functions of known cost within generous-but-falsifiable
bounds, async and threaded callers, worker processes, memory per call, the leak verdict both
ways, thresholds, the results directory and the statistical comparison."""
from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import time

import numpy as np
import pytest

import stressx
from stressx.errors import ConfigError
from stressx.microbench import BenchmarkError, BenchmarkResult, benchmark
from stressx.microbench import compare as bcompare
from stressx.microbench import files, gates, memory, stats
from stressx.microbench.api import run
from stressx.microbench.measure import Target

pc = time.perf_counter_ns


class FakeClock:
    """A clock that only the function under test moves."""

    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def costed(clock, costs, first=()):
    """A function advancing `clock` by `first` costs, then by `costs` (cycled)."""
    seq = list(first)
    state = {"i": 0}

    def fn():
        i = state["i"]
        state["i"] = i + 1
        clock.t += seq[i] if i < len(seq) else costs[(i - len(seq)) % len(costs)]
    return fn


def busy(ns):
    def spin():
        end = pc() + ns
        while pc() < end:
            pass
    spin.__qualname__ = f"busy_{ns}ns"
    return spin


# -- known inputs -------------------------------------------------------------------------------

def test_every_time_field_from_known_samples():
    clock = FakeClock()
    values = [1000 * k for k in range(1, 1001)]          # 1 us .. 1 ms per call
    rng = np.random.default_rng(1)
    shuffled = [int(v) for v in rng.permutation(values)]
    # three calls before the timed samples: the probe (cold call) and the calibration sample
    # with its confirmation
    fn = costed(clock, shuffled, first=[7_000_000] * 3)
    r = run(Target(fn, name="known"), timer=clock, sample_ns=1, overhead_ns=100.0,
            warmup=0, repeat=1000, min_time=0)
    per_call = np.asarray(values, dtype=float) - 100.0
    assert r.name == "known"
    assert r.loops == 1 and r.samples == 1000 and r.iterations == 1000
    assert r.overhead == pytest.approx(100e-9)
    assert r.mean == pytest.approx(per_call.mean() / 1e9, rel=1e-12)
    assert r.stdev == pytest.approx(per_call.std(ddof=1) / 1e9, rel=1e-12)
    assert r.min == pytest.approx(900e-9) and r.max == pytest.approx(999_900e-9)
    # HDR percentiles: the value at that rank, to within the histogram's 0.1 %
    for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        exact = per_call[int(math.ceil(p / 100 * 1000)) - 1] / 1e9
        assert getattr(r, name) == pytest.approx(exact, rel=1e-3), name
    assert r.ops_per_s == pytest.approx(1 / r.mean)
    assert r.max < 7e-3                                   # probe and calibration dropped
    assert not r.concurrent and r.start_method == "inline"


def test_loops_calibrated_to_the_least_sample_and_overhead_subtracted():
    clock = FakeClock()
    fn = costed(clock, [1000])
    r = run(Target(fn), timer=clock, sample_ns=10_000, overhead_ns=40.0, warmup=2, repeat=50,
            min_time=0)
    assert r.loops == 16                       # 1, 2, 4, 8 calls last < 10 us; 16 last 16 us
    assert r.samples == 50 and r.iterations == 800
    assert r.mean == pytest.approx(960e-9) and r.p50 == pytest.approx(960e-9, rel=1e-3)
    assert r.stdev == pytest.approx(0.0) and r.warmup == 2


def test_warmup_samples_are_dropped():
    clock = FakeClock()
    # probe, calibration and its confirmation, then 3 slow warm-up samples, then fast timed ones
    fn = costed(clock, [2000], first=[1_000_000] * 6)
    r = run(Target(fn), timer=clock, sample_ns=1, overhead_ns=0.0, warmup=3, repeat=20, min_time=0)
    assert r.warmup == 3
    assert r.max == pytest.approx(2e-6) and r.mean == pytest.approx(2e-6)


def test_min_time_sets_the_number_of_samples():
    clock = FakeClock()
    fn = costed(clock, [10_000])                        # 10 us per call
    r = run(Target(fn), timer=clock, sample_ns=1, overhead_ns=0.0, warmup=0, repeat=1,
            min_time=0.01)                               # 10 ms of samples
    assert 999 <= r.samples <= 1001
    assert r.elapsed == pytest.approx(0.01, rel=0.01)


def test_async_known_cost():
    clock = FakeClock()

    async def fn():
        clock.t += 3000
    r = run(Target(fn), timer=clock, sample_ns=1, overhead_ns=0.0, warmup=0, repeat=30, min_time=0)
    assert r.is_async and r.mean == pytest.approx(3e-6) and r.samples == 30


def test_to_dict_and_str():
    clock = FakeClock()
    r = run(Target(costed(clock, [1500]), name="f"), timer=clock, sample_ns=1, overhead_ns=0.0,
            warmup=0, repeat=10, min_time=0)
    d = r.to_dict()
    json.dumps(d)
    for key in ("mean", "stdev", "min", "max", "p50", "p90", "p95", "p99", "p999", "ops_per_s",
                "iterations", "loops", "overhead"):
        assert key in d
    assert d["unit"] == "seconds" and d["mean"] == pytest.approx(1.5e-6)
    assert "samples_ns" not in d and "histogram" not in d
    text = str(r)
    assert text.startswith("f (sync, 1 caller)") and "1.5 us" in text and "ops/s" in text
    assert BenchmarkResult.from_dict(d).mean == r.mean


# -- real functions of known cost ----------------------------------------------------------------

def test_busy_wait_of_known_cost():
    r = benchmark(busy(100_000), min_time=0.15)
    # the least power of two of calls whose sample lasts the clock's minimum
    need = r.clock["min_sample_ns"] / 1e9
    assert r.loops * 100e-6 >= need and (r.loops == 1 or r.loops / 2 * 100e-6 < need * 1.05)
    assert 99e-6 <= r.p50 <= 115e-6, str(r)
    assert r.min >= 99e-6
    assert 0 < r.overhead < 2e-6
    assert r.clock["resolution_ns"] >= 1 and r.clock["min_sample_ns"] >= 20_000


def test_cheap_function_takes_many_loops_per_sample():
    r = benchmark(busy(1000), min_time=0.1)
    assert r.loops >= 8                        # a sample dwarfs the clock's read cost
    assert 0.9e-6 <= r.p50 <= 1.6e-6, str(r)


def test_arguments_and_keyword_arguments_are_passed():
    seen = []

    def fn(a, b, *, c):
        seen.append((a, b, c))
    benchmark(fn, 1, 2, c=3, repeat=2)
    assert set(seen) == {(1, 2, 3)}


def test_async_function_is_awaited_on_uvloop():
    loops = set()

    async def fn():
        loops.add(type(asyncio.get_running_loop()).__module__.split(".")[0])
        end = pc() + 50_000
        while pc() < end:
            pass
    r = benchmark(fn, min_time=0.1)
    assert r.is_async and loops == {"uvloop"}
    assert 49e-6 <= r.p50 <= 70e-6, str(r)


def test_function_returning_an_awaitable_is_awaited():
    awaited = []

    async def inner():
        awaited.append(1)

    r = benchmark(lambda: inner(), repeat=3)
    assert r.is_async and len(awaited) > 3


def test_threads_add_throughput_for_a_function_that_waits():
    single = benchmark(time.sleep, 0.002, min_time=0.2)
    four = benchmark(time.sleep, 0.002, min_time=0.2, threads=4)
    assert four.threads == 4 and four.concurrent and "4 threads" in str(four)
    assert 2e-3 <= four.p50 <= 6e-3
    # four callers waiting at once complete well over twice the calls of one
    assert four.ops_per_s > 2.5 * single.ops_per_s, (single.ops_per_s, four.ops_per_s)


def test_threads_on_a_cpu_bound_function_report_the_gil():
    r = benchmark(busy(20_000), min_time=0.1, threads=2)
    assert r.gil_enabled == stressx.microbench.measure.gil_enabled()
    if r.gil_enabled:
        assert "sharing the GIL" in str(r)


def test_processes_at_once_spawn_fresh_interpreters():
    r = benchmark(time.sleep, 0.002, min_time=0.2, processes=2)
    assert r.start_method == "spawn" and r.processes == 2 and r.concurrent
    assert set(np.unique(r.sample_meta["process"]).tolist()) == {0, 1}
    assert r.ops_per_s > 1.5 / 2.5e-3 * 0.9              # two callers of a ~2.1 ms call


def test_processes_one_after_another_for_a_closure_fork():
    r = benchmark(busy(30_000), min_time=0.05, processes=2, sequential=True)
    assert r.start_method == "fork" and r.sequential and not r.concurrent
    assert 29e-6 <= r.p50 <= 45e-6
    assert r.ops_per_s == pytest.approx(1 / r.mean)


def test_error_in_the_function_is_reported():
    def bad():
        raise ZeroDivisionError("nope")
    with pytest.raises(BenchmarkError, match="ZeroDivisionError"):
        benchmark(bad, repeat=2)
    with pytest.raises(BenchmarkError, match="ZeroDivisionError"):
        benchmark(bad, repeat=2, processes=2)


def test_bad_arguments_name_themselves():
    with pytest.raises(ConfigError, match="min_time"):
        benchmark(busy(10), min_time=-1)
    with pytest.raises(ConfigError, match="processes"):
        benchmark(busy(10), processes=0)
    with pytest.raises(ConfigError, match="threads"):
        benchmark(busy(10), threads=1.5)
    with pytest.raises(TypeError):
        benchmark(42)


def test_benchmark_is_exported():
    assert stressx.benchmark is benchmark and stressx.BenchmarkResult is BenchmarkResult


# -- memory and leaks -----------------------------------------------------------------------------

def test_memory_per_call_of_a_function_that_allocates_and_frees():
    def alloc():
        b = bytearray(4096)
        return len(b)
    r = benchmark(alloc, min_time=0.05, memory=True)
    assert r.memory and 4096 <= r.bytes_per_op <= 4096 + 256, r.bytes_per_op
    assert r.peak_bytes < 64 * 1024
    assert r.rss_growth is not None


def test_leak_verdict_positive_with_bytes_per_op():
    kept = []

    def leaky():
        kept.append(bytes(1024))
    r = benchmark(leaky, min_time=0.05, leak_check=True)
    kept.clear()
    assert r.leak is True
    assert 1024 <= r.leak_bytes_per_op <= 1024 * 1.25, r.leak_bytes_per_op
    assert "LEAK" in str(r)


@pytest.mark.parametrize("kind", ["alloc_free", "bounded_cache", "dict_churn", "exceptions"])
def test_leak_verdict_negative(kind):
    @functools.lru_cache(maxsize=64)
    def cached(i):
        return [i] * 50
    counter = iter(range(10 ** 9))

    def alloc_free():
        return sum([0] * 300)

    def bounded_cache():
        return cached(next(counter) % 500)

    def dict_churn():
        d = {str(i): i for i in range(50)}
        return len(d)

    def exceptions():
        try:
            raise ValueError("x")
        except ValueError as exc:
            return exc.args

    fn = locals()[kind]
    for _ in range(3):
        r = benchmark(fn, repeat=3, leak_check=True)
        assert r.leak is False, r.leak_detail
        assert abs(r.leak_bytes_per_op) < 1.0


def test_leak_verdict_rules():
    flat = [100_000 + (i % 2) * 40 for i in range(9)]
    assert memory.verdict(flat, 1000)["leak"] is False
    one_off = [100_000] * 4 + [140_000] * 5                 # a table resized once
    assert memory.verdict(one_off, 1000)["leak"] is False
    growing = [100_000 + 8_000 * i for i in range(9)]       # 8 bytes a call
    v = memory.verdict(growing, 1000)
    assert v["leak"] is True and v["leak_bytes_per_op"] == pytest.approx(8.0)
    tiny = [100_000 + 500 * i for i in range(9)]            # 0.5 B/call: below the floor
    assert memory.verdict(tiny, 1000)["leak"] is False
    # a steady 1 KiB a call, plus one 9 MB step (a big list allocated before tracing began,
    # reallocated during it): the step moves one round, not the estimate
    stepped = [100_000 + 1024_000 * i + (9_000_000 if i >= 3 else 0) for i in range(9)]
    v = memory.verdict(stepped, 1000)
    assert v["leak"] is True and v["leak_bytes_per_op"] == pytest.approx(1024.0)
    assert v["leak_ols_bytes_per_op"] > 1024 * 1.25             # what least squares would say


def test_async_memory_and_leak():
    kept = []

    async def leaky():
        kept.append(bytearray(2048))
    r = benchmark(leaky, repeat=3, memory=True, leak_check=True)
    kept.clear()
    assert r.leak and 2048 <= r.leak_bytes_per_op <= 2048 * 1.25
    assert 2048 <= r.bytes_per_op <= 2048 + 512


# -- statistics ------------------------------------------------------------------------------------

def test_mann_whitney_known_values():
    u, p = stats.mann_whitney([1, 3, 5], [2, 4, 6])
    assert u == 3.0
    assert stats.mann_whitney([1, 1], [1, 1])[1] == 1.0
    rng = np.random.default_rng(3)
    a = rng.normal(100, 5, 200)
    assert stats.mann_whitney(a, a + 10)[1] < 1e-10
    assert stats.mann_whitney(a, rng.permutation(a))[1] > 0.5
    # ties get average ranks: U counts a tie as half
    assert stats.mann_whitney([1, 2], [2, 3])[0] == 0.5


def test_bootstrap_interval_of_the_ratio():
    rng = np.random.default_rng(4)
    base = rng.normal(100, 3, 500)
    lo, hi = stats.bootstrap_ratio_ci(base, base * 1.5)
    assert lo < 1.5 < hi and lo > 1.4
    lo, hi = stats.bootstrap_ratio_ci(base, rng.normal(100, 3, 500))
    assert lo < 1.0 < hi


def test_histogram_round_trip_keeps_percentiles():
    x = np.arange(1, 10_001, dtype=float) * 7.0
    h = stats.histogram_of(x)
    again = stats.decode_histogram(h.encode())
    assert stats.histogram_percentiles(again) == stats.histogram_percentiles(h)
    assert stats.histogram_percentiles(h)["p50"] == pytest.approx(35_000, rel=1e-3)
    assert h.get_total_count() == 10_000


# -- thresholds --------------------------------------------------------------------------------------

def test_threshold_grammar():
    g = gates.parse("p99<50us")
    assert (g.metric, g.op, g.limit) == ("p99", "<", pytest.approx(50e-6))
    assert gates.parse("ops_per_s>10000").limit == 10000
    assert gates.parse("bytes_per_op<512").limit == 512
    assert gates.parse("bytes_per_op < 1KiB").limit == 1024
    assert gates.parse("leak==0").limit == 0
    assert gates.parse("bench_a: p99.9 <= 2 ms").scope == "bench_a"
    assert gates.needs([gates.parse("leak==0")]) == {"memory": False, "leak_check": True}
    for bad, why in (("p99<50", "give its unit"), ("speed<3", "unknown metric"),
                     ("leak==2", "0 (no leak) or 1"), ("p99=5us", "'=='"),
                     ("bytes_per_op<3us", "is a size")):
        with pytest.raises(ConfigError, match=re.escape(why)) as exc:
            gates.parse(bad)
        assert str(exc.value).startswith("--threshold: ")


def test_result_check_and_assert_thresholds():
    clock = FakeClock()
    r = run(Target(costed(clock, [40_000]), name="f"), timer=clock, sample_ns=1,
            overhead_ns=0.0, warmup=0, repeat=20, min_time=0)
    ok = r.check("p99<50us", "ops_per_s>20000")
    assert all(v.passed for v in ok)
    bad = r.check("p99<30us", "ops_per_s>30000", "leak==0")
    assert [v.passed for v in bad] == [False, False, False]
    assert bad[2].value is None                       # leak_check was not run: cannot pass
    with pytest.raises(AssertionError) as exc:
        r.assert_thresholds("p99<30us", "ops_per_s>30000", "mean<1ms")
    text = str(exc.value)
    assert "p99 < 30 us: FAILED" in text and "ops_per_s" in text and "mean" not in text


# -- results directory and comparison ----------------------------------------------------------------

def _result(name, samples_ns, **kw) -> BenchmarkResult:
    s = stats.summarize(samples_ns)
    mean = s["mean"]
    return BenchmarkResult(name=name, mean=mean / 1e9, stdev=s["stdev"] / 1e9, min=s["min"] / 1e9,
                           max=s["max"] / 1e9, p50=s["p50"] / 1e9, p90=s["p90"] / 1e9,
                           p95=s["p95"] / 1e9, p99=s["p99"] / 1e9, p999=s["p999"] / 1e9,
                           ops_per_s=1e9 / mean, iterations=len(samples_ns), loops=1,
                           overhead=0.0, samples=len(samples_ns),
                           samples_ns=np.asarray(samples_ns, float), histogram=s["histogram"], **kw)


def test_results_directory_round_trip(tmp_path):
    r = benchmark(busy(5000), min_time=0.05, memory=True)
    out = files.write_results(tmp_path / "res", [r], {"file": "x.py"})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "benchmark" and manifest["format_version"] == files.BENCH_FORMAT_VERSION
    assert {"hostname", "python", "cpu_count", "gil_enabled"} <= set(manifest["host"])
    import pyarrow as pa
    table = pa.ipc.open_stream(str(out / "samples.arrows")).read_all()
    assert table.num_rows == r.samples
    assert table.schema.names == ["benchmark", "process", "caller", "sample", "loops", "raw_ns",
                                  "ns_per_call"]
    back = files.read_results(out)[r.name]
    assert np.array_equal(back.samples_ns, r.samples_ns)
    assert back.p99 == r.p99 and back.bytes_per_op == r.bytes_per_op
    assert files.is_bench_dir(out)
    # without samples.arrows the comparison reads the histogram's values
    (out / "samples.arrows").unlink()
    assert files.read_results(out)[r.name].samples_ns.size == r.samples


def test_newer_format_version_is_refused(tmp_path):
    from stressx.results.files import FormatVersionError
    out = files.write_results(tmp_path / "res", [_result("a", [1000.0] * 10)])
    m = json.loads((out / "manifest.json").read_text())
    m["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatVersionError, match="newer"):
        files.read_results(out)


def test_compare_significant_slowdown_and_no_change():
    rng = np.random.default_rng(7)
    base = {"a": _result("a", rng.normal(2000, 40, 400)), "b": _result("b", rng.normal(5000, 50, 400)),
            "gone": _result("gone", rng.normal(1000, 10, 50))}
    cur = {"a": _result("a", rng.normal(2900, 40, 400)), "b": _result("b", rng.normal(5000, 50, 400)),
           "new": _result("new", rng.normal(1000, 10, 50))}
    c = bcompare.compare(base, cur, threshold_pct=15)
    rows = {r["name"]: r for r in c["rows"]}
    assert rows["a"]["verdict"] == "1.45x slower (significant)" and rows["a"]["regression"]
    assert rows["b"]["verdict"] == "no significant change" and not rows["b"]["regression"]
    assert c["regressions"] == ["a"] and c["only_baseline"] == ["gone"] and c["only_current"] == ["new"]
    text = bcompare.format_text(c)
    assert "1.45x slower (significant)" in text and "REGRESSION" in text
    # beyond significance, the threshold decides
    assert bcompare.compare(base, cur, threshold_pct=60)["regressions"] == []
    faster = bcompare.compare(cur, base, threshold_pct=15)
    assert faster["regressions"] == [] and "1.45x faster (significant)" in bcompare.format_text(faster)


def test_compare_flags_a_new_leak():
    base = {"a": _result("a", [1000.0] * 20, leak_check=True, leak=False, leak_bytes_per_op=0.0)}
    cur = {"a": _result("a", [1000.0] * 20, leak_check=True, leak=True, leak_bytes_per_op=64.0)}
    c = bcompare.compare(base, cur, 15)
    assert c["regressions"] == ["a"] and "now leaks" in c["rows"][0]["reasons"][0]


def test_one_stretched_sample_does_not_end_calibration():
    clock = FakeClock()
    # 1 us a call; the probe, then a sample of 2 calls stretched to 50 us by an "interrupt"
    fn = costed(clock, [1000], first=[1000, 1000, 1000, 48_000])
    r = run(Target(fn), timer=clock, sample_ns=10_000, overhead_ns=0.0, warmup=0, repeat=5,
            min_time=0)
    assert r.loops == 16, r.loops              # not 2: its confirmation sample fell short
