"""The results directory of a run, its file formats, and reading it back.

Files (FORMAT_VERSION 4):

- ``manifest.json``        format version, stressx version, host, resolved configuration
- ``intervals.arrows``     Arrow IPC stream, one row per 1 s interval, all shards merged
- ``shard_intervals.arrows`` the same per shard (column ``shard``)
- ``scenario_intervals.arrows`` (runs with a workload) one row per scenario per interval
- ``histograms.json``      final HDR histograms (latency, latency_uncorrected, send_lag,
                           failure_latency, all_latency; per scenario scenario:NAME and
                           scenario_all:NAME), merged and per shard, in HdrHistogram's V2
                           compressed base64 encoding
- ``latency.hlog``         one latency histogram per interval row (all shards merged), in
                           HdrHistogram's interval log format; absent in runs of older versions
- ``all_latency.hlog``     the same for every completed request (format 3)
- ``summary.json``         the run's figures (see summary.py)

The interval streams (and the latency log, a line at a time) are written and flushed as each
interval is cut, so a run killed at any point leaves every finished interval readable (a reader
stops at the last complete batch or line).

Format versions (manifest.json ``format_version``, the streams' schema metadata
``stressx_format_version``):

- 1: the first.
- 2: ``intervals.arrows`` and ``shard_intervals.arrows`` gained the ``users`` gauge (closed
  model: the connections the run holds, following a users shape; 0 in the open model), and
  runs with a workload write ``scenario_intervals.arrows``; ``latency.hlog`` (intervals cut on
  the shards' snapshots at the common start + k s). A run without ``latency.hlog`` (older
  versions) reads as before, only without exact time-range percentiles.
- 3: failures are timed: the interval streams gained ``all_latency_ms_*`` (every completed
  request; scenario rows p50/p90/p99/max), ``histograms.json`` ``failure_latency``,
  ``all_latency`` and ``scenario_all:NAME``, ``summary.json`` ``failure_latency_ms``,
  ``all_latency_ms`` and ``all_latency_censored`` (also per scenario), and ``all_latency.hlog``.
- 4: the interval streams gained the accounting columns (``due``, ``queued``, ``late_at_cap``,
  ``dropped_<reason>``, ``connect_attempts``, ``connect_failures``) and the live saturation
  flag (``saturated``, ``saturation``); summary.json gained ``due``, ``dropped_reasons``,
  ``send_window_s``, ``run_window_s``, connect counts, and ``duration_s`` became the run window.
- 5: the interval streams gained the client's CPU: ``cpu_pct`` (per shard: its CPU over the
  interval, % of one core; merged: the busiest shard's) and ``cpu_busy`` (the shard has been
  above 90% of its core for 5 s in a row; merged: any shard); summary.json gained
  ``client_cpu_busy`` and, per shard, ``cpu_pct`` and ``cpu_busy_from_t_s``.

Readers accept every version in READABLE_VERSIONS, upgrading older data on read (version 1:
``users`` is null, ``scenario_intervals`` None; before 3: the ``all_latency_ms_*`` columns are
null, and the summary gains ``all_latency_ms`` where its files settle it, see
_add_all_latency; before 4: the accounting columns and ``saturated`` null; before 5: the CPU
columns null), and refuse a newer
or unknown version with
FormatVersionError (the CLI: exit 2) rather than misread it. A change to what any file holds
bumps FORMAT_VERSION.
"""
from __future__ import annotations

import json
import math
import os
import platform
import socket
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .._version import __version__
from ..engine import _core
from ..errors import ConfigError
from .censoring import censoring
from .hdr import H_MAX, H_MIN, Histogram

FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
ERROR_KINDS = _core.ERROR_KINDS
DROP_REASONS = _core.DROP_REASONS

LATENCY_LOG = "latency.hlog"
ALL_LATENCY_LOG = "all_latency.hlog"   # the same for every completed request (format 3)
#: The log's Interval_Max column is the interval's max value divided by this: our histograms
#: count microseconds, so it is in milliseconds (HdrHistogram's tools assume nanoseconds and
#: 1e6; with them use a value unit ratio of 1000, e.g. HistogramLogProcessor
#: -outputValueUnitRatio 1000, for milliseconds).
LATENCY_LOG_MAX_VALUE_UNIT_RATIO = 1000.0
_LATENCY_LOG_LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'

