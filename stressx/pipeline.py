"""One pipeline for the command line and the library: options -> validated runs -> the coordinator
-> judged, written, reported -> a Result and the exit code.

Every load command of `stressx` and every function of `stressx.api` goes through here, so the
two cannot drift apart: the CLI only parses flags into settings, calls these, prints and exits.

    Checks      thresholds, criteria, a sliding window, reports, a baseline: validated before
                any request, judged after the run (thresholds.json, comparison.json, reports)
    HostLoad    --burn specs and --safety limits: the host companions of a run
    run_one()   one validated run: its companions, the coordinator, its checks -> Result
    Plan        the validated runs of a command (a config file's `tests:`), with their checks
                and host load; make_plan() builds it from settings, execute() runs it
    capacity / scaling / adaptive: the exploring commands over the same settings
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import report as _report
from .engine.coordinator import Coordinator, check_resources
from .errors import EXIT_ABORTED, EXIT_OK, EXIT_SIGINT, EXIT_THRESHOLDS, ConfigError, RunInterrupted
from .judge import compare as _compare, thresholds as _thresholds
from .load import plan as _plan
from .load.config import RunConfig
from .result import INTERVALS_FILE, Result, verdict_exit_code
from .results.files import read_intervals
from .units import parse_duration

# the options of run_options (the CLI's names); the library's keyword for `threshold` is
# `thresholds`
CHECK_OPTIONS = ("threshold", "criteria", "threshold_window", "abort_on_fail", "report",
                 "baseline", "regression_threshold")
HOST_OPTIONS = ("burn", "safety")
CONTROL_OPTIONS = ("control", "control_token")   # the control API: a run's, not a RunConfig's
THRESHOLD_KEYS = {"expressions", "window", "abort_on_fail", "criteria"}


# -- what is judged ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What the checks made of a run: verdicts as in thresholds.json, comparison.json's content
    (None without a baseline), the reports written, and the exit code they give."""
    thresholds: list
    comparison: dict | None
    reports: dict
    exit_code: int


@dataclass(frozen=True)
class Checks:
    """Thresholds (end of run, and over a sliding window while it runs), reports and a baseline
    comparison, validated. Checks.resolve() takes the CLI's option values; every bad one is a
    ConfigError naming it, before any request."""
    thresholds: tuple = ()                # judge.thresholds.Threshold
    criteria: str | None = None
    window_s: float | None = None         # judge over a sliding window too (None: end only)
    abort_on_fail: bool = False
    formats: tuple = ()                   # reports: json, md, html, junit
    baseline: Path | None = None          # the baseline's results directory
    baseline_name: str | None = None      # as given: a saved baseline's name, or a directory
    regression_pct: float = _compare.DEFAULT_REGRESSION_PCT

    @classmethod
    def resolve(cls, threshold=(), criteria=None, threshold_window=None, abort_on_fail=False,
                report=None, baseline=None, regression_threshold=None,
                origins: dict | None = None) -> "Checks":
        """Validate; ConfigError naming the first bad option as `origins` spells it (option
        name -> e.g. 'load.yaml: thresholds'; the flag by default)."""
        def where(name: str) -> str:
            return (origins or {}).get(name) or "--" + name.replace("_", "-")

        if isinstance(threshold, str):
            threshold = [threshold]
        ths = _thresholds.resolve(threshold or (), criteria, option=where("threshold"),
                                  criteria_option=where("criteria"))
        window = None
        if threshold_window is not None or abort_on_fail:
            if not ths:
                raise ConfigError(where("threshold_window" if threshold_window else "abort_on_fail"),
                                  "needs thresholds to judge: add --threshold EXPR or --criteria NAME")
            window = (parse_duration(threshold_window, where("threshold_window"))
                      if threshold_window is not None else _thresholds.DEFAULT_WINDOW_S)
            if window < 1:
                raise ConfigError(where("threshold_window"), f"the run is measured in 1 s intervals: "
                                                             f"give 1s or more, got {threshold_window!r}")
        return cls(
            thresholds=tuple(ths), criteria=criteria, window_s=window,
            abort_on_fail=bool(abort_on_fail),
            formats=tuple(_report.parse_formats(report, where("report"))) if report else (),
            baseline=_compare.resolve_baseline(baseline, where("baseline")) if baseline else None,
            baseline_name=str(baseline) if baseline else None,
            regression_pct=(_compare.parse_percent(regression_threshold, where("regression_threshold"))
                            if regression_threshold is not None else _compare.DEFAULT_REGRESSION_PCT))

    def companions(self) -> list:
        """What judges during the run: the sliding-window judge, if a window was asked."""
        if self.window_s is None:
            return []
        return [_thresholds.WindowThresholds(list(self.thresholds), self.window_s, self.abort_on_fail)]

    def judge(self, summary: dict, out_dir) -> Verdict:
        """After a run: judge the thresholds (end of run, plus the sliding window's verdicts),
        write thresholds.json (also when empty), compare with the baseline (comparison.json),
        write the reports; the exit code as result.verdict_exit_code() gives it."""
        out_dir = Path(out_dir)
        results = _thresholds.evaluate(list(self.thresholds), summary)
        results += _thresholds.window_results(summary.get(_thresholds.WindowThresholds.name))
        _thresholds.save(out_dir, results, criteria_name=self.criteria)
        comparison = None
        if self.baseline is not None:
            comparison = _compare.compare_dirs(self.baseline, out_dir, self.regression_pct)
            if not Path(self.baseline_name).is_dir():
                comparison["baseline"]["name"] = self.baseline_name
            _compare.save_comparison(out_dir, comparison)
        reports = _report.build(out_dir, list(self.formats)) if self.formats else {}
        verdicts = [t.to_json() for t in results]
        return Verdict(verdicts, comparison, reports,
                       verdict_exit_code(summary, verdicts, comparison))


