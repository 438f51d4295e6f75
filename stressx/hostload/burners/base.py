"""What every burner shares: level schedules, the spec a user writes, and the control block the
parent and a burner process share (the burner process's period loop is in process.py).

A burner is a dedicated process (``python -m stressx.hostload.burners``), never a thread of a load shard:
busy work or page faults beside a shard's event loop would distort its latencies.

Parent <-> burner control: a 4 KiB shared-memory block (a ``memfd``, inherited by the burner
through ``pass_fds``; it has no name, so nothing can be left behind in /dev/shm). Fixed 8-byte
slots (``SLOTS``, native endianness, aligned, so each read or write is a single machine word):

  ======  ==============  ========  =====================================================
  slot    name            writer    meaning
  ======  ==============  ========  =====================================================
  0       magic           parent    CONTROL_MAGIC (layout version)
  1       state           burner    STATE: starting, ready, running, done, failed
  2       start_ns        parent    the run's start instant (CLOCK_MONOTONIC ns); 0 = wait
  3       stop            parent    1: stop at the end of the current period (<= 100 ms)
  4       level           parent    requested level now, in the burner's unit (double)
  5       applied         burner    level applied this period after caps (double)
  6       heartbeat_ns    burner    CLOCK_MONOTONIC at the last period start
  7       work            burner    cumulative work: cpu ns (cpu), bytes held (mem),
                                    bytes written (io)
  8       work2           burner    bytes read back (io), bytes churned (mem)
  9       syncs           burner    fdatasync calls (io)
  10      limited         burner    LIMIT_* flags: why the applied level is below the request
  11      pid             burner    its pid
  ======  ==============  ========  =====================================================

The parent changes levels while the run goes on by writing ``level`` (the BurnerGroup's control
thread evaluates each spec's schedule every 50 ms); a burner reads it once per period.
"""
from __future__ import annotations

import bisect
import mmap
import os
import threading
from dataclasses import dataclass, field

from ...errors import ConfigError
from ...units import parse_duration

PERIOD_NS = 100_000_000          # every burner works in 100 ms periods
CONTROL_SIZE = 4096
CONTROL_MAGIC = 0x5354525842524E31   # "STRXBRN1"
SLOTS = ("magic", "state", "start_ns", "stop", "level", "applied", "heartbeat_ns", "work",
         "work2", "syncs", "limited", "pid")
_INDEX = {name: i for i, name in enumerate(SLOTS)}
_DOUBLES = {"level", "applied"}
STATE = {"starting": 0, "ready": 1, "running": 2, "done": 3, "failed": 4}
LIMIT_MEM_RESERVE = 1    # memory: growing further would eat into the host's free reserve
LIMIT_IO_FLOOR = 2       # io: the disk's free-space floor was reached
LIMIT_BEHIND = 4         # could not keep up (CPU starved, disk too slow)
LIMIT_CAP = 8            # the request is above the burner's cap
LIMIT_NAMES = {LIMIT_MEM_RESERVE: "memory reserve", LIMIT_IO_FLOOR: "free-space floor",
               LIMIT_BEHIND: "behind schedule", LIMIT_CAP: "cap"}


def limit_names(flags: int) -> list[str]:
    return [name for bit, name in LIMIT_NAMES.items() if flags & bit]


# -- level schedules -------------------------------------------------------------------------
class Constant:
    """One level for the whole run."""

    def __init__(self, level: float):
        self.level = float(level)

    def level_at(self, elapsed_s: float) -> float:
        return self.level

    def peak(self) -> float:
        return self.level

    def to_json(self):
        return self.level


class Steps:
    """A list of (start_s, level) steps: each level holds from its start to the next step.
    Before the first step the level is 0."""

    def __init__(self, steps):
        steps = sorted((float(t), float(level)) for t, level in steps)
        if not steps:
            raise ValueError("a step schedule needs at least one (start_s, level) step")
        self.starts = [t for t, _ in steps]
        self.levels = [level for _, level in steps]

    def level_at(self, elapsed_s: float) -> float:
        i = bisect.bisect_right(self.starts, elapsed_s) - 1
        return self.levels[i] if i >= 0 else 0.0

    def peak(self) -> float:
        return max(self.levels)

    def to_json(self):
        return [[t, level] for t, level in zip(self.starts, self.levels)]


class Function:
    """Any function of elapsed seconds -> level (e.g. one of stressx.load.shapes. shapes). Its peak
    is unknown in advance, so caps apply at run time."""

    def __init__(self, fn):
        self.fn = fn

    def level_at(self, elapsed_s: float) -> float:
        return float(self.fn(elapsed_s))

    def peak(self) -> float | None:
        return None

    def to_json(self):
        return getattr(self.fn, "__name__", repr(self.fn))


