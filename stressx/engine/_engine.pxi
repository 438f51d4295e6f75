# One shard's load engine. The event loop calls in through three doors: the timerfd (sends are
# due), the connections' protocol callbacks (responses), and a 10 ms housekeeping pass
# (timeouts, stop requests from the coordinator, the drain deadline).
#
# Accounting: every send whose intended time comes inside the run is `due`; it becomes a
# request (written to a socket, or failed connecting to the target) or is `dropped` with a
# reason (D_*) when it never reaches a socket. Every request completes (ok or error) or, in a
# stopped run only, is abandoned. The per-request deadline counts from the intended time.
#
# The class (declared in _core.pxd) holds the lifecycle, the three doors, the request mix,
# settling requests and ending. Its other parts are C functions of the engine (`self`) in
# their own files, as Cython cannot split a class body: _pool.pxi (the connection pool),
# _open.pxi (the open model: the schedule, the queue of waiting sends) and _closed.pxi (the
# closed model: connections that each send the next request as the last one completes).

cdef enum:
    P_SETUP = 0       # pre-opening connections
    P_ARMED = 1       # waiting for the common start instant
    P_RUNNING = 2
    P_DRAINING = 3    # no new sends; waiting for in-flight requests until the deadline
    P_DONE = 4
    SWEEP_INTERVAL_NS = 10000000
    DRAIN_MARGIN_NS = 1000000000  # after sending ends, in-flight requests settle by their own
                                  # deadline (the sweep); this only backs that up
    # how sending ended
    END_DURATION = 0          # the duration is over: nothing more is written
    END_SPENT = 1             # the request budget (or the shape) is spent: queued sends still
                              # go out within their deadline
    END_STOP = 2              # a stop request: queued sends dropped, in-flight ones get the grace

cdef int64_t INT64_MAX = 0x7FFFFFFFFFFFFFFF


