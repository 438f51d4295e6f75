"""Comparing two runs (baseline vs current) and keeping named baselines.

compare() puts each metric of two results directories side by side, for the whole run and for
each scenario both runs have, with the change in percent. A change is a REGRESSION when it goes
the worse way for that metric (throughput down; error rate or latency up) by more than the
threshold (default 15%) AND by more than the metric's noise floor: an error rate moving from
0.00% to 0.01% is +inf% but not a regression (floor: 0.1 percentage point).

Named baselines are results directories copied under $STRESSX_BASELINES (default
./stressx-baselines), one directory per name, so a later run can be compared with
`--baseline NAME`.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..results.files import FormatVersionError, Results, load_results, read_format_version
from ..results.summary import error_rate

DEFAULT_REGRESSION_PCT = 15.0
BASELINES_ENV = "STRESSX_BASELINES"
DEFAULT_BASELINES_DIR = "stressx-baselines"
COMPARISON_FILE = "comparison.json"
BASELINE_FILE = "baseline.json"
FORMAT_VERSION = 1
#: What a saved baseline keeps of a results directory (reports are rebuilt, not copied).
BASELINE_FILES = ("manifest.json", "summary.json", "intervals.arrows", "shard_intervals.arrows",
                  "histograms.json", "thresholds.json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
#: Configuration keys whose difference makes a comparison suspect (reported, not refused).
_CONFIG_KEYS = ("url", "method", "model", "rate_target", "connections", "workers", "shape")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: str          # "lower" or "higher"
    unit: str            # "ms", "req/s" or "%"
    floor: float = 0.0   # absolute change below which no regression is called


METRICS = (
    Metric("rps", "throughput", "higher", "req/s"),
    Metric("error_rate", "error rate", "lower", "%", 0.001),
    Metric("mean", "mean", "lower", "ms"),
    Metric("p50", "p50", "lower", "ms"),
    Metric("p90", "p90", "lower", "ms"),
    Metric("p95", "p95", "lower", "ms"),
    Metric("p99", "p99", "lower", "ms"),
    Metric("p999", "p99.9", "lower", "ms"),
    Metric("max", "max", "lower", "ms"),
)


def parse_percent(value, option: str = "--threshold") -> float:
    """'15%', '15' or 15 -> 15.0 (percent)."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%?", text)
    if not m or not 0 < float(m.group(1)) <= 1000:
        raise ConfigError(option, f"expected a regression threshold in percent like 15% or 5, got {value!r}")
    return float(m.group(1))


def _value(metric: Metric, data: dict, duration_s: float | None) -> float | None:
    if metric.unit == "ms":
        return (data.get("latency_ms") or {}).get(metric.key)
    if metric.key == "rps":
        if data.get("rps") is not None:
            return float(data["rps"])
        done = data.get("completed") or data.get("requests")
        return done / duration_s if done is not None and duration_s else None
    return error_rate(data)


def _format(metric: Metric, v: float | None) -> str:
    if v is None:
        return "n/a"
    if metric.unit == "%":
        return f"{v * 100:.2f}%"
    if metric.unit == "req/s":
        return f"{v:.1f}"
    return f"{v:.3f}"


def _row(metric: Metric, base: float | None, cur: float | None, threshold_pct: float,
         scenario: str | None) -> dict:
    change = None
    if base is not None and cur is not None:
        if base:
            change = (cur - base) / abs(base) * 100.0
        else:
            change = 0.0 if cur == base else math.inf
    worse = change is not None and ((change > 0) if metric.better == "lower" else (change < 0))
    big = (change is not None and abs(change) > threshold_pct
           and abs((cur or 0) - (base or 0)) > metric.floor)
    if change is None:
        text = "n/a"
    elif math.isinf(change):
        text = "new (was 0)"
    else:
        text = f"{change:+.1f}%"
    return {"scenario": scenario, "metric": metric.key, "label": metric.label,
            "unit": metric.unit, "better": metric.better,
            "baseline": base, "current": cur,
            "baseline_text": _format(metric, base), "current_text": _format(metric, cur),
            "change_pct": None if change is None or math.isinf(change) else round(change, 3),
            "change_text": text, "regression": bool(worse and big),
            "improvement": bool(change is not None and not worse and change != 0 and big)}


def _side(r: Results, name: str | None) -> dict:
    return {"path": str(r.path), "name": name, "url": r.summary.get("url"),
            "created_unix": r.manifest.get("created_unix")}


