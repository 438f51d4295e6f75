"""The command line as users run it: a real subprocess, real signals, real result files."""
import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from stressx._testing.target import TargetThread
from stressx.results.files import read_intervals

from conftest import run_cli, shm_segments


def test_help_lists_exit_codes():
    r = run_cli("--help")
    assert r.returncode == 0
    for code in ("130", "143", "thresholds failed", "run aborted"):
        assert code in r.stdout


@pytest.mark.parametrize("args,option", [
    (["--rate", "abc"], "--rate"),
    (["--workers", "0"], "--workers"),
    (["--duration", "5x"], "--duration"),
    (["--header", "nocolon"], "--header"),
    (["--timeout", "-1"], "--timeout"),
    (["--connections", "0"], "--connections"),
])
def test_bad_options_exit_2_naming_the_option(tmp_path, args, option):
    out = tmp_path / "out"
    with TargetThread() as t:
        r = run_cli("run", t.url, *args, "--out", out)
        reached = t.counts.connections
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stressx: error: {option}"), r.stderr
    assert not out.exists() and reached == 0    # stopped before anything ran: nothing sent


def test_bad_url_exit_2(tmp_path):
    r = run_cli("run", "ftp://127.0.0.1/", "--out", tmp_path / "o")
    assert r.returncode == 2 and "URL" in r.stderr and "http://" in r.stderr


def test_run_json(tmp_path):
    with TargetThread() as t:
        r = run_cli("run", t.url, "--connections", "2", "--requests", "50", "--workers", "1",
                    "--json", "--out", tmp_path)
        served = t.counts.requests
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    # a closed-model run of 50 requests: the figures that are known, as the server counted them
    assert served == 50
    from stressx.results.files import FORMAT_VERSION
    assert (s["format_version"], s["model"], s["requests"], s["ok"], s["errors"], s["status"]) == (
        FORMAT_VERSION, "closed", 50, 50, {}, {"200": 50})
    assert s["rate_target"] is None and s["send_lag_ms"] is None and s["saturated"] is False
    assert s["rps"] == pytest.approx(50 / s["duration_s"], rel=1e-4)   # duration_s is rounded
    lat = s["latency_ms"]
    assert list(lat) == ["min", "mean", "p50", "p90", "p95", "p99", "p999", "max"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert json.loads((tmp_path / "summary.json").read_text()) == s


def test_run_prints_a_summary_table(target, tmp_path):
    r = run_cli("run", target.url, "--rate", "100", "--duration", "1s", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "p99" in r.stdout and "open model, 100 req/s" in r.stdout and str(tmp_path) in r.stdout
    assert "req/s" in r.stderr   # one progress line per second on stderr


def test_demo(tmp_path):
    r = run_cli("demo", "--duration", "1s", "--rate", "200", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["requests"] == 200 and s["ok"] == 200


def _start(args, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "stressx.cli", "run", *map(str, args),
                          "--out", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait for the first progress line: the shards are running
    deadline = time.monotonic() + 20
    line = ""
    while "req/s" not in line and time.monotonic() < deadline:
        line = p.stderr.readline()
    assert "req/s" in line, "no progress line"
    return p


def _shard_pids(p, workers):
    """The coordinator's shard processes; exactly `workers` of them, or the checks that they
    are gone later would pass on an empty list."""
    pids = [c.pid for c in psutil.Process(p.pid).children()
            if "stressx.engine.shard" in " ".join(c.cmdline())]
    assert len(pids) == workers, pids
    return pids


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids, within=5.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_run_and_keeps_results(tmp_path, sig, code):
    with TargetThread() as t:
        p = _start([t.url, "--rate", "200", "--duration", "60s", "--workers", "2"], tmp_path)
        pids = _shard_pids(p, 2)
        p.send_signal(sig)
        out, err = p.communicate(timeout=15)
        served = t.counts.requests
    assert p.returncode == code, err
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["interrupted"] == signal.Signals(sig).name
    assert s["ok"] + s["error_count"] + s["abandoned"] == s["requests"]
    # the figures kept are the requests that were really made: every ok one reached the server
    assert 0 < s["ok"] <= served <= s["requests"]
    assert "INTERRUPTED" in out
    assert read_intervals(tmp_path / "intervals.arrows").num_rows >= 1
    assert _gone(pids) and not shm_segments(p.pid)


def test_second_signal_exits_at_once(target, tmp_path):
    slow = target.url + "?delay=5000"   # in-flight requests would hold the drain for its grace
    p = _start([slow, "--rate", "50", "--duration", "60s", "--workers", "1", "--timeout", "30s"],
               tmp_path)
    pids = _shard_pids(p, 1)
    time.sleep(1.1)  # let an interval row be written
    p.send_signal(signal.SIGINT)
    time.sleep(0.1)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=10)
    assert p.returncode == 130 and time.monotonic() - t0 < 2
    assert read_intervals(tmp_path / "intervals.arrows").num_rows >= 1
    assert _gone(pids) and not shm_segments(p.pid)


def test_dead_shard_aborts_with_4_and_keeps_the_others_data(target, tmp_path):
    p = _start([target.url, "--rate", "200", "--duration", "60s", "--workers", "2"], tmp_path)
    victim, survivor = _shard_pids(p, 2)
    psutil.Process(victim).kill()
    out, err = p.communicate(timeout=15)
    assert p.returncode == 4, err
    assert "died" in err
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["aborted"] and str(victim) in s["aborted"]
    shards = {sh["pid"]: sh for sh in s["shards"]}
    assert shards[victim]["lost"] and shards[survivor]["lost"] is None
    assert shards[survivor]["ok"] > 0 and shards[victim]["sent"] > 0
    assert _gone([survivor]) and not shm_segments(p.pid)


def test_killed_coordinator_leaves_nothing_behind(target, tmp_path):
    p = _start([target.url, "--rate", "100", "--duration", "60s", "--workers", "2"], tmp_path)
    pids = _shard_pids(p, 2)
    time.sleep(1.1)
    p.kill()
    p.communicate(timeout=10)
    assert _gone(pids), "shards outlived their coordinator"
    assert not shm_segments(p.pid)
    assert read_intervals(tmp_path / "intervals.arrows").num_rows >= 1


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_serve_stops_on_signals_with_their_exit_code(sig, code):
    from stressx._testing.faults import free_port
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "stressx.cli", "serve", "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "listening on" in p.stdout.readline()
    p.send_signal(sig)
    out, err = p.communicate(timeout=10)
    assert p.returncode == code and "Traceback" not in err
