"""Run options: parsing, validation and the resolved configuration a run records.

Every bad value raises ConfigError naming the option (as the CLI spells it) and what is
accepted; the CLI turns it into one line and exit code 2, before any request is sent.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from ._version import __version__

DEFAULT_DURATION_S = 10.0
DEFAULT_CONNECTIONS = 10
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_GRACE_S = 1.0
MAX_WORKERS = 256
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)?")


class ConfigError(ValueError):
    """A bad option: `option` names it as the user wrote it (e.g. '--rate')."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


def parse_duration(value, option: str = "--duration") -> float:
    """Seconds from 10, 2.5, '300', '300s', '5m', '1h30m', '500ms'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        pos, seconds, units = 0, 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, None: 1}
        while pos < len(text):
            m = _DURATION_PART.match(text, pos)
            if not m or (m.group(2) is None and m.end() != len(text)):
                raise ConfigError(option, f"expected a duration like 30, 30s, 5m, 1h30m or 500ms, got {str(value)!r}")
            seconds += float(m.group(1)) * units[m.group(2)]
            pos = m.end()
        if not text:
            raise ConfigError(option, "expected a duration like 30, 30s, 5m, 1h30m or 500ms, got ''")
    if not (seconds > 0 and seconds < 366 * 86400):
        raise ConfigError(option, f"must be more than 0 and under a year, got {str(value)!r}")
    return seconds


def parse_rate(value, option: str = "--rate") -> float:
    """Requests per second from 100, '100', '100/s', '600/m', '3600/h'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rate = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|h|sec|min|hour))?\s*", str(value).lower())
        if not m:
            raise ConfigError(option, f"expected requests per second like 100, 100/s or 600/m, got {str(value)!r}")
        per = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}[m.group(2)]
        rate = float(m.group(1)) / per
    if not (rate > 0 and rate <= 10_000_000):
        raise ConfigError(option, f"must be more than 0 and at most 10000000 requests/s, got {str(value)!r}")
    return rate


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = str(text).partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name):
        raise ConfigError("--header", f"expected 'Name: value' with a valid header name, got {text!r}")
    if any(c in value for c in "\r\n\0"):
        raise ConfigError("--header", f"value of {name!r} contains a line break or NUL")
    return name, value


def _positive_int(value, option: str, low: int = 1, high: int = 10_000_000) -> int:
    try:
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(option, f"expected a whole number, got {str(value)!r}") from None
    if not low <= n <= high:
        raise ConfigError(option, f"must be between {low} and {high}, got {n}")
    return n


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


