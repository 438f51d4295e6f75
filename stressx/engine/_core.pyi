"""Types and contracts of the compiled core (stressx/engine/_core.pyx and its .pxi files).

All times are integer nanoseconds of CLOCK_MONOTONIC unless a name says otherwise; histogram
values are integer microseconds.
"""
from typing import Any, Awaitable

# -- layout (the shared-memory contract between a shard and the coordinator) -------------------
SLOTS: dict[str, int]             # counter name -> slot index
SCENARIO_SLOTS: dict[str, int]    # per-scenario block offsets
LAYOUT: dict[str, int]            # version, magic, n_error_kinds, n_status, n_histograms...
STATE: dict[str, int]             # shard states: init, ready, running, draining, done, failed
STATES: tuple[str, ...]           # the same names in value order
STOP: dict[str, int]              # stop requests: none, graceful, now
ERROR_KINDS: tuple[str, ...]
DROP_REASONS: tuple[str, ...]     # why a due send never reached a socket: connection_cap,
                                  # deadline, queue_full, run_ended (slots drop_reasons + i)
HISTOGRAMS: tuple[str, ...]       # latency, latency_uncorrected, send_lag, failure_latency, all_latency
HDR_PARAMS: dict[str, int]        # lowest 1, highest 3_600_000_000 us, 3 significant figures
SEGMENT_KINDS: dict[str, int]     # const, linear, sine

# -- clock -------------------------------------------------------------------------------------
def monotonic_ns() -> int: ...
def set_timer_slack_ns(slack_ns: int) -> int: ...
def set_parent_death_signal(signum: int) -> int: ...

class Timer:
    """A one-shot timerfd armed at absolute CLOCK_MONOTONIC ns: sub-millisecond wake-ups
    (libuv timers have 1 ms resolution)."""
    fd: int
    def arm(self, when_ns: int) -> None: ...
    def close(self) -> None: ...

# -- histogram recording -----------------------------------------------------------------------
def counts_index(value: int) -> int:
    """HdrHistogram bucket index of a value (the compiled twin of hdr.counts_index)."""

class Recorder:
    """Records into an int64 buffer of HDR_PARAMS['slots'] slots (header + counts)."""
    def __init__(self, buffer: Any, reset: bool = True) -> None: ...
    def record(self, value_us: int) -> None:
        """Out-of-range values are clamped and counted as overflow, never dropped."""
    def record_many(self, values: Any) -> None: ...
    def bench_record_calls(self, n: int, value_us: int) -> float:
        """ns per record() over n calls (the recording microbenchmark)."""

# -- snapshots (_snapshot.pxi): sequence locks with C11 acquire/release ordering ----------------
def publish_snapshot(memory: Any, final: bool = False, index: int = -1) -> bool:
    """Copy the live slots into the next snapshot image as snapshot `index` (default: the next,
    at least 1). Only from the shard's own thread, the live slots' only writer. A final snapshot
    is published once (later calls: False)."""
def snapshot_seqs(memory: Any) -> tuple[int, int]:
    """The images' sequence numbers (0: none yet; odd: being written)."""
def read_snapshot(memory: Any, buffer: int, dest: Any) -> int:
    """Copy image `buffer` into dest: its sequence number (> 0) when whole, 0 when empty, -1
    when torn (the shard wrote it meanwhile; dest is garbage)."""
def publish_rate_change(memory: Any, rate: float, at_ns: int) -> None:
    """The coordinator's side of the rate-change handshake (one writer at a time): `rate`
    requests/s, the exact double, from the absolute instant at_ns."""
def rate_change(memory: Any, known: int = 0) -> tuple[int, float, int]:
    """The shard's side: (seq, rate, at_ns) of a change newer than `known`, read whole; seq 0
    when there is none (or it is being written)."""
def snapshot_stress(memory: Any, publishes: int, requests_per_publish: int, seed: int = 1) -> int:
    """Tests: count requests as the engine does and publish after every batch, without the GIL."""

