# Declarations of the compiled core (_core.pyx): the C functions and constants it calls from
# outside, and its extension classes with their fields and C methods. The definitions are in
# the _*.pxi files _core.pyx includes; Cython reads this file first, so every file can use every
# class and its fields, whatever the order of the includes.
#
# Units are in the names where a field holds a time or a size: *_ns nanoseconds (of
# CLOCK_MONOTONIC when absolute), *_us microseconds, *_bytes bytes.
cimport cython
from libc.stdint cimport int64_t, uint64_t
from posix.time cimport itimerspec
from posix.types cimport clockid_t


# -- C externs -------------------------------------------------------------------------------

# _clock.pxi: a timerfd is an hrtimer the event loop watches like a socket
cdef extern from "sys/timerfd.h" nogil:
    int timerfd_create(int clockid, int flags)
    int timerfd_settime(int fd, int flags, const itimerspec *new_value, itimerspec *old_value)
    int TFD_NONBLOCK
    int TFD_CLOEXEC
    int TFD_TIMER_ABSTIME

# _clock.pxi: timer slack (wake when asked) and the parent-death signal
cdef extern from "sys/prctl.h" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    int PR_SET_TIMERSLACK
    int PR_SET_PDEATHSIG

# _layout.pxi: 64-bit constants of the shared-memory layout (a C enum would truncate them to int)
cdef extern from *:
    """
    #define STRESSX_MAGIC 0x3130305853525453LL
    #define STRESSX_HDR_HIGHEST 3600000000LL
    """
    const int64_t MAGIC "STRESSX_MAGIC"              # b"STRSX001" little-endian
    const int64_t HDR_HIGHEST "STRESSX_HDR_HIGHEST"  # 1 hour in microseconds

# _histogram.pxi: the bucket index of a value is a count of leading zeros
cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil

# _snapshot.pxi: sequence locks with explicit memory ordering (GCC __atomic builtins)
cdef extern from *:
    """
    #include <string.h>
    static inline int64_t sx_load_acquire(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline int64_t sx_load_relaxed(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void sx_store_release(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void sx_store_relaxed(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline void sx_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void sx_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    static inline int64_t sx_double_bits(double d) { int64_t b; memcpy(&b, &d, 8); return b; }
    static inline double sx_bits_double(int64_t b) { double d; memcpy(&d, &b, 8); return d; }
    /* word by word with relaxed atomics: no data race in C11 terms, plain moves on x86 and arm64 */
    static inline void sx_copy(int64_t *dst, const int64_t *src, int64_t n) {
        for (int64_t i = 0; i < n; i++)
            __atomic_store_n(dst + i, __atomic_load_n(src + i, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    }
    """
    int64_t sx_load_acquire(const int64_t *p) nogil
    int64_t sx_load_relaxed(const int64_t *p) nogil
    void sx_store_release(int64_t *p, int64_t v) nogil
    void sx_store_relaxed(int64_t *p, int64_t v) nogil
    void sx_fence_release() nogil
    void sx_fence_acquire() nogil
    void sx_copy(int64_t *dst, const int64_t *src, int64_t n) nogil
    int64_t sx_double_bits(double d) nogil
    double sx_bits_double(int64_t b) nogil

