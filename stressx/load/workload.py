"""Workloads: weighted mixes of request scenarios, from YAML files.

The built-in workloads (quick, heavy, error, mixed) ship inside the package
(stressx/load/workloads/) so that `--workload mixed` and `stressx list-scenarios` work from any
directory after `pip install .`. A name is looked up in ./workloads/ first, then among the built-ins: a user's
file always wins over a built-in of the same name; an existing path is used as given.

A workload file is YAML:

    description: What this mix exercises
    scenarios:
      - name: health                 # unique in the file
        method: GET                  # default GET
        path: /health                # or url: http://127.0.0.1:8080/health (same host as the run)
        headers: {Accept: text/plain}
        body: '{"a": 1}'             # or body_file: data/item.json (relative to the workload file)
        weight: 3                    # share of the mix, default 1
        expect_status: [200]         # statuses that count as success, default any 2xx
        baseline_min_ms: 0           # the expected latency band: responses outside it are
        baseline_max_ms: 50          # counted as baseline violations
        description: Liveness probe

The mix is drawn per request inside the compiled engine, by weight; each scenario's requests are
built once per run.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from ..errors import ConfigError, yaml_error
from ..units import check_header, check_method, request_target, split_url, text_bytes

SCENARIO_KEYS = {"name", "method", "path", "url", "headers", "body", "body_file", "weight",
                 "expect_status", "baseline_min_ms", "baseline_max_ms", "description", "websocket"}
WEBSOCKET_KEYS = {"path", "messages", "rate", "message", "expect_echo", "subprotocols", "headers"}
WORKLOAD_KEYS = {"description", "scenarios", "name"}
WORKLOADS_DIR = Path("workloads")                                # the user's, in the cwd
BUILTIN_DIR = Path(__file__).resolve().parent / "workloads"      # shipped with stressx


@dataclass
class Scenario:
    name: str
    method: str = "GET"
    path: str | None = None          # path (and query) on the run's target
    url: str | None = None           # or a full URL on the same host and port
    headers: list = field(default_factory=list)
    body: bytes = b""
    weight: float = 1.0
    expect_status: tuple = ()        # empty: any 2xx
    baseline_min_ms: float | None = None
    baseline_max_ms: float | None = None
    description: str = ""
    where: str = ""                  # how errors name it: 'mixed.yaml: scenarios[2]'
    python: bool = False             # an `async def` of a Python workload file (stressx.flows)
    websocket: dict | None = None    # YAML's WebSocket form: connect, send N messages, expect echo

    def to_json(self) -> dict:
        if self.python:
            return {"name": self.name, "python": True, "weight": self.weight,
                    "description": self.description, "websocket": self.websocket}
        return {"name": self.name, "method": self.method, "path": self.path, "url": self.url,
                "weight": self.weight, "expect_status": list(self.expect_status),
                "baseline_min_ms": self.baseline_min_ms, "baseline_max_ms": self.baseline_max_ms,
                "description": self.description, "body_bytes": len(self.body)}


@dataclass
class Workload:
    name: str
    description: str
    scenarios: list[Scenario]
    source: str = ""
    flow: str | None = None          # a Python workload file (absolute path): its scenarios run as flows

    def select(self, names: list[str]) -> "Workload":
        known = {s.name for s in self.scenarios}
        for n in names:
            if n not in known:
                raise ConfigError("--scenario", f"{n!r} is not in {self.source or self.name}{_hint(n, known)}; it has {', '.join(sorted(known))}")
        return Workload(self.name, self.description, [s for s in self.scenarios if s.name in names],
                        self.source, self.flow)


def _hint(key, known) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(value, where: str, low: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(where, f"expected a number, got {str(value)!r}") from None
    if not v >= low:
        raise ConfigError(where, f"must be >= {low:g}, got {str(value)!r}")
    return v


def parse_scenario(raw, where: str, base_dir: Path) -> Scenario:
    """One scenario from its mapping; `where` names it in errors (file and index)."""
    if not isinstance(raw, dict):
        raise ConfigError(where, f"a scenario is a mapping of {', '.join(sorted(SCENARIO_KEYS))}")
    for key in raw:
        if key not in SCENARIO_KEYS:
            raise ConfigError(f"{where}.{key}", f"unknown scenario key{_hint(key, SCENARIO_KEYS)}")
    if not raw.get("name"):
        raise ConfigError(f"{where}.name", "every scenario needs a name")
    if "websocket" in raw:
        return parse_websocket(raw, where)
    sc = Scenario(name=str(raw["name"]), where=where)
    sc.method = str(raw.get("method", "GET"))
    if ("path" in raw) == ("url" in raw):
        raise ConfigError(f"{where}.path", "give exactly one of path or url")
    if "path" in raw:
        sc.path = str(raw["path"])
    else:
        sc.url = str(raw["url"])
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}.headers", "expected a mapping of header names to values")
    sc.headers = [(str(k), str(v)) for k, v in headers.items()]
    check_scenario(sc, where)
    if "body" in raw and "body_file" in raw:
        raise ConfigError(f"{where}.body_file", "give body or body_file, not both")
    if "body" in raw:
        body = raw["body"]
        sc.body = text_bytes(body if isinstance(body, str) else str(body), f"{where}.body")
    if "body_file" in raw:
        path = base_dir / str(raw["body_file"])
        try:
            sc.body = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}.body_file", f"cannot read {str(path)!r}: {exc.strerror}") from None
    sc.weight = _number(raw.get("weight", 1), f"{where}.weight")
    expect = raw.get("expect_status", [])
    expect = [expect] if isinstance(expect, int) else expect
    try:
        sc.expect_status = tuple(int(c) for c in expect)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.expect_status", f"expected a list of status codes, got {expect!r}") from None
    if any(not 100 <= c <= 599 for c in sc.expect_status):
        raise ConfigError(f"{where}.expect_status", f"status codes are 100..599, got {list(sc.expect_status)}")
    for key in ("baseline_min_ms", "baseline_max_ms"):
        if raw.get(key) is not None:
            setattr(sc, key, _number(raw[key], f"{where}.{key}"))
    if (sc.baseline_min_ms is not None and sc.baseline_max_ms is not None
            and sc.baseline_min_ms > sc.baseline_max_ms):
        raise ConfigError(f"{where}.baseline_min_ms", f"must not exceed baseline_max_ms ({sc.baseline_max_ms:g})")
    sc.description = str(raw.get("description", ""))
    return sc


def parse_websocket(raw: dict, where: str) -> Scenario:
    """The WebSocket form: `websocket: {path: /ws, messages: 10, rate: 5, message: hi,
    expect_echo: true, subprotocols: [chat], headers: {...}}`: each iteration connects, sends
    `messages` messages at `rate` per second (0: each as soon as the last is answered), expects
    each echoed back (a reply that differs fails the iteration as `check`), and closes. A
    workload with one runs as Python scenarios (stressx.flows), its HTTP scenarios too."""
    for key in raw:
        if key not in ("name", "websocket", "weight", "description"):
            raise ConfigError(f"{where}.{key}", "a websocket scenario takes name, websocket, weight and description")
    ws = raw["websocket"]
    if not isinstance(ws, dict):
        raise ConfigError(f"{where}.websocket", f"a mapping of {', '.join(sorted(WEBSOCKET_KEYS))}")
    for key in ws:
        if key not in WEBSOCKET_KEYS:
            raise ConfigError(f"{where}.websocket.{key}", f"unknown websocket key{_hint(key, WEBSOCKET_KEYS)}")
    path = str(ws.get("path", ""))
    request_target(path, f"{where}.websocket.path")
    messages = ws.get("messages", 1)
    if not isinstance(messages, int) or isinstance(messages, bool) or messages < 0:
        raise ConfigError(f"{where}.websocket.messages", f"a whole number >= 0, got {messages!r}")
    subprotocols = ws.get("subprotocols") or []
    if isinstance(subprotocols, str):
        subprotocols = [subprotocols]
    headers = ws.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}.websocket.headers", "expected a mapping of header names to values")
    spec = {"path": path, "messages": messages,
            "rate": _number(ws.get("rate", 0), f"{where}.websocket.rate"),
            "message": str(ws.get("message", "stressx")), "expect_echo": bool(ws.get("expect_echo", True)),
            "subprotocols": [str(p) for p in subprotocols],
            "headers": {str(k): str(v) for k, v in headers.items()}}
    return Scenario(name=str(raw["name"]), path=path, where=where, python=True, websocket=spec,
                    weight=_number(raw.get("weight", 1), f"{where}.weight"),
                    description=str(raw.get("description", "")))


def check_scenario(sc: Scenario, where: str) -> None:
    """Everything of a scenario that goes on the request line or in a header, checked and put
    in wire form (method upper-cased, path percent-encoded): the one check every scenario gets,
    from a workload file, a config file's `scenarios:` or Python."""
    sc.method = check_method(sc.method, f"{where}.method")
    if (sc.path is None) == (sc.url is None):
        raise ConfigError(f"{where}.path", "give exactly one of path or url")
    if sc.path is not None:
        sc.path = request_target(sc.path, f"{where}.path")
    else:
        split_url(sc.url, f"{where}.url")
    sc.headers = [check_header(k, v, f"{where}.headers") for k, v in sc.headers]


