"""Truth under stress: the counts add up and every rate names its window, against servers that
count what they received. Accounting (README "What the numbers mean"): due = requests +
dropped; requests = completed + abandoned; completed = ok + errors; no success is slower than
--timeout; sending stops when the duration ends; `abandoned` only in a stopped run."""
import time

import pytest
import stressx
from stressx._testing.faults import FaultServerThread, free_port
from stressx._testing.target import TargetThread
from stressx.engine import _core
from stressx.engine.coordinator import Abort, Companion, progress_line


def adds_up(r, received=None):
    """The invariants every run keeps; `received`: the server's own count of requests."""
    assert r.due == r.requests + r.dropped
    assert r.dropped == sum(r.dropped_reasons.values())
    assert set(r.dropped_reasons) == set(_core.DROP_REASONS)
    assert r.completed == r.ok + r.error_count == sum(r.errors.values()) + r.ok
    assert r.requests == r.completed + r.abandoned
    if received is not None:
        assert received == r.requests
    if r.latency_ms:
        assert r.latency_ms["max"] <= r.summary["run_window_s"] * 1000


@pytest.fixture
def slow():
    """Factory: slow(delay_s) -> a started server answering each request after delay_s."""
    servers = []

    def make(delay_s):
        s = FaultServerThread("delay", delay_s=delay_s)
        s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_connection_cap_with_a_slow_target(slow, tmp_path):
    """Issue case 2 in small: 1 s answers, 200/s asked, 10 connections allowed. What never left
    stressx's queue is dropped (by reason), not a timeout of the target; the server received
    exactly the requests stressx counts; no success is slower than --timeout."""
    srv = slow(1.0)
    t0 = time.monotonic()
    r = stressx.run(srv.url, rate=200, duration="2s", timeout="1.5s", workers=1, connections=5,
                    max_connections=10, out=tmp_path)
    wall = time.monotonic() - t0
    adds_up(r, srv.requests)
    assert r.due == 400 and r.abandoned == 0
    # 10 connections of 1 s answers: the first 10 succeed; the 10 queued sends written at ~1 s
    # had spent their deadline but 0.5 s in the queue and time out (their connections wait for
    # the late answers instead of reconnecting); the rest never reach a socket
    assert r.ok == 10 and 20 <= r.requests <= 25 and r.errors == {"timeout": r.requests - 10}
    assert r.dropped_reasons["connection_cap"] > 0 and r.dropped_reasons["deadline"] == 0
    assert r.connect_attempts == 10 and r.connect_failures == 0
    assert r.latency_ms["max"] <= 1500
    assert r.saturated and any("connection" in why for why in r.saturation["reasons"])
    assert r.send_window_s == 2.0 and r.sent_rps == pytest.approx(r.requests / 2.0, abs=0.01)
    assert r.run_window_s < 2.0 + 1.5 + 0.1       # in-flight requests end by their deadline
    assert wall < 2.0 + 1.5 + 4.0
    rows = stressx.load_results(tmp_path).intervals.to_pylist()
    assert rows[0]["saturated"] and "connection cap" in rows[0]["saturation"]
    assert sum(row["due"] for row in rows) == 400
    assert sum(row["dropped_connection_cap"] for row in rows) == r.dropped_reasons["connection_cap"]


def test_closed_budget_rates_over_their_windows(slow, tmp_path):
    """Issue case 4: 40 requests over 10 connections against a 1 s server take 4 s: 10/s
    completed, not 40 over the 3 s to the last send."""
    srv = slow(1.0)
    r = stressx.run(srv.url, connections=10, requests=40, workers=1, out=tmp_path)
    adds_up(r, srv.requests)
    assert r.requests == r.ok == 40 and r.dropped == 0
    assert r.run_window_s == pytest.approx(4.0, abs=0.25)
    assert r.rps == pytest.approx(10.0, rel=0.06) and r.duration_s == r.run_window_s
    # sends: from the start to the last write, the 4th round at ~3 s
    assert r.send_window_s == pytest.approx(3.0, abs=0.25)
    assert r.sent_rps == pytest.approx(40 / r.send_window_s, rel=0.01)


def test_long_responses_count_over_the_time_they_took(slow, tmp_path):
    """Issue case 4's downloads: every request written at once, the answers after 0.5 s: the
    completion rate is over the run window (~20/s), not over the instant of sending."""
    srv = slow(0.5)
    r = stressx.run(srv.url, connections=10, requests=10, workers=1, out=tmp_path)
    adds_up(r, srv.requests)
    assert r.ok == 10 and r.rps == pytest.approx(20.0, rel=0.1)
    assert r.run_window_s >= 0.5


