"""The `stressx` command line: thin click commands over plan, coordinator and reports.

The shared option sets and the settings -> runs pipeline are in cli_common.py; the exploring
commands (capacity, scaling, adaptive, interactive) in cli_explore.py; reports in
cli_reports.py; host load in cli_burn.py.
"""
from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    """SIGINT while the command is still importing: nothing has been done yet, so leave at
    once with the interrupted exit code, without a traceback from the middle of an import."""
    os._exit(130)


# First, before the slow imports; only when this module is the program (python -m stressx.cli
# or the `stressx` script), never when a library or test imports it.
_GUARDED = False
if __name__ == "__main__" or os.path.basename(sys.argv[0] if sys.argv else "") == "stressx":
    try:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
        _GUARDED = True
    except ValueError:      # not the main thread
        pass

import click  # noqa: E402

from . import cli_burn, cli_explore, cli_reports, shapes
from ._version import __version__
from .cli_common import (DURATION_HELP, EXIT_CODES, RATE_HELP, _err, _option, load_options,
                         run_command, run_plan)
from .config import ConfigError
from .coordinator import EXIT_USAGE
from .microbench.command import register as register_bench

EXIT_SIGINT = 130


class _Group(click.Group):
    """The `stressx` group: Ctrl-C outside a run (validating, at a prompt, writing reports)
    exits 130 like an interrupted run, not click's "Aborted!" with 1."""

    def invoke(self, ctx):
        if _GUARDED and signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            sys.exit(EXIT_SIGINT)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                sys.exit(EXIT_SIGINT)
            raise


@click.group(cls=_Group, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
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


@main.command(epilog=EXIT_CODES)
@click.option("--rate", "-R", default="1000", show_default=True, help="Arrival rate.")
@click.option("--duration", "-d", default="5s", show_default=True)
@click.option("--workers", "-w", help="Shard processes (default: one per usable CPU).")
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
        sys.exit(serve_forever(host, port, delay, status, size, concurrency))
    except ValueError as exc:
        _err(f"--host: {exc}")
        sys.exit(EXIT_USAGE)


@main.command("list-scenarios")
@click.argument("directory", required=False)
def list_scenarios(directory):
    """List the workloads in DIRECTORY with their scenarios and weights; by default those a
    --workload NAME can name: ./workloads/ and the built-ins (a local file wins)."""
    from .workload import WORKLOADS_DIR, list_workloads
    try:
        workloads = list_workloads(directory)
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    if not workloads:
        _err(f"no workload files (*.yaml) in {directory or WORKLOADS_DIR}")
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


cli_reports.register(main)
cli_burn.register(main)
cli_explore.register(main)
register_bench(main)

if __name__ == "__main__":
    main()
