"""report.html: one self-contained page (inline CSS, plotly.js and the charts' specs, no
network) with an executive summary, threshold verdicts, charts and tables.

Charts (plotly: hover, zoom; see charts.py): latency percentiles over time, throughput achieved
vs target over time, the HDR percentile distribution (log percentile axis), the error breakdown
and, with a `scenarios` section, success rate per scenario. Host metrics and scaling sections
appear only when the results hold them. A Content-Security-Policy forbids every fetch and runs
only the page's own two scripts, so the page provably needs nothing but itself.
"""
from __future__ import annotations

import json
import time
from html import escape

from ..results.summary import error_rate
from . import figures as F
from .charts import (DRAW_SCRIPT, PALETTE, Series, bar_spec, embed, latency_over_time, line_spec,
                     plotly_js, throughput_over_time)
from .comparison import html_section
from .page import page, table

FILENAME = "report.html"


def _card(key: str, value: str) -> str:
    return f'<div class="card"><div class="k">{escape(key)}</div><div class="v">{escape(value)}</div></div>'


def _summary_section(data) -> str:
    s = data.summary
    v = F.verdict(data.thresholds)
    label = {"passed": "THRESHOLDS PASSED", "failed": "THRESHOLDS FAILED",
             "none": "NO THRESHOLDS SET"}[v]
    created = data.results.manifest.get("created_unix")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)) if created else ""
    lat = s.get("latency_ms") or {}
    target = f" of {s['rate_target']:g}" if s.get("rate_target") else ""
    out = ["<h1>stressx report</h1>",
           f'<p class="sub"><code>{escape(str(s.get("method", "")))} {escape(str(s.get("url", "")))}</code>'
           f" · {escape(F.model_line(s))}" + (f" · {escape(when)}" if when else "") + "</p>",
           f'<span class="verdict {v}" id="verdict">{label}</span>']
    if data.comparison and data.comparison.get("regressions"):
        out.append(f' <span class="verdict failed">{len(data.comparison["regressions"])} '
                   f"REGRESSION(S) vs baseline</span>")
    out.append('<h2 id="summary">Executive summary</h2><div class="cards">')
    failed = sum(1 for t in data.thresholds if not t["passed"])
    out += [_card("requests", f"{s.get('requests', 0):,}"),
            _card("success rate", F.pct(None if error_rate(s) is None else 1 - error_rate(s))),
            _card("errors", f"{s.get('error_count', 0):,}"),
            _card("throughput req/s", f"{s.get('rps', 0):.1f}{target}"),
            _card("ok p50 ms", F.ms(lat.get("p50"))), _card("ok p99 ms", F.ms(lat.get("p99"))),
            _card("ok max ms", F.ms(lat.get("max"))),
            _card("thresholds", f"{len(data.thresholds) - failed}/{len(data.thresholds)} passed")]
    if s.get("all_latency_ms"):
        censored = (s.get("all_latency_censored") or {}).get("keys") or ()
        out.insert(-1, _card("all requests p99 ms", ("≥ " if "p99" in censored else "")
                             + F.ms(s["all_latency_ms"].get("p99"))))
    out.append("</div>")
    alerts = F.alerts(s)
    if alerts:
        out.append('<ul class="alerts" id="alerts">' + "".join(f"<li>{escape(a)}</li>" for a in alerts)
                   + "</ul>")
    return "\n".join(out)


def _thresholds_section(data) -> str:
    if not data.thresholds:
        return ('<h2 id="thresholds">Thresholds</h2><p class="note">No thresholds were set for '
                "this run (--threshold, --criteria).</p>")
    rows = [["PASS" if r["passed"] else "FAIL", r["text"], r["actual"], r["from"]]
            for r in F.threshold_rows(data.thresholds)]
    classes = ["pass" if t["passed"] else "fail" for t in data.thresholds]
    messages = "".join(f"<li>{escape(t['message'])}</li>" for t in data.thresholds if not t["passed"])
    return ('<h2 id="thresholds">Thresholds</h2>'
            + table(["result", "threshold", "actual", "from"], rows, classes, "thresholds")
            + (f'<ul class="note">{messages}</ul>' if messages else ""))


