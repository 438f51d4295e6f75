"""The run's summary figures (summary.json), computed from the shards' final readings.

Honesty rules: every completed request is timed. `latency_ms` counts successful responses only
(errors are never timed as successes), `failure_latency_ms` the failures (to the failure; a
timeout at its deadline), and `all_latency_ms` both, which is what percentile thresholds judge
by default: a timeout there is censored at the deadline, and `all_latency_censored` says how
many and which percentiles that makes a lower bound. In the open model latencies are measured
from the intended send time, and the run is flagged `saturated`, with its reasons, whenever
the client did not keep its schedule.
"""
from __future__ import annotations

from . import _core
from ._version import __version__
from .censoring import censoring
from .hdr import Histogram
from .results import FORMAT_VERSION

ERROR_KINDS = _core.ERROR_KINDS
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


def lag_ms(h: Histogram) -> dict | None:
    """Send lag percentiles, and the share of sends later than SATURATION_LATE_MS."""
    if h.total == 0:
        return None
    from .hdr import LOWEST_EQUIVALENT
    late = int(h.counts[LOWEST_EQUIVALENT > SATURATION_LATE_MS * 1000].sum())
    return {"p50": round(h.value_at_percentile(50) / 1000, 3),
            "p99": round(h.value_at_percentile(99) / 1000, 3),
            "max": round(h.max / 1000, 3),
            f"share_over_{SATURATION_LATE_MS:g}ms": round(late / h.total, 6)}


def build_summary(config, readings: list, histograms: dict[str, Histogram], *,
                  duration_s: float, shards: list[dict], interrupted: str | None,
                  aborted: str | None, started: bool = True, workers_requested: int | None = None,
                  notes: list[str] = ()) -> dict:
    """`started` False: the run was stopped before its common start instant (nothing was
    sent); `notes` are one-line remarks on how the run was set up (fewer workers than asked)."""
    def total(name):
        return sum(r[name] for r in readings)

    errors = {}
    for i, kind in enumerate(ERROR_KINDS):
        n = sum(int(r.errors()[i]) for r in readings)
        if n:
            errors[kind] = n
    status = {}
    for r in readings:
        for code in r.status().nonzero()[0]:
            status[str(code)] = status.get(str(code), 0) + int(r.status()[code])
    sent, completed = total("sent"), total("completed")
    duration_s = max(duration_s, 1e-9)
    send_lag = lag_ms(histograms["send_lag"]) if config.open_model else None
    rate_target = None
    if config.open_model:
        planned = config.planned_seconds()
        window = min(duration_s, planned) if planned else duration_s
        # from the shape, which also carries live changes (adaptive ramps, safety back-off)
        rate_target = round(config.shape.integral(window) / window, 3)
    summary = {
        "format_version": FORMAT_VERSION,
        "stressx_version": __version__,
        "url": config.url,
        "method": config.method,
        "model": config.model,
        "workers": config.workers,
        "workers_requested": workers_requested if workers_requested is not None else config.workers,
        "connections": config.connections,
        "requests": sent,
        "completed": completed,
        "ok": total("ok"),
        "error_count": total("errors"),
        "errors": errors,
        "status": dict(sorted(status.items())),
        "duration_s": round(duration_s, 6),
        "rate_target": rate_target,
        "shape": config.shape.describe() if config.shape else (
            config.users_shape.describe() if config.users_shape else None),
        "rps": round(completed / duration_s, 3),
        "sent_rps": round(sent / duration_s, 3),
        "latency_ms": latency_ms(histograms["latency"]),
        "latency_uncorrected_ms": latency_ms(histograms["latency_uncorrected"]),
        "failure_latency_ms": latency_ms(histograms["failure_latency"]),
        "all_latency_ms": latency_ms(histograms["all_latency"]),
        "all_latency_censored": censoring(histograms["all_latency"].total, errors.get("timeout", 0),
                                          config.timeout * 1000.0),
        "latency_basis": ("intended send time (coordinated-omission corrected)" if config.open_model
                          else "actual send time (closed model: each request waits for the last)"),
        "send_lag_ms": send_lag,
        "late": total("late"),
        "late_at_max_connections": total("late_at_cap"),
        "dropped": total("dropped"),
        "abandoned": total("abandoned"),
        "bytes_in": total("bytes_in"),
        "bytes_out": total("bytes_out"),
        "connections_opened": total("connects"),
        "connections_closed_stray": total("stray_closes"),
        "client_cpu_s": round((total("cpu_user_ns") + total("cpu_sys_ns")) / 1e9, 6),
        "client_cpu_us_per_request": (round((total("cpu_user_ns") + total("cpu_sys_ns")) / 1e3 / sent, 3)
                                      if sent else None),
        "insecure": bool(config.insecure),
        "interrupted": interrupted,
        "aborted": aborted,
        "shards": shards,
        "notes": list(notes),
    }
    if config.workload is not None:
        summary["workload"] = config.workload
        summary["scenarios"] = scenario_summaries(config, readings, histograms)
    reasons = saturation_reasons(summary) if started else []
    summary["saturated"] = bool(reasons)
    summary["saturation"] = {"reasons": reasons, "target_rate": rate_target,
                             "achieved_rate": summary["sent_rps"]} if config.open_model or reasons else None
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
    if s["dropped"]:
        reasons.append(f"{s['dropped']} due sends were never issued (no free connection)")
    if s["sent_rps"] < SATURATION_RATE_RATIO * target:
        reasons.append(f"achieved {s['sent_rps']:.1f}/s of the {target:g}/s asked")
    lag = s["send_lag_ms"]
    if lag and lag["p50"] > SATURATION_LAG_P50_MS:
        reasons.append(f"scheduler lag p50 {lag['p50']} ms: sends typically went out behind schedule")
    share = lag and lag[f"share_over_{SATURATION_LATE_MS:g}ms"]
    if share and share > SATURATION_LATE_SHARE:
        reasons.append(f"{share:.1%} of sends went out more than {SATURATION_LATE_MS:g} ms late")
    return reasons
