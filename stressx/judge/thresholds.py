"""Thresholds (SLOs): parse `p99 < 200ms`-style expressions, judge a run's summary against them,
judge a sliding window of interval rows during the run, and store the verdicts.

Grammar (one expression)::

    [SCENARIO:] [ok: | all:] METRIC OP NUMBER [UNIT]

    METRIC  p50 p90 p95 p99 p999 (or p99.9) max mean   latency, UNIT ms (default), s or us
            error_rate                                  UNIT % or a bare fraction (0.01 = 1%)
            rps                                         completed requests/s, UNIT /s optional
            status_5xx status_4xx ... status_NNN        count, or UNIT % of completed requests
            baseline_violations                         count, or UNIT % of completed requests
            saturated                                   1 if the client did not keep its
                                                        schedule (open model), else 0
    OP      <  <=  >  >=  ==  !=

A latency threshold judges every completed request by default (`all_latency_ms`: successes,
and failures at their time to failure), as k6 and Gatling do, so failures cannot vanish from the
percentiles; `ok:` judges the successful responses only (`latency_ms`). Both are measured from
the intended send time in the open model. A `ok:` or `all:` alone is the basis, not a scenario
(a scenario named `ok` is `ok:all:p99`). A timed-out request is recorded at its deadline: a
percentile that lands among the timeouts is censored, its real value only known to lie above
the recorded one, and it is judged on that: `p99 < 50ms` fails when p99 is censored at a 1 s
timeout, and `p99 < 5s` cannot be decided there either, so it fails too (raise --timeout
above the limit to measure it). A threshold that cannot be measured (no completed request,
no scenario of that name, no expected latency band in the run) FAILS: a gate that passes on
missing data would hide a broken run.

Malformed expressions raise ConfigError naming the option, the expression and what is accepted,
so the CLI exits 2 before any request is sent.
"""
from __future__ import annotations

import json
import operator
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..engine.coordinator import Abort, Companion
from ..errors import EXIT_THRESHOLDS, ConfigError
from ..results.censoring import censored_key, decide
from ..results.hdr import Histogram

THRESHOLDS_FILE = "thresholds.json"
FORMAT_VERSION = 1
DEFAULT_WINDOW_S = 30.0

LATENCY_METRICS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
_LATENCY_LABEL = {"p999": "p99.9"}
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq, "!=": operator.ne}
_TIME_UNITS_MS = {None: 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}
_ACCEPTED = ("accepted: '[scenario:][ok:]METRIC OP NUMBER[UNIT]' with METRIC one of "
             "p50 p90 p95 p99 p999 max mean (ms, s, us; all requests, or ok: successes only), "
             "error_rate (% or a fraction), "
             "rps, status_5xx/status_4xx/status_NNN (count or %), baseline_violations "
             "(count or %), saturated (0 or 1), and OP one of < <= > >= == !=; e.g. 'p99<200ms', "
             "'error_rate<1%', 'checkout:p95<=1s', 'ok:p99<50ms'")
_EXPR = re.compile(r"""^\s*
    (?:(?P<scope>[A-Za-z_][\w.\-]*)\s*:\s*)?
    (?:(?P<basis>ok|all)\s*:\s*)?
    (?P<metric>[A-Za-z_][\w.]*)\s*
    (?P<op><=|>=|==|!=|<|>|=)\s*
    (?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*
    (?P<unit>ms|us|µs|s|%|/s)?\s*$""", re.X | re.I)

#: Built-in success criteria sets (`--criteria NAME`).
CRITERIA = {
    # the gate the issue asks for: few errors, seconds-scale tails, no server errors, and a
    # client that kept its schedule (a saturated run measured the client, not the target)
    "ci": ("error_rate < 1%", "p95 < 2s", "p99 < 5s", "status_5xx == 0", "saturated == 0"),
    # an interactive service's budget: tenfold stricter on errors, sub-second tails
    "strict": ("error_rate < 0.1%", "p95 < 500ms", "p99 < 1s", "p999 < 2s", "status_5xx == 0",
               "saturated == 0"),
    # the target answers at all: something completed, most of it succeeded, nothing hung
    "smoke": ("rps > 0", "error_rate < 5%", "p99 < 10s"),
}


