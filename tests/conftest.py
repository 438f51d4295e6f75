"""Shared fixtures: real servers on 127.0.0.1, the CLI as a real subprocess."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stressx._testing.faults import FaultServerThread, free_port  # noqa: F401
from stressx._testing.target import TargetThread

RUN_TIMEOUT_S = 60


@pytest.fixture(scope="session")
def target():
    """The embedded aiohttp target, shared by the whole session."""
    with TargetThread() as t:
        yield t


@pytest.fixture
def fault():
    """Factory: fault("stall") -> a started fault server, stopped after the test."""
    servers = []

    def make(mode):
        s = FaultServerThread(mode)
        s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def run_cli(*args, timeout=RUN_TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
    """Run `stressx ARGS` in a subprocess, as a user would; bounded in time."""
    return subprocess.run([sys.executable, "-m", "stressx.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def shm_segments(pid: int | None = None) -> set[str]:
    """stressx shared-memory segments in /dev/shm; with `pid`, only those of the run whose
    coordinator is that process (names are stressx-PID-TOKEN-SHARD), so other runs on the
    machine neither fail nor satisfy the check."""
    prefix = "stressx-" if pid is None else f"stressx-{pid}-"
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}
