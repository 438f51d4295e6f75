"""IO burner: write (and optionally read back) at a target rate on a chosen filesystem.

The burner writes 1 MiB blocks of incompressible data into one file, paced per 100 ms period
against the integral of the requested rate (so the mean rate is exact; backlog is capped at one
period, flagged LIMIT_BEHIND when the disk cannot keep up), wrapping around at ``size`` so the
space used never grows past it. By default each period ends with fdatasync and the written
range is dropped from the page cache (posix_fadvise DONTNEED): the bytes reach the device
within 100 ms and the page cache does not fill. ``nosync`` leaves writeback to the kernel;
``read`` reads each period's range back from the device after the sync.

Cleanup whatever happens: the file is created with O_TMPFILE (an inode with no name: the
kernel frees it when the burner's descriptor closes, including on SIGKILL of anything); where
the filesystem lacks O_TMPFILE the file is unlinked right after it is opened. No name ever
outlives the burner.

Disk safety: the file's size is bounded when the spec is read so that at least ``floor`` (default
the larger of 1 GiB and 5% of the filesystem) stays free, and each period re-checks: if free
space drops below the floor (someone else is filling the disk), the burner truncates its file
and pauses (LIMIT_IO_FLOOR) until space comes back.

Levels are bytes per second: ``io=50MB/s`` (decimal MB), ``io=40MiB/s``, ``io=50M/s``.
Options: ``path=DIR`` (default the temp directory), ``floor=BYTES|N%``, ``size=BYTES``,
``read``, ``nosync``.
"""
from __future__ import annotations

import os
import re
import tempfile
import time

from ...errors import ConfigError
from ...units import format_bytes, parse_bytes
from .base import LIMIT_BEHIND, LIMIT_IO_FLOOR, PERIOD_NS, Burner, BurnerSpec, schedule_peak

CHUNK = 1 << 20
MIN_FILE = 64 << 20
DEFAULT_FILE = 1 << 30
MIN_FLOOR = 1 << 30
DEFAULT_FLOOR_SHARE = 0.05
MAX_RATE = 100e9


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def device_stat_path(path: str) -> str | None:
    """/sys/dev/block/MAJ:MIN/stat of the block device holding `path`, or None (tmpfs,
    overlay, network filesystems: no single device to count)."""
    dev = os.stat(path).st_dev
    p = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat"
    return p if os.path.exists(p) else None


def device_bytes(stat_path: str | None) -> tuple[int, int]:
    """(bytes read, bytes written) so far on a block device (sectors are 512 bytes here)."""
    if not stat_path:
        return 0, 0
    with open(stat_path) as f:
        fields = f.read().split()
    return int(fields[2]) * 512, int(fields[6]) * 512