def _latency_over_time(rows: list[dict]) -> str:
    return embed("latency-over-time", latency_over_time(rows))


def _throughput_over_time(rows: list[dict]) -> str:
    return embed("throughput-over-time", throughput_over_time(rows))


def _distribution(results) -> str:
    series = []
    for name, key, color in (("latency", "latency", PALETTE[0]),
                             ("uncorrected", "latency_uncorrected", PALETTE[2]),
                             ("all requests", "all_latency", PALETTE[3])):
        h = results.histograms.get(key)
        if key == "all_latency" and (h is None or h.total == (results.summary.get("ok") or 0)):
            continue   # no failures: the same curve as the successes'
        curve = F.percentile_curve(h)
        if curve:
            series.append(Series(name, [(x, v) for x, _, v in curve], color, dashed=name != "latency"))
    top = max((x for s in series for x, _ in s.points), default=3.0)
    labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
    ticks = [(float(i), labels[i]) for i in range(0, int(top) + 1) if i < len(labels)]
    return embed("latency-distribution", line_spec(
        series, title="Latency by percentile (HDR distribution, log percentile scale)",
        x_title="percentile", y_title="latency ms", x_ticks=ticks))


def _errors_section(s: dict) -> str:
    out = ['<h2 id="errors">Errors</h2>']
    breakdown = F.error_breakdown(s)
    status = F.status_breakdown(s)
    if breakdown:
        out.append(embed("error-breakdown", bar_spec(
            [(k, n) for k, n, _ in breakdown], title="Errors by kind", value_title="requests",
            text=[f"{n:,.0f}" for _, n, _ in breakdown],
            colors=["#dc2626", "#ea580c", "#d97706", "#7c3aed", "#db2777"])))
        out.append(table(["kind", "count", "share of completed"],
                         [[k, n, F.pct(share)] for k, n, share in breakdown], cls="errors"))
    else:
        out.append('<p class="note">No errors.</p>')
    if status:
        out.append(table(["status code", "count", "share of completed"],
                         [[c, n, F.pct(share)] for c, n, share in status], cls="status"))
    return "\n".join(out)


def _latency_table(s: dict) -> str:
    return ('<h2 id="latency">Latency (ms)</h2>'
            + table([""] + [t for _, t in F.LATENCY_COLUMNS], F.latency_rows(s), cls="latency")
            + (f'<p class="note">{escape(F.LATENCY_NOTE)}; measured from the '
               f'{escape(s["latency_basis"])}.</p>' if s.get("latency_basis") else "")
            + (f'<p class="note" id="censored"><b>Censored:</b> {escape(F.censoring_note(s))}.</p>'
               if F.censoring_note(s) else ""))


def _throughput_table(s: dict) -> str:
    lag = s.get("send_lag_ms") or {}
    rows = [["requests sent", f"{s.get('requests', 0):,}"],
            ["completed", f"{s.get('completed', 0):,}"], ["ok", f"{s.get('ok', 0):,}"],
            ["errors", f"{s.get('error_count', 0):,}"], ["error rate", F.pct(error_rate(s))],
            ["completed req/s", f"{s.get('rps', 0):.1f}"], ["sent req/s", f"{s.get('sent_rps', 0):.1f}"],
            ["target req/s", f"{s['rate_target']:g}" if s.get("rate_target") else "-"],
            ["late sends", s.get("late", 0)], ["dropped sends", s.get("dropped", 0)]]
    if lag:
        rows.append(["send lag p99 ms", F.ms(lag.get("p99"))])
    if s.get("client_cpu_us_per_request") is not None:
        rows.append(["client CPU µs/request", f"{s['client_cpu_us_per_request']:.1f}"])
    for sh in s.get("shards") or []:
        if sh.get("cpu_pct") is not None:
            busy = sh.get("cpu_busy_from_t_s")
            rows.append([f"shard {sh['index']} CPU % of a core",
                         f"{sh['cpu_pct']:.1f}" + (f" (above 90% for 5 s from t={busy:g}s)"
                                                   if busy is not None else "")])
    return '<h2 id="throughput">Throughput</h2>' + table(["", "value"], rows, cls="throughput")