def compare(baseline: Results, current: Results, threshold_pct: float = DEFAULT_REGRESSION_PCT,
            *, baseline_name: str | None = None) -> dict:
    """Baseline vs current, per metric and per scenario present in both (a JSON-able dict)."""
    b, c = baseline.summary, current.summary
    rows = [_row(m, _value(m, b, b.get("duration_s")), _value(m, c, c.get("duration_s")),
                 threshold_pct, None) for m in METRICS]
    bs, cs = b.get("scenarios") or {}, c.get("scenarios") or {}
    for name in [n for n in cs if n in bs]:
        for m in METRICS:
            bv = _value(m, bs[name], b.get("duration_s"))
            cv = _value(m, cs[name], c.get("duration_s"))
            if bv is not None or cv is not None:
                rows.append(_row(m, bv, cv, threshold_pct, name))
    differences = []
    for key in _CONFIG_KEYS:
        bv, cv = b.get(key), c.get(key)
        if bv != cv:
            differences.append(f"{key}: {bv} (baseline) vs {cv} (current)")
    differences += [f"scenario {n!r} only in the baseline" for n in bs if n not in cs]
    differences += [f"scenario {n!r} only in the current run" for n in cs if n not in bs]
    for label, s in (("baseline", b), ("current", c)):
        if s.get("saturated") or s.get("interrupted") or s.get("aborted"):
            differences.append(f"the {label} run was "
                               + ", ".join(k for k in ("saturated", "interrupted", "aborted") if s.get(k))
                               + ": its figures are not a fair reference")
    regressions = [r for r in rows if r["regression"]]
    return {"format_version": FORMAT_VERSION, "threshold_pct": threshold_pct,
            "baseline": _side(baseline, baseline_name), "current": _side(current, None),
            "differences": differences, "rows": rows,
            "regressions": [(f"{r['scenario']}: " if r["scenario"] else "") + r["label"]
                            for r in regressions],
            "passed": not regressions}


def compare_dirs(baseline: str | os.PathLike, current: str | os.PathLike,
                 threshold_pct: float = DEFAULT_REGRESSION_PCT) -> dict:
    """compare() of two results directories; `baseline` may also be a saved baseline's name."""
    path = resolve_baseline(baseline, "BASELINE")
    name = None if Path(str(baseline)).is_dir() else str(baseline)
    return compare(load_results(path), load_results(current), threshold_pct, baseline_name=name)


def save_comparison(out_dir: str | os.PathLike, comparison: dict) -> Path:
    path = Path(out_dir) / COMPARISON_FILE
    path.write_text(json.dumps(comparison, indent=2) + "\n")
    return path


# -- named baselines ---------------------------------------------------------------------------

def baselines_dir() -> Path:
    return Path(os.environ.get(BASELINES_ENV) or DEFAULT_BASELINES_DIR)


def _check_name(name: str, option: str) -> str:
    if not _NAME.match(str(name)):
        raise ConfigError(option, f"baseline name {name!r}: use letters, digits, '.', '_' and '-' "
                                  f"(up to 100, not starting with '.' or '-')")
    return str(name)


def save_baseline(name: str, results_dir: str | os.PathLike) -> Path:
    """Copy a results directory to the baseline NAME (replacing an older one of that name)."""
    _check_name(name, "NAME")
    src = Path(results_dir)
    try:
        load_results(src)                       # refuse anything we could not compare later
    except (OSError, ValueError) as exc:
        raise ConfigError("RESULTS_DIR", f"{src} is not a readable stressx results directory: {exc}") from None
    root = baselines_dir()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for f in BASELINE_FILES:
        if (src / f).exists():
            shutil.copy2(src / f, tmp / f)
    (tmp / BASELINE_FILE).write_text(json.dumps(
        {"name": name, "saved_unix": time.time(), "source": str(src.resolve())}, indent=2) + "\n")
    old = root / f".{name}.old-{os.getpid()}"
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def list_baselines() -> list[dict]:
    """Saved baselines, by name: name, saved_unix, source, url, rps, p99 (ms)."""
    root = baselines_dir()
    out = []
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        meta = json.loads((d / BASELINE_FILE).read_text()) if (d / BASELINE_FILE).exists() else {}
        try:
            s = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError):
            s = {}
        out.append({"name": d.name, "saved_unix": meta.get("saved_unix"),
                    "source": meta.get("source"), "url": s.get("url"), "rps": s.get("rps"),
                    "p99": (s.get("latency_ms") or {}).get("p99")})
    return out


def _readable(path: Path, option: str) -> Path:
    """`path` if its format version is one this stressx reads: checked before a run, so a
    baseline from a newer stressx stops it with exit 2 before any request."""
    try:
        read_format_version(path)
    except FormatVersionError as exc:
        raise ConfigError(option, str(exc)) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(option, f"{path} is not a readable stressx results directory: {exc}") from None
    return path


def resolve_baseline(name_or_path, option: str = "--baseline") -> Path:
    """A results directory path, or the directory of the saved baseline of that name."""
    p = Path(str(name_or_path))
    if p.is_dir() and (p / "manifest.json").exists():
        return _readable(p, option)
    if _NAME.match(str(name_or_path)):
        d = baselines_dir() / str(name_or_path)
        if d.is_dir():
            return _readable(d, option)
    saved = ", ".join(b["name"] for b in list_baselines()) or "none"
    raise ConfigError(option, f"{str(name_or_path)!r} is neither a results directory nor a baseline "
                              f"saved in {baselines_dir()} (saved: {saved}); save one with "
                              f"`stressx baseline save NAME RESULTS_DIR`")