@dataclass(frozen=True)
class Threshold:
    """One parsed expression. `limit` is in the metric's unit: ms for latency, req/s for rps,
    a fraction (0.01 = 1%) for error_rate and for a count metric given with `%` (`relative`),
    else a count."""

    expression: str            # as the user wrote it (stripped)
    metric: str                # p50 .. mean, error_rate, rps, status_5xx, status_503, baseline_violations
    op: str
    limit: float
    relative: bool = False     # a count metric compared as a share of completed requests
    scenario: str | None = None
    source: str = "--threshold"
    basis: str | None = None   # latency: "all" (every completed request) or "ok" (successes)

    @property
    def kind(self) -> str:
        if self.metric in LATENCY_METRICS:
            return "latency"
        if self.metric.startswith("status_"):
            return "status"
        return self.metric

    @property
    def label(self) -> str:
        """The metric as people read it: `p99.9`, `checkout: p99`, `ok:p99` (successes only)."""
        name = _LATENCY_LABEL.get(self.metric, self.metric)
        if self.basis == "ok":
            name = f"ok:{name}"
        return f"{self.scenario}: {name}" if self.scenario else name

    @property
    def text(self) -> str:
        """A normalised rendering: `p99 < 200 ms`, `error_rate < 1%`, `api: rps > 50/s`."""
        return f"{self.label} {self.op} {format_value(self, self.limit)}"


def format_value(th: Threshold, value: float | None) -> str:
    """A measured or limit value in the threshold's unit, for tables and messages."""
    if value is None:
        return "n/a"
    if th.kind == "latency":
        return f"{value / 1000:.6g} s" if value >= 1000 else f"{value:.6g} ms"
    if th.kind == "error_rate" or th.relative:
        return f"{value * 100:.4g}%"
    if th.kind == "rps":
        return f"{value:.6g}/s"
    return f"{value:g}"


def parse_threshold(text: str, option: str = "--threshold", source: str | None = None) -> Threshold:
    """Parse one expression; ConfigError(option, ...) naming it and what is accepted otherwise."""
    expr = str(text).strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(option, f"{expr!r}: {why}; {_ACCEPTED}")

    m = _EXPR.match(expr)
    if not m:
        raise bad("not a threshold expression")
    scope, basis, metric, op, num, unit = m.group("scope", "basis", "metric", "op", "num", "unit")
    if basis is None and scope is not None and scope.lower() in ("ok", "all"):
        scope, basis = None, scope      # `ok:p99`: the basis, not a scenario named ok
    basis = basis.lower() if basis else None
    metric = metric.lower()
    unit = unit.lower() if unit else None
    if op == "=":
        raise bad("'=' is not an operator (did you mean '=='?)")
    metric = {"p99.9": "p999", "p99_9": "p999", "avg": "mean"}.get(metric, metric)
    value = float(num)
    if value < 0:
        raise bad("the limit cannot be negative")
    relative = False
    if basis is not None and metric not in LATENCY_METRICS:
        raise bad(f"'{basis}:' chooses the requests a latency is measured on; {metric} is not a latency")
    if metric in LATENCY_METRICS:
        basis = basis or "all"
        if unit not in _TIME_UNITS_MS:
            raise bad(f"{metric} is a latency: give the limit in ms, s or us, not {unit!r}")
        value *= _TIME_UNITS_MS[unit]
    elif metric == "error_rate":
        if unit == "%":
            value /= 100.0
        elif unit is not None:
            raise bad(f"error_rate is a share of completed requests: give it in % or as a fraction, not {unit!r}")
        elif value > 1:
            raise bad(f"error_rate {num} without % would be over 100%: write {num}% or {value / 100:g}")
    elif metric == "rps":
        if unit not in (None, "/s"):
            raise bad(f"rps is completed requests per second: give a number (optionally /s), not {unit!r}")
    elif metric == "saturated":
        if unit is not None:
            raise bad(f"saturated is 0 or 1 (the client kept its schedule or not), not {unit!r}")
        if scope:
            raise bad("saturated is a property of the whole run, not of a scenario")
    elif metric == "baseline_violations" or _status_codes(metric) is not None:
        if unit == "%":
            value, relative = value / 100.0, True
        elif unit is not None:
            raise bad(f"{metric} is a count: give a number, or a % of completed requests, not {unit!r}")
    elif metric.startswith("status_"):
        raise bad(f"unknown status metric {metric!r}: use status_1xx .. status_5xx or a code "
                  f"100..599 such as status_503")
    else:
        raise bad(f"unknown metric {metric!r}")
    return Threshold(expr, metric, op, value, relative, scope,
                     source or option, basis)


