# The open model with a timer slack (--timer-slack): fewer wake-ups for the same schedule.
#
# A wake-up (epoll returning, the loop's turn) costs 25-75 us of CPU in a VM (bench_timer.py),
# more than the work of a request, and without a slack the shard wakes for every due send and
# again for every response. With a slack S the engine:
# - sleeps until the first pending send is S overdue, then takes every send due by then on that
#   one wake-up: no send ever goes before its intended time, each is measured from it (latency
#   stays honest), and only the send lag grows, by up to S;
# - reads the responses itself on those same wake-ups, not when they arrive: the connections'
#   transports are paused (the loop does not watch them) and the engine recv()s from every busy
#   socket, taking each response's arrival time from the kernel's receive timestamp
#   (SO_TIMESTAMPNS), so its latency keeps its precision however late it is read.
# The housekeeping sweep (10 ms) reads every connection too, idle ones included (a server's
# close). When sending ends the transports are resumed and the drain is the loop's again.
# C functions of the engine (`self`), split from its class (see _engine.pxi).

cdef enum:
    RBUF_SIZE = 262144        # bytes per recv; a shorter read emptied the socket


cdef void batch_connected(Engine self, Conn conn) noexcept:
    """A connection is up: while the engine reads for itself, it reads this one too."""
    if not self.batched or self.phase >= P_DRAINING:
        return
    try:
        fd = conn.transport.get_extra_info("socket").fileno()
        if sx_enable_rx_stamps(fd) != 0:
            return            # no kernel timestamps: the loop keeps reading it
        # uvloop starts reading a new connection after connection_made returns: pause it on
        # the loop's next turn (what it reads until then takes the usual path)
        self.loop.call_soon(conn.pause_for_engine)
    except BaseException:
        return
    conn.fd = fd


cdef void read_all(Engine self, bint idle_too) noexcept:
    """Read what has arrived on the busy connections (and the idle ones: `idle_too`)."""
    cdef Conn conn
    cdef int64_t offset = sx_realtime_offset()
    for conn in tuple(self.conns):
        if conn.fd >= 0 and (conn.state == C_BUSY or (idle_too and conn.state == C_IDLE)):
            read_conn(self, conn, offset)


cdef void read_conn(Engine self, Conn conn, int64_t offset) noexcept:
    """recv() until the socket is empty; each chunk goes to the connection with its kernel
    arrival time (CLOCK_MONOTONIC, through `offset`)."""
    cdef Py_ssize_t n
    cdef int64_t stamp
    cdef object data
    while conn.fd >= 0 and conn.state != C_CLOSED:
        n = sx_recv_stamped(conn.fd, self.rbuf, RBUF_SIZE, &stamp)
        if n == -SX_EAGAIN or n == -SX_EWOULDBLOCK:
            return
        if n <= 0:
            # EOF or an error: the loop takes the connection back and meets it itself (EOF:
            # eof_received; an error: connection_lost with it)
            if n < 0 and conn.has_request:
                conn.engine.finish(conn, now_ns(),
                                   E_RESET if n == -SX_ECONNRESET or n == -SX_EPIPE else E_OTHER)
                conn.abort()
            unbatch(conn)
            return
        try:
            data = PyBytes_FromStringAndSize(self.rbuf, n)
        except BaseException:
            self.slots[S_PARSE_FAILURES] += 1
            return
        conn.arrival_ns = stamp - offset if stamp > 0 else now_ns()
        if conn.tls is not None:
            conn.tls.received(data)
        else:
            conn.received(data)
        conn.arrival_ns = 0
        if n < RBUF_SIZE:
            return


cdef void take_due_before_end(Engine self, int64_t now) noexcept:
    """The duration is over: with a slack, the sends due before its end that were waiting for
    a wake-up still go (they are late by less than the slack), before sending ends."""
    cdef int64_t due
    if not self.batched or self.phase != P_RUNNING:
        return
    while not self.schedule.exhausted(self.next_i):
        due = self.schedule.due_ns(self.next_i)
        if due >= INT64_MAX - self.start_ns:
            break
        due += self.start_ns
        if due > now or due >= self.stop_at_ns:
            break
        dispatch(self, due, now)
        self.next_i += 1
        now = now_ns()


cdef void unbatch(Conn conn) noexcept:
    """Give a connection back to the loop: it watches its socket again."""
    if conn.fd < 0:
        return
    conn.fd = -1
    if conn.state != C_CLOSED:
        try:
            conn.transport.resume_reading()
        except BaseException:
            pass


cdef void end_batching(Engine self) noexcept:
    """Sending has ended: read what is there, then hand every connection back to the loop."""
    cdef Conn conn
    if not self.batched:
        return
    read_all(self, True)
    self.batched = False
    for conn in tuple(self.conns):
        unbatch(conn)
