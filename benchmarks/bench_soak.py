#!/usr/bin/env python3
"""Soak: does a long run hold flat memory, bounded files and steady CPU?

    python benchmarks/bench_soak.py                        # 10 minutes at 5000 req/s
    python benchmarks/bench_soak.py --duration 24h         # any length
    python benchmarks/bench_soak.py --duration 2m --rate 1000   # quick check that it works

Runs `stressx run URL --rate R --duration D` against its own nginx on 127.0.0.1 (or the
embedded target with --embedded), with a sliding-window threshold and a safety warn limit,
so the companions that keep per-interval state run too (add --burn SPEC for burners). Every
--every seconds (10) it records, from /proc, for the coordinator (the stressx process) and
each shard: resident size (VmRSS), CPU time, open descriptors (sockets apart: a shard's
follow its connections); and the results
directory's size, file by file; plus the host's load average. At the end it fits a line
through the samples after --warmup (60 s) and prints growth per hour: memory (MB/hour), each
results file (MB/hour), CPU share over the first and last thirds, descriptors (min-max).

Bars (issue 11, at 5000 req/s over 10 minutes): coordinator growth < 5 MB/hour, each shard
< 1 MB/hour, descriptors other than sockets constant. The samples and the figures are written to
OUT/soak.json. Exit status 0 whatever the bars say (2 for bad flags, 1 if the run failed).
Memory-focused: other work on the machine moves the CPU figures, not the memory ones; the
load average is printed so a reader can tell.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BAR_COORDINATOR_MB_H = 5.0
BAR_SHARD_MB_H = 1.0
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_seconds(text: str) -> float:
    """300, 300s, 10m, 24h, 1h30m."""
    text, total, num = text.strip().lower(), 0.0, ""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    for ch in text:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total, num = total + float(num) * units[ch], ""
        else:
            raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 600, 10m, 24h)")
    if num:
        total += float(num)
    if total <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be > 0, got {text!r}")
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Nginx:
    """Our own nginx (config, pid, logs in a temp dir) on loopback; never the system one."""

    def __init__(self, tmp: Path):
        self.tmp = tmp / "nginx"
        self.tmp.mkdir()
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.proc = None

    def start(self) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, host=HOST, port=self.port))
        self.proc = subprocess.Popen([exe, "-p", str(self.tmp), "-c", str(conf),
                                      "-e", str(self.tmp / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nginx did not answer within 10 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class Embedded:
    """stressx's embedded target in its own process (`stressx serve`)."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([*stressx_cmd(), "serve", "--host", HOST, "--port", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the embedded target exited with {self.proc.returncode}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the embedded target did not listen within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# -- /proc readings ---------------------------------------------------------------------------

def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def rss_parts(pid: int) -> dict:
    """RssAnon, RssFile and RssShmem of /proc/PID/status, in bytes: private memory (what a
    leak grows), mapped files, and shared memory (the shards' segments, fixed in size: their
    pages count once touched, e.g. as latencies reach histogram buckets not used before)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    key, value = line.split(":", 1)
                    out[key[3:].lower()] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of the process (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, ValueError, IndexError):
        return None


def fd_count(pid: int) -> tuple[int, int] | tuple[None, None]:
    """(descriptors that are not sockets: files, pipes, timers...; sockets). A shard's
    sockets follow its connections, which the open model opens on demand (bounded by
    --max-connections); everything else must stay put."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, None
    sockets = 0
    for name in names:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
        except OSError:
            pass
    return len(names) - sockets, sockets


def shard_pids(coordinator: int) -> list[int]:
    """The coordinator's children running stressx.engine.shard, in pid order."""
    out = []
    try:
        children = open(f"/proc/{coordinator}/task/{coordinator}/children").read().split()
    except OSError:
        return out
    for pid in map(int, children):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"stressx.engine.shard" in cmd:
            out.append(pid)
    return sorted(out)


def dir_sizes(path: Path) -> dict[str, int]:
    out = {}
    try:
        for p in path.iterdir():
            if p.is_file():
                out[p.name] = p.stat().st_size
    except OSError:
        pass
    return out


def sample(t: float, coordinator: int, shards: list[int], out_dir: Path) -> dict:
    procs = {"coordinator": coordinator, **{f"shard{i}": pid for i, pid in enumerate(shards)}}
    out = {"t_s": round(t, 3), "load1": os.getloadavg()[0], "procs": {},
           "files": dir_sizes(out_dir)}
    for name, pid in procs.items():
        fds, sockets = fd_count(pid)
        out["procs"][name] = {"pid": pid, "rss": rss_bytes(pid), **rss_parts(pid),
                              "cpu_s": cpu_seconds(pid), "fds": fds, "sockets": sockets}
    return out


# -- figures ----------------------------------------------------------------------------------

