# The open model's send schedule: pure arithmetic, no clock, so it is tested with tables.

@cython.final
cdef class Schedule:
    """When each send of one shard is due, relative to the common start instant.

    With a total rate of R requests/s split over n shards, shard k's i-th send is due at
    (i*n + k) * 1e9 / R ns: the shards interleave evenly instead of bunching, and every time is
    computed from i directly, so no rounding error accumulates over a long run. A shard sends
    at most `budget` requests (-1: no limit) and none due at or after `duration_ns` (-1: none).
    """
    cdef readonly double rate
    cdef readonly int64_t shard_index, shard_count, budget, duration_ns
    cdef double ns_per_slot

    def __cinit__(self, double rate, int64_t shard_index=0, int64_t shard_count=1,
                  int64_t budget=-1, int64_t duration_ns=-1):
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} out of range for {shard_count} shards")
        self.rate = rate
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.budget = budget
        self.duration_ns = duration_ns
        self.ns_per_slot = 1e9 / rate

    cdef inline int64_t due_ns(self, int64_t i) noexcept:
        return <int64_t>((i * self.shard_count + self.shard_index) * self.ns_per_slot)

    cdef inline bint exhausted(self, int64_t i) noexcept:
        """True when send i must not happen: past the budget or past the duration."""
        if self.budget >= 0 and i >= self.budget:
            return True
        return self.duration_ns >= 0 and self.due_ns(i) >= self.duration_ns

    def due_at(self, int64_t i):
        """Nanoseconds after the start at which send i (0-based) of this shard is due."""
        return self.due_ns(i)

    def pace(self, int64_t sent, int64_t elapsed_ns):
        """(wait_ns, stop) for a shard that has issued `sent` sends `elapsed_ns` after the start:
        wait_ns <= 0 means the next send is already due (by -wait_ns)."""
        if self.exhausted(sent):
            return 0, True
        return self.due_ns(sent) - elapsed_ns, False

    def due_count(self, int64_t elapsed_ns):
        """How many sends are due at or before `elapsed_ns` (within budget and duration)."""
        cdef int64_t n
        if elapsed_ns < 0:
            return 0
        n = <int64_t>(((elapsed_ns / self.ns_per_slot) - self.shard_index) / self.shard_count) + 1
        if n < 0:
            n = 0
        while n > 0 and self.due_ns(n - 1) > elapsed_ns:  # float edge: fix by exact check
            n -= 1
        while self.due_ns(n) <= elapsed_ns:
            n += 1
        while n > 0 and self.exhausted(n - 1):
            n -= 1
        return n
