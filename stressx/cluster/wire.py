"""What an agent sends the driver each second, and how the driver merges it.

One message per interval row of the host's coordinator: the row's counters (the host's shards
already added up) and its three histograms (latency, all requests, send lag) in HdrHistogram's
standard compressed encoding, a few hundred bytes to a few KB where the raw buckets are 190 KB
each. The driver cuts merged row k once every host has sent its row k (or has finished, or sent
a later one: it missed k), adds the counters and the histograms bucket by bucket and derives the
figures exactly as one coordinator derives them from its shards (`finish_row`). So the merged
rows add up to the hosts' rows, and a window's percentiles are those of the merged buckets.
"""
from __future__ import annotations

import math
import time

from ..engine.coordinator import add_counts, finish_row
from ..results.hdr import Histogram

HISTOGRAM_KEYS = {"latency": "latency_histogram", "all_latency": "all_latency_histogram",
                  "send_lag": "send_lag_histogram"}
_DERIVED = ("rps", "sent_rps", "saturated", "saturation")


def interval_index(t_s: float) -> int:
    """The row's boundary k: rows end at the common start + k s, the last one a little after
    the last whole second it reached (it counts as k + 1). The same on every host: they share
    the start instant."""
    return max(1, math.ceil(t_s - 1e-6))


def encode_interval(t_s: float, row: dict) -> dict:
    """An agent's message for one interval row a coordinator companion received."""
    counts = {k: v for k, v in row.items()
              if k not in HISTOGRAM_KEYS.values() and not k.startswith(
                  ("latency_ms", "all_latency_ms", "send_lag_ms")) and k not in _DERIVED}
    k = row.get("interval_index") or interval_index(t_s)
    counts.pop("interval_index", None)
    return {"k": k, "t_s": t_s, "counts": counts,
            "histograms": {name: row[key].encode() for name, key in HISTOGRAM_KEYS.items()
                           if key in row}}


def merge_intervals(messages: list[dict], from_t_s: float, rate_target,
                    slack_ms: float = 0.0) -> tuple[dict, dict, float]:
    """Merged row (as intervals.arrows holds it) and histograms of one boundary's messages
    (one per host that sent row k); returns (row, histograms, seconds the merge took). The
    client's CPU columns are the busiest shard's and whether any was busy, as on one host."""
    t0 = time.perf_counter()
    t_s = max(m["t_s"] for m in messages)
    span = max(t_s - from_t_s, 1e-9)
    counts = None
    hists = {name: Histogram.empty() for name in HISTOGRAM_KEYS}
    for m in messages:
        counts = dict(m["counts"]) if counts is None else add_counts(counts, m["counts"])
        for name, text in m["histograms"].items():
            hists[name] += Histogram.decode(text)
    counts.update(t_s=round(t_s, 6), interval_s=round(span, 6), rate_target=rate_target)
    row = finish_row(counts, hists, span, slack_ms)
    cpu = [m["counts"].get("cpu_pct") for m in messages if m["counts"].get("cpu_pct") is not None]
    row["cpu_pct"] = max(cpu) if cpu else None
    row["cpu_busy"] = any(m["counts"].get("cpu_busy") for m in messages)
    return row, hists, time.perf_counter() - t0


class IntervalMerger:
    """The driver's side: messages in per host (in the order each host sent them), merged rows
    out as soon as every host has reported the boundary."""

    def __init__(self, hosts: list[str]):
        self.pending = {h: {} for h in hosts}       # host -> k -> message
        self.finished: set[str] = set()             # done or lost: nothing more comes
        self.received = {h: 0 for h in hosts}       # messages in, per host
        self.last_t_s = {h: 0.0 for h in hosts}     # the last interval a host reported
        self.cut_t_s = 0.0
        self.merge_s: list[float] = []

    def add(self, host: str, messages: list[dict]) -> None:
        for m in messages:
            self.pending[host][m["k"]] = m
            self.received[host] += 1
            self.last_t_s[host] = m["t_s"]

    def finish(self, host: str) -> None:
        self.finished.add(host)

    def ready(self) -> int | None:
        """The next boundary to cut: every host has sent it, a later one, or nothing more."""
        ks = [k for p in self.pending.values() for k in p]
        if not ks:
            return None
        k = min(ks)
        for host, p in self.pending.items():
            if host not in self.finished and not any(j >= k for j in p):
                return None
        return k

    def cut(self, k: int) -> list[dict]:
        """The messages of boundary k (one per host that has it), taken out."""
        return [p.pop(k) for p in self.pending.values() if k in p]
