"""The run lifecycle: spawn shards -> common start instant -> measure each second -> drain ->
final results.

The coordinator never touches a request. Each shard publishes a consistent snapshot of its
counters and histograms at the common start + k s, on its own timer, and a final one when it has
finished; the coordinator copies them as they appear, cuts interval k once every shard's snapshot
k is in (a finished shard's final snapshot stands for every later k), writes the interval rows
(Arrow, flushed) and the interval's latency histogram (latency.hlog), prints a progress line,
watches for dead shards and signals, and at the end merges the final snapshots' histograms
bucket by bucket into the summary. So every row is whole (completed = ok + errors, a histogram's
count = the sum of its buckets), and the rows add up to the summary exactly.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_ABORTED, EXIT_OK, SIGNAL_EXIT, ConfigError, StartupError
from ..load.config import RunConfig, build_request, split
from ..results.files import LAG_FIELDS, ResultsWriter
from ..results.hdr import Histogram
from ..results.summary import (CPU_BUSY_PCT, CPU_BUSY_S, CpuBusyWatch, build_summary,
                               interval_saturation, scenario_histograms, shard_cpu_pct,
                               step_histograms)
from ..system import raise_fd_limit
from . import _core
from .control import RunControl
from .job import ShardJob, ShardScenario
from .shm import Reading, ShardMemory, new_run_id
from .spawn import child_argv

STATE = _core.STATE
STOP = _core.STOP
HISTOGRAMS = _core.HISTOGRAMS
ERROR_KINDS = _core.ERROR_KINDS
DROP_REASONS = _core.DROP_REASONS
START_DELAY_NS = 30_000_000        # from "all shards ready" to the common start instant
POLL_S = 0.02
INTERVAL_NS = 1_000_000_000        # the shards' snapshots: at the common start + k s
STARTUP_TIMEOUT_S = 20.0           # process start and imports, on top of connection pre-warm
SHARD_FD_MARGIN = 32               # a shard's own descriptors besides its connections: stdio,
                                   # epoll, io_uring, eventfd, timerfd, signal pipes (~15 seen)
COORDINATOR_FD_PER_SHARD = 2       # its segment's mapping (mmap keeps a dup), spawn pipes
COORDINATOR_FD_PER_COMPANION = 4   # burner processes' pipes, the host sampler's /proc reads
COORDINATOR_FD_MARGIN = 32         # results streams and JSON files, imports
DEFAULT_MAX_CONNECTIONS = 1024     # open model: total cap when --max-connections is not given
STEP_SLOTS = 32                    # Python scenarios: named steps a shard can record (each an
                                   # HDR block in shared memory, ~370 KiB)

def default_open_pool(shard_rate: float) -> int:
    """Connections a shard opens before an open-model start when none are given: enough that
    sends rarely wait for a connect (one per 500 req/s, 16 to 256); more open on demand."""
    return int(min(256, max(16, shard_rate / 500)))


class Companion:
    """Something that runs beside the shards for the length of a run: host-load burners, the
    host-metrics sampler, sliding-window thresholds. The coordinator sets `control` (a
    RunControl: the run's config, schedule, shard pids, latest row; change_rate, abort), then
    calls, in order: prepare() before the shards start (start processes here), start(start_ns)
    at the common start instant, on_interval() after each 1 s interval row (return an Abort to
    stop the run), stop() when sending ends or the run is stopped, and finish() for a dict
    stored in the summary under `name` (and may write its own files into out_dir); `name` is
    unique among a run's companions. stop() may be called more than once. Hooks must not raise;
    a companion that cannot work says so in finish()."""

    name = "companion"
    control: "RunControl | None" = None       # set by the coordinator before prepare()
    shows_progress = False   # True: it draws the run's progress itself (the terminal dashboard),
                             # so the coordinator prints no progress line
    cumulative = False       # True: on_interval's row also holds the run so far's histograms
                             # (run_latency_histogram, run_all_latency_histogram: the shards'
                             # snapshots merged, exact min and max, as the summary's)

    def prepare(self, config: RunConfig, out_dir: Path) -> None: ...
    def start(self, start_ns: int) -> None: ...
    def on_interval(self, t_s: float, row: dict) -> "Abort | None": ...  # row["latency_histogram"], row["all_latency_histogram"], row["send_lag_histogram"]: its Histograms
    def poll(self) -> "Abort | None": ...   # every ~20 ms: emergency stops between intervals
    def stop(self) -> None: ...
    def finish(self) -> dict: return {}


@dataclass
class Abort:
    """A request to end the run early, with the reason recorded and the exit code to use
    (EXIT_THRESHOLDS for a failed sliding-window threshold, EXIT_ABORTED for a safety stop)."""
    reason: str
    exit_code: int


def effective_workers(cfg: RunConfig) -> tuple[int, str | None]:
    """The number of shards a run can keep busy, and why it is below cfg.workers (None when
    it is not): a closed-model shard needs a connection, any shard a request of the budget."""
    n, why = cfg.workers, None
    if not cfg.open_model and cfg.connections < n:      # with a users shape: its peak
        n = cfg.connections
        why = (f"a closed-model shard needs a connection of its own and "
               + (f"the pattern peaks at {n} connection(s)" if cfg.users_shape is not None
                  else f"--connections is {n}"))
    if cfg.requests is not None and cfg.requests < n:
        n, why = cfg.requests, f"each shard needs a request and --requests is {cfg.requests}"
    return max(n, 1), why


def close_summary(summary: dict, stopped, control, companions, exit_code: int) -> None:
    """The end of a summary, the same for one host's coordinator and a cluster's driver: how
    the run was stopped, the live changes, each companion's own section (stopped first), the
    exit code."""
    summary["stopped"] = stopped
    summary["changes"] = list(control.changes)
    if control.changes_dropped:
        summary["changes_dropped"] = control.changes_dropped
    for c in companions:
        c.stop()
        summary[c.name] = c.finish()
    summary["exit_code"] = exit_code


def shard_connections(cfg: RunConfig, n: int, i: int) -> tuple[int, int]:
    """(connections shard i of n opens before the start, the most it may have open). In a
    cluster run n counts every host's shards and i is the shard's global index."""
    if cfg.open_model and cfg.connections is None:
        conns = default_open_pool(cfg.shape.peak() / n)
    else:
        conns = split(cfg.connections, n, i)
    conns = max(conns, 0 if cfg.open_model else 1)
    if not cfg.open_model:
        return conns, conns       # the closed model never opens more than it runs
    total = cfg.max_connections or max(DEFAULT_MAX_CONNECTIONS, cfg.connections or 0)
    cap = max(split(total, n, i), 1)
    if cfg.connections is None:
        conns = min(conns, cap)   # the default pre-opened pool stays within the cap
    return conns, max(cap, conns)


def check_fd_limits(cfg: RunConfig, companions: int = 0,
                    shard_slice: tuple[int, int] | None = None) -> tuple[RunConfig, list[str]]:
    """Before any request: will the descriptors the run may open fit in RLIMIT_NOFILE? The
    soft limit is raised towards the hard one (shards inherit it, and raise their own too).
    An open-model cap left at its default is lowered to fit, with a note: returns the config
    to run (`cfg` itself, or a copy with the lower cap) and the notes. Anything else that
    cannot fit is a ConfigError naming the limit, the number and the option. `shard_slice`
    (first, total): this host runs shards first .. first + cfg.workers - 1 of total."""
    n = cfg.workers
    first, total = shard_slice or (0, n)
    pool, cap = shard_connections(cfg, total, first)  # the first shard has the largest share
    shard_need = cap + SHARD_FD_MARGIN
    try:
        own = len(os.listdir("/proc/self/fd"))
    except OSError:
        own = 16
    coord_need = (own + n * COORDINATOR_FD_PER_SHARD + companions * COORDINATOR_FD_PER_COMPANION
                  + COORDINATOR_FD_MARGIN)
    soft, hard = raise_fd_limit(max(shard_need, coord_need))
    notes = []
    if shard_need > soft and cfg.open_model and cfg.max_connections is None \
            and soft - SHARD_FD_MARGIN >= max(pool, 1):
        per_shard = int(soft - SHARD_FD_MARGIN)
        cfg = dataclasses.replace(cfg, max_connections=per_shard * total)
        notes.append(f"--max-connections lowered from its default {max(DEFAULT_MAX_CONNECTIONS, cfg.connections or 0)} "
                     f"to {cfg.max_connections} ({per_shard} per shard) to fit RLIMIT_NOFILE "
                     f"({soft:g} file descriptors per process)")
    elif shard_need > soft:
        if cfg.open_model and cfg.max_connections is not None and cap > pool:
            option, what = "--max-connections", f"{cfg.max_connections} connections at most"
        else:
            option, what = "--connections", f"{cfg.connections if cfg.connections is not None else pool * n} connections"
        raise ConfigError(option, f"{what} over {n} worker(s) need up to {shard_need} file "
                          f"descriptors in a shard process ({cap} connections + "
                          f"{SHARD_FD_MARGIN} of its own), over RLIMIT_NOFILE ({soft:g}, hard "
                          f"limit {hard:g}): lower {option}, add --workers, or raise the limit "
                          f"(ulimit -n)")
    if coord_need > soft:
        raise ConfigError("--workers", f"{n} worker(s) need {coord_need} file descriptors in "
                          f"the coordinator, over RLIMIT_NOFILE ({soft:g}, hard limit {hard:g}): "
                          f"lower --workers or raise the limit (ulimit -n)")
    return cfg, notes


def check_resources(config: RunConfig) -> None:
    """The checks a coordinator makes before its first request (file descriptors), on a copy
    of a planned run, so a plan stops before any of its runs rather than halfway."""
    check_fd_limits(dataclasses.replace(config, workers=effective_workers(config)[0]))


@dataclass
class Shard:
    index: int
    mem: ShardMemory
    proc: subprocess.Popen
    last: Reading | None = None    # its snapshot at the last interval cut
    pending: dict = field(default_factory=dict)   # index -> snapshot Reading, not cut yet
    final: Reading | None = None   # its final snapshot, once it has finished
    lost: str | None = None        # why it died, if it did
    cpu: CpuBusyWatch = field(default_factory=CpuBusyWatch)   # its runs above 90% of a core

    def collect(self) -> None:
        """Copy the snapshots published since the last call. A shard that exited without a
        final snapshot (it died) writes nothing any more: its live slots stand as its final
        snapshot, unless it died halfway through counting a request."""
        if self.final is not None:
            return
        exited = self.proc.poll() is not None      # before reading: then nothing comes after
        for r in self.mem.snapshots():
            self.pending[r.index] = r
            if r.final:
                self.final = r
        if self.final is None and exited:
            r = self.mem.read()
            if not r.whole():    # killed halfway through counting a request: its last snapshot
                latest = max(self.pending.values(), key=lambda x: x.index, default=self.last)
                r = Reading(latest.slots.copy())
            r.slots[_core.SLOTS["snap_index"]] = max(self.mem.get("snap_next"), 1, *self.pending)
            r.slots[_core.SLOTS["snap_taken_ns"]] = time.monotonic_ns()
            r.slots[_core.SLOTS["snap_final"]] = 1
            self.pending[r.index] = self.final = r

    def has(self, k: int) -> bool:
        return k in self.pending or (self.final is not None and self.final.index <= k)

    def missed(self, k: int) -> bool:
        """Its snapshot k was overwritten before the coordinator could copy it (it was held
        up for over a second): a later one is in."""
        return not self.has(k) and any(i > k for i in self.pending)

    def at(self, k: int) -> Reading:
        return self.pending.get(k) or self.final


def progress_line(t_s: float, row: dict, rate: float | None) -> str:
    p = f"[{t_s:6.1f}s] {row['rps']:9.0f} req/s"
    if rate:
        p += f" (sent {row['sent_rps']:.0f}/s of {rate:.0f}/s)" if rate >= 10 else \
             f" (sent {row['sent_rps']:.2f}/s of {rate:.2f}/s)"
    p += f"  ok {row['ok']}  err {row['errors']}"
    if row["latency_ms_p50"] is not None:
        p += f"  p50 {row['latency_ms_p50']:.2f}ms p99 {row['latency_ms_p99']:.2f}ms"
    if row["errors"] and row["all_latency_ms_p99"] is not None:
        p += f" (all requests p99 {row['all_latency_ms_p99']:.2f}ms)"
    if rate and row["send_lag_ms_p99"] is not None:
        p += f"  lag p99 {row['send_lag_ms_p99']:.3f}ms"
    if row["late"]:
        p += f"  late {row['late']}"
    if row.get("dropped"):
        p += f"  dropped {row['dropped']}"
    p += f"  conns {row['conn_open']}"
    if row.get("saturated"):
        p += f"  SATURATED: {row['saturation']}"
    if row.get("cpu_busy"):
        p += f"  CLIENT CPU-BOUND ({row['cpu_pct']:.0f}% of a core)"
    return p


class Coordinator:
    """Runs one load test described by a validated RunConfig, writing results to `out_dir`.
    The config is never changed: fewer workers or a lower connection cap are decided on a copy
    before the start (`self.config`), and the live target lives in `self.control.schedule`.
    Two companions of one name are refused (ValueError): their sections and files would clash."""

    def __init__(self, config: RunConfig, out_dir: str | os.PathLike, echo=None,
                 companions: list[Companion] = (), yield_cpu: bool = False,
                 shard_slice: tuple[int, int] | None = None, start_gate=None):
        """`shard_slice` (first, total): this coordinator runs shards first .. first +
        config.workers - 1 of `total` (one host's part of a cluster run: the schedule, budget
        and connections are split over all of them by interleaving); None: all of them.
        `start_gate()`: called once the shards are ready, returns the common start instant
        (CLOCK_MONOTONIC ns, at least START_DELAY_NS ahead) or None to stop before the start;
        None: start START_DELAY_NS from now."""
        self.config = config
        self.shard_slice = shard_slice
        # this host's share of the global schedule (its rows and summary judge that share)
        self.rate_share = config.workers / shard_slice[1] if shard_slice else 1.0
        self.start_gate = start_gate
        self.companions = list(companions)
        seen = set()
        for c in self.companions:
            if c.name in seen:
                raise ValueError(f"two companions named {c.name!r}: each writes its own section "
                                 f"of the summary (a run samples the host once, without being "
                                 f"given a HostSampler)")
            seen.add(c.name)
        self.yield_cpu = yield_cpu   # CLI: lower this thread's priority below the shards'
        self.start_ns = 0
        self.control = RunControl(config, self._publish_rate, self._request_abort)
        self._pending_abort: Abort | None = None
        self._abort_lock = threading.Lock()
        self.abort_code = EXIT_ABORTED
        self.out_dir = Path(out_dir)
        self.echo = echo or (lambda line: None)
        self.shards: list[Shard] = []
        self.interrupted: int | None = None
        self.aborted: str | None = None
        self.stopped: str | None = None      # a graceful stop asked through the control
        self._stop_now = False               # an emergency stop asked: STOP now, not graceful
        # interval rows flagged saturated while the run went on
        self.saturated_intervals = {"count": 0, "first_t_s": None, "reasons": []}
        self._signals_seen = 0
        self.notes: list[str] = []           # how the run was set up, for the summary
        self.workers_requested = config.workers
        self._drawn = any(c.shows_progress for c in self.companions)
        self._cumulative = any(c.cumulative for c in self.companions)
        self.final_readings: list[Reading] = []

    @property
    def n_steps(self) -> int:
        """Step blocks per shard: Python scenarios only (their step names are known only as
        the run goes; a step past these is counted in step_overflow)."""
        return STEP_SLOTS if self.config.flow else 0

    # -- public ----------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the end (or interruption) and return the summary dict; results are on disk.
        Raises ConfigError, before anything is written or started, when the run's file
        descriptors cannot fit in RLIMIT_NOFILE. An interrupt before the common start still
        writes a summary (nothing sent, `interrupted` set)."""
        if self.shard_slice is None:      # a cluster's driver decided the shards of each host
            self._plan_workers()
        self.config, notes = check_fd_limits(self.config, len(self.companions), self.shard_slice)
        for note in notes:
            self._note(note)
        # from here on the config is what runs: companions see it through their control
        self.control = RunControl(self.config, self._publish_rate, self._request_abort,
                                  self._request_control_stop, self._connection_room())
        writer = ResultsWriter(self.out_dir, scenarios=self.config.workload is not None)
        restore = self._install_signal_handlers()
        try:
            writer.manifest(self.config.to_json(), {"workers": self.config.workers})
            for c in self.companions:
                c.control = self.control
                c.prepare(self.config, self.out_dir)
            if not self.interrupted:
                self._spawn()
            if not self._wait_ready() or self.interrupted or self.control.stopping:
                return self._finish(writer, None)
            if self.yield_cpu:
                # the shards inherited our priority; from here on they come first (the
                # coordinator only reads shared memory once a second). Not in library use:
                # a thread's nice value cannot be taken back, and it is the caller's thread.
                # Likewise glibc's mmap threshold, held so that a day-long run's snapshot
                # copies and histograms do not fragment the heap (system.steady_heap).
                from ..system import steady_heap, yield_cpu
                yield_cpu(5)
                steady_heap()
            start_ns = (self.start_gate() if self.start_gate is not None
                        else time.monotonic_ns() + START_DELAY_NS)
            if start_ns is None or self.interrupted:
                return self._finish(writer, None)
            self.start_ns = self.control.start_ns = start_ns
            self.control.state = "running"
            for s in self.shards:
                s.mem.set("start_ns", start_ns)
            writer.start_latency_log(time.time() + (start_ns - time.monotonic_ns()) / 1e9)
            for c in self.companions:
                c.start(start_ns)
            self._measure(writer, start_ns)
            self.control.state = "done"
            return self._finish(writer, start_ns)
        finally:
            restore()
            for c in self.companions:
                c.stop()
            self._cleanup()
            writer.close()

    # -- phases ----------------------------------------------------------------------------
    def _note(self, note: str) -> None:
        self.notes.append(note)
        self.echo(f"stressx: {note}")

    def _plan_workers(self) -> None:
        """Fewer shards than asked when the run cannot keep them busy; said on one line and
        recorded in the summary (notes, workers_requested), never silently."""
        cfg = self.config
        self.workers_requested = cfg.workers
        n, why = effective_workers(cfg)
        if n < cfg.workers:
            self._note(f"--workers {cfg.workers} lowered to {n}: {why}")
            self.config = dataclasses.replace(cfg, workers=n)

    def _spawn(self) -> None:
        cfg = self.config
        first, n = self.shard_slice or (0, cfg.workers)
        run_id = new_run_id()
        scenarios = tuple(ShardScenario(
            request=b"" if sc.python else build_request(cfg, sc), weight=sc.weight, expect=tuple(sc.expect_status),
            band_min_us=-1 if sc.baseline_min_ms is None else int(sc.baseline_min_ms * 1000),
            band_max_us=-1 if sc.baseline_max_ms is None else int(sc.baseline_max_ms * 1000),
        ) for sc in cfg.scenarios)
        for i in range(first, first + cfg.workers):
            if self.interrupted:
                break            # interrupted while starting: start no more shards
            mem = ShardMemory.create(run_id, i, len(scenarios), self.n_steps)
            conns, cap = shard_connections(cfg, n, i)
            job = ShardJob(
                segment=mem.path, index=i, count=n, coordinator_pid=os.getpid(),
                scheme=cfg.target.scheme, host=cfg.target.host, address=cfg.target.address,
                port=cfg.target.port, scenarios=scenarios, insecure=cfg.insecure,
                ca_file=cfg.ca_file,
                segments=cfg.shape.for_schedule() if cfg.shape else None,
                users_segments=cfg.users_shape.for_schedule() if cfg.users_shape else None,
                budget=split(cfg.requests, n, i) if cfg.requests is not None else -1,
                duration_ns=int(cfg.duration * 1e9) if cfg.duration is not None else -1,
                timeout_ns=int(cfg.timeout * 1e9), grace_ns=int(cfg.grace * 1e9),
                connections=conns, max_connections=cap, fd_margin=SHARD_FD_MARGIN,
                timer_slack_ns=int(round(cfg.timer_slack * 1e9)),
                flow=cfg.flow, flow_scenarios=tuple(sc.name for sc in cfg.scenarios) if cfg.flow else ())
            proc = subprocess.Popen(child_argv("stressx.engine.shard"), stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL)
            self.shards.append(Shard(i, mem, proc))
            self.control.shard_pids[f"shard{i}"] = proc.pid
            proc.stdin.write(job.dumps())
            proc.stdin.close()

    def _wait_ready(self) -> bool:
        """True once every shard is ready; False if the run was interrupted first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S + self.config.timeout
        while True:
            if self.interrupted or self.control.stopping:
                return False         # before a shard's exit: Ctrl-C (a stop) reaches them too
            states = [s.mem.get("state") for s in self.shards]
            if all(st == STATE["ready"] for st in states):
                break
            for s in self.shards:
                code = s.proc.poll()
                if code is not None:
                    raise StartupError(f"shard {s.index} exited with code {code} before the start")
            if time.monotonic() > deadline:
                raise StartupError(f"shards not ready after {STARTUP_TIMEOUT_S + self.config.timeout:.0f} s")
            time.sleep(0.005)
        for s in self.shards:
            s.mem.unlink()  # mapped by both sides now: the name is no longer needed
        return True

    def _measure(self, writer: ResultsWriter, start_ns: int) -> None:
        """Cut an interval row as soon as every shard's snapshot for it is in, until every
        shard's final snapshot has been cut."""
        zero = Reading.zero(len(self.config.scenarios), self.n_steps)
        for s in self.shards:
            s.last = zero                 # nothing is counted before the start instant
        self._cut_k, self._cut_ns = 0, start_ns
        while True:
            self._check_shards()
            self._abort(self._take_pending_abort())
            for c in self.companions:
                self._abort(c.poll())
            for s in self.shards:
                s.collect()
            while (k := self._next_cut()) is not None:
                self._interval(writer, start_ns, k)
            if all(s.final is not None and s.final.index <= self._cut_k for s in self.shards):
                return
            time.sleep(POLL_S)

    def _next_cut(self) -> int | None:
        """The next boundary every shard has a snapshot for. One some shard's snapshot is
        missing for for good (see Shard.missed) is passed over: the row spans it."""
        for k in sorted({k for s in self.shards for k in s.pending if k > self._cut_k}):
            if all(s.has(k) for s in self.shards):
                return k
            if not any(s.missed(k) for s in self.shards):
                return None               # a shard has not got there yet
        return None

    def _check_shards(self) -> bool:
        """Notice dead shards; True once every shard has finished (or died)."""
        finished = True
        for s in self.shards:
            state = s.mem.get("state")
            code = s.proc.poll()
            if code is None:
                if state not in (STATE["done"], STATE["failed"]):
                    finished = False
                continue
            if state != STATE["done"] and s.lost is None:
                s.lost = f"shard {s.index} (pid {s.proc.pid}) died with exit code {code}"
                self.echo(f"stressx: {s.lost}; stopping the other shards, keeping their data")
                if self.aborted is None:
                    self.aborted = s.lost
                self._request_stop(STOP["graceful"])
        return finished

    def _interval(self, writer: ResultsWriter, start_ns: int, k: int) -> None:
        """Interval row k: from every shard's snapshot at the last cut to its snapshot k. It
        ends at start + k s, or, for the last row (every shard final), when the last shard
        finished."""
        readings = [(s.last, s.at(k)) for s in self.shards]   # one snapshot pair per shard
        from_ns = self._cut_ns
        to_ns = start_ns + k * INTERVAL_NS
        if all(cur.final for _, cur in readings):
            to_ns = max(from_ns, max(cur.taken_ns for _, cur in readings))
        span_s = max((to_ns - from_ns) / 1e9, 1e-9)
        t_s = (to_ns - start_ns) / 1e9
        shard_rows, merged_counts, merged_hist = [], None, {}
        scenario_rows = self._scenario_rows(readings, t_s, span_s) if self.config.workload else []
        busiest, busy = None, False
        for s, (prev, cur) in zip(self.shards, readings):
            row, hists = interval_row(prev, cur, span_s, t_s,
                                      self._rate(t_s - span_s, t_s),
                                      self._slack_ms())
            # CPU from the snapshots themselves: each holds the shard's CPU at its instant
            row["cpu_pct"] = None if cur is prev else shard_cpu_pct(
                prev["cpu_ns"] or cur["cpu_start_ns"], cur["cpu_ns"],
                prev.taken_ns or start_ns, cur.taken_ns)
            was_busy = s.cpu.from_t_s is not None
            row["cpu_busy"] = s.cpu.add(t_s, span_s, row["cpu_pct"])
            if row["cpu_busy"] and not was_busy:
                self.echo(f"stressx: warning: shard {s.index} has used over {CPU_BUSY_PCT:g}% of "
                          f"its CPU core for {CPU_BUSY_S:g} s (since t={s.cpu.from_t_s:g}s): its "
                          f"latencies are the client's as much as the target's; add workers")
            if row["cpu_pct"] is not None:
                busiest = max(busiest or 0.0, row["cpu_pct"])
            busy = busy or row["cpu_busy"]
            s.last = cur
            s.pending = {i: r for i, r in s.pending.items() if i > k}
            shard_rows.append(dict(row, shard=s.index))
            merged_counts = row if merged_counts is None else add_counts(merged_counts, row)
            for name, h in hists.items():
                if name in merged_hist:
                    merged_hist[name] += h
                else:
                    merged_hist[name] = h.copy()
        merged = finish_row(merged_counts, merged_hist, span_s, self._slack_ms())
        merged["cpu_pct"], merged["cpu_busy"] = busiest, busy   # the busiest shard's; any busy
        self._cut_k, self._cut_ns = k, to_ns
        if merged["saturated"]:
            sat = self.saturated_intervals
            sat["count"] += 1
            if sat["first_t_s"] is None:
                sat["first_t_s"] = merged["t_s"]
            for reason in merged["saturation"].split(", "):
                if reason not in sat["reasons"]:
                    sat["reasons"].append(reason)
        self.control.latest = merged
        writer.intervals([merged], shard_rows, scenario_rows)
        writer.latency_interval((from_ns - start_ns) / 1e9, span_s, merged_hist["latency"])
        writer.latency_interval((from_ns - start_ns) / 1e9, span_s, merged_hist["all_latency"],
                                "all_latency")
        if self.config.progress and span_s >= 0.5 and not self._drawn:  # not the last sliver
            self.echo(progress_line(t_s, merged, merged["rate_target"]))
        given = dict(merged, latency_histogram=merged_hist["latency"],
                     all_latency_histogram=merged_hist["all_latency"],
                     send_lag_histogram=merged_hist["send_lag"], interval_index=k)
        if self._cumulative:
            for name in ("latency", "all_latency"):
                run = Histogram.empty()
                for _, cur in readings:
                    run.add(cur.histogram(name))
                given[f"run_{name}_histogram"] = run
        for c in self.companions:   # with the interval's histogram: exact window percentiles
            self._abort(c.on_interval(t_s, dict(given)))

    def _slack_ms(self) -> float:
        return self.config.timer_slack * 1000 if self.config.open_model else 0.0

    def _rate(self, t0: float, t1: float) -> float | None:
        """The mean target rate of this coordinator's shards between two instants."""
        rate = self.control.schedule.mean_rate(t0, t1)
        return rate * self.rate_share if rate is not None else None

    def _scenario_rows(self, readings: list, t_s: float, span_s: float) -> list[dict]:
        """Per-scenario counts and latency of the interval, merged over shards, from the
        (previous, current) reading of each shard."""
        rows = []
        for i, sc in enumerate(self.config.scenarios):
            row = {"t_s": round(t_s, 6), "interval_s": round(span_s, 6), "scenario": sc.name}
            for key, slot in (("sent", "sent"), ("ok", "ok"), ("errors", "errors"),
                              ("violations", "violations")):
                row[key] = sum(cur.scenario(i)[slot] - prev.scenario(i)[slot] for prev, cur in readings)
            for prefix, which in (("latency_ms", "latency"), ("all_latency_ms", "all_latency")):
                h = Histogram.empty()
                for prev, cur in readings:
                    h += cur.scenario_histogram(i, which) - prev.scenario_histogram(i, which)
                for key, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)):
                    row[f"{prefix}_{key}"] = round(h.value_at_percentile(p) / 1000, 3) if h.total else None
            rows.append(row)
        if self.config.flow:
            rows += self._step_rows(readings, t_s, span_s)
        return rows

    def _step_rows(self, readings: list, t_s: float, span_s: float) -> list[dict]:
        """Python scenarios: a row per named step, `scenario` "step:NAME", merged by name."""
        acc: dict[str, dict] = {}
        for prev, cur in readings:
            before = {name: j for j, name in enumerate(prev.step_names())}
            for j, name in enumerate(cur.step_names()):
                a = acc.setdefault(name, {"sent": 0, "ok": 0, "errors": 0, "violations": 0,
                                          "latency": Histogram.empty(),
                                          "all_latency": Histogram.empty()})
                c, pj = cur.step(j), before.get(name)
                p = prev.step(pj) if pj is not None else None
                for key in ("sent", "ok", "errors"):
                    a[key] += c[key] - (p[key] if p else 0)
                for which in ("latency", "all_latency"):
                    h = cur.step_histogram(j, which)
                    a[which] += (h - prev.step_histogram(pj, which)) if pj is not None else h
        rows = []
        for name, a in sorted(acc.items()):
            row = {"t_s": round(t_s, 6), "interval_s": round(span_s, 6), "scenario": f"step:{name}"}
            row.update({k: a[k] for k in ("sent", "ok", "errors", "violations")})
            for prefix, which in (("latency_ms", "latency"), ("all_latency_ms", "all_latency")):
                h = a[which]
                for key, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)):
                    row[f"{prefix}_{key}"] = round(h.value_at_percentile(p) / 1000, 3) if h.total else None
            rows.append(row)
        return rows

    def _connection_room(self) -> int:
        """Closed model: the most connections a live change may ask, all shards together (each
        shard's descriptors must fit in RLIMIT_NOFILE, as check_fd_limits made sure at the
        start)."""
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        per_shard = 1_000_000 if soft == resource.RLIM_INFINITY else max(soft - SHARD_FD_MARGIN, 1)
        return min(1_000_000, per_shard * self.config.workers)

    def _request_control_stop(self, reason: str, now: bool) -> None:
        """RunControl.stop(), from any thread. Graceful: recorded as `stopped` (the exit code
        is the checks'); now: an emergency stop, recorded as `aborted` (exit 4), every shard
        told to stop at once here (not by the measuring loop: within the shards' 10 ms sweep)."""
        with self._abort_lock:
            if now:
                self._stop_now = True
                if self._pending_abort is None and self.aborted is None:
                    self._pending_abort = Abort(reason, EXIT_ABORTED)
            elif self.stopped is None and self.aborted is None:
                self.stopped = reason
        self.control.state = "stopping"
        self.control.stopping = self.control.stopping or reason
        self._request_stop(STOP["now"] if now else STOP["graceful"])

    def _request_abort(self, reason: str, exit_code: int) -> None:
        """RunControl.abort(), from any thread: acted on by the measuring loop (within ~20 ms)."""
        with self._abort_lock:
            if self._pending_abort is None:
                self._pending_abort = Abort(reason, exit_code)

    def _take_pending_abort(self) -> "Abort | None":
        with self._abort_lock:
            abort, self._pending_abort = self._pending_abort, None
            return abort

    def _abort(self, abort: "Abort | None") -> None:
        """End the run early for a companion (failed window threshold, safety stop)."""
        if abort is not None and self.aborted is None:
            self.aborted, self.abort_code = abort.reason, abort.exit_code
            self.control.state = "stopping"
            self.control.stopping = self.control.stopping or abort.reason
            self.echo(f"stressx: stopping: {abort.reason}")
            self._request_stop(STOP["now"] if self._stop_now else STOP["graceful"])

    def _finish(self, writer: ResultsWriter, start_ns: int | None) -> dict:
        """The summary and final files; start_ns None: stopped before the common start."""
        if start_ns is None:
            self._request_stop(STOP["now"])
        # the snapshots the last interval ends on; before the start nothing was counted and
        # the live slots (connections opened) are read as they are
        readings = [s.final if s.final is not None else s.mem.read() for s in self.shards]
        self.final_readings = readings       # what the summary counts (a cluster agent sends them)
        per_shard = [{name: r.histogram(name) for name in HISTOGRAMS} for r in readings]
        merged = {name: Histogram.empty() for name in HISTOGRAMS}
        for hs in per_shard:
            for name, h in hs.items():
                merged[name] += h
        # the send window ends where the shards' sending did (the duration's end, the stop, or
        # a spent budget's last write); the run window at the later of that and the last
        # completion, so that responses after the end count over the time they took
        ends = [r["end_ns"] for r in readings if r["end_ns"] > 0]
        send_end_ns = max(ends) if ends else time.monotonic_ns()
        run_end_ns = max([send_end_ns] + [r["last_done_ns"] for r in readings])
        started = start_ns is not None
        shards = [{"index": s.index, "pid": s.proc.pid, "exit_code": s.proc.returncode,
                   "lost": s.lost, "sent": r["sent"], "ok": r["ok"], "errors": r["errors"],
                   # from the start instant to its final snapshot, % of one core
                   "cpu_pct": shard_cpu_pct(r["cpu_start_ns"], r["cpu_ns"], start_ns,
                                            r.taken_ns) if started else None,
                   "cpu_busy_from_t_s": s.cpu.from_t_s}
                  for s, r in zip(self.shards, readings)]
        if self.config.workload is not None:
            n = len(self.config.scenarios)
            for sc, h, h_all in zip(self.config.scenarios, scenario_histograms(readings, n),
                                    scenario_histograms(readings, n, "all_latency")):
                merged[f"scenario:{sc.name}"] = h
                merged[f"scenario_all:{sc.name}"] = h_all
        if self.config.flow:
            for which, prefix in (("latency", "step"), ("all_latency", "step_all")):
                for name, h in step_histograms(readings, which).items():
                    merged[f"{prefix}:{name}"] = h
        interrupted = signal.Signals(self.interrupted).name if self.interrupted else None
        summary = build_summary(self.config, readings, merged,
                                send_window_s=(send_end_ns - start_ns) / 1e9 if started else 0.0,
                                run_window_s=(run_end_ns - start_ns) / 1e9 if started else 0.0,
                                shards=shards, interrupted=interrupted, aborted=self.aborted,
                                started=started, workers_requested=self.workers_requested,
                                notes=self.notes, saturated_intervals=self.saturated_intervals,
                                shape=self.control.schedule.shape, rate_share=self.rate_share)
        close_summary(summary, self.stopped, self.control, self.companions, self.exit_code())
        writer.histograms(merged, per_shard)
        writer.summary(summary)
        return summary

    def exit_code(self) -> int:
        if self.interrupted:
            return SIGNAL_EXIT.get(self.interrupted, 128 + self.interrupted)
        if self.aborted:
            return self.abort_code
        return EXIT_OK

    def change_rate(self, rate: float, delay_s: float = 0.02) -> None:
        """RunControl.change_rate(rate, delay_s=...) for whoever holds the coordinator."""
        self.control.change_rate(rate, delay_s=delay_s)

    def _publish_rate(self, rate: float, at_ns: int) -> None:
        """A rate change in every shard at the same instant, under each shard's sequence lock
        (rate and instant together)."""
        for s in self.shards:
            _core.publish_rate_change(s.mem.slots, rate, at_ns)

    # -- stopping --------------------------------------------------------------------------
    def _request_stop(self, how: int) -> None:
        for s in self.shards:
            if s.mem.slots is not None and s.mem.get("stop_request") < how:
                s.mem.set("stop_request", how)

    def _on_signal(self, signum, frame) -> None:
        self._signals_seen += 1
        if self._signals_seen == 1:
            self.interrupted = signum
            self.echo(f"stressx: {signal.Signals(signum).name}: stopping, draining in-flight "
                      f"requests (again to quit at once)")
            self._request_stop(STOP["graceful"])
            return
        # second signal: leave now; every finished interval is already flushed to disk
        self._request_stop(STOP["now"])
        for s in self.shards:
            if s.proc.poll() is None:
                s.proc.kill()
        for s in self.shards:
            s.mem.unlink()
        os._exit(SIGNAL_EXIT.get(signum, 128 + signum))

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNAL_EXIT}
        return lambda: [signal.signal(sig, h) for sig, h in previous.items()]

    def _cleanup(self) -> None:
        for s in self.shards:
            if s.proc.poll() is None:
                s.mem.set("stop_request", STOP["now"])
        deadline = time.monotonic() + 2.0
        for s in self.shards:
            try:
                s.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
        for s in self.shards:
            s.mem.close()


