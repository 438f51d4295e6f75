"""The engine end to end: real shard processes, real sockets, real shared memory."""
import json
import os

import pytest
import stressx
import trustme
from hdrh.histogram import HdrHistogram
from stressx._testing.target import TargetThread
from stressx.results.hdr import Histogram

from conftest import shm_segments


@pytest.fixture
def counted():
    """A target of this test's own, so its counts (connections accepted, requests received)
    are an independent tally of what the run sent."""
    with TargetThread() as t:
        yield t


def test_open_model_sends_exactly_the_schedule(counted, tmp_path):
    r = stressx.run(counted.url, rate=400, duration="1s", workers=2, out=tmp_path)
    # due times 0, 2.5 ms, ... 997.5 ms: exactly 400, as the server counted them
    assert counted.counts.requests == 400
    assert r.requests == 400
    assert r.ok == 400 and r.error_count == 0 and r.status == {"200": 400}
    assert r.rate_target == 400
    # on a noisy 2-core VM the scheduler's own lag may cross its bar; nothing else may
    assert all("lag" in reason for reason in r.saturation["reasons"]), r.saturation["reasons"]
    assert abs(r.sent_rps - 400) / 400 < 0.01
    lat, unc = r.latency_ms, r.latency_uncorrected_ms
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] >= unc["p50"]   # from the intended time is never shorter
    assert r.dropped == 0
    # every send's scheduler lag was recorded once, and the summary's lag figures are the
    # stored histogram's, read back with the reference HdrHistogram package
    lag = HdrHistogram.decode(json.loads((tmp_path / "histograms.json").read_text())["merged"]["send_lag"])
    assert lag.get_total_count() == 400
    max_us = round(r.send_lag_ms["max"] * 1000)
    assert lag.get_max_value() == lag.get_highest_equivalent_value(max_us)
    for key, p in (("p50", 50), ("p99", 99)):
        assert r.send_lag_ms[key] == round(min(lag.get_value_at_percentile(p), max_us) / 1000, 3), key


def test_scheduler_lag_of_a_frozen_shard(counted, tmp_path):
    """Send lag is how late the engine got to each due send: a shard stopped by the kernel
    (SIGSTOP) for 300 ms, 100+ requests into a 400/s run, sends the slots it missed on waking,
    each late by up to the whole pause; the schedule then carries on, nothing dropped."""
    import signal
    import threading
    import time

    import psutil
    paused = []

    def freeze():
        deadline = time.monotonic() + 20
        while counted.counts.requests < 100 and time.monotonic() < deadline:
            time.sleep(0.005)
        (shard,) = [c for c in psutil.Process().children()
                    if "stressx.engine.shard" in " ".join(c.cmdline())]
        t0 = time.monotonic()
        shard.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        shard.send_signal(signal.SIGCONT)
        paused.append(time.monotonic() - t0)

    thread = threading.Thread(target=freeze, daemon=True)
    thread.start()
    r = stressx.run(counted.url, rate=400, duration="2s", workers=1, out=tmp_path)
    thread.join(5)
    assert paused and paused[0] >= 0.3
    assert counted.counts.requests == r.requests == 800 and r.dropped == 0
    lag = r.send_lag_ms
    # the first send due after the stop waited out the pause, less at most one 2.5 ms gap
    assert lag["max"] >= 300 - 2.5 - 1, lag
    # sends due during the pause: ~120 of 800, all of them (bar the last 10 ms) > 10 ms late
    assert lag["share_over_10ms"] >= (0.3 - 0.01) * 400 / 800 - 0.01, lag
    assert lag["p99"] >= 200, lag
    assert r.saturated and any("late" in reason for reason in r.saturation["reasons"])


def test_closed_model_request_budget(counted, tmp_path):
    r = stressx.run(counted.url, connections=4, requests=500, workers=2, out=tmp_path)
    assert counted.counts.requests == 500 and counted.counts.connections == 4
    assert r.requests == 500 and r.ok == 500 and r.completed == 500
    assert r.model == "closed" and r.rate_target is None and r.send_lag_ms is None
    assert r.latency_ms == r.latency_uncorrected_ms   # closed model: sent when intended
    assert r.connections_opened == 4


def test_open_model_request_budget(counted, tmp_path):
    r = stressx.run(counted.url, rate=1000, requests=123, workers=2, out=tmp_path)
    assert counted.counts.requests == 123
    assert r.requests == 123 and r.ok == 123


