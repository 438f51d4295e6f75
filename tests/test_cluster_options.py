"""--cluster, --hosts and --max-clock-uncertainty without a cluster: every bad value is one line
and exit 2 naming where it came from, with nothing sent; and the single-host path never loads
Ray (these run whether or not the `ray` extra is installed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import stressx
from stressx.errors import ConfigError
from stressx.load.config import parse_cluster, parse_hosts

from conftest import run_cli


@pytest.mark.parametrize("value, canonical", [
    ("local:3", "local:3"), ("auto", "auto"), ("ray://10.0.0.5:10001", "ray://10.0.0.5:10001"),
    ("127.0.0.1:6379", "127.0.0.1:6379"), ("head.internal:6379", "head.internal:6379"),
    ("[::1]:6379", "[::1]:6379")])
def test_cluster_addresses_accepted(value, canonical):
    assert parse_cluster(value) == canonical


@pytest.mark.parametrize("value", ["local:0", "local:x", "local:99", "ray://", "bogus",
                                   "host:0", "host:99999", "ray://host"])
def test_bad_cluster_addresses_refused(value):
    with pytest.raises(ConfigError) as e:
        parse_cluster(value)
    assert str(e.value).startswith("--cluster: ")


def test_hosts_forms():
    assert parse_hosts("3") == "3" and parse_hosts("loadgen") == "loadgen"
    assert parse_hosts("loadgen:4") == "loadgen:4"
    for bad in ("0", "load gen", "x:y", ":3"):
        with pytest.raises(ConfigError):
            parse_hosts(bad)


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_each_source_of_a_bad_cluster_is_named_and_nothing_is_sent(target, tmp_path):
    before = target.requests
    line = _one_error_line(run_cli("run", target.url, "--rate", "10", "--cluster", "bogus"))
    assert line == ("stressx: error: --cluster: expected local:N, auto, ray://HOST:PORT or "
                    "HOST:PORT, got 'bogus'")
    env = dict(os.environ, STRESSX_CLUSTER="local:0")
    line = _one_error_line(run_cli("run", target.url, "--rate", "10", env=env))
    assert line.startswith("stressx: error: STRESSX_CLUSTER: must be between 1 and 16")
    cfg = tmp_path / "load.yaml"
    cfg.write_text(f"target: {target.url}\nrate: 10\ncluster: nowhere\n")
    line = _one_error_line(run_cli("run", "--config", cfg))
    assert line.startswith(f"stressx: error: {cfg}: cluster: expected local:N")
    line = _one_error_line(run_cli("run", target.url, "--rate", "10", "--hosts", "2"))
    assert line == "stressx: error: --hosts: chooses the hosts of a --cluster; none was given"
    line = _one_error_line(run_cli("run", target.url, "--rate", "10", "--cluster", "local:2",
                                   "--max-clock-uncertainty", "5s"))
    assert line.startswith("stressx: error: --max-clock-uncertainty: must be above 0 and at most 1s")
    line = _one_error_line(run_cli("run", target.url, "--rate", "10", "--cluster", "local:2",
                                   "--burn", "cpu=10%"))
    assert line == ("stressx: error: --burn: host load runs on one host: it is not available "
                    "with --cluster")
    with pytest.raises(ConfigError, match="^--cluster: "):
        stressx.run(target.url, rate=10, cluster="local:")
    assert target.requests == before


def test_without_ray_a_cluster_run_says_how_to_install_it(target):
    code = ("import sys; sys.modules['ray'] = None\n"       # as if the extra were not installed
            "from stressx.cli import main\n"
            f"sys.argv = ['stressx', 'run', {target.url!r}, '--rate', '10', '--cluster', 'local:2']\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert _one_error_line(proc) == ("stressx: error: --cluster: needs Ray, an optional extra: "
                                     "pip install 'stressx[ray]'")


def test_the_single_host_path_never_imports_ray(target, tmp_path):
    """After the CLI's import and a whole run (and the library's), no `ray` module is loaded."""
    report = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(report)!r}, 'w').write(json.dumps("
        "sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))))\n"
        "import stressx\n"
        f"r = stressx.run({target.url!r}, rate=50, duration=0.3, workers=1)\n"
        "assert r.summary['requests'] == 15, r.summary['requests']\n"
        "from stressx.cli import main\n"
        f"sys.argv = ['stressx', 'run', {target.url!r}, '--rate', '50', '--duration', '0.3', "
        f"'--workers', '1', '--quiet', '--out', {str(tmp_path / 'out')!r}]\n"
        "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(report.read_text()) == []
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["requests"] == 15


def test_an_agent_stops_its_load_when_the_driver_goes_silent(target, tmp_path):
    """The agent without Ray (it is a plain class that Ray wraps): prepared, started, then
    never polled again: after `silence_s` it stops its own load and keeps what it counted."""
    import time

    from stressx.cluster.agent import Agent, agent_config
    from stressx.load.config import resolve
    config = resolve(target.url, rate=200, duration=30, cluster="local:2", workers=1)
    agent = Agent()
    before = target.requests
    agent.prepare(agent_config(config, 1), 1, 2, "h1-test", 1.0)   # shard 1 of 2
    assert agent.wait_ready(30) == {"state": "ready"}
    started = agent.start(time.monotonic_ns() + 50_000_000)
    assert started["late_ms"] == 0
    polled = agent.poll()
    assert polled["state"] == "running"
    t0 = time.monotonic()
    fin = agent.finish(20)      # one contact, then it waits: the driver is silent from here
    took = time.monotonic() - t0
    assert fin["state"] == "done" and 0.9 < took < 5     # ~1 s of silence, not the 30 s run
    s = fin["summary"]
    assert s["exit_code"] == 4 and "silent" in s["aborted"]
    assert 0 < s["requests"] == target.requests - before
    assert s["rate_target"] == pytest.approx(100, rel=0.05)      # its half of 200/s
    assert s["shards"][0]["index"] == 1
    assert len(fin["readings"]) == 1 and fin["results_tar"][:2] == b"\x1f\x8b"
