"""One host's part of a cluster run: the agent, a Ray actor the driver places on each load host.

It runs the normal coordinator and its shards on its host, with its slice of the global shard
numbering (so its shards send their interleaved share of the one global schedule), holds the
start until the driver gives the common start instant on this host's clock, and queues one
compact message per interval row for the driver's polls. Every driver call counts as contact:
when the driver has been silent for `silence_s` (it died, or the network did), the agent stops
its own load and keeps its results. A Ray actor calls this class's methods from several threads
(the run goes on in its own thread); nothing here imports Ray.
"""
from __future__ import annotations

import dataclasses
import io
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from ..engine.coordinator import Abort, Companion, Coordinator
from ..errors import EXIT_ABORTED, ConfigError, StartupError
from ..system import usable_cpus
from .wire import encode_interval

READY_TIMEOUT_S = 120.0         # prepare -> ready (shard start, imports, connection pre-warm)
START_WAIT_S = 60.0             # ready -> the driver's start instant


class _Link(Companion):
    """The agent's companion inside its coordinator: each interval row becomes a message."""

    name = "cluster_agent"

    def __init__(self, agent: "Agent"):
        self.agent = agent

    def on_interval(self, t_s: float, row: dict):
        self.agent._queue(encode_interval(t_s, row))
        return None

    def poll(self):
        return self.agent._silence_abort()

    def finish(self) -> dict:
        return self.agent._describe()


