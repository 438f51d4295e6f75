"""Load shapes: rates and integrals against closed forms, and the compiled scheduler following
them exactly."""
import math

import pytest
from stressx import shapes
from stressx.engine._core import Schedule
from stressx.errors import ConfigError

CASES = [
    # shape, t, rate(t), integral(t)
    (shapes.steady(10, 300), 150, 10, 1500),
    (shapes.ramp(1, 21, 100), 50, 11, 1 * 50 + 20 * 50 ** 2 / 200),
    (shapes.ramp(1, 21, 100, down=True), 100 - 1e-9, 1, 1100),
    (shapes.burst(5, 20, 600, 30, 120), 95, 20, 5 * 90 + 20 * 5),
    (shapes.burst(5, 20, 600, 30, 120), 125, 5, 5 * 90 + 20 * 30 + 5 * 5),
    (shapes.wave(10, 5, 300, 600), 75, 15, 10 * 75 + 5 * 300 / (2 * math.pi)),
    (shapes.wave(10, 5, 300, 600), 300, 10, 3000),
    (shapes.step(10, 5, 60, 25, 300), 130, 20, 10 * 60 + 15 * 60 + 20 * 10),
    (shapes.step(10, 5, 60, 25, 300), 290, 25, 600 + 900 + 1200 + 1500 + 25 * 50),
    (shapes.spike(5, 100, 60, 10, 120), 65, 100, 5 * 60 + 100 * 5),
    (shapes.spike(5, 100, 60, 10, 120), 119, 5, 300 + 1000 + 5 * 49),
    (shapes.phases([shapes.steady(10, 10), shapes.ramp(10, 30, 10)]), 15, 20, 100 + 10 * 5 + 20 * 25 / 20),
]


@pytest.mark.parametrize("shape,t,rate,integral", CASES)
def test_rate_and_integral(shape, t, rate, integral):
    assert shape.rate_at(t) == pytest.approx(rate, abs=1e-6)
    assert shape.integral(t) == pytest.approx(integral, rel=1e-9)
    compiled = Schedule(segments=shape.for_schedule())
    assert compiled.rate_at(t) == pytest.approx(rate, abs=1e-6)
    assert compiled.integral(t) == pytest.approx(integral, rel=1e-9)


def test_progressive_preset():
    p = shapes.progressive(1000, phase_duration=60, ramp_up=15, ramp_down=0)
    assert p.duration == 7 * 60
    assert p.rate_at(0) == 0 and p.rate_at(30) == pytest.approx(50)        # idle holds 5%
    assert p.rate_at(60 + 7.5) == pytest.approx(175)                        # light: 10% -> 25%
    assert p.rate_at(6 * 60 + 30) == pytest.approx(1000)                    # chaos at 100%
    light = shapes.progressive(1000, ["light"], phase_duration=60, ramp_up=20, ramp_down=10)
    assert light.rate_at(59.9) == pytest.approx(100 + 150 * 0.1 / 10, rel=1e-3)   # easing down


@pytest.mark.parametrize("shape", [c[0] for c in CASES] + [shapes.progressive(500, phase_duration=20)],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("n", [1, 3])
def test_scheduler_follows_the_integral(shape, n):
    """Sends due by t over all shards match the integral within one request."""
    scheds = [Schedule(0, k, n, -1, -1, segments=shape.for_schedule()) for k in range(n)]
    end = min(shape.duration, 400)
    for i in range(97):
        t = end * i / 96
        due = sum(s.due_count(int(t * 1e9)) for s in scheds)
        assert abs(due - shape.integral(t)) <= 1.0, (t, due, shape.integral(t))


def test_no_burst_at_a_joint():
    """Around a step from 10/s to 1000/s the gaps change from 100 ms to 1 ms, nothing between."""
    s = Schedule(segments=shapes.phases([shapes.steady(10, 1), shapes.steady(1000, 1)]).for_schedule())
    # sends 0..9 every 100 ms, send 10 exactly at the joint (1 s), then one every 1 ms
    times = [s.due_at(i) for i in range(5, 15)]
    assert times == [i * 100_000_000 for i in range(5, 11)] + [1_000_000_000 + k * 1_000_000 for k in range(1, 5)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps == [100_000_000] * 5 + [1_000_000] * 4


def test_live_rate_change_keeps_past_sends():
    s = Schedule(100.0)
    before = [s.due_at(i) for i in range(50)]
    s.change_rate(500_000_000, 1000.0)
    assert [s.due_at(i) for i in range(50)] == before          # all due before 0.5 s
    assert s.due_at(60) == pytest.approx(500_000_000 + 10 * 1_000_000, abs=2)


@pytest.mark.parametrize("make,option", [
    (lambda: shapes.ramp(30, 20, 100), "--min-rps"),
    (lambda: shapes.wave(5, 10, 60, 600), "--amplitude-rps"),
    (lambda: shapes.burst(5, 20, 600, 200, 120), "--burst-duration"),
    (lambda: shapes.spike(5, 50, 100, 30, 120), "--spike-at"),
    (lambda: shapes.steady(-1, 10), "--rps"),
    (lambda: shapes.progressive(100, ["light", "warp"]), "--phases"),
])
def test_bad_shapes_name_the_option(make, option):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.option == option


def test_progressive_phase_weights_drive_following_burners():
    from stressx.hostload.burners.base import FollowShape
    p = shapes.build("progressive", {"max_rps": 100, "ramp_up": 0, "phases": [
        {"name": "light", "cpu_weight": 0.5}, {"name": "heavy", "io_weight": 0}]})
    cpu, io = FollowShape(p, 0.8, "cpu"), FollowShape(p, 1e6, "io")
    assert cpu.level_at(30) == pytest.approx(0.8 * (25 / 75) * 0.5)    # light: 25% of a 75% peak
    assert cpu.level_at(90) == pytest.approx(0.8)                       # heavy, weight 1
    assert io.level_at(30) == pytest.approx(1e6 / 3) and io.level_at(90) == 0
    with pytest.raises(ConfigError, match="cpu_weight"):
        shapes.build("progressive", {"max_rps": 100, "phases": [{"name": "light", "cpu_wait": 1}]})
