"""The schedule end to end: real shards against real loopback servers. A ramp from 0 req/s, a
live rate change inside a ramp (no burst) and a pause (rate 0) and resume, each checked
against the server's own count and arrival times and against the Python twin's schedule."""
import asyncio
import json
import threading
import time

import stressx
from stressx import shapes
from stressx._testing.faults import LoopThread
from stressx._testing.target import TargetThread
from stressx.engine.coordinator import Companion
from stressx.load import schedule as twin

from conftest import run_cli

S = 1_000_000_000
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Stamp(asyncio.Protocol):
    def __init__(self, stamps):
        self.stamps, self.buf = stamps, b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        now = time.monotonic_ns()
        self.buf += data
        while b"\r\n\r\n" in self.buf:       # GETs without a body
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.stamps.append(now)
            self.transport.write(RESPONSE)


class StampServer(LoopThread):
    """Answers every request at once and records when it arrived (CLOCK_MONOTONIC ns, the
    clock the shards schedule on)."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    async def _start(self):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Stamp(self.stamps), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        return server

    async def _stop(self, server):
        server.close()


class ChangeRates(Companion):
    """Calls control.change_rate(rate) once `when_s` seconds into the run, for each
    (when_s, rate); records a lower bound of each change's instant (ns after the start)."""
    name = "change_rates"

    def __init__(self, plan):
        self.plan, self.done = list(plan), []
        self.start_ns = None
        self.lock = threading.Lock()

    def start(self, start_ns):
        self.start_ns = start_ns

    def poll(self):
        with self.lock:
            while self.start_ns and self.plan and time.monotonic_ns() >= self.start_ns + self.plan[0][0] * S:
                _, rate = self.plan.pop(0)
                before = time.monotonic_ns()
                self.control.change_rate(rate, delay_s=0.02)
                self.done.append((before + 20_000_000 - self.start_ns, rate))
        return None

    def finish(self):
        return {"changes": self.done}


def _twin_times(shape, changes, duration_ns):
    s = twin.Schedule(segments=shape.for_schedule(), duration_ns=duration_ns)
    for at, rate in changes:
        s.change_rate(at, rate)
    times, i = [], 0
    while not s.is_exhausted(i):
        t = s.due_at(i)
        if t == twin.NEVER:
            break
        times.append(t)
        i += 1
    return times


def test_cli_ramp_from_zero(tmp_path):
    """`stressx ramp --min-rps 0`: the first send is due at the start (not at INT64_MIN), so
    the minimum latency is real, and exactly the integral (20 * 3 / 2 = 30) is sent."""
    with TargetThread() as target:
        r = run_cli("ramp", target.url, "--min-rps", "0", "--max-rps", "20", "--duration", "3s",
                    "--out", tmp_path, timeout=60)
        served = target.requests
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    expected = len(_twin_times(shapes.ramp(0, 20, 3), [], 3 * S))
    assert expected == 30 == shapes.ramp(0, 20, 3).integral(3)
    assert served == s["requests"] == expected
    assert s["latency_ms"]["min"] > 0


def test_live_change_inside_a_ramp_sends_no_burst(tmp_path):
    """A change 2 s into a 10 -> 20/s ramp (rate 11/s there) to 15/s: the sends before the
    change keep the ramp's times (21 of them), no send arrives before its time under the
    changed schedule, and the count is the integral of ramp-then-15/s."""
    shape = shapes.ramp(10, 20, 20)
    with StampServer() as server:
        changer = ChangeRates([(1.95, 15.0)])
        r = stressx.run(server.url, shape=shape, duration="4s", workers=2, companions=[changer])
        stamps = sorted(server.stamps)
    assert r.summary["exit_code"] == 0
    (at, _), = changer.done
    assert 1.95 * S < at < 3.5 * S
    # the changed schedule as of the earliest instant the change can have taken effect: at a
    # rate above the ramp's, so no send can be due earlier than this says
    times = _twin_times(shape, changer.done, 4 * S)
    assert abs(len(stamps) - len(times)) <= 1, (len(stamps), len(times))
    assert len(stamps) == r.summary["requests"]
    early = [(i, (t0 - changer.start_ns - due) / 1e6) for i, (t0, due) in enumerate(zip(stamps, times))
             if t0 < changer.start_ns + due]
    assert not early, f"sends arrived before they were due (index, ms early): {early}"
    # before the change the ramp's own times hold: nothing bunched up at the change
    ramp = _twin_times(shape, [], 4 * S)
    kept = [t for t in ramp if t < at]
    assert times[:len(kept)] == kept and len(kept) >= 21


def test_pause_and_resume(tmp_path):
    """Rate 0 pauses the shards (they neither drain nor send) and a later rate resumes them
    from the same integral: 10/s for 1 s, paused for 1 s, 10/s again until 3 s."""
    shape = shapes.steady(10, 3)
    with StampServer() as server:
        changer = ChangeRates([(0.98, 0.0), (1.98, 10.0)])
        r = stressx.run(server.url, shape=shape, workers=2, companions=[changer])
        stamps = sorted(server.stamps)
    assert r.summary["exit_code"] == 0
    (pause_at, _), (resume_at, _) = changer.done
    rel = [(t - changer.start_ns) / S for t in stamps]
    during = [t for t in rel if pause_at / S + 0.15 < t < resume_at / S]
    assert not during, f"requests arrived while paused: {during}"
    after = [t for t in rel if t >= resume_at / S]
    assert len(after) >= 8, rel          # resumed: ~10 sends in the last second
    times = _twin_times(shape, changer.done, 3 * S)
    assert abs(len(stamps) - len(times)) <= 1 and len(stamps) == r.summary["requests"]
