# Time and timer primitives. All times inside the core are integer nanoseconds of
# CLOCK_MONOTONIC, which Linux shares between processes, so the coordinator (time.monotonic_ns)
# and every shard agree on one start instant.
from posix.time cimport clock_gettime, timespec, itimerspec, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID
from posix.unistd cimport read as c_read, close as c_close

# timerfd_* and prctl: declared in _core.pxd

cdef enum:
    NS_PER_S = 1000000000
    NS_PER_US = 1000


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * NS_PER_S + ts.tv_nsec


cdef inline int64_t process_cpu_now_ns() noexcept nogil:
    # CLOCK_PROCESS_CPUTIME_ID: this process's CPU time (user + system, all threads), the same
    # quantity /proc/PID/schedstat and psutil's cpu_times() report, to the nanosecond
    cdef timespec ts
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return <int64_t>ts.tv_sec * NS_PER_S + ts.tv_nsec


def monotonic_ns():
    """CLOCK_MONOTONIC in ns, the same clock as time.monotonic_ns() on Linux."""
    return now_ns()


def set_timer_slack_ns(unsigned long slack_ns):
    """Shrink this thread's timer slack (default 50 us) so epoll wakes when asked."""
    return prctl(PR_SET_TIMERSLACK, slack_ns, 0, 0, 0)


def set_parent_death_signal(int signum):
    """Have the kernel send `signum` to this process when its parent dies."""
    return prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


cdef class Timer:
    """A one-shot timerfd armed at absolute CLOCK_MONOTONIC nanoseconds.

    libuv timers have millisecond resolution, which is the ~1 ms of send lag wrk2 shows. A
    timerfd is an hrtimer: the event loop watches its fd like a socket and wakes within
    microseconds of the intended send time, without spinning.
    """
    def __cinit__(self):
        self.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError("timerfd_create failed")

    @cython.cdivision(True)   # NS_PER_S is a constant
    cdef inline void arm_at(self, int64_t when_ns) noexcept:
        cdef itimerspec spec
        if when_ns < 1:
            when_ns = 1  # an all-zero it_value would disarm the timer instead
        spec.it_interval.tv_sec = 0
        spec.it_interval.tv_nsec = 0
        spec.it_value.tv_sec = when_ns // NS_PER_S
        spec.it_value.tv_nsec = when_ns % NS_PER_S
        timerfd_settime(self.fd, TFD_TIMER_ABSTIME, &spec, NULL)

    cdef inline void disarm(self) noexcept:
        cdef itimerspec spec
        spec.it_interval.tv_sec = 0
        spec.it_interval.tv_nsec = 0
        spec.it_value.tv_sec = 0
        spec.it_value.tv_nsec = 0
        timerfd_settime(self.fd, 0, &spec, NULL)

    cdef inline void drain(self) noexcept:
        cdef uint64_t expirations
        c_read(self.fd, &expirations, 8)

    def arm(self, int64_t when_ns):
        self.arm_at(when_ns)

    def close(self):
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)
