"""Memory burner: hold a target resident size, optionally rewriting it at a rate (churn).

One private anonymous mapping the size of the cap is reserved up front (MAP_NORESERVE: address
space only). Reaching a level faults the mapping's head in with madvise(MADV_POPULATE_WRITE) (or, before
Linux 5.14, by touching one byte per page in compiled code), so the pages become resident
and private to the burner; lowering it releases the tail with
madvise(MADV_DONTNEED). Nothing is unmapped and remapped while a level holds, so the resident
size stays where it was put (stress-ng's --vm unmaps and remaps, and averages well under its
target). The level counts the whole process: the interpreter's own resident size, measured
before the start, is subtracted from what the burner touches.

Safety, by default and at run time:
- the cap: a request above ``cap`` (default 80% of the memory *available* when the spec is
  read) is refused with a ConfigError naming the token, before anything starts;
- the reserve: while it runs, the burner never lets the host's MemAvailable fall below
  ``reserve`` (default the larger of 256 MiB and 5% of total memory): it stops growing and,
  if something else takes memory, releases its own pages (flagged LIMIT_MEM_RESERVE), so it
  does not push the host into swap or the OOM killer;
- it sets its own oom_score_adj to 1000, so if the kernel must kill something anyway it is
  the burner, not the service under test.

Levels are bytes (``mem=2G``, ``mem=512M``) or a share of total memory (``mem=25%``).
"""
from __future__ import annotations

import mmap
import os

from ...engine import _core
from ...errors import ConfigError
from ...units import format_bytes, parse_bytes
from .base import LIMIT_CAP, LIMIT_MEM_RESERVE, PERIOD_NS, Burner, BurnerSpec, clamp, schedule_peak

