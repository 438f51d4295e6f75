"""The Python twin of the compiled send schedule (``_schedule.pxi``, ``stressx.engine._core.Schedule``).

The same arithmetic, operation for operation and in the same order, on the same IEEE doubles
and int64 nanoseconds, so it gives every send time to the nanosecond as the compiled one does.
It is the tests' oracle (tests/test_schedule_props.py), never a fallback: the engine always
runs the compiled schedule. Change both together.

Times are integer ns after the run's start; doubles appear only inside one segment. A send
time that does not fit an int64 is NEVER. A live change keeps the integral up to its instant
and holds its rate from there (the rest of the shape is dropped); rate 0 pauses.
"""
from __future__ import annotations

import math

NEVER = 0x7FFFFFFFFFFFFFFF
INF = math.inf
KINDS = ("const", "linear", "sine")


def _c_int64(f: float) -> int:
    """C's (int64_t) cast of a double in [0, 2**63): truncation."""
    return int(f)


class _Seg:
    __slots__ = ("t0", "end", "c0", "c1", "kind", "a", "k", "b", "c", "span")

    def copy(self) -> "_Seg":
        s = _Seg()
        for name in self.__slots__:
            setattr(s, name, getattr(self, name))
        return s

    def rate(self, tau: float) -> float:
        if self.kind == "const":
            return self.a
        if self.kind == "linear":
            return self.a + self.k * tau
        return self.a + self.b * math.sin(2 * math.pi * tau / self.c)

    def integral(self, tau: float) -> float:
        if self.kind == "const":
            return self.a * tau
        if self.kind == "linear":
            return self.a * tau + 0.5 * self.k * tau * tau
        return self.a * tau + self.b * self.c / (2 * math.pi) * (1 - math.cos(2 * math.pi * tau / self.c))

    def solve(self, x: float) -> float:
        if not x > 0:
            return 0.0
        if self.kind == "const":
            return x / self.a if self.a > 0 else INF
        if self.kind == "linear":
            d = self.a * self.a + 2 * self.k * x
            d = self.a + math.sqrt(d) if d > 0 else self.a
            return 2 * x / d if d > 0 else INF
        if not self.a > 0:
            return INF
        lo, hi = 0.0, self.span
        tau = x / self.a
        tol = 1e-12 * (1 + x)
        for _ in range(100):
            if not (lo < tau < hi):
                tau = 0.5 * (lo + hi)
            f = self.integral(tau) - x
            if abs(f) <= tol:
                return tau
            if f > 0:
                hi = tau
            else:
                lo = tau
            r = self.rate(tau)
            if r > 1e-12:
                tau = tau - f / r
            else:
                tau = 0.5 * (lo + hi)
        return 0.5 * (lo + hi)

    def due(self, x: float, end: int) -> int:
        f = self.solve(x - self.c0) * 1e9 + 0.5
        room = end - self.t0
        if not f < float(room):
            return end
        return self.t0 + min(_c_int64(f), room)


def ns_after(t0: int, seconds: float) -> int:
    f = seconds * 1e9 + 0.5
    room = NEVER - t0
    if not f < float(room):
        return NEVER
    return t0 + min(_c_int64(f), room)


def to_ns(seconds: float) -> int:
    return ns_after(0, seconds) if seconds > 0 else 0