def _status_codes(metric: str) -> range | None:
    """The status codes a status_* metric counts (status_5xx -> 500..599), None if not one."""
    m = re.fullmatch(r"status_([1-5])xx|status_([1-5]\d\d)", metric)
    if not m:
        return None
    if m.group(1):
        low = int(m.group(1)) * 100
        return range(low, low + 100)
    code = int(m.group(2))
    return range(code, code + 1)


def criteria(name: str, option: str = "--criteria") -> list[Threshold]:
    """The thresholds of a built-in criteria set; ConfigError for an unknown name."""
    key = str(name).strip().lower()
    if key not in CRITERIA:
        raise ConfigError(option, f"unknown criteria set {name!r}; accepted: {', '.join(sorted(CRITERIA))}")
    return [parse_threshold(e, option, source=f"criteria {key}") for e in CRITERIA[key]]


def resolve(expressions=(), criteria_name: str | None = None, *, option: str = "--threshold",
            criteria_option: str = "--criteria") -> list[Threshold]:
    """Thresholds from --criteria NAME then each --threshold EXPR (all validated); `option` and
    `criteria_option` name where they came from in errors (e.g. 'load.yaml: thresholds')."""
    out = criteria(criteria_name, criteria_option) if criteria_name else []
    out += [parse_threshold(e, option, source=option) for e in expressions]
    return out


# -- evaluation at the end of a run -------------------------------------------------------------

@dataclass
class ThresholdResult:
    """A verdict. `actual` and `limit` are in the threshold's unit (see Threshold);
    `window_s` is set for a sliding-window verdict (actual: the worst window seen)."""

    expression: str
    metric: str
    op: str
    limit: float
    actual: float | None
    passed: bool
    message: str
    scenario: str | None = None
    relative: bool = False
    source: str = "--threshold"
    text: str = ""
    window_s: float | None = None
    basis: str | None = None       # latency: "all" or "ok" (Threshold.basis)
    censored: bool = False         # `actual` is a lower bound: timeouts recorded at the deadline

    def to_json(self) -> dict:
        return asdict(self)


def _count(v) -> int:
    """A count that may be given as an int or as a kind -> count dict."""
    if isinstance(v, dict):
        return sum(int(n) for n in v.values())
    return int(v or 0)


def _completed(data: dict) -> int:
    if data.get("completed") is not None:
        return int(data["completed"])
    ok = data.get("ok")
    errors = data.get("error_count", data.get("errors"))
    if ok is not None and errors is not None:
        return int(ok) + _count(errors)
    return int(data.get("requests") or 0)


def _errors(data: dict) -> int:
    if "error_count" in data:
        return int(data["error_count"])
    return _count(data.get("errors"))