def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, y) points, y per second; None with fewer than 3."""
    pts = [(t, y) for t, y in points if y is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    my = sum(y for _, y in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (y - my) for t, y in pts) / var if var else None


def cpu_share(samples: list[dict], name: str) -> float | None:
    """Mean CPU of process `name` between the first and last of `samples`, % of one core."""
    pts = [(s["t_s"], s["procs"].get(name, {}).get("cpu_s")) for s in samples]
    pts = [(t, c) for t, c in pts if c is not None]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    return 100.0 * (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def figures(samples: list[dict], warmup_s: float) -> dict:
    steady = [s for s in samples if s["t_s"] >= warmup_s] or samples
    names = sorted({n for s in samples for n in s["procs"]}, key=lambda n: (n != "coordinator", n))
    third = max(1, len(steady) // 3)
    out = {"samples": len(samples), "steady_samples": len(steady),
           "steady_from_s": steady[0]["t_s"] if steady else None,
           "steady_to_s": steady[-1]["t_s"] if steady else None, "procs": {}, "files": {}}
    for name in names:
        rss = [(s["t_s"], s["procs"].get(name, {}).get("rss")) for s in steady]
        fds = [s["procs"][name]["fds"] for s in steady if s["procs"].get(name, {}).get("fds") is not None]
        socks = [s["procs"][name].get("sockets") for s in steady
                 if s["procs"].get(name, {}).get("sockets") is not None]
        k = slope(rss)
        vals = [r for _, r in rss if r is not None]
        parts = {}
        for part in ("anon", "file", "shmem"):
            k_part = slope([(s["t_s"], s["procs"].get(name, {}).get(part)) for s in steady])
            parts[f"{part}_growth_mb_per_hour"] = round(k_part * 3600 / 1e6, 3) if k_part is not None else None
        out["procs"][name] = {
            **parts,
            "rss_first_mb": round(vals[0] / 1e6, 2) if vals else None,
            "rss_last_mb": round(vals[-1] / 1e6, 2) if vals else None,
            "rss_max_mb": round(max(vals) / 1e6, 2) if vals else None,
            "rss_growth_mb_per_hour": round(k * 3600 / 1e6, 3) if k is not None else None,
            "cpu_pct_first_third": _round(cpu_share(steady[:third + 1], name)),
            "cpu_pct_last_third": _round(cpu_share(steady[-third - 1:], name)),
            "fds_min": min(fds) if fds else None, "fds_max": max(fds) if fds else None,
            "sockets_min": min(socks) if socks else None,
            "sockets_max": max(socks) if socks else None,
        }
    total = [(s["t_s"], sum(s["files"].values())) for s in steady]
    k = slope(total)
    out["results_mb_per_hour"] = round(k * 3600 / 1e6, 3) if k is not None else None
    for name in sorted({f for s in steady for f in s["files"]}):
        k = slope([(s["t_s"], s["files"].get(name)) for s in steady])
        out["files"][name] = round(k * 3600 / 1e6, 3) if k is not None else None
    loads = [s["load1"] for s in samples]
    out["load1_mean"] = round(sum(loads) / len(loads), 2) if loads else None
    out["load1_max"] = round(max(loads), 2) if loads else None
    return out


def _round(x, places=2):
    return None if x is None else round(x, places)


def report(f: dict, args) -> list[str]:
    lines = [f"soak: {args.rate:g} req/s for {args.duration:g} s, fitted over "
             f"{f['steady_from_s']}-{f['steady_to_s']} s ({f['steady_samples']} samples every "
             f"{args.every:g} s); host load1 mean {f['load1_mean']} max {f['load1_max']}", "",
             f"{'process':<12} {'RSS first':>10} {'RSS last':>10} {'growth MB/h':>12} "
             f"{'anon/file/shmem MB/h':>22} "
             f"{'CPU% 1st/3':>11} {'CPU% last/3':>12} {'files':>9} {'sockets':>9}"]
    for name, p in f["procs"].items():
        lines.append(f"{name:<12} {_fmt(p['rss_first_mb'])} {_fmt(p['rss_last_mb'])} "
                     f"{_fmt(p['rss_growth_mb_per_hour'], 12, '.3f')} "
                     f"{'/'.join(_fmt(p[f'{x}_growth_mb_per_hour'], 0, '.2f').strip() for x in ('anon', 'file', 'shmem')):>22} "
                     f"{_fmt(p['cpu_pct_first_third'], 11)} {_fmt(p['cpu_pct_last_third'], 12)} "
                     f"{p['fds_min']:>4}-{p['fds_max']:<4} {p['sockets_min']:>4}-{p['sockets_max']:<4}")
    lines += ["", f"results directory: {_fmt(f['results_mb_per_hour'], 0, '.3f').strip()} MB/hour"]
    for name, mb in f["files"].items():
        lines.append(f"  {name:<28} {_fmt(mb, 10, '.3f')} MB/hour")
    lines.append("")
    coord = f["procs"].get("coordinator", {})
    shards = {n: p for n, p in f["procs"].items() if n.startswith("shard")}
    bars = [("coordinator growth < 5 MB/hour", coord.get("rss_growth_mb_per_hour"), BAR_COORDINATOR_MB_H)]
    bars += [(f"{n} growth < 1 MB/hour", p["rss_growth_mb_per_hour"], BAR_SHARD_MB_H)
             for n, p in shards.items()]
    for text, value, bar in bars:
        verdict = "n/a" if value is None else ("PASS" if value < bar else "FAIL")
        lines.append(f"{text:<34} {_fmt(value, 9, '.3f')}  {verdict}")
    fds_flat = all(p["fds_min"] == p["fds_max"] for p in f["procs"].values())
    lines.append(f"{'descriptors other than sockets constant':<34} {'':>9}  {'PASS' if fds_flat else 'FAIL'}")
    return lines


def _fmt(x, width=10, spec=".1f") -> str:
    return f"{'-' if x is None else format(x, spec):>{width}}"


# -- main -------------------------------------------------------------------------------------

def stressx_cmd() -> list[str]:
    return [sys.executable, "-m", "stressx.cli"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=parse_seconds, default=600.0,
                    help="run length: 600, 10m, 24h (default 10m)")
    ap.add_argument("--rate", type=float, default=5000.0, help="requests/s (default 5000)")
    ap.add_argument("--workers", type=int, help="shards (default: stressx's, one per CPU)")
    ap.add_argument("--connections", type=int, default=256,
                    help="connections opened before the start (default 256): a pool that "
                         "the run must grow on a busy machine counts as growth")
    ap.add_argument("--every", type=parse_seconds, default=10.0, help="sample period (default 10s)")
    ap.add_argument("--warmup", type=parse_seconds, default=60.0,
                    help="samples before this are left out of the fits (default 60s)")
    ap.add_argument("--embedded", action="store_true", help="the embedded target, not nginx")
    ap.add_argument("--url", help="an existing target on loopback instead of starting one")
    ap.add_argument("--burn", action="append", default=[], help="stressx --burn SPEC (repeatable)")
    ap.add_argument("--out", help="results directory (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    if args.url and not args.url.startswith(("http://127.", "http://[::1]", "http://localhost")):
        ap.error("--url must be on loopback")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        dict.fromkeys([str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))
    with tempfile.TemporaryDirectory(prefix="stressx-soak-") as tmp_name:
        tmp = Path(tmp_name)
        out = Path(args.out) if args.out else tmp / "results"
        target = None
        if not args.url:
            target = Embedded(tmp) if args.embedded or not shutil.which("nginx") else Nginx(tmp)
            target.start()
        url = args.url or target.url
        cmd = [*stressx_cmd(), "run", url, "--rate", f"{args.rate:g}", "--duration",
               f"{args.duration:g}s", "--connections", str(args.connections),
               "--out", str(out), "--quiet",
               "--threshold", "p99<1s", "--threshold", "error_rate<1%", "--threshold-window", "30s",
               "--safety", "mem>99%:warn", "--safety", "p99>5s:warn"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        for spec in args.burn:
            cmd += ["--burn", spec]
        log(f"soak: {' '.join(cmd)}")
        samples = []
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            # the clock starts at the run's common start (latency.hlog is opened then), not
            # at the spawn: start-up and the connections' pre-warm are no part of the soak
            deadline = time.monotonic() + args.duration + 300
            while proc.poll() is None and time.monotonic() < deadline \
                    and not (out / "latency.hlog").exists():
                time.sleep(0.05)
            t0 = time.monotonic()
            shards: list[int] = shard_pids(proc.pid)
            # half a second off the whole seconds: not while the coordinator cuts an
            # interval (its transient arrays would read as a few MB of noise)
            next_at = t0 + args.every + 0.5
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(max(0.0, min(next_at - time.monotonic(), 0.5)))
                if time.monotonic() < next_at:
                    continue
                next_at += args.every
                if time.monotonic() - t0 > args.duration - args.every / 2:
                    break                       # the run is ending: shards close, files close
                s = sample(time.monotonic() - t0, proc.pid, shards, out)
                if s["procs"]["coordinator"]["rss"] is None:
                    break
                samples.append(s)
                c = s["procs"]["coordinator"]
                log(f"[{s['t_s']:7.0f}s] coordinator {c['rss'] / 1e6:7.2f} MB  "
                    + "  ".join(f"{n} {p['rss'] / 1e6:7.2f} MB" for n, p in s["procs"].items()
                                if n != "coordinator" and p["rss"])
                    + f"  results {sum(s['files'].values()) / 1e6:7.2f} MB  load1 {s['load1']:.2f}")
            if proc.poll() is None:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            if target is not None:
                target.stop()
        f = figures(samples, args.warmup) if samples else None
        if f:
            print("\n".join(report(f, args)))
        (out / "soak.json").write_text(json.dumps({"argv": sys.argv[1:], "exit_code": proc.returncode,
                                                   "figures": f, "samples": samples}, indent=1))
        if args.out:
            print(f"samples and figures: {out / 'soak.json'}")
        if proc.returncode not in (0, 3):
            log(f"soak: stressx exited with {proc.returncode}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
