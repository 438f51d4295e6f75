# Latency recording into HdrHistogram's bucket layout (lowest 1, highest 3_600_000_000, 3
# significant figures; values in microseconds, so 1 us .. 1 hour). The counts live in shared
# memory; stressx/results/hdr.py holds the read side (percentiles, merging, the standard
# encoding) and a pure-Python twin of counts_index() that the tests compare against.

cdef enum:
    HDR_SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10
    HDR_SUB_BUCKET_HALF_COUNT = 1024
    HDR_SUB_BUCKET_MASK = 2047
    HDR_LEADING_ZERO_COUNT_BASE = 53    # 64 - unit_magnitude(0) - half_count_magnitude(10) - 1
    HDR_COUNTS_LEN = 23552              # (bucket_count 22 + 1) * sub_bucket_half_count
    # a histogram in shared memory: 4 header slots, then the counts
    HH_TOTAL = 0
    HH_MIN = 1
    HH_MAX = 2
    HH_OVERFLOW = 3
    HDR_HEADER_SLOTS = 4
    HIST_SLOTS = 23556                  # HDR_HEADER_SLOTS + HDR_COUNTS_LEN

HDR_PARAMS = dict(lowest=1, highest=HDR_HIGHEST, significant_figures=3,
                  counts_len=HDR_COUNTS_LEN, header_slots=HDR_HEADER_SLOTS, slots=HIST_SLOTS)


cdef inline int64_t hdr_counts_index(int64_t value) noexcept nogil:
    cdef int bucket_index = HDR_LEADING_ZERO_COUNT_BASE - __builtin_clzll(
        <unsigned long long>(value | HDR_SUB_BUCKET_MASK))
    cdef int64_t sub_bucket_index = value >> bucket_index
    return (<int64_t>(bucket_index + 1) << HDR_SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (
        sub_bucket_index - HDR_SUB_BUCKET_HALF_COUNT)


cdef inline void hdr_record(int64_t *h, int64_t value_us) noexcept nogil:
    """Record one value into the histogram at `h`; out-of-range values are clamped and counted
    in HH_OVERFLOW (negative to 0, above an hour to the highest bucket), never dropped."""
    if value_us < 0:
        value_us = 0
        h[HH_OVERFLOW] += 1
    elif value_us > HDR_HIGHEST:
        value_us = HDR_HIGHEST
        h[HH_OVERFLOW] += 1
    h[HDR_HEADER_SLOTS + hdr_counts_index(value_us)] += 1
    h[HH_TOTAL] += 1
    if value_us < h[HH_MIN]:
        h[HH_MIN] = value_us
    if value_us > h[HH_MAX]:
        h[HH_MAX] = value_us


cdef inline void hdr_reset(int64_t *h) noexcept nogil:
    cdef int64_t i
    for i in range(HIST_SLOTS):
        h[i] = 0
    h[HH_MIN] = 0x7FFFFFFFFFFFFFFF


def counts_index(int64_t value):
    """The compiled index maths, exposed for the tests to compare with hdr.counts_index()."""
    return hdr_counts_index(value)


@cython.final
cdef class Recorder:
    """A histogram recorder over a writable int64 buffer of HIST_SLOTS slots.

    The engine records through hdr_record() directly; this class exists for the library, the
    tests and the recording microbenchmark.
    """
    def __cinit__(self, buffer, bint reset=True):
        self.slots = buffer
        if self.slots.shape[0] < HIST_SLOTS:
            raise ValueError(f"histogram buffer holds {self.slots.shape[0]} slots, needs {HIST_SLOTS}")
        self.h = &self.slots[0]
        if reset:
            hdr_reset(self.h)

    cpdef void record(self, int64_t value_us):
        hdr_record(self.h, value_us)

    def record_many(self, int64_t[::1] values):
        """Record an array of values (one C loop)."""
        cdef Py_ssize_t i
        for i in range(values.shape[0]):
            hdr_record(self.h, values[i])

    def bench_record_calls(self, int64_t n, int64_t value_us):
        """Time n calls of the recorder through a cdef method call, as the engine makes them;
        returns nanoseconds per call."""
        cdef int64_t i, t0 = now_ns()
        for i in range(n):
            self.record(value_us + (i & 1023))
        return (now_ns() - t0) / <double>n