class FromShape:
    """A load shape (stressx.load.shapes.Shape: ``rate_at(t)``, ``peak()``) read as a level schedule:
    its rate at each moment is the level, in the burner's unit, times `scale` (e.g. a phase
    weight). So CPU, memory and IO can follow the same ramps, steps and phases as requests."""

    def __init__(self, shape, scale: float = 1.0):
        self.shape, self.scale = shape, float(scale)

    def level_at(self, elapsed_s: float) -> float:
        return self.shape.rate_at(elapsed_s) * self.scale

    def peak(self) -> float:
        return self.shape.peak() * self.scale

    def to_json(self):
        describe = getattr(self.shape, "describe", None)
        return {"shape": describe() if describe else repr(self.shape), "scale": self.scale}


class FollowShape:
    """`level` scaled by a load shape's rate relative to its peak rate, times the shape's
    per-phase weight for this burner's kind (progressive phases' cpu/mem/io_weight)."""

    def __init__(self, shape, level: float, kind: str = ""):
        self.shape, self.level, self.kind = shape, float(level), kind
        self.shape_peak = float(shape.peak()) or 1.0
        self.weight = getattr(shape, "weight", None)

    def level_at(self, elapsed_s: float) -> float:
        share = min(1.0, max(0.0, self.shape.rate_at(elapsed_s) / self.shape_peak))
        w = self.weight(self.kind, elapsed_s) if self.weight and self.kind else 1.0
        return self.level * share * w

    def peak(self) -> float:
        return self.level

    def to_json(self):
        describe = getattr(self.shape, "describe", None)
        return {"follow": describe() if describe else repr(self.shape), "peak": self.level}


