# The open model of an Engine: sends follow the Schedule, whatever the target does. A due
# send takes an idle connection or waits in a queue (a ring of intended times, oldest first)
# and counts as late; the pool grows for it; a send whose deadline passes in the queue is
# dropped. C functions of the engine (`self`), split from its class (see _engine.pxi).

cdef enum:
    PENDING_CAPACITY = 1048576
    MAX_CONNECTING = 8        # open model: connects in progress at once (no connect storms)
    GROW_AFTER_NS = 1000000   # open model: a queued send older than this grows the pool;
                              # younger ones wait for a busy connection to free up, so a
                              # client short of CPU does not bury itself in connections
    POLL_BELOW_NS = 50000     # a send due sooner than this is waited for by polling the
                              # loop (call_soon) instead of sleeping on the timer: a sleep and
                              # wake-up costs more CPU than that here (~30-60 us in a VM), and
                              # polling keeps reading responses in between


cdef void apply_rate_change(Engine self, int64_t now) noexcept:
    """The coordinator asked for a new total rate from now on (adaptive ramp, back-off);
    read under its sequence lock, so the rate and the instant belong together."""
    cdef int64_t seq, bits, at_ns
    if not read_rate_change(self.slots, self.rate_change_seq, &seq, &bits, &at_ns):
        return
    self.rate_change_seq = seq
    cdef double rate = sx_bits_double(bits)   # the exact double
    cdef int64_t at = max(at_ns, now) - self.start_ns
    try:
        self.schedule.change_rate(at, rate)
    except BaseException:
        return
    if self.phase == P_RUNNING:
        tick(self, now)   # sends now due go; the timer follows the new schedule (or a pause)


cdef void tick(Engine self, int64_t now) noexcept:
    """Issue every send that is due, then wait for the next one: on the timer when it is
    far, by polling the loop when it is near. Sending stops when the duration ends, even
    with sends the scheduler has not reached yet (end_sending drops them); after the last
    send the run still lasts its duration."""
    cdef int64_t due = INT64_MAX
    cdef bint more = True
    cdef bint paused = False
    if self.batched:
        read_all(self, False)   # the responses since the last wake-up free their connections
        now = now_ns()
    if now >= self.stop_at_ns and not self.batched:
        self.end_sending(now, self.stop_at_ns, END_DURATION, 0)
        return
    while True:
        if self.schedule.exhausted(self.next_i):
            more = False
            break
        due = self.schedule.due_ns(self.next_i)
        if due >= INT64_MAX - self.start_ns:
            # paused (rate 0) or beyond any clock: wait for a live change (the sweep
            # applies it and ticks) or the end of the run
            paused = True
            break
        due += self.start_ns
        if due > now or due >= self.stop_at_ns:
            break
        dispatch(self, due, now)
        self.next_i += 1
        if self.batched:
            now = now_ns()    # a batch's later writes go out later: each send's own time
    if now >= self.stop_at_ns:
        # with a slack, the sends due before the end that waited for this wake-up went first
        self.end_sending(now, self.stop_at_ns, END_DURATION, 0)
        return
    self.slots[S_DUE] = self.next_i
    self.slots[S_QUEUED] = self.pending_len
    if self.pending_len:
        grow_pool(self, now)
    if not more:
        if self.stop_at_ns == INT64_MAX or (self.budget >= 0 and self.next_i >= self.budget):
            self.end_sending(now, now, END_SPENT, 0)
        else:
            self.timer.arm_at(self.stop_at_ns)   # the run lasts its duration
    elif paused:
        if self.stop_at_ns != INT64_MAX:
            self.timer.arm_at(self.stop_at_ns)
    elif self.batched:
        # sleep until the next send is a slack overdue: every send due by then goes on that
        # one wake-up (never before its time); the end of the duration still ends it
        self.timer.arm_at(min(due + self.timer_slack_ns, self.stop_at_ns))
    elif due - now < POLL_BELOW_NS:
        self.loop.call_soon(self.on_poll)
    else:
        self.timer.arm_at(due)


@cython.cdivision(True)   # NS_PER_US and PENDING_CAPACITY are constants
cdef inline void dispatch(Engine self, int64_t intended, int64_t now) noexcept:
    """Issue one due send. Its scheduler lag (now - intended: how late the engine got to
    it) is recorded here; any further wait for a connection is the target's (or the
    connection cap's) doing, shows in the corrected latency and counts as late."""
    cdef Conn conn
    hdr_record(self.h_lag, (now - intended) // NS_PER_US)
    if self.idle:
        conn = self.idle.pop()
        conn.send(intended, now)
        return
    # no free connection: queue the send (oldest first) and grow the pool
    self.slots[S_LATE] += 1
    if len(self.conns) >= self.max_connections:
        self.slots[S_LATE_AT_CAP] += 1
    if self.pending_len < PENDING_CAPACITY:
        self.pending[(self.pending_head + self.pending_len) % PENDING_CAPACITY] = intended
        self.pending_len += 1
    else:
        self.drop(D_QUEUE_FULL, 1)
    grow_pool(self, now)


cdef void grow_pool(Engine self, int64_t now) noexcept:
    """Open connections for queued sends, a few at a time; each takes the queue's head
    when it connects (or fails it, if the connect fails)."""
    if self.pending_len == 0:
        return
    if self.idle or (len(self.conns) > self.connecting
                     and now - self.pending[self.pending_head] < GROW_AFTER_NS):
        return
    while (self.connecting < MAX_CONNECTING and self.connecting < self.pending_len
           and len(self.conns) < self.max_connections):
        open_conn(self, 0, now, False)


@cython.cdivision(True)   # PENDING_CAPACITY is a constant
cdef int64_t pop_queued(Engine self) noexcept:
    cdef int64_t intended = self.pending[self.pending_head]
    self.pending_head = (self.pending_head + 1) % PENDING_CAPACITY
    self.pending_len -= 1
    return intended


cdef void fail_queued(Engine self, int kind, int64_t now) noexcept:
    """The oldest queued send fails with the connect opened for it: a request that the
    target refused (or let time out), not a client drop."""
    cdef int64_t *block = self.scenario(self.pick())
    cdef int64_t intended = pop_queued(self)
    self.record_failure(block, self.failure_latency_us(kind, intended, now))
    self.slots[S_SENT] += 1
    self.slots[S_COMPLETED] += 1
    self.slots[S_LAST_DONE_NS] = now
    self.slots[S_ERRORS] += 1
    self.slots[S_ERROR_KINDS + kind] += 1
    block[SC_SENT] += 1
    block[SC_ERRORS] += 1
    block[SC_ERROR_KINDS + kind] += 1


cdef void expire_queued(Engine self, int64_t now) noexcept:
    """Queued sends whose deadline (intended time + timeout) passed before a connection
    took them are dropped: at the connection cap if every allowed connection is open."""
    cdef int64_t n = 0
    while self.pending_len > 0 and now - self.pending[self.pending_head] >= self.timeout_ns:
        pop_queued(self)
        n += 1
    if n:
        self.drop(D_CONNECTION_CAP if len(self.conns) >= self.max_connections else D_DEADLINE, n)
