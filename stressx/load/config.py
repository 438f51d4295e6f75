"""Run options: parsing, validation and the resolved configuration a run records.

Every bad value raises ConfigError naming the option (as the CLI spells it) and what is
accepted; the CLI turns it into one line and exit code 2, before any request is sent.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import asdict, dataclass, field

from .._version import __version__
from ..errors import ConfigError
from ..system import usable_cpus
from ..units import (VALUE_BREAKERS, check_header, check_method, parse_duration, parse_header,
                     parse_rate, split_url, text_bytes)
from . import shapes, workload as _workload

DEFAULT_DURATION_S = 10.0
DEFAULT_CONNECTIONS = 10
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_GRACE_S = 1.0
#: Open model: sends due within this of the first are taken on one wake-up, responses read on
#: the same wake-ups (benchmarks/README.md: the curve it was chosen from)
DEFAULT_TIMER_SLACK_S = 0.0002
MAX_TIMER_SLACK_S = 1.0
MAX_WORKERS = 256
DEFAULT_CLOCK_UNCERTAINTY_S = 0.005   # cluster runs: the most a host's clock offset may be unsure
MAX_LOCAL_HOSTS = 16                  # --cluster local:N: simulated hosts on this machine
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")
_HOSTS_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_REQUEST_LINE = re.compile(r"[!-~]+ [!-~]+ HTTP/1\.1")


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


@dataclass
class Target:
    """Where requests go: the URL split once, the address resolved once for all shards."""

    url: str
    scheme: str
    host: str          # as sent (Host header, TLS server name): IDNA-encoded if non-ASCII
    address: str       # resolved IP the shards connect to
    port: int
    path: str          # path and query, as sent on the request line (non-ASCII %-encoded)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    option = "URL"
    scheme, host, port, path = split_url(url, option)
    try:
        ipaddress.ip_address(host)
        address = host
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConfigError(option, f"cannot resolve host {host!r}: {exc.strerror}") from None
        address = infos[0][4][0]
    return Target(str(url), scheme, host, address, port, path)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated. Sizes are totals; the coordinator splits them.
    Frozen: what was resolved is what the manifest records and what the run is judged against;
    a change is a new config (dataclasses.replace), made before the start."""

    url: str
    rate: float | None = None            # open model when set
    connections: int | None = None       # closed model count; initial pool in the open model
    max_connections: int | None = None   # open model cap (total over shards)
    duration: float | None = None        # seconds
    requests: int | None = None          # total request budget
    workers: int | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    grace: float = DEFAULT_GRACE_S       # drain grace after an interrupt
    timer_slack: float = DEFAULT_TIMER_SLACK_S   # open model: s a send may wait to share a wake-up
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
    cluster: str | None = None           # a Ray cluster to spread the run over (see parse_cluster)
    hosts: str | None = None             # which of its hosts: 'N', 'LABEL' or 'LABEL:N'
    clock_uncertainty: float = DEFAULT_CLOCK_UNCERTAINTY_S   # seconds: refuse a start above it
    flow: str | None = None              # a Python workload file: its scenarios run as flows

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
            progress=True, shape=None, users=None, workload=None, scenarios=None,
            timer_slack=None, cluster=None, hosts=None, max_clock_uncertainty=None) -> RunConfig:
    """Validate options and fill in defaults; raises ConfigError on the first bad one.
    `shape` (a shapes.Shape of the rate) makes an open-model run follow it; `users` (a Shape
    of the number of connections) does the same for a closed-model run. `workload` (a path or
    workload.Workload) replaces the single request with a weighted mix, optionally narrowed to
    the `scenarios` named. `cluster` spreads the run over the hosts of a Ray cluster
    (parse_cluster; `workers` is then per host, by default each host's CPUs)."""
    cluster = parse_cluster(cluster) if cluster is not None else None
    if hosts is not None:
        if cluster is None:
            raise ConfigError("--hosts", "chooses the hosts of a --cluster; none was given")
        hosts = parse_hosts(hosts)
    clock = DEFAULT_CLOCK_UNCERTAINTY_S
    if max_clock_uncertainty is not None:
        clock = parse_duration(max_clock_uncertainty, "--max-clock-uncertainty")
        if not 0 < clock <= 1:
            raise ConfigError("--max-clock-uncertainty", f"must be above 0 and at most 1s, got "
                                                         f"{max_clock_uncertainty!r}")
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
    if workers is None and cluster is None:
        # one per usable CPU, and no more than the run can keep busy (the coordinator says
        # so when an explicit --workers is lowered for the same reason)
        workers = min(usable_cpus(), MAX_WORKERS)
        if rate is None and shape is None:
            workers = min(workers, connections)     # closed model (a users shape: its peak)
        if requests is not None:
            workers = min(workers, requests)
    if workers is not None:
        workers = _positive_int(workers, "--workers", 1, MAX_WORKERS)
    timeout = parse_duration(timeout, "--timeout")
    grace = float(grace)
    timer_slack = parse_timer_slack(timer_slack, timeout)
    method = check_method(method)
    if isinstance(headers, (str, dict)):
        headers = [headers] if isinstance(headers, str) else list(headers.items())
    parsed_headers = [check_header(*h) if isinstance(h, tuple) else parse_header(h) for h in headers]
    if isinstance(body, str):
        body = text_bytes(body, "--body")
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ConfigError("--ca-file", f"no such file: {ca_file!r}")
    if workload is not None:
        wl = workload if isinstance(workload, _workload.Workload) else _workload.load_workload(workload)
        if scenarios:
            wl = wl.select(list(scenarios))
        mix, source = wl.scenarios, wl.source or wl.name
        flow = wl.flow
        for sc in mix:       # also scenarios built in Python, which no file parser has seen
            if sc.python:
                continue
            where = sc.where or f"{source}: scenario {sc.name}"
            _workload.check_scenario(sc, where)
            _workload.scenario_target_path(sc, target)   # every scenario is on the target
            _check_framing(sc, parsed_headers, f"{where}.headers")
    else:
        if scenarios:
            raise ConfigError("--scenario", "selects scenarios of a --workload; none was given")
        mix, source = [_workload.default_scenario(method, parsed_headers, bytes(body))], None
        flow = None
        _check_framing(mix[0], parsed_headers, "--header")
    return RunConfig(url=target.url, rate=rate, connections=connections,
                     max_connections=max_connections, duration=duration, requests=requests,
                     workers=workers, timeout=timeout, grace=grace, timer_slack=timer_slack,
                     method=method,
                     headers=parsed_headers, body=bytes(body), insecure=bool(insecure),
                     ca_file=ca_file, progress=progress, target=target, shape=shape,
                     users_shape=users, scenarios=mix, workload=source, cluster=cluster,
                     hosts=hosts, clock_uncertainty=clock, flow=flow)