class Agent:
    """The actor's state and methods (the driver wraps it with ray.remote). States: idle ->
    preparing -> ready -> running -> done | failed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._messages: list[dict] = []
        self._contact = time.monotonic()
        self._state = "idle"
        self._error: dict | None = None
        self._ready = threading.Event()
        self._go = threading.Event()
        self._start_ns: int | None = None
        self._start_late_ns = 0
        self._done = threading.Event()
        self._coordinator: Coordinator | None = None
        self._summary: dict | None = None
        self._out: Path | None = None
        self._name = socket.gethostname()
        self._slice = (0, 1)
        self._silence_s = 10.0
        self._silenced: str | None = None

    # -- what the driver calls ---------------------------------------------------------------
    def info(self) -> dict:
        self._touch()
        try:                              # inside a Ray worker: which node this is
            import ray
            node = ray.get_runtime_context().get_node_id()
        except Exception:
            node = None
        return {"hostname": socket.gethostname(), "pid": os.getpid(), "cpus": usable_cpus(),
                "node_id": node, "monotonic_ns": time.monotonic_ns()}

    def clock(self) -> int:
        """This host's CLOCK_MONOTONIC, for the driver's offset probes."""
        self._touch()
        return time.monotonic_ns()

    def prepare(self, config, first: int, total: int, name: str, silence_s: float) -> None:
        """Start the coordinator for shards first .. first + config.workers - 1 of `total`;
        it spawns them and waits at the start gate (see wait_ready)."""
        self._touch()
        self._name, self._slice, self._silence_s = name, (first, total), silence_s
        self._out = Path(tempfile.mkdtemp(prefix=f"stressx-agent-{name}-"))
        self._state = "preparing"
        self._coordinator = Coordinator(config, self._out, companions=[_Link(self)],
                                        shard_slice=(first, total), start_gate=self._gate)
        threading.Thread(target=self._run, name="stressx-agent", daemon=True).start()
        threading.Thread(target=self._watch, name="stressx-agent-watchdog", daemon=True).start()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict:
        """{'state': 'ready'} once the shards are ready, or the failure: {'state': 'failed',
        'error': {'kind': 'config'|'startup'|'internal', 'option', 'message'}}."""
        self._touch()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            self._touch()
            if self._done.is_set() or time.monotonic() > deadline:
                break
        if self._error is not None:
            return {"state": "failed", "error": self._error}
        if not self._ready.is_set():
            return {"state": "failed", "error": {"kind": "startup", "option": None,
                                                 "message": f"shards not ready after {timeout:.0f} s"}}
        return {"state": "ready"}

    def start(self, start_ns: int) -> dict:
        """The common start instant on this host's clock; how late it arrived (0: in time)."""
        self._touch()
        now = time.monotonic_ns()
        self._start_late_ns = max(0, now - start_ns)
        self._start_ns = max(start_ns, now + 1_000_000)   # a past instant: as soon as possible
        if self._state == "ready":
            self._state = "running"
        self._go.set()
        return {"start_ns": self._start_ns, "late_ms": self._start_late_ns / 1e6}

    def poll(self) -> dict:
        """The interval messages since the last poll, and the state (read first: a 'done'
        comes with every message of the run)."""
        self._touch()
        state = self._state
        with self._lock:
            messages, self._messages = self._messages, []
        return {"state": state, "intervals": messages, "error": self._error}

    def change_rate(self, rate: float, at_s: float) -> None:
        """A live rate change from `at_s` seconds after the common start (the same instant on
        every host)."""
        self._touch()
        if self._coordinator is not None:
            self._coordinator.control.change_rate(rate, at=at_s)

    def change_connections(self, connections: int, at_s: float) -> None:
        """A closed-model run's new total of connections from `at_s` seconds after the common
        start: every shard keeps its share of the total by its global index, as at the start."""
        self._touch()
        if self._coordinator is not None:
            self._coordinator.control.change_connections(connections, at=at_s, source="cluster")

    def stop(self, reason: str, exit_code: int = EXIT_ABORTED) -> None:
        """End this host's load early (the run is aborted or interrupted elsewhere)."""
        self._touch()
        if self._coordinator is not None and self._coordinator.start_ns:
            self._coordinator.control.abort(reason, exit_code)
        self._go.set()                    # not started yet: the gate gives no instant

    def stop_sending(self, reason: str, now: bool) -> None:
        """A stop asked through the driver's control API: graceful (this host stops sending,
        drains, `stopped` in its summary) or now (an emergency stop: in-flight requests
        abandoned, the host's run aborted)."""
        self._touch()
        if self._coordinator is not None and self._coordinator.start_ns:
            self._coordinator.control.stop(reason, now=now, source="cluster")
        self._go.set()                    # not started yet: the gate gives no instant

    def finish(self, timeout: float = 120.0) -> dict:
        """Once the run has ended: the summary, the shards' final readings (what it counted,
        as int64 slot arrays) and the results directory as a gzipped tar; the directory is
        removed here."""
        self._touch()                     # once: a driver gone while it waits is still noticed
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.1):
            if time.monotonic() > deadline:
                return {"state": self._state, "error": {"kind": "internal", "option": None,
                        "message": f"the run did not end within {timeout:.0f} s"}}
        readings = [r.slots for r in self._coordinator.final_readings] if self._coordinator else []
        buf = io.BytesIO()
        if self._out is not None and self._out.exists():
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                tar.add(str(self._out), arcname=".")
            shutil.rmtree(self._out, ignore_errors=True)
        return {"state": self._state, "error": self._error, "summary": self._summary,
                "readings": readings, "results_tar": buf.getvalue(),
                "start_late_ms": self._start_late_ns / 1e6}

    # -- inside ------------------------------------------------------------------------------
    def _touch(self) -> None:
        self._contact = time.monotonic()

    def _queue(self, message: dict) -> None:
        with self._lock:
            self._messages.append(message)

    def _describe(self) -> dict:
        return {"host": self._name, "shard_slice": list(self._slice),
                "start_late_ms": round(self._start_late_ns / 1e6, 3),
                "stopped_for_silence": self._silenced}

    def _silence_abort(self):
        """From the coordinator's loop: an abort when the driver has gone quiet."""
        if self._silenced is None and time.monotonic() - self._contact > self._silence_s:
            self._silenced = (f"the driver has been silent for {self._silence_s:g} s: "
                              f"stopping this host's load")
            return Abort(self._silenced, EXIT_ABORTED)
        return None

    def _watch(self) -> None:
        """Before the start the coordinator's loop is not running: release the gate when the
        driver goes quiet."""
        while not self._done.is_set() and not self._go.is_set():
            if time.monotonic() - self._contact > self._silence_s:
                self._silenced = f"the driver has been silent for {self._silence_s:g} s"
                self._go.set()
                return
            time.sleep(0.2)

    def _gate(self) -> int | None:
        self._state = "ready"
        self._ready.set()
        self._go.wait(START_WAIT_S + self._silence_s)
        return self._start_ns

    def _run(self) -> None:
        try:
            self._summary = self._coordinator.run()
            self._state = "done"
        except ConfigError as exc:
            self._error = {"kind": "config", "option": exc.option,
                           "message": str(exc).split(": ", 1)[-1]}
            self._state = "failed"
        except StartupError as exc:
            self._error = {"kind": "startup", "option": None, "message": str(exc)}
            self._state = "failed"
        except Exception as exc:                           # reported to the driver, not lost
            self._error = {"kind": "internal", "option": None,
                           "message": f"{type(exc).__name__}: {exc}"}
            self._state = "failed"
        finally:
            self._done.set()


def agent_config(config, workers: int):
    """The config an agent runs: this host's shard count, no cluster (it is one host), no
    progress lines (the driver prints the merged ones)."""
    return dataclasses.replace(config, workers=workers, cluster=None, hosts=None, progress=False)