def parse_workload(data, source: str, base_dir: Path) -> Workload:
    if isinstance(data, list):
        data = {"scenarios": data}
    if not isinstance(data, dict) or "scenarios" not in data:
        raise ConfigError(source, "a workload is a mapping with a 'scenarios' list")
    for key in data:
        if key not in WORKLOAD_KEYS:
            raise ConfigError(f"{source}: {key}", f"unknown workload key{_hint(key, WORKLOAD_KEYS)}")
    raw = data["scenarios"]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: scenarios", "needs a non-empty list of scenarios")
    scenarios = [parse_scenario(r, f"{source}: scenarios[{i}]", base_dir) for i, r in enumerate(raw)]
    names = [s.name for s in scenarios]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{source}: scenarios", f"scenario names must be unique; repeated: {', '.join(sorted(dup))}")
    if not sum(s.weight for s in scenarios) > 0:
        raise ConfigError(f"{source}: scenarios", "the weights add up to 0")
    name = str(data.get("name") or Path(source).stem)
    flow = None
    if any(s.websocket for s in scenarios):
        # runs as Python scenarios: the shards read this file again (stressx.flows.yamlflow)
        flow = str(Path(source).resolve())
        for s in scenarios:
            s.python = True
    return Workload(name, str(data.get("description", "")), scenarios, source, flow)