# _batched.pxi: reading a socket with its kernel receive timestamp (SO_TIMESTAMPNS), and the
# offset that turns that CLOCK_REALTIME stamp into CLOCK_MONOTONIC
cdef extern from *:
    """
    #include <errno.h>
    #include <string.h>
    #include <time.h>
    #include <sys/socket.h>
    #include <sys/uio.h>
    /* recv without blocking; *stamp_ns: the kernel's receive time of the last byte read
       (CLOCK_REALTIME ns; 0 if the kernel gave none). Returns bytes read, 0 at EOF, -errno. */
    static inline Py_ssize_t sx_recv_stamped(int fd, char *buf, size_t len, int64_t *stamp_ns) {
        struct iovec iov;
        char ctrl[CMSG_SPACE(sizeof(struct timespec)) * 2];
        struct msghdr msg;
        struct cmsghdr *c;
        struct timespec ts;
        ssize_t n;
        iov.iov_base = buf; iov.iov_len = len;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov; msg.msg_iovlen = 1;
        msg.msg_control = ctrl; msg.msg_controllen = sizeof ctrl;
        *stamp_ns = 0;
        do { n = recvmsg(fd, &msg, MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
        if (n < 0) return -errno;
        for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                *stamp_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
            }
        }
        return n;
    }
    static inline int sx_enable_rx_stamps(int fd) {
        int one = 1;
        return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    }
    /* CLOCK_REALTIME - CLOCK_MONOTONIC now, ns: read between two monotonic readings */
    static inline int64_t sx_realtime_offset(void) {
        struct timespec a, r, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t mono = ((int64_t)a.tv_sec * 1000000000LL + a.tv_nsec
                        + (int64_t)b.tv_sec * 1000000000LL + b.tv_nsec) / 2;
        return (int64_t)r.tv_sec * 1000000000LL + r.tv_nsec - mono;
    }
    """
    Py_ssize_t sx_recv_stamped(int fd, char *buf, size_t len, int64_t *stamp_ns) nogil
    int sx_enable_rx_stamps(int fd) nogil
    int64_t sx_realtime_offset() nogil
    int SX_EAGAIN "EAGAIN"
    int SX_EWOULDBLOCK "EWOULDBLOCK"
    int SX_ECONNRESET "ECONNRESET"
    int SX_EPIPE "EPIPE"

# _burn.pxi: declared here, not cimported: Cython's posix/time.pxd names pid_t without
# cimporting it, which turns the argument into a Python object
cdef extern from "<time.h>" nogil:
    int c_clock_getcpuclockid "clock_getcpuclockid" (int pid, clockid_t *clock_id)


# -- the send schedule's segments (_schedule.pxi) --------------------------------------------

cdef struct Segment:
    int64_t t0       # start, ns after the run's start
    int64_t end      # end, ns after the run's start (NEVER: open-ended)
    double c0        # sends due before t0 (the integral of the rate up to t0)
    double c1        # ... before end (INFINITY for an open-ended positive rate)
    int kind         # SEG_CONST, SEG_LINEAR or SEG_SINE
    double a         # rate at the segment's start, req/s (a sine's base)
    double k         # linear: slope, req/s per second (the shape's, kept when cut)
    double b         # sine: amplitude, req/s
    double c         # sine: period, seconds (> 0)
    double span      # seconds the sine solver brackets: the length as given, kept when cut


# -- classes ---------------------------------------------------------------------------------

cdef class Engine
cdef class TlsConn


cdef class Timer:
    # A one-shot timerfd armed at absolute CLOCK_MONOTONIC nanoseconds (_clock.pxi).
    cdef readonly int fd                 # the timerfd (-1 once closed)

    cdef inline void arm_at(self, int64_t when_ns) noexcept
    cdef inline void disarm(self) noexcept
    cdef inline void drain(self) noexcept


@cython.final
cdef class Recorder:
    # A histogram recorder over a writable buffer of HIST_SLOTS slots (_histogram.pxi).
    cdef int64_t[::1] slots              # the buffer, held so `h` stays valid
    cdef int64_t *h                      # its first slot: header, then counts (microseconds)

    cpdef void record(self, int64_t value_us)


@cython.final
cdef class Schedule:
    # When each send of one shard is due (_schedule.pxi).
    cdef Segment *segs                   # the rate's pieces, in time order (malloc'd)
    cdef int nsegs                       # how many
    cdef int cursor                      # segment of the last lookup (sends go forward)
    cdef readonly int64_t shard_index    # this shard takes sends shard_index + k * shard_count
    cdef readonly int64_t shard_count    # shards sharing the schedule (>= 1)
    cdef readonly int64_t budget         # sends this shard may make (-1: no limit)
    cdef readonly int64_t duration_ns    # no send due at or after this (-1: the segments bound it)
    cdef readonly double total           # sends the segments hold (INFINITY if open-ended)
    cdef readonly bint paused            # the schedule ends in an open-ended rate of 0

    cdef void set_segments(self, list segments, int64_t at) except *
    cdef int find(self, double x) noexcept
    cdef inline int64_t due_ns(self, int64_t i) noexcept
    cdef inline bint exhausted(self, int64_t i) noexcept
    cdef bint due_by(self, int64_t i, int64_t elapsed_ns) noexcept


