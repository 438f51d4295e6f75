"""Charts drawn by plotly.js, for every stressx page: the HTML report and the live page.

A chart is a plotly figure spec in plain JSON ({"data": traces, "layout": ..., "config": ...})
built here from our series, so nothing imports plotly's Python figure classes; the page embeds
plotly.js itself (plotly_js(): the bundle the `plotly` package ships, for offline use) and one
small script that draws every chart from its spec, so a page stays one file that opens with no
network. Each trace names the interval-row columns it plots in `meta` ({"x": "t_s", "y":
"latency_ms_p99"}), so a live page can append rows with Plotly.extendTraces / Plotly.react
without knowing which chart shows what.

    plotly_js()             the plotly.js bundle (text), cached
    interval_charts(rows)   {chart id: spec} of the per-second charts of interval rows
    live_bundle(rows)       (plotly_js(), interval_charts(rows)): what a live page starts from
    line_spec / bar_spec    specs of one chart; embed(): a chart's <div> in a page
    DRAW_SCRIPT             draws every embedded chart (inline; the page's CSP allows it by hash)
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
           "#4b5563")
HEIGHT = 320
#: Intervals shorter than this (the drain tail after the last send) are left out of
#: per-second charts: a 30 ms tail with nothing completed would draw a false drop to 0 req/s.
MIN_CHART_INTERVAL_S = 0.25
LATENCY_COLUMNS = (("p50", "latency_ms_p50"), ("p90", "latency_ms_p90"), ("p99", "latency_ms_p99"),
                   ("p99.9", "latency_ms_p999"), ("max", "latency_ms_max"))


@dataclass
class Series:
    name: str
    points: list            # [(x, y | None)]; None breaks the line
    color: str | None = None
    dashed: bool = False
    meta: dict = field(default_factory=dict)   # the row columns it plots, for live updates


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the `plotly` package (no CDN, no network)."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


def _layout(title: str, x_title: str, y_title: str) -> dict:
    return {"title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
            "height": HEIGHT, "margin": {"l": 64, "r": 16, "t": 48, "b": 48},
            "paper_bgcolor": "#fff", "plot_bgcolor": "#fff",
            "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
            "hovermode": "x unified",
            "xaxis": {"title": {"text": x_title}, "gridcolor": "#f3f4f6", "zeroline": False},
            "yaxis": {"title": {"text": y_title}, "gridcolor": "#e5e7eb", "rangemode": "tozero"}}


CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def line_spec(series: list[Series], *, title: str, x_title: str, y_title: str,
              y_log: bool = False, x_ticks: list[tuple[float, str]] | None = None) -> dict:
    """Lines over x (hover shows every series at that x; drag to zoom, double-click to reset).
    y_log: a log10 y axis (values <= 0 are left out). x_ticks: (value, label) ticks."""
    traces = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        ys = [None if y is None or not math.isfinite(y) or (y_log and y <= 0) else y
              for _, y in s.points]
        trace = {"type": "scatter", "mode": "lines+markers" if len(s.points) < 3 else "lines",
                 "name": _text(s.name), "x": [x for x, _ in s.points], "y": ys,
                 "line": {"color": color, "width": 2, "dash": "dash" if s.dashed else "solid"}}
        if s.meta:
            trace["meta"] = dict(s.meta)
        traces.append(trace)
    layout = _layout(title, x_title, y_title)
    if y_log:
        layout["yaxis"].update(type="log", rangemode="normal")
    if x_ticks:
        layout["xaxis"].update(tickmode="array", tickvals=[v for v, _ in x_ticks],
                               ticktext=[t for _, t in x_ticks])
    return {"data": traces, "layout": layout, "config": CONFIG}


def bar_spec(bars: list[tuple[str, float]], *, title: str, value_title: str,
             colors: list[str] | None = None, max_value: float | None = None,
             text: list[str] | None = None) -> dict:
    """Horizontal bars, one per (label, value), the first at the top; `text` at each bar."""
    labels = [_text(label) for label, _ in bars]
    colors = [(colors[i % len(colors)] if colors else PALETTE[i % len(PALETTE)]) for i in range(len(bars))]
    trace = {"type": "bar", "orientation": "h", "name": value_title, "y": labels,
             "x": [v for _, v in bars], "marker": {"color": colors},
             "text": text or [f"{v:,.6g}" for _, v in bars], "textposition": "outside",
             "cliponaxis": False, "hovertemplate": "%{y}: %{x}<extra></extra>"}
    layout = _layout(title, value_title, "")
    layout.update(height=max(160, 90 + 34 * len(bars)), hovermode="closest", showlegend=False,
                  bargap=0.3)
    layout["margin"]["l"] = 16
    layout["xaxis"].pop("zeroline", None)
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    if max_value is not None:
        layout["xaxis"]["range"] = [0, max_value * 1.12]
    return {"data": [trace], "layout": layout, "config": CONFIG}


def chart_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["interval_s"] >= MIN_CHART_INTERVAL_S]


def latency_over_time(rows: list[dict]) -> dict:
    rows = chart_rows(rows)
    series = [Series(name, [(r["t_s"], r[col]) for r in rows], meta={"x": "t_s", "y": col})
              for name, col in LATENCY_COLUMNS]
    if any(r.get("errors") and r.get("all_latency_ms_p99") is not None for r in rows):
        # failures timed too: the all-requests p99 beside the successes' percentiles
        series.append(Series("all requests p99", [(r["t_s"], r.get("all_latency_ms_p99")) for r in rows],
                             PALETTE[6], dashed=True, meta={"x": "t_s", "y": "all_latency_ms_p99"}))
    values = [y for s in series for _, y in s.points if y]
    y_log = bool(values) and max(values) / max(min(values), 1e-3) > 100
    return line_spec(series, title="Latency percentiles per second", x_title="time since start (s)",
                     y_title="latency ms" + (" (log)" if y_log else ""), y_log=y_log)


def throughput_over_time(rows: list[dict]) -> dict:
    rows = chart_rows(rows)
    series = [Series("completed req/s", [(r["t_s"], r["rps"]) for r in rows], PALETTE[0],
                     meta={"x": "t_s", "y": "rps"}),
              Series("sent req/s", [(r["t_s"], r["sent_rps"]) for r in rows], PALETTE[1],
                     meta={"x": "t_s", "y": "sent_rps"})]
    if any(r.get("rate_target") is not None for r in rows):
        series.append(Series("target req/s", [(r["t_s"], r.get("rate_target")) for r in rows],
                             PALETTE[3], dashed=True, meta={"x": "t_s", "y": "rate_target"}))
    return line_spec(series, title="Throughput per second: achieved vs target",
                     x_title="time since start (s)", y_title="requests/s")


def interval_charts(rows: list[dict]) -> dict[str, dict]:
    """The per-second charts of interval rows (dicts as in intervals.arrows), by chart id."""
    return {"latency-over-time": latency_over_time(rows),
            "throughput-over-time": throughput_over_time(rows)}


def live_bundle(rows: list[dict] = ()) -> tuple[str, dict[str, dict]]:
    """What a live page needs to draw the interval charts: the plotly.js bundle and the
    specs of the rows so far (possibly none; later rows extend each trace by its meta)."""
    return plotly_js(), interval_charts(list(rows))


def _text(value) -> str:
    """A label as plotly shows it: plotly reads a few HTML tags in labels (<b>, <a href>), so
    what a run recorded (scenario names, error kinds) is escaped (plotly decodes entities)."""
    return escape(str(value), quote=False)


def _json(value) -> str:
    """JSON safe inside an HTML <script> element."""
    return (json.dumps(value, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def embed(chart_id: str, spec: dict) -> str:
    """A chart in a page: its <div> and its spec as a JSON data block (not executed)."""
    cid = escape(chart_id)
    return (f'<div class="chart" id="{cid}" data-chart="{cid}"></div>'
            f'<script type="application/json" data-spec-for="{cid}">{_json(spec)}</script>')


#: Draws every embedded chart from its JSON spec (the page's only script besides plotly.js).
DRAW_SCRIPT = """document.querySelectorAll('script[data-spec-for]').forEach(function (s) {
  var el = s.previousElementSibling;          /* the chart's own <div>, written just before */
  var spec = JSON.parse(s.textContent);
  Plotly.newPlot(el, spec.data, spec.layout, spec.config);
});"""
