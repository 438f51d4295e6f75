# Consistent snapshots of a shard's counters and histograms, and the rate-change handshake.
#
# The shard writes its live slots all the time; a copy taken by another process while it writes
# can be torn (ok + errors != completed, a histogram's total != the sum of its buckets). So the
# shard itself copies its live slots into one of SNAPSHOT_BUFFERS snapshot images behind the live
# slots, at the common start + k s (k = 1, 2, ...: its own timerfd, on the CLOCK_MONOTONIC every
# process shares) and once more when it has finished (FINAL). The coordinator reads only images.
#
# Each image is guarded by a sequence lock with explicit memory ordering (GCC __atomic builtins:
# correct on arm64's weak ordering, not only on x86's stores-in-order), as in Boehm, "Can seqlocks
# get along with programming language memory models?" (2012):
#   writer: seq = odd (relaxed); release fence; image stores (relaxed); seq = even (release)
#   reader: q1 = seq (acquire); odd: torn; image loads (relaxed); acquire fence; q2 = seq
#           (relaxed); q1 != q2: torn
# The images alternate, so an image stays readable for a whole interval after it was written.
# The coordinator's three RATE_CHANGE slots (read by the shard) use the same lock.

# the sx_* atomics (C, inline): declared in _core.pxd


cdef inline int64_t flow_area_of(const int64_t *s) noexcept nogil:
    """First slot of the flow area (step names, named counters, tracebacks)."""
    return S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS + (s[S_N_SCENARIOS] + s[S_N_STEPS]) * SC_BLOCK


cdef inline int64_t flow_area_slots(int64_t n_steps) noexcept nogil:
    if n_steps <= 0:
        return 0
    return n_steps * NAME_SLOTS + N_COUNTERS * COUNTER_SLOTS + N_TRACEBACKS * TB_SLOTS


cdef inline int64_t live_slots_of(const int64_t *s) noexcept nogil:
    """Slots of the live area: header and counters, the histograms, the scenario blocks, then
    (flows) the step blocks and the flow area."""
    return flow_area_of(s) + flow_area_slots(s[S_N_STEPS])


cdef inline int64_t clamp_value(int64_t v) noexcept nogil:
    return 0 if v < 0 else (HDR_HIGHEST if v > HDR_HIGHEST else v)


cdef inline void copy_histogram_out(int64_t *dst, const int64_t *src) noexcept nogil:
    """A live histogram into an image: the header, and the counts from its min's bucket to its
    max's. Counts outside that range are zero in the live histogram and, as counts and the range
    only grow, already zero in the image (which held an older snapshot, or nothing)."""
    cdef int64_t lo, hi
    sx_copy(dst, src, HDR_HEADER_SLOTS)
    if src[HH_TOTAL] <= 0:
        return
    lo = hdr_counts_index(clamp_value(src[HH_MIN]))
    hi = hdr_counts_index(clamp_value(src[HH_MAX]))
    if hi >= HDR_COUNTS_LEN:
        hi = HDR_COUNTS_LEN - 1
    if lo <= hi:
        sx_copy(dst + HDR_HEADER_SLOTS + lo, src + HDR_HEADER_SLOTS + lo, hi - lo + 1)


cdef void snapshot_publish(int64_t *s, int64_t k, int64_t taken_ns, bint final) noexcept nogil:
    """Copy the live slots into the next image as snapshot k (the shard's thread only)."""
    cdef int64_t live = live_slots_of(s)
    cdef int b = 0 if s[S_SNAP_SEQ] == s[S_SNAP_SEQ + 1] else 1   # the older image
    cdef int64_t *seq = s + S_SNAP_SEQ + b
    cdef int64_t q = seq[0]                  # this thread is its only writer
    cdef int64_t *img = s + live * (1 + b)
    cdef int64_t i, base
    s[S_CPU_NS] = process_cpu_now_ns()       # this shard's own slot: the CPU at the instant
    sx_store_relaxed(seq, q + 1)             # odd: being written...
    sx_fence_release()                       # ...before any store into the image
    sx_copy(img, s, S_HISTOGRAMS)            # counters, gauges, error kinds, status codes
    sx_store_relaxed(img + S_SNAP_INDEX, k)
    sx_store_relaxed(img + S_SNAP_TAKEN_NS, taken_ns)
    sx_store_relaxed(img + S_SNAP_FINAL, 1 if final else 0)
    for i in range(N_HISTOGRAMS):
        copy_histogram_out(img + S_HISTOGRAMS + i * HIST_SLOTS, s + S_HISTOGRAMS + i * HIST_SLOTS)
    for i in range(s[S_N_SCENARIOS] + s[S_N_STEPS]):      # scenario blocks, then step blocks
        base = S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS + i * SC_BLOCK
        sx_copy(img + base, s + base, SC_HEADER)
        copy_histogram_out(img + base + SC_HEADER, s + base + SC_HEADER)        # successes
        copy_histogram_out(img + base + SC_ALL_HIST, s + base + SC_ALL_HIST)    # all requests
    base = flow_area_of(s)
    sx_copy(img + base, s + base, flow_area_slots(s[S_N_STEPS]))
    sx_store_release(seq, q + 2)             # even: complete, after every image store
    s[S_SNAP_NEXT] = k + 1
    if final:
        s[S_SNAP_FINAL] = 1


