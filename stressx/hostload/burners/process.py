"""One burner process, ``python -m stressx.hostload.burners`` with its job (JSON) on stdin:
attach to its control block, set up, wait for the common start instant, run 100 ms periods
until told to stop (or the parent dies), tear down. The parent side is group.BurnerGroup."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

from ...engine import _core
from . import BURNERS
from .base import PERIOD_NS, STATE, Control


class _Stop(Exception):
    pass


def sleep_until(when_ns: int, ctl: Control, parent_pid: int) -> None:
    """Sleep to an absolute instant, waking early only for a stop request or a signal."""
    while True:
        now = time.monotonic_ns()
        if now >= when_ns:
            return
        if ctl.get("stop") or os.getppid() != parent_pid:
            raise _Stop
        # slices of <= 50 ms so a stop request is seen quickly even mid-sleep
        _core.sleep_until_ns(min(when_ns, now + 50_000_000))


def run_burner(job: dict) -> int:
    """The body of ``python -m stressx.hostload.burners``: attach, set up, wait for the start instant,
    run 100 ms periods until told to stop (or the parent dies), tear down."""
    parent_pid = job["parent_pid"]
    _core.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:
        return 1                     # the parent died before we could ask to follow it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent decides how runs stop

    def on_term(signum, frame):
        raise _Stop
    signal.signal(signal.SIGTERM, on_term)
    _core.set_timer_slack_ns(1)      # wake at period boundaries, not 50 us later
    ctl = Control(job["fd"])
    ctl.set("pid", os.getpid())
    burner = BURNERS[job["kind"]](ctl, job["options"])
    burner.worker = job.get("worker", 0)
    try:
        burner.setup()
        ctl.set("state", STATE["ready"])
        while ctl.get("start_ns") == 0:
            if ctl.get("stop") or os.getppid() != parent_pid:
                raise _Stop
            time.sleep(0.001)
        start_ns = ctl.get("start_ns")
        sleep_until(start_ns, ctl, parent_pid)
        ctl.set("state", STATE["running"])
        burner.start(start_ns)
        k = 0
        while True:
            if ctl.get("stop") or os.getppid() != parent_pid:
                break
            now = time.monotonic_ns()
            t0 = start_ns + k * PERIOD_NS
            if now >= t0 + PERIOD_NS:    # a whole period late (starved): skip, don't burst
                k = (now - start_ns) // PERIOD_NS
                t0 = start_ns + k * PERIOD_NS
            ctl.set("heartbeat_ns", now)
            burner.period(t0, t0 + PERIOD_NS, ctl.get("level"))
            k += 1
            sleep_until(start_ns + k * PERIOD_NS, ctl, parent_pid)
    except _Stop:
        pass
    except BaseException as exc:
        ctl.set("state", STATE["failed"])
        print(f"stressx burner {job['name']}: {type(exc).__name__}: {exc}", file=sys.stderr)
        burner.teardown()
        return 1
    burner.teardown()
    ctl.set("state", STATE["done"])
    return 0


def main() -> int:
    return run_burner(json.loads(sys.stdin.read()))