_LATENCY_FIELDS = ["min", "mean", "p50", "p90", "p99", "p999", "max"]
LAG_FIELDS = ["p50", "p99", "max"]


def interval_schema(per_shard: bool) -> pa.Schema:
    fields = [pa.field("t_s", pa.float64()), pa.field("interval_s", pa.float64())]
    if per_shard:
        fields.append(pa.field("shard", pa.int16()))
    fields.append(pa.field("rate_target", pa.float64()))
    for name in ("sent", "completed", "ok", "errors", "late", "dropped", "bytes_in", "bytes_out",
                 "conn_open", "inflight", "users"):
        fields.append(pa.field(name, pa.int64()))
    fields += [pa.field(f"errors_{kind}", pa.int64()) for kind in ERROR_KINDS]
    fields.append(pa.field("status", pa.map_(pa.int16(), pa.int64())))
    fields += [pa.field("rps", pa.float64()), pa.field("sent_rps", pa.float64())]
    fields += [pa.field(f"latency_ms_{f}", pa.float64()) for f in _LATENCY_FIELDS]
    fields += [pa.field(f"send_lag_ms_{f}", pa.float64()) for f in LAG_FIELDS]
    fields += [pa.field(f"all_latency_ms_{f}", pa.float64()) for f in _LATENCY_FIELDS]
    fields += _ACCOUNTING_FIELDS
    fields += _CLIENT_FIELDS
    return pa.schema(fields, metadata={"stressx_format_version": str(FORMAT_VERSION)})


#: Interval columns added in format version 4 (an older file reads them as nulls): due sends,
#: sends waiting for a connection at the interval's end, late sends at --max-connections,
#: drops by reason, connect attempts and failures, and the live saturation flag with its
#: reasons ("send lag, connection cap, queue, fd limit").
_ACCOUNTING_FIELDS = ([pa.field(name, pa.int64()) for name in ("due", "queued", "late_at_cap")]
                      + [pa.field(f"dropped_{r}", pa.int64()) for r in DROP_REASONS]
                      + [pa.field("connect_attempts", pa.int64()),
                         pa.field("connect_failures", pa.int64()),
                         pa.field("saturated", pa.bool_()), pa.field("saturation", pa.string())])


#: Interval columns added in format version 5: the client's own CPU (see the module docstring).
_CLIENT_FIELDS = [pa.field("cpu_pct", pa.float64()), pa.field("cpu_busy", pa.bool_())]


def scenario_interval_schema() -> pa.Schema:
    """One row per scenario per 1 s interval (runs with a workload), all shards merged."""
    fields = [pa.field("t_s", pa.float64()), pa.field("interval_s", pa.float64()),
              pa.field("scenario", pa.string())]
    fields += [pa.field(name, pa.int64()) for name in ("sent", "ok", "errors", "violations")]
    fields += [pa.field(f"{prefix}_{f}", pa.float64()) for prefix in ("latency_ms", "all_latency_ms")
               for f in ("p50", "p90", "p99", "max")]
    return pa.schema(fields, metadata={"stressx_format_version": str(FORMAT_VERSION)})


class FormatVersionError(ValueError):
    """A results file of a format version this stressx does not know (newer, or not one)."""


def check_format_version(version, where) -> int:
    """The version as an int if this stressx reads it; FormatVersionError naming `where` (the
    directory or file) and the version otherwise."""
    if isinstance(version, (str, bytes)) and version.strip().isdigit():
        version = int(version)
    if type(version) is int and version in READABLE_VERSIONS:
        return version
    known = f"{READABLE_VERSIONS[0]} to {READABLE_VERSIONS[-1]}"
    if type(version) is int and version > FORMAT_VERSION:
        raise FormatVersionError(f"{where}: results format version {version} is newer than this "
                                 f"stressx {__version__} reads ({known}); upgrade stressx")
    raise FormatVersionError(f"{where}: unknown results format version {version!r} (this "
                             f"stressx reads {known})")


