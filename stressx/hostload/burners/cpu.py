"""CPU burner: hold a target utilisation of one core per worker process.

Each 100 ms period, a worker burns its share of CPU *time* in compiled busy work
(``_core.burn_cpu``: a multiply/xorshift chain, checking CLOCK_PROCESS_CPUTIME_ID every ~10 us)
and sleeps to the next period boundary on an absolute clock. Like stress-ng's ``--cpu-load``,
busy time is measured as CPU time, not wall time, so being preempted does not count as work;
unlike a per-period loop, the budget carries the error forward: each period burns

    (integral of the requested level up to the period's end) - (CPU time used since start)

clamped to [0, one period], so interpreter overhead, wake-up costs and clock-check overshoot
are paid back in the next period rather than biasing the mean. The absolute sleep means
oversleep shortens the next period's idle phase instead of accumulating. The clamp is the
anti-windup: a worker starved by other processes is limited to one period of catch-up and is
flagged LIMIT_BEHIND, it never bursts to 100% to pay back a debt.

Levels are fractions of one core (0.5 = 50%); ``cpu=50%`` runs one worker per CPU this process
may use, ``cpu=50%x2`` two. Workers float between CPUs as the scheduler likes (each still holds
its own CPU time); ``cpu=50%,pin`` pins worker i to the i-th usable CPU for an even per-core load.
"""
from __future__ import annotations

import os
import re

from ...engine import _core
from ...errors import ConfigError
from .base import LIMIT_BEHIND, PERIOD_NS, Burner, BurnerSpec, clamp, schedule_peak

_LEVEL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*(?:x\s*(\d+))?\s*$", re.I)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class CpuBurner(Burner):
    kind = "cpu"
    unit = "%"
    scale = 100.0
    option_names = ("workers",)
    flags = ("pin",)

    @classmethod
    def example(cls) -> str:
        return "cpu=50% (every core) or cpu=50%x2 (two cores)"

    @classmethod
    def default_workers(cls) -> int:
        return usable_cpus()

    @classmethod
    def parse_level(cls, text: str, token: str):
        m = _LEVEL.match(text)
        if not m:
            raise ConfigError(token, f"expected a CPU level per core like 50% or 50%x2, got {text!r}")
        pct = float(m.group(1))
        if not 0 <= pct <= 100:
            raise ConfigError(token, f"CPU level must be 0..100% of a core, got {pct:g}%")
        workers = int(m.group(2)) if m.group(2) else None
        return pct / 100.0, workers

    @classmethod
    def validate(cls, spec: BurnerSpec) -> None:
        if not 1 <= spec.workers <= 4 * usable_cpus():
            raise ConfigError(spec.token, f"workers must be 1..{4 * usable_cpus()} "
                              f"(up to 4 per usable CPU), got {spec.workers}")
        peak = schedule_peak(spec.schedule)
        if peak is not None and not 0 <= peak <= 1:
            raise ConfigError(spec.token, f"CPU level must be 0..100% of a core, got {peak * 100:g}%")

    @classmethod
    def describe(cls, level: float) -> str:
        return f"{level * 100:.1f}%"

    # -- burner process ------------------------------------------------------------------
    def setup(self) -> None:
        if self.options.get("pin"):   # worker i on the i-th usable CPU: an even per-core load
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[self.worker % len(cpus)]})

    def start(self, start_ns: int) -> None:
        self.cpu0 = _core.process_cpu_ns()   # CPU spent before the start is not counted
        self.owed_ns = 0.0                   # integral of the requested level so far

    def period(self, t0: int, t1: int, level: float) -> None:
        level = clamp(level, 0.0, 1.0)
        self.ctl.set("applied", level)
        self.owed_ns += level * PERIOD_NS
        used = _core.process_cpu_ns() - self.cpu0
        budget = self.owed_ns - used
        if budget > PERIOD_NS:
            # more than a period behind: forgive the excess (anti-windup) and say so
            self.owed_ns = used + PERIOD_NS
            budget = PERIOD_NS
            self.ctl.set("limited", LIMIT_BEHIND)
        elif budget < -PERIOD_NS:
            self.owed_ns = used - PERIOD_NS   # ahead (the level dropped): idle at most a period
        else:
            self.ctl.set("limited", 0)
        if level >= 1.0:
            _core.burn_cpu(PERIOD_NS * 2, t1)    # all of it: no sleep at all
        elif budget > 0:
            _core.burn_cpu(int(budget), t1)
        self.ctl.set("work", _core.process_cpu_ns() - self.cpu0)