@cython.final
cdef class Conn:
    # One keep-alive HTTP/1.1 connection of an Engine, its own asyncio protocol (_http.pxi).
    cdef Engine engine                   # the owner: decides what this connection sends
    cdef object transport                # the asyncio transport, once connected
    cdef object write                    # transport.write, bound once
    cdef object parser                   # httptools.HttpResponseParser, fed every chunk
    cdef int state                       # C_*
    cdef bint has_request                # a request is assigned (waiting to connect, or in flight)
    cdef bint bodiless                   # the request is HEAD: its response has no body, whatever
                                         # its headers announce (RFC 9110 9.3.2)
    cdef bint headers_done               # the final (non-1xx) response's header section is parsed
    cdef bint complete                   # the final response is complete (set inside feed_data)
    cdef bint keep_alive                 # the response lets the connection carry another request
    cdef int status                      # the final response's status code
    cdef Py_ssize_t head_bytes           # bytes of the response head so far, up to MAX_HEAD_BYTES
    cdef bytes tail                      # HEAD: the last bytes fed, for a blank line split across reads
    cdef int scenario                    # which request of the mix is in flight
    cdef int64_t intended_ns             # when the request was due (open model) or first sent (closed)
    cdef int64_t sent_ns                 # when it was written to the socket
    cdef int64_t opened_ns               # when the connect began, for the connect timeout
    cdef object connect_task             # the asyncio task connecting it (None once connected)
    cdef object first_chunk              # the response's first chunk: read only if the server closes
    cdef TlsConn tls                     # https: its TLS state (_tls.pxi); None for http
    cdef int fd                          # its socket, when the engine reads it itself (else -1)
    cdef int64_t arrival_ns              # the kernel's receive time of the bytes being handed in
                                         # (CLOCK_MONOTONIC; 0: now, as the loop delivered them)

    cdef void received(self, object data) noexcept
    cdef int feed_head(self, object data) except -2
    cdef void body_ends_at_eof(self) except *
    cdef bint eof_ends_body(self)
    cdef inline void send(self, int64_t intended_ns, int64_t now) noexcept
    cdef inline void send_picked(self, int64_t intended_ns, int64_t now) noexcept
    cdef void close(self) noexcept
    cdef void abort(self) noexcept


@cython.final
cdef class TlsConn:
    # A Conn's TLS state: an ssl.SSLObject over two memory BIOs, driven by the Conn (_tls.pxi).
    cdef Conn conn                       # the owner
    cdef object sslobj                   # ssl.SSLObject of the engine's context
    cdef object incoming                 # MemoryBIO: records received, not yet decrypted
    cdef object outgoing                 # MemoryBIO: records made, not yet written
    # bound methods, looked up once (the _ssl object's own where there is one: a call less)
    cdef object read                     # SSL_read: plaintext of the next record(s)
    cdef object incoming_write
    cdef object outgoing_read
    cdef object ssl_write                # SSL_write: one request into records
    cdef object transport_write
    cdef bint handshaking                # the handshake is not done yet
    cdef int ticket_looks                # TLS 1.3: chunks left to look for a resumable session in
    cdef object rbuf                     # the engine's plaintext buffer (a bytearray) SSL_read fills
    cdef char *rptr                      # ... its bytes

    cdef void start(self, object transport) noexcept
    cdef inline void flush(self) except *
    cdef void handshake(self) noexcept
    cdef void handshake_failed(self, object exc) noexcept
    cdef void keep_session(self, bint tls13) noexcept
    cdef void received(self, object data) noexcept
    cdef void write_request(self, object data) except *
    cdef void fatal(self, object exc) noexcept
    cdef bint raw_eof(self) noexcept
    cdef void lost(self, object exc) noexcept
    cdef void close_notify(self) noexcept