def _upgrade(table: pa.Table, version: int) -> pa.Table:
    """An older interval table in the current layout (see the module docstring): every column
    the older version did not record is added as nulls ("not recorded", never a made-up 0), in
    the current order; columns the current layout no longer has are kept at the end."""
    if version >= FORMAT_VERSION:
        return table
    names = table.schema.names
    if "scenario" in names:
        current = scenario_interval_schema()
    elif "completed" in names and "interval_s" in names:
        current = interval_schema("shard" in names)
    else:
        return table        # not an interval table (host.arrows has its own columns)
    columns, fields = [], []
    for field in current:
        if field.name in names:
            columns.append(table.column(field.name))
            fields.append(table.schema.field(field.name))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
            fields.append(field)
    for name in names:
        if current.get_field_index(name) < 0:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def host_info() -> dict:
    import psutil
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)  # a reader never sees half a file


class ResultsWriter:
    """Writes one run's results directory as the run goes on."""

    def __init__(self, out_dir: str | os.PathLike, scenarios: bool = False):
        self.dir = Path(out_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self.dir, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            # before any shard starts: a run whose results cannot be kept sends nothing
            raise ConfigError("--out", f"cannot write the results directory {str(out_dir)!r}: "
                              f"{exc.strerror or exc}") from None
        self._streams = {}
        schemas = {"intervals": interval_schema(False), "shard_intervals": interval_schema(True)}
        if scenarios:
            schemas["scenario_intervals"] = scenario_interval_schema()
        for key, schema in schemas.items():
            sink = pa.OSFile(str(self.dir / f"{key}.arrows"), "wb")
            self._streams[key] = (sink, pa.ipc.new_stream(sink, schema), schema)
        self._hlogs = {}

    def start_latency_log(self, start_unix: float) -> None:
        """Open latency.hlog and all_latency.hlog with HdrHistogram's log header; `start_unix` is
        the run's common start instant in seconds since the epoch (StartTime and BaseTime: the
        interval lines' timestamps are seconds after it, as in the interval rows)."""
        when = datetime.fromtimestamp(start_unix, timezone.utc).isoformat(timespec="milliseconds")
        self._hlogs = {}
        for which, name, what in (
                ("latency", LATENCY_LOG, "the latency of successful responses"),
                ("all_latency", ALL_LATENCY_LOG, "the latency of every completed request "
                 "(failures to the failure, timeouts at the deadline)")):
            f = self._hlogs[which] = open(self.dir / name, "w", encoding="ascii")
            f.write(f"#[stressx {__version__}: {what}, one histogram per interval of "
                    f"intervals.arrows, all shards merged; values in microseconds, "
                    f"Interval_Max in milliseconds (max value unit ratio "
                    f"{LATENCY_LOG_MAX_VALUE_UNIT_RATIO:g})]\n"
                    "#[Histogram log format version 1.3]\n"
                    f"#[StartTime: {start_unix:.3f} (seconds since epoch), {when}]\n"
                    f"#[BaseTime: {start_unix:.3f} (seconds since epoch)]\n"
                    f"{_LATENCY_LOG_LEGEND}\n")
            f.flush()

    def latency_interval(self, start_s: float, length_s: float, histogram: Histogram,
                         which: str = "latency") -> None:
        """One interval line: start (s after the start instant), length, max (ms), histogram;
        `which`: "latency" (latency.hlog, successes) or "all_latency" (all_latency.hlog)."""
        f = self._hlogs.get(which)
        if f is None:
            return
        f.write(f"{start_s:.3f},{length_s:.3f},"
                f"{histogram.max / LATENCY_LOG_MAX_VALUE_UNIT_RATIO:.3f},"
                f"{histogram.encode()}\n")
        f.flush()

    def manifest(self, config_json: dict, extra: dict | None = None) -> None:
        write_json(self.dir / "manifest.json", {
            "format_version": FORMAT_VERSION,
            "stressx_version": __version__,
            "created_unix": time.time(),
            "host": host_info(),
            "config": config_json,
            **(extra or {}),
        })

    def intervals(self, merged: list[dict], per_shard: list[dict],
                  per_scenario: list[dict] = ()) -> None:
        for key, rows in (("intervals", merged), ("shard_intervals", per_shard),
                          ("scenario_intervals", per_scenario)):
            if rows and key in self._streams:
                sink, writer, schema = self._streams[key]
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
                sink.flush()

    def histograms(self, merged: dict[str, Histogram], shards: list[dict[str, Histogram]]) -> None:
        write_json(self.dir / "histograms.json", {
            "format_version": FORMAT_VERSION,
            "encoding": "HdrHistogram V2 compressed, base64",
            "unit": "microseconds",
            "merged": {name: h.encode() for name, h in merged.items()},
            "shards": [{name: h.encode() for name, h in s.items()} for s in shards],
        })

    def summary(self, summary: dict) -> None:
        write_json(self.dir / "summary.json", summary)

    def close(self) -> None:
        for f in self._hlogs.values():
            f.close()
        self._hlogs = {}
        for sink, writer, _ in self._streams.values():
            try:
                writer.close()
            finally:
                sink.close()
        self._streams.clear()


@dataclass
class LoggedInterval:
    """One line of latency.hlog: seconds after the run's start instant, and its histogram."""
    start_s: float
    length_s: float
    histogram: Histogram

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


def read_latency_log(path: str | os.PathLike) -> Iterator[LoggedInterval]:
    """The intervals of a latency.hlog, in order (one at a time: a long run's log holds many),
    timed in seconds after the log's StartTime as HdrHistogram's readers do (stressx writes
    BaseTime = StartTime, so these are the timestamps as written). A line cut short by a killed
    run ends the log."""
    start = base = None
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            line = line.strip()
            try:
                if line.startswith("#[StartTime:"):
                    start = float(line.split()[1])
                    continue
                if line.startswith("#[BaseTime:"):
                    base = float(line.split()[1])
                    continue
            except (IndexError, ValueError):
                continue
            if not line or line.startswith(("#", '"', "Tag=")):
                continue                     # comments, the legend; stressx writes no tags
            try:
                stamp, length, _max, payload = line.split(",", 3)
                h = Histogram.decode(payload)
                stamp_s, length_s = float(stamp), float(length)
            except (ValueError, TypeError, zlib.error, struct.error):
                return                       # a line cut short by a killed run
            if start is None:
                start = stamp_s
            if base is None:                 # HdrHistogram's rule: relative if over a year early
                base = start if stamp_s < start - 365 * 86400 else 0.0
            yield LoggedInterval(stamp_s + base - start, length_s, h)


def latency_over(path: str | os.PathLike, from_s: float = 0.0,
                 to_s: float = math.inf) -> tuple[Histogram, list[LoggedInterval]]:
    """The exact latency histogram of the intervals lying within [from_s, to_s] (seconds after
    the start instant; an interval partly outside is left out, with a millisecond of slack for
    the log's rounding), and those intervals (their histograms dropped)."""
    merged, used = Histogram.empty(), []
    for iv in read_latency_log(path):
        if iv.start_s >= from_s - 1e-3 and iv.end_s <= to_s + 1e-3:
            merged += iv.histogram
            used.append(LoggedInterval(iv.start_s, iv.length_s, None))
    return merged, used


def read_intervals(path: str | os.PathLike) -> pa.Table:
    """Read an interval stream, also one cut short by a killed run (complete batches only).
    An older format version is upgraded to the current columns (its schema metadata keeps the
    version it was written in); a newer one raises FormatVersionError. A stream without the
    version metadata (not written by stressx) is read as it is."""
    batches, schema = [], None
    with pa.OSFile(str(path), "rb") as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            raise ValueError(f"{path}: not an Arrow IPC stream") from None
        schema = reader.schema
        raw = (schema.metadata or {}).get(b"stressx_format_version")
        version = check_format_version(raw.decode(errors="replace"), path) if raw else None
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):
                break  # a batch cut short by a killed writer
    table = pa.Table.from_batches(batches, schema=schema)
    return _upgrade(table, version) if version is not None else table


