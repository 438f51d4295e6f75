"""Shared memory between the coordinator and one shard.

Each shard owns one segment: a file in /dev/shm holding a flat int64 array whose slot layout is
defined (and versioned) in ``_layout.pxi`` and exported as ``_core.SLOTS``. The shard is the only
writer of its counters and histograms; the coordinator writes a few control slots (the common
start instant, stop requests, live rate changes) and otherwise only reads. It never copies the
live slots of a running shard (a copy of memory being written can be torn): the shard publishes
consistent snapshots of them at the common start + k s into two images behind the live slots,
under sequence locks (``_snapshot.pxi``), and the coordinator copies those (~1.3 MiB a second for
one scenario). Nothing per request crosses a pipe.

The coordinator unlinks each segment's name as soon as its shard has mapped it: the memory lives
on while either process holds a mapping, and nothing is left in /dev/shm whatever way the
processes end.
"""
from __future__ import annotations

import mmap
import os
import secrets
import time
from dataclasses import dataclass

import numpy as np

from ..results.hdr import Histogram
from . import _core

SLOTS = _core.SLOTS
HIST_SLOTS = _core.HDR_PARAMS["slots"]
N_HISTOGRAMS = _core.LAYOUT["n_histograms"]
SCENARIO = _core.SCENARIO_SLOTS
SCENARIOS_BASE = SLOTS["histograms"] + N_HISTOGRAMS * HIST_SLOTS
SCENARIO_BLOCK = SCENARIO["block"]
if SCENARIO_BLOCK != SCENARIO["header"] + 2 * HIST_SLOTS or SCENARIO["all_histogram"] != SCENARIO["header"] + HIST_SLOTS:
    raise ImportError("stressx.engine._core: scenario block layout does not match the histogram size")


SNAPSHOT_BUFFERS = _core.LAYOUT["snapshot_buffers"]
SNAPSHOT_READ_ATTEMPTS = 20     # a torn read is retried (the shard writes an image in ~10-100 us)


LAYOUT = _core.LAYOUT
NAME_SLOTS = LAYOUT["name_slots"]
COUNTER_SLOTS = LAYOUT["counter_slots"]
N_COUNTERS = LAYOUT["n_counters"]
N_TRACEBACKS = LAYOUT["n_tracebacks"]
TB_SLOTS = LAYOUT["tb_slots"]


def flow_area_slots(n_steps: int) -> int:
    """Slots of the flow area after the step blocks: step names, named counters, tracebacks
    (none in a run without Python scenarios)."""
    if n_steps <= 0:
        return 0
    return n_steps * NAME_SLOTS + N_COUNTERS * COUNTER_SLOTS + N_TRACEBACKS * TB_SLOTS


def live_slots(n_scenarios: int, n_steps: int = 0) -> int:
    """Slots of the live area (and of each snapshot image)."""
    return SCENARIOS_BASE + (n_scenarios + n_steps) * SCENARIO_BLOCK + flow_area_slots(n_steps)


def segment_slots(n_scenarios: int, n_steps: int = 0) -> int:
    """Slots of a whole segment: the live area, then the snapshot images."""
    return live_slots(n_scenarios, n_steps) * (1 + SNAPSHOT_BUFFERS)


