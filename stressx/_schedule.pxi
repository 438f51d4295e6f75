# The open model's send schedule: pure arithmetic, no clock, so it is tested with tables.
from libc.math cimport sqrt, cos, sin, fabs, INFINITY, M_PI

cdef enum:
    SEG_CONST = 0    # rate a
    SEG_LINEAR = 1   # rate a at the start to b at the end
    SEG_SINE = 2     # rate a + b * sin(2 pi (tau / c))   (a >= b >= 0, period c seconds)

SEGMENT_KINDS = {"const": SEG_CONST, "linear": SEG_LINEAR, "sine": SEG_SINE}

cdef struct Segment:
    double t0        # start, seconds after the run's start
    double length    # seconds (INFINITY for an open-ended last segment)
    double c0        # sends due before t0 (the integral of the rate up to t0)
    double c1        # ... up to t0 + length
    int kind
    double a
    double b
    double c


cdef inline double seg_rate(Segment *s, double tau) noexcept nogil:
    if s.kind == SEG_CONST:
        return s.a
    if s.kind == SEG_LINEAR:
        return s.a + (s.b - s.a) * tau / s.length
    return s.a + s.b * sin(2 * M_PI * tau / s.c)


cdef inline double seg_integral(Segment *s, double tau) noexcept nogil:
    """Sends due in the first `tau` seconds of the segment."""
    if s.kind == SEG_CONST:
        return s.a * tau
    if s.kind == SEG_LINEAR:
        return s.a * tau + (s.b - s.a) * tau * tau / (2 * s.length)
    return s.a * tau + s.b * s.c / (2 * M_PI) * (1 - cos(2 * M_PI * tau / s.c))


cdef inline double seg_solve(Segment *s, double x) noexcept nogil:
    """The tau at which the segment's integral reaches x (0 <= x < its total)."""
    cdef double k, lo, hi, tau, f, r
    cdef int it
    if s.kind == SEG_CONST:
        return x / s.a
    if s.kind == SEG_LINEAR:
        k = (s.b - s.a) / (2 * s.length)       # integral = a tau + k tau^2
        if fabs(k) < 1e-300:
            return x / s.a
        return 2 * x / (s.a + sqrt(s.a * s.a + 4 * k * x))   # the stable root
    # sine: Newton's method, kept inside a shrinking bracket
    lo = 0.0
    hi = s.length                              # a wave is never open-ended
    tau = x / s.a
    for it in range(100):
        if not (lo < tau < hi):
            tau = 0.5 * (lo + hi)
        f = seg_integral(s, tau) - x
        if f > 0:
            hi = tau
        else:
            lo = tau
        r = seg_rate(s, tau)
        if fabs(f) < 1e-9:
            break
        if r > 1e-12:
            tau = tau - f / r
        else:
            tau = 0.5 * (lo + hi)
    return tau


