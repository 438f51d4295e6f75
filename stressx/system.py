"""What this process may use of the host: CPUs (affinity and cgroup quota), file descriptors,
its threads' CPU priority. A leaf: no stressx imports.
"""
from __future__ import annotations

import math
import os
import threading

CGROUP_ROOT = "/sys/fs/cgroup"


def parse_cpu_max(text: str) -> int | None:
    """CPUs allowed by a cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for no limit):
    ceil(quota / period), at least 1; None when there is no quota or the text is not one."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def cgroup_cpu_limit(root: str = CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup") -> int | None:
    """The tightest cgroup v2 CPU quota over this process's cgroup and its ancestors (as far as
    they are visible under `root`), in whole CPUs; None when there is none."""
    paths = [""]
    try:
        with open(proc_cgroup) as f:
            for line in f:
                if line.startswith("0::"):     # the v2 hierarchy
                    rel = line[3:].strip().strip("/")
                    parts = rel.split("/") if rel else []
                    paths = ["/".join(parts[:i]) for i in range(len(parts), -1, -1)]
    except OSError:
        pass
    limits = []
    for rel in paths:
        try:
            with open(os.path.join(root, rel, "cpu.max")) as f:
                n = parse_cpu_max(f.read())
        except OSError:
            continue
        if n is not None:
            limits.append(n)
    return min(limits) if limits else None


def usable_cpus(root: str = CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup") -> int:
    """CPUs this process may run on: its affinity mask (taskset, cpusets), further limited by a
    cgroup v2 CPU quota (containers), not os.cpu_count(), which counts the whole machine. The
    default number of workers: more shards than this only compete for the same CPUs."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpu_limit(root, proc_cgroup)
    return max(1, min(n, quota) if quota is not None else n)


def raise_fd_limit(need: int) -> tuple[float, float]:
    """Raise this process's soft RLIMIT_NOFILE towards `need` (up to the hard limit; never
    lowered); returns (soft, hard) afterwards, math.inf for unlimited. Child processes
    (shards, burners) inherit the raised soft limit."""
    import resource
    inf = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != inf and need > soft:
        new = need if hard == inf else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    return (math.inf if soft == inf else soft), (math.inf if hard == inf else hard)


def yield_cpu(nice: int) -> None:
    """Lower the calling thread's (only) CPU priority to at least `nice` (Linux nice values are
    per thread), so the shards preempt it at once when a core is contended."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, max(nice, os.getpriority(os.PRIO_PROCESS, tid))))
    except (OSError, AttributeError):
        pass


GLIBC_MMAP_THRESHOLD = 128 * 1024   # glibc's own starting value, held fixed


def steady_heap(threshold: int = GLIBC_MMAP_THRESHOLD) -> bool:
    """Hold glibc's mmap threshold at `threshold` bytes (mallopt M_MMAP_THRESHOLD), for a
    process that runs for hours: blocks at least that large are then always mapped and
    unmapped on their own. By default glibc raises the threshold to the largest block freed
    so far, so the coordinator's snapshot copies (~1.3 MB a shard a second) and histograms
    (188 KB) move into the heap, where they fragment it and resident memory creeps up (about
    9 MB an hour over a 10-minute soak, against 3 with it held). Only for processes that are
    stressx's own (the shards; the coordinator when the command runs it, as yield_cpu): it is
    a setting of the whole process and cannot be taken back. False where the C library has
    no mallopt (not glibc) or refuses."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_MMAP_THRESHOLD = -3
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
