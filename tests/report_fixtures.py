"""Results directories for report, threshold and compare tests.

tests/fixtures/run_v1 is a real run, committed as written: `stressx run URL/api/items --rate 200
--duration 4s --workers 2 --timeout 5ms` against the embedded target with a 4 ms delay (so a
few requests time out). Its figures: 800 requests, 798 ok, 2 timeouts, 200.249 req/s,
latency p50 4.607 / p99 5.099 / max 8.499 ms. Tests copy it and edit the copy's summary.json
(synthetic scenarios, alerts, regressions); the original is never modified.

It predates failure timing: read back (load_results) it gains `all_latency_ms`, derived
exactly from its success histogram and the 2 timeouts at the 5 ms deadline: min 4.33, mean
4.614, p50 4.607, p90 4.751, p95 4.787, p99 5.099, p999 7.703, max 8.499 ms, censored above
p99.75 (p999, max, mean). The synthetic scenarios have no histograms: `checkout`, with its
timeouts, has no all-requests latency; `browse` and `search`, without failures, their own.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

RUN_V1 = Path(__file__).parent / "fixtures" / "run_v1"

#: Per-scenario figures consistent with run_v1's totals (800 requests, 798 ok, 2 timeouts).
SCENARIOS = {
    "browse": {"requests": 500, "completed": 500, "ok": 500, "errors": {},
               "status": {"200": 500}, "baseline_violations": 4,
               "latency_ms": {"min": 4.33, "mean": 4.6, "p50": 4.601, "p90": 4.74, "p95": 4.78,
                              "p99": 5.011, "p999": 7.1, "max": 7.703}},
    "checkout": {"requests": 250, "completed": 250, "ok": 248, "errors": {"timeout": 2},
                 "status": {"200": 248}, "baseline_violations": 0,
                 "latency_ms": {"min": 4.4, "mean": 4.65, "p50": 4.62, "p90": 4.76, "p95": 4.81,
                                "p99": 5.203, "p999": 8.4, "max": 8.499}},
    "search": {"requests": 50, "completed": 50, "ok": 50, "errors": {},
               "status": {"200": 50}, "baseline_violations": 12,
               "latency_ms": {"min": 4.5, "mean": 4.7, "p50": 4.65, "p90": 4.8, "p95": 4.85,
                              "p99": 5.3, "p999": 5.3, "max": 5.3}},
}


def copy_run(tmp_path: Path, name: str = "run") -> Path:
    dest = tmp_path / name
    shutil.copytree(RUN_V1, dest)
    return dest


def edit_summary(results_dir: Path, **changes) -> dict:
    """Update summary.json keys (a dict value for `latency_ms` is merged, not replaced)."""
    path = results_dir / "summary.json"
    s = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "latency_ms" and isinstance(value, dict):
            s["latency_ms"] = {**s["latency_ms"], **value}
        else:
            s[key] = value
    path.write_text(json.dumps(s, indent=2))
    return s


def with_scenarios(tmp_path: Path, name: str = "scenarios") -> Path:
    d = copy_run(tmp_path, name)
    edit_summary(d, scenarios=json.loads(json.dumps(SCENARIOS)))
    return d


def summary() -> dict:
    """run_v1's summary as a reader sees it (load_results: with the all-requests latency)."""
    from stressx.results.files import load_results
    return load_results(RUN_V1).summary
