"""The `stressx` command line: thin click commands over plan, coordinator and reports.

Every command that sends load goes the same way: its flags (or STRESSX_* environment
variables), a config file and a profile are merged into settings (plan.py), validated into one
or more runs, and each run goes to the coordinator.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource

from . import cli_burn, cli_reports
from . import plan as _plan
from . import shapes
from ._version import __version__
from .config import ConfigError
from .coordinator import (EXIT_ABORTED, EXIT_INTERNAL, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE,
                          Coordinator, StartupError)
from .report.text import format_summary

EXIT_CODES = """\b
Exit codes:
  0    run finished, thresholds passed
  1    internal error
  2    usage or configuration error
  3    thresholds failed, or a regression against --baseline
  4    run aborted (a shard lost, a safety stop)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM
"""
RATE_HELP = "requests per second: 10, 10/s or 600/m"
DURATION_HELP = "300, 300s, 5m or 1h30m"


def _err(message: str) -> None:
    click.echo(f"stressx: error: {message}", err=True)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def default_out_dir() -> Path:
    return Path("stressx-results") / time.strftime("%Y%m%d-%H%M%S")


def _option(*decls, key, **kw):
    """A click option that can also come from STRESSX_<KEY>."""
    return click.option(*decls, key, envvar=_plan.env_var(key), show_envvar=True, **kw)


def load_options(f):
    """Options of every command that sends load (all also readable from STRESSX_* vars)."""
    opts = [
        _option("--connections", "-c", key="connections", help="Closed model: connections, each "
                "sending the next request when the last completes (default 10). Open model: "
                "connections opened before the start."),
        _option("--max-connections", key="max_connections", help="Open model: cap on connections (default 1024)."),
        _option("--workers", "-w", key="workers", help="Shard processes (default: one per core)."),
        _option("--timeout", key="timeout", help="Deadline of each request, connect included (default 10s)."),
        _option("--method", "-X", key="method", help="HTTP method (default GET)."),
        _option("--header", "-H", key="headers", multiple=True, help="'Name: value' (repeatable)."),
        _option("--body", key="body", help="Request body text."),
        _option("--body-file", key="body_file", help="Request body from a file."),
        _option("--insecure", "-k", key="insecure", is_flag=True, default=None,
                help="Do not verify TLS certificates (recorded in the results)."),
        _option("--ca-file", key="ca_file", help="CA bundle to verify the target's certificate with."),
        _option("--workload", key="workload", help="A workload file (or name in ./workloads/): a weighted mix of scenarios."),
        _option("--scenario", key="scenario", help="Only these scenarios of the workload (comma-separated)."),
        _option("--config", key="config", type=click.Path(dir_okay=False), help="A YAML config file."),
        _option("--profile", key="profile", help="Start from a named profile (stressx list-profiles)."),
        _option("--out", "-o", key="out", help="Results directory (default ./stressx-results/<timestamp>)."),
        click.option("--json", "as_json", is_flag=True, default=None, help="Print the summary JSON on stdout."),
        click.option("--quiet", "-q", is_flag=True, default=None, help="No progress lines."),
        click.option("--dry-run", is_flag=True, help="Print the resolved runs and send nothing."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _cli_layer(ctx: click.Context, params: dict, pattern: str | None) -> tuple[dict, dict]:
    """Settings given on the command line or in STRESSX_* variables, with their origins."""
    settings, origins, spec = {}, {}, {}
    pattern_params = {name for name, *_ in shapes.PATTERNS[pattern][1]} if pattern else set()
    for name, value in params.items():
        source = ctx.get_parameter_source(name)
        if value is None or value == () or source in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            continue
        param = next(p for p in ctx.command.params if p.name == name)
        label = (_plan.env_var(name) if source == ParameterSource.ENVIRONMENT
                 else "URL" if name == "target" else param.opts[0])
        if name in pattern_params:
            spec[name] = value
            origins[f"pattern.{name}"] = label
        else:
            settings[name] = list(value) if isinstance(value, tuple) else value
            origins[name] = label
    if pattern:
        settings["pattern"] = dict(spec, type=pattern)
        origins["pattern"] = f"stressx {pattern}"
    return settings, origins


def settings_for(ctx: click.Context, params: dict, pattern: str | None = None):
    """Merge config file and command line; returns (settings, origins, output options)."""
    output = {k: params.pop(k) for k in ("as_json", "quiet", "dry_run")}
    cli = _cli_layer(ctx, params, pattern)
    layers = []
    if params.get("config"):
        file_settings, file_origins = _plan.load_config_file(params["config"])
        if pattern and isinstance(file_settings.get("pattern"), dict) \
                and file_settings["pattern"].get("type") == pattern:
            # the command names the file's pattern: flags override its parameters
            cli[0]["pattern"] = dict(file_settings["pattern"], **cli[0]["pattern"])
        layers.append((file_settings, file_origins))
    layers.append(cli)
    settings, origins = _plan.merge(*layers)
    settings.pop("config", None)
    for key, flag_name in (("as_json", "json"), ("quiet", "quiet")):
        if output[key] is None:
            output[key] = bool(settings.get(flag_name, False))
    return settings, origins, output


def run_command(ctx: click.Context, params: dict, pattern: str | None = None,
                extra_companions=None) -> int:
    """A load command: settings -> plan -> runs, with thresholds, reports and baselines."""
    checks = cli_reports.pop_run_options(params)
    host = cli_burn.pop_burner_options(params)
    try:
        settings, origins, output = settings_for(ctx, params, pattern)
        checks = _file_checks(settings, origins, checks)
        for key in ("burn", "safety"):       # host load from a config file, under the flags'
            value = settings.pop(key, None)
            if value is not None and not host.get(key):
                host[key] = [value] if isinstance(value, str) else list(value)
        cli_reports.companions_for(**checks)          # every bad option exits 2 before a request
        cli_burn.companions_for(**host)               # bad --burn / --safety too (starts nothing)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    echo = _echo_err if output["as_json"] else click.echo

    def companions(config):   # burners first: they start before the shards, stop before the sampler
        return (cli_burn.companions_for(**host, config=config, echo=_echo_err)
                + cli_reports.companions_for(**checks)
                + (extra_companions(config) if extra_companions else []))
    return run_plan(settings, origins, output, companions_for=companions,
                    after_run=lambda summary, out_dir: cli_reports.after_run(summary, out_dir, echo=echo, **checks))


def _file_checks(settings: dict, origins: dict, checks: dict) -> dict:
    """Thresholds, criteria, reports and baseline from a config file, under the flags'."""
    checks = dict(checks)
    file_origins = dict(checks.get("origins") or {})
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