@cython.final
cdef class Engine:
    # One shard's load engine over its shared-memory segment (_engine.pxi; the connection
    # pool in _pool.pxi, the open model in _open.pxi, the closed model in _closed.pxi).
    # the shard's shared-memory segment
    cdef int64_t[::1] mem                # the whole segment, held so the pointers stay valid
    cdef int64_t *slots                  # its live slots (the S_* layout of _layout.pxi)
    cdef int64_t *h_lat                  # histogram: latency of ok responses, from the intended time
    cdef int64_t *h_unc                  # ... from the actual send time (uncorrected)
    cdef int64_t *h_lag                  # ... send lag: when a send was issued minus its intended time
    cdef int64_t *h_fail                 # ... failures, intended time to the failure
    cdef int64_t *h_all                  # ... every completed request
    # the target
    cdef object loop                     # the shard's uvloop event loop
    cdef object host                     # address to connect to
    cdef object port                     # its TCP port
    cdef object ssl_context              # None for plain HTTP
    cdef object server_hostname          # TLS server name (None without TLS)
    cdef object tls_session              # the last resumable TLS session seen, offered to new ones
    cdef object tls_rbuf                 # https: one bytearray every connection decrypts into
    # the request mix: one entry per scenario, picked per send by weight
    cdef list requests                   # bytes, built once per run
    cdef int n_scenarios                 # entries in the mix (>= 1)
    cdef int64_t *request_lens           # len(requests[i]), bytes
    cdef double *cum_weights             # cumulative, normalised to 1.0
    cdef char *expect                    # n_scenarios x N_STATUS flags: the status counts as ok
    cdef int64_t *band_min_us            # expected latency band per scenario (-1: none)
    cdef int64_t *band_max_us            # ... its upper end (-1: none)
    cdef int64_t *sc_base                # first slot of scenario 0's block
    cdef uint64_t rng                    # xorshift64* state, seeded per shard
    # the model and its limits
    cdef readonly bint open_model        # sends follow a schedule (else: closed model)
    cdef Schedule schedule               # open model: when each send is due
    cdef Schedule users                  # closed model with a shape: active connections over time
    cdef int shard_index                 # this shard's index among shard_count
    cdef int shard_count                 # shards of the run (>= 1)
    cdef int64_t budget                  # closed model: requests this shard may issue (-1: no limit)
    cdef int64_t issued                  # closed model: requests issued so far
    cdef int64_t duration_ns             # how long sending lasts (-1: until the budget is spent)
    cdef int64_t timeout_ns              # each request's deadline, from its intended send time
    cdef int64_t grace_ns                # drain grace after a stop request
    cdef int connections                 # closed model: connections to keep busy; open: pre-opened
    cdef int max_connections             # open model: the pool's cap
    # connections
    cdef list idle                       # connected, no request: a stack
    cdef set conns                       # every connection, connecting or connected
    cdef int64_t waiting_connect         # requests attached to connections still connecting
    cdef int connecting                  # connections still connecting
    cdef int warm_pending                # pre-warm connects not yet settled
    cdef object warm_future              # resolved when the pre-warm connects have all settled
    # time and phase
    cdef int64_t start_ns                # the common start instant (absolute)
    cdef int64_t stop_at_ns              # when sending ends (absolute; INT64_MAX: no duration)
    cdef int64_t next_i                  # open model: index of the next send in the schedule
    cdef Timer timer                     # the next due send (or the end of the duration)
    cdef Timer snap_timer                # the interval boundaries: start + k s (snapshots)
    cdef readonly int phase              # P_*
    cdef int64_t drain_deadline_ns       # when a drain gives up on in-flight requests (absolute)
    cdef int64_t rate_change_seq         # last live rate change applied
    cdef int64_t users_change_at         # closed model: a live change's instant (-1: none pending)
    cdef double users_change             # ... its total number of connections
    cdef object done_future              # resolved when the shard has finished and drained
    # open model: due sends waiting for a connection, oldest first
    cdef int64_t *pending                # intended times, a ring of PENDING_CAPACITY
    cdef int64_t pending_head            # index of the oldest
    cdef int64_t pending_len             # how many wait
    cdef readonly bint stopped           # a stop request ended the run (interrupt, abort)
    # open model with a timer slack (_batched.pxi)
    cdef readonly int64_t timer_slack_ns # sends due within this of the first are taken on one
                                         # wake-up (0: a wake-up per due send)
    cdef bint batched                    # the engine reads its connections itself on its
                                         # wake-ups (their transports paused), while running
    cdef char *rbuf                      # its receive buffer (RBUF_SIZE bytes)

    # the request mix
    cdef void set_scenarios(self, list scenarios, int shard_index) except *
    cdef inline int pick(self) noexcept
    cdef inline int64_t *scenario(self, int i) noexcept
    # settling requests
    cdef inline void finish(self, Conn conn, int64_t now, int kind) noexcept
    cdef inline int64_t failure_latency_us(self, int kind, int64_t intended, int64_t now) noexcept
    cdef inline void record_failure(self, int64_t *block, int64_t latency_us) noexcept
    cdef inline void drop(self, int reason, int64_t n) noexcept
    # ending
    cdef void end_sending(self, int64_t now, int64_t end_ns, int how, int64_t grace_ns) noexcept
    cdef void request_stop(self, int64_t now, int64_t grace_ns) noexcept
    cdef void drop_connecting(self) noexcept
    cdef void drop_queued(self) noexcept
    cdef void check_done(self) noexcept
    cdef void abandon_all(self) noexcept
    cdef void complete(self) noexcept


