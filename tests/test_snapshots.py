"""Consistent snapshots: a shard publishes its counters and histograms under a sequence lock, the
coordinator reads only whole ones, intervals are cut on the common start + k s, the rows add up
to the summary, and every interval's latency histogram is in latency.hlog."""
import asyncio
import json
import socket
import struct
import threading
import time

import numpy as np
import pytest

import stressx
from stressx._testing.faults import LoopThread
from stressx.engine import _core
from stressx.engine.shm import SCENARIOS_BASE, SCENARIO, ShardMemory, new_run_id
from stressx.results.files import read_latency_log
from stressx.results.hdr import Histogram

SLOTS = _core.SLOTS
ERROR_KINDS = _core.ERROR_KINDS


@pytest.fixture
def segment():
    mem = ShardMemory.create(new_run_id(), 0, 1)
    mem.unlink()
    yield mem
    mem.close()


def whole(r) -> list[str]:
    """What is inconsistent in a reading of a segment written like the engine writes it."""
    bad = []
    if r["completed"] != r["ok"] + r["errors"]:
        bad.append(f"completed {r['completed']} != ok {r['ok']} + errors {r['errors']}")
    if int(r.errors().sum()) != r["errors"]:
        bad.append("errors by kind do not add up to errors")
    if int(r.status().sum()) != r["ok"]:
        bad.append("status counts do not add up to ok")
    for name in _core.HISTOGRAMS:
        h = r.histogram(name)
        if h.total != int(h.counts.sum()):
            bad.append(f"{name}: count {h.total} != sum of buckets {int(h.counts.sum())}")
    if r.histogram("latency").total != r["ok"]:
        bad.append("latency count != ok")
    sc, h = r.scenario(0), r.scenario_histogram(0)
    if h.total != int(h.counts.sum()) or h.total != sc["ok"] or sc["sent"] != r["sent"]:
        bad.append("scenario block inconsistent")
    return bad


def _stress(mem, publishes, per_publish):
    t = threading.Thread(target=_core.snapshot_stress, args=(mem.slots, publishes, per_publish),
                         daemon=True)
    t.start()
    return t


def test_reader_never_sees_a_torn_snapshot_while_the_shard_writes_at_full_speed(segment):
    live = segment.live
    writer = _stress(segment, 2000, 20_000)      # ~0.3 ms of requests between publishes
    good, torn, indices = 0, 0, []
    deadline = time.monotonic() + 30
    while writer.is_alive() and time.monotonic() < deadline:
        for b in range(2):
            dest = np.empty(live, dtype=np.int64)
            got = _core.read_snapshot(segment.slots, b, dest)
            if got < 0:
                torn += 1
                continue
            if got == 0:
                continue
            r = stressx.engine.shm.Reading(dest)
            assert whole(r) == [], f"snapshot {r.index} torn: {whole(r)}"
            good += 1
            indices.append(r.index)
    writer.join(30)
    assert not writer.is_alive()
    assert good >= 20 and len(set(indices)) >= 10     # read while the writer moved on


def test_torn_copies_are_detected(segment):
    live = segment.live
    _core.snapshot_stress(segment.slots, 1, 10)
    (seq0, seq1) = _core.snapshot_seqs(segment.slots)
    assert (seq0, seq1) == (2, 0)
    dest = np.empty(live, dtype=np.int64)
    assert _core.read_snapshot(segment.slots, 1, dest) == 0           # nothing published there
    assert _core.read_snapshot(segment.slots, 0, dest) == 2
    segment.slots[SLOTS["snap_seq"]] = 3                              # the shard is writing it
    assert _core.read_snapshot(segment.slots, 0, dest) == -1
    segment.slots[SLOTS["snap_seq"]] = 2
    # a shard publishing as fast as it can: plain copies of an image come out torn (what the
    # coordinator used to read), the sequence lock says so, and what it accepts is whole
    writer = _stress(segment, 20_000, 50)
    naive_torn = locked_torn = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (naive_torn and locked_torn):
        if not writer.is_alive():
            writer = _stress(segment, 20_000, 50)
        b = int(np.random.randint(2))
        image = segment.slots[live * (1 + b):live * (2 + b)]
        naive_torn += bool(whole(stressx.engine.shm.Reading(image.copy())))
        got = _core.read_snapshot(segment.slots, b, dest)
        if got < 0:
            locked_torn += 1
        elif got > 0:
            assert whole(stressx.engine.shm.Reading(dest)) == []
    writer.join(30)
    assert naive_torn and locked_torn, (naive_torn, locked_torn)
    assert _core.read_snapshot(segment.slots, b, dest) > 0          # once the writer stopped
    assert whole(stressx.engine.shm.Reading(dest)) == []