def measure(th: Threshold, summary: dict) -> tuple[float | None, str]:
    """The value `th` is compared against, from a summary dict, or (None, why not)."""
    data = summary
    if th.scenario:
        scenarios = summary.get("scenarios") or {}
        steps = summary.get("steps") or {}     # Python scenarios: a step's name scopes too
        if th.scenario in scenarios:
            data = scenarios[th.scenario]
        elif th.scenario in steps:
            data = steps[th.scenario]
        else:
            names = ", ".join(sorted(scenarios)) or "none"
            more = f"; steps: {', '.join(sorted(steps))}" if steps else ""
            return None, f"no scenario named {th.scenario!r} in this run (scenarios: {names}{more})"
    completed = _completed(data)
    if th.kind == "latency":
        if th.basis == "ok":
            lat = data.get("latency_ms") or {}
            if lat.get(th.metric) is None:
                return None, "no successful responses to measure latency on"
            return float(lat[th.metric]), ""
        if "all_latency_ms" in data:
            lat = data["all_latency_ms"] or {}
        elif _errors(data) == 0:
            lat = data.get("latency_ms") or {}   # an older summary; without failures the same
        else:
            return None, (f"this summary has no all-requests latency (written before failures "
                          f"were timed, with failures other than timeouts); "
                          f"'ok:{th.metric}' judges the successful responses")
        if lat.get(th.metric) is None:
            return None, "no completed requests to measure latency on"
        return float(lat[th.metric]), ""
    if th.kind == "error_rate":
        if not completed:
            return None, "no completed requests"
        return _errors(data) / completed, ""
    if th.kind == "rps":
        if data.get("rps") is not None:
            return float(data["rps"]), ""
        duration = summary.get("duration_s")
        return (completed / duration, "") if duration else (None, "no run duration")
    if th.kind == "saturated":
        if "saturated" not in summary:
            return None, "the run did not record whether the client was saturated"
        return float(bool(summary["saturated"])), ""
    if th.kind == "status":
        status = data.get("status")
        if status is None:
            return None, "no status codes recorded"
        codes = _status_codes(th.metric)
        n = sum(int(c) for code, c in status.items() if int(code) in codes)
    else:  # baseline_violations
        if data.get("baseline_violations") is not None:
            n = _count(data["baseline_violations"])
        elif not th.scenario and summary.get("scenarios"):
            n = sum(_count(s.get("baseline_violations")) for s in summary["scenarios"].values())
        else:
            return None, "no expected latency band (baseline_min_ms/baseline_max_ms) in this run"
    if th.relative:
        return (n / completed, "") if completed else (None, "no completed requests")
    return float(n), ""


def censored(th: Threshold, summary: dict) -> tuple[str, float] | None:
    """(why, bound in ms) if `th`'s value in `summary` is censored (an all-requests latency key
    that falls among the timeouts), else None."""
    if th.kind != "latency" or th.basis == "ok":
        return None
    data = (summary.get("scenarios") or {}).get(th.scenario) if th.scenario else summary
    info = (data or {}).get("all_latency_censored")
    bound = censored_key(info, th.metric)
    return None if bound is None else (info.get("text") or "timeouts", bound)


def judge(th: Threshold, actual: float | None, why: str = "", window_s: float | None = None,
          note: str = "", censored_by: tuple[str, float] | None = None) -> ThresholdResult:
    """The verdict on `actual`. With `censored_by` (why, the timeout's bound in ms), `actual` is
    a lower bound: the real value is at least it (above it, when it is the timeout itself),
    and the verdict is what holds for every such value; when that could fall on either side of
    the limit nothing can be said, and the threshold fails."""
    is_censored = actual is not None and censored_by is not None
    if actual is None:
        passed = False
        message = f"{th.text}: FAILED, cannot be measured: {why}"
    elif is_censored:
        reason, bound = censored_by
        decided = decide(th.op, round(actual, 9), round(th.limit, 9),
                         strict=round(actual, 9) <= round(bound, 9))
        passed = bool(decided)
        shown = f"≥ {format_value(th, actual)}, censored: {reason}"
        if decided is None:
            message = (f"{th.text}: FAILED, cannot be decided (actual {shown}{note}); timed-out "
                       f"requests only show they took longer than the timeout: set --timeout "
                       f"above {format_value(th, th.limit)} to measure it")
        else:
            message = f"{th.text}: {'passed' if passed else 'FAILED'} (actual {shown}{note})"
    else:
        passed = bool(OPS[th.op](round(actual, 9), round(th.limit, 9)))
        verdict = "passed" if passed else "FAILED"
        message = f"{th.text}: {verdict} (actual {format_value(th, actual)}{note})"
    if window_s is not None:
        message = f"[{window_s:g} s window] {message}"
    return ThresholdResult(th.expression, th.metric, th.op, th.limit, actual, passed, message,
                           th.scenario, th.relative, th.source, th.text, window_s, th.basis,
                           is_censored)


def evaluate(thresholds: list[Threshold], summary: dict) -> list[ThresholdResult]:
    """Judge each threshold against a run's summary (end-of-run figures)."""
    return [judge(th, *measure(th, summary), censored_by=censored(th, summary))
            for th in thresholds]


