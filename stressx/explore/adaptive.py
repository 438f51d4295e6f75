"""Adaptive ramping: raise the rate while latency and errors hold, back off when they degrade.

A coordinator companion. Every `step_every` seconds it judges the interval rows since its last
decision against the limits (SLO thresholds and a maximum error rate) and moves the whole run's
rate through its RunControl's change_rate(): up by `step` while healthy (to at most `max_rate`),
down to `backoff` x the current rate when not, then holds for `cooldown` before trying to climb
again. Every decision is recorded with its reason; `highest_stable_rps` is the highest rate
that was judged healthy. A long run keeps its first and its latest MAX_DECISIONS // 2
decisions and counts the ones between (`decisions_dropped`), so what it holds does not grow
with its length.
"""
from __future__ import annotations

from collections import deque

from ..engine.coordinator import Companion
from ..judge.thresholds import OPS, format_value, window_value


MAX_DECISIONS = 500


class AdaptiveRamp(Companion):
    name = "adaptive"

    def __init__(self, start: float, step: float, max_rate: float, step_every: float, slo: list,
                 max_error_rate: float, backoff: float = 0.5, cooldown: float = 10.0):
        self.rate, self.step, self.max_rate = float(start), float(step), float(max_rate)
        self.step_every, self.cooldown, self.backoff = float(step_every), float(cooldown), float(backoff)
        self.slo, self.max_error_rate = slo, max_error_rate
        self.rows: list[dict] = []
        self.next_decision = self.step_every
        self.first: list[dict] = []                          # the first decisions
        self.latest: deque = deque(maxlen=MAX_DECISIONS // 2)  # and the latest
        self.decisions_total = 0
        self.highest_stable: float | None = None

    def health(self, rows: list[dict]) -> list[str]:
        """Why the window is unhealthy (empty: healthy)."""
        problems = []
        for th in self.slo:
            actual, note = window_value(th, rows)
            if actual is not None and not OPS[th.op](actual, th.limit):
                problems.append(f"{th.text}: {format_value(th, actual)}{note}")
        completed = sum(r["completed"] for r in rows)
        if completed:
            err = sum(r["errors"] for r in rows) / completed
            if err > self.max_error_rate:
                problems.append(f"error rate {err:.2%} > {self.max_error_rate:.2%}")
        elif sum(r["sent"] for r in rows):
            problems.append("no request completed in the window")
        lag = [r["send_lag_ms_p99"] for r in rows if r.get("send_lag_ms_p99") is not None]
        if lag and max(lag) > 5.0:
            problems.append(f"the client fell behind its schedule (send lag p99 {max(lag):g} ms)")
        return problems

    def on_interval(self, t_s: float, row: dict):
        self.rows.append(row)
        if t_s + 0.1 < self.next_decision:
            return None
        problems = self.health(self.rows)
        old = self.rate
        if problems:
            self.rate = max(old * self.backoff, 0.001)
            action, wait = "back off", self.cooldown
        elif old >= self.max_rate:
            self.highest_stable = max(self.highest_stable or 0, old)
            action, wait = "hold at max", self.step_every
        else:
            self.highest_stable = max(self.highest_stable or 0, old)
            self.rate = min(old + self.step, self.max_rate)
            action, wait = "raise", self.step_every
        self._decided({"t_s": round(t_s, 3), "action": action, "from_rps": old,
                       "to_rps": self.rate,
                       "reason": "; ".join(problems) or "latency and errors within limits"})
        if self.rate != old:
            self.control.change_rate(self.rate, source="adaptive")
        self.rows = []
        self.next_decision = t_s + wait
        return None

    def _decided(self, decision: dict) -> None:
        self.decisions_total += 1
        if len(self.first) < MAX_DECISIONS - self.latest.maxlen:
            self.first.append(decision)
        else:
            self.latest.append(decision)

    @property
    def decisions(self) -> list[dict]:
        """The decisions kept: the first ones, then the latest (see decisions_dropped)."""
        return self.first + list(self.latest)

    def finish(self) -> dict:
        return {"decisions": self.decisions,
                "decisions_dropped": self.decisions_total - len(self.first) - len(self.latest),
                "final_rps": self.rate,
                "highest_stable_rps": self.highest_stable,
                "limits": [th.text for th in self.slo], "max_error_rate": self.max_error_rate}