def _steps_section(s: dict) -> str:
    """Python scenarios: per step, as the scenarios table, and the checks."""
    rows = F.scenario_rows(s, "steps")
    if not rows:
        return ""
    body = table(["step", "requests", "ok", "errors", "error rate", "p50 ms", "p95 ms",
                  "p99 ms", "max ms", "all requests p99 ms"],
                 [[r["name"], f"{r['requests']:,}", f"{r['ok']:,}", f"{r['errors']:,}",
                   F.pct(r["error_rate"]), F.ms(r["p50"]), F.ms(r["p95"]), F.ms(r["p99"]),
                   F.ms(r["max"]), F.ms_censored(r["all_p99"], r["all_p99_censored"])]
                  for r in rows], cls="scenarios")
    lines = "".join(f"<li>{escape(line)}</li>" for line in F.flow_lines(s))
    return f'<h2 id="steps">Steps</h2>{body}' + (f"<ul>{lines}</ul>" if lines else "")


def _scenarios_section(s: dict) -> str:
    rows = F.scenario_rows(s)
    if not rows:
        return ""
    values = [100 * (r["success_rate"] or 0) for r in rows]
    chart = embed("scenario-success", bar_spec(
        [(r["name"], v) for r, v in zip(rows, values)], title="Success rate per scenario",
        value_title="% of completed requests that succeeded", max_value=100,
        text=[f"{v:.2f}%" for v in values],
        colors=["#16a34a" if (r["success_rate"] or 0) >= 0.99 else "#dc2626" for r in rows]))
    body = table(["scenario", "requests", "ok", "errors", "error rate", "p50 ms", "p95 ms",
                  "p99 ms", "max ms", "all requests p99 ms", "baseline violations"],
                 [[r["name"], f"{r['requests']:,}", f"{r['ok']:,}", f"{r['errors']:,}",
                   F.pct(r["error_rate"]), F.ms(r["p50"]), F.ms(r["p95"]), F.ms(r["p99"]),
                   F.ms(r["max"]), F.ms_censored(r["all_p99"], r["all_p99_censored"]),
                   "-" if r["baseline_violations"] is None else
                   f"{r['baseline_violations']} ({F.pct(r['violation_rate'])})"] for r in rows],
                 cls="scenarios")
    return f'<h2 id="scenarios">Scenarios</h2>{chart}{body}'


def _generic(value) -> str:
    """A companion's section of the summary, whatever its shape: rows become a table (and a
    chart when they are samples over time), mappings a key/value table."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(k for v in value for k in v))
        out = table(cols, [[_scalar(v.get(c)) for c in cols] for v in value])
        if "t_s" in cols:
            numeric = [c for c in cols if c != "t_s" and all(
                isinstance(v.get(c), (int, float)) and not isinstance(v.get(c), bool)
                for v in value)]
            if numeric:
                out = embed("samples-over-time", line_spec(
                    [Series(c, [(v["t_s"], v[c]) for v in value]) for c in numeric[:6]],
                    title="Samples over time", x_title="time since start (s)",
                    y_title="value")) + out
        return out
    if isinstance(value, dict):
        parts, scalars = [], []
        for k, v in value.items():
            if isinstance(v, (list, dict)) and v:
                parts.append(f"<h3>{escape(str(k))}</h3>{_generic(v)}")
            else:
                scalars.append([k, _scalar(v)])
        return (table(["", "value"], scalars) if scalars else "") + "".join(parts)
    return f"<p>{escape(_scalar(value))}</p>"


def _scalar(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _scaling_section(data) -> str:
    """A scaling test's levels (scaling.json beside or above this run), when there is one."""
    scaling = data.scaling or data.summary.get("scaling")
    levels = scaling.get("levels") if isinstance(scaling, dict) else None
    if not levels:
        return ""
    levels = sorted(levels, key=lambda lv: lv.get("instances", 0))
    xs = [lv.get("instances") for lv in levels]
    ticks = [(float(x), str(x)) for x in xs]
    throughput = embed("scaling", line_spec(
        [Series("achieved req/s", [(x, lv.get("rps")) for x, lv in zip(xs, levels)], PALETTE[0]),
         Series("target req/s", [(x, lv.get("rate_target")) for x, lv in zip(xs, levels)],
                PALETTE[3], dashed=True)],
        title="Throughput by instance count: achieved vs target", x_title="instances",
        y_title="requests/s", x_ticks=ticks))
    efficiency = embed("scaling-efficiency", line_spec(
        [Series("efficiency", [(x, lv.get("efficiency")) for x, lv in zip(xs, levels)], PALETTE[1]),
         Series("linear", [(x, 1.0) for x in xs], PALETTE[7], dashed=True)],
        title="Scaling efficiency (throughput per instance vs the smallest level)",
        x_title="instances", y_title="efficiency", x_ticks=ticks))
    this = data.results.path.name
    rows, classes = [], []
    for lv in levels:
        lat = lv.get("latency_ms") or {}
        eff = lv.get("efficiency")
        rows.append([lv.get("instances"), _scalar(lv.get("rate_target")), _scalar(lv.get("rps")),
                     _scalar(lv.get("rps_per_instance")), "-" if eff is None else f"{eff:.2f}",
                     F.pct(lv.get("error_rate")), F.ms(lat.get("p50")), F.ms(lat.get("p99")),
                     "yes" if lv.get("saturated") else "no"])
        classes.append("this" if this == f"instances-{lv.get('instances')}" else "")
    body = table(["instances", "target req/s", "req/s", "req/s per instance", "efficiency",
                  "error rate", "p50 ms", "p99 ms", "client saturated"], rows, classes, "scaling")
    note = ('<p class="note">This run is one level of a scaling test (its row is highlighted); '
            "efficiency 1.0 means throughput grew linearly with instances.</p>")
    return f'<h2 id="scaling">Scaling</h2>{throughput}{efficiency}{body}{note}'


