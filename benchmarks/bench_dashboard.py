#!/usr/bin/env python3
"""What the live terminal dashboard costs: the same stressx run with and without it.

The script allocates a pseudo-terminal and runs `stressx run URL --rate R --workers 1` with its
stdout and stderr on it, so stressx sees a terminal and draws the dashboard (5 frames a second,
in the coordinator); then the same run with `--no-dashboard` (one progress line a second) on the
same terminal. Rounds alternate the order. Target: the script's own nginx (bench_http.Nginx),
its worker on CPU 0; the stressx process tree on CPU 1 (`taskset -c 1`), so the coordinator
drawing the dashboard shares its core with the shard: the worst case for the shard. This
script, reading the terminal as a terminal emulator would, runs on CPU 0.

Per run it reads the summary: the shard's CPU per request (`client_cpu_us_per_request`, the
figure the dashboard must not move), sent_rps, send lag p99, and the dashboard's own section
(frames drawn, the coordinator's CPU time drawing them); and the whole process tree's CPU per request
(RUSAGE_CHILDREN: coordinator, shard, Python start-up) for information.

    /work/bin/quiet python benchmarks/bench_dashboard.py              # 3 rounds, 10 s, 10000/s
    python benchmarks/bench_dashboard.py --rounds 1 --seconds 3       # quick check

Bar: the shard's median CPU/request with the dashboard within 5% of without it. Exit 0 whatever
the bar says; 2 for bad flags.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_http as B  # noqa: E402  (the nginx target and the helpers of the HTTP benchmark)

BAR_PCT = 5.0


def run_on_pty(cmd: list[str], timeout: float) -> tuple[int, int, float]:
    """Run cmd with stdout and stderr on a new 160x50 pseudo-terminal, reading (and dropping)
    what it draws; (exit code, bytes drawn, CPU seconds of its process tree)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    before = B.children_cpu_s()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    drawn, deadline = 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            drawn += len(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        B.stop_group(proc)
        code = -1
    finally:
        os.close(master)
    return code, drawn, B.children_cpu_s() - before


def one_run(url: str, rate: int, seconds: int, out: Path, dashboard: bool) -> dict:
    cmd = B.pinned([sys.executable, "-m", "stressx.cli", "run", url, "--rate", str(rate), "--duration", f"{seconds}s",
                    "--workers", "1", "--out", str(out)] + ([] if dashboard else ["--no-dashboard"]))
    code, drawn, tree_cpu_s = run_on_pty(cmd, seconds + B.SLACK_S)
    try:
        s = json.loads((out / "summary.json").read_text())
    except OSError:
        return {"error": f"exit {code}, no summary"}
    dash = s.get("dashboard") or {}
    return {"cpu_us_per_req": s["client_cpu_us_per_request"], "sent_rps": s["sent_rps"],
            "lag_p99": (s.get("send_lag_ms") or {}).get("p99"), "saturated": s["saturated"],
            "tree_us_per_req": tree_cpu_s * 1e6 / max(s["requests"], 1),
            "frames": dash.get("frames"), "draw_ms": dash.get("draw_cpu_ms_mean"),
            "draw_share": (dash["draw_cpu_ms"] / 1e3 / s["duration_s"] * 100) if dash else None, "drawn_kb": drawn / 1024,
            "exit": code}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=10000)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1 or args.rate < 1:
        ap.error("--rounds, --seconds and --rate must be >= 1")
    B.ensure_stressx()
    # this script reads the terminal, as a terminal emulator would: not on the client's core
    os.sched_setaffinity(0, {int(B.CLIENT_CPU) ^ 1})
    results = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        nginx = B.Nginx(Path(tmp))
        nginx.start()
        try:
            for rnd in range(args.rounds):
                order = (True, False) if rnd % 2 == 0 else (False, True)
                for dashboard in order:
                    r = one_run(nginx.url, args.rate, args.seconds,
                                Path(tmp) / f"r{rnd}-{'dash' if dashboard else 'lines'}", dashboard)
                    results[dashboard].append(r)
                    B.log(f"round {rnd + 1} {'dashboard' if dashboard else '--no-dashboard'}: {r}")
        finally:
            nginx.stop()
    print(f"\nstressx run --rate {args.rate} --workers 1, {args.seconds} s, {args.rounds} round(s), "
          f"on a pseudo-terminal (160x50)")
    print(f"{'':<16}{'shard CPU us/req':>18}{'tree CPU us/req':>17}{'sent_rps':>10}{'lag p99 ms':>12}"
          f"{'frames':>8}{'CPU ms/frame':>13}{'% of a core':>12}{'KiB drawn':>11}")
    medians = {}
    for dashboard in (True, False):
        rows = [r for r in results[dashboard] if "error" not in r]
        for key in ("cpu_us_per_req", "tree_us_per_req", "sent_rps", "lag_p99", "frames", "draw_ms", "draw_share", "drawn_kb"):
            medians[(dashboard, key)] = B.median([r[key] for r in rows])
        m = lambda k, spec=".2f", w=10: B.fmt(medians[(dashboard, k)], spec, w)  # noqa: E731
        print(f"{'dashboard' if dashboard else '--no-dashboard':<16}{m('cpu_us_per_req', '.2f', 18)}"
              f"{m('tree_us_per_req', '.2f', 17)}{m('sent_rps', '.0f')}{m('lag_p99', '.3f', 12)}"
              f"{m('frames', '.0f', 8)}{m('draw_ms', '.2f', 13)}{m('draw_share', '.2f', 12)}{m('drawn_kb', '.0f', 11)}")
    on, off = medians[(True, "cpu_us_per_req")], medians[(False, "cpu_us_per_req")]
    if on is not None and off:
        change = 100 * (on - off) / off
        print(f"\nshard CPU/request with the dashboard: {change:+.1f}% "
              f"(bar: within {BAR_PCT:g}%): {'PASS' if abs(change) <= BAR_PCT else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
