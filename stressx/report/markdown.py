"""report.md: a summary sized for a pull-request comment (GitHub-flavoured Markdown).

Verdict first, then alerts, thresholds, the latency table (p50 .. p99.9, max), throughput,
errors, per-scenario table and the baseline comparison when there is one.
"""
from __future__ import annotations

from .._version import __version__
from ..results.summary import error_rate
from . import figures as F

FILENAME = "report.md"
PASS, FAIL = "✅", "❌"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list], align: str = "") -> list[str]:
    """A Markdown table; `align` has one char per column: 'l' or 'r' (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def render(data) -> str:
    s = data.summary
    v = F.verdict(data.thresholds)
    title = {"passed": f"{PASS} stressx: thresholds passed",
             "failed": f"{FAIL} stressx: thresholds FAILED",
             "none": "stressx: run summary (no thresholds set)"}[v]
    if data.comparison and data.comparison.get("regressions"):
        title += f" · {FAIL} {len(data.comparison['regressions'])} regression(s) against the baseline"
    out = [f"## {title}", "",
           f"`{s.get('method', 'GET')} {s.get('url', '')}` · {F.model_line(s)}", ""]

    alerts = F.alerts(s)
    if alerts:
        out.append("> [!WARNING]")
        for a in alerts:
            head, _, rest = a.partition(":")
            out.append(f"> - **{head}**:{rest}")
        out.append("")

    if data.thresholds:
        failed = sum(1 for t in data.thresholds if not t["passed"])
        out += [f"### Thresholds: {len(data.thresholds) - failed} passed, {failed} failed", ""]
        out += table(["", "threshold", "actual", "from"],
                     [[PASS if r["passed"] else FAIL, f"`{r['text']}`", r["actual"], r["from"]]
                      for r in F.threshold_rows(data.thresholds)], "llrl")
        out.append("")

    out += ["### Latency (ms)", ""]
    out += table([""] + [title for _, title in F.LATENCY_COLUMNS], F.latency_rows(s))
    if s.get("latency_basis"):
        out.append(f"\n{F.LATENCY_NOTE}; measured from the {s['latency_basis']}.")
    if F.censoring_note(s):
        out.append(f"\n**Censored:** {F.censoring_note(s)}.")
    out.append("")

    out += ["### Throughput", ""]
    target = f"{s['rate_target']:g}" if s.get("rate_target") else "-"
    out += table(["requests", "completed", "ok", "errors", "error rate", "completed req/s",
                  "sent req/s", "target req/s"],
                 [[s.get("requests"), s.get("completed"), s.get("ok"), s.get("error_count"),
                   F.pct(error_rate(s)), f"{s.get('rps', 0):.1f}", f"{s.get('sent_rps', 0):.1f}",
                   target]], "rrrrrrrr")
    out.append("")

    out += ["### Errors", ""]
    breakdown = F.error_breakdown(s)
    if breakdown:
        out += table(["kind", "count", "share"], [[k, n, F.pct(share)] for k, n, share in breakdown])
    else:
        out.append("No errors.")
    status = F.status_breakdown(s)
    if status:
        out.append("")
        out.append("Status codes: " + ", ".join(f"`{code}` × {n}" for code, n, _ in status))
    out.append("")

    client = F.client_line(s)
    if client:
        out += [client, ""]
    host = F.host_line(s)
    if host:
        out += [host, ""]

    scenarios = F.scenario_rows(s)
    if scenarios:
        out += ["### Scenarios", ""]
        out += table(["scenario", "requests", "ok", "errors", "error rate", "p50 ms", "p95 ms",
                      "p99 ms", "all requests p99 ms", "baseline violations"],
                     [[f"`{r['name']}`", r["requests"], r["ok"], r["errors"], F.pct(r["error_rate"]),
                       F.ms(r["p50"]), F.ms(r["p95"]), F.ms(r["p99"]),
                       F.ms_censored(r["all_p99"], r["all_p99_censored"]),
                       "-" if r["baseline_violations"] is None else
                       f"{r['baseline_violations']} ({F.pct(r['violation_rate'])})"]
                      for r in scenarios])
        out.append("")

    steps = F.scenario_rows(s, "steps")
    if steps:
        out += ["### Steps", ""]
        out += table(["step", "requests", "ok", "errors", "error rate", "p50 ms", "p95 ms",
                      "p99 ms", "all requests p99 ms", "baseline violations"],
                     [[f"`{r['name']}`", r["requests"], r["ok"], r["errors"], F.pct(r["error_rate"]),
                       F.ms(r["p50"]), F.ms(r["p95"]), F.ms(r["p99"]),
                       F.ms_censored(r["all_p99"], r["all_p99_censored"]),
                       "-" if r["baseline_violations"] is None else
                       f"{r['baseline_violations']} ({F.pct(r['violation_rate'])})"]
                      for r in steps])
        out.append("")

    if F.flow_lines(s):
        out += [f"- {line}" for line in F.flow_lines(s)] + [""]

    if data.comparison:
        from .comparison import format_markdown
        out += format_markdown(data.comparison, heading="###").rstrip("\n").split("\n")
        out.append("")

    out.append(f"<sub>stressx {__version__} · results `{data.results.path}`</sub>")
    return "\n".join(out) + "\n"