def as_schedule(value):
    """A schedule from a number (constant), a list of (start_s, level) steps, a callable of
    elapsed seconds, a load shape (``rate_at``), or any object with ``level_at(elapsed_s)``
    (used as it is)."""
    if hasattr(value, "level_at"):
        return value
    if hasattr(value, "rate_at"):
        return FromShape(value)
    if callable(value):
        return Function(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(value)
    return Steps(value)


def schedule_peak(schedule) -> float | None:
    peak = getattr(schedule, "peak", None)
    return peak() if peak else None


# -- the spec --------------------------------------------------------------------------------
@dataclass
class BurnerSpec:
    """One burner as requested: `kind` (a BURNERS key), `schedule` (an object with
    ``level_at(elapsed_s)`` in the burner's unit: fraction of a core, bytes, bytes/s),
    `workers` processes, kind-specific `options` (JSON-able), and the `token` it came from
    (named in error messages)."""

    kind: str
    schedule: object
    workers: int = 1
    options: dict = field(default_factory=dict)
    token: str = ""
    follow: bool = False    # scale the level by the run's load shape (see follow_shape)

    def to_json(self) -> dict:
        return {"kind": self.kind, "token": self.token, "workers": self.workers,
                "level": self.schedule.to_json() if hasattr(self.schedule, "to_json")
                else repr(self.schedule), "follow": self.follow, "options": self.options}

    def follow_shape(self, shape) -> None:
        """Make the level follow a load shape: the level given becomes the peak, and at each
        moment it is scaled by the shape's rate over its peak rate (a progressive run raises
        CPU, memory and IO load phase by phase with its request rate)."""
        self.schedule = FollowShape(shape, self.schedule.level_at(0.0), self.kind)


class Burner:
    """Base class of a burner kind. Class side (parent): parse and validate a spec. Instance
    side (burner process): ``setup()`` once before the start, ``period(t0, t1, level)`` each
    100 ms, ``teardown()`` at the end. Subclasses set `kind`, `unit`, `scale` (reports show
    level * scale in `unit`) and the accepted `option_names` / `flags`."""

    kind = ""
    unit = ""
    scale = 1.0
    option_names: tuple = ()
    flags: tuple = ()

    # -- parent side ---------------------------------------------------------------------
    @classmethod
    def parse_level(cls, text: str, token: str) -> tuple[float, int | None]:
        """(level in the burner's unit, workers or None) from one level text."""
        raise NotImplementedError

    @classmethod
    def validate(cls, spec: BurnerSpec) -> None:
        """Check and resolve spec.options in place; raise ConfigError naming spec.token."""

    @classmethod
    def describe(cls, level: float) -> str:
        return f"{level * cls.scale:g}{cls.unit}"

    @classmethod
    def from_token(cls, token: str, rest: str) -> BurnerSpec:
        """Parse `KIND=LEVEL[,LEVEL@TIME...][,key=value...][,flag...]`, e.g. `cpu=50%x2`,
        `mem=2G,churn=100MB/s`, `io=50MB/s,path=/data,read`, `cpu=25%,50%@10s,75%@20s`,
        `cpu=80%,follow` (80% at the load shape's peak rate, scaled with it)."""
        steps, options, workers, follow = [], {}, None, False
        if not rest.strip():
            raise ConfigError(token, f"no level given: expected e.g. {cls.example()}")
        for i, part in enumerate(p.strip() for p in rest.split(",")):
            key, eq, value = part.partition("=")
            if eq:
                if key not in cls.option_names:
                    raise ConfigError(token, f"unknown option {key!r} for {cls.kind}: accepted "
                                      f"{', '.join(cls.option_names + cls.flags) or 'none'}")
                options[key] = value
            elif part in cls.flags:
                options[part] = True
            elif part == "follow":
                follow = True
            elif i == 0 or "@" in part:
                level_text, at, when = part.partition("@")
                start = parse_duration(when, token) if at else 0.0
                if at and i == 0 and start != 0:
                    steps.append((0.0, 0.0))
                level, w = cls.parse_level(level_text, token)
                if w is not None:
                    if workers is not None and w != workers:
                        raise ConfigError(token, "give the worker count (xN) once")
                    workers = w
                steps.append((start if at else 0.0, level))
            else:
                raise ConfigError(token, f"cannot read {part!r}: expected a level, LEVEL@TIME, "
                                  f"key=value or one of {', '.join(cls.flags) or 'no flags'}")
        if "workers" in options:
            try:
                workers = int(options.pop("workers"))
            except ValueError:
                raise ConfigError(token, "workers= expects a whole number") from None
        schedule = Constant(steps[0][1]) if len(steps) == 1 else Steps(steps)
        if follow and len(steps) > 1:
            raise ConfigError(token, "follow takes one level (the peak), not steps")
        spec = BurnerSpec(cls.kind, schedule, workers or cls.default_workers(), options, token,
                          follow)
        cls.validate(spec)
        return spec

    @classmethod
    def default_workers(cls) -> int:
        return 1

    @classmethod
    def example(cls) -> str:
        return ""

    # -- burner process side -------------------------------------------------------------
    def __init__(self, ctl: "Control", options: dict):
        self.ctl = ctl
        self.options = options
        self.worker = 0       # index among the spec's worker processes

    def setup(self) -> None: ...
    def start(self, start_ns: int) -> None: ...
    def period(self, t0_ns: int, t1_ns: int, level: float) -> None: ...
    def teardown(self) -> None: ...


# -- the control block -----------------------------------------------------------------------
class Control:
    """The shared control block (see the module docstring for the slots). Several threads of
    the parent use it (control loop, host sampler, safety stop): once closed it reads as zeros
    and ignores writes, so a late reader never touches an unmapped block."""

    def __init__(self, fd: int):
        self.fd = fd
        self.mm = mmap.mmap(fd, CONTROL_SIZE)
        self._q = memoryview(self.mm).cast("q")
        self._d = memoryview(self.mm).cast("d")
        self._lock = threading.Lock()

    @classmethod
    def create(cls) -> "Control":
        fd = os.memfd_create("stressx-burner", os.MFD_CLOEXEC)
        os.ftruncate(fd, CONTROL_SIZE)
        ctl = cls(fd)
        ctl.set("magic", CONTROL_MAGIC)
        return ctl

    def get(self, name: str):
        i = _INDEX[name]
        with self._lock:
            if self.mm is None:
                return 0.0 if name in _DOUBLES else 0
            return self._d[i] if name in _DOUBLES else self._q[i]

    def set(self, name: str, value) -> None:
        i = _INDEX[name]
        with self._lock:
            if self.mm is None:
                return
            if name in _DOUBLES:
                self._d[i] = float(value)
            else:
                self._q[i] = int(value)

    def add(self, name: str, value: int) -> None:
        with self._lock:
            if self.mm is not None:
                self._q[_INDEX[name]] += int(value)   # one writer per slot across processes

    def snapshot(self) -> dict:
        return {name: self.get(name) for name in SLOTS}

    def close(self) -> None:
        with self._lock:
            if self.mm is None:
                return
            self._q.release()
            self._d.release()
            self.mm.close()
            os.close(self.fd)
            self.mm = None


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x