# -- schedule ----------------------------------------------------------------------------------
class Schedule:
    """When each send of one shard is due: send j of the run is due where the integral of the
    rate first rises past j; shard k of n takes sends k, k+n, ... Segments are
    (kind, length_s, a, b, c) tuples (see shapes.Segment). Times are int ns after the start;
    NEVER (2**63-1) means not under this schedule. stressx.load.schedule.Schedule is its exact
    Python twin."""
    shard_index: int
    shard_count: int
    budget: int
    duration_ns: int
    total: float
    paused: bool
    def __init__(self, rate: float = 0.0, shard_index: int = 0, shard_count: int = 1,
                 budget: int = -1, duration_ns: int = -1,
                 segments: list[tuple] | None = None) -> None: ...
    def due_at(self, i: int) -> int:
        """ns after the start at which this shard's send i is due (2**63-1: never)."""
    def is_exhausted(self, i: int) -> bool:
        """Send i must not happen (budget, duration, the shape's end; not while paused)."""
    def pace(self, sent: int, elapsed_ns: int) -> tuple[int, bool]:
        """(wait_ns, stop): wait_ns <= 0 means the next send is already due."""
    def due_count(self, elapsed_ns: int) -> int: ...
    def rate_at(self, t: float) -> float: ...
    def integral(self, t: float) -> float: ...
    def integral_ns(self, t: int) -> float: ...
    def segments_ns(self) -> list[tuple]:
        """[(kind, t0_ns, end_ns, c0, c1)] as the schedule holds them."""
    def change_rate(self, at_ns: int, rate: float) -> None:
        """A constant rate (0: pause) from at_ns on, for the rest of the run; sends due
        earlier keep their times."""

# -- engine ------------------------------------------------------------------------------------
class Engine:
    """One shard's load engine over its shared-memory segment (see shard.py). Every due send
    becomes a request (written, or failed connecting) or is dropped by reason; deadlines count
    from the intended send time; sending stops when the duration ends."""
    open_model: bool
    phase: int
    stopped: bool          # a stop request ended the run (only then are requests abandoned)
    timer_slack_ns: int    # open model: sends due within this of the first share one wake-up
    def __init__(self, memory: Any, loop: Any, host: str, port: int, *, scenarios: list[dict],
                 ssl_context: Any = None, server_hostname: str | None = None,
                 rate: float = 0.0, shard_index: int = 0, shard_count: int = 1,
                 budget: int = -1, duration_ns: int = -1, timeout_ns: int = 10_000_000_000,
                 grace_ns: int = 1_000_000_000, connections: int = 10,
                 max_connections: int = 1024, segments: list[tuple] | None = None,
                 users_segments: list[tuple] | None = None, timer_slack_ns: int = 0) -> None: ...
    def prewarm(self) -> Awaitable[None]: ...
    def start(self, start_ns: int) -> Awaitable[None]: ...
    def stop(self, now: bool = False) -> None: ...
    # called by the event loop and by Conn, not by users
    async def connect(self, conn: Conn) -> None: ...
    def on_timer(self) -> None: ...
    def on_snapshot(self) -> None:
        """An interval boundary (start + k s): publish snapshot k."""
    def sweep(self) -> None: ...
    def on_poll(self) -> None: ...
    def replace_closed(self) -> None: ...

class Conn:
    """One keep-alive connection of an Engine, its own asyncio protocol (made by the engine,
    never by users)."""
    def __init__(self, engine: Engine) -> None: ...
    def __call__(self) -> Conn: ...
    def connection_made(self, transport: Any) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def on_message_begin(self) -> None: ...
    def on_headers_complete(self) -> None: ...
    def on_message_complete(self) -> None: ...
    def eof_received(self) -> bool: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...
    def pause_writing(self) -> None: ...
    def pause_for_engine(self) -> None: ...   # _batched.pxi: the engine reads it itself
    def resume_writing(self) -> None: ...

class TlsConn:
    """A Conn's TLS state (https): an ssl.SSLObject over memory BIOs that the Conn drives
    itself (made by Conn, never by users)."""
    def __init__(self, conn: Conn) -> None: ...

# -- host-load burners (_burn.pxi) -------------------------------------------------------------
def process_cpu_ns() -> int: ...
def process_cpu_ns_of(pid: int) -> int: ...
def burn_cpu(budget_ns: int, deadline_ns: int) -> int: ...
def spin_iterations(iters: int) -> None:
    """`iters` busy steps, untimed (calibration and tests)."""
def sleep_until_ns(when_ns: int) -> int: ...
def touch_pages(buf: Any, start: int, end: int, page_size: int, value: int) -> int: ...
def fill_bytes(buf: Any, start: int, end: int, value: int) -> int:
    """memset buf[start:end] to value; returns the number of bytes written."""


class StrayResponse(Exception):
    """A message began after the response to the only request outstanding had completed."""
