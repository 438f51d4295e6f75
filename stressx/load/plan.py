"""From settings to runs: merge a profile, a config file, environment variables and flags into
the list of tests a command will run, validating strictly on the way.

Every setting remembers where it came from (`origins`), so an error names it the way the user
wrote it: `--rate`, `STRESSX_RATE`, `load.yaml: tests[1].max_rps` or `profile heavy: rps`, with
the same message whichever it was.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, yaml_error
from . import shapes
from .config import RunConfig, resolve
from .profiles import profile_settings

# settings a run takes (flag spelling: --max-connections for max_connections)
RUN_KEYS = ("target", "rate", "connections", "max_connections", "duration", "requests", "workers",
            "timeout", "timer_slack", "method", "headers", "body", "body_file", "insecure", "ca_file", "workload",
            "scenario", "model", "cluster", "hosts", "max_clock_uncertainty")
PATTERN_PARAMS = sorted({name for _, spec in shapes.PATTERNS.values() for name, *_ in spec})
FILE_KEYS = set(RUN_KEYS) | {"profile", "pattern", "tests", "scenarios", "thresholds", "criteria",
                             "output", "burn", "safety", "control", "control_token"}
OUTPUT_KEYS = {"dir", "json", "quiet", "report", "baseline", "dashboard"}
TEST_KEYS = set(RUN_KEYS) - {"target"} | {"name", "type", "pattern"} | set(PATTERN_PARAMS)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Test:
    """One run of a plan."""
    name: str
    config: RunConfig


def flag(key: str) -> str:
    if key == "headers":          # the one setting whose flag is not its key (repeatable --header)
        return "--header"
    return "URL" if key == "target" else "--" + key.replace("_", "-")


def env_var(key: str) -> str:
    return "STRESSX_" + key.upper()


def _hint(key, known) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def substitute_env(value, where: str, environ=os.environ):
    """${VAR} and ${VAR:-default} in every string of a loaded config."""
    if isinstance(value, str):
        def one(m):
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(where, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
        return _ENV_REF.sub(one, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, f"{where}.{k}" if where else str(k), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, f"{where}[{i}]", environ) for i, v in enumerate(value)]
    return value


def load_config_file(path, environ=os.environ, option: str = "--config") -> tuple[dict, dict]:
    """(settings, origins) from a YAML config file, strictly checked; `option` names where
    the path came from (--config or STRESSX_CONFIG)."""
    import yaml
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(option, f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise yaml_error(str(p), exc) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(p), "a config file is a mapping of settings")
    settings, origins = {}, {}
    for key, value in raw.items():
        where = f"{p}: {key}"
        if key not in FILE_KEYS:
            raise ConfigError(where, f"unknown key{_hint(key, FILE_KEYS)}; keys are {', '.join(sorted(FILE_KEYS))}")
        value = substitute_env(value, where, environ)
        if key == "output":
            if not isinstance(value, dict):
                raise ConfigError(where, f"expected a mapping of {', '.join(sorted(OUTPUT_KEYS))}")
            for k, v in value.items():
                if k not in OUTPUT_KEYS:
                    raise ConfigError(f"{where}.{k}", f"unknown output key{_hint(k, OUTPUT_KEYS)}")
                settings["out" if k == "dir" else k] = v
                origins["out" if k == "dir" else k] = f"{where}.{k}"
            continue
        if key == "scenarios":
            from .workload import parse_workload
            settings["workload"] = parse_workload(value, str(p), p.parent)
            origins["workload"] = where
            continue
        if key == "workload" and isinstance(value, str) and not Path(value).is_absolute():
            candidate = p.parent / value
            value = str(candidate) if candidate.exists() else value
        settings[key] = value
        origins[key] = where
    if "pattern" in settings and "tests" in settings:
        raise ConfigError(f"{p}: pattern", "give one pattern or a list of tests, not both")
    return settings, origins


def merge(*layers: tuple[dict, dict]) -> tuple[dict, dict]:
    """Later layers win; each layer is (settings, origins)."""
    settings, origins = {}, {}
    for s, o in layers:
        origins.update(o)
        for k, v in s.items():
            if v is None:
                continue
            settings[k] = v
            origins[k] = o.get(k, flag(k))
    return settings, origins


def with_profile(settings: dict, origins: dict) -> tuple[dict, dict]:
    """Put the named profile's settings under the others."""
    name = settings.get("profile")
    if not name:
        return settings, origins
    try:
        prof = profile_settings(str(name))
    except ConfigError as exc:
        raise ConfigError(origins.get("profile", "--profile"), str(exc).split(": ", 1)[1]) from None
    pattern = {k: prof.pop(k) for k in list(prof) if k in PATTERN_PARAMS or k == "pattern"}
    layer = dict(prof)
    if "pattern" not in settings and "tests" not in settings and "rate" not in settings:
        ptype = pattern.pop("pattern")
        if "duration" in settings:       # a shorter or longer run of the same profile
            pattern["duration"] = settings["duration"]
        layer["pattern"] = dict(pattern, type=ptype)
    return merge((layer, {k: f"profile {name}: {k}" for k in layer}), (settings, origins))


