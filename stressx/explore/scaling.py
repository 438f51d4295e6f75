"""Scaling tests: one steady run per instance count, at count x the per-instance rate.

Before each level an optional user command scales the target (`--scale-cmd 'kubectl scale
deploy/api --replicas={n}'`). The result per level is throughput, latency and errors, and the
scaling efficiency: throughput per instance relative to the smallest level (1.0 = linear).
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_OK, ConfigError

SCALE_CMD_TIMEOUT_S = 600


class ScaleCommandFailed(RuntimeError):
    pass


@dataclass
class ScalingResult:
    """A scaling test's outcome (scaling.json): per level (dicts: instances, rate_target, rps,
    rps_per_instance, efficiency, ok, error_count, error_rate, latency_ms, saturated,
    exit_code), the rate per instance and the scale command; `exit_code` is `stressx
    scaling`'s: the worst level's (the levels after an interrupted one did not run)."""
    rate_per_instance: float
    scale_cmd: str | None
    levels: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((lv["exit_code"] for lv in self.levels), default=EXIT_OK)

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_json(self) -> dict:
        return {"rate_per_instance": self.rate_per_instance, "scale_cmd": self.scale_cmd,
                "levels": self.levels}


def parse_levels(text) -> list[int]:
    try:
        levels = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError("--instances", f"expected instance counts like 2,4,6,8, got {text!r}") from None
    if not levels or any(n < 1 for n in levels):
        raise ConfigError("--instances", f"expected positive instance counts like 2,4,6,8, got {text!r}")
    return sorted(set(levels))


def scale_command(template: str, n: int) -> str:
    """The command run before the level with `n` instances."""
    return template.replace("{n}", str(n))


def plan(levels: list[int], rate_per_instance: float, out_dir: Path,
         scale_cmd: str | None = None) -> dict:
    """What run_scaling() would do, for a dry run: each level's rate and command."""
    return {"command": "scaling", "rate_per_instance": rate_per_instance, "scale_cmd": scale_cmd,
            "levels": [{"instances": n, "rate": n * rate_per_instance,
                        "scale_cmd": scale_command(scale_cmd, n) if scale_cmd else None,
                        "out": str(out_dir / f"instances-{n}")} for n in levels],
            "results": str(out_dir / "scaling.json")}


def run_scale_command(template: str, n: int, echo) -> None:
    cmd = scale_command(template, n)
    echo(f"stressx scaling: {cmd}")
    try:
        done = subprocess.run(cmd, shell=True, timeout=SCALE_CMD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ScaleCommandFailed(f"scale command timed out after {SCALE_CMD_TIMEOUT_S} s: {cmd}") from None
    if done.returncode != 0:
        raise ScaleCommandFailed(f"scale command exited {done.returncode}: {cmd}")


def efficiency_table(levels: list[dict]) -> list[dict]:
    """Add per-instance throughput and efficiency (relative to the smallest level)."""
    base = levels[0]["rps"] / levels[0]["instances"] if levels and levels[0]["rps"] else None
    for lv in levels:
        lv["rps_per_instance"] = round(lv["rps"] / lv["instances"], 3)
        lv["efficiency"] = round(lv["rps_per_instance"] / base, 4) if base else None
    return levels


def run_scaling(levels: list[int], rate_per_instance: float, run_level, out_dir: Path,
                scale_cmd: str | None = None, echo=print) -> ScalingResult:
    """run_level(rate, out_dir) -> summary dict runs one level. The result is also written
    to out_dir/scaling.json."""
    results = []
    for n in levels:
        if scale_cmd:
            run_scale_command(scale_cmd, n, echo)
        s = run_level(n * rate_per_instance, out_dir / f"instances-{n}")
        done = s["completed"] or 1
        results.append({"instances": n, "rate_target": n * rate_per_instance, "rps": s["rps"],
                        "ok": s["ok"], "error_count": s["error_count"],
                        "error_rate": round(s["error_count"] / done, 6),
                        "latency_ms": s["latency_ms"], "saturated": s["saturated"],
                        "exit_code": s["exit_code"]})
        if s["exit_code"] >= 128:
            break
    result = ScalingResult(rate_per_instance, scale_cmd, efficiency_table(results))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scaling.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def format_scaling(result: ScalingResult) -> str:
    lines = [f"{'instances':>9} {'target/s':>9} {'rps':>9} {'rps/inst':>9} {'efficiency':>10} "
             f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"]
    for lv in result.levels:
        lat = lv["latency_ms"] or {}
        eff = f"{lv['efficiency']:.2f}" if lv["efficiency"] is not None else "-"
        lines.append(f"{lv['instances']:>9} {lv['rate_target']:>9g} {lv['rps']:>9.1f} "
                     f"{lv['rps_per_instance']:>9.1f} {eff:>10} {lat.get('p50', '-'):>8} "
                     f"{lat.get('p99', '-'):>8} {lv['error_count']:>7}")
    return "\n".join(lines)
