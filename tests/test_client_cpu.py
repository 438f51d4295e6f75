"""What the client cost: each shard's CPU utilisation per interval and over the run, checked
against the kernel's accounting of the shard process read independently (psutil, sampled by
the test while the run goes on), and the busy-shard rule (over 90% of a core for 5 s in a row:
one warning line and the `cpu_busy` interval flag)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import psutil
import pyarrow.ipc as ipc
import pytest

from stressx._testing.faults import LoopThread
from stressx.results.summary import CPU_BUSY_PCT, CpuBusyWatch

# A response of many 1-byte chunks: cheap for the server to write (one precomputed buffer),
# dear for the client to parse (every chunk header), so the client's shard is the busy side.
CHUNKS = 20_000
DENSE = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * CHUNKS
         + b"0\r\n\r\n")


class _Dense(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        while (i := self.buf.find(b"\r\n\r\n")) >= 0:
            self.buf = self.buf[i + 4:]
            self.transport.write(DENSE)


class DenseServer(LoopThread):
    async def _start(self):
        return await asyncio.get_running_loop().create_server(_Dense, "127.0.0.1", 0)

    async def _stop(self, server):
        server.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"


def test_busy_rule_needs_five_seconds_in_a_row():
    w = CpuBusyWatch()
    flags = [w.add(t, 1.0, pct) for t, pct in enumerate([95, 95, 95, 95, 89, 95, 95, 95, 95, 95, 99, 20], 1)]
    # 4 s busy then a dip: nothing; then 5 s in a row: flagged from the 5th, reset by the dip
    assert flags == [False] * 9 + [True, True, False]
    assert w.from_t_s == 5.0
    w = CpuBusyWatch()
    assert not any(w.add(t, 1.0, CPU_BUSY_PCT) for t in range(1, 10))   # "above" 90, not at it
    w = CpuBusyWatch()
    assert [w.add(t, 1.0, None if t == 3 else 99) for t in range(1, 9)][-1] is True   # 4..8
    assert w.from_t_s == 3.0


def _sample(proc: subprocess.Popen, samples: list) -> None:
    """(unix time, CPU s of the shard) every ~10 ms while the run's shard lives."""
    shard = None
    while proc.poll() is None:
        try:
            if shard is None:
                for c in psutil.Process(proc.pid).children(recursive=True):
                    if "stressx.engine.shard" in c.cmdline():
                        shard = c
            if shard is not None:
                t = shard.cpu_times()
                samples.append((time.time(), t.user + t.system))
        except psutil.Error:
            pass
        time.sleep(0.01)


def _cpu_at(samples, t):
    """The shard's CPU time at unix time t, interpolated between the samples around it."""
    for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return c0 + (c1 - c0) * (t - t0) / (t1 - t0)
    return None


def _start_unix(out):
    for line in (out / "latency.hlog").read_text().splitlines():
        if line.startswith("#[StartTime:"):
            return float(line.split()[1])
    raise AssertionError("no StartTime")


def test_shard_cpu_matches_the_kernels_count_and_a_busy_shard_is_flagged(tmp_path):
    out = tmp_path / "run"
    with DenseServer() as server:
        proc = subprocess.Popen([sys.executable, "-m", "stressx.cli", "run", server.url,
                                 "--connections", "4", "--workers", "1", "--duration", "7s",
                                 "--out", str(out), "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list = []
        try:
            _sample(proc, samples)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = ipc.open_stream(str(out / "shard_intervals.arrows")).read_all().to_pylist()
    start = _start_unix(out)
    whole = [r for r in rows if r["interval_s"] >= 0.99]
    assert len(whole) >= 6
    for r in whole:
        c0 = _cpu_at(samples, start + r["t_s"] - r["interval_s"])
        c1 = _cpu_at(samples, start + r["t_s"])
        assert c0 is not None and c1 is not None
        independent = (c1 - c0) * 100 / r["interval_s"]
        # psutil counts in clock ticks (10 ms), and this window is the nominal second while the
        # shard reads its CPU as it takes its snapshot, which a loaded machine can hold up by
        # tens of ms: a row is within 10 points...
        assert abs(r["cpu_pct"] - independent) <= 10.0, (r["t_s"], r["cpu_pct"], independent)
    # ...and over all whole rows together (those edges then weigh 1/n) within 3
    span = sum(r["interval_s"] for r in whole)
    c0 = _cpu_at(samples, start + whole[0]["t_s"] - whole[0]["interval_s"])
    c1 = _cpu_at(samples, start + whole[-1]["t_s"])
    mine = sum(r["cpu_pct"] * r["interval_s"] for r in whole) / span
    assert abs(mine - (c1 - c0) * 100 / span) <= 3.0, (mine, (c1 - c0) * 100 / span)
    assert max(r["cpu_pct"] for r in whole) > 50    # the dense responses made it busy
    # over the run: from the start instant to the shard's end, against the last sample
    shard = summary["shards"][0]
    c0 = _cpu_at(samples, start)
    independent = (samples[-1][1] - c0) * 100 / (samples[-1][0] - start)
    assert abs(shard["cpu_pct"] - independent) <= 5.0, (shard["cpu_pct"], independent)
    assert summary["client_cpu_us_per_request"] == pytest.approx(
        summary["client_cpu_s"] * 1e6 / summary["requests"], rel=1e-3)

    # the flag follows the rule on the rows' own figures, and the warning comes once
    w = CpuBusyWatch()
    expected = [w.add(r["t_s"], r["interval_s"], r["cpu_pct"]) for r in rows]
    assert [r["cpu_busy"] for r in rows] == expected
    warnings = [line for line in stderr.splitlines() if "of its CPU core for 5 s" in line]
    assert len(warnings) == (1 if any(expected) else 0), stderr
    assert shard["cpu_busy_from_t_s"] == w.from_t_s
    assert summary["client_cpu_busy"] == any(expected)
    merged = ipc.open_stream(str(out / "intervals.arrows")).read_all().to_pylist()
    assert [r["cpu_busy"] for r in merged] == expected     # one shard: the merged row is its own
    assert [r["cpu_pct"] for r in merged] == [r["cpu_pct"] for r in rows]
    if any(expected):
        assert "CLIENT CPU-BOUND: shard 0" in stdout
    assert f"shard CPU #0 {shard['cpu_pct']:.0f}% of a core" in stdout


def test_an_idle_shard_is_not_busy(target, tmp_path):
    import stressx
    r = stressx.run(target.url, rate=50, duration="2s", workers=1, out=tmp_path / "r",
                    report=["md", "html"])
    shard = r.shards[0]
    assert 0 < shard["cpu_pct"] < 50 and shard["cpu_busy_from_t_s"] is None
    assert not r.client_cpu_busy
    assert all(p is not None and p < 50 for p in r.intervals.column("cpu_pct").to_pylist()[:2])
    assert not any(r.intervals.column("cpu_busy").to_pylist())
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"Client: {r.client_cpu_us_per_request:.1f} µs CPU per request; shard CPU #0" in md
    assert "shard 0 CPU % of a core" in (tmp_path / "r" / "report.html").read_text()
