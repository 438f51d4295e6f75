"""The stressx pytest plugin (installed with stressx through the `pytest11` entry point).

Fixtures:

- ``stressx_target``: the embedded target's base URL (127.0.0.1), started once per session.
- ``stressx_load``: ``stressx_load(url=None, *thresholds, profile=None, criteria=..., **options)``
  runs ``stressx.run`` with the test's profile and options (the embedded target when no URL
  is given) into a results directory of its own under the session directory, and turns every
  failed threshold (the profile's success criteria, the marker's, the call's) into ONE
  AssertionError listing each. Returns the stressx.Result.
- ``stressx_bench``: ``stressx_bench(fn, *args, **kwargs)`` is stressx.benchmark() inside a test;
  every result goes into the session table and the session's benchmark results directory
  (``benchmarks/``: summary.json, samples.arrows, ..., comparable with ``stressx compare``).

Marker ``@pytest.mark.stress(profile="light", thresholds=[...], criteria=..., **options)`` sets
a test's profile, extra thresholds and run options (duration="5s", connections=4, rate=50,
...). Option ``--stressx-profile NAME`` picks the profile of every test of the session
(precedence: --stressx-profile, the call's profile=, the marker's, the ini ``stressx_profile``,
then "light"). Profiles: light, medium, heavy, extreme (below), stressx's own named profiles
(``stressx list-profiles``), and user profiles from the YAML file named by the ini option
``stressx_profiles`` (NAME: {model, pattern, pattern parameters, run options, criteria,
thresholds}); a user profile of a built-in's name replaces it.

Results: one session directory (``--stressx-results DIR``, default
``stressx-results/pytest-YYYYmmdd-HHMMSS`` under the rootdir), one results directory per load
run in it (named after the test), ``benchmarks/`` and ``session.json``; a summary table at the
end of the session. Nothing is created, started or printed by a session that uses none of this.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

#: The PyPI suite's profiles, as closed-model runs ("concurrent clients"), with its success
#: criteria (error rate < 1%, p95 < 2 s, p99 < 5 s, no 5xx: stressx's `ci` criteria, which
#: also fail a run whose client could not keep up).
PROFILES = {
    "light": dict(description="Light load: 3 clients, steady, no bursts (5 min)",
                  model="closed", pattern="steady", rps=3, duration="5m", criteria="ci"),
    "medium": dict(description="Medium load: 10 clients, bursts to 20 for 10 s every 60 s (5 min)",
                   model="closed", pattern="burst", baseline_rps=10, burst_rps=20,
                   burst_duration="10s", burst_interval="60s", duration="5m", criteria="ci"),
    "heavy": dict(description="Heavy load: 20 clients, 5x bursts (100) for 10 s every 30 s (10 min)",
                  model="closed", pattern="burst", baseline_rps=20, burst_rps=100,
                  burst_duration="10s", burst_interval="30s", duration="10m", criteria="ci"),
    "extreme": dict(description="Extreme, the incident replay: 3 clients with sharp bursts to 75 "
                                "(25x) for 10 s every 60 s (24 min)",
                    model="closed", pattern="burst", baseline_rps=3, burst_rps=75,
                    burst_duration="10s", burst_interval="60s", duration="24m", criteria="ci"),
}
DEFAULT_PROFILE = "light"
_NOT_RUN_OPTIONS = ("description", "criteria", "thresholds", "profile", "model", "pattern", "url")


def pytest_addoption(parser):
    group = parser.getgroup("stressx", "stressx load tests and benchmarks")
    group.addoption("--stressx-profile", metavar="NAME", default=None,
                    help="The load profile of every stressx_load run: light, medium, heavy, "
                         "extreme, a stressx profile or a user profile (overrides markers).")
    group.addoption("--stressx-results", metavar="DIR", default=None,
                    help="The session's results directory (default "
                         "stressx-results/pytest-YYYYmmdd-HHMMSS under the rootdir).")
    parser.addini("stressx_profile", "Default stressx load profile (light when unset).",
                  default=None)
    parser.addini("stressx_profiles", "YAML file of user load profiles (relative to the rootdir).",
                  default=None)
    parser.addini("stressx_bench_min_time", "Default min_time (seconds) of stressx_bench.",
                  default=None)


class _Session:
    """What the plugin gathers over a session (created lazily: nothing until used)."""

    def __init__(self, config):
        self.config = config
        self._root: Path | None = None
        self._user_profiles: dict | None = None
        self.loads: list[dict] = []
        self.benches: list = []
        self.dir_names: set[str] = set()

    @property
    def root(self) -> Path:
        if self._root is None:
            given = self.config.getoption("--stressx-results")
            if given:
                root = Path(given)
            else:
                root = Path(self.config.rootpath) / "stressx-results" / time.strftime("pytest-%Y%m%d-%H%M%S")
            worker = getattr(self.config, "workerinput", {}).get("workerid")
            if worker:
                root = root / worker
            root.mkdir(parents=True, exist_ok=True)
            self._root = root
        return self._root

    def run_dir(self, nodeid: str) -> Path:
        base = re.sub(r"[^A-Za-z0-9_.\-]+", "_", nodeid.replace("::", "__")).strip("_")[:150] or "test"
        name, n = base, 1
        while name in self.dir_names:
            n += 1
            name = f"{base}-{n}"
        self.dir_names.add(name)
        return self.root / name

    def profiles(self) -> dict:
        if self._user_profiles is None:
            self._user_profiles = {}
            path = self.config.getini("stressx_profiles")
            if path:
                import yaml
                p = Path(path)
                if not p.is_absolute():
                    p = Path(self.config.rootpath) / p
                try:
                    data = yaml.safe_load(p.read_text()) or {}
                except (OSError, yaml.YAMLError) as exc:
                    raise pytest.UsageError(f"stressx: error: ini stressx_profiles: cannot read {p}: {exc}")
                if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                    raise pytest.UsageError(f"stressx: error: ini stressx_profiles: {p} must map "
                                            f"profile names to mappings of settings")
                self._user_profiles = {str(k): dict(v) for k, v in data.items()}
        return self._user_profiles

    def profile(self, name: str) -> dict:
        user = self.profiles()
        if name in user:
            return dict(user[name])
        if name in PROFILES:
            return dict(PROFILES[name])
        from .load.profiles import PROFILES as STRESSX_PROFILES
        if name in STRESSX_PROFILES:
            return dict(STRESSX_PROFILES[name])
        known = sorted(set(PROFILES) | set(STRESSX_PROFILES) | set(user))
        raise pytest.UsageError(f"stressx: error: --stressx-profile: unknown profile {name!r}; "
                                f"profiles are {', '.join(known)}")


_KEY = pytest.StashKey[_Session]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "stress(profile=None, thresholds=(), criteria=None, **options): the stressx "
                   "load profile, extra thresholds and run options of a test's stressx_load runs")
    config.stash[_KEY] = _Session(config)
    name = config.getoption("--stressx-profile")
    if name:
        config.stash[_KEY].profile(name)           # an unknown name stops the session at once


def run_options(profile: dict, overrides: dict) -> dict:
    """stressx.run keyword arguments from a profile and the marker's and call's options: the
    profile's pattern becomes the rate shape (open model) or the users shape (closed model),
    lasting `duration` when that is overridden; an explicit rate or connections replaces it."""
    from .load import shapes
    from .load.plan import PATTERN_PARAMS
    settings = {**profile, **overrides}
    pattern = settings.get("pattern")
    model = settings.get("model", "open")
    params = {k: settings[k] for k in PATTERN_PARAMS if k in settings and k != "duration"}
    out = {k: v for k, v in settings.items()
           if k not in _NOT_RUN_OPTIONS and (k not in PATTERN_PARAMS or k == "duration")}
    if pattern and not any(k in overrides for k in ("rate", "connections", "shape", "users")):
        params["duration"] = out.pop("duration", None)
        shape = shapes.build(str(pattern), params)
        out["users" if model == "closed" else "shape"] = shape
    return out


def _thresholds(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


@pytest.fixture(scope="session")
def stressx_target():
    """The embedded target's base URL (http://127.0.0.1:PORT/), started once per session."""
    from ._testing.target import TargetThread
    with TargetThread() as t:
        yield t.url