@dataclass
class Target:
    """Where requests go: the URL split once, the address resolved once for all shards."""

    url: str
    scheme: str
    host: str          # as written in the URL (Host header, TLS server name)
    address: str       # resolved IP the shards connect to
    port: int
    path: str          # path and query, as sent on the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    option = "URL"
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError as exc:
        raise ConfigError(option, f"{exc} in {url!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(option, f"expected an http:// or https:// URL, got {url!r}")
    if not parts.hostname:
        raise ConfigError(option, f"no host in {url!r}")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
        address = host
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConfigError(option, f"cannot resolve host {host!r}: {exc.strerror}") from None
        address = infos[0][4][0]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(str(url), parts.scheme, host, address, port, path)


@dataclass
class RunConfig:
    """Everything a run needs, validated. Sizes are totals; the coordinator splits them."""

    url: str
    rate: float | None = None            # open model when set
    connections: int | None = None       # closed model count; initial pool in the open model
    max_connections: int | None = None   # open model cap (total over shards)
    duration: float | None = None        # seconds
    requests: int | None = None          # total request budget
    workers: int | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    grace: float = DEFAULT_GRACE_S       # drain grace after an interrupt
    method: str = "GET"
    headers: list = field(default_factory=list)
    body: bytes = b""
    insecure: bool = False
    ca_file: str | None = None
    progress: bool = True
    target: Target | None = field(default=None, repr=False)
    shape: object = None                 # shapes.Shape of the rate: set means open model
    users_shape: object = None           # shapes.Shape of active connections (closed model)
    scenarios: list = field(default_factory=list)   # workload.Scenario mix (one: the URL)
    workload: str | None = None          # where the mix came from

    @property
    def open_model(self) -> bool:
        return self.shape is not None

    @property
    def model(self) -> str:
        return "open" if self.open_model else "closed"

    def planned_seconds(self) -> float | None:
        """How long sending is planned to last, when known in advance."""
        limits = [d for d in (self.duration, self.shape.duration if self.shape else None,
                              self.users_shape.duration if self.users_shape else None)
                  if d is not None and d != float("inf")]
        return min(limits) if limits else None

    def target_rate(self, t0: float, t1: float) -> float | None:
        """Mean target rate between two instants (seconds after the start); None if closed."""
        return self.shape.mean_rate(t0, t1) if self.shape else None

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("target")
        d["scenarios"] = [sc.to_json() for sc in self.scenarios]
        for key in ("shape", "users_shape"):
            shape = getattr(self, key)
            d[key] = None if shape is None else {"name": shape.name, "params": shape.params,
                                                 "segments": shape.for_schedule()}
        d["body_bytes"] = len(d.pop("body"))
        d["model"] = self.model
        d["headers"] = [f"{k}: {v}" for k, v in self.headers]
        return d


def resolve(url, *, rate=None, connections=None, max_connections=None, duration=None,
            requests=None, workers=None, timeout=DEFAULT_TIMEOUT_S, grace=DEFAULT_GRACE_S,
            method="GET", headers=(), body=b"", insecure=False, ca_file=None,
            progress=True, shape=None, users=None, workload=None, scenarios=None) -> RunConfig:
    """Validate options and fill in defaults; raises ConfigError on the first bad one.
    `shape` (a shapes.Shape of the rate) makes an open-model run follow it; `users` (a Shape
    of the number of connections) does the same for a closed-model run. `workload` (a path or
    workload.Workload) replaces the single request with a weighted mix, optionally narrowed to
    the `scenarios` named."""
    from . import shapes
    from . import workload as _workload
    target = parse_target(url)
    rate = parse_rate(rate) if rate is not None else None
    if rate is not None and shape is not None:
        raise ConfigError("--rate", "give a rate or a load shape, not both")
    if (rate is not None or shape is not None) and users is not None:
        raise ConfigError("--users", "a users shape is for the closed model: drop --rate")
    if connections is not None:
        connections = _positive_int(connections, "--connections", 1, 1_000_000)
    if users is not None:
        connections = max(1, int(round(users.peak())))
    if rate is None and shape is None and connections is None:
        connections = DEFAULT_CONNECTIONS
    if max_connections is not None:
        max_connections = _positive_int(max_connections, "--max-connections", 1, 1_000_000)
        if connections is not None and max_connections < connections:
            raise ConfigError("--max-connections", f"must be at least --connections ({connections}), got {max_connections}")
    duration = parse_duration(duration) if duration is not None else None
    if requests is not None:
        requests = _positive_int(requests, "--requests", 1, 10**12)
    shaped = shape or users
    if duration is None and requests is None:
        duration = shaped.duration if shaped and shaped.duration != float("inf") else DEFAULT_DURATION_S
    if rate is not None:
        shape = shapes.Shape("steady", (shapes.Segment("const", duration or float("inf"), rate),),
                             dict(rps=rate))
    if workers is None:
        # one per usable CPU, and no more than the run can keep busy (the coordinator says
        # so when an explicit --workers is lowered for the same reason)
        workers = min(usable_cpus(), MAX_WORKERS)
        if rate is None and shape is None:
            workers = min(workers, connections)     # closed model (a users shape: its peak)
        if requests is not None:
            workers = min(workers, requests)
    workers = _positive_int(workers, "--workers", 1, MAX_WORKERS)
    timeout = parse_duration(timeout, "--timeout")
    grace = float(grace)
    method = str(method).upper()
    if not _TOKEN.match(method):
        raise ConfigError("--method", f"expected an HTTP method token like GET or POST, got {method!r}")
    parsed_headers = [h if isinstance(h, tuple) else parse_header(h) for h in headers]
    if isinstance(body, str):
        body = body.encode()
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ConfigError("--ca-file", f"no such file: {ca_file!r}")
    if workload is not None:
        wl = workload if isinstance(workload, _workload.Workload) else _workload.load_workload(workload)
        if scenarios:
            wl = wl.select(list(scenarios))
        mix, source = wl.scenarios, wl.source or wl.name
        for sc in mix:
            _workload.scenario_target_path(sc, target)   # every scenario is on the target
    else:
        if scenarios:
            raise ConfigError("--scenario", "selects scenarios of a --workload; none was given")
        mix, source = [_workload.default_scenario(method, parsed_headers, bytes(body))], None
    return RunConfig(url=target.url, rate=rate, connections=connections,
                     max_connections=max_connections, duration=duration, requests=requests,
                     workers=workers, timeout=timeout, grace=grace, method=method,
                     headers=parsed_headers, body=bytes(body), insecure=bool(insecure),
                     ca_file=ca_file, progress=progress, target=target, shape=shape,
                     users_shape=users, scenarios=mix, workload=source)


def build_request(config: RunConfig, scenario=None) -> bytes:
    """A scenario's request bytes (default: the run's first), built once per run; every send
    of it writes the same object."""
    from .workload import scenario_target_path
    sc = scenario or config.scenarios[0]
    t = config.target
    own = {k.lower() for k, _ in sc.headers}
    headers = [h for h in config.headers if h[0].lower() not in own] + list(sc.headers)
    given = {k.lower() for k, _ in headers}
    lines = [f"{sc.method} {scenario_target_path(sc, t)} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {t.host_header}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: stressx/{__version__}")
    lines += [f"{k}: {v}" for k, v in headers]
    if (sc.body or sc.method in ("POST", "PUT", "PATCH")) and "content-length" not in given:
        lines.append(f"Content-Length: {len(sc.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + sc.body


def split(total: int, parts: int, index: int) -> int:
    """Share `index` of `total` split as evenly as possible over `parts`."""
    return total // parts + (1 if index < total % parts else 0)