@dataclass(frozen=True)
class HostLoad:
    """Host load beside the requests: burner specs ('cpu=50%') and safety limits
    ('mem>90%:stop'), as their texts."""
    burn: tuple = ()
    safety: tuple = ()

    def __post_init__(self):
        for name in ("burn", "safety"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value or ()))

    def companions(self, config: RunConfig | None = None, echo=None) -> list:
        """Fresh companions for one run: [burners, the host sampler, the safety monitor]
        (the sampler always). Without a config it only validates: ConfigError naming the bad
        token, nothing started."""
        from .hostload.burners.session import companions_for
        return companions_for(self.burn, self.safety, config=config, echo=echo)

    def to_json(self) -> dict:
        """What a dry run shows of it."""
        return {key: list(getattr(self, key)) for key in HOST_OPTIONS if getattr(self, key)}


# -- one run -----------------------------------------------------------------------------------
def dashboard_wanted(dashboard, progress: bool = True, stream=None) -> bool:
    """Whether a run draws the live terminal dashboard: `dashboard` True or None (auto), the
    run shows progress, and `stream` (stdout) is a terminal. False: one progress line a
    second, as on output that is not a terminal."""
    import sys
    stream = stream or sys.stdout
    if dashboard is False or not progress:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _dashboard(config: RunConfig, comps: list, checks: Checks | None):
    from .hostload.hostmetrics import HostSampler
    from .report.dashboard import Dashboard
    sampler = next((c for c in comps if isinstance(c, HostSampler)), None)
    return Dashboard(checks.thresholds if checks is not None else (), sampler)


def _control_server(control, comps: list, echo):
    """The control API, listening already (a port in use is a ConfigError before anything is
    sent), beside the run's burners if it has any."""
    from .live.server import LiveServer
    server = LiveServer(control, burners=next((c for c in comps if c.name == "burners"), None),
                        echo=echo)
    server.bind()
    return server


