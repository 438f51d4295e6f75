"""The send schedule under random shapes and random live rate changes (hypothesis), checked
against its Python twin (stressx.load.schedule) to the nanosecond, plus the cases that broke:
a ramp from 0 req/s, a change inside a ramp, a pause (rate 0) and rates below 1/s."""
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stressx import shapes
from stressx.engine._core import Schedule
from stressx.load import schedule as twin

NEVER = 2**63 - 1
S = 1_000_000_000
PROPS = settings(max_examples=150, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

rates = st.one_of(
    st.just(0.0),
    st.sampled_from([0.001, 1.0, 10.0, 20.0, 1000.0]),
    st.floats(1e-6, 1e-2),                     # well below 1/s
    st.floats(0.01, 1e4),
)
lengths = st.one_of(st.floats(1e-3, 10.0), st.floats(10.0, 1e6), st.sampled_from([1.0, 3.0, 3600.0]))


@st.composite
def segments(draw):
    kind = draw(st.sampled_from(["const", "linear", "sine"]))
    length = draw(lengths)
    if kind == "const":
        return ("const", length, draw(rates), 0.0, 0.0)
    if kind == "linear":
        return ("linear", length, draw(rates), draw(rates), 0.0)
    a = draw(rates)
    b = draw(st.floats(0.0, 1.0)) * a
    return ("sine", length, a, b, draw(st.floats(0.05, 1e4)))


@st.composite
def shape_lists(draw):
    segs = draw(st.lists(segments(), min_size=1, max_size=6))
    if draw(st.booleans()):
        segs.append(("const", math.inf, draw(rates), 0.0, 0.0))   # an open end
    return segs


@st.composite
def changes(draw):
    """Live changes as (at_ns, rate), in time order as the coordinator makes them."""
    n = draw(st.integers(0, 5))
    ats = sorted(draw(st.lists(st.integers(0, 10**6 * S), min_size=n, max_size=n)))
    if draw(st.booleans()):   # some near the start, where the sends are
        ats = sorted(draw(st.lists(st.integers(0, 30 * S), min_size=n, max_size=n)))
    return [(at, draw(rates)) for at in ats]


def build(segs, k=0, n=1, budget=-1, duration_ns=-1):
    return (Schedule(0.0, k, n, budget, duration_ns, segments=segs),
            twin.Schedule(0.0, k, n, budget, duration_ns, segments=segs))


def indices(limit=120):
    return list(range(limit)) + [1000, 10**6, 10**12, 2**62, 2**63 - 2]


def check_same(c, p, idx):
    """Compiled and twin agree to the ns, and every time is a valid int64 >= 0."""
    assert c.segments_ns() == p.segments_ns()
    assert (c.total, c.paused) == (p.total, p.paused)
    times = [c.due_at(i) for i in idx]
    assert times == [p.due_at(i) for i in idx]
    assert [c.is_exhausted(i) for i in idx] == [p.is_exhausted(i) for i in idx]
    assert all(0 <= t <= NEVER for t in times)
    assert times == sorted(times), "send times must not decrease"
    return times


def check_integral(c, p, segs_ns):
    """The integral: the same in both, finite, continuous at every joint, non-decreasing."""
    points = sorted({0, 1} | {b for _, t0, end, _, _ in segs_ns for b in (t0, t0 + 1, end - 1, end)
                              if 0 <= b < NEVER}
                    | {(t0 + min(end, t0 + 10**15)) // 2 for _, t0, end, _, _ in segs_ns})
    values = [c.integral_ns(t) for t in points]
    assert values == [p.integral_ns(t) for t in points]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    for (t1, v1), (t2, v2) in zip(zip(points, values), zip(points[1:], values[1:])):
        assert v2 >= v1 - 1e-9 * max(1.0, v1), (t1, v1, t2, v2)
        if t2 == t1 + 1:   # across a joint too: at most 1 ns of the highest rate (1e4/s)
            assert v2 - v1 <= 1e-5 + 1e-9 * max(1.0, v1), (t1, v1, t2, v2)


def check_times_follow_integral(c, times):
    """Send j (of the whole run, shard_count 1) is due where the integral rises past j."""
    for j, t in enumerate(times[:120]):
        if t >= NEVER:
            break
        tol = 1e-6 * max(1.0, j)
        assert c.integral_ns(max(t - 1, 0)) <= j + tol, (j, t)
        if t + 1 < NEVER:
            assert c.integral_ns(t + 1) >= j - tol, (j, t)


@PROPS
@given(shape_lists(), st.integers(1, 4), st.data())
def test_compiled_and_twin_agree_for_any_shape(segs, n, data):
    k = data.draw(st.integers(0, n - 1))
    c, p = build(segs, k, n)
    check_same(c, p, indices())
    check_integral(c, p, c.segments_ns())
    for t in (0.0, 0.5, 1.0, 2.5, 100.0, 1e5):
        assert c.rate_at(t) == p.rate_at(t) and c.integral(t) == p.integral(t)


@PROPS
@given(shape_lists(), changes())
def test_live_changes_keep_what_was_due(segs, live):
    """Any sequence of changes (0 and back included): both agree, nothing overflows, the
    integral stays continuous, and a send due before a change keeps its time to the ns."""
    c, p = build(segs)
    idx = indices()
    times = check_same(c, p, idx)
    check_times_follow_integral(c, times)
    for at, rate in live:
        before_int = c.integral_ns(at)
        c.change_rate(at, rate)
        p.change_rate(at, rate)
        after = check_same(c, p, idx)
        for i, old, new in zip(idx, times, after):
            if old < at:
                assert new == old, f"send {i} due at {old} ns moved to {new} by a change at {at}"
            else:
                assert new >= at, f"send {i} now due at {new}, before the change at {at}"
        assert c.integral_ns(at) == pytest.approx(before_int, rel=1e-12, abs=1e-9)
        assert c.rate_at(at / 1e9 + 1e-9) == rate or at / 1e9 + 1e-9 >= 2**63 / 1e9
        check_integral(c, p, c.segments_ns())
        check_times_follow_integral(c, after)
        times = after


@PROPS
@given(shape_lists(), changes(), st.integers(1, 3), st.integers(-1, 500), st.integers(-1, 60 * S))
def test_shards_budget_and_duration_agree(segs, live, n, budget, duration_ns):
    for k in range(n):
        c, p = build(segs, k, n, budget, duration_ns)
        for at, rate in live:
            c.change_rate(at, rate)
            p.change_rate(at, rate)
        check_same(c, p, indices(60))
        assert [c.pace(i, 5 * S) for i in range(0, 60, 7)] == [p.pace(i, 5 * S) for i in range(0, 60, 7)]
        assert c.due_count(10 * S) == p.due_count(10 * S)


# -- the measured bugs, one by one -------------------------------------------------------------
@pytest.mark.parametrize("S_", [Schedule, twin.Schedule])
def test_a_ramp_from_zero_starts_at_zero_not_int64_min(S_):
    s = S_(segments=shapes.ramp(0, 20, 3).for_schedule())
    times = [s.due_at(i) for i in range(31)]
    assert times[0] == 0 and 0 < times[1] < times[2]
    # rate 20 t / 3: integral 10/3 t^2, so send j is due at sqrt(0.3 j) s; 30 sends in 3 s
    assert all(abs(t - math.sqrt(0.3 * j) * 1e9) <= 2 for j, t in enumerate(times[:30]))
    assert times[30] == NEVER
    idle = S_(segments=shapes.progressive(100, ["idle"], phase_duration=10, ramp_up=5).for_schedule())
    assert idle.due_at(0) == 0 and idle.due_at(1) > 0


@pytest.mark.parametrize("S_", [Schedule, twin.Schedule])
def test_a_change_inside_a_ramp_moves_nothing_due_before_it(S_):
    s = S_(segments=shapes.ramp(10, 20, 20).for_schedule())
    before = [s.due_at(i) for i in range(60)]
    s.change_rate(2 * S, 15.0)
    after = [s.due_at(i) for i in range(60)]
    assert [t for t in after if t < 2 * S] == [t for t in before if t < 2 * S]   # 21 sends
    assert s.integral(2.0) == pytest.approx(21.0)       # 10*2 + 0.5*0.5*2^2: the slope kept
    assert after[21] == 2 * S                           # the integral reaches 21 at the change
    assert after[22:25] == [2 * S + 66_666_667, 2 * S + 133_333_333, 2 * S + 200_000_000]


@pytest.mark.parametrize("S_", [Schedule, twin.Schedule])
def test_rate_zero_pauses_and_resumes_exactly(S_):
    s = S_(10.0, duration_ns=100 * S)
    s.change_rate(1_050_000_000, 0.0)          # 10 sends (0..0.9 s), then 10.5 due: paused
    assert s.paused and s.due_at(11) == NEVER and not s.is_exhausted(11)
    assert s.due_at(10) == 1_000_000_000       # due before the pause: kept
    assert s.integral(50.0) == pytest.approx(10.5)
    s.change_rate(20 * S, 2.0)                 # resume: the half send owed comes first
    assert not s.paused
    assert [s.due_at(i) for i in (11, 12, 13)] == [20 * S + 250_000_000, 20 * S + 750_000_000,
                                                   21 * S + 250_000_000]


@pytest.mark.parametrize("S_", [Schedule, twin.Schedule])
def test_rates_below_one_per_second_and_no_overflow(S_):
    s = S_(0.001)
    assert [s.due_at(i) for i in range(3)] == [0, 1000 * S, 2000 * S]
    s.change_rate(5 * S, 1e-9)                 # one send per 31.7 years
    assert abs(s.due_at(1) - (5 * S + 995_000_000 * S)) < 10_000   # (1 - 0.005) / 1e-9 s later
    assert s.due_at(10) == NEVER and s.due_at(2**62) == NEVER    # past 2**63 ns: never
    assert S_(1e-300).due_at(1) == NEVER       # past any int64 time: never, not negative


@pytest.mark.parametrize("S_", [Schedule, twin.Schedule])
def test_bad_rates_are_refused(S_):
    s = S_(10.0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="rate"):
            s.change_rate(S, bad)
    with pytest.raises(ValueError, match="segment 0"):
        S_(segments=[("linear", math.inf, 1.0, 2.0, 0.0)])
    with pytest.raises(ValueError, match="segment 0"):
        S_(segments=[("const", 1.0, math.nan, 0.0, 0.0)])
