"""Thresholds on benchmark results, for CI gates: `p99<50us`, `ops_per_s>10000`,
`bytes_per_op<512`, `leak==0`.

Grammar (one expression)::

    [BENCHMARK:] METRIC OP NUMBER [UNIT]

    METRIC  mean stdev min max p50 p90 p95 p99 p999 (p99.9)   time per call: UNIT ns, us, ms
                                                              or s (required)
            ops_per_s (ops)                                   calls per second, /s optional
            bytes_per_op peak_bytes rss_growth                bytes: B (default), KB, KiB,
            leak_bytes_per_op                                 MB, MiB, GB, GiB
            leak                                              0 (no leak) or 1
    OP      <  <=  >  >=  ==  !=

Without `BENCHMARK:` a threshold judges every benchmark of the run. A memory threshold makes
the run measure memory, a leak threshold makes it check for leaks (see needs()). A threshold
that cannot be measured fails: a gate that passes on missing data would hide a broken run.
The same grammar as load thresholds (thresholds.py), over a benchmark's own metrics.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from ..errors import ConfigError


def format_time(seconds: float | None) -> str:
    """4 significant figures in ns, us, ms or s."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    a = abs(seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if a >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds * 1e9:.4g} ns"


def format_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    a = abs(n)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if a >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.4g} B"

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq, "!=": operator.ne}
TIME_METRICS = ("mean", "stdev", "min", "max", "p50", "p90", "p95", "p99", "p999")
SIZE_METRICS = ("bytes_per_op", "peak_bytes", "rss_growth", "leak_bytes_per_op")
MEMORY_METRICS = ("bytes_per_op", "peak_bytes", "rss_growth")
LEAK_METRICS = ("leak", "leak_bytes_per_op")
_ALIASES = {"p99.9": "p999", "p99_9": "p999", "avg": "mean", "median": "p50", "ops": "ops_per_s",
            "ops/s": "ops_per_s"}
_TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000 ** 2, "mib": 1024 ** 2,
               "gb": 1000 ** 3, "gib": 1024 ** 3}
_EXPR = re.compile(r"""^\s*
    (?:(?P<scope>[A-Za-z_][\w.\-]*)\s*:\s*)?
    (?P<metric>[A-Za-z_][\w.]*(?:/s)?)\s*
    (?P<op><=|>=|==|!=|<|>|=)\s*
    (?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*
    (?P<unit>[A-Za-zµ]+|/s)?\s*$""", re.X)
ACCEPTED = ("accepted: '[benchmark:]METRIC OP NUMBER[UNIT]' with METRIC one of mean stdev min "
            "max p50 p90 p95 p99 p999 (ns, us, ms or s), ops_per_s, bytes_per_op peak_bytes "
            "rss_growth leak_bytes_per_op (B, KB, KiB, MB, MiB), leak (0 or 1), and OP one of "
            "< <= > >= == !=; e.g. 'p99<50us', 'ops_per_s>10000', 'bytes_per_op<512', 'leak==0'")


@dataclass(frozen=True)
class Gate:
    """One parsed expression; `limit` in seconds, calls/s, bytes, or 0/1."""
    expression: str
    metric: str
    op: str
    limit: float
    scope: str | None = None

    @property
    def text(self) -> str:
        label = "p99.9" if self.metric == "p999" else self.metric
        return f"{self.scope + ': ' if self.scope else ''}{label} {self.op} {format_value(self.metric, self.limit)}"


def format_value(metric: str, value) -> str:
    if value is None:
        return "n/a"
    if metric in TIME_METRICS:
        return format_time(value)
    if metric in SIZE_METRICS:
        return format_bytes(value)
    if metric == "ops_per_s":
        return f"{value:,.6g}/s"
    return f"{value:g}"


def parse(text: str, option: str = "--threshold") -> Gate:
    expr = str(text).strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(option, f"{expr!r}: {why}; {ACCEPTED}")

    m = _EXPR.match(expr)
    if not m:
        raise bad("not a threshold expression")
    scope, metric, op, num, unit = m.group("scope", "metric", "op", "num", "unit")
    metric = metric.lower()
    metric = _ALIASES.get(metric, metric)
    if op == "=":
        raise bad("'=' is not an operator (did you mean '=='?)")
    value = float(num)
    if value < 0:
        raise bad("the limit cannot be negative")
    unit_l = unit.lower() if unit else None
    if metric in TIME_METRICS:
        if unit is None:
            raise bad(f"{metric} is a time per call: give its unit (ns, us, ms or s)")
        if unit_l not in _TIME_UNITS:
            raise bad(f"{metric} is a time per call: give it in ns, us, ms or s, not {unit!r}")
        value *= _TIME_UNITS[unit_l]
    elif metric == "ops_per_s":
        if unit_l not in (None, "/s"):
            raise bad(f"ops_per_s is calls per second: give a number (optionally /s), not {unit!r}")
    elif metric in SIZE_METRICS:
        if unit_l not in _SIZE_UNITS:
            raise bad(f"{metric} is a size: give bytes (B, KB, KiB, MB, MiB, GB, GiB), not {unit!r}")
        value *= _SIZE_UNITS[unit_l]
    elif metric == "leak":
        if unit is not None or value not in (0.0, 1.0):
            raise bad("leak is 0 (no leak) or 1")
    else:
        raise bad(f"unknown metric {metric!r}")
    return Gate(expr, metric, op, value, scope)


def parse_all(expressions, option: str = "--threshold") -> list[Gate]:
    return [parse(e, option) for e in expressions or ()]


def needs(gates: list[Gate]) -> dict:
    """What the gates need measured: {"memory": bool, "leak_check": bool}."""
    return {"memory": any(g.metric in MEMORY_METRICS for g in gates),
            "leak_check": any(g.metric in LEAK_METRICS for g in gates)}


def check_scopes(gates: list[Gate], names, option: str = "--threshold") -> None:
    """ConfigError for a gate naming a benchmark the run does not have."""
    names = list(names)
    for g in gates:
        if g.scope is not None and g.scope not in names:
            raise ConfigError(option, f"{g.expression!r}: no benchmark named {g.scope!r} "
                                      f"(benchmarks: {', '.join(names) or 'none'})")


@dataclass
class Verdict:
    benchmark: str
    gate: Gate
    value: float | None
    passed: bool

    @property
    def message(self) -> str:
        got = format_value(self.gate.metric, self.value)
        why = "" if self.value is not None else " (not measured)"
        return (f"{self.benchmark}: {self.gate.text.split(': ', 1)[-1]}: "
                f"{'passed' if self.passed else 'FAILED'}, measured {got}{why}")

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "expression": self.gate.expression,
                "metric": self.gate.metric, "op": self.gate.op, "limit": self.gate.limit,
                "value": self.value, "passed": self.passed, "message": self.message}


def evaluate(gates: list[Gate], results) -> list[Verdict]:
    """Each gate against each result in its scope (results: BenchmarkResult-like objects with
    .name and .value(metric))."""
    out = []
    for g in gates:
        for r in results:
            if g.scope is not None and g.scope != r.name:
                continue
            v = r.value(g.metric)
            ok = v is not None and not (isinstance(v, float) and math.isnan(v)) and OPS[g.op](v, g.limit)
            out.append(Verdict(r.name, g, v, bool(ok)))
    return out