# -- sliding window during a run ---------------------------------------------------------------

#: Interval rows carry these latency columns; p95 is bounded by its neighbours (see below).
_ROW_PERCENTILE = {"p50": ("p50", "p50"), "p90": ("p90", "p90"), "p95": ("p99", "p90"),
                   "p99": ("p99", "p99"), "p999": ("p999", "p999")}
_PERCENTILE = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


@dataclass(frozen=True)
class SparseHistogram:
    """An interval's latency histogram kept small for the window: its non-empty buckets."""
    index: np.ndarray
    counts: np.ndarray
    min: int
    max: int

    @classmethod
    def of(cls, h: Histogram) -> "SparseHistogram":
        nz = np.flatnonzero(h.counts)
        return cls(nz, h.counts[nz].copy(), h.min, h.max)


def merge_histograms(parts) -> Histogram:
    """The exact histogram of several intervals (Histogram or SparseHistogram each)."""
    merged = Histogram.empty()
    for part in parts:
        if isinstance(part, Histogram):
            merged += part
            continue
        if not part.counts.size:
            continue
        merged.counts[part.index] += part.counts
        s = merged.slots
        s[1], s[2] = min(int(s[1]), part.min), max(int(s[2]), part.max)
    merged.slots[0] = int(merged.counts.sum())
    return merged


def _window_latency(th: Threshold, timed: list[dict]) -> tuple[float | None, str] | None:
    """The exact latency figure of the window from the rows' interval histograms (None when a
    row carries none): percentiles of the merged histogram, as for the whole run. The
    successes' (`latency_histogram`) for an `ok:` threshold, else every request's
    (`all_latency_histogram`)."""
    key = "latency_histogram" if th.basis == "ok" else "all_latency_histogram"
    parts = [r.get(key) for r in timed]
    if any(p is None for p in parts):
        return None
    h = merge_histograms(parts)
    if h.total == 0:
        return None, ("no successful responses in the window" if th.basis == "ok"
                      else "no completed requests in the window")
    if th.metric == "mean":
        us = h.mean()
    elif th.metric == "max":
        us = h.max
    else:
        us = h.value_at_percentile(_PERCENTILE[th.metric])
    return round(us / 1000.0, 3), ""


def windowable(th: Threshold) -> bool:
    """Interval rows hold run totals only: no scenarios, no expected-latency bands. Saturation
    is judged on the whole run: a 1 s row flags a passing hiccup too (the rows still show it)."""
    return th.scenario is None and th.metric not in ("baseline_violations", "saturated")


def window_value(th: Threshold, rows: list[dict]) -> tuple[float | None, str]:
    """The value of `th` over merged 1 s interval rows (results.interval_schema keys), or
    (None, why).

    Counts, error rate and rps are exact over the window. Latency is exact when the rows carry
    their interval's histogram (`latency_histogram`: a Histogram or SparseHistogram, as the
    coordinator hands them to companions): the window's histogram is their bucket-wise sum,
    and its percentiles are the run's maths over the window. Rows without histograms (interval
    tables read back) give only a bound for a percentile, on the side that makes the threshold
    harder to pass: the window's pX lies between the smallest and the largest of the
    intervals' pX, so an upper limit (<, <=, ==, !=) is checked against the largest interval
    value and a lower limit (>, >=) against the smallest; p95 is bounded by the intervals' p99
    (from above) and p90 (from below). Latency is over every completed request (the
    `all_latency_*` columns and histograms), or the successes for an `ok:` threshold.
    """
    completed = sum(r["completed"] for r in rows)
    if th.kind == "latency":
        col, count = ("latency_ms", "ok") if th.basis == "ok" else ("all_latency_ms", "completed")
        timed = [r for r in rows if r.get(f"{col}_max") is not None and r[count]]
        if not timed:
            return None, ("no successful responses in the window" if th.basis == "ok"
                          else "no completed requests in the window")
        exact = _window_latency(th, timed)
        if exact is not None:
            return exact
        if th.metric == "mean":
            n = sum(r[count] for r in timed)
            return sum(r[f"{col}_mean"] * r[count] for r in timed) / n, ""
        if th.metric == "max":
            return max(r[f"{col}_max"] for r in timed), ""
        upper, lower = _ROW_PERCENTILE[th.metric]
        if th.op in (">", ">="):
            return min(r[f"{col}_{lower}"] for r in timed), f", lowest 1 s interval {lower}"
        return max(r[f"{col}_{upper}"] for r in timed), f", highest 1 s interval {upper}"
    if th.kind == "error_rate":
        if not completed:
            return None, "no completed requests in the window"
        return sum(r["errors"] for r in rows) / completed, ""
    if th.kind == "rps":
        span = sum(r["interval_s"] for r in rows)
        return (completed / span, "") if span else (None, "empty window")
    if th.kind == "status":
        codes = _status_codes(th.metric)
        n = 0
        for r in rows:
            status = r.get("status") or {}
            items = status.items() if isinstance(status, dict) else status
            n += sum(int(c) for code, c in items if int(code) in codes)
        if th.relative:
            return (n / completed, "") if completed else (None, "no completed requests in the window")
        return float(n), ""
    return None, "not measurable over a window"


