"""Capacity search: the highest rate the target sustains within an SLO.

Probes are short steady open-model runs. The search first doubles the rate until a probe fails
(or a ceiling), then bisects between the last pass and the first failure until the bracket is
within `precision`. A probe the client itself could not deliver (saturated) proves nothing about
the target: the search stops there and says so rather than report a capacity it never measured.
The control logic (`next_rate`) is a pure function of the probes so far.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import EXIT_OK, EXIT_THRESHOLDS, ConfigError
from ..judge.thresholds import evaluate, parse_threshold
from ..units import parse_rate


@dataclass
class Probe:
    """One probe: its rate, the verdict and why, what it measured, its results directory."""
    rate: float
    passed: bool
    reasons: list[str]
    rps: float
    error_rate: float
    latency_ms: dict | None
    saturated: bool
    out_dir: str


@dataclass
class CapacityResult:
    """A capacity search's outcome (capacity.json): the highest passing rate, the limits, why
    the search ended, and every probe; `exit_code` is `stressx capacity`'s (0 a capacity was
    found, 3 even the first probe failed)."""
    capacity: float | None          # highest passing rate, None if even the first failed
    slo: list[str]
    max_error_rate: float
    stopped: str                    # why the search ended
    probes: list[Probe] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.capacity is not None else EXIT_THRESHOLDS

    @property
    def passed(self) -> bool:
        return self.capacity is not None

    def to_json(self) -> dict:
        return {"capacity_rps": self.capacity, "slo": self.slo, "max_error_rate": self.max_error_rate,
                "stopped": self.stopped, "probes": [asdict(p) for p in self.probes]}


def next_rate(probes: list[Probe], start: float, ceiling: float, precision: float,
              max_probes: int) -> tuple[float | None, str]:
    """The next rate to probe, or (None, why the search is over)."""
    if not probes:
        return start, ""
    if len(probes) >= max_probes:
        return None, f"probe budget ({max_probes}) spent"
    last = probes[-1]
    if last.saturated:
        return None, f"the client could not deliver {last.rate:g}/s (saturated): add workers or hosts"
    passed = [p.rate for p in probes if p.passed]
    failed = [p.rate for p in probes if not p.passed]
    if not passed:
        return None, f"the first probe ({start:g}/s) already fails the SLO"
    lo = max(passed)
    if not failed or min(failed) <= lo:
        if lo >= ceiling:
            return None, f"reached the ceiling ({ceiling:g}/s) within the SLO"
        return min(lo * 2, ceiling), ""
    hi = min(f for f in failed if f > lo)
    if (hi - lo) / lo <= precision:
        return None, f"bracketed within {precision:.0%}: passes at {lo:g}/s, fails at {hi:g}/s"
    return (lo + hi) / 2, ""


def judge(summary: dict, slo, max_error_rate: float) -> tuple[bool, list[str]]:
    reasons = [r.message for r in evaluate(slo, summary) if not r.passed]
    done = summary["completed"] or 1
    err = summary["error_count"] / done
    if err > max_error_rate:
        reasons.append(f"error rate {err:.2%} > {max_error_rate:.2%}")
    if summary["saturated"]:
        reasons.append("client saturated: " + "; ".join(summary["saturation"]["reasons"]))
    return not reasons, reasons


def parse_error_rate(text) -> float:
    s = str(text).strip()
    try:
        v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ConfigError("--max-error-rate", f"expected a share like 1% or 0.01, got {s!r}") from None
    if not 0 <= v <= 1:
        raise ConfigError("--max-error-rate", f"must be between 0% and 100%, got {s!r}")
    return v


def _parse(slo, max_error_rate, start, ceiling):
    thresholds = [parse_threshold(s, "--slo") for s in slo]
    max_err = parse_error_rate(max_error_rate)
    start_rate, ceiling_rate = parse_rate(start, "--start-rps"), parse_rate(ceiling, "--max-rps")
    if start_rate > ceiling_rate:
        raise ConfigError("--start-rps", f"must not exceed --max-rps ({ceiling_rate:g})")
    return thresholds, max_err, start_rate, ceiling_rate


def plan(*, slo: list[str], max_error_rate="1%", start="10", ceiling="100000", precision=0.05,
         max_probes=20, out_dir: Path) -> dict:
    """What search() would do, for a dry run: the probes that follow while every probe passes
    (each failure then starts a bisection), validated exactly as search() validates."""
    _, max_err, start_rate, ceiling_rate = _parse(slo, max_error_rate, start, ceiling)
    rates = [start_rate]
    while rates[-1] < ceiling_rate and len(rates) < max_probes:
        rates.append(min(rates[-1] * 2, ceiling_rate))
    return {"command": "capacity", "slo": list(slo), "max_error_rate": max_err,
            "precision": precision, "max_probes": max_probes,
            "probes_while_passing": [{"rate": r, "out": str(out_dir / f"probe-{i + 1:02d}-{r:g}rps")}
                                     for i, r in enumerate(rates)],
            "after_a_failure": "bisect between the last passing and the first failing rate",
            "results": str(out_dir / "capacity.json")}


def search(run_probe, *, slo: list[str], max_error_rate="1%", start="10", ceiling="100000",
           precision=0.05, max_probes=20, out_dir: Path, echo=print) -> CapacityResult:
    """run_probe(rate, out_dir) -> summary dict runs one probe. Returns the result (also
    written to out_dir/capacity.json)."""
    thresholds, max_err, start_rate, ceiling_rate = _parse(slo, max_error_rate, start, ceiling)
    result = CapacityResult(None, list(slo), max_err, "")
    while True:
        rate, why = next_rate(result.probes, start_rate, ceiling_rate, precision, max_probes)
        if rate is None:
            result.stopped = why
            break
        probe_dir = out_dir / f"probe-{len(result.probes) + 1:02d}-{rate:g}rps"
        s = run_probe(rate, probe_dir)
        if s.get("interrupted") or s.get("aborted"):
            result.stopped = f"probe at {rate:g}/s was {'interrupted' if s.get('interrupted') else 'aborted'}"
            break
        ok, reasons = judge(s, thresholds, max_err)
        done = s["completed"] or 1
        result.probes.append(Probe(rate, ok, reasons, s["rps"], round(s["error_count"] / done, 6),
                                   s["latency_ms"], s["saturated"], str(probe_dir)))
        p99 = (s["latency_ms"] or {}).get("p99")
        echo(f"stressx capacity: {rate:10.1f}/s  {'PASS' if ok else 'FAIL'}  p99 {p99} ms  "
             f"errors {s['error_count']}  {'; '.join(reasons)}")
    passing = [p.rate for p in result.probes if p.passed]
    result.capacity = max(passing) if passing else None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "capacity.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result
