"""BurnerGroup: the burner processes of one run, as a coordinator Companion.

prepare() starts every burner process and waits until each has set itself up (memory mapping
reserved, IO file open); start(start_ns) hands them the run's common start instant and starts a
control thread that writes each burner's requested level (its schedule at the elapsed time,
times the backoff scale) every 50 ms; stop() asks them to stop, then SIGTERM, then SIGKILL, so
none outlives the run; finish() reports what each did.

Burners follow their parent's death on their own (PR_SET_PDEATHSIG, and a getppid() check each
period), so a SIGKILLed coordinator leaves nothing running either.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from ...engine.coordinator import Abort, Companion
from ...engine.spawn import child_argv
from ...errors import EXIT_ABORTED
from .base import PERIOD_NS, STATE, BurnerSpec, Control, clamp, limit_names, schedule_peak

CONTROL_INTERVAL_S = 0.05
READY_TIMEOUT_S = 20.0
STOP_WAIT_S = 0.5      # after the stop flag, before SIGTERM
KILL_WAIT_S = 1.0      # after SIGTERM, before SIGKILL


class BurnerHandle:
    """One burner process seen from the parent."""

    def __init__(self, spec: BurnerSpec, name: str, worker: int):
        self.spec, self.name, self.worker = spec, name, worker
        self.kind = spec.kind
        self.ctl: Control | None = None     # created at launch: building a group costs nothing
        self.proc: subprocess.Popen | None = None
        self.lost: str | None = None
        self.limited_seen = 0
        self.stderr = ""

    @property
    def live(self) -> bool:
        """The control block is mapped (between launch and finish)."""
        return self.ctl is not None and self.ctl.mm is not None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def requested(self) -> float:
        return self.ctl.get("level") if self.live else 0.0

    def spawn(self, parent_pid: int) -> None:
        job = {"kind": self.kind, "name": self.name, "fd": self.ctl.fd, "parent_pid": parent_pid,
               "worker": self.worker, "options": self.spec.options}
        # light: the package without stressx/__init__.py (see stressx.engine.spawn)
        self.proc = subprocess.Popen(child_argv("stressx.hostload.burners", light=True),
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, pass_fds=(self.ctl.fd,))
        self.proc.stdin.write(json.dumps(job).encode())
        self.proc.stdin.close()

    def death_reason(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            sig = signal.Signals(-code).name
            how = f"was killed by {sig}" + (" (the OOM killer?)" if sig == "SIGKILL" else "")
        else:
            how = f"exited with code {code}"
        tail = self.read_stderr().strip().splitlines()
        return f"burner {self.name} (pid {self.pid}) {how}" + (f": {tail[-1]}" if tail else "")

    def read_stderr(self) -> str:
        if self.proc and self.proc.stderr and self.proc.poll() is not None:
            try:
                self.stderr += self.proc.stderr.read().decode(errors="replace")
            except (OSError, ValueError):
                pass
            self.proc.stderr.close()
        return self.stderr


class BurnerGroup(Companion):
    """Host-load burners for one run. `specs` are BurnerSpec (see stressx.hostload.burners.parse_spec);
    `echo` prints warnings (a dead burner). Usable without a coordinator: launch(), start(),
    check(), stop(), finish()."""

    name = "burners"

    def __init__(self, specs: list[BurnerSpec], echo=None):
        self.specs = list(specs)
        self.echo = echo or (lambda line: None)
        self.handles: list[BurnerHandle] = []
        self.scale = 1.0                 # backoff multiplier on every level
        self.start_ns = 0
        self.stop_ns = 0
        self.failed: str | None = None   # could not start
        self.emergency: str | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        for spec in self.specs:
            for w in range(spec.workers):
                name = f"{spec.kind}{w}" if spec.workers > 1 else spec.kind
                if any(h.name == name for h in self.handles):
                    name = f"{name}.{len(self.handles)}"
                self.handles.append(BurnerHandle(spec, name, w))

    # -- Companion -------------------------------------------------------------------------
    def prepare(self, config=None, out_dir=None) -> None:
        self.launch()

    def launch(self) -> None:
        """Start every burner process and wait until each is set up (bounded)."""
        parent = os.getpid()
        for h in self.handles:
            h.ctl = Control.create()
            h.ctl.set("level", self._level(h, 0.0))
            h.spawn(parent)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.failed is None:
            states = [h.ctl.get("state") for h in self.handles]
            if all(s == STATE["ready"] for s in states):
                return
            for h in self.handles:
                if h.proc.poll() is not None:
                    self.failed = h.lost = h.death_reason() + " before the start"
            if time.monotonic() > deadline:
                self.failed = f"burners not ready after {READY_TIMEOUT_S:.0f} s"
            time.sleep(0.005)
        self.echo(f"stressx: {self.failed}")
        self.stop()

    def start(self, start_ns: int) -> None:
        if self.failed or self._stopped:
            return
        self.start_ns = start_ns
        for h in self.handles:
            h.ctl.set("start_ns", start_ns)
        self._thread = threading.Thread(target=self._control_loop, name="stressx-burners",
                                        daemon=True)
        self._thread.start()

    def on_interval(self, t_s: float, row: dict):
        reason = self.failed or self.check()
        if reason:
            return Abort(reason, EXIT_ABORTED)
        return None

    def poll(self):
        """on_interval() between intervals: a coordinator that polls its companions ends the
        load as soon as a burner is lost."""
        return self.on_interval(0.0, {})

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.stop_ns = time.monotonic_ns()
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        for h in self.handles:
            if h.live:
                h.ctl.set("stop", 1)
        running = [h for h in self.handles if h.proc and h.proc.poll() is None]
        for sig, wait_s in ((None, STOP_WAIT_S), (signal.SIGTERM, KILL_WAIT_S),
                            (signal.SIGKILL, 5.0)):
            if sig is not None:
                for h in running:
                    if h.proc.poll() is None:
                        h.proc.send_signal(sig)
            deadline = time.monotonic() + wait_s
            for h in running:
                try:
                    h.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            running = [h for h in running if h.proc.poll() is None]
            if not running:
                break
        for h in self.handles:
            h.limited_seen |= h.ctl.get("limited") if h.live else 0
            if h.proc:
                h.read_stderr()

    def finish(self) -> dict:
        self.stop()
        elapsed_s = (self.stop_ns - self.start_ns) / 1e9 if self.start_ns else 0.0
        out = []
        for h in self.handles:
            snap = h.ctl.snapshot() if h.live else {}
            item = {"name": h.name, "kind": h.kind, "token": h.spec.token, "pid": h.pid,
                    "requested": h.spec.to_json()["level"],
                    "exit_code": h.proc.returncode if h.proc else None,
                    "lost": h.lost, "limited": limit_names(h.limited_seen)}
            if elapsed_s > 0 and snap:
                # whole periods: each one front-loads its work, so a stop mid-period would
                # otherwise read high
                span_s = -(-(self.stop_ns - self.start_ns) // PERIOD_NS) * PERIOD_NS / 1e9
                if h.kind == "cpu":
                    item["cpu_s"] = round(snap["work"] / 1e9, 6)
                    item["achieved_pct"] = round(snap["work"] / 1e9 / span_s * 100, 3)
                elif h.kind == "mem":
                    item["resident_bytes_last"] = int(snap["applied"])
                    item["churned_bytes"] = snap["work2"]
                elif h.kind == "io":
                    item["written_bytes"] = snap["work"]
                    item["read_bytes"] = snap["work2"]
                    item["achieved_bytes_per_s"] = round(snap["work"] / span_s, 1)
                    item["syncs"] = snap["syncs"]
            out.append(item)
        for h in self.handles:
            if h.ctl is not None:
                h.ctl.close()
        return {"burners": out, "elapsed_s": round(elapsed_s, 6), "scale": self.scale,
                "failed": self.failed, "emergency_stop": self.emergency}

    # -- control -----------------------------------------------------------------------------
    def _level(self, h: BurnerHandle, elapsed_s: float) -> float:
        try:
            level = float(h.spec.schedule.level_at(elapsed_s)) * self.scale
        except Exception:   # a broken schedule must not kill the run: hold the last level
            return h.requested()
        if h.kind == "cpu":
            return clamp(level, 0.0, 1.0)
        if h.kind == "mem":
            return clamp(level, 0.0, float(h.spec.options["cap_bytes"]))
        return max(0.0, level)

    def _control_loop(self) -> None:
        while not self._halt.wait(CONTROL_INTERVAL_S):
            elapsed = (time.monotonic_ns() - self.start_ns) / 1e9
            if elapsed < 0:
                continue
            for h in self.handles:
                if not h.live:
                    continue
                level = self._level(h, elapsed)
                if level != h.ctl.get("level"):
                    h.ctl.set("level", level)
                h.limited_seen |= h.ctl.get("limited")

    def backoff(self, factor: float) -> float:
        """Multiply every burner's level by `factor` (0..1) from now on; returns the scale."""
        self.scale = clamp(self.scale * factor, 0.0, 1.0)
        return self.scale

    def set_spec(self, kind: str, spec: BurnerSpec) -> int:
        """Live: every burner of `kind` follows `spec`'s level (its steps counted from the
        run's start) from its next control tick (every 50 ms); the backoff scale still applies.
        Returns how many burners changed."""
        n = 0
        with self._lock:
            for h in self.handles:
                if h.kind == kind:
                    h.spec = spec
                    n += 1
        return n

    def check(self) -> str | None:
        """The first burner that died while running (reported once), or None."""
        if self._stopped or self.emergency:
            return None
        for h in self.handles:
            if h.lost is None and h.proc and h.proc.poll() is not None \
                    and not (h.live and h.ctl.get("stop")):
                h.lost = h.death_reason()
                self.echo(f"stressx: {h.lost}")
                return h.lost
        return None

    def emergency_stop(self, reason: str) -> None:
        """Stop every burner now (safety stop), from any thread: stop flags and SIGTERM, no
        waiting; stop() later reaps them."""
        self.emergency = reason
        self._halt.set()
        for h in self.handles:
            if h.live:
                h.ctl.set("level", 0.0)
                h.ctl.set("stop", 1)
            if h.proc and h.proc.poll() is None:
                try:
                    h.proc.send_signal(signal.SIGTERM)
                except OSError:
                    pass

    def pids(self) -> dict[str, int]:
        return {h.name: h.pid for h in self.handles if h.pid}

    def peak_levels(self) -> dict[str, float | None]:
        return {h.name: schedule_peak(h.spec.schedule) for h in self.handles}
