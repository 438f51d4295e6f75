"""How precisely, and at what CPU cost, can this machine wake a sleeping process?

Every open-model load tool sleeps between sends. This measures the floor any of them faces on
the machine at hand: a uvloop loop sleeping on stressx's timerfd (the engine's own Timer) and
waking at exact absolute times, pinned to CPU 1, reporting per period the CPU time per wake-up
and the wake-up lag (actual minus asked). If a bare wake-up costs 60 us of CPU and its p99 lag is
0.5 ms, no sleeping client can send 10k req/s with a 0.2 ms p99 lag for less than ~30 us of CPU
per request here; only spinning can, at a whole core.

    python benchmarks/bench_timer.py [--wakes 20000] [--periods 50,100,200,1000]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

import uvloop

from stressx.engine import _core


async def measure(period_us: int, wakes: int) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    _core.set_timer_slack_ns(1)
    timer = _core.Timer()
    period = period_us * 1000
    lags: list[int] = []
    done = loop.create_future()
    start = time.monotonic_ns() + 10_000_000

    def on_timer():
        os.read(timer.fd, 8)
        lags.append(time.monotonic_ns() - (start + len(lags) * period))
        if len(lags) >= wakes:
            done.set_result(None)
        else:
            timer.arm(start + len(lags) * period)

    loop.add_reader(timer.fd, on_timer)
    timer.arm(start)
    before = resource.getrusage(resource.RUSAGE_SELF)
    await done
    after = resource.getrusage(resource.RUSAGE_SELF)
    loop.remove_reader(timer.fd)
    timer.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lags.sort()
    return cpu / wakes * 1e6, lags[len(lags) // 2] / 1000, lags[int(len(lags) * 0.99)] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wakes", type=int, default=20000)
    ap.add_argument("--periods", default="50,100,200,1000", help="microseconds, comma-separated")
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {1})
    except OSError:
        pass
    print(f"{'period us':>10} {'cpu us/wake':>12} {'lag p50 us':>11} {'lag p99 us':>11}")
    for p in (int(x) for x in args.periods.split(",")):
        cpu, p50, p99 = uvloop.run(measure(p, args.wakes))
        print(f"{p:>10} {cpu:>12.1f} {p50:>11.1f} {p99:>11.1f}")


if __name__ == "__main__":
    main()