def resolve_workload(path) -> Path:
    """The file a --workload value names: an existing path as given; a bare name (no suffix)
    as NAME.yaml or NAME.yml in ./workloads/, else among the built-ins."""
    p = Path(path)
    if p.exists() or p.suffix:
        return p
    for directory in (WORKLOADS_DIR, BUILTIN_DIR):
        for candidate in (directory / f"{p}.yaml", directory / f"{p}.yml"):
            if candidate.is_file():
                return candidate
    return p


def builtin_names() -> list[str]:
    return sorted({f.stem for f in _yaml_files(BUILTIN_DIR)})


def load_flow(path) -> Workload:
    """A Python workload file (stressx.load.flowfile) as a Workload of Python scenarios."""
    from .flowfile import import_flow
    reg = import_flow(path)
    scenarios = [Scenario(name=s.name, weight=s.weight, description=s.description,
                          where=f"{path}: {s.name}", python=True) for s in reg.scenarios]
    doc = (reg.module.__doc__ or "").strip()
    return Workload(Path(path).stem, doc.splitlines()[0] if doc else "", scenarios, str(path),
                    flow=str(Path(path).resolve()))


def load_workload(path) -> Workload:
    """Load a workload file (YAML, or Python: see load_flow), or a named one (see
    resolve_workload)."""
    import yaml
    p = resolve_workload(path)
    if p.suffix == ".py":
        return load_flow(p)
    try:
        text = p.read_text()
    except OSError as exc:
        hint = ""
        if not p.suffix and len(p.parts) == 1:
            hint = (f" (nor {WORKLOADS_DIR / p}.yaml; built-in workloads: "
                    f"{', '.join(builtin_names())})")
        raise ConfigError("--workload", f"cannot read {str(path)!r}: {exc.strerror}{hint}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(str(p), exc) from None
    return parse_workload(data, str(p), p.parent)


def _yaml_files(directory: Path) -> list[Path]:
    """*.yml then *.yaml, each sorted."""
    return sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml"))


def workload_files(directory=None) -> list[Path]:
    """The workload files in `directory`; by default every workload a name resolves to: the
    built-ins and ./workloads/, a local file hiding the built-in of the same name."""
    if directory is not None:     # Python workload files too, when a directory is named
        return sorted(_yaml_files(Path(directory))) + sorted(Path(directory).glob("*.py"))
    by_name: dict[str, Path] = {}
    for d in (BUILTIN_DIR, WORKLOADS_DIR):           # later wins, as in resolve_workload
        by_name.update({f.stem: f for f in _yaml_files(d)})   # NAME.yaml over NAME.yml
    return [by_name[name] for name in sorted(by_name)]


def list_workloads(directory=None) -> list[Workload]:
    return [load_workload(f) for f in workload_files(directory)]


def default_scenario(method: str, headers: list, body: bytes) -> Scenario:
    """The single scenario of a run given by URL and flags."""
    return Scenario(name="default", method=method, headers=list(headers), body=body)


def scenario_target_path(sc: Scenario, target) -> str:
    """The request line's target for a scenario on the run's target (a Target)."""
    if sc.path is not None:
        return sc.path
    if sc.url is None:
        return target.path
    where = f"{sc.where or f'scenario {sc.name}'}.url"
    scheme, host, port, path = split_url(sc.url, where)
    if scheme != target.scheme or host != target.host or port != target.port:
        raise ConfigError(where, f"{sc.url!r} is not on the run's target {target.scheme}://{target.host_header}/")
    return path