def parse_cluster(value, option: str = "--cluster") -> str:
    """A cluster address as given: `local:N` (start N simulated hosts on this machine, the
    Ray head on 127.0.0.1 only), `auto` (the Ray cluster this machine belongs to),
    `ray://HOST:PORT` (Ray Client) or `HOST:PORT` (a head's GCS address). Checked here
    without Ray, so a typo is exit 2 before anything starts."""
    text = str(value).strip()
    if text.startswith("local:"):
        n = _positive_int(text[6:], option, 1, MAX_LOCAL_HOSTS)
        return f"local:{n}"
    if text == "auto":
        return text
    rest = text[6:] if text.startswith("ray://") else text
    if _HOST_PORT.fullmatch(rest) and 0 < int(rest.rsplit(":", 1)[1]) < 65536:
        return text
    raise ConfigError(option, f"expected local:N, auto, ray://HOST:PORT or HOST:PORT, got {text!r}")


def parse_hosts(value, option: str = "--hosts") -> str:
    """Which hosts of the cluster send: `N` (any N, one agent each), `LABEL` (every host
    with the custom Ray resource LABEL, `ray start --resources '{"LABEL": 1}'`) or
    `LABEL:N`."""
    text = str(value).strip()
    if text.isdigit():
        return str(_positive_int(text, option, 1, 10_000))
    label, _, count = text.partition(":")
    if not _HOSTS_LABEL.fullmatch(label) or (count and not count.isdigit()):
        raise ConfigError(option, f"expected N, LABEL or LABEL:N (a custom Ray resource of the "
                                  f"load hosts), got {text!r}")
    if count:
        _positive_int(count, option, 1, 10_000)
    return text


