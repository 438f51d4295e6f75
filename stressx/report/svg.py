"""Inline SVG charts drawn in Python: the HTML report needs no script, font or network to show
them, and they print and archive like the rest of the page.

Two shapes cover the report: line_chart (series of (x, y) points; None breaks a line) and
bar_chart (horizontal labelled bars). Each returns one `<svg class="chart" data-chart=ID>`
element with a <title> and a legend; colours come from PALETTE unless given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
           "#4b5563")
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 44, 44


@dataclass
class Series:
    name: str
    points: list            # [(x, y | None)]
    color: str | None = None
    dashed: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 x 10^k apart) covering lo..hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v < hi + step * 0.999:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10000:
        return f"{v:.3g}"
    return f"{v:.4g}"


def _frame(chart_id: str, title: str, width: int, height: int, body: list[str],
           legend: list[tuple[str, str, bool]]) -> str:
    out = [f'<svg class="chart" data-chart="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{LEFT}" y="18" class="chart-title" font-size="14" font-weight="600" '
           f'fill="#111827">{escape(title)}</text>']
    x = LEFT
    for name, color, dashed in legend:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{x}" y1="32" x2="{x + 18}" y2="32" stroke="{color}" '
                   f'stroke-width="3"{dash}/>')
        out.append(f'<text x="{x + 22}" y="36" font-size="11" fill="#374151">{escape(name)}</text>')
        x += 30 + 6.5 * len(name)
    out += body
    out.append("</svg>")
    return "\n".join(out)


def line_chart(series: list[Series], *, chart_id: str, title: str, x_label: str, y_label: str,
               x_ticks: list[tuple[float, str]] | None = None, y_log: bool = False,
               y_min: float | None = 0.0, width: int = WIDTH, height: int = HEIGHT) -> str:
    """A line chart. x_ticks: explicit (value, label) ticks (else round numbers). y_log: a
    log10 y axis with decade ticks (values <= 0 are dropped)."""
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    pts = [(x, y) for s in series for x, y in s.points if y is not None and (not y_log or y > 0)]
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM
    body = []
    if not pts:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="13" '
                    f'fill="#6b7280">no data</text>')
        return _frame(chart_id, title, width, height, body, [])
    xs = [p[0] for p in pts]
    ys = [math.log10(p[1]) if y_log else p[1] for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    if x_ticks:
        x_lo, x_hi = min(x_lo, x_ticks[0][0]), max(x_hi, x_ticks[-1][0])
    if x_hi == x_lo:
        x_hi = x_lo + 1
    if y_log:
        y_lo, y_hi = math.floor(min(ys)), math.ceil(max(ys))
        if y_hi == y_lo:
            y_hi += 1
        yt = [float(v) for v in range(int(y_lo), int(y_hi) + 1)]
        y_labels = [_fmt(10 ** v) for v in yt]
    else:
        lo = min(ys) if y_min is None else min(y_min, min(ys))
        yt = nice_ticks(lo, max(ys))
        y_lo, y_hi = yt[0], yt[-1]
        y_labels = [_fmt(v) for v in yt]

    def sx(x):
        return LEFT + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y):
        return TOP + ph - (y - y_lo) / (y_hi - y_lo) * ph

    for v, label in zip(yt, y_labels):
        y = sy(v)
        body.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                    f'fill="#4b5563">{label}</text>')
    ticks = x_ticks or [(v, _fmt(v)) for v in nice_ticks(x_lo, x_hi, 8) if x_lo <= v <= x_hi]
    for v, label in ticks:
        x = sx(v)
        body.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#f3f4f6"/>')
        body.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle" font-size="11" '
                    f'fill="#4b5563">{escape(label)}</text>')
    body.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>')
    body.append(f'<text x="{LEFT + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="12" '
                f'fill="#374151">{escape(x_label)}</text>')
    body.append(f'<text transform="translate(14 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" '
                f'font-size="12" fill="#374151">{escape(y_label)}</text>')
    for s, color in zip(series, colors):
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        segment: list[str] = []
        segments = []
        for x, y in s.points:
            if y is None or (y_log and y <= 0):
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{sx(x):.1f},{sy(math.log10(y) if y_log else y):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                body.append(f'<circle class="series" data-series="{escape(s.name)}" cx="{cx}" '
                            f'cy="{cy}" r="2.5" fill="{color}"/>')
            else:
                body.append(f'<polyline class="series" data-series="{escape(s.name)}" fill="none" '
                            f'stroke="{color}" stroke-width="2"{dash} points="{" ".join(seg)}"/>')
    return _frame(chart_id, title, width, height, body,
                  [(s.name, c, s.dashed) for s, c in zip(series, colors)])


def bar_chart(bars: list[tuple[str, float]], *, chart_id: str, title: str, value_label: str,
              fmt=_fmt, colors: list[str] | None = None, max_value: float | None = None,
              width: int = WIDTH) -> str:
    """Horizontal bars, one per (label, value), largest scale first given; value printed at
    each bar's end."""
    row_h, label_w = 24, 200
    height = TOP + len(bars) * row_h + 30
    pw = width - label_w - RIGHT - 70
    top = max_value if max_value is not None else max([v for _, v in bars] + [0]) or 1.0
    body = []
    for i, (label, value) in enumerate(bars):
        y = TOP + i * row_h
        color = (colors[i % len(colors)] if colors else PALETTE[i % len(PALETTE)])
        w = max(0.0, value / top * pw) if top else 0.0
        body.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="12" '
                    f'fill="#111827">{escape(str(label))}</text>')
        body.append(f'<rect class="bar" data-label="{escape(str(label))}" x="{label_w}" y="{y + 4}" '
                    f'width="{w:.1f}" height="{row_h - 8}" fill="{color}"/>')
        body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12" '
                    f'fill="#374151">{escape(fmt(value))}</text>')
    body.append(f'<text x="{label_w + pw / 2}" y="{height - 8}" text-anchor="middle" '
                f'font-size="12" fill="#374151">{escape(value_label)}</text>')
    return _frame(chart_id, title, width, height, body, [])