def window_censored(th: Threshold, rows: list[dict], actual: float | None,
                    bound_ms: float | None) -> tuple[str, float] | None:
    """(why, bound) if a window value is censored, else None: an all-requests latency in a
    window with timeouts, where it is the mean or reached the timeout (where they are recorded)."""
    if th.kind != "latency" or th.basis == "ok" or actual is None or not bound_ms:
        return None
    timeouts = sum(r.get("errors_timeout") or 0 for r in rows)
    if not timeouts or (th.metric != "mean" and actual < bound_ms):
        return None
    from ..results.censoring import format_ms
    return f"{timeouts} timed out at {format_ms(bound_ms)} in the window", bound_ms


class WindowThresholds(Companion):
    """Judges thresholds over the last `window_s` seconds after each 1 s interval, once a full
    window of data exists (the run's first seconds are never judged on less). With
    `abort_on_fail` the first failing window stops the run: Abort(reason, EXIT_THRESHOLDS).
    Scenario-scoped and baseline_violations thresholds are left to the end-of-run verdict
    (interval rows carry run totals only)."""

    name = "threshold_window"
    _TOLERANCE_S = 0.1   # interval boundaries jitter by milliseconds around whole seconds

    def __init__(self, thresholds: list[Threshold], window_s: float = DEFAULT_WINDOW_S,
                 abort_on_fail: bool = False):
        self.thresholds = [th for th in thresholds if windowable(th)]
        self.skipped = [th.expression for th in thresholds if not windowable(th)]
        self.window_s = float(window_s)
        self.abort_on_fail = abort_on_fail
        self.rows: list[dict] = []
        self.evaluations = 0
        self.state = [{"worst": None, "failures": 0, "first_failed_t_s": None,
                       "unmeasured": 0, "note": "", "censored_by": None} for _ in self.thresholds]
        self.abort_reason: str | None = None
        self.bound_ms: float | None = None   # --timeout: where timeouts are recorded
        self._passing: list[bool | None] = [None] * len(self.thresholds)   # for events

    def prepare(self, config, out_dir: Path) -> None:
        self.rows.clear()
        self.bound_ms = config.timeout * 1000.0

    def on_interval(self, t_s: float, row: dict) -> Abort | None:
        for key in ("latency_histogram", "all_latency_histogram"):
            if isinstance(row.get(key), Histogram):
                row = dict(row, **{key: SparseHistogram.of(row[key])})
        self.rows.append(row)
        start = t_s - self.window_s - self._TOLERANCE_S
        self.rows = [r for r in self.rows if r["t_s"] - r["interval_s"] >= start]
        if sum(r["interval_s"] for r in self.rows) < self.window_s - self._TOLERANCE_S:
            return None
        self.evaluations += 1
        abort = None
        for i, (th, st) in enumerate(zip(self.thresholds, self.state)):
            actual, note = window_value(th, self.rows)
            if actual is None:
                st["unmeasured"] += 1
                continue
            censored_by = window_censored(th, self.rows, actual, self.bound_ms)
            if st["worst"] is None or _worse(th, actual, st["worst"]):
                st["worst"], st["note"], st["censored_by"] = actual, note, censored_by
            passed = judge(th, actual, censored_by=censored_by).passed
            self._announce(i, th, passed, actual, t_s)
            if passed:
                continue
            st["failures"] += 1
            if st["first_failed_t_s"] is None:
                st["first_failed_t_s"] = round(t_s, 3)
            if self.abort_on_fail and abort is None and self.abort_reason is None:
                shown = (f"≥ {format_value(th, actual)}{note}, censored: {censored_by[0]}" if censored_by
                         else f"{format_value(th, actual)}{note}")
                self.abort_reason = (f"threshold {th.text} failed over the {self.window_s:g} s "
                                     f"window ending at {t_s:.1f} s: {shown}")
                abort = Abort(self.abort_reason, EXIT_THRESHOLDS)
        return abort

    def _announce(self, i: int, th, passed: bool, actual, t_s: float) -> None:
        """A threshold's verdict over the window changed: an event for the run's control
        (the control API's WebSocket shows it)."""
        if passed == self._passing[i]:
            return
        self._passing[i] = passed
        if self.control is not None:
            self.control.emit({"event": "threshold", "threshold": th.text, "passed": passed,
                               "value": actual, "window_s": self.window_s, "t_s": round(t_s, 3)})

    def finish(self) -> dict:
        return {
            "window_s": self.window_s,
            "abort_on_fail": self.abort_on_fail,
            "evaluations": self.evaluations,
            "aborted": self.abort_reason,
            "skipped": self.skipped,
            "thresholds": [dict(asdict(th), text=th.text, worst=st["worst"], note=st["note"],
                                failures=st["failures"], first_failed_t_s=st["first_failed_t_s"],
                                unmeasured=st["unmeasured"], censored_by=st["censored_by"])
                           for th, st in zip(self.thresholds, self.state)],
        }


