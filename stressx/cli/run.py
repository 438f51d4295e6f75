"""Commands that send load (`run`, the pattern commands, `phases`) and what they share with
the exploring commands: the load options, and the way from flags (or STRESSX_* environment
variables), a config file and a profile to settings (load.plan), to validated runs, to the
coordinator, thresholds and reports. Also `list-scenarios` and `list-profiles`: what a run can
name.
"""
from __future__ import annotations

import json
import sys

import click
from click.core import ParameterSource

from .. import pipeline
from ..errors import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, ConfigError, RunInterrupted, StartupError
from ..load import plan as _plan, shapes
from ..report.text import format_summary
from . import burn as cli_burn, reports as cli_reports
from .common import DURATION_HELP, EXIT_CODES, RATE_HELP, default_out_dir, echo_err, err, option

def load_options(f):
    """Options of every command that sends load (all also readable from STRESSX_* vars)."""
    opts = [
        option("--connections", "-c", key="connections", help="Closed model: connections, each "
                "sending the next request when the last completes (default 10). Open model: "
                "connections opened before the start."),
        option("--max-connections", key="max_connections", help="Open model: cap on connections (default 1024)."),
        option("--workers", "-w", key="workers", help="Shard processes (default: one per CPU this "
                "process may use: affinity and cgroup quota)."),
        option("--timeout", key="timeout", help="Deadline of each request, connect included (default 10s)."),
        option("--timer-slack", key="timer_slack", help="Open model: sends due within this of "
                "the first share one wake-up, and responses are read on the same wake-ups "
                "(kernel receive times); latency still counts from each intended send time, "
                "only send lag grows. Less CPU per request for more send lag (default 200us; "
                "0: a wake-up per send and per response; e.g. 1ms)."),
        option("--method", "-X", key="method", help="HTTP method (default GET)."),
        option("--header", "-H", key="headers", multiple=True, help="'Name: value' (repeatable; "
                "in STRESSX_HEADERS one header per line)."),
        option("--body", key="body", help="Request body text."),
        option("--body-file", key="body_file", help="Request body from a file."),
        option("--insecure", "-k", key="insecure", is_flag=True, default=None,
                help="Do not verify TLS certificates (recorded in the results)."),
        option("--ca-file", key="ca_file", help="CA bundle to verify the target's certificate with."),
        option("--workload", key="workload", help="A workload file or name (./workloads/NAME.yaml, else a built-in: stressx list-scenarios): a weighted mix of scenarios; a .py file: Python scenarios (multi-step flows, WebSocket)."),
        option("--scenario", key="scenario", help="Only these scenarios of the workload (comma-separated)."),
        option("--cluster", key="cluster", help="Spread the run over a Ray cluster (pip install "
                "'stressx[ray]'): local:N (N simulated hosts here, head on 127.0.0.1), auto, "
                "ray://HOST:PORT or HOST:PORT. One agent per host; --workers is per host."),
        option("--hosts", key="hosts", help="With --cluster: the load hosts: N, a custom Ray "
                "resource LABEL every load host has, or LABEL:N (default: every host)."),
        option("--max-clock-uncertainty", key="max_clock_uncertainty", help="With --cluster: "
                "refuse to start when a host's clock offset is less sure than this (default 5ms)."),
        option("--config", key="config", type=click.Path(dir_okay=False), help="A YAML config file."),
        option("--profile", key="profile", help="Start from a named profile (stressx list-profiles)."),
        option("--out", "-o", key="out", help="Results directory (default ./stressx-results/<timestamp>)."),
        option("--control", key="control", metavar="[HOST:]PORT", help="Serve the control API "
                "and the live page while the run goes on (default host 127.0.0.1; another "
                "address needs --control-token)."),
        option("--control-token", key="control_token", metavar="TOKEN", help="Bearer token the "
                "control API requires on every route (required off loopback)."),
        click.option("--json", "as_json", is_flag=True, default=None, help="Print the summary JSON on stdout."),
        click.option("--quiet", "-q", is_flag=True, default=None, help="No progress lines."),
        option("--no-dashboard", key="no_dashboard", is_flag=True, default=None,
               help="One progress line a second instead of the live dashboard drawn when "
                    "stdout is a terminal (config file: output.dashboard: false)."),
        click.option("--dry-run", is_flag=True, help="Print the plan (the resolved runs, probes, "
                     "levels, commands) as JSON; send nothing, run nothing."),
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
    output = {k: params.pop(k) for k in ("as_json", "quiet", "dry_run", "no_dashboard")}
    cli = _cli_layer(ctx, params, pattern)
    layers = []
    if params.get("config"):
        file_settings, file_origins = _plan.load_config_file(
            params["config"], option=cli[1].get("config", "--config"))
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
    in_file = settings.pop("dashboard", None)
    if output.pop("no_dashboard"):
        output["dashboard"] = False
    elif in_file is not None:
        if not isinstance(in_file, bool):
            raise ConfigError(origins.get("dashboard", "output.dashboard"),
                              f"expected true or false, got {in_file!r}")
        output["dashboard"] = in_file
    return settings, origins, output


def run_command(ctx: click.Context, params: dict, pattern: str | None = None) -> int:
    """A load command: flags -> settings, then the library's pipeline (plan, runs, checks)."""
    checks = cli_reports.pop_run_options(params)
    host = cli_burn.pop_burner_options(params)
    try:
        settings, origins, output = settings_for(ctx, params, pattern)
    except ConfigError as exc:
        err(str(exc))
        return EXIT_USAGE
    return run_plan(settings, origins, output, checks=checks, host=host)


def run_plan(settings: dict, origins: dict, output: dict, *, checks: dict | None = None,
             host: dict | None = None, make_plan=None) -> int:
    """Validate every run first (pipeline.make_plan, or `make_plan(settings, origins,
    progress=, dry_run=)`), then run them in order, printing each summary and verdict; returns
    the exit code. A dry run prints the runs (with burners, limits, an adaptive ramp) and runs
    nothing."""
    try:
        if make_plan is None:
            plan = pipeline.make_plan(settings, origins, checks=checks, host=host,
                                      progress=not output["quiet"], dry_run=output["dry_run"])
        else:
            plan = make_plan(settings, origins, progress=not output["quiet"],
                             dry_run=output["dry_run"])
    except ConfigError as exc:
        err(str(exc))
        return EXIT_USAGE
    if output["dry_run"]:
        click.echo(json.dumps(plan.to_json(), indent=2, default=str))
        return EXIT_OK
    echo = echo_err if output["as_json"] else click.echo

    def show(test, result) -> None:
        if output["as_json"]:
            click.echo(json.dumps(result.summary, indent=2))
        else:
            click.echo(format_summary(result.summary, str(result.out_dir)))
        if plan.checks is not None:
            cli_reports.show_verdict(result, echo)
    # the live dashboard on a terminal (not under --json: stdout is the summary's)
    dashboard = pipeline.dashboard_wanted(output.get("dashboard", True) and not output["as_json"],
                                          progress=not output["quiet"])
    try:
        done = pipeline.execute(plan, plan.out or default_out_dir(), echo=echo_err,
                                yield_cpu=True, on_result=show, dashboard=dashboard)
    except ConfigError as exc:      # the run does not fit the host's limits: nothing sent
        err(str(exc))
        return EXIT_USAGE
    except StartupError as exc:
        err(str(exc))
        return EXIT_INTERNAL
    except RunInterrupted as exc:
        return exc.exit_code
    return done.exit_code


# -- the commands ----------------------------------------------------------------------------
@click.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@option("--rate", "-R", key="rate", help=f"Open model: arrival rate, {RATE_HELP}.")
@option("--duration", "-d", key="duration", help=f"How long to send: {DURATION_HELP} (default 10s).")
@option("--requests", "-n", key="requests", help="Total number of requests to send.")
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
    command = option("--model", key="model", type=click.Choice(["open", "closed"]),
                     help="open: the pattern's numbers are request rates (default); closed: "
                          "they are numbers of connections.")(command)
    return click.command(name=name, epilog=EXIT_CODES)(command)


def _p(flag: str, help: str, **kw):
    return option(flag, key=flag.lstrip("-").replace("-", "_"), help=help, **kw)


PATTERN_COMMANDS = [
    _pattern_command("steady", "Constant rate: stressx steady URL --rps 10 --duration 300.", [
        _p("--rps", f"Rate: {RATE_HELP}."), _p("--duration", DURATION_HELP)]),
    _pattern_command("ramp", "Linear ramp from --min-rps to --max-rps (or down with --ramp-down).", [
        _p("--min-rps", "Start rate."), _p("--max-rps", "End rate."), _p("--duration", DURATION_HELP),
        option("--ramp-down", key="ramp_down", is_flag=True, default=None, help="Ramp from max down to min.")]),
    _pattern_command("burst", "A baseline with bursts: each --burst-interval ends with --burst-duration at --burst-rps.", [
        _p("--baseline-rps", "Baseline rate."), _p("--burst-rps", "Rate during a burst."),
        _p("--duration", DURATION_HELP), _p("--burst-duration", "Length of each burst."),
        _p("--burst-interval", "A burst every this long.")]),
    _pattern_command("wave", "Sinusoidal rate: base + amplitude * sin(2 pi t / period).", [
        _p("--base-rps", "Mean rate."), _p("--amplitude-rps", "Swing above and below the mean."),
        _p("--period", "Length of one wave."), _p("--duration", DURATION_HELP)]),
    _pattern_command("step", "Steps: --start-rps, raised by --step-rps every --step-every, up to --max-rps.", [
        _p("--start-rps", "First step's rate."), _p("--step-rps", "Added at each step."),
        _p("--step-every", "Length of each step."), _p("--max-rps", "Highest rate."),
        _p("--duration", DURATION_HELP)]),
    _pattern_command("spike", "A baseline with one spike to --spike-rps at --spike-at for --spike-duration.", [
        _p("--baseline-rps", "Baseline rate."), _p("--spike-rps", "Rate during the spike."),
        _p("--spike-at", "When the spike starts."), _p("--spike-duration", "How long it lasts."),
        _p("--duration", DURATION_HELP)]),
]


@click.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@option("--preset", key="preset", default="progressive", show_default=True,
        type=click.Choice(list(shapes.PRESETS)), help="Named phases.")
@_p("--max-rps", "The rate the phases' percentages refer to.")
@_p("--phases", f"Which phases, in order (default all: {','.join(shapes.PROGRESSIVE_PHASES)}).")
@_p("--phase-duration", "Length of each phase (default 60s).")
@_p("--ramp-up", "Ramp from a phase's min% to its max% over this (default 15s).")
@_p("--ramp-down", "Ease back to min% over this at a phase's end (default 0).")
@option("--model", key="model", type=click.Choice(["open", "closed"]), help="open (rates, default) or closed (connections).")
@load_options
@cli_reports.run_options
@cli_burn.burner_options
def phases(preset, **params):
    """Progressive phases: idle 0-5%, light 10-25%, medium 25-50%, heavy 50-75%, extreme 75-90%,
    critical 90-95%, chaos 95-100% of --max-rps, each ramping up over --ramp-up."""
    sys.exit(run_command(click.get_current_context(), params, preset))


@click.command("list-scenarios")
@click.argument("directory", required=False)
def list_scenarios(directory):
    """List the workloads in DIRECTORY (or the one workload FILE, YAML or Python) with their
    scenarios and weights; by default those a --workload NAME can name: ./workloads/ and the
    built-ins (a local file wins). Python scenarios show their docstrings."""
    from pathlib import Path
    from ..load.workload import WORKLOADS_DIR, list_workloads, load_workload
    try:
        if directory is not None and Path(directory).is_file():
            workloads = [load_workload(directory)]
        else:
            workloads = list_workloads(directory)
    except ConfigError as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)
    if not workloads:
        err(f"no workload files (*.yaml) in {directory or WORKLOADS_DIR}")
        sys.exit(EXIT_USAGE)
    for wl in workloads:
        total = sum(s.weight for s in wl.scenarios)
        click.echo(f"{wl.name}  ({wl.source}): {wl.description}")
        for s in wl.scenarios:
            if s.python:
                click.echo(f"  {s.name:<16} {s.weight / total:6.1%}  python  {s.description}")
                continue
            where = s.path or s.url
            expect = ",".join(map(str, s.expect_status)) or "2xx"
            band = ""
            if s.baseline_min_ms is not None or s.baseline_max_ms is not None:
                band = f"  band {s.baseline_min_ms or 0:g}-{s.baseline_max_ms if s.baseline_max_ms is not None else 'inf'} ms"
            click.echo(f"  {s.name:<16} {s.weight / total:6.1%}  {s.method:<6} {where:<36} expect {expect}{band}  {s.description}")


@click.command("list-profiles")
def list_profiles():
    """List the named profiles and what each runs."""
    from ..load.profiles import PROFILES
    for name, p in PROFILES.items():
        params = ", ".join(f"{k}={v}" for k, v in p.items() if k != "description")
        click.echo(f"{name:<16} {p['description']}\n{'':<16} {params}")


def register(main: click.Group) -> None:
    for command in (run, *PATTERN_COMMANDS, phases, list_scenarios, list_profiles):
        main.add_command(command)