class Schedule:
    """See stressx.engine._core.Schedule: the same constructor, methods and results."""

    def __init__(self, rate: float = 0.0, shard_index: int = 0, shard_count: int = 1,
                 budget: int = -1, duration_ns: int = -1, segments=None):
        rate = float(rate)
        if segments is None:
            if not (rate > 0 and rate < INF):
                raise ValueError(f"rate must be > 0, got {rate}")
            segments = [("const", INF, rate, 0.0, 0.0)]
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} out of range for {shard_count} shards")
        self.shard_index, self.shard_count = shard_index, shard_count
        self.budget, self.duration_ns = budget, duration_ns
        self.segs: list[_Seg] = []
        self.total = 0.0
        self.paused = False
        self._set_segments(list(segments), 0)

    def _set_segments(self, segments: list, at: int) -> None:
        for i, seg in enumerate(segments):
            kind, length, a, b, cc = seg
            if kind not in KINDS:
                raise ValueError(f"segment {i}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
            if not length > 0:
                raise ValueError(f"segment {i}: length must be > 0, got {length}")
            if length == INF and kind != "const":
                raise ValueError(f"segment {i}: only a constant rate can be open-ended")
            if not (0 <= a < INF) or (kind == "linear" and not (0 <= b < INF)):
                raise ValueError(f"segment {i}: rates must be finite and >= 0")
            if kind == "sine" and not (a >= b >= 0 and 0 < cc < INF):
                raise ValueError(f"segment {i}: a wave needs base >= amplitude >= 0 and period > 0")
        keep = 0
        if self.segs and at > 0:
            while keep < len(self.segs) and self.segs[keep].t0 < at:
                keep += 1
        if keep + len(segments) == 0:
            raise ValueError("a schedule needs at least one segment")
        new = [s.copy() for s in self.segs[:keep]]
        c, t = 0.0, 0
        if keep:
            s = new[-1]
            if s.end > at:
                old_end, old_c1 = s.end, s.c1
                s.end = at
                s.c1 = s.c0 + s.integral((at - s.t0) / 1e9)
                j = float(math.ceil(s.c1))
                for _ in range(64):
                    if not j < old_c1 or s.due(j, old_end) >= at:
                        break
                    s.c1 = math.nextafter(j, INF)
                    j += 1
            c, t = s.c1, at
        for kind, length, a, b, cc in segments:
            s = _Seg()
            s.kind = kind
            s.a = float(a)
            s.k = float((b - a) / length) if kind == "linear" else 0.0
            s.b = float(b) if kind == "sine" else 0.0
            s.c = float(cc) if kind == "sine" else 0.0
            s.span = float(length)
            s.t0 = t
            s.end = NEVER if length == INF else ns_after(t, float(length))
            s.c0 = c
            if length == INF:
                s.c1 = INF if a > 0 else c
            else:
                s.c1 = c + s.integral((s.end - t) / 1e9)
            c, t = s.c1, s.end
            new.append(s)
        self.segs = new
        self.total = c
        last = new[-1]
        self.paused = last.end == NEVER and not last.c1 > last.c0

    def _find(self, x: float) -> int:
        if not x < self.total:
            return -1
        for i, s in enumerate(self.segs):
            if not s.c1 <= x:
                return i
        return -1

    def due_at(self, i: int) -> int:
        if i < 0 or i > (NEVER - self.shard_index) // self.shard_count:
            return NEVER
        x = float(i * self.shard_count + self.shard_index)
        k = self._find(x)
        if k < 0:
            return NEVER
        return self.segs[k].due(x, self.segs[k].end)

    def is_exhausted(self, i: int) -> bool:
        if self.budget >= 0 and i >= self.budget:
            return True
        due = self.due_at(i)
        if due == NEVER:
            return not self.paused
        return self.duration_ns >= 0 and due >= self.duration_ns

    def change_rate(self, at_ns: int, rate: float) -> None:
        rate = float(rate)
        if not (0 <= rate < INF):
            raise ValueError(f"rate must be finite and >= 0, got {rate}")
        self._set_segments([("const", INF, rate, 0.0, 0.0)], max(int(at_ns), 0))

    def rate_at(self, t: float) -> float:
        tn = to_ns(t)
        for s in self.segs:
            if s.t0 <= tn < s.end:
                return s.rate((tn - s.t0) / 1e9)
        return 0.0

    def integral(self, t: float) -> float:
        return self.integral_ns(to_ns(t))

    def integral_ns(self, t: int) -> float:
        for s in self.segs:
            if t < s.end:
                if t <= s.t0:
                    return s.c0
                return s.c0 + s.integral((t - s.t0) / 1e9)
        return self.total

    def segments_ns(self) -> list[tuple]:
        return [(s.kind, s.t0, s.end, s.c0, s.c1) for s in self.segs]

    def pace(self, sent: int, elapsed_ns: int) -> tuple[int, bool]:
        if self.is_exhausted(sent):
            return 0, True
        return self.due_at(sent) - elapsed_ns, False

    def due_count(self, elapsed_ns: int) -> int:
        lo, hi = 0, 1
        if not self._due_by(0, elapsed_ns):
            return 0
        while self._due_by(hi, elapsed_ns):
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._due_by(mid, elapsed_ns):
                lo = mid
            else:
                hi = mid
        return hi

    def _due_by(self, i: int, elapsed_ns: int) -> bool:
        return not self.is_exhausted(i) and self.due_at(i) <= elapsed_ns
