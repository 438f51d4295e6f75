"""The terminal summary printed at the end of a run."""
from __future__ import annotations

_COLUMNS = (("min", "min"), ("mean", "mean"), ("p50", "p50"), ("p90", "p90"), ("p95", "p95"),
            ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))


def _latency_rows(label: str, lat: dict | None) -> list[str]:
    if not lat:
        return [f"  {label:<32} (no successful responses)"]
    head = "".join(f"{title:>9}" for _, title in _COLUMNS)
    vals = "".join(f"{lat[key]:>9.3f}" for key, _ in _COLUMNS)
    return [f"  {label:<32}{head}", f"  {'':<32}{vals}"]


def format_summary(s: dict, out_dir: str | None = None) -> str:
    model = (f"open model, {s['rate_target']:g} req/s target" if s["rate_target"]
             else f"closed model, {s['connections']} connections")
    lines = [f"stressx: {s['method']} {s['url']}",
             f"  {model}, {s['workers']} worker(s), {s['duration_s']:.2f} s"]
    lines.append(f"  requests {s['requests']}  completed {s['completed']}  ok {s['ok']}  "
                 f"errors {s['error_count']}  abandoned {s['abandoned']}")
    rate = f"  throughput {s['rps']:.1f} req/s completed, {s['sent_rps']:.1f} req/s sent"
    lines.append(rate)
    corrected = "latency ms (from intended send)" if s["rate_target"] else "latency ms"
    lines += _latency_rows(corrected, s["latency_ms"])
    if s["rate_target"]:
        lines += _latency_rows("uncorrected ms (actual send)", s["latency_uncorrected_ms"])
        lag = s["send_lag_ms"]
        if lag:
            lines.append(f"  send lag ms: p50 {lag['p50']:.3f}  p99 {lag['p99']:.3f}  "
                         f"max {lag['max']:.3f}   late {s['late']}  dropped {s['dropped']}")
    if s["status"]:
        lines.append("  status: " + "  ".join(f"{code} x{n}" for code, n in s["status"].items()))
    if s["errors"]:
        lines.append("  errors: " + "  ".join(f"{kind} x{n}" for kind, n in s["errors"].items()))
    if s["insecure"]:
        lines.append("  TLS certificate verification was OFF (--insecure)")
    if s["saturated"]:
        lines.append("  SATURATED: the client did not keep the requested schedule:")
        lines += [f"    - {r}" for r in s["saturation"]["reasons"]]
    if s["interrupted"]:
        lines.append(f"  INTERRUPTED by {s['interrupted']}")
    if s["aborted"]:
        lines.append(f"  ABORTED: {s['aborted']}")
    if out_dir:
        lines.append(f"  results: {out_dir}")
    return "\n".join(lines)
