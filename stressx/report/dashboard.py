"""The live terminal dashboard: what a run looks like while it runs, drawn with `rich` when
stdout is a terminal (`--no-dashboard`, or output that is not a terminal, keeps the one progress
line per second).

It is a coordinator companion, so it costs the shards nothing: it sees each merged 1 s interval
row (with the interval's latency histograms) in on_interval(), the host sampler's latest sample
and the burners' levels through the sampler, and redraws from the coordinator's ~20 ms poll()
at REFRESH_HZ. LiveFigures keeps what is drawn, bounded whatever the run's length: the last
SPARK_POINTS rates, the last row, cumulative counters and two cumulative histograms (the sum of
the interval histograms, so the cumulative figures are the summary's own: the rows add up to
the summary exactly). `rich` is imported only when a dashboard is drawn.
"""
from __future__ import annotations

import math
import sys
import time
from collections import deque

import numpy as np

from ..engine.coordinator import Companion
from ..judge import thresholds as _thresholds
from ..results.hdr import LOWEST_EQUIVALENT, Histogram
from ..results.summary import latency_ms

REFRESH_HZ = 5                 # frames per second (the brief: 4-10)
SPARK_POINTS = 60              # the rate sparkline: the last minute of 1 s intervals
SPARK = "▁▂▃▄▅▆▇█"
HIST_BINS = 10                 # latency histogram rows
CLOSE_SHARE = 0.10             # a passing threshold within 10 % of its limit reads "close"
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))
_COUNTERS = ("sent", "completed", "ok", "errors", "late", "dropped")


def sparkline(values, width: int = SPARK_POINTS) -> str:
    """One block character per value, scaled to the largest (0 draws the lowest block)."""
    vals = [v for v in list(values)[-width:]]
    top = max((v for v in vals if v is not None), default=0) or 1
    return "".join(" " if v is None else SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))]
                   for v in vals)


def histogram_bins(h: Histogram, bins: int = HIST_BINS) -> list[tuple[float, float, int]]:
    """(low ms, high ms, count) over `bins` log-spaced ranges from the histogram's min to its
    max; the counts add up to h.total. Empty histogram: []."""
    if h.total == 0:
        return []
    lo, hi = max(h.min, 1), max(h.max, 1)
    if hi <= lo:
        return [(lo / 1000, hi / 1000, h.total)]
    edges = np.geomspace(lo, hi + 1, bins + 1)
    idx = np.searchsorted(LOWEST_EQUIVALENT, edges, side="left")
    cum = np.concatenate(([0], np.cumsum(h.counts)))
    idx[0], idx[-1] = 0, len(h.counts)
    counts = np.diff(cum[idx])
    return [(float(edges[i]) / 1000, float(edges[i + 1]) / 1000, int(counts[i])) for i in range(bins)]


