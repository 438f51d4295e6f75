"""The control API, its security and the live page, against real runs: `stressx` subprocesses
with --control on a free loopback port, the embedded target, real HTTP and WebSocket clients,
and headless Chromium for the page."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stressx._testing.faults import free_port
from stressx.results.files import read_intervals

TOKEN = "s3cret-token-0123456789abcdef"


class LiveRun:
    """A `stressx` command running with --control on a free port; .finish() -> (exit code,
    summary dict, stderr)."""

    def __init__(self, args, out: Path, env=None, port=None):
        self.port = port or free_port()
        self.out = out
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stressx.cli", *map(str, args), "--control",
             f"127.0.0.1:{self.port}", "--out", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 30
        while True:
            try:
                self.status()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out_, err = self.proc.communicate()
                    raise AssertionError(f"control API never came up: {err}")
                time.sleep(0.05)

    def request(self, method, path, body=None, headers=None, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def json(self, method, path, body=None, **kw):
        status, data, _ = self.request(method, path, body, **kw)
        return status, json.loads(data)

    def status(self):
        with urllib.request.urlopen(self.base + "/v1/status", timeout=5) as r:
            return json.loads(r.read())

    def wait_for(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if pred(s):
                return s
            time.sleep(0.05)
        raise AssertionError(f"timed out; last status {s}")

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        summary = json.loads(out) if out.strip() else None
        return self.proc.returncode, summary, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def live(tmp_path):
    runs = []

    def start(*args, env=None, port=None):
        r = LiveRun(args, tmp_path / f"run{len(runs)}", env=env, port=port)
        runs.append(r)
        return r
    yield start
    for r in runs:
        r.kill()


def rows_of(out: Path) -> list[dict]:
    return read_intervals(out / "intervals.arrows").to_pylist()


# -- the thin path: --control, status, a rate change followed exactly, a graceful stop ----------
def test_rate_change_is_followed_exactly_and_stop_is_graceful(target, live):
    run = live("steady", target.url, "--rps", 200, "--duration", 30, "-w", 2)
    s = run.wait_for(lambda s: s["state"] == "running" and s["elapsed_s"] > 1.3)
    assert s["model"] == "open" and s["rate"] == 200.0 and s["phase"] == "steady"
    code, after = run.json("POST", "/v1/rate", {"rate": "30000/m"})   # the CLI's spellings
    assert code == 200, after
    s = run.wait_for(lambda s: s["interval"] and s["interval"]["t_s"] >= 5)
    assert s["rate"] == 500.0 and s["phase"] == "live"
    code, _ = run.json("POST", "/v1/stop", {})
    assert code == 200
    rc, summary, err = run.finish()
    assert rc == 0, err
    assert summary["stopped"].startswith("stopped through the control API")
    assert summary["aborted"] is None
    change = [c for c in summary["changes"] if c["what"] == "rate"]
    assert len(change) == 1 and change[0]["value"] == 500.0 and change[0]["source"] == "api"
    assert [c["what"] for c in summary["changes"]] == ["rate", "stop"]
    t_change = change[0]["t_s"]
    rows = rows_of(run.out)
    full = [r for r in rows if r["interval_s"] == 1.0]
    for r in full:
        start = r["t_s"] - 1.0
        if r["t_s"] <= t_change:                        # wholly before the change
            expect = 200.0
        elif start >= t_change:                         # wholly after it: the new rate
            expect = 500.0
        else:                                           # the second it falls in: both, pro rata
            expect = 200.0 * (t_change - start) + 500.0 * (r["t_s"] - t_change)
        assert r["rate_target"] == pytest.approx(expect, abs=1e-3), r   # t_s kept to the us
        # the schedule follows its integral: no burst, no gap (a send at a boundary may fall
        # either side of it)
        assert abs(r["sent"] - expect) <= 2, (r["t_s"], r["sent"], expect)
    assert any(r["t_s"] - 1.0 >= t_change for r in full)
    assert summary["control"]["requests"] >= 3 and summary["control"]["token"] is False
