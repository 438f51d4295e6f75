"""The key figures every reporter shows, computed once here so the terminal, Markdown, HTML,
JSON and JUnit outputs of one run never disagree."""
from __future__ import annotations

from ..results.summary import count_of

import math

#: (summary key, column title) of the latency tables, in order.
LATENCY_COLUMNS = (("min", "min"), ("mean", "mean"), ("p50", "p50"), ("p90", "p90"),
                   ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))


def model_line(s: dict) -> str:
    if s.get("rate_target") is not None:
        model = f"open model, {s['rate_target']:g} req/s target"
    else:
        model = f"closed model, {s.get('connections')} connections"
    if s.get("shape") and not str(s["shape"]).startswith("steady"):
        model += f" (mean), shape {s['shape']}"
    return f"{model}, {s.get('workers')} worker(s), {s.get('duration_s', 0):.2f} s"


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def ms_censored(x: float | None, censored: bool) -> str:
    """ms(x), read as a lower bound ('≥ 1000.000') when x is censored."""
    return ("≥ " if censored and x is not None else "") + ms(x)


def error_breakdown(s: dict) -> list[tuple[str, int, float]]:
    """(label, count, share of completed) per error kind, non-2xx status codes named."""
    completed = s.get("completed") or 0
    non_2xx = [code for code in (s.get("status") or {}) if not 200 <= int(code) < 300]
    rows = []
    for kind, n in sorted((s.get("errors") or {}).items(), key=lambda kv: -kv[1]):
        label = kind
        if kind == "status" and non_2xx:
            label = "status (" + ", ".join(non_2xx) + ")"
        rows.append((label, int(n), n / completed if completed else 0.0))
    return rows


def status_breakdown(s: dict) -> list[tuple[str, int, float]]:
    completed = s.get("completed") or 0
    return [(str(code), int(n), n / completed if completed else 0.0)
            for code, n in (s.get("status") or {}).items()]


def alerts(s: dict) -> list[str]:
    """What a reader must know before trusting the numbers, most serious first."""
    out = []
    if s.get("interrupted"):
        out.append(f"INTERRUPTED by {s['interrupted']}: the run was cut short; figures cover "
                   f"{s.get('duration_s', 0):.2f} s")
    if s.get("aborted"):
        out.append(f"ABORTED: {s['aborted']}")
    for shard in s.get("shards") or []:
        if shard.get("lost"):
            out.append(f"SHARD LOST: {shard['lost']}")
    if s.get("saturated"):
        reasons = (s.get("saturation") or {}).get("reasons") or []
        out.append("SATURATED: the client did not keep the requested schedule"
                   + (": " + "; ".join(reasons) if reasons else ""))
    busy = [sh for sh in s.get("shards") or [] if sh.get("cpu_busy_from_t_s") is not None]
    if busy:
        out.append("CLIENT CPU-BOUND: " + "; ".join(
            f"shard {sh['index']} above 90% of its core for 5 s from t={sh['cpu_busy_from_t_s']:g}s"
            for sh in busy) + ": its latencies are the client's as much as the target's")
    if s.get("insecure"):
        out.append("INSECURE: TLS certificate verification was off (--insecure)")
    if s.get("dropped"):
        reasons = ", ".join(f"{k.replace('_', ' ')} {n}"
                            for k, n in (s.get("dropped_reasons") or {}).items() if n)
        out.append(f"DROPPED: {s['dropped']} due sends never reached a socket"
                   + (f" ({reasons})" if reasons else ""))
    if s.get("abandoned"):
        out.append(f"ABANDONED: {s['abandoned']} requests were still in flight when the run was stopped")
    return out


def verdict(thresholds: list[dict]) -> str:
    """'passed', 'failed' or 'none' (no thresholds were set)."""
    if not thresholds:
        return "none"
    return "passed" if all(t["passed"] for t in thresholds) else "failed"


def scenario_rows(s: dict, section: str = "scenarios") -> list[dict]:
    """One row per scenario (empty without a `scenarios` section), with derived rates;
    section="steps": the same per step of Python scenarios (their `requests`)."""
    rows = []
    for name, sc in (s.get(section) or {}).items():
        requests = int(sc.get("requests", sc.get("iterations")) or 0)   # Python scenarios: iterations
        ok = int(sc.get("ok") or 0)
        errors = count_of(sc.get("errors"))
        completed = int(sc.get("completed") or (ok + errors) or requests)
        lat = sc.get("latency_ms") or {}
        all_lat = sc.get("all_latency_ms") or {}
        violations = sc.get("baseline_violations")
        rows.append({
            "name": name, "requests": requests, "ok": ok, "errors": errors,
            "completed": completed,
            "success_rate": ok / completed if completed else None,
            "error_rate": errors / completed if completed else None,
            "p50": lat.get("p50"), "p95": lat.get("p95"), "p99": lat.get("p99"),
            "max": lat.get("max"),
            "all_p99": all_lat.get("p99"),
            "all_p99_censored": "p99" in ((sc.get("all_latency_censored") or {}).get("keys") or ()),
            "baseline_violations": None if violations is None else count_of(violations),
            "violation_rate": (count_of(violations) / completed
                               if violations is not None and completed else None),
        })
    return rows


