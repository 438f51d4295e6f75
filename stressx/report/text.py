"""The terminal summary printed at the end of a run."""
from __future__ import annotations

_COLUMNS = (("min", "min"), ("mean", "mean"), ("p50", "p50"), ("p90", "p90"), ("p95", "p95"),
            ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))


def _latency_rows(label: str, lat: dict | None, empty: str = "no successful responses",
                  censored=()) -> list[str]:
    """A header line and a values line; a censored value (timeouts at the deadline) reads ≥v."""
    if not lat:
        return [f"  {label:<32} ({empty})"]
    head = "".join(f"{title:>10}" for _, title in _COLUMNS)
    vals = "".join(f"{('≥' if key in censored else '') + format(lat[key], '.3f'):>10}"
                   for key, _ in _COLUMNS)
    return [f"  {label:<32}{head}", f"  {'':<32}{vals}"]


def _cluster_lines(s: dict) -> list[str]:
    """A cluster run: the start skew, the merge cost, and each host's own figures."""
    c = s.get("cluster")
    if not c:
        return []
    merge = c.get("merge_ms") or {}
    skew = c.get("start_skew_ms")
    out = [f"  cluster {c['address']}: {c['hosts']} hosts, start skew "
           + (f"{skew:.3f} ms" if skew is not None else "n/a")
           + f" (clock offsets known to +-{c['clock_uncertainty_ms']:.3f} ms)"
           + (f", merge {merge['mean']:.2f} ms per interval" if merge else "")]
    for h in s.get("hosts") or ():
        shards = h["shards"]
        span = f"{shards[0]}-{shards[-1]}" if len(shards) > 1 else str(shards[0])
        if h.get("lost"):
            out.append(f"    {h['name']:<20} shards {span:<7} LOST: {h['lost']}")
            continue
        p99 = (h.get("latency_ms") or {}).get("p99")
        out.append(f"    {h['name']:<20} shards {span:<7} requests {h.get('requests')}  "
                   f"ok {h.get('ok')}  errors {h.get('error_count')}"
                   + (f"  p99 {p99:.3f} ms" if p99 is not None else "")
                   + f"  clock {h['clock_offset_ms']:+.3f} ms")
    return out