@dataclass
class Results:
    """A results directory read back: summary, manifest, interval tables, histograms."""

    path: Path
    summary: dict
    manifest: dict
    intervals: pa.Table
    shard_intervals: pa.Table
    histograms: dict = field(default_factory=dict)
    scenario_intervals: pa.Table | None = None   # runs with a workload (format version 2)
    format_version: int = FORMAT_VERSION         # as written; the tables are read as current

    @property
    def latency_log(self) -> Path | None:
        """latency.hlog (read it with read_latency_log or latency_over); None for runs of
        versions that did not write one."""
        p = self.path / LATENCY_LOG
        return p if p.exists() else None


def read_format_version(path: str | os.PathLike) -> int:
    """The format version of a results directory (its manifest), checked: FormatVersionError
    if this stressx cannot read it."""
    p = Path(path)
    manifest = json.loads((p / "manifest.json").read_text())
    return check_format_version(manifest.get("format_version"), p)


def load_results(path: str | os.PathLike) -> Results:
    """A results directory read back, from any format version this stressx reads (older ones
    upgraded on read); FormatVersionError for a newer one."""
    p = Path(path)
    manifest = json.loads((p / "manifest.json").read_text())
    version = check_format_version(manifest.get("format_version"), p)
    summary = json.loads((p / "summary.json").read_text()) if (p / "summary.json").exists() else {}
    hist = {}
    if (p / "histograms.json").exists():
        data = json.loads((p / "histograms.json").read_text())
        hist = {name: Histogram.decode(text) for name, text in data["merged"].items()}
    _add_all_latency(summary, hist, manifest)
    scenarios = p / "scenario_intervals.arrows"
    return Results(p, summary, manifest, read_intervals(p / "intervals.arrows"),
                   read_intervals(p / "shard_intervals.arrows"), hist,
                   read_intervals(scenarios) if scenarios.exists() else None, version)


