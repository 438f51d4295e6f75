"""Microbenchmarks: time a function honestly (calibrated loops, warm-up, overhead subtracted,
HDR percentiles), optionally with concurrent callers, memory per call and a leak check.

    import stressx
    r = stressx.benchmark(json.dumps, {"a": 1}, memory=True)
    print(r.p99, r.ops_per_s, r.bytes_per_op)

`stressx bench FILE.py[::FUNC]` runs a file's bench_* functions; `stressx compare A B` compares
two benchmark results directories with a statistical test.
"""
from .api import benchmark
from .measure import BenchmarkError
from .result import BenchmarkResult

__all__ = ["benchmark", "BenchmarkResult", "BenchmarkError"]