# -- interval rows ---------------------------------------------------------------------------
_COUNTER_COLUMNS = ("sent", "completed", "ok", "errors", "late", "dropped", "bytes_in", "bytes_out",
                    "due", "late_at_cap", "connect_attempts")


def interval_row(prev, cur, span_s: float, t_s: float, rate: float | None, slack_ms: float = 0.0):
    """One shard's interval: counter deltas and histogram deltas between two readings."""
    row = {"t_s": round(t_s, 6), "interval_s": round(span_s, 6), "rate_target": rate}
    for name in _COUNTER_COLUMNS:
        row[name] = cur[name] - prev[name]
    row["conn_open"] = cur["conn_open"]
    row["inflight"] = cur["inflight"]
    row["users"] = cur["users"]
    row["queued"] = cur["queued"]
    dropped = cur.block("drop_reasons", len(DROP_REASONS)) - prev.block("drop_reasons", len(DROP_REASONS))
    for i, reason in enumerate(DROP_REASONS):
        row[f"dropped_{reason}"] = int(dropped[i])
    row["connect_failures"] = int((cur.block("connect_fail_kinds", len(ERROR_KINDS))
                                   - prev.block("connect_fail_kinds", len(ERROR_KINDS))).sum())
    errs = cur.errors() - prev.errors()
    for i, kind in enumerate(ERROR_KINDS):
        row[f"errors_{kind}"] = int(errs[i])
    status = cur.status() - prev.status()
    row["status"] = {int(c): int(status[c]) for c in status.nonzero()[0]}
    hists = {name: cur.histogram(name) - prev.histogram(name)
             for name in ("latency", "all_latency", "send_lag")}
    return finish_row(row, hists, span_s, slack_ms), hists


