"""The library face of stressx: everything the `stressx` command does, as functions that return
typed results instead of printing and exiting.

    run(url, ...)           one run, judged: stressx run URL ...           -> Result
    run_async(url, ...)     the same without blocking an event loop         -> Result
    run_config(path, ...)   a config file's run or sequence: run --config   -> SequenceResult
    capacity(url, ...)      stressx capacity                                -> CapacityResult
    scaling(url, ...)       stressx scaling                                 -> ScalingResult
    adaptive(url, ...)      stressx adaptive                                -> Result

Each goes through stressx.pipeline exactly as its command does, so the same options write the
same files and give the same exit code (`result.exit_code`). Bad options raise ConfigError (a
ValueError) naming the option, before anything is sent.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import pipeline as _pipeline
from .errors import ConfigError
from .load import config as _config, plan as _plan
from .result import Result

__all__ = ["run", "run_async", "run_config", "capacity", "scaling", "adaptive", "Result"]


@contextmanager
def _results_dir(out):
    """`out`, or a temporary directory removed afterwards (out=None: the caller keeps no files)."""
    if out is not None:
        yield Path(out)
        return
    tmp = Path(tempfile.mkdtemp(prefix="stressx-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _checks(thresholds, criteria, threshold_window, abort_on_fail, report, baseline,
            regression_threshold) -> dict:
    """The library's keywords as the CLI's run options (--threshold ... --regression-threshold)."""
    if isinstance(thresholds, str):
        thresholds = [thresholds]
    given = dict(threshold=list(thresholds or ()), criteria=criteria,
                 threshold_window=threshold_window, abort_on_fail=abort_on_fail, report=report,
                 baseline=baseline, regression_threshold=regression_threshold)
    return {k: v for k, v in given.items() if v not in (None, [], (), False)}


def run(url: str, *, out: str | Path | None = None, echo=None, companions=(), burn=(),
        safety=(), thresholds=(), criteria: str | None = None, threshold_window=None,
        abort_on_fail: bool = False, report=None, baseline=None, regression_threshold=None,
        dashboard: bool | None = None, control=None, control_token=None,
        **options) -> Result:
    """Run one load test, judge it, and return its Result: `stressx run URL` with the same
    options writes the same files and exits with `result.exit_code`.

    Load options are the CLI's: rate, connections, max_connections, duration, requests,
    timer_slack,
    workers, timeout, method, headers, body, insecure, ca_file, progress, shape / users
    (shapes.Shape), workload, scenarios. Checks: `thresholds` (['p99<200ms', 'error_rate<1%']),
    `criteria` ('ci'), `threshold_window` ('30s') and `abort_on_fail`, `report` (['md',
    'html'] or 'md,html'), `baseline` (a saved baseline's name or a results directory) and
    `regression_threshold` ('15%'): thresholds.json is written, and comparison.json and the
    reports when asked. Host load: `burn` and `safety` take the --burn / --safety texts
    ('cpu=50%', 'mem>90%:stop'); every run samples host metrics. `companions` adds coordinator
    companions (they get a RunControl as `companion.control`); two of one name are refused.
    `out` None: the files go to a temporary directory, removed (the Result keeps the summary
    and the interval table); reports need an `out`. With `progress=True` the run draws the
    live terminal dashboard when stdout is a terminal (`dashboard=False`: one progress line a
    second through `echo` instead, as `--no-dashboard`).
    `control` ('127.0.0.1:8089', or a port) serves the control API and the live page while
    it runs, `control_token` its bearer token.

    Raises ConfigError (a ValueError) for a bad option, before anything is sent."""
    options.setdefault("progress", False)
    from .live import resolve_control
    control = resolve_control(control, control_token, option="control",
                              token_option="control_token")
    checks = _pipeline.Checks.resolve(**_checks(thresholds, criteria, threshold_window,
                                                abort_on_fail, report, baseline,
                                                regression_threshold))
    if checks.formats and out is None:
        raise ConfigError("report", "reports are files: give out= a results directory")
    host = _pipeline.HostLoad(burn, safety)
    cfg = _config.resolve(url, **options)
    host.companions()                     # a bad spec or limit: nothing started
    with _results_dir(out) as out_dir:
        return _pipeline.run_one(cfg, out_dir, checks=checks, host=host, companions=companions,
                                 echo=echo, temporary=out is None,
                                 dashboard=_pipeline.dashboard_wanted(dashboard, cfg.progress),
                                 control=control)


async def run_async(url: str, **options) -> Result:
    """run() for async code: the coordinator runs in a worker thread, the loop stays free."""
    return await asyncio.to_thread(run, url, **options)


def run_config(config: str | Path | None = None, *, out: str | Path | None = None, echo=None,
               burn=(), safety=(), thresholds=(), criteria: str | None = None,
               threshold_window=None, abort_on_fail: bool = False, report=None, baseline=None,
               regression_threshold=None, progress: bool = False,
               dashboard: bool | None = None, **settings) -> "_pipeline.SequenceResult":
    """`stressx run --config FILE`: the file's run, or its `tests:` in order (each in its own
    subdirectory of the results directory), with the file's thresholds, reports, baseline,
    burners and safety limits; keywords override the file as flags do (`rate`, `duration`,
    `profile`, `pattern={'type': 'ramp', ...}`, `target` ...). Every run is validated before the
    first starts. Returns a SequenceResult: (name, Result) pairs, `.exit_code` the command's.
    The results directory is `out` (as --out), else the file's `output.dir`, else a temporary
    one (removed)."""
    layers = []
    if config is not None:
        layers.append(_plan.load_config_file(config, option="config"))
    layer = _pipeline.library_settings(None, settings)
    if out is not None:
        layer[0]["out"] = str(out)
    layers.append(layer)
    merged, origins = _plan.merge(*layers)
    in_file = merged.pop("dashboard", None)         # the file's output.dashboard
    if dashboard is None and in_file is not None:
        dashboard = bool(in_file)
    checks = _checks(thresholds, criteria, threshold_window, abort_on_fail, report, baseline,
                     regression_threshold)
    host = {k: v for k, v in (("burn", burn), ("safety", safety)) if v}
    plan = _pipeline.make_plan(merged, origins, checks=checks, host=host, progress=progress)
    if plan.checks.formats and plan.out is None:
        raise ConfigError("report", "reports are files: give out= or output.dir a results directory")
    with _results_dir(plan.out) as base:
        return _pipeline.execute(plan, base, echo=echo, temporary=plan.out is None,
                                 dashboard=_pipeline.dashboard_wanted(dashboard, progress))


def capacity(url: str | None = None, *, slo, max_error_rate="1%", start_rps="10",
             max_rps="100000", probe_duration="10s", precision: float = 0.05,
             max_probes: int = 20, out: str | Path | None = None, echo=None,
             progress: bool = False, dashboard: bool | None = None, **options):
    """`stressx capacity`: the highest rate the target sustains within the SLO (['p99<50ms'])
    and `max_error_rate`: probes (steady runs of `probe_duration`) double the rate until one
    fails, then bisect. Returns explore.capacity.CapacityResult (`.capacity` None when even the
    first probe failed; `.exit_code` the command's: 0 found, 3 none), also in capacity.json
    (with each probe's results directory) under `out`."""
    settings, origins = _pipeline.library_settings(url, options)
    with _results_dir(out) as base:
        search = _pipeline.capacity_plan(
            settings, origins, base, slo=[slo] if isinstance(slo, str) else list(slo),
            max_error_rate=max_error_rate, start_rps=start_rps, max_rps=max_rps,
            probe_duration=probe_duration, precision=precision, max_probes=max_probes,
            progress=progress)
        return _pipeline.run_capacity(search, echo=echo,
                                      dashboard=_pipeline.dashboard_wanted(dashboard, progress))


def scaling(url: str | None = None, *, instances, rps_per_instance, duration="60s",
            scale_cmd: str | None = None, out: str | Path | None = None, echo=None,
            progress: bool = False, dashboard: bool | None = None, **options):
    """`stressx scaling`: one steady run of `duration` per instance count (instances '2,4,8' or
    [2, 4, 8]) at count x `rps_per_instance`, each after `scale_cmd` ('kubectl scale ...
    --replicas={n}'). Returns explore.scaling.ScalingResult (levels with efficiency;
    `.exit_code` the command's), also in scaling.json under `out`. A scale command that fails
    raises explore.scaling.ScaleCommandFailed."""
    if not isinstance(instances, (str, int)):
        instances = ",".join(str(n) for n in instances)
    settings, origins = _pipeline.library_settings(url, options)
    with _results_dir(out) as base:
        test = _pipeline.scaling_plan(settings, origins, base, instances=instances,
                                      rps_per_instance=rps_per_instance, duration=duration,
                                      scale_cmd=scale_cmd, progress=progress)
        return _pipeline.run_scaling(test, echo=echo,
                                     dashboard=_pipeline.dashboard_wanted(dashboard, progress))


def adaptive(url: str | None = None, *, duration, start_rps="10", step_rps="10",
             max_rps="10000", step_every="10s", slo=(), max_error_rate="1%",
             backoff: float = 0.5, cooldown="20s", out: str | Path | None = None, echo=None,
             progress: bool = False, dashboard: bool | None = None, **options) -> Result:
    """`stressx adaptive`: a run that starts at `start_rps`, raises the rate by `step_rps`
    every `step_every` while the limits (`slo`, `max_error_rate`) hold and multiplies it by
    `backoff` when they break (then holds for `cooldown`). Returns its Result; `.adaptive`
    holds every decision with its reason and the highest stable rate."""
    settings, origins = _pipeline.library_settings(url, dict(options, duration=duration))
    plan = _pipeline.adaptive_plan(settings, origins, start_rps=start_rps, step_rps=step_rps,
                                   max_rps=max_rps, step_every=step_every,
                                   slo=[slo] if isinstance(slo, str) else list(slo),
                                   max_error_rate=max_error_rate, backoff=backoff,
                                   cooldown=cooldown, progress=progress)
    with _results_dir(out) as base:
        return _pipeline.execute(plan, base, echo=echo, temporary=out is None,
                                 dashboard=_pipeline.dashboard_wanted(dashboard, progress)).results[-1]