@cython.final
cdef class Engine:
    """Drives one shard's requests and records them into its shared-memory slots.

    Open model (rate > 0): sends follow the Schedule; a send that finds no free connection
    opens one (up to max_connections) or waits in a queue, and counts as late; latency is
    measured from the intended send time. Closed model (rate == 0): `connections` connections
    each send their next request as soon as the previous one finishes.
    """
    def __cinit__(self):
        self.pending = <int64_t *>malloc(PENDING_CAPACITY * sizeof(int64_t))
        if self.pending == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.pending)
        free(self.rbuf)
        free(self.request_lens)
        free(self.cum_weights)
        free(self.expect)
        free(self.band_min_us)
        free(self.band_max_us)

    def __init__(self, memory, loop, str host, int port, *, scenarios, ssl_context=None,
                 server_hostname=None, double rate=0.0, int shard_index=0, int shard_count=1,
                 int64_t budget=-1, int64_t duration_ns=-1, int64_t timeout_ns=10_000_000_000,
                 int64_t grace_ns=NS_PER_S, int connections=10, int max_connections=1024,
                 segments=None, users_segments=None, int64_t timer_slack_ns=0):
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} out of range for {shard_count} shards")
        self.mem = memory
        if self.mem.shape[0] < S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS:
            raise ValueError("shared-memory segment too small for the slot layout")
        self.slots = &self.mem[0]
        if self.slots[S_MAGIC] != MAGIC or self.slots[S_VERSION] != LAYOUT_VERSION:
            raise ValueError("shared-memory segment has no stressx layout header")
        self.h_lat = self.slots + S_HISTOGRAMS + H_LATENCY * HIST_SLOTS
        self.h_unc = self.slots + S_HISTOGRAMS + H_LATENCY_UNCORRECTED * HIST_SLOTS
        self.h_lag = self.slots + S_HISTOGRAMS + H_SEND_LAG * HIST_SLOTS
        self.h_fail = self.slots + S_HISTOGRAMS + H_FAILURE * HIST_SLOTS
        self.h_all = self.slots + S_HISTOGRAMS + H_ALL * HIST_SLOTS
        self.loop = loop
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname if ssl_context is not None else None
        self.set_scenarios(scenarios, shard_index)
        segment_of(self.mem, SNAPSHOT_BUFFERS)   # room for the snapshot images
        self.open_model = rate > 0 or segments is not None
        if self.open_model:
            self.schedule = Schedule(rate, shard_index, shard_count, budget, duration_ns,
                                     segments=segments)
        elif users_segments is not None:
            self.users = Schedule(0.0, 0, 1, -1, -1, segments=users_segments)
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.budget = budget
        self.duration_ns = duration_ns
        self.timeout_ns = timeout_ns
        self.grace_ns = min(grace_ns, timeout_ns)
        self.connections = connections
        self.users_change_at = -1
        self.max_connections = max(max_connections, connections)
        if timer_slack_ns < 0:
            raise ValueError(f"timer_slack_ns must be >= 0, got {timer_slack_ns}")
        self.timer_slack_ns = timer_slack_ns if self.open_model else 0
        self.batched = self.timer_slack_ns > 0
        if self.batched:
            self.rbuf = <char *>malloc(RBUF_SIZE)
            if self.rbuf == NULL:
                raise MemoryError()
        self.idle = []
        self.conns = set()
        self.timer = Timer()
        self.snap_timer = Timer()
        self.phase = P_SETUP
        self.done_future = loop.create_future()

    @cython.cdivision(True)   # total > 0: checked before the division
    cdef void set_scenarios(self, list scenarios, int shard_index) except *:
        """scenarios: dicts with request (bytes), weight, expect (status codes; empty: 2xx),
        band_min_us and band_max_us (-1: no band)."""
        cdef int i, code, n = len(scenarios)
        cdef double total = 0.0
        if not 1 <= n <= MAX_SCENARIOS:
            raise ValueError(f"between 1 and {MAX_SCENARIOS} scenarios, got {n}")
        if self.slots[S_N_SCENARIOS] != n:
            raise ValueError(f"segment laid out for {self.slots[S_N_SCENARIOS]} scenarios, got {n}")
        self.n_scenarios = n
        self.requests = [sc["request"] for sc in scenarios]
        self.request_lens = <int64_t *>malloc(n * sizeof(int64_t))
        self.cum_weights = <double *>malloc(n * sizeof(double))
        self.expect = <char *>calloc(n * N_STATUS, 1)
        self.band_min_us = <int64_t *>malloc(n * sizeof(int64_t))
        self.band_max_us = <int64_t *>malloc(n * sizeof(int64_t))
        if not (self.request_lens and self.cum_weights and self.expect and self.band_min_us
                and self.band_max_us):
            raise MemoryError()
        for i, sc in enumerate(scenarios):
            self.request_lens[i] = len(sc["request"])
            total += sc["weight"]
            self.cum_weights[i] = total
            for code in (sc["expect"] or range(200, 300)):
                if 0 <= code < N_STATUS:
                    self.expect[i * N_STATUS + code] = 1
            self.band_min_us[i] = sc["band_min_us"]
            self.band_max_us[i] = sc["band_max_us"]
        if not total > 0:
            raise ValueError("scenario weights must add up to more than 0")
        for i in range(n):
            self.cum_weights[i] /= total
        self.cum_weights[n - 1] = 1.0
        self.sc_base = self.slots + S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS
        self.rng = 0x9E3779B97F4A7C15ULL ^ (<uint64_t>(shard_index + 1) * 0xBF58476D1CE4E5B9ULL)

    cdef inline int pick(self) noexcept:
        """A scenario index drawn by weight (xorshift64*: a few ns, no Python)."""
        cdef double u
        cdef int i = 0
        if self.n_scenarios == 1:
            return 0
        self.rng ^= self.rng >> 12
        self.rng ^= self.rng << 25
        self.rng ^= self.rng >> 27
        u = ((self.rng * <uint64_t>0x2545F4914F6CDD1D) >> 11) * (1.0 / 9007199254740992.0)
        while i < self.n_scenarios - 1 and self.cum_weights[i] <= u:
            i += 1
        return i

    cdef inline int64_t *scenario(self, int i) noexcept:
        return self.sc_base + i * SC_BLOCK

    # -- lifecycle, called from shard.py ---------------------------------------------------
    def prewarm(self):
        """Open the initial connections; the returned future resolves when all have
        connected or failed (failures here are not requests: they count as connect failures,
        by kind, in S_CONNECT_FAIL_KINDS and S_PREWARM_FAIL_KINDS)."""
        cdef int i
        cdef int64_t now = now_ns()
        self.warm_future = self.loop.create_future()
        self.warm_pending = self.connections
        if self.warm_pending == 0:
            self.warm_future.set_result(None)
        for i in range(self.connections):
            open_conn(self, 0, now, False)
        return self.warm_future

    def start(self, int64_t start_ns):
        """Arm the engine to begin at the absolute CLOCK_MONOTONIC instant `start_ns`; returns a
        future that resolves once the shard has finished and drained."""
        if self.phase >= P_DRAINING:  # stopped before the start
            self.complete()
            return self.done_future
        self.start_ns = start_ns
        self.stop_at_ns = start_ns + self.duration_ns if self.duration_ns >= 0 else INT64_MAX
        self.phase = P_ARMED
        self.loop.add_reader(self.timer.fd, self.on_timer)
        self.timer.arm_at(start_ns)
        self.loop.add_reader(self.snap_timer.fd, self.on_snapshot)
        self.snap_timer.arm_at(start_ns + NS_PER_S)
        self.loop.call_later(SWEEP_INTERVAL_NS / 1e9, self.sweep)
        return self.done_future

    def stop(self, bint now=False):
        """Stop sending; drain in-flight requests for the grace period (or not at all)."""
        self.request_stop(now_ns(), 0 if now else self.grace_ns)

    # -- the three doors -------------------------------------------------------------------
    def on_timer(self):
        self.timer.drain()
        cdef int64_t now = now_ns()
        if self.phase == P_ARMED:
            if now < self.start_ns:  # spurious wake-up
                self.timer.arm_at(self.start_ns)
                return
            self.phase = P_RUNNING
            self.slots[S_STATE] = ST_RUNNING
            self.slots[S_CPU_START_NS] = process_cpu_now_ns()
            if self.users is not None:
                self.connections = users_now(self, now)
                self.slots[S_USERS] = self.connections
            if not self.open_model:
                self.slots[S_USERS] = self.connections
                kick_closed(self, now)
        if self.phase != P_RUNNING:
            return
        if self.open_model:
            tick(self, now)
        elif now >= self.stop_at_ns:
            self.end_sending(now, self.stop_at_ns, END_DURATION, 0)
        else:
            self.timer.arm_at(self.stop_at_ns)

    @cython.cdivision(True)   # NS_PER_S is a constant
    def on_snapshot(self):
        """An interval boundary: publish snapshot k, the state at start + k s. After a stall
        that passed several boundaries, only the latest is published (the coordinator's row
        then spans the missed ones)."""
        self.snap_timer.drain()
        cdef int64_t now = now_ns()
        cdef int64_t k = max(self.slots[S_SNAP_NEXT], 1)
        if self.phase == P_DONE:
            return
        if now >= self.start_ns + k * NS_PER_S:
            k = (now - self.start_ns) // NS_PER_S
            if self.batched:
                read_all(self, False)   # responses that came before the boundary count in it
            snapshot_publish(self.slots, k, now, False)
            k += 1
        self.snap_timer.arm_at(self.start_ns + k * NS_PER_S)

    def sweep(self):
        cdef int64_t now = now_ns()
        cdef int64_t stop = self.slots[S_STOP_REQUEST]
        cdef Conn conn
        cdef int target
        self.slots[S_HEARTBEAT_NS] = now
        if self.batched and self.phase == P_RUNNING:
            read_all(self, True)     # responses between sparse wake-ups; servers' closes
            now = now_ns()
        if not self.open_model:
            apply_users_change(self, now)
        if self.users is not None and self.phase == P_RUNNING:
            target = users_now(self, now)
            if target != self.connections:
                self.connections = target
                self.slots[S_USERS] = target
                kick_closed(self, now)
        if self.open_model:
            apply_rate_change(self, now)
        if self.phase == P_RUNNING and now >= self.stop_at_ns:
            take_due_before_end(self, now)
            self.end_sending(now, self.stop_at_ns, END_DURATION, 0)   # the timer ran late
        if stop != STOP_NONE:
            self.request_stop(now, 0 if stop == STOP_NOW else self.grace_ns)
        if len(self.conns) > len(self.idle):
            for conn in list(self.conns):
                if conn.state == C_BUSY and not conn.has_request:
                    # a settled request's late answer, awaited (to reuse the connection) for
                    # as long as a timeout from its write
                    if now - conn.sent_ns >= self.timeout_ns:
                        conn.abort()
                    continue
                # the deadline counts from the intended send time, wherever the wait was
                if not conn.has_request or now - conn.intended_ns < self.timeout_ns:
                    continue
                if conn.state == C_BUSY:
                    self.finish(conn, now, E_TIMEOUT)
                    if now - conn.sent_ns >= self.timeout_ns:
                        conn.abort()
                    # else it lingers: a send that spent its deadline in the queue costs its
                    # verdict, not a connection (no reconnect storm under a backlog)
                elif conn.state == C_CONNECTING:
                    connect_failed(self, conn, E_TIMEOUT)
                    self.finish(conn, now, E_TIMEOUT)
                    self.conns.discard(conn)
                    self.connecting -= 1
                    conn.abort()
                    replace_later(self)
        for conn in (list(self.conns) if self.connecting > 0 else ()):
            # connects opened for queued sends: a stuck one is given up after the timeout
            if (conn.state == C_CONNECTING and not conn.has_request and self.phase >= P_RUNNING
                    and now - conn.opened_ns >= self.timeout_ns):
                connect_failed(self, conn, E_TIMEOUT)
                self.conns.discard(conn)
                self.connecting -= 1
                conn.abort()
                replace_later(self)    # closed model: a pre-warm connect (a stuck TLS
                                       # handshake) leaves a place to fill
        expire_queued(self, now)
        self.slots[S_QUEUED] = self.pending_len
        grow_pool(self, now)
        if self.phase == P_DRAINING:
            self.check_done()
        if self.phase == P_DRAINING and now >= self.drain_deadline_ns:
            self.drop_queued()
            self.abandon_all()
            self.complete()
        if self.phase != P_DONE:
            self.loop.call_later(SWEEP_INTERVAL_NS / 1e9, self.sweep)

    # -- called back by the loop (the open model's poll, the closed model's reconnect) --------
    def on_poll(self):
        if self.phase == P_RUNNING:
            tick(self, now_ns())

    def replace_closed(self):
        cdef int64_t now = now_ns()
        if not self.open_model and may_issue(self, now) and len(self.conns) < self.connections:
            issue(self)
            open_conn(self, now, now, True)
            check_budget(self, now)

    async def connect(self, Conn conn):
        try:
            # plain TCP: a Conn of an https engine does its TLS itself (_tls.pxi)
            await self.loop.create_connection(conn, self.host, self.port)
        except CancelledError:
            return
        except BaseException as exc:
            on_connect_failed(self, conn, exc)

    # -- settling requests -----------------------------------------------------------------
    cdef inline void drop(self, int reason, int64_t n) noexcept:
        """n due sends never reach a socket: neither requests nor errors of the target."""
        self.slots[S_DROPPED] += n
        self.slots[S_DROP_REASONS + reason] += n

    @cython.cdivision(True)   # NS_PER_US is a constant
    cdef inline void finish(self, Conn conn, int64_t now, int kind) noexcept:
        """Settle the connection's request: kind -1 means a response arrived (its status
        decides ok or error, by the scenario's expected statuses), otherwise an E_* failure."""
        cdef int status, sc = conn.scenario
        cdef int64_t latency_us = (now - conn.intended_ns) // NS_PER_US
        cdef int64_t *block = self.scenario(sc)
        conn.has_request = False
        if kind < 0 and now - conn.intended_ns > self.timeout_ns:
            kind = E_TIMEOUT   # an answer after the deadline: no success is slower than it
        self.slots[S_LAST_DONE_NS] = now
        if conn.state == C_CONNECTING:
            self.waiting_connect -= 1
            self.slots[S_SENT] += 1   # a request that failed before reaching a socket
            block[SC_SENT] += 1
        else:
            self.slots[S_INFLIGHT] -= 1
        self.slots[S_COMPLETED] += 1
        if kind < 0:
            status = conn.status
            if not 0 <= status < N_STATUS:
                status = 0
            self.slots[S_STATUS + status] += 1
            if self.expect[sc * N_STATUS + status]:
                self.slots[S_OK] += 1
                block[SC_OK] += 1
                hdr_record(self.h_lat, latency_us)
                hdr_record(self.h_unc, (now - conn.sent_ns) // NS_PER_US)
                hdr_record(block + SC_HEADER, latency_us)
                hdr_record(self.h_all, latency_us)
                hdr_record(block + SC_ALL_HIST, latency_us)
                if self.band_min_us[sc] >= 0 and latency_us < self.band_min_us[sc]:
                    block[SC_VIOLATIONS] += 1
                    block[SC_TOO_FAST] += 1
                elif self.band_max_us[sc] >= 0 and latency_us > self.band_max_us[sc]:
                    block[SC_VIOLATIONS] += 1
                    block[SC_TOO_SLOW] += 1
            else:
                self.slots[S_ERRORS] += 1
                self.slots[S_ERROR_KINDS + E_STATUS] += 1
                block[SC_ERRORS] += 1
                block[SC_ERROR_KINDS + E_STATUS] += 1
                self.record_failure(block, latency_us)
        else:
            self.record_failure(block, self.failure_latency_us(kind, conn.intended_ns, now))
            self.slots[S_ERRORS] += 1
            self.slots[S_ERROR_KINDS + kind] += 1
            block[SC_ERRORS] += 1
            block[SC_ERROR_KINDS + kind] += 1
        if self.phase == P_DRAINING:
            self.check_done()

    @cython.cdivision(True)   # NS_PER_US is a constant
    cdef inline int64_t failure_latency_us(self, int kind, int64_t intended, int64_t now) noexcept:
        """A failure's latency: from the intended send time to the failure; a timeout's is its
        deadline (--timeout), a lower bound of the time it would have taken (censored)."""
        if kind == E_TIMEOUT:
            return self.timeout_ns // NS_PER_US
        return (now - intended) // NS_PER_US

    cdef inline void record_failure(self, int64_t *block, int64_t latency_us) noexcept:
        """Failures are timed too, so all-requests percentiles cannot hide them."""
        hdr_record(self.h_fail, latency_us)
        hdr_record(self.h_all, latency_us)
        hdr_record(block + SC_ALL_HIST, latency_us)

    # -- ending ----------------------------------------------------------------------------
    cdef void end_sending(self, int64_t now, int64_t end_ns, int how, int64_t grace_ns) noexcept:
        """Sending ends at `end_ns` (how: END_*). Sends due by then that never reached a socket
        (still queued, or not yet reached by a late scheduler) are dropped as 'run ended',
        except after a spent budget, where queued sends still go within their deadline.
        In-flight requests keep their own deadline; a stopped run gives them the grace."""
        cdef int64_t due
        if self.phase >= P_DRAINING:
            return
        if self.open_model and self.phase == P_RUNNING:
            due = self.schedule.due_count(min(end_ns, self.stop_at_ns) - self.start_ns)
            if due > self.next_i:
                self.drop(D_RUN_ENDED, due - self.next_i)
                self.next_i = due
            self.slots[S_DUE] = self.next_i
        end_batching(self)           # the drain is the loop's: it reads every connection
        self.phase = P_DRAINING
        self.slots[S_STATE] = ST_DRAINING
        self.slots[S_END_NS] = end_ns
        self.timer.disarm()
        try:
            self.loop.remove_reader(self.timer.fd)
        except BaseException:
            pass
        if how != END_SPENT:
            self.drop_queued()
            self.drop_connecting()
        if how == END_STOP:
            self.stopped = True
            self.drain_deadline_ns = now + grace_ns
        else:
            self.drain_deadline_ns = now + self.timeout_ns + DRAIN_MARGIN_NS
        self.check_done()

    cdef void request_stop(self, int64_t now, int64_t grace_ns) noexcept:
        """A stop request (interrupt, abort): end sending now, or shorten a drain under way."""
        if self.phase < P_DRAINING:
            self.end_sending(now, min(now, self.stop_at_ns) if self.phase == P_RUNNING else now,
                             END_STOP, grace_ns)
        elif self.phase == P_DRAINING:
            self.stopped = True
            self.drop_queued()
            self.drain_deadline_ns = min(self.drain_deadline_ns, now + grace_ns)
            self.check_done()

    cdef void drop_connecting(self) noexcept:
        """Closed model: a request whose connection is still connecting when sending ends would
        be written after the end; it never reached a socket, so it is dropped."""
        cdef Conn conn
        if self.waiting_connect <= 0:
            return
        for conn in list(self.conns):
            if conn.state == C_CONNECTING and conn.has_request:
                conn.has_request = False
                self.waiting_connect -= 1
                self.drop(D_RUN_ENDED, 1)
                self.conns.discard(conn)
                self.connecting -= 1
                conn.abort()

    cdef void drop_queued(self) noexcept:
        if self.pending_len:
            self.drop(D_RUN_ENDED, self.pending_len)
            self.pending_len = 0
        self.slots[S_QUEUED] = 0

    cdef void check_done(self) noexcept:
        if (self.phase == P_DRAINING and self.slots[S_INFLIGHT] <= 0
                and self.waiting_connect <= 0 and self.pending_len == 0):
            self.complete()

    cdef void abandon_all(self) noexcept:
        """The drain deadline passed: in-flight requests are abandoned; a send still waiting
        for its connect never reached a socket, so it is dropped."""
        cdef Conn conn
        for conn in list(self.conns):
            if conn.has_request:
                conn.has_request = False
                if conn.state == C_CONNECTING:
                    self.waiting_connect -= 1
                    self.drop(D_RUN_ENDED, 1)
                else:
                    self.slots[S_ABANDONED] += 1
                    self.slots[S_INFLIGHT] -= 1

    cdef void complete(self) noexcept:
        cdef Conn conn
        if self.phase == P_DONE:
            return
        self.phase = P_DONE
        for conn in list(self.conns):
            conn.has_request = False
            conn.abort()
        self.idle.clear()
        self.timer.close()
        try:
            self.loop.remove_reader(self.snap_timer.fd)
        except BaseException:
            pass
        self.snap_timer.close()
        if not self.done_future.done():
            self.done_future.set_result(None)