def parse_timer_slack(value, timeout: float, option: str = "--timer-slack") -> float:
    """Seconds of timer slack: 0 (or 'off') for none, else a duration ('1ms', '200us') up to
    MAX_TIMER_SLACK_S and under the request timeout. None: the default."""
    if value is None:
        return DEFAULT_TIMER_SLACK_S
    if isinstance(value, bool):
        raise ConfigError(option, f"expected a duration like 1ms or 200us, or 0, got {value!r}")
    text = str(value).strip().lower()
    if text in ("off", "none") or re.fullmatch(r"0+(\.0*)?(ms|us|s)?", text):
        return 0.0
    try:
        slack = parse_duration(value, option)
    except ConfigError:
        raise ConfigError(option, f"expected a duration like 1ms or 200us, or 0, got {str(value)!r}") from None
    if slack > MAX_TIMER_SLACK_S or slack >= timeout:
        raise ConfigError(option, f"must be at most {MAX_TIMER_SLACK_S:g}s and under --timeout "
                                  f"({timeout:g}s), got {str(value)!r}")
    return slack


def _merged_headers(run_headers, sc) -> list:
    """The run's headers under the scenario's own (a scenario's header replaces the run's)."""
    own = {k.lower() for k, _ in sc.headers}
    return [h for h in run_headers if h[0].lower() not in own] + list(sc.headers)


def _check_framing(sc, run_headers, scenario_option: str) -> None:
    """A Content-Length that disagrees with the body, or a Transfer-Encoding stressx does not
    apply, would make the server read the next request as part of this one."""
    for name, value in _merged_headers(run_headers, sc):
        option = scenario_option if (name, value) in sc.headers else "--header"
        if name.lower() == "transfer-encoding":
            raise ConfigError(option, f"stressx sends bodies with Content-Length; drop {name}: {value}")
        if name.lower() == "content-length" and value != str(len(sc.body)):
            raise ConfigError(option, f"{name}: {value} disagrees with the body of scenario "
                                      f"{sc.name!r} ({len(sc.body)} bytes); drop it, stressx sets it")


def build_request(config: RunConfig, scenario=None) -> bytes:
    """A scenario's request bytes (default: the run's first), built once per run; every send
    of it writes the same object. Every part was checked by resolve(); the head is checked once
    more here, as the last place before the wire (a RunConfig changed after resolve)."""
    sc = scenario or config.scenarios[0]
    t = config.target
    headers = _merged_headers(config.headers, sc)
    given = {k.lower() for k, _ in headers}
    lines = [f"{sc.method} {_workload.scenario_target_path(sc, t)} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {t.host_header}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: stressx/{__version__}")
    lines += [f"{k}: {v}" for k, v in headers]
    if (sc.body or sc.method in ("POST", "PUT", "PATCH")) and "content-length" not in given:
        lines.append(f"Content-Length: {len(sc.body)}")
    if (not _REQUEST_LINE.fullmatch(lines[0])
            or any(VALUE_BREAKERS.search(line) for line in lines[1:])):
        raise ConfigError(f"scenario {sc.name}", f"the request would be malformed: {lines!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + sc.body


def split(total: int, parts: int, index: int) -> int:
    """Share `index` of `total` split as evenly as possible over `parts`."""
    return total // parts + (1 if index < total % parts else 0)
