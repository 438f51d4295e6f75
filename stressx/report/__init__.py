"""Reporters: turn a results directory into something people (and CI) read.

Every report is built from the results directory alone (summary.json, the interval stream,
histograms.json, plus thresholds.json and comparison.json when a run wrote them), so any of
them can be rebuilt later from archived artifacts with `stressx report DIR`.

Each reporter is a module with FILENAME and render(ReportData) -> str.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..judge import thresholds as _thresholds
from ..judge.compare import COMPARISON_FILE
from ..results.files import Results, load_results, read_intervals
from . import html_report, json_report, junit, markdown
from .figures import interval_rows

REPORTERS = {"json": json_report, "md": markdown, "html": html_report, "junit": junit}
HOST_FILE = "host.arrows"      # the host-metrics sampler's samples (hostmetrics.HOST_FILE)
SCALING_FILE = "scaling.json"  # `stressx scaling`: in the base directory, levels in instances-N/


@dataclass
class ReportData:
    """What a reporter reads: the results, the stored threshold verdicts (dicts as in
    thresholds.json; [] when none were set) and the stored baseline comparison (or None)."""

    results: Results
    thresholds: list[dict] = field(default_factory=list)
    comparison: dict | None = None
    host_samples: list[dict] = field(default_factory=list)   # host.arrows rows, if any
    scaling: dict | None = None    # the scaling test this run is a level of (scaling.json)
    _intervals: list[dict] | None = field(default=None, repr=False)

    @property
    def summary(self) -> dict:
        return self.results.summary

    @property
    def intervals(self) -> list[dict]:
        if self._intervals is None:
            self._intervals = interval_rows(self.results)
        return self._intervals


def load(results_dir: str | os.PathLike) -> ReportData:
    """Read everything a report needs from a results directory."""
    path = Path(results_dir)
    results = load_results(path)    # first: a format this stressx cannot read stops here
    comparison = None
    if (path / COMPARISON_FILE).exists():
        comparison = json.loads((path / COMPARISON_FILE).read_text())
    host = []
    if (path / HOST_FILE).exists():
        host = read_intervals(path / HOST_FILE).to_pylist()
    scaling = None
    for candidate in (path / SCALING_FILE, path.parent / SCALING_FILE):
        if candidate.exists():
            scaling = json.loads(candidate.read_text())
            break
    return ReportData(results, _thresholds.load(path), comparison, host, scaling)


def parse_formats(text, option: str = "--format") -> list[str]:
    """'json,md' (or several such values) -> ['json', 'md']; 'all' is every format."""
    values = [text] if isinstance(text, str) else list(text or ())
    out = []
    for value in values:
        for name in str(value).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                out += [n for n in REPORTERS if n not in out]
            elif name == "markdown":
                out += [] if "md" in out else ["md"]
            elif name in REPORTERS:
                out += [] if name in out else [name]
            else:
                raise ConfigError(option, f"unknown report format {name!r}; accepted: "
                                          f"{', '.join(REPORTERS)} (comma-separated) or all")
    if not out:
        raise ConfigError(option, f"no report format given; accepted: {', '.join(REPORTERS)} or all")
    return out


def write(data: ReportData, formats: list[str], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Render each format into out_dir (created if needed); returns format -> file path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in formats:
        reporter = REPORTERS[name]
        path = out / reporter.FILENAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(reporter.render(data), encoding="utf-8")
        os.replace(tmp, path)
        written[name] = path
    return written


def build(results_dir: str | os.PathLike, formats: list[str],
          out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """load() then write(): the reports of one results directory (into it by default).
    A scaling test's base directory (scaling.json, one results directory per level) gets the
    reports of every level, each with the scaling analysis; keys are then 'instances-N/FORMAT'."""
    path = Path(results_dir)
    if not (path / "manifest.json").exists() and (path / SCALING_FILE).exists():
        written = {}
        for level in json.loads((path / SCALING_FILE).read_text()).get("levels", []):
            name = f"instances-{level['instances']}"
            if (path / name / "manifest.json").exists():
                dest = Path(out_dir) / name if out_dir else path / name
                for fmt, p in write(load(path / name), formats, dest).items():
                    written[f"{name}/{fmt}"] = p
        return written
    return write(load(path), formats, out_dir or path)