def run_plan(settings: dict, origins: dict, output: dict, companions_for=None, after_run=None) -> int:
    """Validate every run first, then run them in order; returns the exit code."""
    try:
        tests = _plan.plan(settings, origins, progress=not output["quiet"])
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if output["dry_run"]:
        click.echo(json.dumps([{"name": t.name, **t.config.to_json()} for t in tests], indent=2, default=str))
        return EXIT_OK
    base = Path(settings["out"]) if settings.get("out") else default_out_dir()
    worst = EXIT_OK
    for t in tests:
        out_dir = base if len(tests) == 1 else base / t.name
        if len(tests) > 1:
            _echo_err(f"stressx: test {t.name}: {t.config.shape.describe() if t.config.shape else t.config.model}")
        companions = companions_for(t.config) if companions_for else []
        coordinator = Coordinator(t.config, out_dir, echo=_echo_err, companions=companions)
        try:
            summary = coordinator.run()
        except StartupError as exc:
            _err(str(exc))
            return EXIT_INTERNAL
        except KeyboardInterrupt:
            return coordinator.exit_code() or 130
        if output["as_json"]:
            click.echo(json.dumps(summary, indent=2))
        else:
            click.echo(format_summary(summary, str(out_dir)))
        code = after_run(summary, out_dir) if after_run else summary["exit_code"]
        if code >= 128:          # interrupted: the rest of the plan does not run
            return code
        worst = max(worst, code, key=lambda c: {EXIT_OK: 0, EXIT_THRESHOLDS: 1, EXIT_ABORTED: 2}.get(c, 3))
    return worst


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stressx")
def main():
    """stressx: load generation with wrk-class speed and wrk2-honest latencies."""