def run_one(config: RunConfig, out_dir, *, checks: Checks | None = None,
            host: HostLoad | None = None, companions=(), echo=None, yield_cpu: bool = False,
            temporary: bool = False, dashboard: bool = False, control=None) -> Result:
    """One validated run with its companions (host load first: burners start before the
    shards and stop before the sampler; then the window judge; then `companions`; then the
    terminal dashboard when `dashboard` is true and the run shows progress; then the control
    API when `control`, a live.ControlSettings, is given: it listens before the shards start,
    so a port in use is a ConfigError and nothing is sent), judged by
    `checks` (None: not judged, no thresholds.json). `temporary`: out_dir is about to be
    removed, so the Result keeps the interval table and names no directory. Raises
    ConfigError (the run does not fit the host's limits: nothing sent), StartupError, and
    RunInterrupted for a Ctrl-C the run's own handler could not take."""
    out_dir = Path(out_dir)
    if config.cluster is not None:
        if host is not None and (host.burn or host.safety):
            raise ConfigError("--burn" if host.burn else "--safety",
                              "host load runs on one host: it is not available with --cluster")
        # over a Ray cluster: one coordinator per host, the driver here merges them (Ray is
        # imported there, never on the single-host path)
        from .cluster.driver import run_cluster
        comps = (checks.companions() if checks is not None else []) + list(companions)
        if dashboard and config.progress:     # fed by the merged rows: the whole cluster
            comps.append(_dashboard(config, comps, checks))
        if control is not None:               # in this process, on the driver's RunControl:
            comps.append(_control_server(control, comps, echo))   # it steers every host
        try:
            summary = run_cluster(config, out_dir, echo=echo, companions=comps)
        except KeyboardInterrupt:
            raise RunInterrupted(EXIT_SIGINT) from None
    else:
        comps = ((host.companions(config, echo) if host is not None else [])
                 + (checks.companions() if checks is not None else []) + list(companions))
        if dashboard and config.progress:
            comps.append(_dashboard(config, comps, checks))
        if control is not None:
            comps.append(_control_server(control, comps, echo))
        coordinator = Coordinator(config, out_dir, echo=echo, companions=comps,
                                  yield_cpu=yield_cpu)
        try:
            summary = coordinator.run()
        except RunInterrupted:
            raise
        except KeyboardInterrupt:
            raise RunInterrupted(coordinator.exit_code() or EXIT_SIGINT) from None
    verdict = checks.judge(summary, out_dir) if checks is not None else None
    table = None
    if temporary:
        table = read_intervals(out_dir / INTERVALS_FILE)
    judged = {} if verdict is None else dict(
        thresholds=verdict.thresholds, comparison=verdict.comparison, reports=verdict.reports,
        exit_code=verdict.exit_code)
    return Result(summary, None if temporary else out_dir, intervals_table=table, **judged)


def _check_resources(config: RunConfig) -> None:
    """The host's limits before any run; a cluster run's hosts check their own (a failing
    host is a ConfigError naming it, before the common start)."""
    if config.cluster is None:
        check_resources(config)


# -- plans: the runs of a command ---------------------------------------------------------------
@dataclass
class Plan:
    """What a load command decided before sending anything: its runs (one, or a config
    file's `tests:` in order), what judges them (None: nothing, as for `adaptive`), the host
    load beside them (None: none, not even the sampler), extra companions per run, the results
    directory the settings name (None: the caller's default), and what a dry run shows."""
    tests: list                                   # load.plan.Test: name, config
    checks: Checks | None = None
    host: HostLoad | None = None
    companions: Callable[[RunConfig], list] | None = None
    out: Path | None = None
    extra: dict = field(default_factory=dict)
    control: object = None                        # live.ControlSettings: the control API

    def to_json(self) -> list[dict]:
        """The dry run's output: the resolved runs, with the burners, limits or ramp."""
        return [{"name": t.name, **t.config.to_json(), **self.extra} for t in self.tests]

    def out_dir(self, base: Path, test) -> Path:
        return base if len(self.tests) == 1 else base / test.name