def _pattern(spec, where_base: str, origins: dict) -> shapes.Shape:
    """A shape from {type: ramp, min_rps: ..}. A parameter is named in errors by
    origins['pattern.<param>'] when it came from a flag or env var, else as where_base.param."""
    if not isinstance(spec, dict):
        raise ConfigError(where_base, "expected a mapping with a 'type' and the pattern's parameters")
    spec = dict(spec)
    ptype = spec.pop("type", None) or spec.pop("pattern", None)
    if not ptype:
        raise ConfigError(where_base, f"needs a type: one of {', '.join(shapes.PATTERNS)}")

    def where(param):
        return origins.get(f"pattern.{param}", f"{where_base}.{param}")
    if ptype not in shapes.PATTERNS:
        raise ConfigError(where("type"),
                          f"unknown pattern {ptype!r}{_hint(ptype, shapes.PATTERNS)}; patterns are {', '.join(shapes.PATTERNS)}")
    return shapes.build(ptype, spec, where)


def _relabel(exc: ConfigError, origins: dict) -> ConfigError:
    """Name a setting the way it was given (flag, env var, file key)."""
    for key, label in origins.items():
        if exc.option == flag(key) and label != exc.option:
            return ConfigError(label, str(exc).split(": ", 1)[1])
    return exc


def _resolve_one(s: dict, origins: dict, shape, progress: bool) -> RunConfig:
    body = s.get("body")
    if s.get("body_file") is not None:
        if body is not None:
            raise ConfigError(origins.get("body_file", "--body-file"), "give body or body-file, not both")
        try:
            body = Path(s["body_file"]).read_bytes()
        except OSError as exc:
            raise ConfigError(origins.get("body_file", "--body-file"), f"cannot read {s['body_file']!r}: {exc.strerror}") from None
    headers = s.get("headers") or []
    if isinstance(headers, dict):        # name: value pairs as given (a ':' in a name is an error)
        headers = [(str(k), str(v)) for k, v in headers.items()]
    elif isinstance(headers, str):
        headers = [headers]
    if "target" not in s:
        raise ConfigError("URL", "no target: give the URL as the first argument or `target:` in the config file")
    model = str(s.get("model") or "open")
    if model not in ("open", "closed"):
        raise ConfigError(origins.get("model", "--model"), f"expected open or closed, got {model!r}")
    scenario = s.get("scenario")
    if isinstance(scenario, str):
        scenario = [x.strip() for x in scenario.split(",") if x.strip()]
    try:
        return resolve(
            s["target"], rate=s.get("rate"), connections=s.get("connections"),
            max_connections=s.get("max_connections"),
            duration=s.get("duration") if shape is None else None,   # a shape has its own
            requests=s.get("requests"), workers=s.get("workers"),
            timeout=s.get("timeout", "10s"), timer_slack=s.get("timer_slack"),
            method=s.get("method", "GET"), headers=headers,
            body=body or b"", insecure=bool(s.get("insecure", False)), ca_file=s.get("ca_file"),
            progress=progress, workload=s.get("workload"), scenarios=scenario or None,
            shape=shape if model == "open" else None, users=shape if model == "closed" else None,
            cluster=s.get("cluster"), hosts=s.get("hosts"),
            max_clock_uncertainty=s.get("max_clock_uncertainty"))
    except ConfigError as exc:
        raise _relabel(exc, origins) from None


def plan(settings: dict, origins: dict, progress: bool = True) -> list[Test]:
    """The runs the settings describe: one, or one per entry of `tests`, in order."""
    settings, origins = with_profile(settings, origins)
    if "tests" not in settings:
        shape = None
        if "pattern" in settings:
            shape = _pattern(settings["pattern"], origins.get("pattern", "pattern"), origins)
        return [Test(shape.name if shape else "run", _resolve_one(settings, origins, shape, progress))]
    tests = settings["tests"]
    where_tests = origins.get("tests", "tests")
    if not isinstance(tests, list) or not tests:
        raise ConfigError(where_tests, "expected a non-empty list of tests")
    out = []
    for i, item in enumerate(tests):
        where = f"{where_tests}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "each test is a mapping: a pattern type, its parameters and run settings")
        for key in item:
            if key not in TEST_KEYS:
                raise ConfigError(f"{where}.{key}", f"unknown key{_hint(key, TEST_KEYS)}")
        spec = {k: v for k, v in item.items() if k in PATTERN_PARAMS or k in ("type", "pattern")}
        overrides = {k: v for k, v in item.items() if k in RUN_KEYS and k not in PATTERN_PARAMS}
        s = dict(settings, **overrides)
        o = dict(origins, **{k: f"{where}.{k}" for k in overrides})
        shape = _pattern(spec, where, {}) if spec else None
        name = str(item.get("name") or (shape.name if shape else f"test{i + 1}"))
        out.append(Test(f"{i + 1:02d}-{name}", _resolve_one(s, o, shape, progress)))
    return out
