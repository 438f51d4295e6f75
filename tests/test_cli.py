"""The command line as users run it: a real subprocess, real signals, real result files."""
import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from stressx.results import read_intervals

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
def test_bad_options_exit_2_naming_the_option(target, tmp_path, args, option):
    out = tmp_path / "out"
    r = run_cli("run", target.url, *args, "--out", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], r.stderr
    assert not out.exists()     # stopped before anything ran


def test_bad_url_exit_2(tmp_path):
    r = run_cli("run", "ftp://127.0.0.1/", "--out", tmp_path / "o")
    assert r.returncode == 2 and "URL" in r.stderr and "http://" in r.stderr


def test_run_json(target, tmp_path):
    r = run_cli("run", target.url, "--connections", "2", "--requests", "50", "--workers", "1",
                "--json", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for key in ("format_version", "requests", "ok", "errors", "status", "duration_s", "rate_target",
                "rps", "latency_ms", "latency_uncorrected_ms", "send_lag_ms", "late", "saturated"):
        assert key in s
    for key in ("min", "mean", "p50", "p90", "p95", "p99", "p999", "max"):
        assert key in s["latency_ms"]
    assert s["requests"] == 50 and s["ok"] == 50
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


def _shard_pids(p):
    return [c.pid for c in psutil.Process(p.pid).children()]


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
def test_signal_stops_the_run_and_keeps_results(target, tmp_path, sig, code):
    p = _start([target.url, "--rate", "200", "--duration", "60s", "--workers", "2"], tmp_path)
    pids = _shard_pids(p)
    assert len(pids) == 2
    p.send_signal(sig)
    out, err = p.communicate(timeout=15)
    assert p.returncode == code, err
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["interrupted"] == signal.Signals(sig).name and s["requests"] > 0
    assert s["ok"] + s["error_count"] + s["abandoned"] == s["requests"]
    assert "INTERRUPTED" in out
    assert read_intervals(tmp_path / "intervals.arrows").num_rows >= 1
    assert _gone(pids) and not shm_segments()


def test_second_signal_exits_at_once(target, tmp_path):
    slow = target.url + "?delay=5000"   # in-flight requests would hold the drain for its grace
    p = _start([slow, "--rate", "50", "--duration", "60s", "--workers", "1", "--timeout", "30s"],
               tmp_path)
    pids = _shard_pids(p)
    time.sleep(1.1)  # let an interval row be written
    p.send_signal(signal.SIGINT)
    time.sleep(0.1)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=10)
    assert p.returncode == 130 and time.monotonic() - t0 < 2
    assert read_intervals(tmp_path / "intervals.arrows").num_rows >= 1
    assert _gone(pids) and not shm_segments()


def test_dead_shard_aborts_with_4_and_keeps_the_others_data(target, tmp_path):
    p = _start([target.url, "--rate", "200", "--duration", "60s", "--workers", "2"], tmp_path)
    victim, survivor = _shard_pids(p)
    psutil.Process(victim).kill()
    out, err = p.communicate(timeout=15)
    assert p.returncode == 4, err
    assert "died" in err
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["aborted"] and str(victim) in s["aborted"]
    shards = {sh["pid"]: sh for sh in s["shards"]}
    assert shards[victim]["lost"] and shards[survivor]["lost"] is None
    assert shards[survivor]["ok"] > 0 and shards[victim]["sent"] > 0
    assert _gone([survivor]) and not shm_segments()


def test_killed_coordinator_leaves_nothing_behind(target, tmp_path):
    p = _start([target.url, "--rate", "100", "--duration", "60s", "--workers", "2"], tmp_path)
    pids = _shard_pids(p)
    time.sleep(1.1)
    p.kill()
    p.communicate(timeout=10)
    assert _gone(pids), "shards outlived their coordinator"
    assert not shm_segments()
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