@main.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@_option("--rate", "-R", key="rate", help=f"Open model: arrival rate, {RATE_HELP}.")
@_option("--duration", "-d", key="duration", help=f"How long to send: {DURATION_HELP} (default 10s).")
@_option("--requests", "-n", key="requests", help="Total number of requests to send.")
@load_options
@cli_reports.run_options
@cli_burn.burner_options
def run(**params):
    """Send load to URL (or the config file's target) and summarise it.

    Open model with --rate (latency measured from each request's intended send time, as wrk2
    does); closed model with --connections (as wrk does); any shape or sequence of tests with
    --config FILE; a named preset with --profile."""
    sys.exit(run_command(click.get_current_context(), params))


def _pattern_command(name: str, doc: str, options: list):
    """A command that runs one load pattern (shapes.PATTERNS[name])."""
    def command(**params):
        sys.exit(run_command(click.get_current_context(), params, name))
    command.__doc__ = doc
    command.__name__ = name
    for opt in reversed(options):
        command = opt(command)
    command = load_options(command)
    command = cli_reports.run_options(command)
    command = cli_burn.burner_options(command)
    command = click.argument("target", required=False, metavar="[URL]")(command)
    command = _option("--model", key="model", type=click.Choice(["open", "closed"]),
                      help="open: the pattern's numbers are request rates (default); closed: "
                           "they are numbers of connections.")(command)
    return main.command(name=name, epilog=EXIT_CODES)(command)


def _p(flag: str, help: str, **kw):
    return _option(flag, key=flag.lstrip("-").replace("-", "_"), help=help, **kw)


_pattern_command("steady", "Constant rate: stressx steady URL --rps 10 --duration 300.", [
    _p("--rps", f"Rate: {RATE_HELP}."), _p("--duration", DURATION_HELP)])
_pattern_command("ramp", "Linear ramp from --min-rps to --max-rps (or down with --ramp-down).", [
    _p("--min-rps", "Start rate."), _p("--max-rps", "End rate."), _p("--duration", DURATION_HELP),
    _option("--ramp-down", key="ramp_down", is_flag=True, default=None, help="Ramp from max down to min.")])
_pattern_command("burst", "A baseline with bursts: each --burst-interval ends with --burst-duration at --burst-rps.", [
    _p("--baseline-rps", "Baseline rate."), _p("--burst-rps", "Rate during a burst."),
    _p("--duration", DURATION_HELP), _p("--burst-duration", "Length of each burst."),
    _p("--burst-interval", "A burst every this long.")])
_pattern_command("wave", "Sinusoidal rate: base + amplitude * sin(2 pi t / period).", [
    _p("--base-rps", "Mean rate."), _p("--amplitude-rps", "Swing above and below the mean."),
    _p("--period", "Length of one wave."), _p("--duration", DURATION_HELP)])
_pattern_command("step", "Steps: --start-rps, raised by --step-rps every --step-every, up to --max-rps.", [
    _p("--start-rps", "First step's rate."), _p("--step-rps", "Added at each step."),
    _p("--step-every", "Length of each step."), _p("--max-rps", "Highest rate."),
    _p("--duration", DURATION_HELP)])
_pattern_command("spike", "A baseline with one spike to --spike-rps at --spike-at for --spike-duration.", [
    _p("--baseline-rps", "Baseline rate."), _p("--spike-rps", "Rate during the spike."),
    _p("--spike-at", "When the spike starts."), _p("--spike-duration", "How long it lasts."),
    _p("--duration", DURATION_HELP)])


@main.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@_option("--preset", key="preset", default="progressive", show_default=True,
         type=click.Choice(list(shapes.PRESETS)), help="Named phases.")
@_p("--max-rps", "The rate the phases' percentages refer to.")
@_p("--phases", f"Which phases, in order (default all: {','.join(shapes.PROGRESSIVE_PHASES)}).")
@_p("--phase-duration", "Length of each phase (default 60s).")
@_p("--ramp-up", "Ramp from a phase's min% to its max% over this (default 15s).")
@_p("--ramp-down", "Ease back to min% over this at a phase's end (default 0).")
@_option("--model", key="model", type=click.Choice(["open", "closed"]), help="open (rates, default) or closed (connections).")
@load_options
@cli_reports.run_options
@cli_burn.burner_options
def phases(preset, **params):
    """Progressive phases: idle 0-5%, light 10-25%, medium 25-50%, heavy 50-75%, extreme 75-90%,
    critical 90-95%, chaos 95-100% of --max-rps, each ramping up over --ramp-up."""
    sys.exit(run_command(click.get_current_context(), params, preset))


