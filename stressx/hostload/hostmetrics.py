"""Host metrics on the run's timeline: a sampler every 100 ms into ``host.arrows``.

Each row is one sample, timestamped in seconds since the run's start instant (the same `t_s`
axis as ``intervals.arrows``). Columns (deltas are over `interval_s`, since the last sample):

  =====================  =========================================================================
  t_s, interval_s        sample time since the start instant; time since the previous sample
  cpu_pct                host CPU busy %, all cores (100 = every core busy)
  cpu_core_pct           list: busy % per core
  load1, load5, load15   load average
  mem_total_bytes        MemTotal
  mem_available_bytes    MemAvailable
  mem_used_pct           (total - available) / total
  swap_used_bytes        swap in use; swap_in_bytes / swap_out_bytes: swapped in/out (delta)
  disk_*                 read/write bytes and operations, all disks (delta)
  net_sent/recv_bytes    all interfaces, loopback included (delta)
  shards_cpu_pct         the shard processes' own CPU (100 = one core), from /proc/PID/schedstat
  burners_cpu_pct        the burner processes' own CPU, likewise
  proc_cpu_pct           map: process ("shard0", "cpu0", "mem", "io", ...) -> its CPU %
  burner_requested       map: burner -> requested level (cpu: % of a core, mem: bytes, io: B/s)
  burner_achieved        map: burner -> achieved over the interval, same units (mem: resident
                         size; io: bytes written per second by the process)
  temp_c_max, temps_c    hottest sensor and every sensor (deg C); null where none is exposed
  =====================  =========================================================================

The sampler is a thread of the coordinator, not a process: it needs the burner handles (pids,
requested levels in their control blocks) and the safety monitor's callbacks, both in this
process; a thread dies with the coordinator, so it can never be left behind; and its work (a
dozen /proc reads and one small Arrow batch a second) costs about 1% of one core. Samples are
due on an absolute 100 ms grid from the start instant, offset by 90 ms (t_s = 0.09, 0.19, ...),
so lateness never accumulates, and a sample falls late in the burners' periods: they work at
the start of each 100 ms period and are idle after it, so a sample a few ms late neither splits
an IO burst nor moves CPU busy time between windows; rows are
written and flushed once a second, as the interval streams are, so a killed run leaves every
finished second readable.

finish() reports host extremes and, per burner, achieved vs requested level over 1 s windows
(CPU from each burner process's own CPU time in /proc/PID/schedstat, to the nanosecond:
100 ms host samples move in ~10-point steps and cannot judge a burner).

Nothing the sampler keeps grows with the run's length: the samples go to host.arrows a second
at a time, and finish() is built from running aggregates (counts, sums, minima and maxima,
updated at each sample) and, per burner, 1 s windows closed as their last sample arrives (the
first MAX_PER_SECOND of them kept for the summary). A day at 100 ms is 864,000 samples; kept
as rows they would be some 1.4 GB.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa

from ..engine import _core
from ..engine.coordinator import Companion
from ..results.files import FORMAT_VERSION, read_intervals
from ..system import yield_cpu

HOST_FILE = "host.arrows"
SAMPLE_INTERVAL_S = 0.1
FLUSH_EVERY = 10          # samples per record batch (1 s)
SAMPLE_PHASE_S = 0.09     # samples fall late in the burners' 100 ms periods (see below)
SETTLE_S = 2.0            # burner windows before this are not "steady"
MAX_PER_SECOND = 600      # per-second readings kept in the summary (longer runs: stats only)


def host_schema() -> pa.Schema:
    i64, f64 = pa.int64(), pa.float64()
    fields = [("t_s", f64), ("interval_s", f64), ("cpu_pct", f64),
              ("cpu_core_pct", pa.list_(pa.float32())),
              ("load1", f64), ("load5", f64), ("load15", f64),
              ("mem_total_bytes", i64), ("mem_available_bytes", i64), ("mem_used_pct", f64),
              ("swap_used_bytes", i64), ("swap_in_bytes", i64), ("swap_out_bytes", i64),
              ("disk_read_bytes", i64), ("disk_write_bytes", i64),
              ("disk_read_ops", i64), ("disk_write_ops", i64),
              ("net_sent_bytes", i64), ("net_recv_bytes", i64),
              ("shards_cpu_pct", f64), ("burners_cpu_pct", f64),
              ("proc_cpu_pct", pa.map_(pa.string(), f64)),
              ("burner_requested", pa.map_(pa.string(), f64)),
              ("burner_achieved", pa.map_(pa.string(), f64)),
              ("temp_c_max", f64), ("temps_c", pa.map_(pa.string(), f64))]
    return pa.schema([pa.field(n, t) for n, t in fields],
                     metadata={"stressx_format_version": str(FORMAT_VERSION),
                               "sample_interval_s": str(SAMPLE_INTERVAL_S)})


def read_host(path: str | os.PathLike) -> pa.Table:
    """host.arrows of a results directory (or the file itself), also one cut short by a kill."""
    p = Path(path)
    return read_intervals(p / HOST_FILE if p.is_dir() else p)


def process_cpu_ns(pid: int) -> int | None:
    """A process's CPU time so far (all threads, ns) from its CPU-time clock
    (clock_getcpuclockid), else summed from /proc/PID/task/*/schedstat; None if it is gone."""
    ns = _core.process_cpu_ns_of(pid)
    if ns >= 0:
        return ns
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _busy(t) -> float:
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


class RunningStat:
    """Count, sum, min and max of a series seen one value at a time (None values skipped):
    the summary's mean/min/max without keeping the series."""

    __slots__ = ("n", "sum", "min", "max")

    def __init__(self):
        self.n, self.sum, self.min, self.max = 0, 0, None, None

    def add(self, value) -> None:
        if value is None:
            return
        self.n += 1
        self.sum += value
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def stats(self) -> dict | None:
        """{mean, min, max} rounded to 3 places, as the summary shows them; None if empty."""
        if not self.n:
            return None
        return {"mean": round(self.sum / self.n, 3), "min": round(self.min, 3),
                "max": round(self.max, 3)}


#: the sample columns finish() reports on, each folded into a RunningStat as it is sampled
_AGGREGATES = ("cpu_pct", "mem_used_pct", "mem_available_bytes", "swap_used_bytes",
               "swap_out_bytes", "disk_read_bytes", "disk_write_bytes", "net_sent_bytes",
               "net_recv_bytes", "load1", "temp_c_max", "shards_cpu_pct", "burners_cpu_pct")


class BurnerWindows:
    """One burner's achieved vs requested level over 1 s windows, built as its samples
    arrive: a window runs from one edge sample (every `step`-th of the burner's samples, on
    the 100 ms start grid) to the next and holds the samples after the first edge up to and
    including the second. Each sample is (ns, requested level, process CPU ns, work counter,
    resident bytes). Only the open window's sums and the first `keep` windows' readings are
    kept, so a day-long run costs what a minute does."""

    def __init__(self, kind: str, start_ns: int, step: int, keep: int = MAX_PER_SECOND):
        self.kind, self.start_ns, self.step, self.keep = kind, start_ns, max(1, step), keep
        self.samples = 0
        self.edge = None                     # the open window's first edge sample
        self._open()
        # over every window, and over the steady ones: [count, sum want, sum got, sum err, max |err|]
        self.all = [0, 0.0, 0.0, 0.0, 0.0]
        self.steady = [0, 0.0, 0.0, 0.0, 0.0]
        self.per_second: list | None = []    # None once there are more than `keep` windows
        self.reached_ns = None               # mem: first sample at >= 99% of its level

    def _open(self) -> None:
        self.n = 0                           # samples in the open window
        self.req_sum, self.req_min, self.req_max = 0.0, None, None
        self.rss_n, self.rss_sum = 0, 0.0

    def add(self, point: tuple) -> None:
        ns, level, cpu_ns, work, rss = point
        if (self.kind == "mem" and self.reached_ns is None and rss is not None and level > 0
                and rss >= 0.99 * level):
            self.reached_ns = ns
        if self.edge is not None:
            self.n += 1
            self.req_sum += level
            self.req_min = level if self.req_min is None else min(self.req_min, level)
            self.req_max = level if self.req_max is None else max(self.req_max, level)
            if rss is not None:
                self.rss_n += 1
                self.rss_sum += rss
        if self.samples % self.step == 0:    # an edge: it closes the open window
            if self.edge is not None:
                self._close(self.edge, point)
            self.edge = point
            self._open()
        self.samples += 1

    def _close(self, a: tuple, b: tuple) -> None:
        span = (b[0] - a[0]) / 1e9
        t_end = (b[0] - self.start_ns) / 1e9
        if self.kind == "cpu":
            if a[2] is None or b[2] is None:
                return
            got, want = 100.0 * (b[2] - a[2]) / (b[0] - a[0]), 100.0 * self.req_sum / self.n
            err = got - want                                     # points
        elif self.kind == "mem":
            if not self.rss_n:
                return
            got, want = self.rss_sum / self.rss_n, self.req_sum / self.n
            err = 100.0 * (got - want) / want if want else 0.0  # % of requested
        else:
            got, want = (b[3] - a[3]) / span, self.req_sum / self.n
            err = 100.0 * (got - want) / want if want else 0.0
        steady = ((t_end - span >= SETTLE_S - 1e-6)
                  and self.req_max - self.req_min <= 1e-9 * max(1.0, abs(self.req_max)))
        for acc in (self.all, self.steady) if steady else (self.all,):
            acc[0] += 1
            acc[1] += want
            acc[2] += got
            acc[3] += err
            acc[4] = max(acc[4], abs(err))
        if self.per_second is not None:
            if self.all[0] > self.keep:
                self.per_second = None
            else:
                self.per_second.append([round(t_end, 3), round(want, 3), round(got, 3)])

    def report(self) -> dict:
        report = {"kind": self.kind, "unit": {"cpu": "% of a core", "mem": "bytes",
                                              "io": "bytes/s"}.get(self.kind, "")}
        if not self.all[0]:
            return report
        use = self.steady if self.steady[0] else self.all
        n = use[0]
        report.update({
            "requested_mean": round(use[1] / n, 3),
            "achieved_mean": round(use[2] / n, 3),
            "error_mean": round(use[3] / n, 3),
            "error_max_abs": round(use[4], 3),
            "error_unit": "points" if self.kind == "cpu" else "% of requested",
            "windows": self.all[0], "steady_windows": self.steady[0],
        })
        if self.kind == "mem":
            report["reached_99pct_s"] = (round((self.reached_ns - self.start_ns) / 1e9, 3)
                                         if self.reached_ns is not None else None)
        if self.per_second is not None:
            report["per_second"] = self.per_second
        return report


SAMPLER_NICE = 5     # this thread yields to the load shards when they share a core


class HostSampler(Companion):
    """Samples the host every `interval_s` into out_dir/host.arrows. `burners` is the run's
    BurnerGroup (or None). Listeners added with add_listener(fn) get each sample dict, in the
    sampler thread (the safety monitor watches host limits this way)."""

    name = "host"

    def __init__(self, burners=None, interval_s: float = SAMPLE_INTERVAL_S,
                 flush_every: int = FLUSH_EVERY, clock=time.monotonic_ns):
        self.burners = burners
        self.clock = clock                 # monotonic ns; a test drives a fake one
        self.interval_ns = int(interval_s * 1e9)
        self.phase_ns = min(int(SAMPLE_PHASE_S * 1e9), self.interval_ns * 9 // 10)
        self.flush_every = flush_every
        self.listeners = []
        self.start_ns = 0
        self.samples = 0
        self.rows: list[dict] = []         # samples not yet flushed (at most flush_every)
        self.last_row: dict | None = None  # the latest sample (progress lines)
        self.aggregates = {key: RunningStat() for key in _AGGREGATES}
        self.burner_windows: dict[str, BurnerWindows] = {}
        self.shard_pids: dict[str, int] = {}
        self.error: str | None = None
        self._sink = self._writer = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._prev = None
        self._sensors = False
        self._finished = None
        self.path = None

    def add_listener(self, fn) -> None:
        self.listeners.append(fn)

    # -- Companion -------------------------------------------------------------------------
    def prepare(self, config=None, out_dir=None) -> None:
        if out_dir is not None:
            self.open(out_dir)

    def open(self, out_dir) -> None:
        self.path = Path(out_dir) / HOST_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = host_schema()
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)

    def start(self, start_ns: int) -> None:
        self.start_ns = start_ns
        # the shard processes as the coordinator started them (none in `stressx burn`)
        self.shard_pids = dict(self.control.shard_pids) if self.control is not None else {}
        try:
            self._sensors = bool(psutil.sensors_temperatures())
        except (AttributeError, OSError):
            self._sensors = False
        self._prev = self._read()
        self._thread = threading.Thread(target=self._loop, name="stressx-host", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        with self._lock:
            self._flush()
            if self._writer is not None:
                try:
                    self._writer.close()
                finally:
                    self._sink.close()
                self._writer = self._sink = None

    def finish(self) -> dict:
        self.stop()
        if self._finished is None:
            self._finished = self._summary()
        return self._finished

    # -- sampling --------------------------------------------------------------------------
    def _handles(self):
        return self.burners.handles if self.burners is not None else []

    def _read(self) -> dict:
        now = self.clock()
        r = {"ns": now, "cpu": psutil.cpu_times(percpu=True)}
        r["vm"] = psutil.virtual_memory()
        r["swap"] = psutil.swap_memory()
        r["disk"] = psutil.disk_io_counters(perdisk=False, nowrap=True)
        r["net"] = psutil.net_io_counters(nowrap=True)
        r["procs"] = {name: process_cpu_ns(pid) for name, pid in self.shard_pids.items()}
        for h in self._handles():
            if h.pid:
                r["procs"][h.name] = process_cpu_ns(h.pid)
        r["burners"] = {}
        for h in self._handles():
            if h.pid and h.live:
                r["burners"][h.name] = (h.kind, h.ctl.get("level"), h.ctl.get("work"),
                                        _rss(h.pid) if h.kind == "mem" else None)
        return r

    def _sample(self) -> dict:
        cur, prev = self._read(), self._prev
        self._prev = cur
        dt_ns = max(cur["ns"] - prev["ns"], 1)
        dt = dt_ns / 1e9
        cores = []
        for a, b in zip(prev["cpu"], cur["cpu"]):
            total = sum(b) - sum(a)
            cores.append(round(100.0 * (_busy(b) - _busy(a)) / total, 2) if total > 0 else 0.0)
        load = os.getloadavg()
        vm, swap = cur["vm"], cur["swap"]

        def delta(key, attr):
            a, b = prev[key], cur[key]
            return int(getattr(b, attr) - getattr(a, attr)) if a is not None and b is not None else None

        procs = {}
        for name, ns in cur["procs"].items():
            before = prev["procs"].get(name)
            if ns is not None and before is not None:
                procs[name] = round(100.0 * (ns - before) / dt_ns, 3)
        requested, achieved = {}, {}
        for name, (kind, level, work, rss) in cur["burners"].items():
            before = prev["burners"].get(name)
            if kind == "cpu":
                requested[name] = round(level * 100, 3)
                if name in procs:
                    achieved[name] = procs[name]
            elif kind == "mem":
                requested[name] = float(level)
                if rss is not None:
                    achieved[name] = float(rss)
            else:
                requested[name] = float(level)
                if before is not None:
                    achieved[name] = round((work - before[2]) / dt, 1)
        burner_names = {h.name for h in self._handles()}
        temps, temp_max = None, None
        if self._sensors:
            try:
                temps = {f"{chip}/{s.label or i}": float(s.current)
                         for chip, sensors in psutil.sensors_temperatures().items()
                         for i, s in enumerate(sensors)}
                temp_max = max(temps.values()) if temps else None
            except (OSError, ValueError):
                temps = None
        row = {
            "t_s": round((cur["ns"] - self.start_ns) / 1e9, 6), "interval_s": round(dt, 6),
            "cpu_pct": round(sum(cores) / len(cores), 2) if cores else None,
            "cpu_core_pct": cores, "load1": load[0], "load5": load[1], "load15": load[2],
            "mem_total_bytes": vm.total, "mem_available_bytes": vm.available,
            "mem_used_pct": round(100.0 * (vm.total - vm.available) / vm.total, 3),
            "swap_used_bytes": swap.used,
            "swap_in_bytes": int(cur["swap"].sin - prev["swap"].sin),
            "swap_out_bytes": int(cur["swap"].sout - prev["swap"].sout),
            "disk_read_bytes": delta("disk", "read_bytes"),
            "disk_write_bytes": delta("disk", "write_bytes"),
            "disk_read_ops": delta("disk", "read_count"),
            "disk_write_ops": delta("disk", "write_count"),
            "net_sent_bytes": delta("net", "bytes_sent"),
            "net_recv_bytes": delta("net", "bytes_recv"),
            "shards_cpu_pct": round(sum(v for k, v in procs.items() if k not in burner_names), 3),
            "burners_cpu_pct": round(sum(v for k, v in procs.items() if k in burner_names), 3),
            "proc_cpu_pct": procs, "burner_requested": requested, "burner_achieved": achieved,
            "temp_c_max": temp_max, "temps_c": temps,
        }
        # for finish(): cumulative counters at each sample, to cut exact 1 s windows later;
        # not once the burners are told to stop (their exit costs CPU that is not the level)
        stopping = self.burners is not None and (self.burners.stop_ns or self.burners.emergency)
        for name, (kind, level, work, rss) in ({} if stopping else cur["burners"]).items():
            windows = self.burner_windows.get(name)
            if windows is None:
                windows = self.burner_windows[name] = BurnerWindows(
                    kind, self.start_ns, round(1e9 / self.interval_ns), MAX_PER_SECOND)
            windows.add((cur["ns"], level, cur["procs"].get(name), work, rss))
        return row

    def _loop(self) -> None:
        yield_cpu(SAMPLER_NICE)
        k = 0
        while True:
            due = self.start_ns + self.phase_ns + k * self.interval_ns
            wait = (due - self.clock()) / 1e9
            if wait > 0 and self._halt.wait(wait):
                break
            if self._halt.is_set():
                break
            try:
                row = self._sample()
            except Exception as exc:     # a sampler must never take the run down
                self.error = f"{type(exc).__name__}: {exc}"
                break
            self._record(row)
            k = max(k + 1, (self.clock() - self.start_ns - self.phase_ns) // self.interval_ns + 1)

    def _record(self, row: dict) -> None:
        """Keep a sample: buffered for host.arrows (flushed every `flush_every`), folded into
        the running aggregates, then handed to the listeners."""
        with self._lock:
            self.samples += 1
            self.rows.append(row)
            self.last_row = row
            for key in _AGGREGATES:
                self.aggregates[key].add(row[key])
            if len(self.rows) >= self.flush_every:
                self._flush()
        for fn in self.listeners:
            try:
                fn(row)
            except Exception as exc:
                self.error = f"listener {fn!r}: {type(exc).__name__}: {exc}"

    def _flush(self) -> None:
        if self.rows and self._writer is not None:
            self._writer.write_batch(pa.RecordBatch.from_pylist(self.rows, schema=self.schema))
            self._sink.flush()
        self.rows = []

    # -- summary ---------------------------------------------------------------------------
    def _summary(self) -> dict:
        agg = self.aggregates
        out = {
            "file": HOST_FILE if getattr(self, "path", None) else None,
            "interval_s": self.interval_ns / 1e9, "samples": self.samples,
            "cpu_pct": agg["cpu_pct"].stats(),
            "mem_used_pct": agg["mem_used_pct"].stats(),
            "mem_available_min_bytes": agg["mem_available_bytes"].min,
            "swap_used_max_bytes": agg["swap_used_bytes"].max,
            "swap_out_bytes": agg["swap_out_bytes"].sum,
            "disk_read_bytes": agg["disk_read_bytes"].sum,
            "disk_write_bytes": agg["disk_write_bytes"].sum,
            "net_sent_bytes": agg["net_sent_bytes"].sum,
            "net_recv_bytes": agg["net_recv_bytes"].sum,
            "load1_max": agg["load1"].max,
            "temp_c_max": agg["temp_c_max"].max,
            "shards_cpu_pct": agg["shards_cpu_pct"].stats() if self.shard_pids else None,
            "burners_cpu_pct": agg["burners_cpu_pct"].stats() if self._handles() else None,
            "error": self.error,
            "burners": {name: w.report() for name, w in self.burner_windows.items()},
        }
        return out