def add_counts(a: dict, b: dict) -> dict:
    """Two interval rows' counts added (gauges too: connections open over shards or hosts);
    the figures derived from them are finish_row()'s."""
    out = dict(a)
    for key, value in b.items():
        if key in ("t_s", "interval_s", "rate_target", "shard", "saturated", "saturation",
                   "cpu_pct", "cpu_busy") or key.startswith(("latency_ms", "all_latency_ms", "send_lag_ms", "rps", "sent_rps")):
            continue
        if key == "status":
            merged = dict(a["status"])
            for code, n in value.items():
                merged[code] = merged.get(code, 0) + n
            out["status"] = merged
        else:
            out[key] = a[key] + value
    return out


def finish_row(row: dict, hists: dict, span_s: float, slack_ms: float = 0.0) -> dict:
    row = dict(row)
    row["rps"] = round(row["completed"] / span_s, 3)
    row["sent_rps"] = round(row["sent"] / span_s, 3)
    for prefix, lat in (("latency_ms", hists["latency"]), ("all_latency_ms", hists["all_latency"])):
        for key, p in (("min", 0.0), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9),
                       ("max", 100.0)):
            row[f"{prefix}_{key}"] = round(lat.value_at_percentile(p) / 1000, 3) if lat.total else None
        row[f"{prefix}_mean"] = round(lat.mean() / 1000, 3) if lat.total else None
    lag = hists["send_lag"]
    for key, p in zip(LAG_FIELDS, (50.0, 99.0, 100.0)):
        row[f"send_lag_ms_{key}"] = round(lag.value_at_percentile(p) / 1000, 3) if lag.total else None
    reasons = interval_saturation(row, lag, slack_ms)   # the second it happens, with why
    row["saturated"] = bool(reasons)
    row["saturation"] = ", ".join(reasons) if reasons else None
    return row