def _host_section(data) -> str:
    """Host metrics (the sampler's summary["host"] and host.arrows), only when recorded."""
    host, samples = data.summary.get("host"), data.host_samples
    if not host and not samples:
        return ""
    out = ['<h2 id="host-metrics">Host metrics</h2>']
    if samples:
        step = max(1, len(samples) // 600)          # at most ~600 points per line
        rows = samples[::step]
        keys = [("host CPU %", "cpu_pct"), ("memory used %", "mem_used_pct"),
                ("shards CPU % of a core", "shards_cpu_pct"),
                ("burners CPU % of a core", "burners_cpu_pct")]
        series = [Series(label, [(r["t_s"], r.get(key)) for r in rows], meta={"x": "t_s", "y": key})
                  for label, key in keys if any(r.get(key) is not None for r in rows)]
        out.append(embed("host-metrics", line_spec(series, title="Host load over time",
                                                   x_title="time since start (s)", y_title="%")))
    if host:
        out.append(_generic(host))
    return "\n".join(out)


def _comparison_section(data) -> str:
    if not data.comparison:
        return ""
    return html_section(data.comparison)


def _config_section(results) -> str:
    cfg = results.manifest.get("config") or {}
    host = results.manifest.get("host") or {}
    rows = [[k, _scalar(v)] for k, v in cfg.items() if k not in ("shape", "users_shape")]
    rows += [[f"host {k}", _scalar(v)] for k, v in host.items()]
    return ('<h2 id="config">Run configuration</h2>' + table(["", "value"], rows, cls="config")
            + f'<p class="note">results: <code>{escape(str(results.path))}</code></p>')


def render(data) -> str:
    s = data.summary
    rows = data.intervals
    charts = ['<h2 id="charts">Over time</h2>', _latency_over_time(rows),
              _throughput_over_time(rows),
              '<p class="note">One point per 1 s interval, all shards merged; a partial final '
              "interval shorter than 0.25 s is left out.</p>",
              '<h2 id="distribution">Latency distribution</h2>', _distribution(data.results)]
    body = "\n".join([
        _summary_section(data), _thresholds_section(data), *charts, _latency_table(s),
        _throughput_table(s), _errors_section(s), _scenarios_section(s), _steps_section(s), _comparison_section(data),
        _scaling_section(data), _host_section(data), _config_section(data.results),
    ])
    return page(f"stressx report: {s.get('method', '')} {s.get('url', '')}", body,
                scripts=(plotly_js(), DRAW_SCRIPT))