def format_summary(s: dict, out_dir: str | None = None) -> str:
    if s["rate_target"] is not None:
        model = f"open model, {s['rate_target']:g} req/s target"
    else:
        model = f"closed model, {s['connections']} connections"
    if s.get("shape") and not s["shape"].startswith("steady"):
        model += f" (mean), shape {s['shape']}"
    lines = [f"stressx: {s['method']} {s['url']}",
             f"  {model}, {s['workers']} worker(s), {s['duration_s']:.2f} s"]
    lines.append(f"  requests {s['requests']}  completed {s['completed']}  ok {s['ok']}  "
                 f"errors {s['error_count']}  abandoned {s['abandoned']}")
    if s.get("dropped"):
        reasons = s.get("dropped_reasons") or {}
        lines.append(f"  due {s.get('due')}  dropped {s['dropped']} (never reached a socket: "
                     + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in reasons.items() if n) + ")")
    if "send_window_s" in s:
        lines.append(f"  throughput {s['rps']:.1f} req/s completed over {s['run_window_s']:.2f} s, "
                     f"{s['sent_rps']:.1f} req/s sent over {s['send_window_s']:.2f} s")
    else:   # a summary from before the windows were named
        lines.append(f"  throughput {s['rps']:.1f} req/s completed, {s['sent_rps']:.1f} req/s sent")
    if s.get("connect_failures"):
        kinds = "  ".join(f"{k} x{n}" for k, n in s["connect_failures_by_kind"].items())
        pre = s.get("prewarm_connect_failures") or {}
        lines.append(f"  connects: {s['connect_attempts']} attempts, {s['connections_opened']} opened, "
                     f"{s['connect_failures']} failed: {kinds}"
                     + (f" (before the start: {sum(pre.values())})" if pre else ""))
    corrected = "ok latency ms (from intended send)" if s["rate_target"] else "ok latency ms"
    lines += _latency_rows(corrected, s["latency_ms"])
    if s["rate_target"]:
        lines += _latency_rows("ok uncorrected ms (actual send)", s["latency_uncorrected_ms"])
    censoring = s.get("all_latency_censored") or {}
    if "all_latency_ms" in s:
        lines += _latency_rows("all requests ms", s["all_latency_ms"], "no completed requests",
                               censoring.get("keys") or ())
    if s.get("failure_latency_ms"):
        lines += _latency_rows("failures ms (to the failure)", s["failure_latency_ms"])
    if censoring.get("text"):
        lines.append(f"  censored: {censoring['text']}")
    if s["rate_target"]:
        lag = s["send_lag_ms"]
        if lag:
            lines.append(f"  send lag ms: p50 {lag['p50']:.3f}  p99 {lag['p99']:.3f}  "
                         f"max {lag['max']:.3f}   late {s['late']}  dropped {s['dropped']}"
                         + (f"  (timer slack {s['timer_slack_ms']:g} ms)"
                            if s.get("timer_slack_ms") else ""))
    if s["status"]:
        lines.append("  status: " + "  ".join(f"{code} x{n}" for code, n in s["status"].items()))
    if s["errors"]:
        lines.append("  errors: " + "  ".join(f"{kind} x{n}" for kind, n in s["errors"].items())
                     + (f"  ({s['error_count'] / s['completed']:.2%} of completed)"
                        if s.get("completed") else ""))
    from .figures import client_line
    client = client_line(s)
    if client:
        lines.append("  " + client[0].lower() + client[1:])
    busy = [sh for sh in s.get("shards") or [] if sh.get("cpu_busy_from_t_s") is not None]
    for sh in busy:
        lines.append(f"  CLIENT CPU-BOUND: shard {sh['index']} above 90% of its core for 5 s from "
                     f"t={sh['cpu_busy_from_t_s']:g}s: its latencies are the client's as much as "
                     f"the target's")
    if s["insecure"]:
        lines.append("  TLS certificate verification was OFF (--insecure)")
    lines += [f"  note: {note}" for note in s.get("notes") or ()]
    if s["saturated"]:
        lines.append("  SATURATED: the client did not keep the requested schedule:")
        lines += [f"    - {r}" for r in s["saturation"]["reasons"]]
    if s["interrupted"]:
        lines.append(f"  INTERRUPTED by {s['interrupted']}")
    if s["aborted"]:
        lines.append(f"  ABORTED: {s['aborted']}")
    if s.get("stopped"):
        lines.append(f"  STOPPED: {s['stopped']}")
    if s.get("changes"):
        lines.append(f"  live changes: {len(s['changes'])} (summary.json: changes)")
    lines += _scenario_lines(s)
    lines += _cluster_lines(s)
    from .host import format_host_section
    lines += format_host_section(s)
    adaptive = s.get("adaptive")
    if adaptive:
        dropped = adaptive.get("decisions_dropped") or 0
        lines.append(f"  adaptive: highest stable {adaptive['highest_stable_rps']} req/s, "
                     f"{len(adaptive['decisions']) + dropped} decisions, final {adaptive['final_rps']:g} req/s")
        shown = [f"    {d['t_s']:7.1f}s {d['action']:<11} {d['from_rps']:g} -> {d['to_rps']:g}/s  {d['reason']}"
                 for d in adaptive["decisions"]]
        if dropped:   # the first and the latest were kept; the gap is where they meet
            from ..explore.adaptive import MAX_DECISIONS
            half = MAX_DECISIONS - MAX_DECISIONS // 2
            shown.insert(half, f"    ... {dropped} decisions not kept ...")
        lines += shown
    if out_dir:
        lines.append(f"  results: {out_dir}")
    return "\n".join(lines)


def _scenario_lines(s: dict) -> list[str]:
    """The per-scenario table, as in the Markdown report (only with a `scenarios` section);
    Python scenarios: their steps' table and checks too."""
    from .figures import flow_lines
    out = _table_lines(s, "scenarios", "scenario")
    out += _table_lines(s, "steps", "step")
    out += [f"  {line}" for line in flow_lines(s)]
    return out


def _table_lines(s: dict, section: str, label: str) -> list[str]:
    from .figures import ms, ms_censored, pct, scenario_rows
    rows = scenario_rows(s, section)
    if not rows:
        return []
    width = max(12, *(len(r["name"]) for r in rows))
    count = "iterations" if section == "scenarios" and "steps" in s else "requests"
    out = [f"  {label:<{width}} {count:>9} {'ok':>9} {'errors':>7} {'err %':>7} "
           f"{'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'all p99 ms':>11} {'band viol.':>10}"]
    for r in rows:
        viol = "-" if r["baseline_violations"] is None else str(r["baseline_violations"])
        out.append(f"  {r['name']:<{width}} {r['requests']:>9} {r['ok']:>9} {r['errors']:>7} "
                   f"{pct(r['error_rate']):>7} {ms(r['p50']):>9} {ms(r['p95']):>9} "
                   f"{ms(r['p99']):>9} {ms_censored(r['all_p99'], r['all_p99_censored']):>11} {viol:>10}")
    return out


def format_thresholds(results: list[dict]) -> str:
    """The threshold verdicts (dicts as in thresholds.json), one line each, then the total."""
    from .figures import threshold_rows
    if not results:
        return ""
    rows = threshold_rows(results)
    width = max(len(r["text"]) for r in rows)
    lines = ["thresholds:"]
    for r in rows:
        mark = "PASS" if r["passed"] else "FAIL"
        lines.append(f"  {mark}  {r['text']:<{width}}  actual {r['actual']:<12} ({r['from']})")
    failed = sum(1 for r in rows if not r["passed"])
    lines.append(f"  {len(rows) - failed} passed, {failed} failed"
                 + ("" if not failed else ": exit code 3"))
    return "\n".join(lines)
