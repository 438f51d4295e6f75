# Host-load burners' inner loops (stressx/hostload/burners/): the CPU burner's busy work, absolute
# sleeps, and page touching for the memory burner. Per-period decisions (how much to burn this
# period, level changes, stop requests) stay in Python; only the work itself is here, so the
# CPU a burner spends is real work in C, not interpreter overhead.
from posix.time cimport clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME
from posix.types cimport clockid_t
from libc.string cimport memset

# c_clock_getcpuclockid: declared in _core.pxd

cdef enum:
    BURN_CHUNK_ITERS = 4096     # ~10 us of dependent multiply/xorshift steps between clock reads

cdef volatile uint64_t _burn_sink = 0  # results land here so the compiler keeps the work


cdef inline uint64_t _spin(uint64_t x, int iters) noexcept nogil:
    # a dependency chain (each step needs the last), so it cannot be vectorised or skipped:
    # integer multiply + xorshift keep one core's ALU busy
    cdef int i
    for i in range(iters):
        x = x * <uint64_t>6364136223846793005ULL + <uint64_t>1442695040888963407ULL
        x ^= x >> 29
    return x


def process_cpu_ns():
    """This process's CPU time in ns (CLOCK_PROCESS_CPUTIME_ID)."""
    return process_cpu_now_ns()


def burn_cpu(int64_t budget_ns, int64_t deadline_ns):
    """Busy work until this process has used `budget_ns` more CPU time or CLOCK_MONOTONIC
    reaches `deadline_ns`, whichever comes first. Returns the CPU ns used (overshoot is at
    most one ~10 us chunk). Runs without the GIL; never raises."""
    global _burn_sink
    cdef int64_t start_cpu, used = 0
    cdef uint64_t x = <uint64_t>_burn_sink + 1
    if budget_ns <= 0:
        return 0
    with nogil:
        start_cpu = process_cpu_now_ns()
        while True:
            x = _spin(x, BURN_CHUNK_ITERS)
            used = process_cpu_now_ns() - start_cpu
            if used >= budget_ns or now_ns() >= deadline_ns:
                break
    _burn_sink = x
    return used


def spin_iterations(int64_t iters):
    """`iters` busy steps, untimed (for calibration and tests: real work, measurable)."""
    global _burn_sink
    cdef uint64_t x = <uint64_t>_burn_sink + 1
    with nogil:
        while iters > 0:
            x = _spin(x, BURN_CHUNK_ITERS if iters > BURN_CHUNK_ITERS else <int>iters)
            iters -= BURN_CHUNK_ITERS
    _burn_sink = x


@cython.cdivision(True)   # NS_PER_S is a constant
def sleep_until_ns(int64_t when_ns):
    """Sleep until CLOCK_MONOTONIC reaches `when_ns` (absolute, so oversleep never
    accumulates). Returns 0, or EINTR when a signal woke it early (the caller loops)."""
    cdef timespec ts
    cdef int rc
    if when_ns <= 0:
        return 0
    ts.tv_sec = when_ns // NS_PER_S
    ts.tv_nsec = when_ns % NS_PER_S
    with nogil:
        rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
    return rc


def touch_pages(unsigned char[::1] buf, Py_ssize_t start, Py_ssize_t end,
                Py_ssize_t page_size, unsigned char value):
    """Write one byte in every page of buf[start:end]: the kernel faults each page in, so the
    range becomes resident. Returns the number of pages touched."""
    cdef Py_ssize_t i, n = 0
    if end > buf.shape[0]:
        end = buf.shape[0]
    with nogil:
        i = start
        while i < end:
            buf[i] = value
            i += page_size
            n += 1
    return n


def fill_bytes(unsigned char[::1] buf, Py_ssize_t start, Py_ssize_t end, unsigned char value):
    """memset buf[start:end] to value (the memory burner's churn: rewrite resident pages)."""
    if end > buf.shape[0]:
        end = buf.shape[0]
    if end > start:
        with nogil:
            memset(&buf[start], value, end - start)
    return max(0, end - start)


def process_cpu_ns_of(int pid):
    """CPU time so far (ns, all threads) of process `pid` from its CPU-time clock
    (clock_getcpuclockid): exact even while it runs, unlike /proc/PID/schedstat, which lags a
    running task by up to a scheduler tick. Returns -1 if the process is gone."""
    cdef clockid_t clk
    cdef timespec ts
    if c_clock_getcpuclockid(pid, &clk) != 0:
        return -1
    if clock_gettime(clk, &ts) != 0:
        return -1
    return <int64_t>ts.tv_sec * NS_PER_S + ts.tv_nsec