@cython.final
cdef class Headers:
    # Response headers, case-insensitive (_flow.pxi)
    cdef list _items                     # (name, value) str pairs, in order
    cdef dict _map                       # lower-cased name -> values, built on first lookup

    cdef dict _index(self)


@cython.final
cdef class Response:
    # A response of a Python scenario (_flow.pxi)
    cdef readonly int status
    cdef readonly bytes body
    cdef readonly list raw_headers       # (name, value) bytes pairs as received
    cdef object _headers                 # Headers, made on first use
    cdef public object url               # the path it answered
    cdef public list history             # the redirect responses before it


@cython.final
cdef class FlowStats:
    # Python scenarios' recording into a shard's segment: requests (the totals and their
    # step), timed steps, iterations (the scenario blocks), named counters (_flow.pxi).
    cdef int64_t[::1] mem                # the whole segment, held so the pointers stay valid
    cdef int64_t *slots
    cdef int64_t *h_lat
    cdef int64_t *h_unc
    cdef int64_t *h_lag
    cdef int64_t *h_fail
    cdef int64_t *h_all
    cdef int64_t *sc_base                # scenario block 0
    cdef int64_t *step_base              # step block 0
    cdef readonly int n_scenarios
    cdef readonly int n_steps
    cdef readonly int64_t timeout_ns

    cdef inline int64_t *step(self, int j) noexcept
    cdef void req_sent(self, int step, int64_t nbytes) noexcept
    cdef void req_done(self, int step, int status, int kind, int64_t sent_ns, int64_t now) noexcept
    cdef void block_done(self, int64_t *block, int kind, int64_t latency_us) noexcept


@cython.final
cdef class FlowConn:
    # One virtual user's keep-alive connection: an awaitable request at a time, its whole
    # response (status, headers, body) handed back; after a 101 it carries raw bytes (_flow.pxi).
    cdef FlowStats stats
    cdef object loop
    cdef object transport
    cdef object write
    cdef object parser
    cdef object waiter                   # the future of the request (or raw read) in flight
    cdef readonly int state              # F_*
    cdef int status
    cdef int step
    cdef bint bodiless
    cdef bint headers_done
    cdef bint complete
    cdef bint keep_alive
    cdef bint has_length                 # the response announced Content-Length or chunked coding
    cdef readonly bint set_cookie        # ... and Set-Cookie
    cdef list headers
    cdef list body
    cdef readonly int64_t sent_ns
    cdef bytearray raw                   # upgraded: bytes received, not yet taken
    cdef readonly bint eof               # upgraded: the peer closed

    cdef void settle(self, int kind, int64_t now) noexcept


cdef class UserCore:
    # A virtual user's HTTP side (_flow.pxi): its connection, cookies, request building,
    # redirects; stressx.flows.user.User adds the rest in Python.
    cdef public object runner            # the shard's flows Runner (step names, connect params)
    cdef public dict cookies             # name -> value, sent back on every request
    cdef public int max_redirects
    cdef public FlowConn conn            # its keep-alive connection (None until the first request)
    cdef FlowStats stats
    cdef object loop
    cdef dict cache                      # (method, path) -> (request bytes, step name), shared
    cdef dict steps                      # step name -> block, shared with the runner
    cdef str host_header
    cdef str agent

    cdef int step_of(self, str name) except? -2
    cdef bytes build(self, str method, str path, object headers, bytes body)
    cdef void keep_cookies(self, object resp) except *