@pytest.mark.parametrize("rate,duration,sends", [(1, 3, 3), (0.5, 4, 2), (0.001, 2, 1)])
def test_a_run_lasts_its_duration_and_rates_below_1(fault, tmp_path, rate, duration, sends):
    """Issue case 4: `--rate 1 -d 3s` is 1/s, not 3 over the 2 s to the last send; a run with
    few sends due still lasts its duration; rates below 1/s work."""
    srv = fault("ok")
    t0 = time.monotonic()
    r = stressx.run(srv.url, rate=rate, duration=f"{duration}s", workers=1, out=tmp_path)
    assert time.monotonic() - t0 >= duration
    adds_up(r, srv.requests)
    assert r.requests == r.ok == r.due == sends
    assert r.send_window_s == duration and r.run_window_s == pytest.approx(duration, abs=0.05)
    assert r.sent_rps == pytest.approx(sends / duration) and r.rps == pytest.approx(sends / duration, rel=0.02)
    assert r.rate_target == pytest.approx(rate)
    # on a loaded 2-core VM the scheduler's own jitter may cross its bars; nothing else may
    assert not r.saturated or all("lag" in why or "ms late" in why
                                  for why in r.saturation["reasons"]), r.saturation


def test_the_end_gives_in_flight_requests_their_deadline(slow, tmp_path):
    """Issue case 5: sending stops with the duration (what still waits for a connection is
    dropped 'run_ended'), and requests in flight then finish by their own deadline: an
    uninterrupted run abandons nothing."""
    srv = slow(0.8)
    r = stressx.run(srv.url, rate=10, duration="1s", timeout="1.5s", workers=1, connections=1,
                    max_connections=4, out=tmp_path)
    adds_up(r, srv.requests)
    assert r.due == 10 and r.abandoned == 0 and r.interrupted is None
    assert r.ok == r.requests and 4 <= r.requests <= 8
    assert r.dropped == r.dropped_reasons["run_ended"] == 10 - r.requests
    assert r.latency_ms["max"] <= 1500
    assert r.run_window_s > 1.5                       # answers after the end were waited for
    assert r.rps == pytest.approx(r.ok / r.run_window_s, rel=0.01)


class _StopAfter(Companion):
    """Ends the run after its first interval, as a failed sliding-window threshold would."""
    name = "stop_after"

    def on_interval(self, t_s, row):
        return Abort("test stop", 4)


def test_only_a_stopped_run_abandons(slow, tmp_path):
    srv = slow(3.0)
    r = stressx.run(srv.url, rate=20, duration="10s", timeout="10s", workers=1, out=tmp_path,
                    companions=[_StopAfter()])
    adds_up(r, srv.requests)
    assert r.aborted == "test stop" and r.abandoned > 0 and r.completed == 0
    assert r.send_window_s < 2.0 and r.run_window_s < 4.0


def test_client_overload_is_saturated_while_it_happens(tmp_path):
    """Issue case 1 bounded: far more asked than one shard gets written to the embedded target.
    sent_rps is what was written in the 2 s window, the rows say `saturated` from the first
    second, and the run ends within about duration + timeout."""
    with TargetThread() as t:
        t0 = time.monotonic()
        r = stressx.run(t.url, rate=100_000, duration="2s", timeout="1s", workers=1,
                        max_connections=64, out=tmp_path)
        wall = time.monotonic() - t0
        served = t.requests
    adds_up(r, served)
    assert r.due == 200_000 and r.requests < r.due / 2     # what one shard got written
    assert r.send_window_s == 2.0 and r.sent_rps == pytest.approx(r.requests / 2.0, abs=0.01)
    assert r.saturated and any("issued" in why for why in r.saturation["reasons"])
    assert r.latency_ms["max"] <= 1000
    assert r.run_window_s <= 2.0 + 1.0 + 0.1 and wall < 2.0 + 1.0 + 4.0
    assert r.saturation["intervals"]["first_t_s"] < 1.5
    rows = stressx.load_results(tmp_path).intervals.to_pylist()
    assert rows[0]["saturated"] and rows[0]["saturation"]
    assert max(row["conn_open"] for row in rows) <= 64      # the default pool within the cap
    assert sum(row["sent"] for row in rows) == r.requests
    # nothing is written after the send window
    assert all(row["sent"] == 0 for row in rows if row["t_s"] - row["interval_s"] > 2.0)


def test_every_connect_attempt_counts(tmp_path):
    """Pre-warm connects that fail are counted by kind (they are not requests); the requests'
    own failed connects are errors of the target."""
    r = stressx.run(f"http://127.0.0.1:{free_port()}/", connections=3, requests=6, workers=1,
                    out=tmp_path)
    adds_up(r)
    assert r.prewarm_connect_failures == {"connect_refused": 3}
    assert r.requests == 6 and r.errors == {"connect_refused": 6}
    assert r.connect_attempts == 9 and r.connect_failures == 9 and r.connections_opened == 0
    assert r.connect_failures_by_kind == {"connect_refused": 9}


def testprogress_line_names_saturation():
    row = {"rps": 10.0, "sent_rps": 10.0, "ok": 10, "errors": 0, "latency_ms_p50": 1.0,
           "latency_ms_p99": 2.0, "send_lag_ms_p99": 0.1, "late": 5, "dropped": 3,
           "conn_open": 8, "saturated": True, "saturation": "connection cap, queue"}
    line = progress_line(1.0, row, 100.0)
    assert line.endswith("conns 8  SATURATED: connection cap, queue") and "dropped 3" in line
    assert "SATURATED" not in progress_line(1.0, dict(row, saturated=False, saturation=None), 100.0)