@cython.final
cdef class Schedule:
    """When each send of one shard is due, relative to the common start instant.

    The target rate is a piecewise function of elapsed time (constant, linear or sinusoidal
    segments: every load shape is built from these). Send number j of the whole run is due
    when the integral of the rate reaches j, so a changing rate is followed exactly, with no
    bursts at the joints. Shard k of n takes sends k, k+n, k+2n...: the shards interleave
    evenly instead of bunching. Every time is computed from the send's number directly, so no
    rounding error accumulates over a long run. A shard sends at most `budget` requests (-1: no
    limit) and none due at or after `duration_ns` (-1: only the segments bound it).
    """
    cdef Segment *segs
    cdef int nsegs
    cdef int cursor                      # segment of the last lookup (sends go forward)
    cdef readonly int64_t shard_index, shard_count, budget, duration_ns
    cdef readonly double total           # sends the segments hold (INFINITY if open-ended)

    def __cinit__(self, double rate=0.0, int64_t shard_index=0, int64_t shard_count=1,
                  int64_t budget=-1, int64_t duration_ns=-1, segments=None):
        if segments is None:
            if not rate > 0:
                raise ValueError(f"rate must be > 0, got {rate}")
            segments = [("const", INFINITY, rate, 0.0, 0.0)]
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} out of range for {shard_count} shards")
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.budget = budget
        self.duration_ns = duration_ns
        self.set_segments(segments, 0.0)

    def __dealloc__(self):
        free(self.segs)

    cdef void set_segments(self, list segments, double t0) except *:
        cdef int i
        cdef double c = 0.0
        cdef Segment *s
        cdef Segment *old = self.segs
        cdef Segment *new
        cdef int old_n = self.nsegs
        cdef int keep = 0
        cdef int n
        # keep the segments before t0 (a live rate change replaces only the future)
        if old != NULL and t0 > 0:
            while keep < old_n and old[keep].t0 < t0:
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
            s.length = t0 - s.t0                # cut the running segment at t0
            s.c1 = s.c0 + seg_integral(s, s.length)
            c = s.c1
        for i, (kind, length, a, b, cc) in enumerate(segments):
            s = &new[keep + i]
            s.kind = SEGMENT_KINDS[kind]
            s.length = length
            s.a, s.b, s.c = a, b, cc
            if not length > 0:
                raise ValueError(f"segment {i}: length must be > 0, got {length}")
            if a < 0 or (s.kind == SEG_LINEAR and b < 0):
                raise ValueError(f"segment {i}: rates must be >= 0")
            if s.kind == SEG_SINE and not (a >= b >= 0 and cc > 0):
                raise ValueError(f"segment {i}: a wave needs base >= amplitude >= 0 and period > 0")
            if length == INFINITY and (s.kind != SEG_CONST):
                raise ValueError(f"segment {i}: only a constant rate can be open-ended")
            s.t0 = t0 if i == 0 and keep else (new[keep + i - 1].t0 + new[keep + i - 1].length if keep + i else 0.0)
            s.c0 = c
            s.c1 = c + (s.a * length if length == INFINITY and s.a > 0 else
                        0.0 if length == INFINITY else seg_integral(s, length))
            c = s.c1
        free(old)
        self.segs = new
        self.nsegs = n
        self.cursor = 0
        self.total = c

    cdef int find(self, double x) noexcept:
        """Index of the segment in which the integral reaches x (-1: never)."""
        cdef int i = self.cursor
        if x >= self.total:
            return -1
        if self.segs[i].c0 > x:
            i = 0
        while i < self.nsegs and self.segs[i].c1 <= x:
            i += 1
        if i >= self.nsegs:
            return -1
        self.cursor = i
        return i

    cdef inline int64_t due_ns(self, int64_t i) noexcept:
        """Nanoseconds after the start at which send i of this shard is due (INT64_MAX: never)."""
        cdef double x = <double>(i * self.shard_count + self.shard_index)
        cdef int s = self.find(x)
        cdef Segment *seg
        if s < 0:
            return 0x7FFFFFFFFFFFFFFF
        seg = &self.segs[s]
        return <int64_t>((seg.t0 + seg_solve(seg, x - seg.c0)) * 1e9 + 0.5)  # nearest ns

    cdef inline bint exhausted(self, int64_t i) noexcept:
        """True when send i must not happen: past the budget, the duration or the shape."""
        cdef int64_t due
        if self.budget >= 0 and i >= self.budget:
            return True
        due = self.due_ns(i)
        return due == 0x7FFFFFFFFFFFFFFF or (self.duration_ns >= 0 and due >= self.duration_ns)

    def change_rate(self, double at_s, double rate):
        """From `at_s` seconds on, send at a constant `rate` (a live change: adaptive ramps,
        safety back-off). Sends already due keep their times."""
        if rate <= 0:
            rate = 1e-9
        self.set_segments([("const", INFINITY, rate, 0.0, 0.0)], at_s)

    def due_at(self, int64_t i):
        """Nanoseconds after the start at which send i (0-based) of this shard is due."""
        return self.due_ns(i)

    def rate_at(self, double t):
        """The whole run's target rate (all shards) at t seconds."""
        cdef int i
        for i in range(self.nsegs):
            if self.segs[i].t0 <= t < self.segs[i].t0 + self.segs[i].length:
                return seg_rate(&self.segs[i], t - self.segs[i].t0)
        return 0.0

    def integral(self, double t):
        """Sends due in the whole run (all shards) in the first t seconds."""
        cdef int i
        for i in range(self.nsegs):
            if t < self.segs[i].t0 + self.segs[i].length:
                return self.segs[i].c0 + seg_integral(&self.segs[i], max(0.0, t - self.segs[i].t0))
        return self.total

    def pace(self, int64_t sent, int64_t elapsed_ns):
        """(wait_ns, stop) for a shard that has issued `sent` sends `elapsed_ns` after the start:
        wait_ns <= 0 means the next send is already due (by -wait_ns)."""
        if self.exhausted(sent):
            return 0, True
        return self.due_ns(sent) - elapsed_ns, False

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
