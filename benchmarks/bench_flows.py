#!/usr/bin/env python3
"""Python scenarios (stressx.flows) against the static-request path and Locust, same target.

    python benchmarks/bench_flows.py                       # 3 rounds, 10 s runs
    python benchmarks/bench_flows.py --rounds 1 --seconds 3

What it measures, each round, against one nginx (1 worker, CPU 0; bench_http.py's) with every
client pinned to CPU 1, closed model, 50 users/connections, one shard/process:
  1. static: `stressx run URL --connections 50 --workers 1` (one request built once per run);
  2. flow:   the same with `--workload flow.py`, a one-request Python scenario
             (`await user.get("/")`) run by 50 virtual users;
  3. locust: a FastHttpUser with the same one request, no wait time, `locust --headless -u 50
             -r 50`, one process (installed into a venv beside the temp dir if `locust` is not
             importable: pip install locust).
Requests/s and client CPU per request of each. stressx's CPU/request is the shard's own over
the run window (summary client_cpu_us_per_request); Locust's is its process's CPU
(RUSAGE_CHILDREN) over the requests it counted, start-up included (~1 s of imports and
gevent set-up: a run of 10 s overstates it by that share), and also 1e6 / (its rps) since it
runs one core flat out.

Bars (the issue's): flow rps >= 0.5x static rps, and >= 5x Locust's rps. Benchmarks report;
they do not gate: the exit status is 0 whatever the bars say (2 for bad flags).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_http as bh   # noqa: E402  (the nginx, pinning and measuring helpers)

USERS = 50
BAR_VS_STATIC = 0.5
BAR_VS_LOCUST = 5.0

FLOW = '''\
import stressx

@stressx.scenario
async def one(user):
    await user.get("/")
'''

LOCUSTFILE = '''\
from locust import FastHttpUser, constant, task

class One(FastHttpUser):
    wait_time = constant(0)

    @task
    def one(self):
        self.client.get("/")
'''


def locust_exe(tmp: Path) -> str:
    found = shutil.which("locust")
    if found:
        return found
    venv = Path(os.environ.get("STRESSX_LOCUST_VENV", tmp.parent / "stressx-bench-locust-venv"))
    exe = venv / "bin" / "locust"
    if not exe.exists():
        bh.log(f"installing locust into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "locust"], check=True, timeout=900)
    return str(exe)


def run_locust(exe: str, url: str, seconds: int, tmp: Path) -> dict:
    d = Path(tempfile.mkdtemp(prefix="locust-", dir=tmp))
    (d / "locustfile.py").write_text(LOCUSTFILE)
    cmd = bh.pinned([exe, "-f", str(d / "locustfile.py"), "--headless", "-u", str(USERS), "-r",
                     str(USERS), "-t", f"{seconds}s", "--host", url.rstrip("/"), "--only-summary",
                     "--csv", str(d / "out"), "--loglevel", "WARNING"])
    code, out, err, cpu_s = bh.run_measured(cmd, seconds + bh.SLACK_S)
    try:
        rows = list(csv.DictReader((d / "out_stats.csv").read_text().splitlines()))
        agg = next(r for r in rows if r["Name"] == "Aggregated")
    except (OSError, StopIteration):
        return {"error": f"locust exit {code}: {(err or out).strip()[-300:]}"}
    finally:
        shutil.rmtree(d, ignore_errors=True)
    n = int(agg["Request Count"])
    rps = float(agg["Requests/s"])
    return {"rps": rps, "requests": n, "failures": int(agg["Failure Count"]),
            "cpu_us_per_req": cpu_s * 1e6 / n if n else None,
            "cpu_flat_us": 1e6 / rps if rps else None}


def run_sx(url: str, args: list[str], seconds: int, tmp: Path) -> dict:
    s = bh.run_stressx(url, ["--connections", str(USERS), *args], seconds, tmp)
    if s.get("error"):
        return {"error": s["error"]}
    return {"rps": s["rps"], "requests": s["requests"], "errors": s["error_count"],
            "cpu_us_per_req": s["client_cpu_us_per_request"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--skip-locust", action="store_true")
    a = p.parse_args(argv)
    if a.rounds < 1 or not 1 <= a.seconds <= 600:
        p.error("--rounds >= 1 and --seconds 1..600")
    bh.ensure_stressx()
    bh.ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="stressx-bench-flows-"))
    flow = tmp / "flow.py"
    flow.write_text(FLOW)
    nginx = bh.Nginx(tmp)
    rows = []
    try:
        exe = None if a.skip_locust else locust_exe(tmp)
        nginx.start()
        print(f"closed model, {USERS} users/connections, {a.seconds} s runs, clients on CPU "
              f"{bh.CLIENT_CPU}, nginx on CPU 0")
        print(f"{'round':>5} {'static rps':>11} {'flow rps':>10} {'locust rps':>10} "
              f"{'static us':>9} {'flow us':>8} {'locust us':>9} {'flow/static':>11} {'flow/locust':>11}")
        for i in range(a.rounds):
            r = {"static": run_sx(nginx.url, [], a.seconds, tmp)}
            time.sleep(1)
            r["flow"] = run_sx(nginx.url, ["--workload", str(flow)], a.seconds, tmp)
            time.sleep(1)
            r["locust"] = run_locust(exe, nginx.url, a.seconds, tmp) if exe else {}
            time.sleep(1)
            for who, x in r.items():
                if x.get("error"):
                    print(f"  round {i + 1}: {who}: {x['error']}")
            row = {f"{k}_rps": r[k].get("rps") for k in r}
            row.update({f"{k}_cpu": r[k].get("cpu_us_per_req") for k in r})
            row["locust_flat"] = r["locust"].get("cpu_flat_us")
            row["vs_static"] = bh.ratio(row["flow_rps"], row["static_rps"])
            row["vs_locust"] = bh.ratio(row["flow_rps"], row["locust_rps"])
            rows.append(row)
            _print_row(str(i + 1), row)
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: bh.median([r[k] for r in rows]) for k in rows[0]} if rows else {}
    if med:
        _print_row("med", med)
        ok1 = med["vs_static"] is not None and med["vs_static"] >= BAR_VS_STATIC
        ok2 = med["vs_locust"] is not None and med["vs_locust"] >= BAR_VS_LOCUST
        print(f"\nflow rps / static rps = {bh.fmt(med['vs_static'], '.3f', 0)} "
              f"(bar >= {BAR_VS_STATIC}: {bh.verdict(ok1)})")
        print(f"flow rps / locust rps = {bh.fmt(med['vs_locust'], '.2f', 0)} "
              f"(bar >= {BAR_VS_LOCUST}: {bh.verdict(ok2)})")
        print(f"CPU us/request: static {bh.fmt(med['static_cpu'], '.2f', 0)}, flow "
              f"{bh.fmt(med['flow_cpu'], '.2f', 0)}, locust {bh.fmt(med['locust_cpu'], '.2f', 0)} "
              f"(process incl. start-up; {bh.fmt(med['locust_flat'], '.2f', 0)} as 1e6/rps)")
    return 0


def _print_row(label, r):
    print(f"{label:>5} {bh.fmt(r['static_rps'], '.0f', 11)} {bh.fmt(r['flow_rps'], '.0f')} "
          f"{bh.fmt(r['locust_rps'], '.0f')} {bh.fmt(r['static_cpu'], '.2f', 9)} "
          f"{bh.fmt(r['flow_cpu'], '.2f', 8)} {bh.fmt(r['locust_cpu'], '.2f', 9)} "
          f"{bh.fmt(r['vs_static'], '.3f', 11)} {bh.fmt(r['vs_locust'], '.2f', 11)}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