def _worse(th: Threshold, a: float, b: float) -> bool:
    """Is `a` further on the failing side of `th` than `b`?"""
    return a < b if th.op in (">", ">=") else a > b


def window_results(window: dict | None) -> list[ThresholdResult]:
    """Verdicts from a WindowThresholds.finish() dict (summary["threshold_window"]): a threshold
    failed if any judged window failed; `actual` is the worst window value."""
    if not window:
        return []
    out = []
    for d in window["thresholds"]:
        th = Threshold(d["expression"], d["metric"], d["op"], d["limit"], d["relative"],
                       d["scenario"], d["source"], d.get("basis"))
        if window["evaluations"] == 0:
            out.append(judge(th, None, f"the run was shorter than one {window['window_s']:g} s window",
                             window["window_s"]))
            continue
        r = judge(th, d["worst"], "no window could be measured", window["window_s"],
                  note=d.get("note", ""),
                  censored_by=tuple(d["censored_by"]) if d.get("censored_by") else None)
        if d["failures"]:
            r.passed = False
            r.message = (f"[{window['window_s']:g} s window] {th.text}: FAILED in {d['failures']} of "
                         f"{window['evaluations']} windows, first at {d['first_failed_t_s']} s "
                         f"(worst {'≥ ' if d.get('censored_by') else ''}{format_value(th, d['worst'])}"
                         f"{d.get('note', '')}" + (f", censored: {d['censored_by'][0]}" if d.get("censored_by") else "")
                         + ")")
        out.append(r)
    return out


# -- stored verdicts ---------------------------------------------------------------------------

def save(out_dir: str | os.PathLike, results: list[ThresholdResult], *,
         criteria_name: str | None = None) -> Path:
    """Write thresholds.json into a results directory, so reports can be rebuilt from it."""
    path = Path(out_dir) / THRESHOLDS_FILE
    data = {"format_version": FORMAT_VERSION, "criteria": criteria_name,
            "passed": all(r.passed for r in results),
            "thresholds": [r.to_json() for r in results]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load(results_dir: str | os.PathLike) -> list[dict]:
    """The stored verdicts of a results directory ([] when none were evaluated)."""
    path = Path(results_dir) / THRESHOLDS_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: thresholds format version {data.get('format_version')}, "
                         f"this stressx reads {FORMAT_VERSION}")
    return data["thresholds"]
