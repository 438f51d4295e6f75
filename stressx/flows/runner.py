"""One shard running Python scenarios: its virtual users, the iterations they run (closed
model: each user loops; open model: each arrival of the schedule starts one iteration at its
intended time), the step names and named counters it writes into its segment, the snapshots
at start + k s, and the end (drain, teardown hooks, the final snapshot by shard.py).

The totals of the segment count HTTP requests; its scenario blocks count iterations; its
step blocks count each named step (stressx/engine/_flow.pxi records them in C).
"""
from __future__ import annotations

import asyncio
import collections
import gc
import os
import random
import ssl
import time

import numpy as np

from .._version import __version__
from ..engine import _core
from ..engine.job import ShardJob
from ..engine.shm import (COUNTER_SLOTS, N_COUNTERS, N_TRACEBACKS, NAME_SLOTS, SCENARIO_BLOCK,
                          SCENARIOS_BASE, TB_SLOTS, ShardMemory, write_text)
from ..load.flowfile import import_flow
from .user import CheckFailed, RequestError, User, format_exception

STATE = _core.STATE
STOP = _core.STOP
KIND = _core.ERROR_KIND
SWEEP_S = 0.05
START_POLL_S = 0.0005
CK_CHECK, CK_EXCEPTION = 1, 2


class Runner:
    def __init__(self, job: ShardJob, mem: ShardMemory, reg, loop):
        self.job, self.mem, self.reg, self.loop = job, mem, reg, loop
        self.slots = mem.slots
        self.stats = _core.FlowStats(mem.slots, job.timeout_ns)
        self.shard_index = job.index
        self.address, self.port = job.address, job.port
        self.host_header = job.host if job.port in (80, 443) else f"{job.host}:{job.port}"
        if ":" in job.host and not job.host.startswith("["):
            self.host_header = f"[{job.host}]:{job.port}"
        self.agent = f"stressx/{__version__}"
        self.ssl_context = None
        self.server_hostname = None
        if job.scheme == "https":
            self.ssl_context = ssl.create_default_context(cafile=job.ca_file)
            if job.insecure:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
            self.server_hostname = job.host
        self.request_cache: dict = {}
        by_name = {s.name: s for s in reg.scenarios}
        self.scenarios = [by_name[n] for n in job.flow_scenarios]
        weights = [max(s.weight, 0.0) for s in self.scenarios]
        total = sum(weights)
        self.cum = list(np.cumsum(weights) / total)
        self.cum[-1] = 1.0
        self.rng = random.Random(job.index + 1)
        self.n_scenarios = len(self.scenarios)
        self.n_steps = mem.get("n_steps")
        self.steps: dict[str, int] = {}
        flow = SCENARIOS_BASE + (self.n_scenarios + self.n_steps) * SCENARIO_BLOCK
        self.names_at = flow
        self.counters_at = flow + self.n_steps * NAME_SLOTS
        self.tb_at = self.counters_at + N_COUNTERS * COUNTER_SLOTS
        self.counters: dict[tuple, int] = {}
        self.tracebacks: set[str] = set()
        self.users: list[User] = []
        self.started_users: set = set()
        self.tasks: set = set()
        self.open_model = job.segments is not None
        self.users_shape = (_core.Schedule(0.0, 0, 1, -1, -1, segments=job.users_segments)
                            if job.users_segments is not None else None)
        self.active_users = 0
        self.looping: set = set()
        self.stopping = False
        self.issued = 0
        self.start_ns = 0
        self.stop_at_ns = 0

    # -- names in shared memory ------------------------------------------------------------
    def step_index(self, name: str) -> int:
        """The step block of `name`, given one on first use (-1: none left; counted as
        step_overflow)."""
        j = self.steps.get(name)
        if j is None:
            j = len(self.steps)
            if j >= self.n_steps:
                return -1
            write_text(self.slots, self.names_at + j * NAME_SLOTS, name, NAME_SLOTS)
            self.steps[name] = j
            self.mem.set("steps_used", j + 1)
        return j

    def _counter(self, kind: int, name: str) -> int:
        key = (kind, name)
        i = self.counters.get(key)
        if i is None:
            i = len(self.counters)
            if i >= N_COUNTERS:
                self.stats.add("counter_overflow")
                return -1
            at = self.counters_at + i * COUNTER_SLOTS
            write_text(self.slots, at + 3, name, NAME_SLOTS)
            self.slots[at] = kind
            self.counters[key] = i
        return self.counters_at + i * COUNTER_SLOTS

    def count_check(self, name: str, ok: bool) -> None:
        at = self._counter(CK_CHECK, name)
        if at >= 0:
            self.slots[at + (1 if ok else 2)] += 1

    def count_exception(self, exc: BaseException) -> None:
        at = self._counter(CK_EXCEPTION, type(exc).__name__)
        if at >= 0:
            self.slots[at + 1] += 1
        n = self.mem.get("tracebacks")
        if n < N_TRACEBACKS:
            text = format_exception(exc)
            # distinct by where it was raised and its type, not by the message's details
            key = f"{type(exc).__name__}:{_last_frame(exc)}"
            if key not in self.tracebacks:
                self.tracebacks.add(key)
                write_text(self.slots, self.tb_at + n * TB_SLOTS, text, TB_SLOTS)
                self.mem.set("tracebacks", n + 1)

    # -- iterations ------------------------------------------------------------------------
    def pick(self) -> int:
        if self.n_scenarios == 1:
            return 0
        u = self.rng.random()
        for i, c in enumerate(self.cum):
            if u < c:
                return i
        return self.n_scenarios - 1

    async def iteration(self, user: User, intended_ns: int) -> None:
        """One iteration of a scenario drawn by weight; whatever it raises is counted and
        ends only it."""
        sc = self.pick()
        stats = self.stats
        stats.iteration_start(sc, intended_ns, time.monotonic_ns(), self.open_model)
        kind = -1
        try:
            if user not in self.started_users:
                self.started_users.add(user)
                for hook in self.reg.user_start:
                    await hook(user)
            await self.scenarios[sc].fn(user)
        except asyncio.CancelledError:
            stats.iteration_end(sc, KIND["closed"], intended_ns, time.monotonic_ns())
            raise
        except RequestError as exc:
            kind = KIND.get(exc.kind, KIND["other"])
        except CheckFailed:
            kind = KIND["check"]
        except Exception as exc:
            kind = KIND["scenario_error"]
            self.count_exception(exc)
        stats.iteration_end(sc, kind, intended_ns, time.monotonic_ns())
        think = self.scenarios[sc].think
        if think and not self.open_model:
            await asyncio.sleep(think if not isinstance(think, (tuple, list))
                                else self.rng.uniform(*think))

    def may_issue(self) -> bool:
        if self.stopping or time.monotonic_ns() >= self.stop_at_ns:
            return False
        return self.job.budget < 0 or self.issued < self.job.budget

    async def closed_user(self, user: User) -> None:
        while self.may_issue() and user.index < self.active_users:
            self.issued += 1
            await self.iteration(user, time.monotonic_ns())

    def users_now(self, now: int) -> int:
        """Closed model with a users shape: this shard's share of the shape's count now."""
        total = int(self.users_shape.rate_at((now - self.start_ns) / 1e9) + 0.5)
        n, i = self.job.count, self.job.index
        return total // n + (1 if i < total % n else 0)

    def set_users(self, n: int) -> None:
        """Run n users: start the missing ones; users numbered n and above stop after their
        iteration under way."""
        self.active_users = n
        self.mem.set("users", n)
        while len(self.users) < n:
            self.users.append(User(self, len(self.users)))
        for u in self.users[:n]:
            if u not in self.looping:
                self.looping.add(u)
                t = self.loop.create_task(self.closed_user(u))
                self.tasks.add(t)
                t.add_done_callback(self.tasks.discard)
                t.add_done_callback(lambda _t, u=u: self.looping.discard(u))

    async def open_arrivals(self) -> None:
        """Start iteration i at its intended time on a free user (a new one while fewer than
        max_connections are running; else it waits for one: the wait is in its latency)."""
        job = self.job
        sched = _core.Schedule(0.0, job.index, job.count, job.budget, job.duration_ns,
                               segments=job.segments)
        free: collections.deque = collections.deque(self.users)
        waiting: collections.deque = collections.deque()
        i = 0

        def start(user, intended):
            t = self.loop.create_task(self._open_one(user, intended, free, waiting))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

        self._start_open = start
        while not self.stopping:
            if sched.is_exhausted(i):
                break
            due = self.start_ns + sched.due_at(i)
            if due >= self.stop_at_ns:
                break
            now = time.monotonic_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                if self.stopping:
                    break
            i += 1
            if free:
                start(free.popleft(), due)
            elif len(self.users) < job.max_connections:
                u = User(self, len(self.users))
                self.users.append(u)
                start(u, due)
            else:
                self.stats.add("late")
                self.stats.add("late_at_cap")      # a flow's users are its connections
                waiting.append(due)
                self.mem.set("iter_queued", len(waiting))

    async def _open_one(self, user, intended, free, waiting) -> None:
        while True:
            await self.iteration(user, intended)
            if waiting and not self.stopping:
                intended = waiting.popleft()
                self.mem.set("iter_queued", len(waiting))
                continue
            free.append(user)
            return

    # -- the run ---------------------------------------------------------------------------
    async def snapshots(self) -> None:
        k = 1
        while True:
            at = self.start_ns + k * 1_000_000_000
            now = time.monotonic_ns()
            if at > now:
                await asyncio.sleep((at - now) / 1e9)
            now = time.monotonic_ns()
            k = max(k, (now - self.start_ns) // 1_000_000_000)
            _core.publish_snapshot(self.slots, False, k)
            k += 1

    async def sweep(self) -> None:
        """Heartbeat, stop requests, request deadlines."""
        while True:
            now = time.monotonic_ns()
            self.mem.set("heartbeat_ns", now)
            if self.mem.get("stop_request") != STOP["none"] and not self.stopping:
                self.stop(now)
            for u in self.users:
                c = u.conn
                if c is not None and c.state == 2:
                    c.check_timeout(now)
            await asyncio.sleep(SWEEP_S)

    def stop(self, now: int) -> None:
        self.stopping = True
        if self.mem.get("end_ns") == 0:
            self.mem.set("end_ns", min(now, self.stop_at_ns))

    async def run(self) -> None:
        job = self.job
        self.mem.set("state", STATE["ready"])
        while self.mem.get("start_ns") == 0:
            if self.mem.get("stop_request") or os.getppid() != job.coordinator_pid:
                return
            await asyncio.sleep(START_POLL_S)
        self.start_ns = self.mem.get("start_ns")
        self.stop_at_ns = (self.start_ns + job.duration_ns if job.duration_ns >= 0
                           else 2**63 - 1)
        now = time.monotonic_ns()
        if self.start_ns > now:
            await asyncio.sleep((self.start_ns - now) / 1e9)
        self.mem.set("cpu_start_ns", _core.process_cpu_ns())
        self.mem.set("state", STATE["running"])
        snap = self.loop.create_task(self.snapshots())
        sweep = self.loop.create_task(self.sweep())
        try:
            if self.open_model:
                main = self.loop.create_task(self.open_arrivals())
            else:
                self.set_users(self.users_now(time.monotonic_ns()) if self.users_shape
                               else job.connections)
                main = None
            # sending ends at the duration, a stop request, or a spent budget
            while not self.stopping:
                now = time.monotonic_ns()
                if now >= self.stop_at_ns:
                    self.stop(self.stop_at_ns)
                    break
                if main is not None and main.done() and not self.tasks:
                    self.stop(now)
                    break
                if self.users_shape is not None:
                    n = self.users_now(now)
                    if n != self.active_users:
                        self.set_users(n)
                elif main is None and not self.tasks:
                    self.stop(now)
                    break
                await asyncio.sleep(min(0.01, max(0.0, (self.stop_at_ns - now) / 1e9)))
            self.mem.set("state", STATE["draining"])
            if main is not None:
                main.cancel()
            # iterations under way finish within the timeout (a stop: the grace)
            stop = self.mem.get("stop_request")
            grace = (job.grace_ns if stop == STOP["graceful"] else 0 if stop == STOP["now"]
                     else job.timeout_ns)
            if self.tasks:
                done, pending = await asyncio.wait(set(self.tasks), timeout=grace / 1e9)
                for t in pending:
                    t.cancel()
                if pending:
                    self.stats.add("abandoned", self.mem.get("inflight"))
                    await asyncio.wait(pending, timeout=1.0)
            for u in self.users:
                for hook in self.reg.user_stop:
                    try:
                        await asyncio.wait_for(hook(u), job.timeout_ns / 1e9)
                    except Exception as exc:
                        self.count_exception(exc)
                u.close()
            # what was in flight and never answered was abandoned, not completed
            self.mem.set("inflight", 0)
        finally:
            snap.cancel()
            sweep.cancel()
            if self.mem.get("last_done_ns") == 0:
                self.mem.set("last_done_ns", time.monotonic_ns())


def _last_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "?"
    return f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}"


async def run_flow_shard(job: ShardJob, mem: ShardMemory) -> None:
    import resource
    loop = asyncio.get_running_loop()
    if job.flow.endswith((".yaml", ".yml")):
        from .yamlflow import yaml_registry
        reg = yaml_registry(job.flow)
    else:
        reg = import_flow(job.flow)
    for f in reg.feeders:
        f._share(job.index, job.count)
    runner = Runner(job, mem, reg, loop)
    for hook in reg.run_start:
        try:
            await hook()
        except Exception as exc:
            runner.count_exception(exc)
    gc.collect()
    gc.freeze()
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        await runner.run()
    finally:
        after = resource.getrusage(resource.RUSAGE_SELF)
        mem.set("cpu_user_ns", int((after.ru_utime - before.ru_utime) * 1e9))
        mem.set("cpu_sys_ns", int((after.ru_stime - before.ru_stime) * 1e9))
        for hook in reg.run_stop:
            try:
                await hook()
            except Exception as exc:
                runner.count_exception(exc)
