"""Capacity search, scaling and adaptive ramps: the control logic alone, then real runs against
an embedded target whose capacity is known (a pool of N workers, each request D ms)."""
import json

import pytest
import stressx
from stressx import shapes
from stressx._testing.target import TargetThread
from stressx.explore.adaptive import AdaptiveRamp
from stressx.explore.capacity import Probe, next_rate
from stressx.explore.scaling import efficiency_table
from stressx.judge.thresholds import parse_threshold

from conftest import run_cli


def _search(capacity, start=10, ceiling=10_000, precision=0.05, saturate_above=None):
    probes = []
    while True:
        rate, why = next_rate(probes, start, ceiling, precision, 40)
        if rate is None:
            return probes, why
        sat = saturate_above is not None and rate > saturate_above
        probes.append(Probe(rate, rate <= capacity and not sat, [], rate, 0.0, None, sat, ""))


@pytest.mark.parametrize("capacity", [15, 333, 4096, 9000])
def test_search_brackets_the_capacity(capacity):
    probes, why = _search(capacity)
    best = max(p.rate for p in probes if p.passed)
    assert best <= capacity and (capacity - best) / capacity <= 0.05 + 1e-9, (best, why)
    assert "bracketed" in why


def test_search_edges():
    probes, why = _search(5)
    assert len(probes) == 1 and "first probe" in why
    probes, why = _search(10**9, ceiling=1000)
    assert probes[-1].rate == 1000 and "ceiling" in why
    probes, why = _search(10**9, saturate_above=300)
    assert "saturated" in why and max(p.rate for p in probes if p.passed) == 160


def test_efficiency_table():
    levels = efficiency_table([{"instances": 2, "rps": 10.0}, {"instances": 4, "rps": 18.0}])
    assert levels[0]["efficiency"] == 1.0 and levels[1]["efficiency"] == pytest.approx(0.9)


def test_capacity_search_real(tmp_path):
    """4 workers x 20 ms: the target serves 200 req/s; the search must land just below it."""
    with TargetThread(delay_ms=20, concurrency=4) as t:
        r = run_cli("capacity", t.url, "--slo", "p99<80ms", "--start-rps", "50",
                    "--probe-duration", "2s", "--precision", "0.1", "--workers", "1", "-q",
                    "--out", tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    found = json.loads((tmp_path / "capacity.json").read_text())
    # 200/s is the server's ceiling; a slow machine may stop a little lower, never above
    assert 100 <= found["capacity_rps"] <= 200, found
    assert any(not p["passed"] for p in found["probes"])
    assert all(p["latency_ms"]["p99"] < 80 for p in found["probes"] if p["passed"])
    assert "bracketed" in found["stopped"] or "saturated" in found["stopped"]


def test_scaling_real(tmp_path):
    marker = tmp_path / "scaled.txt"
    with TargetThread() as t:
        r = run_cli("scaling", t.url, "--instances", "1,2", "--rps-per-instance", "40",
                    "--duration", "1s", "--workers", "1", "-q",
                    "--scale-cmd", f"echo {{n}} >> {marker}", "--out", tmp_path / "o")
        served = t.counts.requests
    assert r.returncode == 0, r.stderr
    assert served == 40 * 1 + 40 * 2         # each level ran at n x 40/s for 1 s
    assert marker.read_text().split() == ["1", "2"]
    report = json.loads((tmp_path / "o" / "scaling.json").read_text())
    assert [lv["instances"] for lv in report["levels"]] == [1, 2]
    assert report["levels"][1]["rate_target"] == 80
    assert report["levels"][0]["efficiency"] == 1.0
    assert 0.9 < report["levels"][1]["efficiency"] < 1.1
    assert "efficiency" in r.stdout


def test_scaling_failed_command_aborts(tmp_path):
    with TargetThread() as t:
        r = run_cli("scaling", t.url, "--instances", "1", "--rps-per-instance", "5",
                    "--duration", "1s", "--scale-cmd", "exit 7", "--out", tmp_path)
    assert r.returncode == 4 and "exited 7" in r.stderr


def test_adaptive_ramp_backs_off_at_capacity(tmp_path):
    """2 workers x 20 ms serve 100 req/s: the ramp climbs 40, 80, then degrades at 120 and
    backs off, recording why."""
    slo = [parse_threshold("p99<60ms")]
    ramp = AdaptiveRamp(40, 40, 1000, 1.0, slo, 0.01, backoff=0.5, cooldown=1.0)
    with TargetThread(delay_ms=20, concurrency=2) as t:
        r = stressx.run(t.url, shape=shapes.steady(40, 7), workers=1, companions=[ramp],
                        out=tmp_path)
    decisions = r.adaptive["decisions"]
    actions = [d["action"] for d in decisions]
    assert actions[0] == "raise" and "back off" in actions, decisions
    backed = next(d for d in decisions if d["action"] == "back off")
    assert backed["from_rps"] > 100 and backed["reason"] != "latency and errors within limits"
    assert r.adaptive["highest_stable_rps"] <= 100
    # the per-interval targets follow the live changes
    rows = stressx.load_results(tmp_path).intervals.to_pylist()
    assert max(row["rate_target"] for row in rows) > 100


@pytest.mark.parametrize("shape", [shapes.ramp(50, 250, 3), shapes.burst(50, 250, 3, 0.5, 1.5)],
                         ids=["ramp", "burst"])
def test_shaped_runs_follow_the_integral(tmp_path, shape):
    """Real runs: the server receives exactly the shape's integral (ramp 50->250/s over 3 s:
    450; burst: 350), and each 1 s interval's sends match the integral over that interval."""
    with TargetThread() as t:
        r = stressx.run(t.url, shape=shape, workers=2, out=tmp_path)
        served = t.counts.requests
    assert served == r.requests == round(shape.integral(shape.duration))
    rows = stressx.load_results(tmp_path).intervals.to_pylist()
    assert sum(row["sent"] for row in rows) == r.requests
    checked = 0
    for row in rows:
        start, end = row["t_s"] - row["interval_s"], min(row["t_s"], shape.duration)
        if row["interval_s"] > 0.5 and start < shape.duration:
            expected = shape.integral(end) - shape.integral(start)
            assert abs(row["sent"] - expected) <= 3 + 0.02 * expected, (row, expected)
            checked += 1
    assert checked >= 3, rows          # every second of the 3 s shape was compared