_UNSET = object()


@pytest.fixture
def stressx_load(request):
    """stressx_load(url=None, *thresholds, profile=None, criteria=..., **options) -> Result."""
    session = request.config.stash[_KEY]
    marker = request.node.get_closest_marker("stress")
    mk = dict(marker.kwargs) if marker else {}

    def load(url=None, *thresholds, profile=None, criteria=_UNSET, **options):
        __tracebackhide__ = True
        from . import api
        name = (request.config.getoption("--stressx-profile") or profile or mk.get("profile")
                or request.config.getini("stressx_profile") or DEFAULT_PROFILE)
        prof = session.profile(str(name))
        marker_opts = {k: v for k, v in mk.items() if k not in ("profile", "thresholds", "criteria", "url")}
        target = url or mk.get("url") or request.getfixturevalue("stressx_target")
        kw = run_options(prof, {**marker_opts, **options})
        crit = criteria if criteria is not _UNSET else mk.get("criteria", prof.get("criteria"))
        exprs = (_thresholds(prof.get("thresholds")) + _thresholds(mk.get("thresholds"))
                 + [str(t) for t in thresholds])
        out = session.run_dir(request.node.nodeid)
        result = api.run(target, out=out, **kw)
        checks = result.check(*exprs, criteria=crit) if (exprs or crit) else []
        row = {"test": request.node.nodeid, "profile": str(name), "out": str(out),
               "requests": result.summary.get("requests"), "rps": result.summary.get("rps"),
               "p99_ms": (result.summary.get("all_latency_ms") or result.summary.get("latency_ms") or {}).get("p99"),
               "error_count": result.summary.get("error_count"),
               "thresholds": len(checks), "failed": [c.message for c in checks if not c.passed]}
        session.loads.append(row)
        failed = list(row["failed"])
        cut = result.summary.get("interrupted") or result.summary.get("aborted")
        if cut:
            failed.append(f"run {'interrupted' if result.summary.get('interrupted') else 'aborted'}: {cut}")
        if failed:
            raise AssertionError(f"stressx thresholds failed (profile {name}, results {out}):\n  "
                                 + "\n  ".join(failed))
        return result

    return load