def file_checks(settings: dict, origins: dict, checks: dict) -> dict:
    """Thresholds, criteria, reports and baseline from a config file, under the flags'.
    `thresholds:` is a list of expressions, or a mapping {expressions: [...], window: 30s,
    abort_on_fail: true, criteria: ci} for a sliding-window judge during the run. Takes
    those keys out of `settings`; returns the CHECK_OPTIONS values (and their `origins`)."""
    checks = dict(checks)
    file_origins = dict(checks.get("origins") or {})
    spec = settings.get("thresholds")
    if isinstance(spec, dict):
        where = origins.get("thresholds", "thresholds")
        for key in spec:
            if key not in THRESHOLD_KEYS:
                raise ConfigError(f"{where}.{key}", f"unknown key; thresholds take {', '.join(sorted(THRESHOLD_KEYS))}")
        for key, name in (("window", "threshold_window"), ("abort_on_fail", "abort_on_fail"),
                          ("criteria", "criteria")):
            if spec.get(key) is not None and not checks.get(name):
                checks[name] = spec[key]
                file_origins[name] = f"{where}.{key}"
        settings["thresholds"] = spec.get("expressions") or None
        origins["thresholds"] = f"{where}.expressions"
    for key, name in (("thresholds", "threshold"), ("criteria", "criteria"),
                      ("report", "report"), ("baseline", "baseline")):
        value = settings.pop(key, None)
        if value is None or checks.get(name):
            continue
        if name == "threshold":
            value = list(value) if isinstance(value, (list, tuple)) else [value]
        elif name == "report" and isinstance(value, (list, tuple)):
            value = ",".join(value)
        checks[name] = value
        file_origins[name] = origins.get(key, key)
    if file_origins:
        checks["origins"] = file_origins
    return checks


def make_plan(settings: dict, origins: dict, *, checks: dict | None = None,
              host: dict | None = None, progress: bool = True, dry_run: bool = False,
              companions: Callable[[RunConfig], list] | None = None,
              extra: dict | None = None) -> Plan:
    """Validate everything a load command was given, in the order its errors are reported:
    the checks (flags over the config file's), the host load (likewise), every run, and (not
    for a dry run) that every run fits the host's limits. `checks` / `host` None: the command
    has none (not read from the file either); a dict: the CHECK_OPTIONS / HOST_OPTIONS values
    given (possibly none). ConfigError on the first bad setting."""
    settings = dict(settings)
    resolved_checks = resolved_host = None
    control = resolve_control(settings, origins)
    if checks is not None:
        checks = file_checks(settings, origins, checks)
    if host is not None:
        host = {key: tuple(host.get(key) or ()) for key in HOST_OPTIONS}
        for key in HOST_OPTIONS:          # host load from a config file, under the flags'
            value = settings.pop(key, None)
            if value is not None and not host[key]:
                host[key] = (value,) if isinstance(value, str) else tuple(value)
    if checks is not None:
        resolved_checks = Checks.resolve(**checks)
    if host is not None:
        resolved_host = HostLoad(**host)
        resolved_host.companions()        # bad --burn / --safety: exit 2, nothing started
    tests = _plan.plan(settings, origins, progress=progress)
    if not dry_run:
        for t in tests:
            _check_resources(t.config)
    shown = dict(resolved_host.to_json() if resolved_host else {}, **(extra or {}))
    if control is not None:
        shown["control"] = control.to_json()          # never the token
    return Plan(tests, resolved_checks, resolved_host, companions,
                Path(settings["out"]) if settings.get("out") else None, shown, control)


def resolve_control(settings: dict, origins: dict):
    """--control / --control-token (flags, STRESSX_CONTROL*, config keys `control` and
    `control_token`, the library's keywords), taken out of `settings` and validated:
    a live.ControlSettings, or None. ConfigError naming where the bad one came from."""
    from .live import resolve_control as _resolve
    given = {key: settings.pop(key, None) for key in CONTROL_OPTIONS}
    return _resolve(given["control"], given["control_token"],
                    option=origins.get("control", "--control"),
                    token_option=origins.get("control_token", "--control-token"))


@dataclass
class SequenceResult:
    """The runs of a plan, in order, as (name, Result); the exit code of the whole: an
    interrupted run's (the rest did not run), else the worst of aborted (4), failed (3), ok."""
    runs: list

    @property
    def results(self) -> list[Result]:
        return [r for _, r in self.runs]

    @property
    def exit_code(self) -> int:
        worst = EXIT_OK
        for _, r in self.runs:
            if r.exit_code >= 128:
                return r.exit_code
            worst = max(worst, r.exit_code,
                        key=lambda c: {EXIT_OK: 0, EXIT_THRESHOLDS: 1, EXIT_ABORTED: 2}.get(c, 3))
        return worst

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK

    def __getitem__(self, name_or_index):
        if isinstance(name_or_index, str):
            return dict(self.runs)[name_or_index]
        return self.runs[name_or_index][1]

    def __len__(self) -> int:
        return len(self.runs)