PAGE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_CAP_SHARE = 0.80           # of MemAvailable when the spec is read
DEFAULT_RESERVE_SHARE = 0.05       # of MemTotal, kept available at run time
MIN_RESERVE = 256 << 20
GROW_CHUNK = 64 << 20              # touch this much, then re-check stop and MemAvailable
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)   # Linux value; not exported by 3.11
MADV_POPULATE_WRITE = 23           # Linux >= 5.14 (include/uapi/asm-generic/mman-common.h)


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (MemTotal, MemAvailable, SwapTotal, SwapFree, ...)."""
    out = {}
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            key, _, rest = line.partition(b":")
            parts = rest.split()
            if parts:
                out[key.decode()] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def available_bytes() -> int:
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


def _size_or_share(text: str, of: int, token: str, what: str) -> int:
    text = str(text).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1
        if not 0 < pct <= 100:
            raise ConfigError(token, f"{what}: expected 1..100%, got {text!r}")
        return int(of * pct / 100)
    try:
        return parse_bytes(text)
    except ValueError:
        raise ConfigError(token, f"{what}: expected bytes like 2G, 512M, 1.5GiB, 100MB or a "
                          f"share like 25%, got {text!r}") from None


class MemoryBurner(Burner):
    kind = "mem"
    unit = " B"
    option_names = ("cap", "reserve", "churn")

    @classmethod
    def example(cls) -> str:
        return "mem=2G, mem=512M or mem=25% (of total memory)"

    @classmethod
    def parse_level(cls, text: str, token: str):
        total = meminfo()["MemTotal"]
        return float(_size_or_share(text, total, token, "memory level")), None

    @classmethod
    def validate(cls, spec: BurnerSpec) -> None:
        info = meminfo()
        total, avail = info["MemTotal"], info["MemAvailable"]
        opts = spec.options
        if spec.workers != 1:
            raise ConfigError(spec.token, "the memory burner runs one process; ask for the total")
        reserve = (_size_or_share(opts["reserve"], total, spec.token, "reserve=")
                   if "reserve" in opts else max(MIN_RESERVE, int(total * DEFAULT_RESERVE_SHARE)))
        hard = max(0, avail - reserve)   # beyond this the host would swap or OOM
        if "cap" in opts:
            cap = _size_or_share(opts["cap"], avail, spec.token, "cap= (bytes or % of available)")
            if cap > hard:
                raise ConfigError(spec.token, f"cap={opts['cap']} ({format_bytes(cap)}) leaves less "
                                  f"than the {format_bytes(reserve)} reserve of the "
                                  f"{format_bytes(avail)} available now; at most {format_bytes(hard)}")
        else:
            cap = min(int(avail * DEFAULT_CAP_SHARE), hard)
        churn = 0
        if "churn" in opts:
            try:
                churn = parse_bytes(str(opts["churn"]).lower().removesuffix("/s"))
            except ValueError:
                raise ConfigError(spec.token, f"churn= expects bytes per second like 100MB/s, "
                                  f"got {opts['churn']!r}") from None
        peak = schedule_peak(spec.schedule)
        if peak is not None and peak > cap:
            how = ("set cap= (bytes or % of available) up to " + format_bytes(hard)
                   if "cap" not in opts else "raise cap=")
            raise ConfigError(spec.token, f"{format_bytes(peak)} is above the memory cap of "
                              f"{format_bytes(cap)} ({int(DEFAULT_CAP_SHARE * 100)}% of the "
                              f"{format_bytes(avail)} available now"
                              f"{'' if 'cap' not in opts else ', as set by cap='}), which keeps the "
                              f"host out of swap and the OOM killer; ask for less or {how}")
        if peak is not None and peak < 0:
            raise ConfigError(spec.token, "memory level must be positive")
        spec.options = {"cap_bytes": int(cap), "reserve_bytes": int(reserve),
                        "churn_bytes_per_s": int(churn)}

    @classmethod
    def describe(cls, level: float) -> str:
        return format_bytes(level)

    # -- burner process ------------------------------------------------------------------
    def setup(self) -> None:
        self.cap = self.options["cap_bytes"] // PAGE * PAGE
        self.reserve = self.options["reserve_bytes"]
        self.churn_per_period = self.options["churn_bytes_per_s"] * PERIOD_NS // 1_000_000_000
        try:   # if the kernel must kill something anyway, let it be us, not the target
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        self.map = mmap.mmap(-1, max(self.cap, PAGE),
                             flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
        try:   # 4 KiB pages: resident size moves exactly with what we touch and release
            self.map.madvise(mmap.MADV_NOHUGEPAGE)
        except (AttributeError, OSError):
            pass
        self.held = 0          # bytes at the head of the mapping that are touched
        self.churn_at = 0
        self.no_grow_until = 0
        self.populate_write = True
        self.value = 0x5A
        self.baseline = rss_bytes()

    def _populate(self, offset: int, length: int) -> None:
        if self.populate_write:
            try:   # one call faults the whole range in, ~3x faster than a fault per page
                self.map.madvise(MADV_POPULATE_WRITE, offset, length)
                return
            except OSError:
                self.populate_write = False     # kernel < 5.14: touch each page instead
        _core.touch_pages(self.map, offset, offset + length, PAGE, self.value)

    def _release_to(self, size: int) -> None:
        size = max(0, size // PAGE * PAGE)
        if size < self.held:
            self.map.madvise(mmap.MADV_DONTNEED, size, self.held - size)
            self.held = size

    def period(self, t0: int, t1: int, level: float) -> None:
        flags = 0
        want = int(clamp(level - self.baseline, 0, self.cap)) // PAGE * PAGE
        if level - self.baseline > self.cap:
            flags |= LIMIT_CAP
        if want > self.held and t0 >= self.no_grow_until:
            while self.held < want:
                if self.ctl.get("stop"):
                    break
                room = available_bytes() - self.reserve
                step = min(GROW_CHUNK, want - self.held, room // PAGE * PAGE)
                if step <= 0:
                    flags |= LIMIT_MEM_RESERVE
                    break
                self._populate(self.held, step)
                self.held += step
        elif want < self.held:
            self._release_to(want)
        avail = available_bytes()
        if avail < self.reserve:
            # someone else took memory: give ours back rather than push the host into swap
            self._release_to(self.held - (self.reserve - avail) - GROW_CHUNK)
            self.no_grow_until = t1 + 2_000_000_000   # hysteresis: no tug of war at 10 Hz
            flags |= LIMIT_MEM_RESERVE
        elif want > self.held and t0 < self.no_grow_until:
            flags |= LIMIT_MEM_RESERVE
        if self.churn_per_period and self.held:
            left = self.churn_per_period
            if self.churn_at >= self.held:
                self.churn_at = 0
            self.value = (self.value + 1) & 0xFF or 1
            while left > 0:
                n = min(left, self.held - self.churn_at)
                _core.fill_bytes(self.map, self.churn_at, self.churn_at + n, self.value)
                self.churn_at = (self.churn_at + n) % self.held
                left -= n
            self.ctl.add("work2", self.churn_per_period)
        self.ctl.set("limited", flags)
        self.ctl.set("work", self.held)
        self.ctl.set("applied", self.baseline + self.held)

    def teardown(self) -> None:
        self.ctl.set("work", 0)     # the mapping goes with the process; nothing else to undo
