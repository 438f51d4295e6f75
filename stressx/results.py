"""The results directory of a run, its file formats, and reading it back.

Files (FORMAT_VERSION 2):

- ``manifest.json``        format version, stressx version, host, resolved configuration
- ``intervals.arrows``     Arrow IPC stream, one row per 1 s interval, all shards merged
- ``shard_intervals.arrows`` the same per shard (column ``shard``)
- ``scenario_intervals.arrows`` (runs with a workload) one row per scenario per interval
- ``histograms.json``      final HDR histograms (latency, latency_uncorrected, send_lag), merged
                           and per shard, in HdrHistogram's V2 compressed base64 encoding
- ``summary.json``         the run's figures (see summary.py)

The interval streams are written a record batch at a time and flushed, so a run killed at any
point leaves every finished interval readable (a reader stops at the last complete batch).

Format versions (manifest.json ``format_version``, the streams' schema metadata
``stressx_format_version``):

- 1: the first.
- 2: ``intervals.arrows`` and ``shard_intervals.arrows`` gained the ``users`` gauge (closed
  model: the connections the run holds, following a users shape; 0 in the open model), and
  runs with a workload write ``scenario_intervals.arrows``.

Readers accept every version in READABLE_VERSIONS, upgrading older data on read (version 1:
``users`` is null, ``scenario_intervals`` None), and refuse a newer or unknown version with
FormatVersionError (the CLI: exit 2) rather than misread it. A change to what any file holds
bumps FORMAT_VERSION.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from . import _core
from ._version import __version__
from .hdr import Histogram

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ERROR_KINDS = _core.ERROR_KINDS

_LATENCY_FIELDS = ["min", "mean", "p50", "p90", "p99", "p999", "max"]
_LAG_FIELDS = ["p50", "p99", "max"]


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
    fields += [pa.field(f"send_lag_ms_{f}", pa.float64()) for f in _LAG_FIELDS]
    return pa.schema(fields, metadata={"stressx_format_version": str(FORMAT_VERSION)})


def scenario_interval_schema() -> pa.Schema:
    """One row per scenario per 1 s interval (runs with a workload), all shards merged."""
    fields = [pa.field("t_s", pa.float64()), pa.field("interval_s", pa.float64()),
              pa.field("scenario", pa.string())]
    fields += [pa.field(name, pa.int64()) for name in ("sent", "ok", "errors", "violations")]
    fields += [pa.field(f"latency_ms_{f}", pa.float64()) for f in ("p50", "p90", "p99", "max")]
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
    current = interval_schema("shard" in names)
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


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)  # a reader never sees half a file


class ResultsWriter:
    """Writes one run's results directory as the run goes on."""

    def __init__(self, out_dir: str | os.PathLike, scenarios: bool = False):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._streams = {}
        schemas = {"intervals": interval_schema(False), "shard_intervals": interval_schema(True)}
        if scenarios:
            schemas["scenario_intervals"] = scenario_interval_schema()
        for key, schema in schemas.items():
            sink = pa.OSFile(str(self.dir / f"{key}.arrows"), "wb")
            self._streams[key] = (sink, pa.ipc.new_stream(sink, schema), schema)

    def manifest(self, config_json: dict, extra: dict | None = None) -> None:
        _write_json(self.dir / "manifest.json", {
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
        _write_json(self.dir / "histograms.json", {
            "format_version": FORMAT_VERSION,
            "encoding": "HdrHistogram V2 compressed, base64",
            "unit": "microseconds",
            "merged": {name: h.encode() for name, h in merged.items()},
            "shards": [{name: h.encode() for name, h in s.items()} for s in shards],
        })

    def summary(self, summary: dict) -> None:
        _write_json(self.dir / "summary.json", summary)

    def close(self) -> None:
        for sink, writer, _ in self._streams.values():
            try:
                writer.close()
            finally:
                sink.close()
        self._streams.clear()


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
    scenarios = p / "scenario_intervals.arrows"
    return Results(p, summary, manifest, read_intervals(p / "intervals.arrows"),
                   read_intervals(p / "shard_intervals.arrows"), hist,
                   read_intervals(scenarios) if scenarios.exists() else None, version)