def flow_lines(s: dict) -> list[str]:
    """Python scenarios: checks, exceptions by type, overflow, as plain lines."""
    out = []
    for name, c in (s.get("checks") or {}).items():
        out.append(f"check {name!r}: {c['passed']} passed, {c['failed']} failed")
    for name, n in (s.get("scenario_errors") or {}).items():
        out.append(f"scenario_error {name}: {n}")
    if s.get("step_overflow"):
        out.append(f"step_overflow: {s['step_overflow']} recordings found no free step slot")
    return out


def interval_rows(results) -> list[dict]:
    """The merged interval table as dicts, status maps as {code: count} with str codes."""
    rows = results.intervals.to_pylist()
    for r in rows:
        st = r.get("status")
        if isinstance(st, list):
            r["status"] = {str(code): n for code, n in st}
    return rows


def percentile_curve(hist, points: int = 120) -> list[tuple[float, float, float]]:
    """The HDR percentile distribution: (nines, percentile, latency ms) where nines =
    -log10(1 - p/100), so 90% is 1, 99% is 2, 99.9% is 3: the log scale HdrHistogram's plots
    use. It stops at the last percentile the sample can resolve (1 - 1/total)."""
    if hist is None or hist.total == 0:
        return []
    top = min(max(math.log10(hist.total), 1.0), 6.0)
    xs = [top * i / (points - 1) for i in range(points)]
    ps = [100.0 * (1 - 10 ** -x) for x in xs]
    values = hist.percentiles(ps)
    return [(x, p, values[p] / 1000.0) for x, p in zip(xs, ps)]


def threshold_rows(thresholds: list[dict]) -> list[dict]:
    """Stored verdicts as table rows: passed, text, actual (in the threshold's unit), from."""
    from ..judge.thresholds import Threshold, format_value
    rows = []
    for t in thresholds:
        th = Threshold(t["expression"], t["metric"], t["op"], t["limit"], t["relative"],
                       t["scenario"], t["source"], t.get("basis"))
        where = t["source"] + (f", {t['window_s']:g} s window" if t.get("window_s") else "")
        actual = format_value(th, t["actual"])
        if t.get("censored") and t["actual"] is not None:
            actual = f"≥ {actual} (censored)"
        rows.append({"passed": t["passed"], "text": t["text"], "actual": actual, "from": where,
                     "message": t["message"]})
    return rows


def latency_rows(s: dict) -> list[list[str]]:
    """[label, min, mean, p50 .. max] in ms: the successes (in the open model from the intended
    send, and uncorrected beside it), every completed request, and the failures when there were
    any. A censored all-requests value (timeouts recorded at the deadline) reads `≥ value`."""
    open_model = s.get("rate_target") is not None
    keys = [("ok, from intended send" if open_model else "ok", "latency_ms")]
    if open_model:
        keys.append(("ok, uncorrected (actual send)", "latency_uncorrected_ms"))
    if "all_latency_ms" in s:
        keys.append(("all requests", "all_latency_ms"))
    if s.get("failure_latency_ms"):
        keys.append(("failures", "failure_latency_ms"))
    censored = set((s.get("all_latency_censored") or {}).get("keys") or ())
    rows = []
    for label, key in keys:
        lat = s.get(key) or {}
        rows.append([label] + [("≥ " if key == "all_latency_ms" and k in censored else "")
                               + ms(lat.get(k)) for k, _ in LATENCY_COLUMNS])
    return rows


LATENCY_NOTE = ("ok: successful responses; all requests: every completed request, a failure "
                "timed to the failure and a timeout at its deadline")


def censoring_note(s: dict) -> str | None:
    """The censoring sentence ('20% timed out at 1 s: percentiles above p80 are ≥ 1 s
    (censored)'), None when no percentile is censored."""
    return (s.get("all_latency_censored") or {}).get("text")


def client_line(s: dict) -> str | None:
    """What the client cost: CPU per request and each shard's CPU utilisation (None for a
    summary from before they were recorded, or a run that sent nothing)."""
    per_request = s.get("client_cpu_us_per_request")
    shards = [sh for sh in s.get("shards") or [] if sh.get("cpu_pct") is not None]
    if per_request is None and not shards:
        return None
    parts = []
    if per_request is not None:
        parts.append(f"{per_request:.1f} µs CPU per request")
    if shards:
        parts.append("shard CPU " + ", ".join(f"#{sh['index']} {sh['cpu_pct']:.0f}%"
                                              for sh in shards) + " of a core")
    return "Client: " + "; ".join(parts)


def host_line(s: dict) -> str | None:
    """One line of host load from the host-metrics sampler's summary (None without one)."""
    host = s.get("host")
    if not isinstance(host, dict):
        return None
    parts = []
    cpu, mem = host.get("cpu_pct"), host.get("mem_used_pct")
    if cpu:
        parts.append(f"CPU mean {cpu['mean']:g}%, max {cpu['max']:g}%")
    if mem:
        parts.append(f"memory used max {mem['max']:g}%")
    if host.get("load1_max") is not None:
        parts.append(f"load1 max {host['load1_max']:g}")
    return "Host: " + "; ".join(parts) if parts else None
