# The open model's send schedule: pure arithmetic, no clock, so it is tested with tables.
#
# stressx/load/schedule.py is its Python twin: the same operations in the same order on the same
# IEEE doubles, so both give the same send time to the nanosecond. The twin is the tests'
# oracle (tests/test_schedule_props.py), never a fallback: change both together.
#
# Times are integer nanoseconds after the run's start: segment bounds, the change instant and
# every send time. Doubles appear only inside one segment (tau seconds, sends counted from the
# segment's start), so a long run loses no precision and nothing overflows: a time that does
# not fit in an int64 is NEVER.
from libc.math cimport sqrt, cos, sin, fabs, ceil, nextafter, INFINITY, M_PI

cdef int64_t NEVER = 0x7FFFFFFFFFFFFFFF   # no such send under this schedule; an open end

cdef enum:
    SEG_CONST = 0    # rate a
    SEG_LINEAR = 1   # rate a + k tau            (k: the slope the shape gave, kept when cut)
    SEG_SINE = 2     # rate a + b sin(2 pi tau / c)   (a >= b >= 0, period c seconds)

SEGMENT_KINDS = {"const": SEG_CONST, "linear": SEG_LINEAR, "sine": SEG_SINE}

# struct Segment (a piece of the rate: t0, end, c0, c1, kind, a, k, b, c, span): _core.pxd


@cython.cdivision(True)   # a wave's period s.c > 0: set_segments checks it
cdef inline double seg_rate(Segment *s, double tau) noexcept nogil:
    if s.kind == SEG_CONST:
        return s.a
    if s.kind == SEG_LINEAR:
        return s.a + s.k * tau
    return s.a + s.b * sin(2 * M_PI * tau / s.c)


@cython.cdivision(True)   # a wave's period s.c > 0: set_segments checks it
cdef inline double seg_integral(Segment *s, double tau) noexcept nogil:
    """Sends due in the first `tau` seconds of the segment."""
    if s.kind == SEG_CONST:
        return s.a * tau
    if s.kind == SEG_LINEAR:
        return s.a * tau + 0.5 * s.k * tau * tau
    return s.a * tau + s.b * s.c / (2 * M_PI) * (1 - cos(2 * M_PI * tau / s.c))


@cython.cdivision(True)   # each divisor is checked > 0 first (s.a, d, r)
cdef inline double seg_solve(Segment *s, double x) noexcept nogil:
    """The tau (seconds) at which the segment's integral reaches x >= 0; INFINITY if it
    never does. Depends only on the segment's rate parameters, never on its end, so cutting
    a segment short does not move the sends it keeps."""
    cdef double d, lo, hi, tau, f, r, tol
    cdef int it
    if not x > 0:
        return 0.0                             # also a ramp from 0: no 0/0
    if s.kind == SEG_CONST:
        return x / s.a if s.a > 0 else INFINITY
    if s.kind == SEG_LINEAR:
        d = s.a * s.a + 2 * s.k * x            # a tau + k tau^2 / 2 = x, the stable root
        d = s.a + sqrt(d) if d > 0 else s.a
        return 2 * x / d if d > 0 else INFINITY
    if not s.a > 0:
        return INFINITY
    # sine: Newton's method, kept inside a shrinking bracket
    lo = 0.0
    hi = s.span
    tau = x / s.a
    tol = 1e-12 * (1 + x)
    for it in range(100):
        if not (lo < tau < hi):
            tau = 0.5 * (lo + hi)
        f = seg_integral(s, tau) - x
        if fabs(f) <= tol:
            return tau
        if f > 0:
            hi = tau
        else:
            lo = tau
        r = seg_rate(s, tau)
        if r > 1e-12:
            tau = tau - f / r
        else:
            tau = 0.5 * (lo + hi)
    return 0.5 * (lo + hi)


cdef inline int64_t seg_due(Segment *s, double x, int64_t end) noexcept nogil:
    """ns after the run's start at which the integral reaches x (>= c0) inside segment s,
    clamped to `end` (a time past it is only rounding; NEVER for an open end)."""
    cdef double f = seg_solve(s, x - s.c0) * 1e9 + 0.5
    cdef int64_t room = end - s.t0
    cdef int64_t d
    if not f < <double>room:                   # also NaN and INFINITY
        return end
    d = <int64_t>f
    if d > room:
        d = room
    return s.t0 + d


cdef inline int64_t ns_after(int64_t t0, double seconds) noexcept nogil:
    """t0 + seconds, in ns, saturating at NEVER."""
    cdef double f = seconds * 1e9 + 0.5
    cdef int64_t room = NEVER - t0
    cdef int64_t d
    if not f < <double>room:
        return NEVER
    d = <int64_t>f
    if d > room:
        d = room
    return t0 + d


