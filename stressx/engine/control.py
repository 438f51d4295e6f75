"""The handle a companion gets on the run it is beside: RunControl, and the target it follows.

Companions (burners, the host sampler, safety limits, sliding-window thresholds, adaptive ramps,
your own) see the run through a RunControl, never the coordinator: what was resolved (the
RunConfig, which nothing changes once the run starts), what is being followed (the open model's
shape with the live rate changes made so far), the shard processes' pids, the latest interval row
and the time since the common start; and they may change the rate (open model) or the number of
connections (closed model), stop the run (gracefully or at once) or abort it with a reason.
Every change is recorded (`changes`: time, what, value, source) for the summary, and companions
may publish events (`emit`) to whoever subscribed (the control API's WebSocket).
The coordinator makes one per run and sets it as `companion.control` before prepare().
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

from ..errors import EXIT_ABORTED

DEFAULT_DELAY_S = 0.02     # a change "now" is published this far ahead: every shard sees it first
MAX_CHANGES = 10_000       # changes asked through the control API kept for the summary
MAX_COMPANION_CHANGES = 100   # those companions make (a soak's back-offs and adaptive steps,
                              # each in the companion's own section too); the rest counted
USER_SOURCES = ("api", "websocket")


class TargetSchedule:
    """The open model's target over a run: the resolved shape, then each live change (from `at_s`
    seconds after the start, `rate` held to the end). The RunConfig keeps the shape as planned;
    this is the one followed: the interval rows' `rate_target` and the summary's are read here."""

    def __init__(self, shape):
        self.shape = shape                          # None: closed model
        self.change_count = 0                       # live changes (a count: a soak makes many)
        self.last_change: tuple[float, float] | None = None
        self.connections: int | None = None         # closed model: the live total, once changed

    def change(self, at_s: float, rate: float) -> None:
        if self.shape is not None:
            self.shape = self.shape.with_rate_from(at_s, rate)
            self.change_count += 1
            self.last_change = (at_s, rate)

    def rate_at(self, t_s: float) -> float | None:
        return self.shape.rate_at(t_s) if self.shape is not None else None

    def mean_rate(self, t0: float, t1: float) -> float | None:
        """Mean target rate between two instants (seconds after the start); None if closed."""
        return self.shape.mean_rate(t0, t1) if self.shape is not None else None


class RunControl:
    """What a companion may see of a run and do to it. Thread-safe: the host sampler's thread
    (safety back-off) calls change_rate too.

        config        the resolved RunConfig (frozen)
        schedule      the TargetSchedule followed (open model; its shape is None when closed)
        start_ns      the common start instant (CLOCK_MONOTONIC ns; 0 before the start)
        shard_pids    {"shard0": pid, ...} once the shards are spawned
        latest        the latest merged interval row (a dict as in intervals.arrows), or None
    """

    def __init__(self, config, publish_rate: Callable[[float, int], None],
                 request_abort: Callable[[str, int], None],
                 request_stop: Callable[[str, bool], None] | None = None,
                 max_connections: int | None = None):
        self.config = config
        self.schedule = TargetSchedule(config.shape)
        self.start_ns = 0
        self.shard_pids: dict[str, int] = {}
        self.latest: dict | None = None
        self.state = "starting"          # starting, running, stopping, done
        self.stopping: str | None = None  # why sending is ending early (stop, abort), once asked
        self.changes: list[dict] = []    # every live change: t_s, what, value, source
        self.changes_dropped = 0
        self._companion_changes = 0
        self.max_connections = max_connections   # closed model: the most a change may ask
        self.min_delay_s = 0.0           # a change is never published less ahead (a cluster's
                                         # driver: the time its message takes to every host)
        self._publish_rate = publish_rate
        self._request_abort = request_abort
        self._request_stop = request_stop
        self._listeners: list[Callable[[dict], None]] = []
        self._lock = threading.Lock()

    @property
    def open_model(self) -> bool:
        return self.config.open_model

    def elapsed(self) -> float:
        """Seconds since the common start instant (0.0 before it)."""
        return max(time.monotonic_ns() - self.start_ns, 0) / 1e9 if self.start_ns else 0.0

    def rate_at(self, t_s: float | None = None) -> float | None:
        """The target rate at `t_s` seconds after the start (default: now), live changes
        included; None in the closed model."""
        return self.schedule.rate_at(self.elapsed() if t_s is None else t_s)

    def change_rate(self, rate: float, at: float | None = None, *,
                    delay_s: float = DEFAULT_DELAY_S, source: str = "companion") -> None:
        """Move an open-model run to a constant total `rate` from `at` seconds after the start
        (None: `delay_s` from now; never before now), in every shard at the same instant. The
        rate holds until the next change (the rest of the shape is dropped); 0 pauses sending,
        any rate > 0 (0.001/s too) resumes it. Sends due before the change keep their times.
        `source` says who asked (recorded in `changes`: safety, adaptive, api, ...)."""
        rate = float(rate)
        if not 0 <= rate < math.inf:
            raise ValueError(f"change_rate: rate must be finite and >= 0, got {rate!r}")
        if not self.open_model:
            raise ValueError("change_rate: a closed-model run has connections, not a rate")
        with self._lock:
            at_ns = self._instant(at, max(delay_s, self.min_delay_s))
            if self.start_ns:
                self.schedule.change((at_ns - self.start_ns) / 1e9, rate)
            self._publish_rate(rate, at_ns)
            self._record(at_ns, "rate", rate, source)

    def change_connections(self, connections: int, at: float | None = None, *,
                           delay_s: float = DEFAULT_DELAY_S, source: str = "companion") -> None:
        """Move a closed-model run to `connections` connections in all (split over the shards
        as at the start) from `at` seconds after the start (None: `delay_s` from now); 0
        pauses it. Connections above the new
        number close as their request completes; new ones open at once."""
        n = int(connections)
        if self.open_model:
            raise ValueError("change_connections: an open-model run has a rate, not connections")
        if n < 0 or (self.max_connections is not None and n > self.max_connections):
            raise ValueError(f"change_connections: must be between 0 and "
                             f"{self.max_connections}, got {n}")
        with self._lock:
            at_ns = self._instant(at, max(delay_s, self.min_delay_s))
            self.schedule.connections = n
            self._publish_rate(float(n), at_ns)    # the closed model reads it as a count
            self._record(at_ns, "connections", n, source)

    def connections_now(self) -> int | None:
        """The closed model's target number of connections now (None: open model)."""
        if self.open_model:
            return None
        if self.schedule.connections is not None:
            return self.schedule.connections
        users = self.config.users_shape
        if users is not None:
            return int(users.rate_at(self.elapsed()) + 0.5)
        return self.config.connections

    def _instant(self, at: float | None, delay_s: float) -> int:
        now = time.monotonic_ns()
        at_ns = now + int(delay_s * 1e9)
        if at is not None and self.start_ns:
            at_ns = max(now + int(self.min_delay_s * 1e9),
                        self.start_ns + int(round(float(at) * 1e9)))
        return at_ns

    def _record(self, at_ns: int, what: str, value, source: str) -> None:
        change = {"t_s": round((at_ns - self.start_ns) / 1e9, 6) if self.start_ns else 0.0,
                  "what": what, "value": value, "source": source}
        if source in USER_SOURCES:
            keep = len(self.changes) < MAX_CHANGES
        else:
            keep = self._companion_changes < MAX_COMPANION_CHANGES
            self._companion_changes += keep
        if keep:
            self.changes.append(change)
        else:
            self.changes_dropped += 1
        self.emit(dict(change, event="change"))

    def record(self, what: str, value, source: str) -> None:
        """Record a change made elsewhere (burner levels, pause, stop) with its time."""
        with self._lock:
            self._record(time.monotonic_ns(), what, value, source)

    # -- events ----------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[dict], None]) -> None:
        """listener(event) for every event emitted (from whichever thread emits it)."""
        self._listeners.append(listener)

    def emit(self, event: dict) -> None:
        """Publish an event ({"event": "safety", ...}) to the subscribers; never raises."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                pass

    def stop(self, reason: str, *, now: bool = False, source: str = "companion") -> None:
        """End sending early. Graceful (now=False): in-flight requests drain, the results are
        written, the summary's `stopped` holds `reason` and the exit code is what the checks
        give (0 when they pass). now=True is an emergency stop: sending ends and in-flight
        requests are abandoned at once, the summary's `aborted` holds `reason`, exit 4."""
        self.record("emergency-stop" if now else "stop", reason, source)
        if self._request_stop is None:
            self.abort(reason)
            return
        self._request_stop(reason, now)

    def abort(self, reason: str, exit_code: int = EXIT_ABORTED) -> None:
        """End the run early: sending stops, in-flight requests drain, the results are written,
        summary `aborted` holds `reason` and the run exits with `exit_code` (the first abort
        wins)."""
        self._request_abort(reason, exit_code)
