"""report.json: the whole run in one JSON document for other programs (dashboards, bots).

Top-level keys: format_version, generated_by, verdict, summary (summary.json as is), thresholds
(the stored verdicts), scenarios (the summary's per-scenario section, {} without one),
intervals (the merged 1 s interval rows, status codes as {code: count}), comparison (the
stored baseline comparison or null), scaling (the scaling test this run is a level of, or
null) and manifest.
"""
from __future__ import annotations

import json
import math

from .._version import __version__
from .figures import verdict

FILENAME = "report.json"
FORMAT_VERSION = 1


def _clean(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def document(data) -> dict:
    s = data.summary
    return _clean({
        "format_version": FORMAT_VERSION,
        "generated_by": f"stressx {__version__}",
        "verdict": verdict(data.thresholds),
        "summary": s,
        "thresholds": data.thresholds,
        "scenarios": s.get("scenarios") or {},
        "intervals": data.intervals,
        "comparison": data.comparison,
        "scaling": data.scaling,
        "manifest": data.results.manifest,
    })


def render(data) -> str:
    return json.dumps(document(data), indent=2) + "\n"