@pytest.fixture
def stressx_bench(request):
    """stressx_bench(fn, *args, **kwargs) -> BenchmarkResult (stressx.benchmark's arguments);
    the result joins the session table and the session's benchmarks/ results directory."""
    session = request.config.stash[_KEY]
    default_min = request.config.getini("stressx_bench_min_time")
    calls = []

    def bench(fn, *args, **kwargs):
        from .microbench import benchmark
        if default_min and "min_time" not in kwargs and "repeat" not in kwargs:
            kwargs["min_time"] = float(default_min)
        result = benchmark(fn, *args, **kwargs)
        calls.append(result)
        fn_name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "fn")
        result.name = f"{request.node.name}/{fn_name}" + (f"-{len(calls)}" if len(calls) > 1 else "")
        session.benches.append(result)
        return result

    return bench


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(_KEY, None)
    if state is None or not (state.loads or state.benches):
        return
    data = {"load_runs": state.loads, "benchmarks": [b.to_dict() for b in state.benches]}
    if state.benches:
        from .microbench.files import write_results
        write_results(state.root / "benchmarks", state.benches, {"source": "pytest"})
        data["benchmarks_dir"] = str(state.root / "benchmarks")
    (state.root / "session.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(_KEY, None)
    if state is None or not (state.loads or state.benches):
        return
    tr = terminalreporter
    tr.write_sep("=", "stressx")
    if state.loads:
        width = max(len(r["test"]) for r in state.loads)
        tr.write_line(f"{'load test':<{width}}  {'profile':<10} {'requests':>9} {'req/s':>9} "
                      f"{'p99 ms':>9} {'errors':>7}  verdict")
        for r in state.loads:
            p99 = f"{r['p99_ms']:.3f}" if r["p99_ms"] is not None else "-"
            verdict = (f"FAILED {len(r['failed'])}/{r['thresholds']}" if r["failed"]
                       else f"passed {r['thresholds']}" if r["thresholds"] else "-")
            tr.write_line(f"{r['test']:<{width}}  {r['profile']:<10} {r['requests'] or 0:>9} "
                          f"{r['rps'] or 0:>9.1f} {p99:>9} {r['error_count'] or 0:>7}  {verdict}")
    if state.benches:
        from .microbench.command import format_row, header
        width = max(len(b.name) for b in state.benches)
        memory = any(b.memory for b in state.benches)
        leak = any(b.leak_check for b in state.benches)
        tr.write_line(header(width, memory, leak))
        for b in state.benches:
            tr.write_line(format_row(b, width, memory, leak))
    tr.write_line(f"stressx results: {state.root}")
