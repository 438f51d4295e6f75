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
