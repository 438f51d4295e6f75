# The shared-memory layout of one shard: a flat array of int64 "slots". The shard is the only
# writer of everything except START_NS, STOP_REQUEST and the RATE_CHANGE slots, which the
# coordinator writes. Counters are cumulative. The live slots are followed by SNAPSHOT_BUFFERS
# snapshot images of the same layout (see _snapshot.pxi): the coordinator reads only those, and
# derives per-interval figures by differencing two snapshots.
# Bump LAYOUT_VERSION on any change: readers refuse a layout they do not know.

# MAGIC and HDR_HIGHEST, 64-bit constants: declared in _core.pxd

cdef enum:
    LAYOUT_VERSION = 10

    # header, written once
    S_MAGIC = 0
    S_VERSION = 1
    S_STATE = 2            # one of the ST_* states below (shard-written)
    S_START_NS = 3         # common start instant, absolute CLOCK_MONOTONIC ns (coordinator)
    S_STOP_REQUEST = 4     # STOP_* below (coordinator)
    S_PID = 5
    # cumulative counters (shard)
    S_SENT = 6             # requests: written to a socket, or failed connecting to the target
    S_COMPLETED = 7        # requests finished: OK + ERRORS
    S_OK = 8               # 2xx responses
    S_ERRORS = 9           # failed requests, all kinds (E_* below)
    S_BYTES_OUT = 10
    S_BYTES_IN = 11
    S_LATE = 12            # open model: sends that found no free connection on their tick
    S_DUE = 13             # sends whose intended time came inside the run (at the end:
                           # S_SENT + S_DROPPED)
    S_CONNECTS = 14        # connections established
    S_CONN_OPEN = 15       # connections open now
    S_INFLIGHT = 16        # requests sent and not finished
    S_DROPPED = 17         # due sends that never reached a socket (by reason: S_DROP_REASONS)
    S_ABANDONED = 18       # in flight when an interrupted run's grace ran out
    S_HEARTBEAT_NS = 19    # last housekeeping pass (shows a wedged shard)
    S_END_NS = 20          # when this shard's sending ended: the duration's end, the stop, or
                           # (a request budget) its last write
    S_PARSE_FAILURES = 21  # internal: exceptions swallowed in protocol callbacks
    S_CPU_USER_NS = 22     # the shard's own CPU time from its start instant to its end
    S_CPU_SYS_NS = 23
    S_USERS = 24           # closed model: active connections the shape asks of this shard
    S_RATE_CHANGE_SEQ = 25     # coordinator: a sequence lock, odd while it writes a live rate change...
    S_RATE_CHANGE_RPS_BITS = 26  # ...to this total rate: a double's bits (req/s, exact; 0 pauses)...
    S_RATE_CHANGE_AT_NS = 27   # ...from this absolute instant (the same cut for every shard)
    S_N_SCENARIOS = 28     # scenario blocks after the histograms (written by the creator)
    S_LATE_AT_CAP = 29     # open model: late sends that found the pool at max_connections
    S_STRAY_CLOSES = 30    # connections closed for bytes that arrived with no request
                           # outstanding (after the response they follow was counted)
    S_TLS_RESUMED = 31     # TLS handshakes that resumed a session (of S_CONNECTS)

    S_ERROR_KINDS = 32     # N_ERROR_KINDS slots, indexed by E_*
    N_ERROR_KINDS = 16
    S_STATUS = 64          # 600 slots, one per status code 0..599 (600+ counted at 0)
    N_STATUS = 600
    # accounting block (shard)
    S_DROP_REASONS = 704   # N_DROP_REASONS slots, indexed by D_*: S_DROPPED by reason
    N_DROP_REASONS = 8
    S_CONNECT_ATTEMPTS = 712   # connects begun, pre-warm included
    S_QUEUED = 713         # open model, gauge: due sends waiting for a connection now
    S_LAST_DONE_NS = 714   # when the last request completed (ok or error)
    S_CPU_NS = 715         # the shard process's CPU time (user + system, kernel accounting):
                           # set as each snapshot is taken, so an image holds it at its instant
    S_CPU_START_NS = 716   # ...and at the start instant (when the engine began running)
    S_CONNECT_FAIL_KINDS = 720   # N_ERROR_KINDS slots: failed connects by E_* kind...
    S_PREWARM_FAIL_KINDS = 736   # ...and those of them made before the start (no request)
    # Python scenarios (flows, _flow.pxi): zero in a run of static requests
    S_N_STEPS = 752        # step blocks after the scenario blocks (written by the creator; 0:
                           # no flow area at all)
    S_STEPS_USED = 753     # step blocks given a name so far
    S_STEP_OVERFLOW = 754  # recordings whose step found no free block (counted nowhere else
                           # per step; the totals still count them)
    S_REDIRECTS = 755      # redirects followed (each is also a request of its own)
    S_COUNTER_OVERFLOW = 756   # checks / exception types that found no free named counter
    S_TRACEBACKS = 757     # tracebacks saved (at most N_TRACEBACKS)
    S_ITER_ACTIVE = 758    # gauge: iterations running now
    S_ITER_QUEUED = 759    # open model, gauge: due iterations waiting for a free user
    # snapshots (_snapshot.pxi); in a snapshot image the INDEX/TAKEN/FINAL slots describe it
    S_SNAP_SEQ = 1000      # 2 slots, one per image: a sequence lock, odd while the shard writes it
    S_SNAP_INDEX = 1002    # image: k, the state at the common start + k s
    S_SNAP_TAKEN_NS = 1003 # image: when the shard took it (absolute CLOCK_MONOTONIC ns)
    S_SNAP_FINAL = 1004    # image: 1 for the shard's last snapshot; live: it has been published
    S_SNAP_NEXT = 1005     # live: the next index to publish
    SNAPSHOT_BUFFERS = 2
    S_HISTOGRAMS = 1024    # N_HISTOGRAMS histograms of HIST_SLOTS slots each

    # shard states
    ST_INIT = 0
    ST_READY = 1           # connections pre-opened, waiting for START_NS
    ST_RUNNING = 2
    ST_DRAINING = 3        # no more sends; waiting for in-flight responses
    ST_DONE = 4
    ST_FAILED = 5

    STOP_NONE = 0
    STOP_GRACEFUL = 1      # stop sending, drain with a short grace
    STOP_NOW = 2           # stop sending, abandon in-flight requests

    # error kinds
    E_CONNECT_REFUSED = 0
    E_CONNECT = 1
    E_RESET = 2
    E_TIMEOUT = 3
    E_TLS = 4
    E_PROTOCOL = 5
    E_CLOSED = 6
    E_STATUS = 7
    E_OTHER = 8
    E_FD_LIMIT = 9         # the client ran out of file descriptors (EMFILE/ENFILE): not the target's
    E_SCENARIO = 10        # Python scenarios: user code raised (by type in the named counters)
    E_CHECK = 11           # ... a WebSocket echo (YAML form) that did not match

    # why a due send never reached a socket
    D_CONNECTION_CAP = 0   # its deadline passed in the queue, every allowed connection busy
    D_DEADLINE = 1         # its deadline passed in the queue, the pool still opening
    D_QUEUE_FULL = 2       # the queue of waiting sends was full
    D_RUN_ENDED = 3        # still waiting (or not yet reached) when the run ended or stopped

    # histograms, in recording units of microseconds
    H_LATENCY = 0          # from intended send time (coordinated-omission corrected)
    H_LATENCY_UNCORRECTED = 1  # from actual send time
    H_SEND_LAG = 2         # when the engine issued a send minus its intended time
    H_FAILURE = 3          # failed requests: intended send time to the failure (a timeout at
                           # its deadline, --timeout: censored, the real value is above it)
    H_ALL = 4              # every completed request: H_LATENCY's and H_FAILURE's values
    N_HISTOGRAMS = 5

    # per-scenario blocks, from S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS, SC_BLOCK slots each:
    # SC_HEADER counter slots, then the scenario's latency histogram (successes, from the
    # intended send time), then its all-requests histogram (as H_ALL)
    SC_SENT = 0
    SC_OK = 1              # responses with an expected status
    SC_ERRORS = 2
    SC_VIOLATIONS = 3      # ok responses outside the scenario's expected latency band...
    SC_TOO_FAST = 4        # ...below it
    SC_TOO_SLOW = 5        # ...above it
    SC_BYTES_IN = 6
    SC_ERROR_KINDS = 16    # N_ERROR_KINDS slots
    SC_HEADER = 32
    SC_ALL_HIST = 23588    # SC_HEADER + HIST_SLOTS
    SC_BLOCK = 47144       # SC_HEADER + 2 * HIST_SLOTS
    N_SC_HISTOGRAMS = 2
    MAX_SCENARIOS = 1024

    # the flow area, after the step blocks (present when S_N_STEPS > 0): a name per step
    # block, then N_COUNTERS named counters (checks, exception types), then N_TRACEBACKS texts
    NAME_SLOTS = 16        # slot 0: length in bytes, then up to NAME_BYTES of UTF-8
    NAME_BYTES = 120
    N_COUNTERS = 64
    CT_KIND = 0            # CK_* below (0: free)
    CT_A = 1               # check: passed; exception: raised
    CT_B = 2               # check: failed
    CT_NAME = 3            # NAME_SLOTS slots
    COUNTER_SLOTS = 19
    CK_CHECK = 1
    CK_EXCEPTION = 2
    N_TRACEBACKS = 4
    TB_SLOTS = 1024        # slot 0: length in bytes, then the text (UTF-8, cut to fit)
    MAX_STEPS = 256