cdef inline int64_t to_ns(double seconds) noexcept nogil:
    return ns_after(0, seconds) if seconds > 0 else 0


@cython.final
cdef class Schedule:
    """When each send of one shard is due, relative to the common start instant.

    The target rate is a piecewise function of elapsed time (constant, linear or sinusoidal
    segments: every load shape is built from these). Send number j of the whole run is due
    when the integral of the rate rises past j (a send that falls in a pause waits for its
    end), so a changing rate is followed exactly, with no bursts at the joints. Shard k of n takes sends k, k+n, k+2n...: the shards interleave
    evenly instead of bunching. Every time is computed from the send's number directly, so no
    rounding error accumulates over a long run. A shard sends at most `budget` requests (-1: no
    limit) and none due at or after `duration_ns` (-1: only the segments bound it).

    A live change (change_rate) keeps the integral up to its instant and holds the new rate
    from there on; the rest of the shape is dropped (whoever changes the rate owns it until
    the next change), and the run still ends at its duration or budget. Rate 0 pauses: no send
    is due until a later change raises the rate, and sending resumes from the same integral.
    """
    def __cinit__(self, double rate=0.0, int64_t shard_index=0, int64_t shard_count=1,
                  int64_t budget=-1, int64_t duration_ns=-1, segments=None):
        if segments is None:
            if not (rate > 0 and rate < INFINITY):
                raise ValueError(f"rate must be > 0, got {rate}")
            segments = [("const", INFINITY, rate, 0.0, 0.0)]
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} out of range for {shard_count} shards")
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.budget = budget
        self.duration_ns = duration_ns
        self.set_segments(list(segments), 0)

    def __dealloc__(self):
        free(self.segs)

    @cython.cdivision(True)   # every length > 0: checked before anything changes
    cdef void set_segments(self, list segments, int64_t at) except *:
        """Replace the schedule from `at` ns on with `segments`; whatever is due before `at`
        keeps its time."""
        cdef int i, it
        cdef double c = 0.0
        cdef double j
        cdef int64_t t = 0
        cdef int64_t old_end
        cdef double old_c1
        cdef Segment *s
        cdef Segment *old = self.segs
        cdef Segment *new
        cdef int old_n = self.nsegs
        cdef int keep = 0
        cdef int n
        for i, seg in enumerate(segments):      # check everything before changing anything
            kind, length, a, b, cc = seg
            if kind not in SEGMENT_KINDS:
                raise ValueError(f"segment {i}: kind must be one of {', '.join(SEGMENT_KINDS)}, got {kind!r}")
            if not length > 0:
                raise ValueError(f"segment {i}: length must be > 0, got {length}")
            if length == INFINITY and kind != "const":
                raise ValueError(f"segment {i}: only a constant rate can be open-ended")
            if not (0 <= a < INFINITY) or (kind == "linear" and not (0 <= b < INFINITY)):
                raise ValueError(f"segment {i}: rates must be finite and >= 0")
            if kind == "sine" and not (a >= b >= 0 and 0 < cc < INFINITY):
                raise ValueError(f"segment {i}: a wave needs base >= amplitude >= 0 and period > 0")
        if old != NULL and at > 0:
            while keep < old_n and old[keep].t0 < at:
                keep += 1
        n = keep + len(segments)
        if n == 0:
            raise ValueError("a schedule needs at least one segment")
        new = <Segment *>malloc(n * sizeof(Segment))
        if new == NULL:
            raise MemoryError()
        for i in range(keep):
            new[i] = old[i]
        if keep:
            s = &new[keep - 1]
            if s.end > at:
                # cut the running segment at `at`: same rate parameters, so every send it keeps
                # keeps its time; then make sure a send due before `at` (to the ns) stays in it
                old_end = s.end
                old_c1 = s.c1
                s.end = at
                s.c1 = s.c0 + seg_integral(s, (at - s.t0) / 1e9)
                j = ceil(s.c1)                  # the first send the cut hands on
                for it in range(64):
                    if not j < old_c1 or seg_due(s, j, old_end) >= at:
                        break
                    s.c1 = nextafter(j, INFINITY)
                    j += 1
            c = s.c1
            t = at
        for i, (kind, length, a, b, cc) in enumerate(segments):
            s = &new[keep + i]
            s.kind = SEGMENT_KINDS[kind]
            s.a = a
            s.k = (b - a) / length if s.kind == SEG_LINEAR else 0.0
            s.b = b if s.kind == SEG_SINE else 0.0
            s.c = cc if s.kind == SEG_SINE else 0.0
            s.span = length
            s.t0 = t
            s.end = NEVER if length == INFINITY else ns_after(t, length)
            s.c0 = c
            if length == INFINITY:
                s.c1 = INFINITY if a > 0 else c
            else:
                s.c1 = c + seg_integral(s, (s.end - t) / 1e9)
            c = s.c1
            t = s.end
        free(old)
        self.segs = new
        self.nsegs = n
        self.cursor = 0
        self.total = c
        s = &new[n - 1]
        self.paused = s.end == NEVER and not s.c1 > s.c0

    cdef int find(self, double x) noexcept:
        """Index of the segment in which the integral reaches x (-1: never)."""
        cdef int i = self.cursor
        if not x < self.total:
            return -1
        if self.segs[i].c0 > x:
            i = 0
        while i < self.nsegs and self.segs[i].c1 <= x:
            i += 1
        if i >= self.nsegs:
            return -1
        self.cursor = i
        return i

    @cython.cdivision(True)   # shard_count >= 1: __cinit__ checks it
    cdef inline int64_t due_ns(self, int64_t i) noexcept:
        """ns after the start at which send i of this shard is due (NEVER: not under this
        schedule: past the shape's end, paused, or beyond an int64)."""
        cdef int s
        cdef double x
        if i < 0 or i > (NEVER - self.shard_index) // self.shard_count:
            return NEVER
        x = <double>(i * self.shard_count + self.shard_index)
        s = self.find(x)
        if s < 0:
            return NEVER
        return seg_due(&self.segs[s], x, self.segs[s].end)

    cdef inline bint exhausted(self, int64_t i) noexcept:
        """True when send i must not happen: past the budget, the duration or the shape. While
        paused, the next send is NEVER due but not exhausted: a rate change may resume it."""
        cdef int64_t due
        if self.budget >= 0 and i >= self.budget:
            return True
        due = self.due_ns(i)
        if due == NEVER:
            return not self.paused
        return self.duration_ns >= 0 and due >= self.duration_ns

    def change_rate(self, int64_t at_ns, double rate):
        """From `at_ns` ns after the start on, hold a constant total `rate` (a live change:
        adaptive ramps, safety back-off; 0 pauses). Sends due before `at_ns` keep their times."""
        if not (0 <= rate < INFINITY):
            raise ValueError(f"rate must be finite and >= 0, got {rate}")
        self.set_segments([("const", INFINITY, rate, 0.0, 0.0)], max(at_ns, 0))

    def is_exhausted(self, int64_t i):
        """exhausted(i) for Python: send i must not happen (budget, duration, the shape's end)."""
        return self.exhausted(i)

    def due_at(self, int64_t i):
        """Nanoseconds after the start at which send i (0-based) of this shard is due."""
        return self.due_ns(i)

    def rate_at(self, double t):
        """The whole run's target rate (all shards) at t seconds."""
        cdef int i
        cdef int64_t tn = to_ns(t)
        for i in range(self.nsegs):
            if self.segs[i].t0 <= tn < self.segs[i].end:
                return seg_rate(&self.segs[i], (tn - self.segs[i].t0) / 1e9)
        return 0.0

    def integral(self, double t):
        """Sends due in the whole run (all shards) in the first t seconds."""
        return self.integral_ns(to_ns(t))

    def integral_ns(self, int64_t t):
        """Sends due in the whole run (all shards) in the first t ns."""
        cdef int i
        for i in range(self.nsegs):
            if t < self.segs[i].end:
                if t <= self.segs[i].t0:
                    return self.segs[i].c0
                return self.segs[i].c0 + seg_integral(&self.segs[i], (t - self.segs[i].t0) / 1e9)
        return self.total

    def segments_ns(self):
        """[(kind, t0_ns, end_ns, c0, c1)]: the segments as the schedule holds them."""
        kinds = {v: k for k, v in SEGMENT_KINDS.items()}
        return [(kinds[self.segs[i].kind], self.segs[i].t0, self.segs[i].end, self.segs[i].c0,
                 self.segs[i].c1) for i in range(self.nsegs)]

    def pace(self, int64_t sent, int64_t elapsed_ns):
        """(wait_ns, stop) for a shard that has issued `sent` sends `elapsed_ns` after the start:
        wait_ns <= 0 means the next send is already due (by -wait_ns)."""
        if self.exhausted(sent):
            return 0, True
        return self.due_ns(sent) - elapsed_ns, False

    @cython.cdivision(True)   # a constant divisor
    def due_count(self, int64_t elapsed_ns):
        """How many sends are due at or before `elapsed_ns` (within budget, duration, shape)."""
        cdef int64_t lo = 0, hi = 1, mid
        if not self.due_by(0, elapsed_ns):
            return 0
        while self.due_by(hi, elapsed_ns):   # send lo is due, send hi is not
            lo = hi
            hi *= 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.due_by(mid, elapsed_ns):
                lo = mid
            else:
                hi = mid
        return hi

    cdef bint due_by(self, int64_t i, int64_t elapsed_ns) noexcept:
        return not self.exhausted(i) and self.due_ns(i) <= elapsed_ns
