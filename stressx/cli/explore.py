"""The exploring commands: capacity search, scaling tests, adaptive ramps, interactive mode.

Each is a sequence of runs (or a steered run) built on the same settings pipeline as
`stressx run` (run.py); the library does the work (stressx.pipeline over stressx.explore); these print and exit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import pipeline
from ..errors import EXIT_ABORTED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, ConfigError, StartupError
from ..load import shapes
from .common import DURATION_HELP, EXIT_CODES, default_out_dir, echo_err, err, option
from .run import load_options, run_plan, settings_for


def register(main: click.Group) -> None:
    for command in (capacity, scaling, adaptive, interactive):
        main.add_command(command)

def _settings(ctx: click.Context, params: dict):
    """For commands made of several steady runs (capacity probes, scaling levels): (settings,
    origins, output options, base output directory)."""
    settings, origins, output = settings_for(ctx, params)
    base = Path(settings["out"]) if settings.get("out") else default_out_dir()
    return settings, origins, output, base


def _print_json(output: dict):
    """on_result for the library's runs: each run's summary JSON with --json."""
    def show(rate, result) -> None:
        if output["as_json"]:
            click.echo(json.dumps(result.summary, indent=2))
    return show


def _dashboard(output: dict) -> bool:
    """Each probe or level draws the live dashboard on a terminal, as `run` does."""
    return pipeline.dashboard_wanted(output.get("dashboard", True) and not output["as_json"],
                                     progress=not output["quiet"])


def _dry_run(plan: dict) -> None:
    """Print a dry run's plan (with the resolved run it repeats, at its first rate); exit 0."""
    click.echo(json.dumps(plan, indent=2, default=str))
    sys.exit(EXIT_OK)


@click.command(epilog=EXIT_CODES)
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
    try:
        settings, origins, output, base = _settings(click.get_current_context(), params)
        search = pipeline.capacity_plan(
            settings, origins, base, slo=slo, max_error_rate=max_error_rate,
            start_rps=start_rps, max_rps=max_rps, probe_duration=probe_duration,
            precision=precision, max_probes=max_probes, progress=not output["quiet"])
        if output["dry_run"]:
            _dry_run(search.dry_run())
        result = pipeline.run_capacity(search, echo=echo_err, yield_cpu=True,
                                       on_result=_print_json(output), dashboard=_dashboard(output))
    except ConfigError as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)
    except StartupError as exc:
        err(str(exc))
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
    sys.exit(result.exit_code)


@click.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@click.option("--instances", required=True, help="Instance counts to test, e.g. 2,4,6,8.")
@click.option("--rps-per-instance", required=True, help="Rate per instance; each level runs at count x this.")
@click.option("--duration", "-d", "level_duration", default="60s", show_default=True, help="Length of each level.")
@click.option("--scale-cmd", help="Run before each level to scale the target; {n} is the instance count.")
@load_options
def scaling(instances, rps_per_instance, level_duration, scale_cmd, **params):
    """Throughput, latency and errors per instance count, with scaling efficiency (throughput
    per instance relative to the smallest level)."""
    from ..explore.scaling import ScaleCommandFailed, format_scaling, parse_levels
    from ..units import parse_rate
    try:
        parse_levels(instances)                                  # the levels' errors first
        parse_rate(rps_per_instance, "--rps-per-instance")
        settings, origins, output, base = _settings(click.get_current_context(), params)
        test = pipeline.scaling_plan(settings, origins, base, instances=instances,
                                     rps_per_instance=rps_per_instance, duration=level_duration,
                                     scale_cmd=scale_cmd, progress=not output["quiet"])
        if output["dry_run"]:
            _dry_run(test.dry_run())
        result = pipeline.run_scaling(test, echo=echo_err, yield_cpu=True,
                                      on_result=_print_json(output), dashboard=_dashboard(output))
    except ConfigError as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)
    except ScaleCommandFailed as exc:
        err(str(exc))
        sys.exit(EXIT_ABORTED)
    except StartupError as exc:     # as capacity does: a shard that cannot start is exit 1
        err(str(exc))
        sys.exit(EXIT_INTERNAL)
    click.echo(format_scaling(result))
    click.echo(f"  results: {test.out}")
    sys.exit(result.exit_code)


@click.command(epilog=EXIT_CODES)
@click.argument("target", required=False, metavar="[URL]")
@click.option("--start-rps", default="10", show_default=True)
@click.option("--step-rps", default="10", show_default=True, help="Raise by this while healthy.")
@click.option("--max-rps", default="10000", show_default=True)
@click.option("--step-every", default="10s", show_default=True, help="Judge and decide this often.")
@click.option("--slo", multiple=True, help="Limits, e.g. 'p99<100ms' (repeatable).")
@click.option("--max-error-rate", default="1%", show_default=True)
@click.option("--backoff", default=0.5, show_default=True, help="On degradation, multiply the rate by this.")
@click.option("--cooldown", default="20s", show_default=True, help="Hold this long after backing off.")
@option("--duration", "-d", key="duration", help=f"How long to run: {DURATION_HELP}.", required=True)
@load_options
def adaptive(start_rps, step_rps, max_rps, step_every, slo, max_error_rate, backoff, cooldown, **params):
    """A ramp that raises the rate while latency and errors hold and backs off when they
    degrade, recording each decision with its reason (summary 'adaptive')."""
    try:
        settings, origins, output = settings_for(click.get_current_context(), params)
    except ConfigError as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)

    def make_plan(settings, origins, **kw):
        return pipeline.adaptive_plan(settings, origins, start_rps=start_rps, step_rps=step_rps,
                                      max_rps=max_rps, step_every=step_every, slo=slo,
                                      max_error_rate=max_error_rate, backoff=backoff,
                                      cooldown=cooldown, **kw)
    sys.exit(run_plan(settings, origins, output, make_plan=make_plan))



INTERACTIVE_DEFAULTS = dict(
    rps="10", duration="60s", min_rps="1", max_rps="20", ramp_down="no", baseline_rps="5",
    burst_rps="20", burst_duration="10s", burst_interval="60s", base_rps="10", amplitude_rps="5",
    period="60s", start_rps="5", step_rps="5", step_every="30s", spike_rps="50", spike_at="20s",
    spike_duration="10s", phases=",".join(shapes.PROGRESSIVE_PHASES), phase_duration="60s",
    ramp_up="15s")


@click.command()
@click.option("--target", "target_default", default="http://127.0.0.1:8080/", show_default=True,
              help="The default offered for the target URL.")
def interactive(target_default):
    """Ask for the target, a pattern and its parameters; show the equivalent command line and
    config file; run it."""
    import shlex

    import yaml
    from ..load.config import parse_target
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
        err(str(exc))
        sys.exit(EXIT_USAGE)
    from ..system import usable_cpus
    workers = click.prompt("Workers (shard processes)", default=str(usable_cpus()))
    command = "phases --preset progressive" if pattern == "progressive" else pattern
    args = [f"stressx {command}", shlex.quote(url)]
    for name, value in params.items():
        if name == "ramp_down" and pattern == "ramp":
            if shapes.parse_flag(value, "--ramp-down"):
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