def execute(plan: Plan, out: Path, *, echo=None, yield_cpu: bool = False,
            on_result: Callable | None = None, temporary: bool = False,
            dashboard: bool = False) -> SequenceResult:
    """Run a plan's runs in order into `out` (each in its own subdirectory when there are
    several), judging each; `on_result(test, result)` after each; `dashboard`: each run draws
    the terminal dashboard (see run_one). An interrupted run ends the plan. Raises what
    run_one raises (the runs before it are done and written)."""
    echo = echo or (lambda line: None)
    done = SequenceResult([])
    for t in plan.tests:
        if len(plan.tests) > 1:
            echo(f"stressx: test {t.name}: {t.config.shape.describe() if t.config.shape else t.config.model}")
        result = run_one(t.config, plan.out_dir(out, t), checks=plan.checks, host=plan.host,
                         companions=plan.companions(t.config) if plan.companions else (),
                         echo=echo, yield_cpu=yield_cpu, temporary=temporary, dashboard=dashboard,
                         control=plan.control)
        done.runs.append((t.name, result))
        if on_result is not None:
            on_result(t, result)
        if result.exit_code >= 128:       # interrupted: the rest of the plan does not run
            break
    return done


# -- the exploring commands ---------------------------------------------------------------------
def steady_configs(settings: dict, origins: dict, duration, progress: bool = True):
    """config(rate) -> the RunConfig of a steady run at `rate` for `duration` with the other
    settings (capacity probes, scaling levels); the settings are validated once now."""
    for key in CONTROL_OPTIONS:
        if settings.get(key) is not None:
            raise ConfigError(origins.get(key, "--" + key.replace("_", "-")),
                              "steers one run: give it to run, a pattern command, phases or "
                              "adaptive, not to a command that runs many probes")

    def config(rate: float) -> RunConfig:
        s = dict(settings, pattern={"type": "steady", "rps": rate, "duration": duration})
        s.pop("rate", None)
        return _plan.plan(s, origins, progress=progress)[0].config
    config(1)
    return config


@dataclass
class Capacity:
    """A validated capacity search: its plan (what a dry run prints) and its probes' runs."""
    plan: dict
    config: Callable[[float], RunConfig]
    args: dict

    def dry_run(self) -> dict:
        return dict(self.plan, run=self.config(self.plan["probes_while_passing"][0]["rate"]).to_json())


def capacity_plan(settings: dict, origins: dict, out: Path, *, slo, max_error_rate="1%",
                  start_rps="10", max_rps="100000", probe_duration="10s", precision=0.05,
                  max_probes=20, progress: bool = True) -> Capacity:
    """Validate a capacity search (the settings, then the search's own options)."""
    from .explore.capacity import plan
    config = steady_configs(settings, origins, probe_duration, progress)
    args = dict(slo=list(slo), max_error_rate=max_error_rate, start=start_rps, ceiling=max_rps,
                precision=precision, max_probes=max_probes, out_dir=Path(out))
    return Capacity(plan(**args), config, args)


def run_capacity(search: Capacity, *, echo=None, yield_cpu: bool = False,
                 on_result: Callable | None = None, dashboard: bool = False):
    """Double the rate until a probe fails, then bisect; explore.capacity.CapacityResult
    (also in capacity.json). Every probe's rate fits the host's limits before the first."""
    from .explore.capacity import search as _search
    _check_resources(search.config(search.plan["probes_while_passing"][-1]["rate"]))

    def probe(rate: float, out_dir: Path) -> dict:
        result = run_one(search.config(rate), out_dir, echo=echo, yield_cpu=yield_cpu,
                         dashboard=dashboard)
        if on_result is not None:
            on_result(rate, result)
        return result.summary
    return _search(probe, **search.args, echo=echo or (lambda line: None))


