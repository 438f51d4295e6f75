"""Safety limits: watch the host and the run, and warn, back off or stop.

A limit is written ``METRIC>VALUE[:ACTION]`` (``>=`` also works; the action defaults to stop):

  ===========================  ================================================================
  cpu>95%                      host CPU busy, mean of the last 1 s of 100 ms samples
  mem>90%   mem>20G            host memory in use (total - available), share or bytes
  swap>0    swap>1G  swap>10%  swap in use, bytes or share of swap (a swap limit trips on any
                               increase over what was in use at the start)
  temp>85                      hottest temperature sensor, deg C (never trips where the host
                               exposes none; the summary says so)
  errors>5%                    errors / completed requests in a 1 s interval
  p50|p90|p99|p999|max|mean>500ms  latency of a 1 s interval (ms, or with a unit: 1s, 250ms)
  ===========================  ================================================================

Actions:
- ``warn``: one line when the limit is crossed (again after it clears), recorded in events.
- ``backoff``: multiply every burner's level by 0.5 now and every 2 s while the limit holds;
  in every open-model load run (``--rate`` or any pattern: steady, ramp, burst, wave, step,
  spike, phases) also the request rate (the rate the shape gives now, halved, held from then
  on, through the run's control: ``RunControl.change_rate``); and call any backoff hooks
  (``add_backoff_hook(fn)``, ``fn(factor, reason)``). Levels stay lowered after the limit
  clears. Each backoff event records the new request rate, or why it was unchanged
  (closed-model runs keep their connections; ``stressx burn`` has no requests), and the
  summary's notes say so.
- ``stop``: an emergency stop. The burners are stopped at once (from the sampler thread, within
  100 ms of the sample), and the next on_interval (at most 1 s later) returns
  ``Abort(reason, EXIT_ABORTED)`` so the coordinator ends the load, writes the results and
  exits 4 with the reason in summary["aborted"]. ``poll()`` returns the same Abort at any time.

Host limits are checked on every host sample (HostSampler listener); request limits on every
merged interval row.
"""
from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass

import psutil

from ..engine.coordinator import Abort, Companion
from ..errors import EXIT_ABORTED, ConfigError
from ..units import format_bytes, parse_bytes, parse_duration

ACTIONS = ("warn", "backoff", "stop")
HOST_METRICS = ("cpu", "mem", "swap", "temp")
LATENCY_METRICS = ("p50", "p90", "p99", "p999", "max", "mean", "min")
RUN_METRICS = ("errors",) + LATENCY_METRICS
BACKOFF_FACTOR = 0.5
BACKOFF_COOLDOWN_S = 2.0
CPU_WINDOW = 10            # samples in the host CPU mean (1 s at 100 ms)
MAX_EVENTS = 200           # events kept for the summary; later ones are counted only
MAX_NOTES = 20             # likewise for notes (a hook that fails on every backoff)
_LIMIT = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|>)\s*([^:]+?)\s*(?::\s*([a-z]+)\s*)?$", re.I)