def test_snapshot_is_the_live_state(segment):
    """The shard copies only each histogram's min..max buckets; an image reused for a later
    snapshot with a wider range still equals the live slots."""
    live = segment.live
    lat = SLOTS["histograms"]
    rec = _core.Recorder(segment.slots[lat:lat + _core.HDR_PARAMS["slots"]], reset=False)
    sc = SCENARIOS_BASE + SCENARIO["header"]
    sc_rec = _core.Recorder(segment.slots[sc:sc + _core.HDR_PARAMS["slots"]], reset=False)
    meta = [SLOTS[k] for k in ("snap_seq", "snap_index", "snap_taken_ns", "snap_final",
                               "snap_next")] + [SLOTS["snap_seq"] + 1]

    def check(k):
        assert _core.publish_snapshot(segment.slots)
        dest = np.empty(live, dtype=np.int64)
        b = 0 if _core.snapshot_seqs(segment.slots)[0] > _core.snapshot_seqs(segment.slots)[1] else 1
        assert _core.read_snapshot(segment.slots, b, dest) > 0
        r = stressx.engine.shm.Reading(dest)
        assert r.index == k and not r.final
        expect = segment.slots[:live].copy()
        expect[meta] = dest[meta]
        assert np.array_equal(dest, expect)

    rec.record(500)
    check(1)
    check(2)
    for v in (1, 3_000_000, 3_600_000_000, 7_000_000_000):
        rec.record(v)
    sc_rec.record(42)
    check(3)                          # image 0 again: it held snapshot 1's narrower range
    rec.record(0)
    check(4)
    assert _core.publish_snapshot(segment.slots, final=True)
    assert not _core.publish_snapshot(segment.slots, final=True)      # once
    (r,) = [x for x in segment.snapshots() if x.final]
    assert r.index == 5 and r.taken_ns > 0


def test_rate_change_handshake(segment):
    assert _core.rate_change(segment.slots) == (0, 0.0, 0)             # none yet
    _core.publish_rate_change(segment.slots, 1500.25, 123_456_789)
    assert _core.rate_change(segment.slots) == (2, 1500.25, 123_456_789)
    assert _core.rate_change(segment.slots, known=2)[0] == 0           # nothing newer
    segment.slots[SLOTS["rate_change_seq"]] = 3                         # half written
    assert _core.rate_change(segment.slots)[0] == 0
    segment.slots[SLOTS["rate_change_seq"]] = 2
    _core.publish_rate_change(segment.slots, 0.001, 20)
    assert _core.rate_change(segment.slots, known=2) == (4, 0.001, 20)


# -- a real run under load with errors ---------------------------------------------------------

class _Flaky(asyncio.Protocol):
    """Keep-alive HTTP/1.1: every 4th request answered 503, every 23rd connection reset
    instead of answered, the rest 200."""

    def __init__(self, server):
        self.server, self.buf = server, b""

    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.server.n += 1
            n = self.server.n
            if n % 23 == 0:
                sock = self.t.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.t.abort()
                return
            status = b"503 Service Unavailable" if n % 4 == 0 else b"200 OK"
            self.t.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")


class FlakyServer(LoopThread):
    n = 0

    async def _start(self):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Flaky(self), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        return server

    async def _stop(self, server):
        server.close()


def test_every_interval_row_is_whole_and_the_rows_add_up_to_the_summary(tmp_path):
    with FlakyServer() as server:
        r = stressx.run(server.url, connections=6, duration="3s", workers=3, out=tmp_path)
    s = r.summary
    res = stressx.load_results(tmp_path)
    rows, shard_rows = res.intervals.to_pylist(), res.shard_intervals.to_pylist()
    assert s["errors"].get("status", 0) > 0 and s["ok"] > 0
    assert sum(n for kind, n in s["errors"].items() if kind != "status") > 0   # the resets
    for row in rows + shard_rows:
        assert row["completed"] == row["ok"] + row["errors"], row
        assert sum(row[f"errors_{k}"] for k in ERROR_KINDS) == row["errors"], row
        assert sum(n for _, n in row["status"]) == row["ok"] + row["errors_status"], row
    # cut on the common start + k s: whole seconds, then the last sliver up to the end
    assert [row["t_s"] for row in rows[:-1]] == [float(k) for k in range(1, len(rows))]
    assert all(row["interval_s"] == 1.0 for row in rows[:-1])
    assert 3.0 <= rows[-1]["t_s"] < 4.0 + 1e-9
    for key, total in (("sent", s["requests"]), ("completed", s["completed"]), ("ok", s["ok"]),
                       ("errors", s["error_count"])):
        assert sum(row[key] for row in rows) == total, key
        assert sum(row[key] for row in shard_rows) == total, key
    for kind in ERROR_KINDS:
        assert sum(row[f"errors_{kind}"] for row in rows) == s["errors"].get(kind, 0)
    for i, sh in enumerate(s["shards"]):
        assert sum(row["sent"] for row in shard_rows if row["shard"] == i) == sh["sent"]
    # one latency histogram per row: its count is the row's ok, and they add up to the run's
    logged = list(read_latency_log(tmp_path / "latency.hlog"))
    assert len(logged) == len(rows)
    merged = Histogram.empty()
    for iv, row in zip(logged, rows):
        assert iv.histogram.total == row["ok"]
        assert iv.start_s == pytest.approx(row["t_s"] - row["interval_s"], abs=1e-3)
        assert iv.length_s == pytest.approx(row["interval_s"], abs=1e-3)
        merged += iv.histogram
    final = json.loads((tmp_path / "histograms.json").read_text())["merged"]["latency"]
    assert np.array_equal(merged.counts, Histogram.decode(final).counts)