def _steady_runner(ctx: click.Context, params: dict, duration: str):
    """For commands made of several steady runs (capacity probes, scaling levels): returns
    (run(rate, out_dir) -> summary, base output directory, output options)."""
    settings, origins, output = settings_for(ctx, params)
    base = Path(settings["out"]) if settings.get("out") else default_out_dir()

    def run(rate: float, out_dir: Path) -> dict:
        s = dict(settings, pattern={"type": "steady", "rps": rate, "duration": duration})
        s.pop("rate", None)
        test = _plan.plan(s, origins, progress=not output["quiet"])[0]
        summary = Coordinator(test.config, out_dir, echo=_echo_err).run()
        if output["as_json"]:
            click.echo(json.dumps(summary, indent=2))
        return summary
    # validate the settings once before anything runs
    _plan.plan(dict(settings, pattern={"type": "steady", "rps": 1, "duration": duration}), origins)
    return run, base, output


@main.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@click.option("--slo", multiple=True, required=True, help="Latency objective, e.g. 'p99<50ms' (repeatable).")
@click.option("--max-error-rate", default="1%", show_default=True)
@click.option("--start-rps", default="10", show_default=True, help="First probe's rate.")
@click.option("--max-rps", default="100000", show_default=True, help="Never probe above this.")
@click.option("--probe-duration", default="10s", show_default=True, help="Length of each probe.")
@click.option("--precision", default=0.05, show_default=True, help="Stop when the bracket is this narrow (relative).")
@click.option("--max-probes", default=20, show_default=True)
@load_options
def capacity(slo, max_error_rate, start_rps, max_rps, probe_duration, precision, max_probes, **params):
    """Find the highest rate the target sustains within the SLO: double the rate until a probe
    fails, then bisect. Reports the rate found and each probe's evidence."""
    from .capacity import search
    try:
        run, base, output = _steady_runner(click.get_current_context(), params, probe_duration)
        result = search(run, slo=list(slo), max_error_rate=max_error_rate, start=start_rps,
                        ceiling=max_rps, precision=precision, max_probes=max_probes,
                        out_dir=base, echo=_echo_err)
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    except StartupError as exc:
        _err(str(exc))
        sys.exit(EXIT_INTERNAL)
    found = f"{result.capacity:g} req/s" if result.capacity is not None else "none"
    click.echo(f"stressx capacity: {found} within {', '.join(result.slo)} and errors <= "
               f"{result.max_error_rate:.2%} ({result.stopped})")
    for p in result.probes:
        lat = p.latency_ms or {}
        click.echo(f"  {p.rate:10.1f}/s  {'PASS' if p.passed else 'FAIL'}  rps {p.rps:9.1f}  "
                   f"p50 {lat.get('p50', '-')} ms  p99 {lat.get('p99', '-')} ms  "
                   f"errors {p.error_rate:.2%}  {'; '.join(p.reasons)}")
    click.echo(f"  results: {base}")
    sys.exit(EXIT_OK if result.capacity is not None else EXIT_THRESHOLDS)


@main.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@click.option("--instances", required=True, help="Instance counts to test, e.g. 2,4,6,8.")
@click.option("--rps-per-instance", required=True, help="Rate per instance; each level runs at count x this.")
@click.option("--duration", "-d", "level_duration", default="60s", show_default=True, help="Length of each level.")
@click.option("--scale-cmd", help="Run before each level to scale the target; {n} is the instance count.")
@load_options
def scaling(instances, rps_per_instance, level_duration, scale_cmd, **params):
    """Throughput, latency and errors per instance count, with scaling efficiency (throughput
    per instance relative to the smallest level)."""
    from .config import parse_rate
    from .scaling import ScaleCommandFailed, format_scaling, parse_levels, run_scaling
    try:
        levels = parse_levels(instances)
        per = parse_rate(rps_per_instance, "--rps-per-instance")
        run, base, output = _steady_runner(click.get_current_context(), params, level_duration)
        report = run_scaling(levels, per, run, base, scale_cmd, echo=_echo_err)
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    except ScaleCommandFailed as exc:
        _err(str(exc))
        sys.exit(EXIT_ABORTED)
    click.echo(format_scaling(report))
    click.echo(f"  results: {base}")
    codes = [lv["exit_code"] for lv in report["levels"]]
    sys.exit(max(codes) if codes else EXIT_OK)


