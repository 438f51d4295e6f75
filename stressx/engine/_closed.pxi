# The closed model of an Engine: `connections` connections, each sending its next request as
# soon as the last one completes (a users shape changes their number over time), within the
# request budget and the duration. C functions of the engine (`self`), split from its class
# (see _engine.pxi).

cdef enum:
    RECONNECT_BACKOFF_NS = 10000000   # a closed connection is replaced after this


@cython.cdivision(True)   # shard_count >= 1: Engine.__init__ checks it
cdef int users_now(Engine self, int64_t now) noexcept:
    """This shard's share of the shape's user count at `now`."""
    cdef double t = (now - self.start_ns) / 1e9
    cdef int total = <int>(self.users.rate_at(t) + 0.5)
    return total // self.shard_count + (1 if self.shard_index < total % self.shard_count else 0)


cdef inline bint may_issue(Engine self, int64_t now) noexcept:
    return (self.phase == P_RUNNING and now < self.stop_at_ns
            and (self.budget < 0 or self.issued < self.budget))


cdef inline void issue(Engine self) noexcept:
    self.issued += 1
    self.slots[S_DUE] = self.issued


cdef void kick_closed(Engine self, int64_t now) noexcept:
    cdef Conn conn
    cdef int missing
    while self.idle and may_issue(self, now):
        conn = self.idle.pop()
        issue(self)
        conn.send(now, now)
    missing = self.connections - len(self.conns)
    while missing > 0 and may_issue(self, now):
        issue(self)
        open_conn(self, now, now, True)
        missing -= 1
    check_budget(self, now)


cdef inline void check_budget(Engine self, int64_t now) noexcept:
    if not self.open_model and self.budget >= 0 and self.issued >= self.budget:
        self.end_sending(now, now, END_SPENT, 0)


cdef void replace_later(Engine self) noexcept:
    if not self.open_model and self.phase == P_RUNNING:
        self.loop.call_later(RECONNECT_BACKOFF_NS / 1e9, self.replace_closed)


cdef void apply_users_change(Engine self, int64_t now) noexcept:
    """The coordinator asked for a new total number of connections (the control API), in
    the rate change's slots (read under their sequence lock: number and instant together).
    From its instant on the shard keeps its share of it, as of a users shape: new connections
    open at once, busy ones above it close when their request completes, idle ones now."""
    cdef int64_t seq, bits, at_ns
    cdef Conn conn
    if read_rate_change(self.slots, self.rate_change_seq, &seq, &bits, &at_ns):
        self.rate_change_seq = seq
        self.users_change = sx_bits_double(bits)
        self.users_change_at = at_ns
    if self.users_change_at < 0 or now < self.users_change_at or self.phase != P_RUNNING:
        return
    try:
        if self.users is None:
            self.users = Schedule(0.0, 0, 1, -1, -1,
                                  segments=[("const", INFINITY, self.users_change, 0.0, 0.0)])
        else:
            self.users.change_rate(self.users_change_at - self.start_ns, self.users_change)
    except BaseException:
        pass
    self.users_change_at = -1
    self.connections = users_now(self, now)
    self.slots[S_USERS] = self.connections
    while self.idle and len(self.conns) > self.connections:
        conn = self.idle.pop()
        conn.close()
    kick_closed(self, now)
