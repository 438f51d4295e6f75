"""Cluster runs: what the driver's per-second merge costs, and how closely the hosts start.

    python benchmarks/bench_cluster.py                  # both parts (~2 min; part 2 needs Ray)
    python benchmarks/bench_cluster.py --merge-only     # part 1 only, no Ray (~20 s)

1. Merge cost, no Ray: H hosts' interval messages (counters + latency, all-requests latency
   and send-lag histograms in HdrHistogram's compressed encoding, each histogram holding one
   second of `--host-rate` lognormal latencies) merged by the driver's own code
   (`stressx.cluster.wire.merge_intervals`: decode, add bucket by bucket, derive the row), for
   H = 3, 10, 30, 100. Median and max over `--reps` merges; the message size against the raw
   buckets it replaces.
2. Start skew on a local cluster (Ray): `--rounds` runs of `stressx run URL --rate 2000
   --duration 5 --cluster local:3` against the embedded target on 127.0.0.1, each starting its
   own 3-node cluster: the summary's `cluster.start_skew_ms`, `clock_uncertainty_ms`,
   `merge_ms`, the request count, and the wall time (cluster start included).

Run it alone: on a two-core machine other load inflates round trips, so the clock uncertainty
and skew, and the merge times.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stressx.cluster.wire import merge_intervals  # noqa: E402
from stressx.results.hdr import SLOTS, Histogram  # noqa: E402


def host_message(rng, rate: int, k: int = 1) -> dict:
    """One host's message for one second at `rate` req/s: lognormal latencies (median ~0.3
    ms, a tail to tens of ms), send lag mostly below 50 us."""
    lat = np.clip(rng.lognormal(np.log(300), 0.8, rate), 1, None).astype(np.int64)
    lag = np.clip(rng.exponential(20, rate), 0, None).astype(np.int64)
    hists = {"latency": Histogram.from_values(lat), "all_latency": Histogram.from_values(lat),
             "send_lag": Histogram.from_values(lag)}
    counts = {"t_s": float(k), "interval_s": 1.0, "rate_target": float(rate), "sent": rate,
              "completed": rate, "ok": rate, "errors": 0, "late": 0, "dropped": 0,
              "bytes_in": rate * 120, "bytes_out": rate * 60, "due": rate, "late_at_cap": 0,
              "connect_attempts": 0, "conn_open": 16, "inflight": 3, "users": 0, "queued": 0,
              "connect_failures": 0, "status": {200: rate}}
    return {"k": k, "t_s": float(k), "counts": counts,
            "histograms": {n: h.encode() for n, h in hists.items()}}


def merge_part(host_rate: int, reps: int) -> None:
    rng = np.random.default_rng(1)
    raw = 3 * SLOTS * 8
    print(f"1. merge cost per interval ({host_rate} req/s per host, {reps} merges each)")
    print(f"   {'hosts':>5}  {'median ms':>9}  {'max ms':>7}  {'ms/host':>7}  "
          f"{'msg bytes':>9}  {'raw bytes':>9}")
    for hosts in (3, 10, 30, 100):
        messages = [host_message(rng, host_rate) for _ in range(hosts)]
        size = statistics.median(len(json.dumps(m)) for m in messages)
        took = []
        for _ in range(reps):
            row, hists, seconds = merge_intervals(messages, 0.0, float(host_rate * hosts))
            took.append(seconds * 1e3)
        assert row["sent"] == host_rate * hosts and hists["latency"].total == host_rate * hosts
        med = statistics.median(took)
        print(f"   {hosts:>5}  {med:9.2f}  {max(took):7.2f}  {med / hosts:7.3f}  "
              f"{size:9.0f}  {raw:9d}")


def skew_part(rounds: int) -> None:
    from stressx._testing.target import TargetThread
    print(f"\n2. start skew, local:3 ({rounds} runs of --rate 2000 --duration 5)")
    print(f"   {'run':>3}  {'requests':>8}  {'skew ms':>7}  {'clock +- ms':>11}  "
          f"{'merge mean ms':>13}  {'merge max ms':>12}  {'wall s':>6}")
    skews = []
    with TargetThread() as target:
        for i in range(rounds):
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "stressx.cli", "run", target.url, "--rate", "2000",
                 "--duration", "5", "--cluster", "local:3", "--json", "--quiet",
                 "--out", f"/tmp/stressx-bench-cluster-{i}"],
                capture_output=True, text=True, timeout=300)
            wall = time.monotonic() - t0
            if proc.returncode != 0:
                print(proc.stderr)
                raise SystemExit(f"run {i} exited {proc.returncode}")
            s = json.loads(proc.stdout)
            c = s["cluster"]
            skews.append(c["start_skew_ms"])
            print(f"   {i + 1:>3}  {s['requests']:>8}  {c['start_skew_ms']:7.3f}  "
                  f"{c['clock_uncertainty_ms']:11.3f}  {c['merge_ms']['mean']:13.2f}  "
                  f"{c['merge_ms']['max']:12.2f}  {wall:6.1f}")
    print(f"   median start skew {statistics.median(skews):.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merge-only", action="store_true")
    ap.add_argument("--host-rate", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    merge_part(a.host_rate, a.reps)
    if not a.merge_only:
        skew_part(a.rounds)


if __name__ == "__main__":
    main()