@main.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@click.option("--start-rps", default="10", show_default=True)
@click.option("--step-rps", default="10", show_default=True, help="Raise by this while healthy.")
@click.option("--max-rps", default="10000", show_default=True)
@click.option("--step-every", default="10s", show_default=True, help="Judge and decide this often.")
@click.option("--slo", multiple=True, help="Limits, e.g. 'p99<100ms' (repeatable).")
@click.option("--max-error-rate", default="1%", show_default=True)
@click.option("--backoff", default=0.5, show_default=True, help="On degradation, multiply the rate by this.")
@click.option("--cooldown", default="20s", show_default=True, help="Hold this long after backing off.")
@_option("--duration", "-d", key="duration", help=f"How long to run: {DURATION_HELP}.", required=True)
@load_options
def adaptive(start_rps, step_rps, max_rps, step_every, slo, max_error_rate, backoff, cooldown, **params):
    """A ramp that raises the rate while latency and errors hold and backs off when they
    degrade, recording each decision with its reason (summary 'adaptive')."""
    from .adaptive import AdaptiveRamp
    from .capacity import parse_error_rate
    from .config import parse_duration, parse_rate
    from .thresholds import parse_threshold
    ctx = click.get_current_context()
    try:
        settings, origins, output = settings_for(ctx, params)
        start = parse_rate(start_rps, "--start-rps")
        ramp = AdaptiveRamp(start, parse_rate(step_rps, "--step-rps"), parse_rate(max_rps, "--max-rps"),
                            parse_duration(step_every, "--step-every"),
                            [parse_threshold(s, "--slo") for s in slo],
                            parse_error_rate(max_error_rate), float(backoff),
                            parse_duration(cooldown, "--cooldown"))
        settings["pattern"] = {"type": "steady", "rps": start, "duration": settings.pop("duration")}
        settings.pop("rate", None)
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    sys.exit(run_plan(settings, origins, output, companions_for=lambda cfg: [ramp]))


