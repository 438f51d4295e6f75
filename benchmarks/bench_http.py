#!/usr/bin/env python3
"""stressx against wrk on this machine, all on 127.0.0.1.

    python benchmarks/bench_http.py                      # full run (3 rounds, 10 s each)
    python benchmarks/bench_http.py --rounds 1 --seconds 2 --rates 10000   # quick check

What it measures
  1. Closed model, 50 connections: `wrk -t1 -c50` against `stressx run --connections 50
     --workers 1`, requests/s and client CPU per request, with the same-round ratios.
  2. Open model, one shard, at each of --rates: the achieved send rate against the target,
     the scheduler's send lag, latency and CPU per request.
  3. The recorder microbenchmark: ns per record of the compiled HDR recorder, next to the
     pure-Python `hdrh` package's record_value().
  4. HTTPS, closed model, 50 connections: the same nginx's TLS listener (a certificate from a
     test CA made at run time with openssl, in the temp dir), `wrk -t1 -c50` against
     `stressx run --connections 50 --workers 1`, once with --insecure (wrk does not verify
     either) and once verifying against the test CA (--ca-file).
  5. Pacing against wrk2: `wrk2 -t1 -c50 -R10000` against `stressx run --rate 10000
     --connections 50 --max-connections 50 --workers 1`, with the default timer slack and with
     `--timer-slack 1ms`: client CPU per request and send lag; then the curve timer slack ->
     (CPU per request, send lag p99) at each --curve-rates rate, next to the machine's
     wake-up floor (bench_timer.py: CPU per wake-up, wake-up lag). wrk2 is in neither Debian
     nor PyPI: it is found on PATH or through $WRK2, else the section says how to build it
     (benchmarks/README.md). wrk2 does not report its send lag; what it does report is its
     latency from the intended send time (corrected) and from the actual send (-U,
     uncorrected), and the gap between their medians is the typical wait before a send.

Why CPUs are pinned
  The machine has two cores. The target (our own nginx, one worker) is pinned to CPU 0 by
  `worker_cpu_affinity`, and every client (wrk, stressx and its shards) to CPU 1 with
  `taskset -c 1`. Client and server then never compete for a core, so neither client gets
  extra throughput from the other core being idle, and both clients meet the same server.
  Pinning also gives the single-threaded clients a fixed core, so round-to-round noise is
  mostly the machine's, not the scheduler's.

Why CPU is measured this way
  Requests/s alone says little when the server may be the bottleneck: both clients could
  hit the same nginx ceiling. CPU per request is the client's own cost, and is what decides
  how much load one core can generate. For wrk it is user+sys of the wrk process from
  RUSAGE_CHILDREN deltas around the run (wrk is one process, start-up is negligible). For
  stressx two figures are shown: `client_cpu_us_per_request` from the summary JSON, the
  shard's own CPU over the run window (what the engine costs per request, comparable to wrk),
  and the whole process tree from RUSAGE_CHILDREN deltas (coordinator, shard, and Python
  start-up of both), which is what a user pays end to end for a run of this length.

Benchmarks report; they do not gate: the exit status is 0 whatever the bars say (2 for bad
flags). Run it alone: any other load on a two-core machine makes the figures meaningless.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CLIENT_CPU = "1"
CLOSED_CONNECTIONS = 50
WRK2_CPU_US_10K = 17.7      # wrk2 -R10000 on this machine, measured earlier (wrk2 is not in Debian)
PACING_RATE = 10000
PACING_CONNECTIONS = 50
BAR_PACING_DEFAULT_CPU_RATIO = 2.5    # default slack: CPU/request <= 2.5x wrk2's...
BAR_PACING_DEFAULT_LAG_MS = 0.2       # ...with send lag p99 < 0.2 ms
BAR_PACING_SLACK_CPU_RATIO = 1.0      # --timer-slack 1ms: CPU/request <= wrk2's...
BAR_PACING_SLACK_LAG_MS = 1.2         # ...with send lag p99 <= 1.2 ms
BAR_PACING_KERNEL_US = 20.0           # ...and latency within 20 us of the kernel's receive time
BAR_RPS_RATIO = 0.9
BAR_CPU_RATIO = 1.2
BAR_RATE_ERROR_PCT = 0.5
BAR_LAG_P99_MS_10K = 0.2
BAR_RECORD_NS = 50.0
BAR_VERIFY_RATIO = 0.05     # HTTPS verified vs --insecure: rps and CPU/request within 5%
SLACK_S = 60                # every subprocess timeout: run length + this

NGINX_CONF = """\
worker_processes 1;
worker_cpu_affinity 01;
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
    server {{
        listen {host}:{tls_port} ssl backlog=4096;
        ssl_certificate {tmp}/server.pem;
        ssl_certificate_key {tmp}/server.key;
        ssl_session_cache shared:TLS:10m;
        location / {{
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


# -- helpers ------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".1f", width=10) -> str:
    return f"{'-' if x is None else format(x, spec):>{width}}"


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_measured(cmd: list[str], timeout: float) -> tuple[int, str, str, float]:
    """Run cmd to completion; return (exit code, stdout, stderr, CPU seconds of its process
    tree). The CPU is the RUSAGE_CHILDREN delta, which counts every descendant that was waited
    for (stressx's coordinator waits for its shards). Nothing else of ours is reaped meanwhile:
    nginx keeps running until the end.

    The command runs in its own process group. On a timeout or an interruption of this script
    the group gets SIGTERM first (stressx then stops its shards itself), SIGKILL only if it
    lingers, so no client is left running behind the benchmark."""
    before = children_cpu_s()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:   # a straggler still holds the pipes
            out = ""
        return -1, out, f"timed out after {timeout:.0f} s", children_cpu_s() - before
    except BaseException:
        stop_group(proc)
        raise
    return proc.returncode, out, err, children_cpu_s() - before


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we started for proc, then SIGKILL it if still there after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", CLIENT_CPU, *cmd]


# -- setup --------------------------------------------------------------------------------

def ensure_tools() -> None:
    """Install nginx, wrk and openssl from apt if missing (apt-get update once, then install)."""
    missing = [pkg for pkg, exe in (("nginx", "nginx"), ("wrk", "wrk"), ("openssl", "openssl"))
               if nginx_or_wrk(exe) is None]
    if not missing:
        return
    log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", *missing], check=True, env=env, timeout=900)
    for exe in ("nginx", "wrk", "openssl"):
        if nginx_or_wrk(exe) is None:
            raise SystemExit(f"bench_http: {exe} still missing after apt-get install")


def nginx_or_wrk(exe: str) -> str | None:
    found = shutil.which(exe)
    if found is None and os.path.exists(f"/usr/sbin/{exe}"):
        found = f"/usr/sbin/{exe}"  # not on a non-root PATH
    return found


def use_checkout() -> None:
    """Benchmark this checkout: put it first on PYTHONPATH for every child (the CLI, its
    shards, the microbenchmark), whatever the working directory and whether or not stressx is
    pip-installed."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def ensure_stressx() -> None:
    """Make sure the compiled core imports; build it in place once if not. The lead may be
    rebuilding concurrently, so a failed build is retried after a short wait."""
    use_checkout()
    check = [sys.executable, "-c", "import stressx.engine._core, stressx.cli"]
    if subprocess.run(check, capture_output=True, cwd="/", timeout=120).returncode == 0:
        return
    for attempt in range(4):
        log(f"stressx does not import; building the extension in place (attempt {attempt + 1})")
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=REPO,
                       capture_output=True, timeout=900)
        if subprocess.run(check, capture_output=True, cwd="/", timeout=120).returncode == 0:
            return
        time.sleep(15)
    raise SystemExit("bench_http: stressx does not import even after build_ext --inplace")


def stressx_cmd() -> list[str]:
    exe = shutil.which("stressx")
    return [exe] if exe else [sys.executable, "-m", "stressx.cli"]


def make_test_ca(out: Path) -> None:
    """A test CA (ca.pem) and a server certificate it signed for 127.0.0.1 (server.pem,
    server.key), with openssl, into `out`: made per run, never kept."""
    def openssl(*args):
        subprocess.run([nginx_or_wrk("openssl"), *args], cwd=out, check=True, timeout=60,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    (out / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                                 "extendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=stressx bench CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")


class Nginx:
    """Our own nginx in a temp dir (config, pid, logs, temp paths, the test CA's files):
    started and stopped here, never the system one. Plain HTTP on `url`, TLS on `tls_url`."""

    def __init__(self, tmp: Path):
        self.tmp = tmp / "nginx"
        self.tmp.mkdir()
        self.port = free_port()
        self.tls_port = free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.tls_url = f"https://{HOST}:{self.tls_port}/"
        self.ca_file = self.tmp / "ca.pem"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        make_test_ca(self.tmp)
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, host=HOST, port=self.port,
                                          tls_port=self.tls_port))
        # -e: the start-up error log, used before the config is read (nginx >= 1.19.5)
        self.proc = subprocess.Popen([nginx_or_wrk("nginx"), "-p", str(self.tmp), "-c", str(conf),
                                      "-e", str(self.tmp / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.error_log()}")
            if self._answers():
                log(f"nginx (pid {self.proc.pid}) serving {self.url}, worker on CPU 0")
                return
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer on {self.url} within 10 s: {self.error_log()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def error_log(self) -> str:
        try:
            return (self.tmp / "error.log").read_text()[-2000:]
        except OSError:
            return "(no error.log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: master stops its worker
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        log(f"nginx (pid {self.proc.pid}) stopped")


# -- the clients --------------------------------------------------------------------------

WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)\b", re.M)
WRK_RPS = re.compile(r"^Requests/sec:\s*([\d.]+)", re.M)


def run_wrk(url: str, seconds: int) -> dict:
    """wrk -t1 -c50: requests from its "N requests in" line, CPU from RUSAGE_CHILDREN."""
    cmd = pinned([nginx_or_wrk("wrk"), "-t1", f"-c{CLOSED_CONNECTIONS}", f"-d{seconds}s", url])
    code, out, err, cpu_s = run_measured(cmd, seconds + SLACK_S)
    m, r = WRK_REQUESTS.search(out), WRK_RPS.search(out)
    if code != 0 or not m:
        return {"error": f"wrk exit {code}: {(err or out).strip()[-300:]}"}
    requests = int(m.group(1))
    rps = float(r.group(1)) if r else requests / seconds
    return {"rps": rps, "requests": requests, "cpu_s": cpu_s, "cpu_us_per_req": cpu_s * 1e6 / requests}


def run_stressx(url: str, args: list[str], seconds: int, tmp: Path) -> dict:
    """One `stressx run ... --json --quiet` pinned to CPU 1; the summary JSON plus the process
    tree's CPU seconds (`tree_cpu_s`) from RUSAGE_CHILDREN."""
    out_dir = Path(tempfile.mkdtemp(prefix="stressx-", dir=tmp))
    cmd = pinned([*stressx_cmd(), "run", url, *args, "--workers", "1", "--duration", f"{seconds}s",
                  "--json", "--quiet", "--out", str(out_dir / "results")])
    try:
        code, out, err, cpu_s = run_measured(cmd, seconds + SLACK_S)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    try:
        summary = json.loads(out)
    except ValueError:
        return {"error": f"stressx exit {code}: {(err or out).strip()[-300:]}"}
    summary["tree_cpu_s"] = cpu_s
    summary["exit_code"] = code
    if code != 0:
        summary["error"] = f"stressx exit {code} (aborted: {summary.get('aborted')})"
    return summary


# -- 1. closed model ----------------------------------------------------------------------

def bench_closed(url: str, rounds: int, seconds: int, tmp: Path) -> dict:
    print(f"\n== 1. Closed model: {CLOSED_CONNECTIONS} connections, {seconds} s, "
          f"one client thread/shard on CPU {CLIENT_CPU} ==")
    print("CPU/req: wrk = wrk process; stressx shard = summary client_cpu_us_per_request (run "
          "window);\n         stressx tree = coordinator + shard incl. Python start-up (RUSAGE_CHILDREN)")
    head = (f"{'round':>5} {'wrk rps':>10} {'stressx rps':>11} {'rps ratio':>9} "
            f"{'wrk us/req':>10} {'sx us/req':>10} {'cpu ratio':>9} {'sx tree':>10} {'tree ratio':>10}")
    print(head)
    rows = []
    for i in range(rounds):
        # alternate the order so that neither client always runs on a "warmer" server
        order = ("wrk", "stressx") if i % 2 == 0 else ("stressx", "wrk")
        res = {}
        for who in order:
            res[who] = (run_wrk(url, seconds) if who == "wrk" else
                        run_stressx(url, ["--connections", str(CLOSED_CONNECTIONS)], seconds, tmp))
            time.sleep(1)   # let TIME_WAIT sockets and the CPUs settle
        w, s = res["wrk"], res["stressx"]
        for who, r in res.items():
            if r.get("error"):
                print(f"  round {i + 1}: {who}: {r['error']}")
        row = {"wrk_rps": w.get("rps"), "sx_rps": s.get("rps"),
               "wrk_cpu": w.get("cpu_us_per_req"), "sx_cpu": s.get("client_cpu_us_per_request")}
        row["sx_tree"] = (s["tree_cpu_s"] * 1e6 / s["requests"]) if s.get("requests") else None
        row["rps_ratio"] = ratio(row["sx_rps"], row["wrk_rps"])
        row["cpu_ratio"] = ratio(row["sx_cpu"], row["wrk_cpu"])
        row["tree_ratio"] = ratio(row["sx_tree"], row["wrk_cpu"])
        rows.append(row)
        print_closed_row(str(i + 1), row)
    med = {k: median([r[k] for r in rows]) for k in rows[0]}
    print_closed_row("med", med)
    return med


def ratio(a, b):
    return a / b if a is not None and b else None


def print_closed_row(label: str, r: dict) -> None:
    print(f"{label:>5} {fmt(r['wrk_rps'], '.0f')} {fmt(r['sx_rps'], '.0f', 11)} "
          f"{fmt(r['rps_ratio'], '.3f', 9)} {fmt(r['wrk_cpu'], '.2f')} {fmt(r['sx_cpu'], '.2f')} "
          f"{fmt(r['cpu_ratio'], '.3f', 9)} {fmt(r['sx_tree'], '.2f')} {fmt(r['tree_ratio'], '.3f')}")


# -- 4. HTTPS, closed model -----------------------------------------------------------------

def bench_https(nginx: Nginx, rounds: int, seconds: int, tmp: Path) -> dict:
    print(f"\n== 4. HTTPS closed model: {CLOSED_CONNECTIONS} connections, {seconds} s, TLS listener of the "
          f"same nginx, clients on CPU {CLIENT_CPU} ==")
    print("insecure = stressx --insecure (wrk does not verify either); verified = stressx --ca-file "
          "(the run's test CA: chain and host name checked)\nCPU/req as in 1 (stressx: the shard's "
          "own, from its summary)")
    print(f"{'round':>5} {'wrk rps':>10} {'sx rps':>10} {'rps ratio':>9} {'wrk us/req':>10} "
          f"{'sx us/req':>10} {'cpu ratio':>9} {'vfy rps':>10} {'vfy us/req':>10} "
          f"{'vfy/ins rps':>11} {'vfy/ins cpu':>11}")
    url = nginx.tls_url
    rows = []
    for i in range(rounds):
        order = ("wrk", "insecure", "verified") if i % 2 == 0 else ("verified", "insecure", "wrk")
        res = {}
        for who in order:
            if who == "wrk":
                res[who] = run_wrk(url, seconds)
            else:
                extra = ["--insecure"] if who == "insecure" else ["--ca-file", str(nginx.ca_file)]
                res[who] = run_stressx(url, ["--connections", str(CLOSED_CONNECTIONS), *extra],
                                       seconds, tmp)
            time.sleep(1)
        w, s, v = res["wrk"], res["insecure"], res["verified"]
        for who, r in res.items():
            if r.get("error"):
                print(f"  round {i + 1}: {who}: {r['error']}")
            elif who != "wrk" and r.get("error_count"):
                print(f"  round {i + 1}: {who}: errors {r.get('errors')}")
        row = {"wrk_rps": w.get("rps"), "sx_rps": s.get("rps"), "wrk_cpu": w.get("cpu_us_per_req"),
               "sx_cpu": s.get("client_cpu_us_per_request"), "vfy_rps": v.get("rps"),
               "vfy_cpu": v.get("client_cpu_us_per_request")}
        row["rps_ratio"] = ratio(row["sx_rps"], row["wrk_rps"])
        row["cpu_ratio"] = ratio(row["sx_cpu"], row["wrk_cpu"])
        row["vfy_rps_ratio"] = ratio(row["vfy_rps"], row["sx_rps"])
        row["vfy_cpu_ratio"] = ratio(row["vfy_cpu"], row["sx_cpu"])
        rows.append(row)
        print_https_row(str(i + 1), row)
    med = {k: median([r[k] for r in rows]) for k in rows[0]}
    print_https_row("med", med)
    return med


def print_https_row(label: str, r: dict) -> None:
    print(f"{label:>5} {fmt(r['wrk_rps'], '.0f')} {fmt(r['sx_rps'], '.0f')} {fmt(r['rps_ratio'], '.3f', 9)} "
          f"{fmt(r['wrk_cpu'], '.2f')} {fmt(r['sx_cpu'], '.2f')} {fmt(r['cpu_ratio'], '.3f', 9)} "
          f"{fmt(r['vfy_rps'], '.0f')} {fmt(r['vfy_cpu'], '.2f')} {fmt(r['vfy_rps_ratio'], '.3f', 11)} "
          f"{fmt(r['vfy_cpu_ratio'], '.3f', 11)}")


# -- 2. open model ------------------------------------------------------------------------

OPEN_KEYS = ("sent_rps", "rps", "err_pct", "lag_p50", "lag_p99", "lag_max", "lat_p50", "lat_p99", "cpu")


def bench_open(url: str, rounds: int, seconds: int, rates: list[int], tmp: Path) -> dict:
    print(f"\n== 2. Open model: one shard on CPU {CLIENT_CPU}, {seconds} s per rate ==")
    print(f"{'rate':>7} {'round':>5} {'sent_rps':>10} {'rps':>10} {'err %':>7} {'sat':>4} "
          f"{'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'lat p50':>8} {'lat p99':>8} {'us/req':>7}  (ms)")
    results = {}
    for rate in rates:
        rows = []
        for i in range(rounds):
            s = run_stressx(url, ["--rate", str(rate)], seconds, tmp)
            time.sleep(1)
            if s.get("error") and "rps" not in s:
                print(f"{rate:>7} {i + 1:>5}  {s['error']}")
                continue
            if s.get("error"):
                print(f"{rate:>7} {i + 1:>5}  note: {s['error']}")
            lag, lat = s.get("send_lag_ms") or {}, s.get("latency_ms") or {}
            row = {"sent_rps": s["sent_rps"], "rps": s["rps"],
                   "err_pct": (s["sent_rps"] - rate) / rate * 100, "saturated": bool(s.get("saturated")),
                   "reasons": (s.get("saturation") or {}).get("reasons") or [],
                   "lag_p50": lag.get("p50"), "lag_p99": lag.get("p99"), "lag_max": lag.get("max"),
                   "lat_p50": lat.get("p50"), "lat_p99": lat.get("p99"),
                   "cpu": s.get("client_cpu_us_per_request")}
            rows.append(row)
            print_open_row(rate, str(i + 1), row)
            for reason in row["reasons"]:
                print(f"{'':>14}saturated: {reason}")
        if not rows:
            results[rate] = None
            continue
        med = {k: median([r[k] for r in rows]) for k in OPEN_KEYS}
        med["saturated_rounds"] = sum(r["saturated"] for r in rows)
        med["rounds"] = len(rows)
        med["saturated"] = med["saturated_rounds"] > 0
        print_open_row(rate, "med", med)
        results[rate] = med
    print(f"wrk2 -R10000 on this machine: {WRK2_CPU_US_10K} us CPU/request -- measured earlier, "
          "not in this run (wrk2 is not packaged in Debian)")
    return results


def print_open_row(rate: int, label: str, r: dict) -> None:
    sat = "yes" if r["saturated"] else "no"
    print(f"{rate:>7} {label:>5} {fmt(r['sent_rps'], '.0f')} {fmt(r['rps'], '.0f')} "
          f"{fmt(r['err_pct'], '+.3f', 7)} {sat:>4} {fmt(r['lag_p50'], '.3f', 8)} "
          f"{fmt(r['lag_p99'], '.3f', 8)} {fmt(r['lag_max'], '.3f', 8)} {fmt(r['lat_p50'], '.3f', 8)} "
          f"{fmt(r['lat_p99'], '.3f', 8)} {fmt(r['cpu'], '.2f', 7)}")


# A server in its own process that timestamps, on CLOCK_MONOTONIC, when it wrote each response
# (tests/test_timer_slack.py has the same); SIGTERM prints the list as JSON.
STAMPING_SERVER = r"""
import json, selectors, signal, socket, sys, time
sel = selectors.DefaultSelector()
srv = socket.create_server(("127.0.0.1", 0), backlog=128)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
written, bufs = [], {}
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
def stop(*_):
    print(json.dumps(written), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print(srv.getsockname()[1], flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is srv:
            c, _ = srv.accept()
            c.setblocking(False)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(c, selectors.EVENT_READ)
            bufs[c] = b""
            continue
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s); s.close(); bufs.pop(s, None)
            continue
        bufs[s] += data
        while b"\r\n\r\n" in bufs[s]:
            _, bufs[s] = bufs[s].split(b"\r\n\r\n", 1)
            written.append(time.monotonic_ns())
            s.sendall(RESPONSE)
"""

# One shard's engine in a process of its own (pinned), open model with a slack: prints its start
# instant and its latency percentiles (ms).
KERNEL_TIME_CODE = textwrap.dedent("""\
    import asyncio, json, sys, time, uvloop
    from stressx.engine import _core
    from stressx.engine.shm import ShardMemory, new_run_id
    port, rate, seconds, slack_ns = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    mem = ShardMemory.create(new_run_id(), 0, 1)
    mem.unlink()
    loop = uvloop.new_event_loop()
    req = b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"
    e = _core.Engine(mem.slots, loop, "127.0.0.1", port, rate=rate, duration_ns=int(seconds * 1e9),
                     timeout_ns=2_000_000_000, connections=16, max_connections=64, timer_slack_ns=slack_ns,
                     scenarios=[{"request": req, "weight": 1.0, "expect": [], "band_min_us": -1, "band_max_us": -1}])
    loop.run_until_complete(e.prewarm())
    start = time.monotonic_ns() + 50_000_000
    loop.run_until_complete(e.start(start))
    _core.publish_snapshot(mem.slots, final=True)
    r = mem.read()
    h = r.histogram("latency")
    print(json.dumps({"start": start, "ok": r["ok"],
                      **{f"p{p}": h.value_at_percentile(p) / 1000 for p in (50, 90, 99)}}))
""")


def kernel_time_check(rate: int = 500, seconds: int = 4, slack_ms: float = 1.0) -> dict | None:
    """With a slack a response is read on a later wake-up (here one to two ms after it came);
    its latency must still end at its arrival. Against a server that stamps each response's
    write (CPU 0; the engine on CPU 1), at a rate low enough that every send goes alone (so the
    i-th write answers the i-th send): the engine's latency percentiles minus the same
    percentiles of (write time - intended time). A loopback hop separates the two, a few us."""
    srv = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", STAMPING_SERVER],
                           stdout=subprocess.PIPE, text=True)
    try:
        port = int(srv.stdout.readline())
        code, out, err, _ = run_measured(pinned([sys.executable, "-c", KERNEL_TIME_CODE, str(port),
                                                 str(rate), str(seconds), str(int(slack_ms * 1e6))]),
                                         seconds + SLACK_S)
        srv.send_signal(signal.SIGTERM)
        written = json.loads(srv.communicate(timeout=10)[0])
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    if code != 0:
        print(f"  kernel-time check failed: {err.strip()[-300:]}")
        return None
    mine = json.loads(out)
    n = int(rate * seconds)
    truth = sorted((w - (mine["start"] + round(i * 1e9 / rate))) / 1e6
                   for i, w in enumerate(sorted(written)[:n]))
    diffs = {}
    for p in (50, 90, 99):
        # the same rank HdrHistogram's value_at_percentile takes: the ceil(p% of n)-th value
        t = truth[max(0, min(len(truth), math.ceil(len(truth) * p / 100)) - 1)]
        diffs[p] = (mine[f"p{p}"] - t) * 1000
    print(f"\nKernel receive time, --timer-slack {slack_ms:g}ms at {rate}/s ({mine['ok']} responses, "
          f"each read 1-2 ms after it came): engine latency minus the server's write time minus "
          f"intended, us: " + ", ".join(f"p{p} {d:+.1f}" for p, d in diffs.items()))
    return diffs


# -- 5. pacing against wrk2 ------------------------------------------------------------------

WRK2_PCT = re.compile(r"^\s*(50|90|99)\.000%\s+([\d.]+)(us|ms|s|m)\b", re.M)
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def find_wrk2() -> str | None:
    """wrk2 from $WRK2, else on PATH (as wrk2); None when neither has it."""
    env = os.environ.get("WRK2")
    if env:
        return env if os.access(env, os.X_OK) else None
    return shutil.which("wrk2")


def run_wrk2(url: str, rate: int, seconds: int) -> dict:
    """wrk2 -t1 -c50 -R<rate> --latency -U: requests, CPU (RUSAGE_CHILDREN), and its corrected
    and uncorrected latency percentiles (ms)."""
    cmd = pinned([find_wrk2(), "-t1", f"-c{PACING_CONNECTIONS}", f"-d{seconds}s", f"-R{rate}",
                  "--latency", "-U", url])
    code, out, err, cpu_s = run_measured(cmd, seconds + SLACK_S)
    m = WRK_REQUESTS.search(out)
    if code != 0 or not m:
        return {"error": f"wrk2 exit {code}: {(err or out).strip()[-300:]}"}
    requests = int(m.group(1))
    corrected, _, uncorrected = out.partition("Uncorrected Latency")
    def pcts(text):
        return {f"p{p}": float(v) * UNIT_MS[u] for p, v, u in WRK2_PCT.findall(text)}
    c, u = pcts(corrected), pcts(uncorrected)
    return {"requests": requests, "rps": requests / seconds, "cpu_us_per_req": cpu_s * 1e6 / requests,
            "lat_p50": c.get("p50"), "lat_p99": c.get("p99"), "unc_p50": u.get("p50"),
            "unc_p99": u.get("p99")}


def pacing_args(rate: int, slack: str | None, cap: bool = True) -> list[str]:
    """stressx's side of the pacing rows: 50 connections like wrk2's (capped there, as wrk2's
    are; the curve lets the pool grow, as a slack keeps each connection busy up to a slack
    longer: at 50k/s, 50 would not do)."""
    args = ["--rate", str(rate), "--connections", str(PACING_CONNECTIONS)]
    if cap:
        args += ["--max-connections", str(PACING_CONNECTIONS)]
    return args + (["--timer-slack", slack] if slack is not None else [])


def pacing_row(s: dict) -> dict:
    lag, lat, unc = s.get("send_lag_ms") or {}, s.get("latency_ms") or {}, s.get("latency_uncorrected_ms") or {}
    return {"rps": s.get("rps"), "cpu": s.get("client_cpu_us_per_request"),
            "lag_p50": lag.get("p50"), "lag_p99": lag.get("p99"), "lat_p50": lat.get("p50"),
            "lat_p99": lat.get("p99"), "unc_p50": unc.get("p50"), "unc_p99": unc.get("p99"),
            "saturated": bool(s.get("saturated")), "error": s.get("error")}


def wake_floor() -> str:
    """bench_timer.py's figures for 100 us and 1 ms periods: CPU per wake-up and its lag."""
    code, out, err, _ = run_measured([sys.executable, str(REPO / "benchmarks" / "bench_timer.py"),
                                      "--wakes", "5000", "--periods", "100,1000"], 120)
    return out.strip() if code == 0 else f"bench_timer failed: {err.strip()[-200:]}"


def bench_pacing(url: str, rounds: int, seconds: int, slacks: list[str], curve_rates: list[int],
                 tmp: Path) -> dict | None:
    print(f"\n== 5. Pacing: wrk2 -R{PACING_RATE} -c{PACING_CONNECTIONS} against stressx --rate "
          f"{PACING_RATE}, {PACING_CONNECTIONS} connections, one shard, {seconds} s, clients on CPU {CLIENT_CPU} ==")
    if find_wrk2() is None:
        print("wrk2 not found (neither $WRK2 nor wrk2 on PATH): build it from "
              "https://github.com/giltene/wrk2 (benchmarks/README.md says how) and rerun with "
              "WRK2=/path/to/wrk2; the stressx rows follow without it")
    print("CPU/req: wrk2 = its process (RUSAGE_CHILDREN); stressx = the shard's own "
          "(client_cpu_us_per_request). ms. wrk2 lag: not reported by wrk2 (see gap)")
    print(f"{'round':>5} {'client':>14} {'rps':>8} {'us/req':>7} {'lag p50':>8} {'lag p99':>8} "
          f"{'lat p50':>8} {'lat p99':>8} {'unc p50':>8} {'unc p99':>8} {'gap p50':>8}")
    clients = [("wrk2", None), ("stressx", None), ("stressx 1ms", "1ms")]   # None: the default
    rows: dict[str, list] = {name: [] for name, _ in clients}
    for i in range(rounds):
        order = clients if i % 2 == 0 else clients[::-1]
        for name, slack in order:
            if name == "wrk2":
                if find_wrk2() is None:
                    continue
                w = run_wrk2(url, PACING_RATE, seconds)
                row = {"error": w.get("error"), "rps": w.get("rps"), "cpu": w.get("cpu_us_per_req"),
                       "lag_p50": None, "lag_p99": None, "lat_p50": w.get("lat_p50"),
                       "lat_p99": w.get("lat_p99"), "unc_p50": w.get("unc_p50"),
                       "unc_p99": w.get("unc_p99"), "saturated": False}
            else:
                row = pacing_row(run_stressx(url, pacing_args(PACING_RATE, slack), seconds, tmp))
            time.sleep(1)
            rows[name].append(row)
            print_pacing_row(str(i + 1), name, row)
    med = {}
    for name, rs in rows.items():
        if rs:
            med[name] = {k: median([r[k] for r in rs if not isinstance(r[k], (bool, str))])
                         for k in rs[0] if k not in ("saturated", "error")}
            print_pacing_row("med", name, med[name])

    print(f"\nCurve: --timer-slack -> (CPU us/request, send lag p99 ms), one round each, {seconds} s")
    print(f"{'rate':>7} {'slack':>7} {'us/req':>7} {'lag p50':>8} {'lag p99':>8} {'lat p50':>8} {'unc p50':>8} {'sat':>4}")
    curve = {}
    for rate in curve_rates:
        for slack in slacks:
            r = pacing_row(run_stressx(url, pacing_args(rate, slack, cap=False), seconds, tmp))
            time.sleep(1)
            curve[(rate, slack)] = r
            print(f"{rate:>7} {slack:>7} {fmt(r['cpu'], '.2f', 7)} {fmt(r['lag_p50'], '.3f', 8)} "
                  f"{fmt(r['lag_p99'], '.3f', 8)} {fmt(r['lat_p50'], '.3f', 8)} "
                  f"{fmt(r['unc_p50'], '.3f', 8)} {'yes' if r['saturated'] else 'no':>4}"
                  + (f"  {r['error']}" if r.get("error") else ""))
    kernel = kernel_time_check()
    print("\nThe machine's wake-up floor (bench_timer.py, pinned to CPU 1):")
    print(textwrap.indent(wake_floor(), "  "))
    return {"med": med, "curve": curve, "kernel": kernel}


def print_pacing_row(label: str, name: str, r: dict) -> None:
    gap = (r["lat_p50"] - r["unc_p50"]) if r.get("lat_p50") is not None and r.get("unc_p50") is not None else None
    print(f"{label:>5} {name:>14} {fmt(r.get('rps'), '.0f', 8)} {fmt(r.get('cpu'), '.2f', 7)} "
          f"{fmt(r.get('lag_p50'), '.3f', 8)} {fmt(r.get('lag_p99'), '.3f', 8)} "
          f"{fmt(r.get('lat_p50'), '.3f', 8)} {fmt(r.get('lat_p99'), '.3f', 8)} "
          f"{fmt(r.get('unc_p50'), '.3f', 8)} {fmt(r.get('unc_p99'), '.3f', 8)} {fmt(gap, '.3f', 8)}"
          + (f"  {r['error']}" if r.get("error") else ""))


# -- 3. recorder microbenchmark -----------------------------------------------------------

MICRO_CODE = textwrap.dedent("""\
    import json, time
    import numpy as np
    from stressx.engine import _core
    from hdrh.histogram import HdrHistogram
    r = _core.Recorder(np.zeros(_core.HDR_PARAMS['slots'], dtype=np.int64))
    r.bench_record_calls(1_000_000, 100)                       # warm-up
    core_ns = r.bench_record_calls(20_000_000, 100)
    h = HdrHistogram(1, 3_600_000_000, 3)
    values = [100 + (i & 1023) for i in range(1_000_000)]      # as bench_record_calls does
    record = h.record_value
    for v in values[:100_000]:
        record(v)                                              # warm-up
    t0 = time.perf_counter_ns()
    for v in values:
        record(v)
    hdrh_ns = (time.perf_counter_ns() - t0) / len(values)
    print(json.dumps({"core_ns": core_ns, "hdrh_ns": hdrh_ns}))
""")


def bench_micro(rounds: int) -> dict:
    print(f"\n== 3. Recorder microbenchmark (pinned to CPU {CLIENT_CPU}) ==")
    print(f"{'round':>5} {'_core.Recorder ns/record':>25} {'hdrh record_value ns/call':>26} {'speed-up':>9}")
    rows = []
    for i in range(rounds):
        code, out, err, _ = run_measured(pinned([sys.executable, "-c", MICRO_CODE]), 300)
        if code != 0:
            print(f"{i + 1:>5}  failed (exit {code}): {err.strip()[-300:]}")
            continue
        row = json.loads(out)
        rows.append(row)
        print(f"{i + 1:>5} {row['core_ns']:>25.2f} {row['hdrh_ns']:>26.1f} {row['hdrh_ns'] / row['core_ns']:>8.0f}x")
    if not rows:
        return {"core_ns": None, "hdrh_ns": None}
    med = {k: median([r[k] for r in rows]) for k in ("core_ns", "hdrh_ns")}
    print(f"{'med':>5} {med['core_ns']:>25.2f} {med['hdrh_ns']:>26.1f} {med['hdrh_ns'] / med['core_ns']:>8.0f}x")
    print("(_core: 20M calls through the cdef method the engine uses; hdrh: 1M calls of the pure-Python "
          "package, loop overhead included)")
    return med


# -- summary ------------------------------------------------------------------------------

def verdict(ok) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def print_summary(closed, open_, micro, https=None, pacing=None) -> None:
    print("\n== Summary (medians over rounds; benchmarks report, they do not gate) ==")
    lines = []
    if closed is not None:
        r, c, t = closed["rps_ratio"], closed["cpu_ratio"], closed["tree_ratio"]
        lines.append((r >= BAR_RPS_RATIO if r is not None else None,
                      f"closed: stressx rps / wrk rps = {fmt(r, '.3f', 0)}  (bar >= {BAR_RPS_RATIO})"))
        lines.append((c <= BAR_CPU_RATIO if c is not None else None,
                      f"closed: stressx shard cpu/req / wrk cpu/req = {fmt(c, '.3f', 0)}  (bar <= {BAR_CPU_RATIO})"))
        lines.append(("info", f"closed: stressx whole-tree cpu/req / wrk cpu/req = {fmt(t, '.3f', 0)}  "
                              "(informational: includes coordinator and Python start-up)"))
    if open_ is not None:
        for rate, m in open_.items():
            if m is None:
                lines.append((None, f"open {rate}/s: no successful run"))
                continue
            within = abs(m["err_pct"]) <= BAR_RATE_ERROR_PCT
            note = f"{m['saturated_rounds']}/{m['rounds']} rounds flagged saturated" if m["saturated"] else "not saturated"
            lines.append((within or m["saturated"],
                          f"open {rate}/s: sent_rps error {m['err_pct']:+.3f}% ({note})  "
                          f"(bar: within {BAR_RATE_ERROR_PCT}% or flagged saturated)"))
        m = open_.get(10000)
        if m is not None:
            lines.append((m["lag_p99"] < BAR_LAG_P99_MS_10K if m["lag_p99"] is not None else None,
                          f"open 10000/s: send lag p99 = {fmt(m['lag_p99'], '.3f', 0)} ms  (bar < {BAR_LAG_P99_MS_10K} ms)"))
            lines.append((m["cpu"] < WRK2_CPU_US_10K if m["cpu"] is not None else None,
                          f"open 10000/s: cpu/req = {fmt(m['cpu'], '.2f', 0)} us  (bar < wrk2's {WRK2_CPU_US_10K} us, "
                          "measured earlier on this machine, not in this run)"))
        elif open_:
            lines.append((None, "open 10000/s: not in --rates; lag and CPU bars not checked"))
    if micro is not None:
        c = micro["core_ns"]
        lines.append((c < BAR_RECORD_NS if c is not None else None,
                      f"recorder: {fmt(c, '.2f', 0)} ns/record  (bar < {BAR_RECORD_NS:g} ns; "
                      f"pure-Python hdrh: {fmt(micro['hdrh_ns'], '.1f', 0)} ns/call)"))
    if https is not None:
        r, c = https["rps_ratio"], https["cpu_ratio"]
        vr, vc = https["vfy_rps_ratio"], https["vfy_cpu_ratio"]
        lines.append((r >= BAR_RPS_RATIO if r is not None else None,
                      f"https: stressx --insecure rps / wrk rps = {fmt(r, '.3f', 0)}  (bar >= {BAR_RPS_RATIO})"))
        lines.append((c <= BAR_CPU_RATIO if c is not None else None,
                      f"https: stressx --insecure shard cpu/req / wrk cpu/req = {fmt(c, '.3f', 0)}  "
                      f"(bar <= {BAR_CPU_RATIO})"))
        lines.append((vr >= 1 - BAR_VERIFY_RATIO if vr is not None else None,
                      f"https: verified rps / --insecure rps = {fmt(vr, '.3f', 0)}  "
                      f"(bar >= {1 - BAR_VERIFY_RATIO:.2f})"))
        lines.append((vc <= 1 + BAR_VERIFY_RATIO if vc is not None else None,
                      f"https: verified cpu/req / --insecure cpu/req = {fmt(vc, '.3f', 0)}  "
                      f"(bar <= {1 + BAR_VERIFY_RATIO:.2f})"))
    if pacing is not None:
        med = pacing["med"]
        w, d, k = med.get("wrk2"), med.get("stressx"), med.get("stressx 1ms")
        wcpu = w["cpu"] if w else None
        for name, m, cpu_bar, lag_bar, lag_op in (
                ("default", d, BAR_PACING_DEFAULT_CPU_RATIO, BAR_PACING_DEFAULT_LAG_MS, "<"),
                ("--timer-slack 1ms", k, BAR_PACING_SLACK_CPU_RATIO, BAR_PACING_SLACK_LAG_MS, "<=")):
            if m is None:
                continue
            r = ratio(m["cpu"], wcpu)
            lines.append((r <= cpu_bar if r is not None else None,
                          f"pacing {name}: stressx cpu/req / wrk2 cpu/req = {fmt(r, '.3f', 0)} "
                          f"({fmt(m['cpu'], '.2f', 0)} vs {fmt(wcpu, '.2f', 0)} us)  (bar <= {cpu_bar})"))
            lag = m["lag_p99"]
            ok = None if lag is None else (lag < lag_bar if lag_op == "<" else lag <= lag_bar)
            lines.append((ok, f"pacing {name}: send lag p99 = {fmt(lag, '.3f', 0)} ms  (bar {lag_op} {lag_bar} ms)"))
        kernel = pacing.get("kernel")
        if kernel:
            worst = max(abs(v) for v in kernel.values())
            lines.append((worst <= BAR_PACING_KERNEL_US,
                          f"pacing --timer-slack 1ms: latency vs the server's write time, worst of "
                          f"p50/p90/p99 = {worst:.1f} us  (bar <= {BAR_PACING_KERNEL_US:g} us: "
                          f"responses read late are timed at their arrival)"))
    for ok, text in lines:
        print(f"  {'info' if ok == 'info' else verdict(ok)}  {text}")


# -- main ---------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default 3)")
    p.add_argument("--seconds", type=int, default=10, help="length of each run in s (default 10)")
    p.add_argument("--rates", default="10000,50000,100000",
                   help="open-model rates, comma separated (default 10000,50000,100000)")
    p.add_argument("--skip-open", action="store_true", help="skip the open-model runs")
    p.add_argument("--skip-closed", action="store_true", help="skip the closed-model runs")
    p.add_argument("--skip-https", action="store_true", help="skip the HTTPS closed-model runs")
    p.add_argument("--only-https", action="store_true", help="only the HTTPS closed-model runs")
    p.add_argument("--only-micro", action="store_true", help="only the recorder microbenchmark")
    p.add_argument("--skip-pacing", action="store_true", help="skip the pacing runs against wrk2")
    p.add_argument("--only-pacing", action="store_true", help="only the pacing runs against wrk2")
    p.add_argument("--slacks", default="0,50us,100us,200us,500us,1ms,2ms",
                   help="--timer-slack values of the pacing curve (default 0,50us,100us,200us,500us,1ms,2ms)")
    p.add_argument("--curve-rates", default="10000,50000",
                   help="rates of the pacing curve, comma separated (default 10000,50000)")
    a = p.parse_args(argv)      # exits 2 on unknown flags or bad values
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    if not 1 <= a.seconds <= 3600:
        p.error("--seconds must be between 1 and 3600")
    try:
        a.rates = [int(x) for x in a.rates.split(",") if x.strip()]
    except ValueError:
        p.error(f"--rates: comma-separated integers expected, got {a.rates!r}")
    if not a.rates or any(r <= 0 for r in a.rates):
        p.error("--rates: positive integers expected")
    try:
        a.curve_rates = [int(x) for x in a.curve_rates.split(",") if x.strip()]
    except ValueError:
        p.error(f"--curve-rates: comma-separated integers expected, got {a.curve_rates!r}")
    if not a.curve_rates or any(r <= 0 for r in a.curve_rates):
        p.error("--curve-rates: positive integers expected")
    a.slacks = [x.strip() for x in a.slacks.split(",") if x.strip()]
    if not a.slacks or any(not re.fullmatch(r"\d+(\.\d+)?(us|ms|s)?", x) for x in a.slacks):
        p.error("--slacks: comma-separated durations expected (0, 50us, 1ms)")
    if a.only_https and a.only_pacing:
        p.error("--only-https and --only-pacing: choose one")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if os.cpu_count() is None or os.cpu_count() < 2:
        log("warning: fewer than 2 CPUs; the CPU 0 / CPU 1 split cannot hold")
    ensure_stressx()
    only = a.only_micro or a.only_https or a.only_pacing
    run_closed = not (a.skip_closed or only)
    run_open = not (a.skip_open or only)
    run_https = not (a.skip_https or a.only_micro or a.only_pacing)
    run_pacing = not (a.skip_pacing or a.only_micro or a.only_https)
    closed = open_ = https = micro = pacing = None
    print(f"stressx vs wrk on {HOST}: {a.rounds} round(s), {a.seconds} s per run, "
          f"clients on CPU {CLIENT_CPU}, nginx on CPU 0; stressx via {' '.join(stressx_cmd())}")
    if run_closed or run_open or run_https or run_pacing:
        ensure_tools()
        tmp = Path(tempfile.mkdtemp(prefix="stressx-bench-"))
        nginx = Nginx(tmp)
        try:
            nginx.start()
            if run_closed:
                closed = bench_closed(nginx.url, a.rounds, a.seconds, tmp)
            if run_open:
                open_ = bench_open(nginx.url, a.rounds, a.seconds, a.rates, tmp)
            if run_https:
                https = bench_https(nginx, a.rounds, a.seconds, tmp)
            if run_pacing:
                pacing = bench_pacing(nginx.url, a.rounds, a.seconds, a.slacks, a.curve_rates, tmp)
        except Exception as exc:   # report what we have; benchmarks do not gate
            print(f"bench_http: error: {exc!r}")
        finally:
            nginx.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    if not (a.only_https or a.only_pacing):
        micro = bench_micro(a.rounds)
    print_summary(closed, open_, micro, https, pacing)
    return 0


if __name__ == "__main__":
    # SIGTERM unwinds like an exception, so nginx is stopped and the temp dir removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