@dataclass
class Scaling:
    """A validated scaling test: its levels, the rate per instance, the command."""
    levels: list
    per_instance: float
    scale_cmd: str | None
    config: Callable[[float], RunConfig]
    out: Path

    def dry_run(self) -> dict:
        from .explore.scaling import plan
        return dict(plan(self.levels, self.per_instance, self.out, self.scale_cmd),
                    run=self.config(self.levels[0] * self.per_instance).to_json())


def scaling_plan(settings: dict, origins: dict, out: Path, *, instances, rps_per_instance,
                 duration="60s", scale_cmd: str | None = None, progress: bool = True) -> Scaling:
    from .explore.scaling import parse_levels
    from .units import parse_rate
    levels = parse_levels(instances)
    per = parse_rate(rps_per_instance, "--rps-per-instance")
    config = steady_configs(settings, origins, duration, progress)
    return Scaling(levels, per, scale_cmd, config, Path(out))


def run_scaling(test: Scaling, *, echo=None, yield_cpu: bool = False,
                on_result: Callable | None = None, dashboard: bool = False):
    """One steady run per level (after its scale command); explore.scaling.ScalingResult
    (also in scaling.json). Every level fits the host's limits before the first command."""
    from .explore.scaling import run_scaling as _run_scaling
    for n in test.levels:
        _check_resources(test.config(n * test.per_instance))

    def level(rate: float, out_dir: Path) -> dict:
        result = run_one(test.config(rate), out_dir, echo=echo, yield_cpu=yield_cpu,
                         dashboard=dashboard)
        if on_result is not None:
            on_result(rate, result)
        return result.summary
    return _run_scaling(test.levels, test.per_instance, level, test.out, test.scale_cmd,
                        echo=echo or (lambda line: None))


def adaptive_plan(settings: dict, origins: dict, *, start_rps="10", step_rps="10",
                  max_rps="10000", step_every="10s", slo=(), max_error_rate="1%", backoff=0.5,
                  cooldown="20s", progress: bool = True, dry_run: bool = False) -> Plan:
    """A ramp that raises the rate while the limits hold and backs off when they break: the
    settings' run as a steady run at `start_rps` for their duration, steered by an
    explore.adaptive.AdaptiveRamp (its decisions in the summary's `adaptive`). Not judged by
    thresholds and without host load, as `stressx adaptive`."""
    from .explore.adaptive import AdaptiveRamp
    from .explore.capacity import parse_error_rate
    from .units import parse_rate
    settings = dict(settings)
    start = parse_rate(start_rps, "--start-rps")
    ramp = AdaptiveRamp(start, parse_rate(step_rps, "--step-rps"), parse_rate(max_rps, "--max-rps"),
                        parse_duration(step_every, "--step-every"),
                        [_thresholds.parse_threshold(s, "--slo") for s in slo],
                        parse_error_rate(max_error_rate), float(backoff),
                        parse_duration(cooldown, "--cooldown"))
    settings["pattern"] = {"type": "steady", "rps": start, "duration": settings.pop("duration", None)}
    settings.pop("rate", None)
    extra = {"adaptive": {"start_rps": ramp.rate, "step_rps": ramp.step, "max_rps": ramp.max_rate,
                          "step_every_s": ramp.step_every, "slo": list(slo),
                          "max_error_rate": ramp.max_error_rate, "backoff": ramp.backoff,
                          "cooldown_s": ramp.cooldown}}
    return make_plan(settings, origins, progress=progress, dry_run=dry_run,
                     companions=lambda config: [ramp], extra=extra)


def library_settings(url, options: dict) -> tuple[dict, dict]:
    """The library's keyword options as the settings a command's flags give (the names of
    load.plan.RUN_KEYS; `scenarios` for --scenario). Errors name the flags."""
    s = {k: v for k, v in options.items() if v is not None}
    if "scenarios" in s:
        s["scenario"] = s.pop("scenarios")
    for key in s:
        if key not in _plan.RUN_KEYS and key not in ("pattern", "profile", "tests", "out") \
                and key not in CONTROL_OPTIONS:
            raise TypeError(f"unexpected keyword argument {key!r}")
    if url is not None:
        s["target"] = url
    return s, {}

