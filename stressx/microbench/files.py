"""A benchmark run's results directory, reading it back, and loading a file of bench_* functions.

Files (manifest ``kind: "benchmark"``, BENCH_FORMAT_VERSION 1):

- ``manifest.json``    format version, kind, stressx version, created, host (as load runs, plus
                       CPU model, Python implementation, GIL), the clock, the options
- ``summary.json``     ``{"kind": "benchmark", "benchmarks": {NAME: BenchmarkResult.to_dict()}}``
- ``samples.arrows``   Arrow IPC stream, one row per timed sample: ``benchmark``, ``process``,
                       ``caller``, ``sample``, ``loops``, ``raw_ns`` (elapsed for the loops),
                       ``ns_per_call`` (raw_ns / loops - overhead)
- ``histograms.json``  per benchmark the HDR histogram of ns_per_call (integer ns, 1 ns .. 1 h,
                       3 significant figures), V2 compressed base64
- ``thresholds.json``  the verdicts of --threshold, when given

Readers accept BENCH_READABLE_VERSIONS and refuse a newer version with FormatVersionError.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from .result import BenchmarkResult

KIND = "benchmark"
BENCH_FORMAT_VERSION = 1
BENCH_READABLE_VERSIONS = (1,)
SAMPLES_FILE = "samples.arrows"
THRESHOLDS_FILE = "thresholds.json"


def load_bench_file(path: str | os.PathLike, module_name: str):
    """Import a Python file as `module_name` (its directory first on sys.path, so its own
    imports work); the same module object on a second call."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = Path(path).resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def module_name_for(path: str | os.PathLike) -> str:
    """A stable module name for a bench file (the same in the parent and its workers)."""
    import hashlib
    p = Path(path).resolve()
    return f"stressx_bench_{p.stem}_{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


def host_metadata() -> dict:
    from ..results.files import host_info
    from .measure import free_threaded_build, gil_enabled
    info = host_info()
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info.update({"cpu_model": cpu or platform.processor() or None,
                 "python_implementation": platform.python_implementation(),
                 "free_threaded_build": free_threaded_build(), "gil_enabled": gil_enabled(),
                 "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None})
    return info


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_results(out_dir: str | os.PathLike, results: list[BenchmarkResult],
                  config: dict | None = None, verdicts: list | None = None) -> Path:
    """Write a benchmark results directory (see the module docstring)."""
    import pyarrow as pa
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock = results[0].clock if results else {}
    _write_json(out / "manifest.json", {
        "format_version": BENCH_FORMAT_VERSION, "kind": KIND, "stressx_version": __version__,
        "created_unix": time.time(), "host": host_metadata(), "clock": clock,
        "config": config or {}, "benchmarks": [r.name for r in results]})
    _write_json(out / "summary.json", {"kind": KIND, "format_version": BENCH_FORMAT_VERSION,
                                       "benchmarks": {r.name: r.to_dict() for r in results}})
    _write_json(out / "histograms.json", {
        "format_version": BENCH_FORMAT_VERSION, "encoding": "HdrHistogram V2 compressed, base64",
        "unit": "nanoseconds",
        "benchmarks": {r.name: _encode(r.histogram) for r in results if r.histogram is not None}})
    schema = pa.schema([pa.field("benchmark", pa.string()), pa.field("process", pa.int16()),
                        pa.field("caller", pa.int16()), pa.field("sample", pa.int32()),
                        pa.field("loops", pa.int64()), pa.field("raw_ns", pa.int64()),
                        pa.field("ns_per_call", pa.float64())],
                       metadata={"stressx_format_version": str(BENCH_FORMAT_VERSION),
                                 "stressx_kind": KIND})
    with pa.OSFile(str(out / SAMPLES_FILE), "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
        for r in results:
            if r.samples_ns is None:
                continue
            n = r.samples_ns.size
            meta = r.sample_meta or {}
            w.write_batch(pa.RecordBatch.from_arrays([
                pa.array([r.name] * n, pa.string()),
                pa.array(meta.get("process", np.zeros(n, np.int16)), pa.int16()),
                pa.array(meta.get("caller", np.zeros(n, np.int16)), pa.int16()),
                pa.array(np.arange(n, dtype=np.int32), pa.int32()),
                pa.array(meta.get("loops", np.full(n, r.loops, np.int64)), pa.int64()),
                pa.array(meta.get("raw_ns", np.zeros(n, np.int64)), pa.int64()),
                pa.array(r.samples_ns, pa.float64())], schema=schema))
    if verdicts is not None:
        _write_json(out / THRESHOLDS_FILE, {"format_version": 1,
                                            "thresholds": [v.to_json() for v in verdicts]})
    return out


def _encode(h) -> str:
    enc = h.encode()
    return enc.decode("ascii") if isinstance(enc, bytes) else enc


def is_bench_dir(path: str | os.PathLike) -> bool:
    try:
        m = json.loads((Path(path) / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and m.get("kind") == KIND


def read_results(path: str | os.PathLike) -> dict[str, BenchmarkResult]:
    """A benchmark results directory read back: name -> BenchmarkResult with its samples
    (from samples.arrows; from the histogram when that file is missing)."""
    from ..results.files import FormatVersionError
    from . import stats
    p = Path(path)
    manifest = json.loads((p / "manifest.json").read_text())
    version = manifest.get("format_version")
    if manifest.get("kind") != KIND:
        raise ValueError(f"{p} is not a benchmark results directory")
    if version not in BENCH_READABLE_VERSIONS:
        if isinstance(version, int) and version > BENCH_FORMAT_VERSION:
            raise FormatVersionError(f"{p}: benchmark results format version {version} is newer "
                                     f"than this stressx {__version__} reads; upgrade stressx")
        raise FormatVersionError(f"{p}: unknown benchmark results format version {version!r}")
    summary = json.loads((p / "summary.json").read_text())
    hist_path = p / "histograms.json"
    hists = json.loads(hist_path.read_text()).get("benchmarks", {}) if hist_path.exists() else {}
    samples: dict[str, np.ndarray] = {}
    if (p / SAMPLES_FILE).exists():
        import pyarrow as pa
        with pa.OSFile(str(p / SAMPLES_FILE), "rb") as src:
            table = pa.ipc.open_stream(src).read_all()
        names = np.asarray(table.column("benchmark").to_pylist(), dtype=object)
        values = table.column("ns_per_call").to_numpy()
        for name in dict.fromkeys(names.tolist()):
            samples[name] = values[names == name]
    out = {}
    for name, d in summary.get("benchmarks", {}).items():
        h = stats.decode_histogram(hists[name]) if name in hists else None
        x = samples.get(name)
        if x is None and h is not None:
            x = stats.histogram_values(h)
        out[name] = BenchmarkResult.from_dict(d, samples_ns=x, histogram=h)
    return out