def encode_name(text: str, limit: int) -> bytes:
    """UTF-8, cut to `limit` bytes on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) > limit:
        data = data[:limit].decode("utf-8", "ignore").encode("utf-8")
    return data


def write_text(slots, at: int, text: str, n_slots: int) -> None:
    """Slot `at`: the byte length, then the UTF-8 bytes (cut to fit) in the next slots."""
    data = encode_name(text, (n_slots - 1) * 8)
    padded = data + b"\0" * (-len(data) % 8)
    if padded:
        slots[at + 1:at + 1 + len(padded) // 8] = np.frombuffer(padded, dtype=np.int64)
    slots[at] = len(data)


def read_text(slots, at: int) -> str:
    n = int(slots[at])
    if n <= 0:
        return ""
    raw = slots[at + 1:at + 1 + (n + 7) // 8].tobytes()[:n]
    return raw.decode("utf-8", "replace")


SHM_DIR = "/dev/shm"
INT64_MAX = np.iinfo(np.int64).max


class ShardMemory:
    """One shard's mapped segment; `slots` is a writable numpy int64 view of it."""

    def __init__(self, path: str, fd: int, created: bool, size: int | None = None):
        self.path = path
        self._mmap = mmap.mmap(fd, size or os.fstat(fd).st_size)
        os.close(fd)
        self.slots = np.frombuffer(self._mmap, dtype=np.int64)
        self._linked = created
        self._seen = [0] * SNAPSHOT_BUFFERS    # sequence numbers of the images already read

    @classmethod
    def create(cls, run_id: str, index: int, n_scenarios: int = 1,
               n_steps: int = 0) -> "ShardMemory":
        """n_steps > 0 (Python scenarios): that many step blocks and the flow area."""
        path = os.path.join(SHM_DIR, f"stressx-{run_id}-{index}")
        size = segment_slots(n_scenarios, n_steps) * 8
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        mem = cls(path, fd, created=True, size=size)
        s = mem.slots
        s[SLOTS["magic"]] = _core.LAYOUT["magic"]
        s[SLOTS["version"]] = _core.LAYOUT["version"]
        s[SLOTS["n_scenarios"]] = n_scenarios
        s[SLOTS["n_steps"]] = n_steps
        for h in range(N_HISTOGRAMS):
            s[SLOTS["histograms"] + h * HIST_SLOTS + 1] = INT64_MAX  # min of an empty histogram
        for i in range(n_scenarios + n_steps):
            for off in (SCENARIO["header"], SCENARIO["all_histogram"]):
                s[SCENARIOS_BASE + i * SCENARIO_BLOCK + off + 1] = INT64_MAX
        return mem

    @classmethod
    def attach(cls, path: str) -> "ShardMemory":
        mem = cls(path, os.open(path, os.O_RDWR), created=False)
        if mem.slots[SLOTS["magic"]] != _core.LAYOUT["magic"]:
            raise ValueError(f"{path}: not a stressx shard segment")
        if mem.slots[SLOTS["version"]] != _core.LAYOUT["version"]:
            raise ValueError(f"{path}: layout version {mem.slots[SLOTS['version']]}, "
                             f"this stressx reads {_core.LAYOUT['version']}")
        return mem

    def touch(self) -> int:
        """Map every page of the segment into this process now (a read of one slot a page);
        returns the pages. A shard writes a histogram bucket's page only when a latency
        first lands in it, so its resident size would creep up through a long run as the
        tails reach new buckets (bounded by the segment, ~4 MB with one scenario, but no
        soak could tell that from a leak); touched at the start, it stays flat."""
        step = max(1, os.sysconf("SC_PAGE_SIZE") // self.slots.itemsize)
        pages = self.slots[::step]
        int(pages.sum())      # the read faults the pages in; the value is not needed
        return len(pages)

    def unlink(self) -> None:
        """Remove the name; the mapping stays valid."""
        if self._linked:
            self._linked = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def get(self, name: str) -> int:
        return int(self.slots[SLOTS[name]])

    def set(self, name: str, value: int) -> None:
        self.slots[SLOTS[name]] = value

    @property
    def live(self) -> int:
        return live_slots(self.get("n_scenarios"), self.get("n_steps"))

    def read(self) -> "Reading":
        """A plain copy of the live slots: consistent only when the shard is not writing (it
        has exited, or not started); while it runs, read its snapshots()."""
        return Reading(self.slots[:self.live].copy())

    def snapshots(self) -> list["Reading"]:
        """The complete snapshots the shard published since the last call (at most one per
        image), oldest first. An image being written is retried a few times, then left for the
        next call."""
        out = []
        for b, seq in enumerate(_core.snapshot_seqs(self.slots)):
            if seq == self._seen[b] or seq == 0:
                continue
            for attempt in range(SNAPSHOT_READ_ATTEMPTS):
                dest = np.empty(self.live, dtype=np.int64)
                got = _core.read_snapshot(self.slots, b, dest)
                if got > 0:
                    self._seen[b] = got
                    out.append(Reading(dest))
                    break
                time.sleep(0.0001 * (attempt + 1))
        return sorted(out, key=lambda r: r.index)

    def close(self) -> None:
        self.unlink()
        self.slots = None
        try:
            self._mmap.close()
        except BufferError:
            pass  # a numpy view is still alive somewhere; the GC will unmap it


def new_run_id() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


@dataclass
class Reading:
    """A copy of one shard's segment at one instant, with named accessors."""

    slots: np.ndarray

    def __getitem__(self, name: str) -> int:
        return int(self.slots[SLOTS[name]])

    @classmethod
    def zero(cls, n_scenarios: int, n_steps: int = 0) -> "Reading":
        """The state at the start instant: nothing is counted before it."""
        r = cls(np.zeros(live_slots(n_scenarios, n_steps), dtype=np.int64))
        r.slots[SLOTS["n_scenarios"]] = n_scenarios
        r.slots[SLOTS["n_steps"]] = n_steps
        return r

    # a snapshot's own description (see _snapshot.pxi)
    @property
    def index(self) -> int:
        """k: the state at the common start + k s (a final snapshot: the shard's end, which
        stands for every later k)."""
        return self["snap_index"]

    @property
    def taken_ns(self) -> int:
        return self["snap_taken_ns"]

    @property
    def final(self) -> bool:
        return bool(self["snap_final"])

    def whole(self) -> bool:
        """Do its counts agree (completed = ok + errors, every histogram's count = the sum of
        its buckets, one latency per ok)? Snapshots always do; a copy of live slots that were
        being written may not."""
        if self["completed"] != self["ok"] + self["errors"]:
            return False
        hists = [self.histogram(name) for name in _core.HISTOGRAMS]
        hists += [self.scenario_histogram(i) for i in range(self.n_scenarios + self.n_steps)]
        if any(h.total != int(h.counts.sum()) for h in hists):
            return False
        return hists[0].total == self["ok"]

    def errors(self) -> np.ndarray:
        base = SLOTS["error_kinds"]
        return self.slots[base:base + len(_core.ERROR_KINDS)]

    def status(self) -> np.ndarray:
        base = SLOTS["status"]
        return self.slots[base:base + _core.LAYOUT["n_status"]]

    def block(self, name: str, n: int) -> np.ndarray:
        """The n slots starting at slot `name` (drop_reasons, connect_fail_kinds...)."""
        base = SLOTS[name]
        return self.slots[base:base + n]

    def histogram(self, name: str) -> Histogram:
        start = SLOTS["histograms"] + _core.HISTOGRAMS.index(name) * HIST_SLOTS
        return Histogram.from_slots(self.slots[start:start + HIST_SLOTS])

    @property
    def n_scenarios(self) -> int:
        return self["n_scenarios"]

    @property
    def n_steps(self) -> int:
        return self["n_steps"]

    # -- Python scenarios: steps are blocks n_scenarios + j, named in the flow area ---------
    def _flow_area(self) -> int:
        return SCENARIOS_BASE + (self.n_scenarios + self.n_steps) * SCENARIO_BLOCK

    def step_names(self) -> list[str]:
        """The names of the step blocks in use, in block order."""
        base = self._flow_area()
        return [read_text(self.slots, base + j * NAME_SLOTS)
                for j in range(min(self["steps_used"], self.n_steps))]

    def step(self, j: int) -> dict:
        return self.scenario(self.n_scenarios + j)

    def step_histogram(self, j: int, which: str = "latency") -> Histogram:
        return self.scenario_histogram(self.n_scenarios + j, which)

    def counters(self) -> list[tuple[str, str, int, int]]:
        """(kind 'check'|'exception', name, a, b) of each named counter in use."""
        if self.n_steps <= 0:
            return []
        base = self._flow_area() + self.n_steps * NAME_SLOTS
        out = []
        for i in range(N_COUNTERS):
            at = base + i * COUNTER_SLOTS
            kind = int(self.slots[at])
            if kind == 0:
                break
            out.append(("check" if kind == 1 else "exception", read_text(self.slots, at + 3),
                        int(self.slots[at + 1]), int(self.slots[at + 2])))
        return out

    def tracebacks(self) -> list[str]:
        if self.n_steps <= 0:
            return []
        base = self._flow_area() + self.n_steps * NAME_SLOTS + N_COUNTERS * COUNTER_SLOTS
        return [read_text(self.slots, base + i * TB_SLOTS)
                for i in range(min(self["tracebacks"], N_TRACEBACKS))]

    def scenario(self, i: int) -> dict:
        """Scenario i's counters (and error kinds array under 'errors_by_kind')."""
        base = SCENARIOS_BASE + i * SCENARIO_BLOCK
        out = {name: int(self.slots[base + off]) for name, off in SCENARIO.items()
               if name not in ("error_kinds", "header", "all_histogram", "block")}
        k = base + SCENARIO["error_kinds"]
        out["errors_by_kind"] = self.slots[k:k + len(_core.ERROR_KINDS)]
        return out

    def scenario_histogram(self, i: int, which: str = "latency") -> Histogram:
        """Scenario i's `latency` (successes) or `all_latency` (every completed request)."""
        off = {"latency": SCENARIO["header"], "all_latency": SCENARIO["all_histogram"]}[which]
        start = SCENARIOS_BASE + i * SCENARIO_BLOCK + off
        return Histogram.from_slots(self.slots[start:start + HIST_SLOTS])