@main.command(epilog=EXIT_CODES)
@click.option("--rate", "-R", default="1000", show_default=True, help="Arrival rate.")
@click.option("--duration", "-d", default="5s", show_default=True)
@click.option("--workers", "-w", help="Shard processes (default: one per core).")
@click.option("--delay", default=1.0, show_default=True, help="Target's response delay in ms.")
@click.option("--out", "-o", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def demo(rate, duration, workers, delay, out, as_json):
    """Start the embedded target on 127.0.0.1 and run a short open-model test against it."""
    from ._testing.target import TargetThread

    with TargetThread(delay_ms=delay) as target:
        click.echo(f"stressx demo: target {target.url} (response delay {delay} ms)", err=True)
        settings = {"target": target.url, "rate": rate, "duration": duration, "workers": workers,
                    "out": out}
        code = run_plan({k: v for k, v in settings.items() if v is not None}, {},
                        {"as_json": as_json, "quiet": False, "dry_run": False})
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--delay", default=0.0, show_default=True, help="Response delay in ms.")
@click.option("--status", default=200, show_default=True, type=int)
@click.option("--size", default=2, show_default=True, type=int, help="Body size in bytes.")
@click.option("--concurrency", default=0, show_default=True, type=int,
              help="Serve at most this many requests at once (0: no limit); with --delay D the "
                   "capacity is concurrency*1000/D req/s.")
def serve(host, port, delay, status, size, concurrency):
    """Run the embedded target server (loopback only). Per request: ?delay=ms&status=&size=."""
    from ._testing.target import serve_forever

    try:
        serve_forever(host, port, delay, status, size, concurrency)
    except ValueError as exc:
        _err(f"--host: {exc}")
        sys.exit(EXIT_USAGE)


@main.command("list-scenarios")
@click.argument("directory", default="workloads", required=False)
def list_scenarios(directory):
    """List the workloads in DIRECTORY (default ./workloads) with their scenarios and weights."""
    from .workload import list_workloads
    try:
        workloads = list_workloads(directory)
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    if not workloads:
        _err(f"no workload files (*.yaml) in {directory}")
        sys.exit(EXIT_USAGE)
    for wl in workloads:
        total = sum(s.weight for s in wl.scenarios)
        click.echo(f"{wl.name}  ({wl.source}): {wl.description}")
        for s in wl.scenarios:
            where = s.path or s.url
            expect = ",".join(map(str, s.expect_status)) or "2xx"
            band = ""
            if s.baseline_min_ms is not None or s.baseline_max_ms is not None:
                band = f"  band {s.baseline_min_ms or 0:g}-{s.baseline_max_ms if s.baseline_max_ms is not None else 'inf'} ms"
            click.echo(f"  {s.name:<16} {s.weight / total:6.1%}  {s.method:<6} {where:<36} expect {expect}{band}  {s.description}")


@main.command("list-profiles")
def list_profiles():
    """List the named profiles and what each runs."""
    from .profiles import PROFILES
    for name, p in PROFILES.items():
        params = ", ".join(f"{k}={v}" for k, v in p.items() if k != "description")
        click.echo(f"{name:<16} {p['description']}\n{'':<16} {params}")


INTERACTIVE_DEFAULTS = dict(
    rps="10", duration="60s", min_rps="1", max_rps="20", ramp_down="no", baseline_rps="5",
    burst_rps="20", burst_duration="10s", burst_interval="60s", base_rps="10", amplitude_rps="5",
    period="60s", start_rps="5", step_rps="5", step_every="30s", spike_rps="50", spike_at="20s",
    spike_duration="10s", phases=",".join(shapes.PROGRESSIVE_PHASES), phase_duration="60s",
    ramp_up="15s")


@main.command()
@click.option("--target", "target_default", default="http://127.0.0.1:8080/", show_default=True,
              help="The default offered for the target URL.")
def interactive(target_default):
    """Ask for the target, a pattern and its parameters; show the equivalent command line and
    config file; run it."""
    import shlex

    import yaml
    from .config import parse_target
    while True:
        url = click.prompt("Target URL", default=target_default)
        try:
            parse_target(url)
            break
        except ConfigError as exc:
            click.echo(f"  {exc}")
    choices = [p for p in shapes.PATTERNS if p != "phases"]   # a list of shapes: config files
    pattern = click.prompt("Pattern", type=click.Choice(choices), default="steady")
    _, spec = shapes.PATTERNS[pattern]
    params = {}
    for name, parse, required, default in spec:
        while True:
            raw = click.prompt(f"  {name.replace('_', ' ')}", default=INTERACTIVE_DEFAULTS.get(name, ""))
            try:
                parse(raw, shapes.flag_name(name))
                params[name] = raw
                break
            except ConfigError as exc:
                click.echo(f"  {exc}")
    try:
        shape = shapes.build(pattern, params)
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    workers = click.prompt("Workers (shard processes)", default=str(os.cpu_count() or 1))
    command = "phases --preset progressive" if pattern == "progressive" else pattern
    args = [f"stressx {command}", shlex.quote(url)]
    for name, value in params.items():
        if name == "ramp_down" and pattern == "ramp":
            if shapes._flag(value, "--ramp-down"):
                args.append("--ramp-down")
            continue
        args += [shapes.flag_name(name), shlex.quote(str(value))]
    args += ["--workers", workers]
    click.echo("\nEquivalent command line:\n  " + " ".join(args))
    def plain(value):    # numbers and flags as YAML numbers and booleans
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return {"yes": True, "no": False, "true": True, "false": False}.get(value.lower(), value)
    config = {"target": url, "workers": int(workers),
              "pattern": dict(type=pattern, **{k: plain(v) for k, v in params.items()})}
    click.echo("Equivalent config file (stressx run --config FILE):\n"
               + "\n".join("  " + line for line in yaml.safe_dump(config, sort_keys=False).splitlines()))
    click.echo(f"Shape: {shape.describe()}, {shape.integral(shape.duration):.0f} requests over {shape.duration:g} s")
    if not click.confirm("Run it now?", default=True):
        sys.exit(EXIT_OK)
    settings = {"target": url, "workers": workers, "pattern": dict(type=pattern, **params)}
    sys.exit(run_plan(settings, {}, {"as_json": False, "quiet": False, "dry_run": False}))


cli_reports.register(main)
cli_burn.register(main)

if __name__ == "__main__":
    main()