@dataclass
class Limit:
    """One safety limit: trips when `metric` is above `threshold` (or at it, with >=).
    Units: % for cpu/errors and shares, bytes for mem/swap given as sizes, deg C, ms."""

    text: str
    metric: str
    threshold: float
    unit: str            # "%", "bytes", "C", "ms"
    action: str
    inclusive: bool = False

    @property
    def host(self) -> bool:
        return self.metric in HOST_METRICS

    def crossed(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.threshold if self.inclusive else value > self.threshold

    def show(self, value: float) -> str:
        if self.unit == "bytes":
            return format_bytes(value)
        return {"%": f"{value:.4g}%", "C": f"{value:.1f} C", "ms": f"{value:.3f} ms"}[self.unit]


def parse_limit(text: str, option: str = "--safety") -> Limit:
    """A Limit from 'mem>90%:stop'; ConfigError naming `option` and the text if it is wrong."""
    m = _LIMIT.match(str(text))
    where = f"{option} {text!r}"
    if not m:
        raise ConfigError(where, "expected METRIC>VALUE[:ACTION], e.g. mem>90%:stop, "
                          "cpu>95%:backoff, p99>500ms:stop, errors>5%:warn")
    metric, op, value, action = m.group(1).lower(), m.group(2), m.group(3).strip(), (m.group(4) or "stop").lower()
    metric = {"latency": "p99", "temperature": "temp", "memory": "mem", "error": "errors",
              "error_rate": "errors"}.get(metric, metric)
    if metric not in HOST_METRICS + RUN_METRICS:
        raise ConfigError(where, f"unknown metric {metric!r}: expected one of "
                          f"{', '.join(HOST_METRICS + RUN_METRICS)}")
    if action not in ACTIONS:
        raise ConfigError(where, f"unknown action {action!r}: expected warn, backoff or stop")
    low = value.lower()
    try:
        if metric in ("cpu", "errors"):
            threshold, unit = float(low.rstrip("%")), "%"
            if not 0 <= threshold <= 100:
                raise ValueError
        elif metric in ("mem", "swap"):
            if low.endswith("%"):
                threshold, unit = float(low[:-1]), "%"
                if not 0 <= threshold <= 100:
                    raise ValueError
            else:
                threshold, unit = float(parse_bytes(low)), "bytes"
        elif metric == "temp":
            threshold, unit = float(low.rstrip("c").rstrip("°")), "C"
        else:
            threshold = float(low) if re.fullmatch(r"\d+(\.\d+)?", low) else parse_duration(low, where) * 1000
            unit = "ms"
    except (ValueError, ConfigError):
        accepted = {"cpu": "a share like 95%", "errors": "a share like 5%",
                    "mem": "a share like 90% or bytes like 20G", "swap": "bytes like 1G or a share like 10%",
                    "temp": "degrees C like 85"}.get(metric, "a latency like 500ms, 1s or 250 (ms)")
        raise ConfigError(where, f"bad value {value!r} for {metric}: expected {accepted}") from None
    return Limit(str(text).strip(), metric, threshold, unit, action, op == ">=")


class SafetyMonitor(Companion):
    """Watches `limits` (Limit or text) during a run. `burners` is the run's BurnerGroup (for
    backoff and emergency stop), `sampler` its HostSampler (host limits need one)."""

    name = "safety"

    def __init__(self, limits, burners=None, sampler=None, echo=None,
                 backoff_factor: float = BACKOFF_FACTOR, cooldown_s: float = BACKOFF_COOLDOWN_S):
        self.limits = [lim if isinstance(lim, Limit) else parse_limit(lim) for lim in limits]
        self.burners = burners
        self.sampler = sampler
        self.echo = echo or (lambda line: None)
        self.backoff_factor = backoff_factor
        self.cooldown_s = cooldown_s
        self.hooks = []
        self.events: list[dict] = []       # the first MAX_EVENTS
        self.events_dropped = 0
        self.abort: Abort | None = None
        self.notes: list[str] = []         # the first MAX_NOTES
        self.notes_dropped = 0
        self._unchanged: set[str] = set()  # why backoffs left the request rate alone
        self.backoffs = 0
        self._active: dict[str, bool] = {}
        self._last_backoff: dict[str, float] = {}
        self._cpu = deque(maxlen=CPU_WINDOW)
        self._swap0 = None
        self._rate = None
        self._temps_seen = False
        self._lock = threading.Lock()
        if sampler is not None:
            sampler.add_listener(self.on_sample)
        elif any(lim.host for lim in self.limits):
            raise ValueError("host limits need a HostSampler")

    def add_backoff_hook(self, fn) -> None:
        """fn(factor, reason) is called on each backoff (e.g. to scale the request rate)."""
        self.hooks.append(fn)

    # -- checks ----------------------------------------------------------------------------
    def on_sample(self, s: dict) -> None:
        """A host sample (HostSampler row): check host limits. Runs in the sampler thread."""
        if s["cpu_pct"] is not None:
            self._cpu.append(s["cpu_pct"])
        if self._swap0 is None:
            self._swap0 = s["swap_used_bytes"]
        if s["temp_c_max"] is not None:
            self._temps_seen = True
        for lim in self.limits:
            if lim.host:
                self._check(lim, self._host_value(lim, s), s["t_s"])

    def _host_value(self, lim: Limit, s: dict) -> float | None:
        if lim.metric == "cpu":
            return sum(self._cpu) / len(self._cpu) if self._cpu else None
        if lim.metric == "mem":
            if lim.unit == "%":
                return s["mem_used_pct"]
            return float(s["mem_total_bytes"] - s["mem_available_bytes"])
        if lim.metric == "swap":
            grown = max(0, s["swap_used_bytes"] - (self._swap0 or 0))
            if lim.unit == "%":
                total = psutil.swap_memory().total
                return 100.0 * grown / total if total else 0.0
            return float(grown)
        return s["temp_c_max"]

    def on_interval(self, t_s: float, row: dict):
        for lim in self.limits:
            if lim.host:
                continue
            if lim.metric == "errors":
                done = row.get("completed") or 0
                value = 100.0 * row.get("errors", 0) / done if done else None
            else:
                value = row.get(f"latency_ms_{lim.metric}")
            self._check(lim, value, t_s)
        return self.abort

    def poll(self) -> Abort | None:
        return self.abort

    def _check(self, lim: Limit, value: float | None, t_s: float) -> None:
        with self._lock:
            crossed = lim.crossed(value)
            was = self._active.get(lim.text, False)
            self._active[lim.text] = crossed
            if not crossed or self.abort is not None:
                return
            what = f"{lim.metric} {lim.show(value)} > {lim.show(lim.threshold)} ({lim.text}) at {t_s:.1f}s"
            if lim.action == "warn":
                if not was:
                    self._event(lim, value, t_s, "warn")
                    self.echo(f"stressx: safety warning: {what}")
            elif lim.action == "backoff":
                last = self._last_backoff.get(lim.text)
                if last is None or t_s - last >= self.cooldown_s:
                    self._last_backoff[lim.text] = t_s
                    self._backoff(lim, value, t_s, what)
            else:
                reason = f"safety stop: {what}"
                self._event(lim, value, t_s, "stop")
                self.abort = Abort(reason, EXIT_ABORTED)
                if self.burners is not None:
                    self.burners.emergency_stop(reason)
                if lim.host:    # request limits are announced by the coordinator's Abort
                    self.echo(f"stressx: {reason}: stopping now")

    def _rate_backoff(self) -> tuple[float | None, str | None]:
        """Lower an open-model run's request rate by the backoff factor through the run's
        control (the coordinator sets `control` on its companions): the rate the shape (a
        --rate or any pattern, with earlier changes) gives now, times the factor, held from
        then on. Returns (the new rate, None), or (None, why the rate was not lowered)."""
        control = self.control
        if control is None:
            return None, "no load run to steer (stressx burn)"
        if not control.open_model:
            return None, "closed-model run: its connections are kept"
        t = control.elapsed()
        new = control.rate_at(t) * self.backoff_factor
        if new <= 0:
            return None, f"the shape's rate at {t:.1f}s is 0"
        control.change_rate(new, source="safety")
        self._rate = new
        return new, None

    def _backoff(self, lim: Limit, value: float, t_s: float, what: str) -> None:
        self.backoffs += 1
        scale = self.burners.backoff(self.backoff_factor) if self.burners is not None else None
        try:
            rate, why_not = self._rate_backoff()
        except Exception as exc:     # steering must not break the monitor
            rate, why_not = None, f"request-rate backoff failed: {type(exc).__name__}: {exc}"
        for fn in self.hooks:
            try:
                fn(self.backoff_factor, what)
            except Exception as exc:    # a hook must not break the monitor
                self._note(f"backoff hook failed: {type(exc).__name__}: {exc}")
        ev = self._event(lim, value, t_s, "backoff")
        ev["burner_scale"] = scale
        ev["request_rate"] = round(rate, 3) if rate is not None else None
        if why_not:
            ev["request_rate_unchanged"] = why_not
            if len(self._unchanged) < MAX_NOTES:
                self._unchanged.add(why_not)
        ev["hooks"] = len(self.hooks)
        self.echo(f"stressx: safety backoff: {what}: burner levels x{scale if scale is not None else '-'}"
                  + (f", request rate {rate:g}/s" if rate is not None else f" (request rate unchanged: {why_not})"))

    def _event(self, lim: Limit, value: float, t_s: float, action: str) -> dict:
        ev = {"t_s": round(t_s, 3), "limit": lim.text, "action": action,
              "value": round(value, 3), "threshold": lim.threshold, "unit": lim.unit}
        if len(self.events) < MAX_EVENTS:
            self.events.append(ev)
        else:
            self.events_dropped += 1
        if self.control is not None:         # to the control API's WebSocket clients
            self.control.emit(dict(ev, event="safety"))
        return ev

    def _note(self, note: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(note)
        else:
            self.notes_dropped += 1

    def finish(self) -> dict:
        notes = list(self.notes)
        if any(lim.metric == "temp" for lim in self.limits) and not self._temps_seen:
            notes.append("no temperature sensor exposed by this host: temp limits never checked")
        if self.notes_dropped:
            notes.append(f"{self.notes_dropped} more note(s) not kept")
        unchanged = sorted(self._unchanged)
        if unchanged and not self.hooks:
            # said from what happened, not assumed from the kind of run
            notes.append("backoff lowered burner levels only, not the request rate: "
                         + "; ".join(unchanged))
        return {"limits": [lim.text for lim in self.limits], "events": self.events,
                "events_dropped": self.events_dropped,
                "stopped": self.abort.reason if self.abort else None,
                "backoffs": self.backoffs,
                "request_rate": round(self._rate, 3) if self._rate is not None else None,
                "burner_scale": self.burners.scale if self.burners is not None else None,
                "notes": notes}
