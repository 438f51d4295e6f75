"""`stressx bench FILE.py[::FUNC]` and `stressx compare` on benchmark results: real
subprocesses, real files, and their exit codes."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from conftest import run_cli
from stressx.microbench import files, stats
from stressx.microbench.result import BenchmarkResult

BENCH_FILE = """
import time
import helper_mod                      # a sibling module: the file's folder is importable

pc = time.perf_counter_ns

def bench_busy():
    end = pc() + helper_mod.NS
    while pc() < end:
        pass

async def bench_async():
    return 1

def bench_alloc():
    return bytearray(256)

def not_a_bench():
    raise AssertionError("never run")
"""


@pytest.fixture
def bench_file(tmp_path):
    (tmp_path / "helper_mod.py").write_text("NS = 20_000\n")
    p = tmp_path / "bench_things.py"
    p.write_text(BENCH_FILE)
    return p


def test_bench_runs_every_bench_function_and_writes_results(bench_file, tmp_path):
    out = tmp_path / "res"
    proc = run_cli("bench", bench_file, "--min-time", "50ms", "-o", out, "--memory", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["benchmark", "mean", "p50", "p99"] and "bytes/op" in lines[0]
    names = [ln.split()[0] for ln in lines[1:4]]
    assert names == ["bench_busy", "bench_async", "bench_alloc"]
    assert f"results: {out}" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "benchmark" and list(summary["benchmarks"]) == names
    busy = summary["benchmarks"]["bench_busy"]
    assert 19e-6 <= busy["p50"] <= 30e-6 and busy["iterations"] >= busy["samples"] >= 5
    assert summary["benchmarks"]["bench_async"]["is_async"] is True
    assert summary["benchmarks"]["bench_alloc"]["bytes_per_op"] >= 256
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "benchmark" and manifest["config"]["file"] == str(bench_file)
    assert (out / "samples.arrows").exists() and (out / "histograms.json").exists()


def test_bench_one_function_in_worker_processes(bench_file, tmp_path):
    out = tmp_path / "res"
    proc = run_cli("bench", f"{bench_file}::bench_busy", "--min-time", "50ms", "--processes", "2",
                   "-o", out, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert list(summary["benchmarks"]) == ["bench_busy"]
    r = summary["benchmarks"]["bench_busy"]
    assert r["processes"] == 2 and r["start_method"] == "spawn"


def test_bench_thresholds_gate_with_exit_3(bench_file, tmp_path):
    ok = run_cli("bench", f"{bench_file}::bench_busy", "--min-time", "30ms", "-o", tmp_path / "a",
                 "--threshold", "p50<10ms", "--threshold", "ops_per_s>10", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("  ok    bench_busy") == 2
    bad = run_cli("bench", bench_file, "--min-time", "30ms", "-o", tmp_path / "b",
                  "--threshold", "bench_busy:p50<1us", "--threshold", "leak==0", cwd=tmp_path)
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "FAIL  bench_busy: p50 < 1 us: FAILED" in bad.stdout
    verdicts = json.loads((tmp_path / "b" / "thresholds.json").read_text())["thresholds"]
    # the leak gate made the run check for leaks, and judged every benchmark
    assert sorted(v["benchmark"] for v in verdicts if v["metric"] == "leak") == [
        "bench_alloc", "bench_async", "bench_busy"]
    assert all(v["passed"] for v in verdicts if v["metric"] == "leak")


@pytest.mark.parametrize("args, where", [
    (["nope.py"], "FILE: no such file"),
    (["x.txt"], "FILE: expected a Python file"),
    (["{f}::missing"], "has no function 'missing'"),
    (["{f}", "--threshold", "p99<5"], "--threshold: 'p99<5': p99 is a time per call"),
    (["{f}", "--threshold", "other:p99<5us"], "no benchmark named 'other'"),
    (["{f}", "--processes", "0"], "--processes: expected a whole number >= 1"),
    (["{f}", "--min-time", "soon"], "--min-time: expected a duration"),
    (["{empty}"], "defines no bench_* function"),
    (["{broken}"], "cannot import"),
])
def test_bench_usage_errors_exit_2(bench_file, tmp_path, args, where):
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    argv = [a.format(f=bench_file, empty=empty, broken=broken) for a in args]
    proc = run_cli("bench", *argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("stressx: error: ") and where in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "stressx-results").exists()


def test_bench_function_that_raises_exits_1_and_keeps_the_others(tmp_path):
    p = tmp_path / "b.py"
    p.write_text(textwrap.dedent("""
        def bench_fine():
            return 1
        def bench_broken():
            raise KeyError("boom")
    """))
    proc = run_cli("bench", p, "--repeat", "3", "-o", tmp_path / "r", cwd=tmp_path)
    assert proc.returncode == 1
    assert "stressx: error: bench_broken:" in proc.stderr and "KeyError" in proc.stderr
    assert list(json.loads((tmp_path / "r" / "summary.json").read_text())["benchmarks"]) == ["bench_fine"]


def _write(path, **named_samples):
    results = []
    for name, x in named_samples.items():
        s = stats.summarize(x)
        results.append(BenchmarkResult(
            name=name, mean=s["mean"] / 1e9, stdev=s["stdev"] / 1e9, min=s["min"] / 1e9,
            max=s["max"] / 1e9, p50=s["p50"] / 1e9, p90=s["p90"] / 1e9, p95=s["p95"] / 1e9,
            p99=s["p99"] / 1e9, p999=s["p999"] / 1e9, ops_per_s=1e9 / s["mean"],
            iterations=len(x), loops=1, overhead=0.0, samples=len(x),
            samples_ns=np.asarray(x, float), histogram=s["histogram"]))
    return files.write_results(path, results)


def test_compare_benchmark_results_exit_codes(tmp_path):
    rng = np.random.default_rng(11)
    base = _write(tmp_path / "base", parse=rng.normal(2000, 30, 300), dump=rng.normal(900, 10, 300))
    slow = _write(tmp_path / "slow", parse=rng.normal(2900, 30, 300), dump=rng.normal(900, 10, 300))
    same = _write(tmp_path / "same", parse=rng.normal(2000, 30, 300), dump=rng.normal(900, 10, 300))
    proc = run_cli("compare", base, slow)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "1.45x slower (significant)" in proc.stdout and "REGRESSION" in proc.stdout
    assert "1 regression: parse" in proc.stdout
    proc = run_cli("compare", base, same)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("no significant change") == 2
    # significant, but within a 60% threshold: not a regression
    assert run_cli("compare", base, slow, "--threshold", "60%").returncode == 0
    # faster is never a regression
    proc = run_cli("compare", slow, base)
    assert proc.returncode == 0 and "1.45x faster (significant)" in proc.stdout
    md = tmp_path / "cmp.md"
    proc = run_cli("compare", base, slow, "-f", "md", "-o", md)
    assert proc.returncode == 3 and "| parse |" in md.read_text()


def test_compare_a_benchmark_with_a_load_run_is_a_usage_error(tmp_path):
    base = _write(tmp_path / "base", parse=[1000.0] * 10)
    load = tmp_path / "load"
    load.mkdir()
    (load / "manifest.json").write_text(json.dumps({"format_version": 4}))
    proc = run_cli("compare", base, load)
    assert proc.returncode == 2
    assert proc.stderr.startswith("stressx: error: cannot compare benchmark results")
    proc = run_cli("compare", base, base, "--threshold", "lots")
    assert proc.returncode == 2 and "--threshold" in proc.stderr
