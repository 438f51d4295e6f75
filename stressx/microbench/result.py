"""BenchmarkResult: one function's figures, in seconds, and how they were measured."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .gates import format_bytes, format_time  # noqa: F401  (re-exported: command, plugin)

TIME_FIELDS = ("mean", "stdev", "min", "max", "p50", "p90", "p95", "p99", "p999")


@dataclass
class BenchmarkResult:
    """What stressx.benchmark() measured. Times are seconds per call, after subtracting the
    calling loop's own cost (`overhead`); mean, stdev, min and max are exact over the samples,
    the percentiles come from the samples' HDR histogram (1 ns resolution, 0.1 % precision).
    Each sample is the average of `loops` back-to-back calls, so percentiles describe samples
    of `loops` calls (single calls when loops == 1, as for any function slower than the
    clock's floor)."""

    name: str
    mean: float
    stdev: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    ops_per_s: float          # calls/s: 1/mean for one caller; with concurrent callers the
    #                           calls they all completed per second of their windows
    iterations: int           # timed calls, all callers
    loops: int                # calls per timed sample
    overhead: float           # seconds per call of the empty loop, subtracted
    samples: int              # timed samples, all callers
    processes: int = 1
    threads: int = 1
    sequential: bool = False  # processes one after another (noise averaging), not at once
    is_async: bool = False
    warmup: int = 0           # warm-up samples dropped (per process, first process)
    min_time: float = 0.0
    elapsed: float = 0.0      # seconds of timed samples (the longest caller's window)
    gil_enabled: bool = True
    free_threaded: bool = False
    clock: dict = field(default_factory=dict)
    start_method: str = "inline"   # inline, spawn or fork (worker processes)
    memory: bool = False
    bytes_per_op: float | None = None
    peak_bytes: int | None = None
    rss_growth: int | None = None
    leak_check: bool = False
    leak: bool | None = None
    leak_bytes_per_op: float | None = None
    leak_detail: dict | None = None
    samples_ns: np.ndarray | None = field(default=None, repr=False, compare=False)
    sample_meta: dict | None = field(default=None, repr=False, compare=False)
    histogram: object | None = field(default=None, repr=False, compare=False)

    _NOT_IN_DICT = ("samples_ns", "sample_meta", "histogram")

    @property
    def callers(self) -> int:
        return self.threads * (1 if self.sequential else self.processes)

    @property
    def concurrent(self) -> bool:
        return self.callers > 1

    def to_dict(self) -> dict:
        """Every figure, JSON-ready (seconds, bytes); the samples and histogram are left out
        (the results directory keeps them)."""
        out = {}
        for f in fields(self):
            if f.name in self._NOT_IN_DICT:
                continue
            v = getattr(self, f.name)
            if isinstance(v, float) and math.isnan(v):
                v = None
            out[f.name] = v
        out["unit"] = "seconds"
        out["callers"] = self.callers
        return out

    @classmethod
    def from_dict(cls, data: dict, samples_ns=None, histogram=None) -> "BenchmarkResult":
        names = {f.name for f in fields(cls)} - set(cls._NOT_IN_DICT)
        kw = {k: v for k, v in data.items() if k in names}
        for k in TIME_FIELDS + ("ops_per_s", "overhead"):
            if kw.get(k) is None:
                kw[k] = math.nan
        return cls(**kw, samples_ns=samples_ns, histogram=histogram)

    def value(self, metric: str):
        """A metric by its threshold name (leak as 0/1); None when it was not measured."""
        if metric == "leak":
            return None if self.leak is None else int(bool(self.leak))
        v = getattr(self, metric)
        return None if isinstance(v, float) and math.isnan(v) else v

    def check(self, *expressions: str) -> list:
        """Judge threshold expressions ('p99<50us', 'ops_per_s>10000', 'bytes_per_op<512',
        'leak==0') against this result: a list of gates.Verdict."""
        from .gates import evaluate, parse_all
        return evaluate(parse_all(expressions, option="check"), [self])

    def assert_thresholds(self, *expressions: str) -> None:
        """For pytest: one AssertionError listing every failed threshold."""
        failed = [v.message for v in self.check(*expressions) if not v.passed]
        if failed:
            raise AssertionError("stressx benchmark thresholds failed:\n  " + "\n  ".join(failed))

    def __str__(self) -> str:
        kind = "async" if self.is_async else "sync"
        who = "1 caller"
        if self.concurrent:
            parts = []
            if self.processes > 1 and not self.sequential:
                parts.append(f"{self.processes} processes")
            if self.threads > 1:
                parts.append(f"{self.threads} threads" + (" sharing the GIL" if self.gil_enabled
                                                          else " in parallel (no GIL)"))
            who = " x ".join(parts) + " at once"
        elif self.processes > 1:
            who = f"1 caller, {self.processes} processes one after another"
        lines = [
            f"{self.name} ({kind}, {who})",
            f"  iterations  {self.iterations:,} calls in {self.samples:,} samples of {self.loops:,}"
            f" (loop overhead {format_time(self.overhead)}/call subtracted)",
            f"  mean        {format_time(self.mean)} +- {format_time(self.stdev)} (stdev)"
            f"   min {format_time(self.min)}   max {format_time(self.max)}",
            "  percentiles " + "   ".join(
                f"{'p99.9' if k == 'p999' else k} {format_time(getattr(self, k))}"
                for k in ("p50", "p90", "p95", "p99", "p999")),
            f"  throughput  {self.ops_per_s:,.1f} ops/s"
            + (" (all callers)" if self.concurrent else ""),
        ]
        if self.memory:
            rss = "n/a" if self.rss_growth is None else ("+" if self.rss_growth >= 0 else "") + format_bytes(self.rss_growth)
            lines.append(f"  memory      {format_bytes(self.bytes_per_op)}/op at its peak"
                         f"   peak {format_bytes(self.peak_bytes)}   RSS {rss}")
        if self.leak_check:
            kept = self.leak_bytes_per_op
            per1k = "" if kept is None else f" ({format_bytes(kept * 1000)} per 1,000 calls)"
            d = self.leak_detail or {}
            rounds = len(d.get("leak_rounds") or []) - 1
            lines.append(f"  leak        {'LEAK' if self.leak else 'none'}: kept "
                         f"{format_bytes(kept)}/op{per1k} over {rounds} rounds of "
                         f"{d.get('leak_calls_per_round', 0):,} calls")
        return "\n".join(lines)