def test_latency_log_reads_with_the_hdrhistogram_package(target, tmp_path):
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader
    r = stressx.run(target.url, rate=200, duration="2.5s", workers=2, out=tmp_path)
    text = (tmp_path / "latency.hlog").read_text().splitlines()
    assert text[1] == "#[Histogram log format version 1.3]"
    assert text[2].startswith("#[StartTime: ") and text[3].startswith("#[BaseTime: ")
    assert text[4] == '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
    reader = HistogramLogReader(str(tmp_path / "latency.hlog"), HdrHistogram(1, 3_600_000_000, 3))
    intervals = []
    while (h := reader.get_next_interval_histogram()) is not None:
        intervals.append(h)
    assert len(intervals) == 3                          # 0-1 s, 1-2 s, 2-2.5 s
    assert sum(h.get_total_count() for h in intervals) == r.ok == 500
    start = float(text[2].split()[1])
    assert reader.get_start_time_sec() == start
    assert [round(h.get_start_time_stamp() / 1000 - start, 3) for h in intervals] == [0.0, 1.0, 2.0]
    # Interval_Max is in milliseconds (values are microseconds)
    lines = [line.split(",") for line in text[5:]]
    for (_, _, mx, _), h in zip(lines, intervals):
        assert float(mx) == pytest.approx(h.get_max_value() / 1000, abs=0.002)
    # a relative range, as HdrHistogram's tools select one: the second interval alone
    reader = HistogramLogReader(str(tmp_path / "latency.hlog"), HdrHistogram(1, 3_600_000_000, 3))
    second = reader.get_next_interval_histogram(range_start_time_sec=0.5, range_end_time_sec=1.5)
    assert second.get_total_count() == intervals[1].get_total_count() == 200


def test_a_dead_shard_stands_on_whole_counts(segment):
    """A shard that died without its final snapshot: its live slots stand as its final one when
    whole, its last snapshot when it died halfway through counting a request."""
    import subprocess
    import sys
    from stressx.engine.coordinator import Shard
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _core.snapshot_stress(segment.slots, 2, 100)           # snapshots 1 and 2, live == 2
    shard = Shard(0, segment, dead)
    shard.collect()
    assert sorted(shard.pending) == [1, 2, 3] and shard.final.index == 3 and shard.final.final
    assert shard.final["sent"] == 200 and shard.final.whole()

    _core.snapshot_stress(segment.slots, 1, 100)           # snapshot 3 (300 requests)...
    segment.slots[SLOTS["completed"]] += 1                 # ...then killed mid-request
    segment.slots[SLOTS["sent"]] += 1
    assert not segment.read().whole()
    shard = Shard(0, segment, dead)
    segment._seen = [0, 0]
    shard.collect()
    assert shard.final.index == 4 and shard.final["sent"] == 300 and shard.final.whole()


def test_next_cut_waits_for_every_shard_and_passes_over_a_lost_snapshot():
    """Interval k is cut once every shard's snapshot k is in (a finished shard's final one
    stands for every later k); a snapshot lost for good (its image overwritten before it was
    read) is passed over, so one row spans two seconds instead of one being made up."""
    from stressx.engine.coordinator import Coordinator, Shard
    from stressx.engine.shm import Reading

    def snap(k, final=False):
        r = Reading.zero(1)
        r.slots[SLOTS["snap_index"]], r.slots[SLOTS["snap_final"]] = k, int(final)
        return r

    a, b = Shard(0, None, None), Shard(1, None, None)
    c = Coordinator.__new__(Coordinator)
    c.shards, c._cut_k = [a, b], 2
    a.pending, b.pending = {4: snap(4)}, {3: snap(3)}
    assert c._next_cut() is None              # b has not got to 4 yet; a's 3 is lost
    b.pending[4] = snap(4)
    assert c._next_cut() == 4                 # the row spans 2..4
    c._cut_k = 4
    a.pending, b.pending = {}, {5: snap(5)}
    a.final = snap(5, final=True)
    a.pending[5] = a.final
    assert c._next_cut() == 5
    c._cut_k = 5
    a.pending, b.pending = {}, {6: snap(6)}
    assert c._next_cut() == 6                 # a finished: its final stands for 6
