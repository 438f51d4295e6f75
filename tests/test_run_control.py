"""Run control: dry runs send nothing, safety backoff in every open-model run, how many
workers, file-descriptor limits, interrupts while starting. Real subprocesses, real sockets."""
from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import stressx
from stressx._testing.target import TargetThread
from stressx.engine.coordinator import Companion
from stressx.system import cgroup_cpu_limit, parse_cpu_max, usable_cpus

from conftest import RUN_TIMEOUT_S, run_cli, shm_segments


class CountingServer:
    """A loopback listener that counts every connection it accepts and every byte it reads,
    answering nothing: a dry run must leave both at 0."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.connections = 0
        self.bytes = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        conns = []
        while not self._halt.is_set():
            try:
                c, _ = self.sock.accept()
                c.setblocking(False)
                conns.append(c)
                self.connections += 1
            except OSError:
                pass
            for c in conns:
                try:
                    self.bytes += len(c.recv(65536))
                except OSError:
                    pass
        for c in conns:
            c.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._thread.join(2)
        self.sock.close()


# -- 1. --dry-run ------------------------------------------------------------------------------
DRY_RUNS = {
    "capacity": ["capacity", "{url}", "--slo", "p99<50ms", "--start-rps", "50", "--max-rps", "400",
                 "--probe-duration", "1s"],
    "scaling": ["scaling", "{url}", "--instances", "1,2", "--rps-per-instance", "20", "--duration",
                "1s", "--scale-cmd", "touch {tmp}/scaled-{{n}}"],
    "adaptive": ["adaptive", "{url}", "--start-rps", "20", "--step-rps", "10", "--duration", "2s",
                 "--slo", "p99<100ms"],
    "steady+burn": ["steady", "{url}", "--rps", "20", "--duration", "1s", "--burn", "cpu=10%x1",
                    "--safety", "mem>99%:stop"],
    "phases": ["phases", "{url}", "--max-rps", "40", "--phases", "light,heavy", "--phase-duration",
               "0.5s", "--ramp-up", "0.2s"],
    "run-config": ["run", "--config", "{tmp}/load.yaml"],
}


@pytest.mark.parametrize("name", list(DRY_RUNS))
def test_dry_run_sends_nothing_and_runs_nothing(name, tmp_path):
    with CountingServer() as server:
        (tmp_path / "load.yaml").write_text(
            f"target: {server.url}\ntests:\n  - {{type: steady, rps: 20, duration: 1s}}\n"
            f"  - {{type: ramp, min_rps: 5, max_rps: 50, duration: 1s}}\n")
        args = [a.format(url=server.url, tmp=tmp_path) for a in DRY_RUNS[name]]
        r = run_cli(*args, "--out", tmp_path / "out", "--dry-run")
        time.sleep(0.2)          # anything sent would have arrived by now
    assert r.returncode == 0, r.stderr
    assert (server.connections, server.bytes) == (0, 0)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("scaled-*"))          # the scale command never ran
    plan = json.loads(r.stdout)
    if name == "capacity":
        assert [p["rate"] for p in plan["probes_while_passing"]] == [50, 100, 200, 400]
        assert plan["run"]["shape"]["name"] == "steady" and plan["run"]["duration"] == 1.0
    elif name == "scaling":
        assert [(lv["instances"], lv["rate"], lv["scale_cmd"]) for lv in plan["levels"]] == [
            (1, 20.0, f"touch {tmp_path}/scaled-1"), (2, 40.0, f"touch {tmp_path}/scaled-2")]
    elif name == "adaptive":
        assert plan[0]["adaptive"]["start_rps"] == 20 and plan[0]["adaptive"]["slo"] == ["p99<100ms"]
    elif name == "steady+burn":
        assert plan[0]["burn"] == ["cpu=10%x1"] and plan[0]["safety"] == ["mem>99%:stop"]
    elif name == "run-config":
        assert [t["shape"]["name"] for t in plan] == ["steady", "ramp"]


def test_burn_dry_run_starts_no_burner(tmp_path):
    r = run_cli("burn", "cpu=50%x1", "mem=16M", "--duration", "5s", "--out", tmp_path / "out",
                "--dry-run", timeout=20)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert [b["kind"] for b in plan["burn"]] == ["cpu", "mem"] and plan["duration_s"] == 5
    assert not (tmp_path / "out").exists()


# -- 2. safety backoff in pattern runs ---------------------------------------------------------
def test_backoff_lowers_the_rate_of_a_pattern_run(target, tmp_path):
    """A ramp 200 -> 400 req/s over 3 s with a limit that holds from the first host sample
    (memory in use is always above 0%): the rate is halved at once and again 2 s later, and
    the summary says so instead of claiming burner-only backoff or a client that fell short."""
    r = run_cli("ramp", target.url, "--min-rps", "200", "--max-rps", "400", "--duration", "3s",
                "--workers", "1", "--safety", "mem>0%:backoff", "--out", tmp_path, "--json", "-q")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    events = [e for e in s["safety"]["events"] if e["action"] == "backoff"]
    rates = [e["request_rate"] for e in events]
    assert len(rates) == 2 and None not in rates
    assert 95 <= rates[0] <= 125 and rates[1] == pytest.approx(rates[0] / 2, rel=1e-3)
    assert s["safety"]["request_rate"] == rates[1]
    assert not any("burner levels only" in n for n in s["safety"]["notes"])
    assert s["requests"] < 0.5 * 900               # the ramp alone would send 900
    assert s["rate_target"] < 150                  # the target it reports is the lowered one
    assert not any(reason.startswith("the client issued") for reason in s["saturation"]["reasons"])
    rows = stressx.load_results(tmp_path).intervals.to_pylist()
    last_full = [row for row in rows if row["interval_s"] > 0.9][-1]
    assert last_full["sent_rps"] < 100 and last_full["rate_target"] < 100   # ramp there: ~370


def test_backoff_in_a_closed_model_pattern_says_why_the_rate_stayed(target, tmp_path):
    r = run_cli("steady", target.url, "--model", "closed", "--rps", "2", "--duration", "1.2s",
                "--workers", "1", "--safety", "mem>0%:backoff", "--out", tmp_path, "--json", "-q")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    ev = s["safety"]["events"][0]
    assert ev["request_rate"] is None and "closed-model" in ev["request_rate_unchanged"]
    assert any("closed-model run" in n for n in s["safety"]["notes"])


# -- 3. workers --------------------------------------------------------------------------------
@pytest.mark.parametrize("args,why", [
    (["run", "--connections", "1"], "--connections is 1"),
    (["steady", "--model", "closed", "--rps", "1"], "the pattern peaks at 1 connection(s)"),
    (["run", "--rate", "50", "--requests", "1"], "--requests is 1"),
])
def test_fewer_connections_than_workers_is_said_and_recorded(args, why, target, tmp_path):
    r = run_cli(args[0], target.url, *args[1:], "--workers", "2", "--duration", "0.5s",
                "--out", tmp_path, "--json", "-q")
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "--workers 2 lowered to 1" in line]
    assert len(said) == 1 and said[0].startswith("stressx: ") and why in said[0]
    s = json.loads(r.stdout)
    assert s["workers"] == 1 and s["workers_requested"] == 2 and len(s["shards"]) == 1
    assert any("--workers 2 lowered to 1" in n for n in s["notes"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["workers"] == 1


def test_default_workers_follow_the_cpu_affinity(target, tmp_path):
    """Under `taskset -c 0` the default is one shard, whatever os.cpu_count() says."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two usable CPUs to tell affinity from the machine's count")
    r = run_cli("run", target.url, "--rate", "50", "--duration", "0.5s", "--out", tmp_path,
                "--json", "-q", preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["workers"] == 1 and len(s["shards"]) == 1 and s["notes"] == []


@pytest.mark.parametrize("text,cpus", [
    ("max 100000\n", None), ("150000 100000\n", 2), ("100000 100000\n", 1), ("1000 100000\n", 1),
    ("250000 50000", 5), ("", None), ("junk", None),
])
def test_parse_cpu_max(text, cpus):
    assert parse_cpu_max(text) == cpus


def test_cgroup_quota_of_own_cgroup_and_ancestors(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "a" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "cpu.max").write_text("400000 100000\n")
    own = tmp_path / "cgroup"
    own.write_text("0::/a/b\n")
    assert cgroup_cpu_limit(str(tmp_path), str(own)) == 2
    own.write_text("0::/\n")
    assert cgroup_cpu_limit(str(tmp_path), str(own)) == 4
    assert cgroup_cpu_limit(str(tmp_path / "none"), str(own)) is None


def test_usable_cpus_is_limited_by_a_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    own = tmp_path / "cgroup"
    own.write_text("0::/\n")
    assert usable_cpus(str(tmp_path), str(own)) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(str(tmp_path), str(own)) == len(os.sched_getaffinity(0))


# -- 4. file descriptors -----------------------------------------------------------------------
def _nofile(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def test_too_few_file_descriptors_exit_2_before_any_request(tmp_path):
    with CountingServer() as server:
        r = run_cli("run", server.url, "--connections", "200", "--workers", "2", "--duration",
                    "1s", "--out", tmp_path / "out", preexec_fn=_nofile(64))
        time.sleep(0.2)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stressx: error: --connections: ")
    need = int(re.search(r"need up to (\d+) file descriptors", lines[0]).group(1))
    assert need > 64 and "RLIMIT_NOFILE (64" in lines[0]
    assert (server.connections, server.bytes) == (0, 0)
    assert not (tmp_path / "out").exists()


def test_explicit_max_connections_over_the_limit_names_it(tmp_path):
    with CountingServer() as server:
        r = run_cli("run", server.url, "--rate", "10", "--max-connections", "500", "--workers",
                    "1", "--duration", "1s", "--out", tmp_path / "out", preexec_fn=_nofile(64))
    assert r.returncode == 2 and server.connections == 0
    assert r.stderr.startswith("stressx: error: --max-connections: 500 connections at most")


def test_default_connection_cap_is_lowered_to_fit(target, tmp_path):
    r = run_cli("run", target.url, "--rate", "50", "--workers", "1", "--duration", "0.5s",
                "--out", tmp_path, "--json", "-q", preexec_fn=_nofile(128))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["ok"] == 25 and any("--max-connections lowered" in n for n in s["notes"])


class SqueezeShards(Companion):
    """At the common start, lower each shard's RLIMIT_NOFILE to just above what it has open,
    so the pool cannot grow: the connects that follow fail with EMFILE in the shard."""
    name = "squeeze"

    def start(self, start_ns):
        for pid in self.control.shard_pids.values():
            n = len(os.listdir(f"/proc/{pid}/fd"))
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (n + 2, n + 2))


def test_running_out_of_descriptors_is_fd_limit_and_saturates(tmp_path):
    with TargetThread(delay_ms=300) as slow:
        r = stressx.run(slow.url, rate=300, duration="1.5s", workers=1, max_connections=300,
                        timeout="3s", out=tmp_path, companions=[SqueezeShards()])
    assert r.errors.get("fd_limit", 0) > 0
    assert "connect" not in r.errors             # not blamed on the target
    assert r.saturated
    assert any("file descriptors" in reason for reason in r.saturation["reasons"])
    rows = stressx.load_results(tmp_path).intervals.to_pylist()
    assert sum(row["errors_fd_limit"] for row in rows) == r.errors["fd_limit"]


# -- 5. interrupts -----------------------------------------------------------------------------
def _spawn_cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "stressx.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_importing(pid, deadline_s=10.0):
    """Until the process maps a compiled module from site-packages: it is past interpreter
    start-up and inside the CLI's own imports."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/maps") as f:
                if any("site-packages" in line and ".so" in line for line in f):
                    return
        except OSError:
            return
        time.sleep(0.0005)


@pytest.mark.parametrize("when", ["importing", 0.2, 0.4])
def test_sigint_while_starting_exits_130_without_traceback(when, tmp_path):
    with CountingServer() as server:
        p = _spawn_cli("run", server.url, "--rate", "10", "--duration", "5s", "--out",
                       tmp_path / "out", "-q")
        if when == "importing":
            _wait_importing(p.pid)
        else:
            time.sleep(when)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=RUN_TIMEOUT_S)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_interrupt_before_the_start_still_writes_the_summary(tmp_path):
    """Ctrl-C (SIGINT to the whole process group) while the shards are still starting: their
    connects hang on a listener whose backlog is full, so the start cannot come first."""
    stall = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = [socket.create_connection(stall.getsockname(), timeout=2)]   # the queue is full
    url = f"http://127.0.0.1:{stall.getsockname()[1]}/"
    out = tmp_path / "out"
    try:
        p = _spawn_cli("run", url, "--rate", "10", "--connections", "8", "--workers", "4",
                       "--timeout", "20s", "--duration", "5s", "--out", out,
                       start_new_session=True)
        end = time.monotonic() + 30
        while not (out / "manifest.json").exists() and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.5)               # the shards are importing or pre-opening connections
        os.killpg(p.pid, signal.SIGINT)
        stdout, err = p.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        for s in fillers:
            s.close()
        stall.close()
    assert p.returncode == 130, err
    assert "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] == "SIGINT" and s["requests"] == 0 and s["duration_s"] == 0
    assert s["saturated"] is False and s["exit_code"] == 130
    assert "INTERRUPTED by SIGINT" in stdout
    assert not {n for n in shm_segments() if n.startswith(f"stressx-{p.pid}-")}   # none left
