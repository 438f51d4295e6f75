"""What a shard process is told to do: one typed, versioned message, written and read here only.

The coordinator builds a ShardJob per shard and writes `job.dumps()` to the shard's stdin; the
shard reads it back with ShardJob.loads(), which refuses a job of another version (a shard
started from a different stressx than its coordinator) with one clear line instead of a
KeyError halfway through. Light on purpose: the shard imports it before anything else it needs.
"""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, fields

JOB_VERSION = 3


@dataclass(frozen=True)
class ShardScenario:
    """One scenario of the mix, as the engine takes it: the request's exact bytes, its weight,
    the statuses that count as ok (empty: 2xx) and its expected latency band (-1: no bound)."""
    request: bytes
    weight: float
    expect: tuple = ()
    band_min_us: int = -1
    band_max_us: int = -1

    def to_json(self) -> dict:
        return dict(asdict(self), request=base64.b64encode(self.request).decode("ascii"),
                    expect=list(self.expect))

    @classmethod
    def from_json(cls, d: dict) -> "ShardScenario":
        return cls(request=base64.b64decode(d["request"]), weight=d["weight"],
                   expect=tuple(d["expect"]), band_min_us=d["band_min_us"],
                   band_max_us=d["band_max_us"])

    def for_engine(self) -> dict:
        return {"request": self.request, "weight": self.weight, "expect": list(self.expect),
                "band_min_us": self.band_min_us, "band_max_us": self.band_max_us}


@dataclass(frozen=True)
class ShardJob:
    """Shard `index` of `count`: its shared-memory segment, the target (scheme, Host name,
    resolved address, port), the scenarios, TLS settings, the send schedule (the rate shape's
    segments, or the users shape's in the closed model), its share of the request budget (-1:
    none), the run's duration, timeout and drain grace (ns; -1: no duration), its connections
    (opened before the start) and their cap, the descriptors it needs besides them, and the
    coordinator's pid (a shard whose parent is another process stops)."""
    segment: str
    index: int
    count: int
    coordinator_pid: int
    scheme: str
    host: str
    address: str
    port: int
    scenarios: tuple
    insecure: bool
    ca_file: str | None
    segments: list | None
    users_segments: list | None
    budget: int
    duration_ns: int
    timeout_ns: int
    grace_ns: int
    connections: int
    max_connections: int
    fd_margin: int
    timer_slack_ns: int = 0
    flow: str | None = None          # a Python workload file: the shard runs its scenarios
    flow_scenarios: tuple = ()       # ... these, by name, in the order of the scenario blocks
    version: int = JOB_VERSION

    def dumps(self) -> bytes:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scenarios"] = [sc.to_json() for sc in self.scenarios]
        return json.dumps(d).encode()

    @classmethod
    def loads(cls, data: bytes | str) -> "ShardJob":
        d = json.loads(data)
        version = d.get("version") if isinstance(d, dict) else None
        if version != JOB_VERSION:
            raise ValueError(f"shard job version {version!r}: this shard reads version "
                             f"{JOB_VERSION} (the coordinator and the shard are different stressx)")
        known = {f.name for f in fields(cls)}
        if set(d) != known:
            raise ValueError(f"shard job fields differ: missing {sorted(known - set(d))}, "
                             f"unknown {sorted(set(d) - known)}")
        d["scenarios"] = tuple(ShardScenario.from_json(sc) for sc in d["scenarios"])
        d["flow_scenarios"] = tuple(d["flow_scenarios"])
        return cls(**d)