class LiveFigures:
    """What the dashboard draws, from the interval rows (bounded memory)."""

    def __init__(self, thresholds=()):
        self.thresholds = [th for th in thresholds if _thresholds.windowable(th)]
        self.rates: deque = deque(maxlen=SPARK_POINTS)      # completed req/s per interval
        self.targets: deque = deque(maxlen=SPARK_POINTS)
        self.last: dict | None = None                      # the latest interval row
        self.t_s = 0.0
        self.span_s = 0.0                                  # time the rows cover
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.status: dict[int, int] = {}
        self.error_kinds: dict[str, int] = {}
        self.latency = Histogram.empty()                   # cumulative: successes
        self.all_latency = Histogram.empty()               # cumulative: every completed request
        self.intervals = 0

    def add(self, t_s: float, row: dict) -> None:
        self.intervals += 1
        self.t_s = t_s
        self.span_s += row["interval_s"]
        for key in _COUNTERS:
            self.counts[key] += row.get(key) or 0
        for code, n in (row.get("status") or {}).items():
            self.status[int(code)] = self.status.get(int(code), 0) + n
        for key, n in row.items():
            if key.startswith("errors_") and n:
                kind = key[len("errors_"):]
                self.error_kinds[kind] = self.error_kinds.get(kind, 0) + n
        for name in ("latency", "all_latency"):
            run = row.get(f"run_{name}_histogram")     # the shards' own: exact min and max
            if run is not None:
                setattr(self, name, run)
            elif row.get(f"{name}_histogram") is not None:
                getattr(self, name).add(row[f"{name}_histogram"])
        if row["interval_s"] >= 0.5:          # the run's last sliver would draw a false drop
            self.last = row
            self.rates.append(row["rps"])
            self.targets.append(row.get("rate_target"))

    def cumulative(self) -> dict | None:
        """Cumulative latency (ms) over every success so far: the summary's latency_ms maths."""
        return latency_ms(self.latency)

    def threshold_states(self) -> list[tuple[str, str, str]]:
        """(threshold text, 'passing' | 'close' | 'failing' | 'unmeasured', actual) judged on
        the run so far (scenario and band thresholds are judged at the end only)."""
        if not self.thresholds:
            return []
        row = dict(self.counts, interval_s=self.span_s, status=self.status,
                   latency_histogram=self.latency, all_latency_histogram=self.all_latency)
        for prefix, h in (("latency_ms", self.latency), ("all_latency_ms", self.all_latency)):
            row[f"{prefix}_max"] = h.max / 1000 if h.total else None
        row["errors_timeout"] = self.error_kinds.get("timeout", 0)
        out = []
        for th in self.thresholds:
            actual, _ = _thresholds.window_value(th, [row])
            if actual is None:
                out.append((th.text, "unmeasured", "-"))
                continue
            verdict = _thresholds.judge(th, actual)
            state = "passing" if verdict.passed else "failing"
            if verdict.passed and th.limit and abs(actual - th.limit) <= CLOSE_SHARE * abs(th.limit):
                state = "close"
            out.append((th.text, state, _thresholds.format_value(th, actual)))
        return out


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _rate(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


class Dashboard(Companion):
    """The live terminal view of one run (a companion: the coordinator's thread draws it)."""

    name = "dashboard"
    shows_progress = True
    cumulative = True

    def __init__(self, thresholds=(), sampler=None, stream=None, refresh_hz: float = REFRESH_HZ,
                 title: str = ""):
        self.figures = LiveFigures(thresholds)
        self.sampler = sampler               # the run's HostSampler (latest sample, burners)
        self.stream = stream or sys.stdout
        self.period_ns = int(1e9 / refresh_hz)
        self.refresh_hz = refresh_hz
        self.title = title
        self.config = None
        self.start_ns = 0
        self.frames = 0
        self.draw_ns = 0                     # coordinator CPU time spent drawing
        self._next_ns = 0
        self._live = None
        self._state = "starting"
        self._cached = None                  # (intervals seen, laid-out parts)

    # -- Companion ---------------------------------------------------------------------------
    def prepare(self, config, out_dir) -> None:
        self.config = config
        # before the shards start: the imports are not paid for during the run
        import rich.console, rich.live, rich.segment, rich.text  # noqa: F401, E401

    def start(self, start_ns: int) -> None:
        from rich.console import Console
        from rich.live import Live
        self.start_ns = start_ns
        self._state = "running"
        console = Console(file=self.stream, force_terminal=True)
        self._live = Live(console=console, auto_refresh=False, transient=False,
                          redirect_stdout=True, redirect_stderr=True,
                          vertical_overflow="ellipsis")   # the last frame is drawn whole
        self._live.start()
        self._draw()

    def on_interval(self, t_s: float, row: dict):
        self.figures.add(t_s, row)
        return None

    def poll(self):
        if self._live is not None and time.monotonic_ns() >= self._next_ns:
            self._draw()
        return None

    def stop(self) -> None:
        if self._live is None:
            return
        self._state = "finished"
        self._draw()
        live, self._live = self._live, None
        live.stop()

    def finish(self) -> dict:
        return {"frames": self.frames, "refresh_hz": self.refresh_hz,
                "draw_cpu_ms": round(self.draw_ns / 1e6, 3),
                "draw_cpu_ms_mean": round(self.draw_ns / self.frames / 1e6, 3) if self.frames else None}

    # -- drawing -----------------------------------------------------------------------------
    def _draw(self) -> None:
        t0 = time.thread_time_ns()
        try:
            self._live.update(self.render(self._live.console), refresh=True)
        except Exception as exc:            # a hook must not raise: fall back to nothing
            self._live.stop()
            self._live = None
            print(f"stressx: the dashboard stopped drawing: {exc}", file=sys.stderr)
            return
        self.frames += 1
        self.draw_ns += time.thread_time_ns() - t0
        self._next_ns = time.monotonic_ns() + self.period_ns

    def render(self, console=None):
        """The whole dashboard as one rich renderable. What comes from the interval rows
        (most of it) is laid out once per interval, as terminal lines (`console`: laid out for
        it; rich's table layout is the costly part of a frame); each frame adds the clock,
        the phase and the host's latest sample."""
        from rich.console import Group
        if self._cached is None or self._cached[0] != self.figures.intervals:
            parts = self._interval_parts()
            if console is not None:
                parts = [_Lines(console.render_lines(p, console.options, pad=False)) for p in parts]
            self._cached = (self.figures.intervals, parts)
        main, hist, detail, thresholds = self._cached[1]
        parts = [*self._clock_lines(), main, hist, detail, *self._host_lines(), thresholds]
        if console is not None and self._state != "finished" and \
                sum(_height(p) for p in parts) > console.height - 1:
            parts.remove(hist)         # a short terminal: the histogram goes first
        return Group(*parts)

    def _clock_lines(self) -> list:
        from rich.text import Text
        cfg, f = self.config, self.figures
        elapsed = max(0.0, (time.monotonic_ns() - self.start_ns) / 1e9) if self.start_ns else 0.0
        if self._state == "finished":
            elapsed = f.t_s
        head = Text()
        head.append("stressx ", style="bold")
        head.append(self.title or (f"{cfg.method} {cfg.url}" if cfg is not None else ""))
        head.append(f"   {self._state}  {elapsed:6.1f} s", style="bold")
        duration = cfg.duration if cfg is not None else None
        shape = (cfg.shape or cfg.users_shape) if cfg is not None else None
        phase = ""
        if shape is not None and math.isfinite(shape.duration):
            name, _, end = shape.phase_at(elapsed)
            phase = f"phase {name}, {max(0.0, end - elapsed):.0f} s left"
            duration = shape.duration
        if duration:
            phase += f"{'   ' if phase else ''}run {max(0.0, duration - elapsed):.0f} s left of {duration:g} s"
        return [head, Text(phase)]

    def _host_lines(self) -> list:
        host = self.sampler.last_row if self.sampler is not None else None
        if not host:
            return []
        lines = [_kv("host", f"CPU {host.get('cpu_pct') or 0:.0f}%  memory {host.get('mem_used_pct') or 0:.0f}%"
                     + (f"  shards CPU {host['shards_cpu_pct']:.0f}% of a core"
                        if host.get("shards_cpu_pct") is not None else ""))]
        req, got = host.get("burner_requested") or {}, host.get("burner_achieved") or {}
        if req:
            lines.append(_kv("burners", "  ".join(
                f"{name} {_level(name, req[name])} (now {_level(name, got.get(name))})" for name in req)))
        return lines

    def _interval_parts(self) -> list:
        """[rates, latency and counts], [histogram], [status, errors, lag, saturation],
        [threshold states]: lines that change once per interval. Plain styled lines, not rich
        tables: a table's layout cost ~15 ms, and it ran on the shards' core."""
        from rich.console import Group
        from rich.text import Text

        f = self.figures
        row = f.last or {}
        cfg = self.config
        main = []
        if cfg is not None and not cfg.open_model:   # the closed model's target: connections
            shape = cfg.users_shape
            want = (shape.rate_at(max(0.0, min(f.t_s, shape.duration) - 1e-6)) if shape is not None
                    else cfg.connections)
            main.append(_kv("target connections", f"{want:<8.0f}  active {row.get('users', '-')!s:<8}  "
                                                  f"open {row.get('conn_open', '-')}", width=20))
            main.append(_kv("", f"achieved req/s {_rate(row.get('rps')):<8}  "
                                f"sent req/s {_rate(row.get('sent_rps'))}", width=20))
        else:
            target = row.get("rate_target")
            if target is None and self.control is not None and cfg is not None:
                target = self.control.rate_at(max(0.0, self.control.elapsed()))
            main.append(_kv("target req/s", f"{_rate(target):<8}  achieved req/s {_rate(row.get('rps')):<8}  "
                                            f"sent req/s {_rate(row.get('sent_rps'))}"))
        main.append(_kv("last 60 s", Text(sparkline(f.rates), style="cyan")))
        # latency: now (the last interval) and cumulative
        main.append(Text("latency ms", style="bold"))
        main.append(Text(" " * 12 + "".join(f"{title:>10}" for _, title in PERCENTILES), style="dim"))
        cum = f.cumulative() or {}
        main.append(Text(f" {'now':<11}" + "".join(f"{_ms(row.get(f'latency_ms_{k}')):>10}" for k, _ in PERCENTILES)))
        main.append(Text(f" {'cumulative':<11}" + "".join(f"{_ms(cum.get(k)):>10}" for k, _ in PERCENTILES)))
        c = f.counts
        main.append(Text(f"requests {c['sent']}  completed {c['completed']}  ok {c['ok']}  "
                         f"errors {c['errors']}"))

        # histogram of every success so far
        hist = [Text("latency histogram (cumulative)", style="bold"),
                Text(f"{'ms':>14}  {'':<30}  {'count':>9}", style="dim")]
        bins = histogram_bins(f.latency)
        top = max((n for _, _, n in bins), default=0) or 1
        for lo, hi, n in bins:
            line = Text(f"{f'{lo:.3g}-{hi:.3g}':>14}  ")
            line.append(f"{'█' * int(round(30 * n / top)):<30}", style="green")
            line.append(f"  {n:>9}")
            hist.append(line)

        # status codes, errors, send lag, saturation
        status = "  ".join(f"{code} ×{n}" for code, n in sorted(f.status.items())) or "-"
        errors = "  ".join(f"{k} ×{n}" for k, n in sorted(f.error_kinds.items(), key=lambda kv: -kv[1])) or "-"
        detail = [_kv("status", status),
                  _kv("errors", Text(errors, style="red" if f.error_kinds else "")),
                  _kv("send lag", f"p50 {_ms(row.get('send_lag_ms_p50'))}  p99 {_ms(row.get('send_lag_ms_p99'))}  "
                                  f"max {_ms(row.get('send_lag_ms_max'))} ms   late {row.get('late', 0)}  "
                                  f"dropped {row.get('dropped', 0)}"),
                  _kv("saturation", Text(f"SATURATED: {row['saturation']}", style="bold red")
                      if row.get("saturated") else Text("none", style="green")),
                  _kv("connections", f"open {row.get('conn_open', '-')}  in flight {row.get('inflight', '-')}")]

        # thresholds
        ths = f.threshold_states()
        thresholds = []
        if ths:
            width = max(len(text) for text, _, _ in ths)
            style = {"passing": "green", "close": "yellow", "failing": "bold red", "unmeasured": "dim"}
            thresholds.append(Text("thresholds (run so far)", style="bold"))
            for text, state, actual in ths:
                line = Text(" ")
                line.append(f"{state:<10}", style=style[state])
                line.append(f" {text:<{width}}  {actual:>12}")
                thresholds.append(line)
        return [Group(*part) for part in (main, hist, detail, thresholds)]


def _kv(label: str, value, width: int = 13):
    """'label        value': a label column, then the value (text or rich Text)."""
    from rich.text import Text
    line = Text(f"{label:<{width}}")
    line.append(value) if isinstance(value, Text) else line.append(str(value))
    return line


def _height(part) -> int:
    """Lines a part takes: laid-out ones are counted; the clock and host lines are one each."""
    if isinstance(part, _Lines):
        return len(part.lines)
    return len(getattr(part, "renderables", ())) or 1


class _Lines:
    """Terminal lines laid out once (rich Segments), drawn again as they are."""

    def __init__(self, lines):
        self.lines = lines

    def __rich_console__(self, console, options):
        from rich.segment import Segment
        for line in self.lines:
            yield from line
            yield Segment.line()


def _level(name: str, value) -> str:
    if value is None:
        return "-"
    if name.startswith("mem"):
        return f"{value / 2**20:.0f} MiB"
    if name.startswith("io"):
        return f"{value / 2**20:.1f} MiB/s"
    return f"{value:.0f}%"
