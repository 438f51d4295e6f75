# The connection pool of an Engine: opening connections (pre-warm, for queued sends, to
# replace closed ones), a connect's outcome, and what a connection does when its request is
# settled: take the oldest queued send (open model), the next request (closed model), or
# wait idle. C functions of the engine (`self`), split from its class (see _engine.pxi).


cdef void open_conn(Engine self, int64_t intended, int64_t now, bint with_request) noexcept:
    cdef Conn conn = Conn(self)
    conn.opened_ns = now
    self.slots[S_CONNECT_ATTEMPTS] += 1
    if with_request:
        conn.has_request = True
        conn.intended_ns = intended
        conn.scenario = self.pick()
        self.waiting_connect += 1
    self.conns.add(conn)
    self.connecting += 1
    conn.connect_task = self.loop.create_task(self.connect(conn))


cdef void on_connected(Engine self, Conn conn) noexcept:
    cdef int64_t now = now_ns()
    conn.connect_task = None
    self.connecting -= 1
    self.slots[S_CONNECTS] += 1
    self.slots[S_CONN_OPEN] += 1
    batch_connected(self, conn)
    if conn.has_request:
        self.waiting_connect -= 1
        if self.phase == P_DRAINING:
            self.slots[S_END_NS] = now   # a spent budget's last write
        conn.send_picked(conn.intended_ns, now)
        return
    conn.state = C_IDLE
    if self.phase == P_SETUP:
        self.idle.append(conn)
        warm_done(self)
    else:
        release(self, conn, now)


cdef void connect_failed(Engine self, Conn conn, int kind) noexcept:
    """Count a failed connect by kind; one begun before the start is a pre-warm one."""
    self.slots[S_CONNECT_FAIL_KINDS + kind] += 1
    if self.phase < P_RUNNING or conn.opened_ns < self.start_ns:
        self.slots[S_PREWARM_FAIL_KINDS + kind] += 1


cdef void on_connect_failed(Engine self, Conn conn, object exc) noexcept:
    cdef int kind = classify_exception(exc, True)
    cdef int64_t now = now_ns()
    self.conns.discard(conn)
    self.connecting -= 1
    connect_failed(self, conn, kind)
    if self.phase == P_SETUP:
        conn.state = C_CLOSED
        warm_done(self)
        return
    if conn.has_request:
        self.finish(conn, now, kind)
    elif self.pending_len > 0:
        # the send this connection was opened for fails with it; the next one retries
        expire_queued(self, now)
        if self.pending_len > 0:
            fail_queued(self, kind, now)
        grow_pool(self, now)
        if self.phase == P_DRAINING:
            self.check_done()
    conn.state = C_CLOSED
    replace_later(self)


cdef void warm_done(Engine self) noexcept:
    self.warm_pending -= 1
    if self.warm_pending <= 0 and not self.warm_future.done():
        self.warm_future.set_result(None)


cdef void on_closed(Engine self, Conn conn) noexcept:
    cdef int64_t now
    if conn in self.conns:
        self.conns.discard(conn)
        self.slots[S_CONN_OPEN] -= 1
    try:
        self.idle.remove(conn)
    except ValueError:
        pass
    if self.phase == P_RUNNING and not self.open_model:
        now = now_ns()
        if may_issue(self, now) and len(self.conns) < self.connections:
            issue(self)
            open_conn(self, now, now, True)
            check_budget(self, now)
    elif self.phase == P_DRAINING:
        self.check_done()


cdef inline void release(Engine self, Conn conn, int64_t now) noexcept:
    """A connection finished its request and can take another."""
    if self.phase == P_RUNNING and now >= self.stop_at_ns:
        # the duration is over (its timer has not fired yet): nothing more is written
        take_due_before_end(self, now)
        self.end_sending(now, self.stop_at_ns, END_DURATION, 0)
    conn.state = C_IDLE
    if self.phase == P_RUNNING or self.phase == P_DRAINING:
        if self.open_model:
            # the oldest queued send still inside its deadline takes the connection
            # (while draining too, after a request budget was spent)
            if self.pending_len > 0:
                expire_queued(self, now)
                if self.pending_len > 0:
                    if self.phase == P_DRAINING:
                        self.slots[S_END_NS] = now   # a spent budget's last write
                    conn.send(pop_queued(self), now)
                    return
        elif self.phase == P_RUNNING and len(self.conns) > self.connections:
            conn.close()      # the users shape went down: retire this connection
            return
        elif may_issue(self, now):
            issue(self)
            conn.send(now, now)
            check_budget(self, now)
            return
    self.idle.append(conn)
