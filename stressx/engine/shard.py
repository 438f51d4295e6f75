"""One shard process: a uvloop event loop driving the compiled Engine.

Started by the coordinator like ``python -m stressx.engine.shard`` (argv from stressx.engine.spawn) with its
job (a ShardJob, stressx.engine.job) on stdin. It maps its shared-memory segment, pre-opens connections, reports READY,
waits for the common start instant the coordinator writes, runs (publishing a snapshot of its
counters at each whole second after it), drains, publishes its final snapshot and reports DONE.
Everything it measures goes into shared memory; it prints nothing unless it fails.
"""
from __future__ import annotations

import signal

if __name__ == "__main__":
    # first, before the slow imports: Ctrl-C reaches the whole process group, and the
    # coordinator decides how the run stops (a shard still importing must not die of it)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import asyncio
import gc
import os
import resource
import ssl
import sys

import uvloop

from ..system import raise_fd_limit, steady_heap
from . import _core
from .job import ShardJob
from .shm import ShardMemory

STATE = _core.STATE
START_POLL_S = 0.0005


def make_ssl_context(insecure: bool, ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def run_shard(job: ShardJob, mem: ShardMemory) -> None:
    loop = asyncio.get_running_loop()
    _core.set_timer_slack_ns(1)
    tls = job.scheme == "https"
    engine = _core.Engine(
        mem.slots, loop, job.address, job.port,
        scenarios=[sc.for_engine() for sc in job.scenarios],
        ssl_context=make_ssl_context(job.insecure, job.ca_file) if tls else None,
        server_hostname=job.host if tls else None,
        segments=job.segments, users_segments=job.users_segments,
        shard_index=job.index, shard_count=job.count,
        budget=job.budget, duration_ns=job.duration_ns, timeout_ns=job.timeout_ns,
        grace_ns=job.grace_ns, connections=job.connections,
        max_connections=job.max_connections, timer_slack_ns=job.timer_slack_ns,
    )
    loop.add_signal_handler(signal.SIGTERM, engine.stop)
    try:
        await asyncio.wait_for(engine.prewarm(), job.timeout_ns / 1e9)
    except asyncio.TimeoutError:
        pass  # the run still starts; the missing connections are retried with requests
    gc.collect()
    gc.freeze()  # nothing built so far needs collecting: keep the collector off the hot path
    mem.set("state", STATE["ready"])
    while mem.get("start_ns") == 0:
        if mem.get("stop_request") or os.getppid() != job.coordinator_pid:
            return
        await asyncio.sleep(START_POLL_S)
    done = engine.start(mem.get("start_ns"))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await done
    after = resource.getrusage(resource.RUSAGE_SELF)
    # the client CPU cost of the run itself, without interpreter start-up and imports
    mem.set("cpu_user_ns", int((after.ru_utime - before.ru_utime) * 1e9))
    mem.set("cpu_sys_ns", int((after.ru_stime - before.ru_stime) * 1e9))


def main() -> int:
    try:
        job = ShardJob.loads(sys.stdin.buffer.read())
    except ValueError as exc:
        print(f"stressx shard: error: {exc}", file=sys.stderr)
        return 2
    # the coordinator checked RLIMIT_NOFILE and raised its own soft limit for us to inherit;
    # raise ours too, in case this shard was started some other way
    raise_fd_limit(max(job.max_connections, job.connections) + job.fd_margin)
    steady_heap()   # a shard may run for a day: no heap creep from glibc's moving threshold
    _core.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != job.coordinator_pid:
        return 1  # the coordinator died before we could ask to follow it
    # Ctrl-C reaches the whole process group; the coordinator decides how the run stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mem = ShardMemory.attach(job.segment)
    mem.touch()          # its whole segment resident from the start: a flat RSS all run
    mem.set("pid", os.getpid())
    try:
        if job.flow:
            from ..flows.runner import run_flow_shard
            uvloop.run(run_flow_shard(job, mem))
        else:
            uvloop.run(run_shard(job, mem))
    except BaseException:
        _core.publish_snapshot(mem.slots, final=True)   # what it counted, whole
        mem.set("state", STATE["failed"])
        raise
    # the last snapshot, after every count (the loop is closed): the coordinator's last
    # interval and the summary are both cut from it
    _core.publish_snapshot(mem.slots, final=True)
    mem.set("state", STATE["done"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
