"""The open-model schedule: pure arithmetic, checked with tables (no clock, no sleeping)."""
import pytest

from stressx.engine._core import Schedule

MS = 1_000_000

PACE_CASES = [
    # rate/s shard n   budget duration_ns   sent elapsed_ns      -> wait_ns       stop
    (1000,   0,    1,  -1,    -1,           0,   0,                 0,            False),
    (1000,   0,    1,  -1,    -1,           5,   4 * MS,            1 * MS,       False),  # next due at 5 ms
    (1000,   0,    1,  -1,    -1,           5,   7 * MS,            -2 * MS,      False),  # 2 ms late
    (2,      0,    1,  -1,    -1,           10,  4_900 * MS,        100 * MS,     False),  # 10 sent (0..4.5 s) at 4.9 s
    (1000,   1,    2,  -1,    -1,           0,   0,                 1 * MS,       False),  # shard 1 of 2: 1 ms phase
    (1000,   1,    2,  -1,    -1,           3,   0,                 7 * MS,       False),  # (3*2+1) ms
    (1000,   0,    1,  10,    -1,           10,  0,                 0,            True),   # budget spent
    (1000,   0,    1,  -1,    10 * MS,      9,   0,                 9 * MS,       False),  # last send at 9 ms
    (1000,   0,    1,  -1,    10 * MS,      10,  0,                 0,            True),   # 10 ms is past the end
    (3,      0,    1,  -1,    -1,           1,   0,                 333_333_333,  False),  # exact to the ns
]


@pytest.mark.parametrize("rate,shard,n,budget,duration,sent,elapsed,wait,stop", PACE_CASES)
def test_pace(rate, shard, n, budget, duration, sent, elapsed, wait, stop):
    s = Schedule(rate, shard, n, budget, duration)
    assert s.pace(sent, elapsed) == (wait, stop)


def test_shards_interleave_evenly():
    """Four shards at 4000/s together send exactly every 250 us, never two at once."""
    times = sorted(Schedule(4000, k, 4).due_at(i) for k in range(4) for i in range(1000))
    gaps = {b - a for a, b in zip(times, times[1:])}
    assert gaps == {250_000}


def test_no_drift_over_a_long_run():
    s = Schedule(7.0)
    assert s.due_at(7 * 3600) == 3600 * 1_000_000_000  # an hour later, still exact


@pytest.mark.parametrize("rate,shard,n,budget,duration,elapsed,count", [
    (1000, 0, 1, -1, -1, 0, 1),              # send 0 is due at the start
    (1000, 0, 1, -1, -1, 999_999, 1),
    (1000, 0, 1, -1, -1, 1 * MS, 2),
    (1000, 1, 2, -1, -1, 0, 0),              # shard 1's first send is 1 ms in
    (1000, 1, 2, -1, -1, 10 * MS, 5),        # 1,3,5,7,9 ms
    (1000, 0, 1, 3, -1, 10 * MS, 3),         # capped by the budget
    (1000, 0, 1, -1, 5 * MS, 10 * MS, 5),    # capped by the duration
    (10_000, 0, 1, -1, 1_000 * MS, 10_000 * MS, 10_000),
])
def test_due_count(rate, shard, n, budget, duration, elapsed, count):
    assert Schedule(rate, shard, n, budget, duration).due_count(elapsed) == count


def test_due_count_matches_due_at():
    s = Schedule(333.0, 2, 3)
    for elapsed in range(0, 50 * MS, 137_731):
        n = s.due_count(elapsed)
        assert n == 0 or s.due_at(n - 1) <= elapsed
        assert s.due_at(n) > elapsed


@pytest.mark.parametrize("args,message", [
    ((0,), "rate"), ((-5,), "rate"), ((100, 2, 2), "shard_index"),
])
def test_bad_schedule(args, message):
    with pytest.raises(ValueError, match=message):
        Schedule(*args)