cdef int64_t *segment_of(int64_t[::1] mem, int64_t images) except NULL:
    """The slots of a whole segment, checked to hold the live area and `images` images."""
    if mem.shape[0] < S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS:
        raise ValueError("shared-memory segment too small for the slot layout")
    cdef int64_t *s = &mem[0]
    if s[S_MAGIC] != MAGIC or s[S_VERSION] != LAYOUT_VERSION:
        raise ValueError("shared-memory segment has no stressx layout header of this version")
    if not 0 <= s[S_N_SCENARIOS] <= MAX_SCENARIOS:
        raise ValueError(f"shared-memory segment claims {s[S_N_SCENARIOS]} scenarios")
    if not 0 <= s[S_N_STEPS] <= MAX_STEPS:
        raise ValueError(f"shared-memory segment claims {s[S_N_STEPS]} steps")
    if mem.shape[0] < live_slots_of(s) * (1 + images):
        raise ValueError(f"shared-memory segment of {mem.shape[0]} slots has no room for "
                         f"{images} snapshot images of {live_slots_of(s)} slots")
    return s


def publish_snapshot(memory, bint final=False, int64_t index=-1):
    """Publish the live slots as a snapshot (the shard's own thread: it must be their only
    writer while this runs). `index` defaults to the next one (at least 1). A final snapshot is
    published once; later calls return False."""
    cdef int64_t *s = segment_of(memory, SNAPSHOT_BUFFERS)
    if s[S_SNAP_FINAL]:
        return False
    if index < 0:
        index = max(s[S_SNAP_NEXT], 1)
    snapshot_publish(s, index, now_ns(), final)
    return True


def snapshot_seqs(memory):
    """The images' sequence numbers (acquire loads): an unchanged number means no new snapshot
    in that image; 0 means none yet; an odd one, the shard is writing it."""
    cdef int64_t *s = segment_of(memory, SNAPSHOT_BUFFERS)
    return sx_load_acquire(s + S_SNAP_SEQ), sx_load_acquire(s + S_SNAP_SEQ + 1)


def read_snapshot(memory, int buffer, int64_t[::1] dest):
    """Copy image `buffer` into `dest` (at least the live area's slots). Returns the image's
    sequence number (> 0) when the copy is a complete snapshot, 0 when nothing was published in
    it yet, and -1 when the shard was writing it meanwhile (torn: `dest` is garbage, try again)."""
    cdef int64_t *s = segment_of(memory, SNAPSHOT_BUFFERS)
    cdef int64_t live = live_slots_of(s)
    cdef int64_t q1, q2
    cdef int64_t *seq
    cdef int64_t *img
    cdef int64_t *d
    if not 0 <= buffer < SNAPSHOT_BUFFERS:
        raise ValueError(f"snapshot buffer {buffer}: there are {SNAPSHOT_BUFFERS}")
    if dest.shape[0] < live:
        raise ValueError(f"dest holds {dest.shape[0]} slots, a snapshot is {live}")
    seq = s + S_SNAP_SEQ + buffer
    img = s + live * (1 + buffer)
    d = &dest[0]
    with nogil:
        q1 = sx_load_acquire(seq)
        if q1 == 0 or q1 & 1:
            q2 = q1 + 1
        else:
            sx_copy(d, img, live)
            sx_fence_acquire()               # the image loads before the second look
            q2 = sx_load_relaxed(seq)
    if q1 == 0:
        return 0
    return q1 if q1 == q2 else -1


# -- the rate-change handshake (coordinator writes, shard reads) -------------------------------