class IoBurner(Burner):
    kind = "io"
    unit = " B/s"
    option_names = ("path", "floor", "size")
    flags = ("read", "nosync")

    @classmethod
    def example(cls) -> str:
        return "io=50MB/s or io=50MB/s,path=/data,read"

    @classmethod
    def parse_level(cls, text: str, token: str):
        t = text.strip()
        t = re.sub(r"(?i)\s*(/s|ps)$", "", t)
        try:
            rate = parse_bytes(t)
        except ValueError:
            raise ConfigError(token, f"expected a write rate like 50MB/s, 40MiB/s or 50M/s, "
                              f"got {text!r}") from None
        if not 0 <= rate <= MAX_RATE:
            raise ConfigError(token, f"rate must be 0..100GB/s, got {text!r}")
        return float(rate), None

    @classmethod
    def validate(cls, spec: BurnerSpec) -> None:
        opts = spec.options
        if spec.workers != 1:
            raise ConfigError(spec.token, "the IO burner runs one process; ask for the total rate")
        path = os.path.abspath(opts.get("path") or tempfile.gettempdir())
        if not os.path.isdir(path):
            raise ConfigError(spec.token, f"path={path}: not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(spec.token, f"path={path}: not writable")
        st = os.statvfs(path)
        fs_size, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        if "floor" in opts:
            text = str(opts["floor"]).strip()
            try:
                floor = (int(fs_size * float(text[:-1]) / 100) if text.endswith("%")
                         else parse_bytes(text))
            except ValueError:
                raise ConfigError(spec.token, f"floor= expects bytes like 5G or a share of the "
                                  f"filesystem like 10%, got {text!r}") from None
        else:
            floor = max(MIN_FLOOR, int(fs_size * DEFAULT_FLOOR_SHARE))
        room = free - floor
        if "size" in opts:
            try:
                size = parse_bytes(opts["size"])
            except ValueError:
                raise ConfigError(spec.token, f"size= expects bytes like 256M, got {opts['size']!r}") from None
            if size < CHUNK:
                raise ConfigError(spec.token, f"size= must be at least 1MiB, got {opts['size']!r}")
        else:
            size = DEFAULT_FILE
        if room < min(size, MIN_FILE):
            raise ConfigError(spec.token, f"only {format_bytes(free)} free on {path}, and the "
                              f"free-space floor is {format_bytes(floor)}: no room to write "
                              f"(lower floor= or choose another path=)")
        size = min(size, room) // CHUNK * CHUNK
        peak = schedule_peak(spec.schedule)
        if peak is not None and peak < 0:
            raise ConfigError(spec.token, "rate must be positive")
        spec.options = {"path": path, "floor_bytes": int(floor), "file_bytes": int(size),
                        "read": bool(opts.get("read")), "sync": not opts.get("nosync")}

    @classmethod
    def describe(cls, level: float) -> str:
        return f"{level / 1e6:.1f} MB/s"

    # -- burner process ------------------------------------------------------------------
    def setup(self) -> None:
        o = self.options
        self.path, self.floor = o["path"], o["floor_bytes"]
        self.size, self.sync, self.read = o["file_bytes"], o["sync"], o["read"]
        self.sync = self.sync or self.read    # reading back from cache would measure nothing
        try:
            # an inode with no name: nothing to clean up, whatever kills us
            self.fd = os.open(self.path, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (AttributeError, OSError):
            fd, name = tempfile.mkstemp(prefix=".stressx-io-", dir=self.path)
            os.unlink(name)                   # unlinked at once: freed when fd closes
            self.fd = fd
        self.block = os.urandom(CHUNK)        # incompressible: no filesystem shortcut
        self.view = memoryview(self.block)
        self.readbuf = bytearray(CHUNK)
        self.offset = 0
        self.extent = 0                       # bytes of the file allocated so far

    def start(self, start_ns: int) -> None:
        self.owed = 0.0
        self.written = 0

    def period(self, t0: int, t1: int, level: float) -> None:
        level = max(0.0, level)
        self.ctl.set("applied", level)
        per_period = level * PERIOD_NS / 1e9
        self.owed += per_period
        flags = 0
        if free_bytes(self.path) < self.floor:
            # free space fell under the floor (someone else is filling the disk): give back ours
            if self.extent:
                os.ftruncate(self.fd, 0)
                self.extent = self.offset = 0
            self.owed = self.written
            self.ctl.set("limited", LIMIT_IO_FLOOR)
            return
        budget = int(self.owed - self.written)
        if budget > per_period + CHUNK:
            self.owed = self.written + per_period
            budget = int(per_period)
            flags |= LIMIT_BEHIND
        start_off, done = self.offset, 0
        ranges = []
        while budget > 0:
            n = min(CHUNK, budget, self.size - self.offset)
            if self.offset + n > self.extent and free_bytes(self.path) - n < self.floor:
                self.size = max(CHUNK, self.offset)   # the disk shrank under us: wrap here
                flags |= LIMIT_IO_FLOOR
                n = min(n, self.size - self.offset)
            if n > 0:
                n = os.pwrite(self.fd, self.view[:n], self.offset)
                self.offset += n
                self.extent = max(self.extent, self.offset)
                budget -= n
                done += n
            if self.offset >= self.size:
                ranges.append((start_off, self.offset - start_off))
                self.offset = start_off = 0
            if time.monotonic_ns() >= t1:
                flags |= LIMIT_BEHIND
                break
        if self.offset > start_off:
            ranges.append((start_off, self.offset - start_off))
        self.written += done
        self.ctl.add("work", done)
        if done and self.sync:
            os.fdatasync(self.fd)
            self.ctl.add("syncs", 1)
            for off, length in ranges:
                if self.read:
                    self._read_back(off, length)
                else:
                    os.posix_fadvise(self.fd, off, length, os.POSIX_FADV_DONTNEED)
        self.ctl.set("limited", flags)

    def _read_back(self, off: int, length: int) -> None:
        # drop the clean pages first, so the read goes to the device, not the page cache
        os.posix_fadvise(self.fd, off, length, os.POSIX_FADV_DONTNEED)
        end = off + length
        while off < end:
            n = os.preadv(self.fd, [memoryview(self.readbuf)[:min(CHUNK, end - off)]], off)
            if n <= 0:
                break
            off += n
            self.ctl.add("work2", n)
        os.posix_fadvise(self.fd, off - length, length, os.POSIX_FADV_DONTNEED)

    def teardown(self) -> None:
        try:
            os.close(self.fd)     # the last reference: the kernel frees the file's blocks
        except (AttributeError, OSError):
            pass
