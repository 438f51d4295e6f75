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
from urllib.parse import quote, urlsplit

from ._version import __version__

DEFAULT_DURATION_S = 10.0
DEFAULT_CONNECTIONS = 10
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_GRACE_S = 1.0
MAX_WORKERS = 256
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")      # RFC 9110 token (use fullmatch)
_LINE_BREAKERS = re.compile(r"[\x00-\x20\x7f]")          # cannot go on a request line
_VALUE_BREAKERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # cannot go in a header value (tab can)
_HOST_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_REQUEST_LINE = re.compile(r"[!-~]+ [!-~]+ HTTP/1\.1")
_ASCII_PRINTABLE = "".join(map(chr, range(0x21, 0x7f)))
_NAMED = {"\r": "CR", "\n": "LF", "\0": "NUL", " ": "a space", "\t": "a tab"}
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


def _char(c: str) -> str:
    return _NAMED.get(c) or f"the control byte 0x{ord(c):02X}"


def check_method(value, option: str = "--method") -> str:
    """The method as it goes on the request line: an RFC 9110 token, upper-cased."""
    if not _TOKEN.fullmatch(str(value)):     # before upper(): 'ſ'.upper() is 'S'
        raise ConfigError(option, f"expected an HTTP method token like GET or POST, got {str(value)!r}")
    return str(value).upper()


def check_header(name, value, option: str = "--header") -> tuple[str, str]:
    """A header as it goes on the wire: the name an RFC 9110 token, the value free of CR, LF,
    NUL and other control bytes (which would end the header or the request early)."""
    name, value = str(name).strip(), str(value).strip()
    if not _TOKEN.fullmatch(name):
        raise ConfigError(option, f"{name!r} is not a valid header name (letters, digits and !#$%&'*+.^_`|~-)")
    bad = _VALUE_BREAKERS.search(value)
    if bad:
        raise ConfigError(option, f"value of {name!r} contains {_char(bad.group())}, which a header value cannot carry: {value!r}")
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(option, f"value of {name!r} is not valid text: {value!r}") from None
    return name, value


def parse_header(text: str, option: str = "--header") -> tuple[str, str]:
    """'Name: value' from a flag, env var line or config list."""
    name, sep, value = str(text).partition(":")
    if not sep or not _TOKEN.fullmatch(name.strip()):
        raise ConfigError(option, f"expected 'Name: value' with a valid header name, got {text!r}")
    return check_header(name, value, option)


def request_target(text, option: str) -> str:
    """A path and query as they go on the request line. Spaces, CR, LF, NUL and other control
    bytes would split or corrupt the request and are refused; non-ASCII is percent-encoded as
    UTF-8 (as browsers and curl do); '%' escapes already there are kept."""
    text = str(text)
    bad = _LINE_BREAKERS.search(text)
    if bad:
        raise ConfigError(option, f"contains {_char(bad.group())}, which cannot go on a request line "
                                  f"(percent-encode it, e.g. %20 for a space): {text!r}")
    if "#" in text:
        raise ConfigError(option, f"a fragment ('#...') is never sent to a server; write %23 for a literal '#': {text!r}")
    if not text.startswith("/"):
        raise ConfigError(option, f"must start with '/', got {text!r}")
    try:
        return quote(text, safe=_ASCII_PRINTABLE, errors="surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(option, f"is not valid text: {text!r}") from None


def ascii_host(host: str, option: str = "URL") -> str:
    """The host as it goes in the Host header and the TLS server name: an internationalised
    name IDNA-encoded (UTS 46, as browsers do), an ASCII name as written."""
    if host.isascii():
        if not _HOST_CHARS.fullmatch(host):
            raise ConfigError(option, f"host {host!r} has characters a host name cannot have")
        return host
    import idna      # a dependency of aiohttp's yarl; IDNA 2008, unlike the stdlib codec
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ConfigError(option, f"host {host!r} is not a valid internationalised domain name: {exc}") from None


def split_url(url, option: str = "URL") -> tuple[str, str, int, str]:
    """(scheme, ASCII host, port, request target) of an http(s) URL, checked for what would
    corrupt a request. The raw text is checked first: urlsplit silently drops tabs and line
    breaks, which would hide them."""
    text = str(url)
    bad = _LINE_BREAKERS.search(text)
    if bad:
        raise ConfigError(option, f"contains {_char(bad.group())}, which a URL cannot carry "
                                  f"(percent-encode it, e.g. %20 for a space): {text!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(option, f"{exc} in {text!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(option, f"expected an http:// or https:// URL, got {text!r}")
    if not parts.hostname:
        raise ConfigError(option, f"no host in {text!r}")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ascii_host(host, option)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), request_target(path, option)


def yaml_error(source: str, exc: Exception) -> ConfigError:
    """A YAML syntax error as one line: the file, the line and column, the parser's problem
    and what it was parsing (PyYAML's own text spans several lines)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return ConfigError(source, f"not valid YAML: {' '.join(str(exc).split())}")
    message = f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark:
        message += f" ({context} at line {cmark.line + 1}, column {cmark.column + 1})"
    elif context:
        message += f" ({context})"
    return ConfigError(source, message)


def text_bytes(text: str, option: str) -> bytes:
    """Text as UTF-8; bytes an env var or argv could not decode go out as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(option, f"is not valid text: {text!r}") from None


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
        for sc in mix:       # also scenarios built in Python, which no file parser has seen
            where = sc.where or f"{source}: scenario {sc.name}"
            _workload.check_scenario(sc, where)
            _workload.scenario_target_path(sc, target)   # every scenario is on the target
            _check_framing(sc, parsed_headers, f"{where}.headers")
    else:
        if scenarios:
            raise ConfigError("--scenario", "selects scenarios of a --workload; none was given")
        mix, source = [_workload.default_scenario(method, parsed_headers, bytes(body))], None
        _check_framing(mix[0], parsed_headers, "--header")
    return RunConfig(url=target.url, rate=rate, connections=connections,
                     max_connections=max_connections, duration=duration, requests=requests,
                     workers=workers, timeout=timeout, grace=grace, method=method,
                     headers=parsed_headers, body=bytes(body), insecure=bool(insecure),
                     ca_file=ca_file, progress=progress, target=target, shape=shape,
                     users_shape=users, scenarios=mix, workload=source)


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
    from .workload import scenario_target_path
    sc = scenario or config.scenarios[0]
    t = config.target
    headers = _merged_headers(config.headers, sc)
    given = {k.lower() for k, _ in headers}
    lines = [f"{sc.method} {scenario_target_path(sc, t)} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {t.host_header}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: stressx/{__version__}")
    lines += [f"{k}: {v}" for k, v in headers]
    if (sc.body or sc.method in ("POST", "PUT", "PATCH")) and "content-length" not in given:
        lines.append(f"Content-Length: {len(sc.body)}")
    if (not _REQUEST_LINE.fullmatch(lines[0])
            or any(_VALUE_BREAKERS.search(line) for line in lines[1:])):
        raise ConfigError(f"scenario {sc.name}", f"the request would be malformed: {lines!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + sc.body


def split(total: int, parts: int, index: int) -> int:
    """Share `index` of `total` split as evenly as possible over `parts`."""
    return total // parts + (1 if index < total % parts else 0)
