"""The handle a companion gets on the run it is beside: RunControl, and the target it follows.

Companions (burners, the host sampler, safety limits, sliding-window thresholds, adaptive ramps,
your own) see the run through a RunControl, never the coordinator: what was resolved (the
RunConfig, which nothing changes once the run starts), what is being followed (the open model's
shape with the live rate changes made so far), the shard processes' pids, the latest interval row
and the time since the common start; and they may change the rate or end the run with a reason.
The coordinator makes one per run and sets it as `companion.control` before prepare().
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

from ..errors import EXIT_ABORTED

DEFAULT_DELAY_S = 0.02     # a change "now" is published this far ahead: every shard sees it first


class TargetSchedule:
    """The open model's target over a run: the resolved shape, then each live change (from `at_s`
    seconds after the start, `rate` held to the end). The RunConfig keeps the shape as planned;
    this is the one followed: the interval rows' `rate_target` and the summary's are read here."""

    def __init__(self, shape):
        self.shape = shape                          # None: closed model
        self.change_count = 0                       # live changes (a count: a soak makes many)
        self.last_change: tuple[float, float] | None = None

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
                 request_abort: Callable[[str, int], None]):
        self.config = config
        self.schedule = TargetSchedule(config.shape)
        self.start_ns = 0
        self.shard_pids: dict[str, int] = {}
        self.latest: dict | None = None
        self._publish_rate = publish_rate
        self._request_abort = request_abort
        self._lock = threading.Lock()

    @property
    def open_model(self) -> bool:
        return self.config.open_model

    def elapsed(self) -> float:
        """Seconds since the common start instant (0.0 before it)."""
        return (time.monotonic_ns() - self.start_ns) / 1e9 if self.start_ns else 0.0

    def rate_at(self, t_s: float | None = None) -> float | None:
        """The target rate at `t_s` seconds after the start (default: now), live changes
        included; None in the closed model."""
        return self.schedule.rate_at(self.elapsed() if t_s is None else t_s)

    def change_rate(self, rate: float, at: float | None = None, *,
                    delay_s: float = DEFAULT_DELAY_S) -> None:
        """Move an open-model run to a constant total `rate` from `at` seconds after the start
        (None: `delay_s` from now; never before now), in every shard at the same instant. The
        rate holds until the next change (the rest of the shape is dropped); 0 pauses sending,
        any rate > 0 (0.001/s too) resumes it. Sends due before the change keep their times."""
        rate = float(rate)
        if not 0 <= rate < math.inf:
            raise ValueError(f"change_rate: rate must be finite and >= 0, got {rate!r}")
        with self._lock:
            now = time.monotonic_ns()
            at_ns = now + int(delay_s * 1e9)
            if at is not None and self.start_ns:
                at_ns = max(now, self.start_ns + int(round(float(at) * 1e9)))
            if self.start_ns:
                self.schedule.change((at_ns - self.start_ns) / 1e9, rate)
            self._publish_rate(rate, at_ns)

    def abort(self, reason: str, exit_code: int = EXIT_ABORTED) -> None:
        """End the run early: sending stops, in-flight requests drain, the results are written,
        summary `aborted` holds `reason` and the run exits with `exit_code` (the first abort
        wins)."""
        self._request_abort(reason, exit_code)