def _add_all_latency(summary: dict, hist: dict, manifest: dict) -> None:
    """A summary written before failures were timed has no `all_latency_ms`: derive it where
    the files settle it exactly. Without failures it equals `latency_ms`; with timeouts only
    (and the success histogram at hand) it is the successes plus each timeout at the deadline,
    as the recorder now records them. Other failures' times were never measured: the key
    stays absent, and a threshold on it cannot be measured."""
    timeout_s = (manifest.get("config") or {}).get("timeout")
    bound_ms = float(timeout_s) * 1000.0 if timeout_s else None

    def derive(section: dict, h_ok: Histogram | None) -> None:
        if not isinstance(section, dict) or "all_latency_ms" in section:
            return
        kinds = section.get("errors") if isinstance(section.get("errors"), dict) else {}
        n_errors = int(section.get("error_count", sum(int(n) for n in kinds.values())) or 0)
        timeouts = int(kinds.get("timeout", 0))
        if n_errors == 0:
            section["all_latency_ms"] = section.get("latency_ms")
            section["all_latency_censored"] = None
        elif (timeouts == n_errors and bound_ms and h_ok is not None
              and h_ok.total == int(section.get("ok") or 0)):
            failures = Histogram.from_values([round(bound_ms * 1000)] * timeouts)
            both = h_ok + failures
            lat = section.get("latency_ms") or {}
            if h_ok.total and lat.get("min") is not None and lat.get("max") is not None:
                # the encoding drops the exact min and max; the summary kept them (in us)
                both.slots[H_MIN] = min(round(lat["min"] * 1000), failures.min)
                both.slots[H_MAX] = max(round(lat["max"] * 1000), failures.max)
            section["failure_latency_ms"] = failures.summary_ms()
            section["all_latency_ms"] = both.summary_ms() if both.total else None
            section["all_latency_censored"] = censoring(both.total, timeouts, bound_ms)

    if summary:
        derive(summary, hist.get("latency"))
        for name, sc in (summary.get("scenarios") or {}).items():
            derive(sc, hist.get(f"scenario:{name}"))