ERROR_KINDS = ("connect_refused", "connect", "reset", "timeout", "tls", "protocol", "closed",
               "status", "other", "fd_limit", "scenario_error", "check")
DROP_REASONS = ("connection_cap", "deadline", "queue_full", "run_ended")
HISTOGRAMS = ("latency", "latency_uncorrected", "send_lag", "failure_latency", "all_latency")
STATES = ("init", "ready", "running", "draining", "done", "failed")

SLOTS = dict(
    magic=S_MAGIC, version=S_VERSION, state=S_STATE, start_ns=S_START_NS,
    stop_request=S_STOP_REQUEST, pid=S_PID, sent=S_SENT, completed=S_COMPLETED, ok=S_OK,
    errors=S_ERRORS, bytes_out=S_BYTES_OUT, bytes_in=S_BYTES_IN, late=S_LATE, due=S_DUE,
    connects=S_CONNECTS, conn_open=S_CONN_OPEN, inflight=S_INFLIGHT, dropped=S_DROPPED,
    abandoned=S_ABANDONED, heartbeat_ns=S_HEARTBEAT_NS, end_ns=S_END_NS,
    parse_failures=S_PARSE_FAILURES, cpu_user_ns=S_CPU_USER_NS, cpu_sys_ns=S_CPU_SYS_NS,
    users=S_USERS, rate_change_seq=S_RATE_CHANGE_SEQ, rate_change_rps_bits=S_RATE_CHANGE_RPS_BITS,
    rate_change_at_ns=S_RATE_CHANGE_AT_NS, n_scenarios=S_N_SCENARIOS,
    late_at_cap=S_LATE_AT_CAP, stray_closes=S_STRAY_CLOSES, tls_resumed=S_TLS_RESUMED,
    drop_reasons=S_DROP_REASONS, connect_attempts=S_CONNECT_ATTEMPTS, queued=S_QUEUED,
    last_done_ns=S_LAST_DONE_NS, cpu_ns=S_CPU_NS, cpu_start_ns=S_CPU_START_NS, connect_fail_kinds=S_CONNECT_FAIL_KINDS,
    prewarm_fail_kinds=S_PREWARM_FAIL_KINDS,
    n_steps=S_N_STEPS, steps_used=S_STEPS_USED, step_overflow=S_STEP_OVERFLOW,
    redirects=S_REDIRECTS, counter_overflow=S_COUNTER_OVERFLOW, tracebacks=S_TRACEBACKS,
    iter_active=S_ITER_ACTIVE, iter_queued=S_ITER_QUEUED,
    snap_seq=S_SNAP_SEQ, snap_index=S_SNAP_INDEX, snap_taken_ns=S_SNAP_TAKEN_NS,
    snap_final=S_SNAP_FINAL, snap_next=S_SNAP_NEXT,
    error_kinds=S_ERROR_KINDS, status=S_STATUS,
    histograms=S_HISTOGRAMS,
)
SCENARIO_SLOTS = dict(sent=SC_SENT, ok=SC_OK, errors=SC_ERRORS, violations=SC_VIOLATIONS,
                      too_fast=SC_TOO_FAST, too_slow=SC_TOO_SLOW, bytes_in=SC_BYTES_IN,
                      error_kinds=SC_ERROR_KINDS, header=SC_HEADER, all_histogram=SC_ALL_HIST,
                      block=SC_BLOCK)
LAYOUT = dict(version=LAYOUT_VERSION, magic=MAGIC, n_error_kinds=N_ERROR_KINDS,
              n_status=N_STATUS, n_histograms=N_HISTOGRAMS, max_scenarios=MAX_SCENARIOS,
              snapshot_buffers=SNAPSHOT_BUFFERS, name_slots=NAME_SLOTS, name_bytes=NAME_BYTES,
              n_counters=N_COUNTERS, counter_slots=COUNTER_SLOTS, n_tracebacks=N_TRACEBACKS,
              tb_slots=TB_SLOTS, max_steps=MAX_STEPS)
STATE = dict(init=ST_INIT, ready=ST_READY, running=ST_RUNNING, draining=ST_DRAINING,
             done=ST_DONE, failed=ST_FAILED)
STOP = dict(none=STOP_NONE, graceful=STOP_GRACEFUL, now=STOP_NOW)