def publish_rate_change(memory, double rate, int64_t at_ns):
    """Ask the shard for a total rate of `rate` requests/s (the exact double) from the absolute
    instant at_ns (the coordinator, one writer at a time)."""
    cdef int64_t[::1] mem = memory
    if mem.shape[0] <= S_RATE_CHANGE_AT_NS:
        raise ValueError("shared-memory segment too small for the slot layout")
    cdef int64_t *s = &mem[0]
    cdef int64_t q = sx_load_relaxed(s + S_RATE_CHANGE_SEQ) & ~(<int64_t>1)
    sx_store_relaxed(s + S_RATE_CHANGE_SEQ, q + 1)
    sx_fence_release()
    sx_store_relaxed(s + S_RATE_CHANGE_RPS_BITS, sx_double_bits(rate))
    sx_store_relaxed(s + S_RATE_CHANGE_AT_NS, at_ns)
    sx_store_release(s + S_RATE_CHANGE_SEQ, q + 2)


cdef inline bint read_rate_change(const int64_t *s, int64_t known, int64_t *seq,
                                  int64_t *rate_bits, int64_t *at_ns) noexcept nogil:
    """A rate change newer than `known`, read whole: the rate as a double's bits, and the
    instant (False: none, or being written: the next sweep looks again)."""
    cdef int64_t q1 = sx_load_acquire(s + S_RATE_CHANGE_SEQ)
    if q1 == known or q1 & 1:
        return False
    rate_bits[0] = sx_load_relaxed(s + S_RATE_CHANGE_RPS_BITS)
    at_ns[0] = sx_load_relaxed(s + S_RATE_CHANGE_AT_NS)
    sx_fence_acquire()
    if sx_load_relaxed(s + S_RATE_CHANGE_SEQ) != q1:
        return False
    seq[0] = q1
    return True


def rate_change(memory, int64_t known=0):
    """(seq, rate, at_ns) of a rate change newer than `known`, seq 0 when there is none or it
    is being written (the shard's side of the handshake, for the tests)."""
    cdef int64_t[::1] mem = memory
    cdef int64_t seq = 0, bits = 0, at = 0
    if read_rate_change(&mem[0], known, &seq, &bits, &at):
        return seq, sx_bits_double(bits), at
    return 0, 0.0, 0


# -- a writer at full speed, for the tests -----------------------------------------------------

@cython.cdivision(True)   # constant divisors
def snapshot_stress(memory, int64_t publishes, int64_t requests_per_publish, uint64_t seed=1):
    """Count requests into the live slots as the engine does (each in completed and timed in the
    all-requests histograms, and in ok with a status and a latency, or in errors with a kind and
    a failure latency) and publish a snapshot after every
    `requests_per_publish` of them, `publishes` times, without the GIL: a shard writing at full
    speed, for the tests of the readers. Returns the last index published."""
    cdef int64_t *s = segment_of(memory, SNAPSHOT_BUFFERS)
    cdef int64_t *h_lat = s + S_HISTOGRAMS + H_LATENCY * HIST_SLOTS
    cdef int64_t *h_fail = s + S_HISTOGRAMS + H_FAILURE * HIST_SLOTS
    cdef int64_t *h_all = s + S_HISTOGRAMS + H_ALL * HIST_SLOTS
    cdef int64_t *block = s + S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS
    cdef int64_t p, j, k = max(s[S_SNAP_NEXT], 1)
    cdef uint64_t x = seed | 1
    if s[S_N_SCENARIOS] < 1:
        raise ValueError("snapshot_stress needs a segment with a scenario block")
    with nogil:
        for p in range(publishes):
            for j in range(requests_per_publish):
                x ^= x >> 12
                x ^= x << 25
                x ^= x >> 27
                s[S_SENT] += 1
                block[SC_SENT] += 1
                s[S_COMPLETED] += 1
                hdr_record(h_all, <int64_t>((x >> 8) % 2000000))
                hdr_record(block + SC_ALL_HIST, <int64_t>((x >> 8) % 2000000))
                if x % 8 == 0:
                    s[S_ERRORS] += 1
                    s[S_ERROR_KINDS + E_RESET] += 1
                    block[SC_ERRORS] += 1
                    block[SC_ERROR_KINDS + E_RESET] += 1
                    hdr_record(h_fail, <int64_t>((x >> 8) % 2000000))
                else:
                    s[S_OK] += 1
                    s[S_STATUS + 200] += 1
                    block[SC_OK] += 1
                    hdr_record(h_lat, <int64_t>((x >> 8) % 2000000))
                    hdr_record(block + SC_HEADER, <int64_t>((x >> 8) % 2000000))
            snapshot_publish(s, k, now_ns(), False)
            k += 1
    return k - 1
