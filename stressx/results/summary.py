"""The run's summary figures (summary.json), computed from the shards' final readings.

Honesty rules: every completed request is timed. `latency_ms` counts successful responses only
(errors are never timed as successes), `failure_latency_ms` the failures (to the failure; a
timeout at its deadline), and `all_latency_ms` both, which is what percentile thresholds judge
by default: a timeout there is censored at the deadline, and `all_latency_censored` says how
many and which percentiles that makes a lower bound. In the open model latencies are measured
from the intended send time, and the run is flagged `saturated`, with its reasons, whenever
the client did not keep its schedule.

Accounting (README "What the numbers mean"): `due` = `requests` + `dropped` (a due send that
never reached a socket is dropped, by reason, and is neither a request nor an error);
`requests` = `completed` + `abandoned`; `completed` = `ok` + `error_count`. Every rate names
its window: `sent_rps` = requests / `send_window_s`, `rps` = completed / `run_window_s`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .._version import __version__
from ..engine import _core
from .censoring import censoring
from .files import (ALL_LATENCY_LOG, FORMAT_VERSION, LATENCY_LOG, latency_over, read_intervals,
                    read_latency_log)
from .hdr import Histogram

ERROR_KINDS = _core.ERROR_KINDS
DROP_REASONS = _core.DROP_REASONS
LATENCY_KEYS = (("min", None), ("mean", None), ("p50", 50.0), ("p90", 90.0), ("p95", 95.0),
                ("p99", 99.0), ("p999", 99.9), ("max", None))
SATURATION_RATE_RATIO = 0.995      # achieved send rate below this share of the target
SATURATION_LAG_P50_MS = 1.0        # the typical send this late: the client runs behind
SATURATION_LATE_MS = 10.0          # a send this late is a missed slot, not jitter...
SATURATION_LATE_SHARE = 0.01       # ...and more than this share of them is a pattern


def latency_ms(h: Histogram) -> dict | None:
    """min, mean and percentiles in milliseconds; None when nothing was recorded."""
    if h.total == 0:
        return None
    out = {}
    for key, p in LATENCY_KEYS:
        if key == "min":
            us = h.min
        elif key == "max":
            us = h.max
        elif key == "mean":
            us = h.mean()
        else:
            us = h.value_at_percentile(p)
        out[key] = round(us / 1000.0, 3)
    return out


def error_rate(s: dict) -> float | None:
    """Errors over completed requests (a fraction); None when nothing completed."""
    completed = s.get("completed")
    if completed is None:
        completed = (s.get("ok") or 0) + count_of(s.get("error_count", s.get("errors")))
    errors = s["error_count"] if "error_count" in s else count_of(s.get("errors"))
    return errors / completed if completed else None


def count_of(v) -> int:
    """A count given as a number or as counts by kind (a dict)."""
    if isinstance(v, dict):
        return sum(int(n) for n in v.values())
    return int(v or 0)


def _late_share(h: Histogram, slack_ms: float = 0.0) -> float:
    """The share of sends later than SATURATION_LATE_MS beyond the timer slack (h: send lag,
    microseconds)."""
    from .hdr import LOWEST_EQUIVALENT
    late = int(h.counts[LOWEST_EQUIVALENT > (SATURATION_LATE_MS + slack_ms) * 1000].sum())
    return late / h.total if h.total else 0.0


def lag_ms(h: Histogram, slack_ms: float = 0.0) -> dict | None:
    """Send lag percentiles, and the share of sends later than SATURATION_LATE_MS (with a
    timer slack, also beyond it: `share_over_slack_plus_10ms`, what the saturation rule reads)."""
    if h.total == 0:
        return None
    out = {"p50": round(h.value_at_percentile(50) / 1000, 3),
           "p99": round(h.value_at_percentile(99) / 1000, 3),
           "max": round(h.max / 1000, 3),
           f"share_over_{SATURATION_LATE_MS:g}ms": round(_late_share(h), 6)}
    if slack_ms:
        out[f"share_over_slack_plus_{SATURATION_LATE_MS:g}ms"] = round(_late_share(h, slack_ms), 6)
    return out


def interval_saturation(row: dict, lag: Histogram | None, slack_ms: float = 0.0) -> list[str]:
    """Why the client fell behind its schedule during one interval (open model; empty: it
    did not), in short words for the progress line and the interval rows: 'send lag' (the
    scheduler itself ran late), 'connection cap' (sends waited with every allowed connection
    busy), 'queue' (sends waited for a connection: a backlog, or deadlines passed in it),
    'fd limit' (connects failed for want of file descriptors)."""
    if row.get("rate_target") is None:
        return []
    due = row.get("due") or 0
    share = SATURATION_LATE_SHARE * due
    out = []
    if lag is not None and lag.total and (
            lag.value_at_percentile(50) / 1000 > SATURATION_LAG_P50_MS + slack_ms
            or _late_share(lag, slack_ms) > SATURATION_LATE_SHARE):
        out.append("send lag")
    if row.get("dropped_connection_cap") or (row.get("late_at_cap") or 0) > max(share, 1):
        out.append("connection cap")
    if (row.get("dropped_deadline") or row.get("dropped_queue_full")
            or (row.get("queued") or 0) > max(share, 1)):
        out.append("queue")
    if row.get("errors_fd_limit"):
        out.append("fd limit")
    return out


#: A shard above CPU_BUSY_PCT of its core for CPU_BUSY_S in a row (Locust's rule) is busy:
#: its latencies are then the client's as much as the target's.
CPU_BUSY_PCT = 90.0
CPU_BUSY_S = 5.0


def shard_cpu_pct(cpu_from_ns: int, cpu_to_ns: int, from_ns: int, to_ns: int) -> float | None:
    """A shard's CPU utilisation between two instants, in % of one core (100 = one core all
    the time): its process CPU time (kernel accounting) over the wall time. None without a
    window or a CPU reading."""
    if to_ns <= from_ns or cpu_to_ns <= 0 or cpu_from_ns <= 0:
        return None
    return round(max(cpu_to_ns - cpu_from_ns, 0) * 100.0 / (to_ns - from_ns), 2)


class CpuBusyWatch:
    """One shard's run of consecutive intervals above CPU_BUSY_PCT: add() each interval row's
    utilisation in time order; it says whether the row ends a run of CPU_BUSY_S or more (the
    row's `cpu_busy` flag). `from_t_s`: where the first such run began (None: never busy)."""

    def __init__(self) -> None:
        self.run_s = 0.0
        self.run_from_t_s: float | None = None
        self.from_t_s: float | None = None

    def add(self, t_s: float, span_s: float, pct: float | None) -> bool:
        if pct is None or pct <= CPU_BUSY_PCT:
            self.run_s, self.run_from_t_s = 0.0, None
            return False
        if self.run_from_t_s is None:
            self.run_from_t_s = t_s - span_s
        self.run_s += span_s
        busy = self.run_s >= CPU_BUSY_S - 1e-3    # rows are rounded to the microsecond
        if busy and self.from_t_s is None:
            self.from_t_s = round(self.run_from_t_s, 3)
        return busy


def build_summary(config, readings: list, histograms: dict[str, Histogram], *,
                  send_window_s: float, run_window_s: float, shards: list[dict],
                  interrupted: str | None, aborted: str | None, started: bool = True,
                  workers_requested: int | None = None, notes: list[str] = (),
                  saturated_intervals: dict | None = None, shape=None,
                  rate_share: float = 1.0) -> dict:
    """`send_window_s`: from the start to the end of sending (the duration's end, the stop, or
    a spent budget's last write); `run_window_s`: from the start to the later of that and the
    last completion. `started` False: the run was stopped before its common start instant
    (nothing was sent); `notes` are one-line remarks on how the run was set up (fewer workers
    than asked). `saturated_intervals`: {count, first_t_s, reasons} of the interval rows
    flagged while the run went on. `shape`: the rate shape followed, live changes included
    (adaptive ramps, safety back-off); default the config's. `rate_share`: the part of that
    shape these readings' shards send (one host of a cluster run: its shards / all shards)."""
    def total(name):
        return sum(r[name] for r in readings)

    def by_kind(slot):
        out = {}
        for i, kind in enumerate(ERROR_KINDS):
            n = sum(int(r.block(slot, len(ERROR_KINDS))[i]) for r in readings)
            if n:
                out[kind] = n
        return out

    errors = {}
    for i, kind in enumerate(ERROR_KINDS):
        n = sum(int(r.errors()[i]) for r in readings)
        if n:
            errors[kind] = n
    dropped_reasons = {reason: sum(int(r.block("drop_reasons", len(DROP_REASONS))[i])
                                   for r in readings)
                       for i, reason in enumerate(DROP_REASONS)}
    connect_failures = by_kind("connect_fail_kinds")
    status = {}
    for r in readings:
        for code in r.status().nonzero()[0]:
            status[str(code)] = status.get(str(code), 0) + int(r.status()[code])
    sent, completed = total("sent"), total("completed")
    send_window_s = max(send_window_s, 1e-9)
    run_window_s = max(run_window_s, send_window_s)
    slack_ms = getattr(config, "timer_slack", 0.0) * 1000 if config.open_model else 0.0
    send_lag = lag_ms(histograms["send_lag"], slack_ms) if config.open_model else None
    rate_target = None
    shape = shape if shape is not None else config.shape
    if config.open_model:
        # over the send window, from the shape followed (with the live changes)
        rate_target = round(rate_share * shape.integral(send_window_s) / send_window_s, 3)
    summary = {
        "format_version": FORMAT_VERSION,
        "stressx_version": __version__,
        "url": config.url,
        "method": config.method,
        "model": config.model,
        "workers": config.workers,
        "workers_requested": workers_requested if workers_requested is not None else config.workers,
        "connections": config.connections,
        "due": total("due"),
        "requests": sent,
        "completed": completed,
        "ok": total("ok"),
        "error_count": total("errors"),
        "errors": errors,
        "status": dict(sorted(status.items())),
        "duration_s": round(run_window_s, 6),
        "send_window_s": round(send_window_s, 6),
        "run_window_s": round(run_window_s, 6),
        "rate_target": rate_target,
        "shape": shape.describe() if shape else (
            config.users_shape.describe() if config.users_shape else None),
        "rps": round(completed / run_window_s, 3),
        "sent_rps": round(sent / send_window_s, 3),
        "latency_ms": latency_ms(histograms["latency"]),
        "latency_uncorrected_ms": latency_ms(histograms["latency_uncorrected"]),
        "failure_latency_ms": latency_ms(histograms["failure_latency"]),
        "all_latency_ms": latency_ms(histograms["all_latency"]),
        "all_latency_censored": censoring(histograms["all_latency"].total, errors.get("timeout", 0),
                                          config.timeout * 1000.0),
        "latency_basis": ("intended send time (coordinated-omission corrected)" if config.open_model
                          else "actual send time (closed model: each request waits for the last)"),
        "send_lag_ms": send_lag,
        # open model: sends due within this of the first share a wake-up (send lag up to it)
        "timer_slack_ms": round(slack_ms, 6) if config.open_model else None,
        "late": total("late"),
        "late_at_max_connections": total("late_at_cap"),
        "dropped": total("dropped"),
        "dropped_reasons": dropped_reasons,
        "abandoned": total("abandoned"),
        "bytes_in": total("bytes_in"),
        "bytes_out": total("bytes_out"),
        "connect_attempts": total("connect_attempts"),
        "connections_opened": total("connects"),
        "connections_closed_stray": total("stray_closes"),
        # https: handshakes that resumed a session (of connections_opened); None for http
        "tls_resumed": (total("tls_resumed") if config.target is not None
                        and config.target.scheme == "https" else None),
        "connect_failures": sum(connect_failures.values()),
        "connect_failures_by_kind": connect_failures,
        "prewarm_connect_failures": by_kind("prewarm_fail_kinds"),
        "client_cpu_s": round((total("cpu_user_ns") + total("cpu_sys_ns")) / 1e9, 6),
        "client_cpu_us_per_request": (round((total("cpu_user_ns") + total("cpu_sys_ns")) / 1e3 / sent, 3)
                                      if sent else None),
        # a shard above CPU_BUSY_PCT of its core for CPU_BUSY_S in a row (see shards[i])
        "client_cpu_busy": any(sh.get("cpu_busy_from_t_s") is not None for sh in shards),
        "insecure": bool(config.insecure),
        "interrupted": interrupted,
        "aborted": aborted,
        "shards": shards,
        "notes": list(notes),
    }
    if config.workload is not None:
        summary["workload"] = config.workload
        summary["scenarios"] = scenario_summaries(config, readings, histograms)
    if getattr(config, "flow", None):
        summary.update(flow_summaries(config, readings, histograms))
    reasons = saturation_reasons(summary) if started else []
    summary["saturated"] = bool(reasons)
    summary["saturation"] = {"reasons": reasons, "target_rate": rate_target,
                             "achieved_rate": summary["sent_rps"],
                             "issued_rate": round(_issued(summary) / send_window_s, 3),
                             "intervals": saturated_intervals or {"count": 0, "first_t_s": None,
                                                                  "reasons": []},
                             } if config.open_model or reasons else None
    return summary


def scenario_histograms(readings: list, n: int, which: str = "latency") -> list[Histogram]:
    """Each scenario's `latency` (successes) or `all_latency` histogram, merged over shards."""
    merged = [Histogram.empty() for _ in range(n)]
    for r in readings:
        for i in range(n):
            merged[i] += r.scenario_histogram(i, which)
    return merged


def scenario_summaries(config, readings: list, histograms: dict[str, Histogram]) -> dict:
    """Per-scenario figures, merged over shards exactly like the totals (the merged
    histograms arrive as histograms['scenario:NAME'] and, all requests, 'scenario_all:NAME')."""
    out = {}
    hists = [histograms[f"scenario:{sc.name}"] for sc in config.scenarios]
    all_hists = [histograms[f"scenario_all:{sc.name}"] for sc in config.scenarios]
    for i, sc in enumerate(config.scenarios):
        c = {k: sum(r.scenario(i)[k] for r in readings)
             for k in ("sent", "ok", "errors", "violations", "too_fast", "too_slow", "bytes_in")}
        kinds = sum(r.scenario(i)["errors_by_kind"] for r in readings)
        done = c["ok"] + c["errors"]
        if getattr(sc, "python", False):
            out[sc.name] = {
                "description": sc.description, "weight": sc.weight, "python": True,
                "iterations": c["sent"], "ok": c["ok"], "error_count": c["errors"],
                "errors": {kind: int(kinds[j]) for j, kind in enumerate(ERROR_KINDS) if kinds[j]},
                "success_rate": round(c["ok"] / done, 6) if done else None,
                "latency_ms": latency_ms(hists[i]),
                "all_latency_ms": latency_ms(all_hists[i]),
            }
            continue
        out[sc.name] = {
            "description": sc.description, "weight": sc.weight,
            "expect_status": list(sc.expect_status) or "2xx",
            "requests": c["sent"], "ok": c["ok"], "error_count": c["errors"],
            "errors": {kind: int(kinds[j]) for j, kind in enumerate(ERROR_KINDS) if kinds[j]},
            "success_rate": round(c["ok"] / done, 6) if done else None,
            "latency_ms": latency_ms(hists[i]),
            "all_latency_ms": latency_ms(all_hists[i]),
            "all_latency_censored": censoring(all_hists[i].total, int(kinds[ERROR_KINDS.index("timeout")]),
                                              config.timeout * 1000.0),
            "baseline_min_ms": sc.baseline_min_ms, "baseline_max_ms": sc.baseline_max_ms,
            "baseline_violations": c["violations"], "too_fast": c["too_fast"], "too_slow": c["too_slow"],
            "baseline_violation_rate": round(c["violations"] / c["ok"], 6) if c["ok"] else None,
        }
    return out


def step_histograms(readings: list, which: str = "latency") -> dict[str, Histogram]:
    """Each named step's histogram, merged over shards by name (a shard numbers its steps in
    the order it met them)."""
    merged: dict[str, Histogram] = {}
    for r in readings:
        for j, name in enumerate(r.step_names()):
            h = r.step_histogram(j, which)
            if name in merged:
                merged[name] += h
            else:
                merged[name] = h.copy()
    return merged


def flow_summaries(config, readings: list, histograms: dict[str, Histogram]) -> dict:
    """Python scenarios: `steps` (per request name: requests, ok, errors, latency from each
    request's send), `checks` (passed/failed by name), `scenario_errors` (exceptions raised by
    user code, by type), `tracebacks` (the first few distinct ones), `step_overflow` and
    `redirects`."""
    steps: dict[str, dict] = {}
    for r in readings:
        for j, name in enumerate(r.step_names()):
            c = r.step(j)
            s = steps.setdefault(name, {"requests": 0, "ok": 0, "error_count": 0, "errors": {}})
            s["requests"] += c["sent"]
            s["ok"] += c["ok"]
            s["error_count"] += c["errors"]
            for k, kind in enumerate(ERROR_KINDS):
                if c["errors_by_kind"][k]:
                    s["errors"][kind] = s["errors"].get(kind, 0) + int(c["errors_by_kind"][k])
    for name, s in steps.items():
        done = s["ok"] + s["error_count"]
        s["success_rate"] = round(s["ok"] / done, 6) if done else None
        s["latency_ms"] = latency_ms(histograms.get(f"step:{name}", Histogram.empty()))
        s["all_latency_ms"] = latency_ms(histograms.get(f"step_all:{name}", Histogram.empty()))
    checks: dict[str, dict] = {}
    exceptions: dict[str, int] = {}
    tracebacks: list[str] = []
    for r in readings:
        for kind, name, a, b in r.counters():
            if kind == "check":
                c = checks.setdefault(name, {"passed": 0, "failed": 0})
                c["passed"] += a
                c["failed"] += b
            else:
                exceptions[name] = exceptions.get(name, 0) + a
        for tb in r.tracebacks():
            if tb not in tracebacks:
                tracebacks.append(tb)
    return {"steps": dict(sorted(steps.items())), "checks": dict(sorted(checks.items())),
            "scenario_errors": dict(sorted(exceptions.items())), "tracebacks": tracebacks,
            "step_overflow": sum(r["step_overflow"] for r in readings),
            "counter_overflow": sum(r["counter_overflow"] for r in readings),
            "redirects": sum(r["redirects"] for r in readings),
            # open model: due iterations still waiting for a free user when sending ended
            "iterations_queued_at_end": sum(r["iter_queued"] for r in readings)}


def _issued(s: dict) -> int:
    """Sends the client issued in the send window: written, or waiting for a connection when
    sending ended. Those still waiting are dropped ('run_ended') and show in `dropped`, but a
    queue at the very end is the target's slowness as often as the client's, so it does not
    by itself make a run saturated; a client at its connection cap, behind its schedule or
    dropping sends during the run does."""
    if "steps" in s:     # Python scenarios: the schedule is of iterations
        return (sum(sc.get("iterations", 0) for sc in (s.get("scenarios") or {}).values())
                + s.get("iterations_queued_at_end", 0))
    return s["requests"] + (s.get("dropped_reasons") or {}).get("run_ended", 0)


def saturation_reasons(s: dict) -> list[str]:
    """Why the client failed to deliver the requested schedule (empty: it did). Running out of
    file descriptors is the client's limit in either model; the rest judge the open model."""
    reasons = []
    fd = s["errors"].get("fd_limit")
    if fd:
        reasons.append(f"{fd} requests failed because the client ran out of file descriptors "
                       "(RLIMIT_NOFILE): lower --max-connections / --connections or raise the "
                       "limit (ulimit -n)")
    target = s["rate_target"]
    if not target:
        return reasons
    at_cap = s["late_at_max_connections"]
    if at_cap and at_cap > SATURATION_LATE_SHARE * max(s["requests"], 1):
        reasons.append(f"{at_cap} sends waited because all --max-connections were busy")
    dropped = s.get("dropped_reasons") or {}
    if dropped.get("connection_cap"):
        reasons.append(f"{dropped['connection_cap']} sends dropped: their deadline passed waiting "
                       f"for a connection, all --max-connections busy (connection cap)")
    if dropped.get("deadline"):
        reasons.append(f"{dropped['deadline']} sends dropped: their deadline passed waiting for "
                       f"a connection to open (queue)")
    if dropped.get("queue_full"):
        reasons.append(f"{dropped['queue_full']} sends dropped: the queue of sends waiting for "
                       f"a connection was full (queue)")
    window = s.get("send_window_s", s["duration_s"])
    issued = _issued(s) / window if window else 0.0
    if issued < SATURATION_RATE_RATIO * target:
        reasons.append(f"the client issued {issued:.1f}/s of the {target:g}/s asked over the "
                       f"{window:g} s send window (written, or still waiting for a connection "
                       f"when it ended; {s['sent_rps']:.1f}/s written)")
    lag = s["send_lag_ms"]
    slack = s.get("timer_slack_ms") or 0.0
    beyond = f" beyond the {slack:g} ms timer slack" if slack else ""
    if lag and lag["p50"] > SATURATION_LAG_P50_MS + slack:
        reasons.append(f"scheduler lag p50 {lag['p50']} ms: sends typically went out behind "
                       f"schedule{beyond}")
    share = lag and (lag.get(f"share_over_slack_plus_{SATURATION_LATE_MS:g}ms") if slack
                     else lag[f"share_over_{SATURATION_LATE_MS:g}ms"])
    if share and share > SATURATION_LATE_SHARE:
        reasons.append(f"{share:.1%} of sends went out more than {SATURATION_LATE_MS:g} ms late{beyond}")
    return reasons


def range_figures(path: str | os.PathLike, from_s: float = 0.0, to_s: float = math.inf) -> dict:
    """A run's figures over the intervals lying within [from_s, to_s] (seconds after its start
    instant): counts from intervals.arrows, latency percentiles EXACT from the same intervals'
    histograms in latency.hlog (merged bucket by bucket, the maths of the whole-run summary).
    Summary-shaped, so thresholds.evaluate() judges it; the all-requests latency comes from
    all_latency.hlog (absent before format 3: then only when nothing failed). ValueError when
    the run has no latency.hlog (older versions) or no interval lies in the range."""
    p = Path(path)
    log = p / LATENCY_LOG
    if not log.exists():
        raise ValueError(f"{p} has no {LATENCY_LOG} (runs of older stressx versions did not "
                         f"write one): exact percentiles over a time range need it")
    merged, used, first, last = Histogram.empty(), [], None, None
    for iv in read_latency_log(log):
        first = iv.start_s if first is None else first
        last = iv.end_s
        if iv.start_s >= from_s - 1e-3 and iv.end_s <= to_s + 1e-3:
            merged += iv.histogram
            used.append((iv.start_s, iv.end_s))
    asked = f"{from_s:g} s .. " + ("the end" if math.isinf(to_s) else f"{to_s:g} s")
    if not used:
        covers = "no interval" if first is None else f"{first:g} s .. {last:g} s"
        raise ValueError(f"no whole interval of {log} lies within {asked} (the log covers {covers})")
    lo, hi = used[0][0], used[-1][1]
    rows = [r for r in read_intervals(p / "intervals.arrows").to_pylist()
            if r["t_s"] - r["interval_s"] >= lo - 1e-3 and r["t_s"] <= hi + 1e-3]
    duration = max(hi - lo, 1e-9)
    totals = {k: sum(r[k] for r in rows) for k in ("sent", "completed", "ok", "errors")}
    errors = {kind: n for kind in ERROR_KINDS
              if (n := sum(r.get(f"errors_{kind}") or 0 for r in rows))}
    status: dict[str, int] = {}
    for r in rows:
        for code, n in (r["status"] or []):
            status[str(code)] = status.get(str(code), 0) + n
    all_merged, all_used = (latency_over(p / ALL_LATENCY_LOG, from_s, to_s)
                            if (p / ALL_LATENCY_LOG).exists() else (None, []))
    out_all = {}
    if all_used:
        manifest = json.loads((p / "manifest.json").read_text())
        timeout_s = (manifest.get("config") or {}).get("timeout")
        out_all = {"all_latency_ms": latency_ms(all_merged),
                   "all_latency_censored": censoring(all_merged.total, errors.get("timeout", 0),
                                                     float(timeout_s) * 1000.0 if timeout_s else None)}
    elif totals["errors"] == 0:
        out_all = {"all_latency_ms": latency_ms(merged), "all_latency_censored": None}
    return {
        "range_s": [round(lo, 3), round(hi, 3)],
        "asked": asked,
        "intervals": len(used),
        "duration_s": round(duration, 6),
        "requests": totals["sent"],
        "completed": totals["completed"],
        "ok": totals["ok"],
        "error_count": totals["errors"],
        "errors": errors,
        "status": dict(sorted(status.items())),
        "rps": round(totals["completed"] / duration, 3),
        "sent_rps": round(totals["sent"] / duration, 3),
        "latency_ms": latency_ms(merged),
        **out_all,
        "latency_basis": f"exact: the {len(used)} intervals' histograms of {LATENCY_LOG}, merged",
    }