def test_latency_is_measured_from_the_intended_time(tmp_path):
    """A target that takes 50 ms with too few connections allowed: requests queue, and the
    corrected latency grows with the queue while the uncorrected one stays near 50 ms. Sending
    stops with the duration: what was still queued then never reached a socket (dropped)."""
    with TargetThread(delay_ms=50) as slow:
        r = stressx.run(slow.url, rate=100, duration="1s", workers=1, connections=1,
                        max_connections=2, out=tmp_path)
    assert r.due == 100 and r.late > 50                # 2 connections carry ~40 req/s
    assert 25 <= r.requests <= 41 and r.requests + r.dropped == 100
    assert r.dropped_reasons["run_ended"] == r.dropped
    assert r.completed == r.requests == r.ok
    assert r.latency_uncorrected_ms["p50"] < 80
    assert r.latency_ms["max"] > 500                    # the queue built up for a second
    assert r.saturated and r.saturation["reasons"]


def test_results_directory(counted, tmp_path):
    r = stressx.run(counted.url, rate=300, duration="2s", workers=2, out=tmp_path)
    assert counted.counts.requests == r.requests == 600
    res = stressx.load_results(tmp_path)
    assert res.summary == r.summary     # what the run returned is what it wrote
    assert res.manifest["format_version"] == 5 and res.manifest["config"]["rate"] == 300
    assert res.manifest["host"]["cpu_count"] == os.cpu_count()
    iv = res.intervals
    assert sum(iv.column("sent").to_pylist()) == r.requests
    assert sum(iv.column("ok").to_pylist()) == r.ok
    assert sum(iv.column("due").to_pylist()) == r.due == 600
    assert sum(iv.column("connect_attempts").to_pylist()) <= r.connect_attempts  # + pre-warm
    assert iv.column("saturation").type == "string" and iv.column("saturated").type == "bool"
    assert iv.num_rows >= 2
    shard_iv = res.shard_intervals
    assert set(shard_iv.column("shard").to_pylist()) == {0, 1}
    assert sum(shard_iv.column("sent").to_pylist()) == r.requests
    # the stored histograms decode with the HdrHistogram package to the same figures
    from hdrh.histogram import HdrHistogram
    encoded = json.loads((tmp_path / "histograms.json").read_text())["merged"]["latency"]
    h = HdrHistogram.decode(encoded)
    assert h.get_total_count() == r.ok
    assert h.get_value_at_percentile(99) / 1000 == pytest.approx(r.latency_ms["p99"], abs=0.002)
    assert res.histograms["latency"].total == r.ok


def test_merged_histogram_is_exact_sum_of_shards(counted, tmp_path):
    stressx.run(counted.url, rate=400, duration="1s", workers=2, out=tmp_path)
    data = json.loads((tmp_path / "histograms.json").read_text())
    merged = Histogram.decode(data["merged"]["latency"])
    shards = [Histogram.decode(s["latency"]) for s in data["shards"]]
    assert len(shards) == 2
    # one timed response per request the server received, split between the two shards
    assert merged.total == counted.counts.requests == 400
    assert shards[0].total > 0 and shards[1].total > 0
    assert (merged.counts == shards[0].counts + shards[1].counts).all()


def test_https_verification(tmp_path):
    import ssl
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with TargetThread(ssl_context=server_ctx) as t:
        assert t.url.startswith("https://")
        ok = stressx.run(t.url, connections=2, requests=20, workers=1, ca_file=str(ca_file), out=tmp_path / "a")
        after_ok = t.counts.requests
        bad = stressx.run(t.url, connections=2, requests=20, workers=1, out=tmp_path / "b")
        after_bad = t.counts.requests
        insecure = stressx.run(t.url, connections=2, requests=20, workers=1, insecure=True, out=tmp_path / "c")
        after_insecure = t.counts.requests
    assert ok.ok == 20 and not ok.insecure and after_ok == 20
    # an unverified certificate: every request fails the handshake, none reaches the server
    assert bad.ok == 0 and bad.errors == {"tls": 20} and after_bad == after_ok
    assert insecure.ok == 20 and insecure.insecure and after_insecure - after_bad == 20
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["insecure"] is True


@pytest.mark.parametrize("mode,kind", [
    ("stall", "timeout"), ("garbage", "protocol"), ("reset", "reset"), ("close", "closed"),
])
def test_faults_are_classified(fault, tmp_path, mode, kind):
    server = fault(mode)
    r = stressx.run(server.url, connections=2, requests=6, workers=1, timeout="300ms", out=tmp_path)
    assert server.requests == 6             # each failure is a request that reached the server
    assert r.ok == 0 and r.completed == 6
    assert set(r.errors) == {kind}, r.errors
    assert r.latency_ms is None   # failures are never timed as successes


def test_connection_refused(tmp_path):
    from stressx._testing.faults import free_port
    r = stressx.run(f"http://127.0.0.1:{free_port()}/", rate=50, duration="0.5s", workers=1, out=tmp_path)
    assert r.ok == 0 and r.requests == 25 and r.errors == {"connect_refused": 25}


def test_status_errors(counted, tmp_path):
    r = stressx.run(counted.url + "?status=503", connections=2, requests=10, workers=1, out=tmp_path)
    assert counted.counts.requests == 10
    assert r.ok == 0 and r.errors == {"status": 10} and r.status == {"503": 10}


def test_server_killed_mid_run(fault, tmp_path):
    import threading
    server = fault("ok")
    threading.Timer(1.0, server.stop).start()   # about half way: start-up takes some 0.4 s
    r = stressx.run(server.url, rate=200, duration="2s", workers=1, timeout="200ms", out=tmp_path)
    assert 0 < r.ok < 400 and r.requests == 400
    assert r.ok <= server.requests < 400     # answered only what reached it before it died
    assert r.error_count > 0 and r.ok + r.error_count == r.completed
    assert set(r.errors) <= {"connect_refused", "reset", "closed"}
    assert not shm_segments(os.getpid())


def test_post_body_and_headers_reach_the_server(tmp_path):
    """The request bytes on the wire: a raw server records what arrives."""
    import socket, threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    got = []

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(5)
        data = b""
        while b'{"k": 2}' not in data:
            data += conn.recv(4096)
        got.append(data)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    r = stressx.run(f"http://127.0.0.1:{srv.getsockname()[1]}/p", method="PUT", body='{"k": 2}',
                    headers=["X-A: b"], connections=1, requests=1, workers=1, out=tmp_path)
    srv.close()
    assert r.ok == 1 and r.status == {"201": 1}
    assert got[0].startswith(b"PUT /p HTTP/1.1\r\n") and b"\r\nX-A: b\r\n" in got[0]
    assert b"Content-Length: 8\r\n" in got[0]


def test_run_async(counted, tmp_path):
    import asyncio
    r = asyncio.run(stressx.run_async(counted.url, connections=2, requests=10, workers=1, out=tmp_path))
    assert r.ok == 10 and counted.counts.requests == 10


def test_body_ended_by_close_is_a_response(fault, tmp_path):
    """No Content-Length, not chunked: the body ends with the connection (RFC 9112 6.3), a
    success; a Content-Length body cut short by a close stays an error (test_faults...)."""
    server = fault("eof")
    r = stressx.run(server.url, connections=2, requests=8, workers=1, out=tmp_path)
    assert r.ok == 8 and r.error_count == 0 and r.status == {"200": 8}
    assert server.requests == 8
    assert r.connections_opened == server.accepted == 8    # each response closed its connection


def test_ipv6_loopback(tmp_path):
    with TargetThread(host="::1") as t:
        assert t.url.startswith("http://[::1]:")
        r = stressx.run(t.url, rate=100, duration="0.5s", workers=1, out=tmp_path)
        served = t.counts.requests
    assert r.requests == 50 and r.ok == 50 and served == 50


def test_result_thresholds_for_pytest(target, tmp_path):
    r = stressx.run(target.url + "?delay=20", rate=50, duration="1s", workers=1, out=tmp_path)
    r.assert_thresholds("p99<500ms", "error_rate<1%", criteria="ci")
    verdicts = r.check("p50<5ms", "rps>10")
    assert [v.passed for v in verdicts] == [False, True]
    with pytest.raises(AssertionError, match="p50 < 5 ms"):
        r.assert_thresholds("p50<5ms")
    with pytest.raises(stressx.ConfigError, match="p99<<5ms"):
        r.check("p99<<5ms")


@pytest.mark.parametrize("shard_index, shard_count", [(0, 0), (2, 2), (-1, 1)])
def test_engine_refuses_a_shard_outside_its_count(shard_index, shard_count):
    """The closed model's users shape divides by the shard count (C division: a zero divisor
    must be impossible), so the engine refuses a bad index or count when it is made, whatever
    the model, as the open model's Schedule always did."""
    import asyncio

    from stressx.engine import _core
    from stressx.engine.shm import ShardMemory, new_run_id
    mem = ShardMemory.create(new_run_id(), 0, 1)
    mem.unlink()
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="out of range"):
            _core.Engine(mem.slots, loop, "127.0.0.1", 9, shard_index=shard_index,
                         shard_count=shard_count, connections=1,
                         users_segments=[("const", 1.0, 1.0, 0.0, 0.0)],
                         scenarios=[{"request": b"GET / HTTP/1.1\r\n\r\n", "weight": 1.0,
                                     "expect": [], "band_min_us": -1, "band_max_us": -1}])
    finally:
        loop.close()
        mem.close()
