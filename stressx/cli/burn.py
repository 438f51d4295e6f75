"""`stressx burn` and the burner options a load test shares.

    register(main)        adds `stressx burn SPEC... --duration 60 [--safety LIMIT] [--out DIR]`
    burner_options(f)     adds --burn SPEC (repeatable) and --safety LIMIT (repeatable) to a
                          command (`stressx run`), passed as `burn` and `safety` tuples
    companions_for(...)   validated specs and limits -> the coordinator's companions
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ..errors import EXIT_USAGE, ConfigError
from ..hostload.burners import session as _session
from ..report.host import format_host_section
from ..units import parse_duration
from .common import echo_err, err

BURN_HELP = ("Host load beside the requests (repeatable): cpu=50% (per core, every core), "
             "cpu=50%x2, mem=2G | mem=25%, io=50MB/s[,path=DIR,read,floor=10G]; steps: "
             "cpu=25%,50%@10s.")
SAFETY_HELP = ("Safety limit (repeatable): METRIC>VALUE[:warn|backoff|stop], METRIC one of cpu, "
               "mem, swap, temp, errors, p50, p90, p99, p999, max; e.g. mem>90%:stop, "
               "p99>500ms:stop. A stop ends the run and exits 4.")
BURN_EXIT_CODES = """\b
Exit codes:
  0    burners ran for the duration
  2    bad spec or option (the message names it)
  4    stopped early: a safety stop, or a burner died
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM
"""


BURNER_OPTION_NAMES = ("burn", "safety")


def burner_options(f):
    """--burn and --safety for any command that runs load (keyword args `burn`, `safety`)."""
    f = click.option("--safety", "safety", multiple=True, metavar="LIMIT", help=SAFETY_HELP)(f)
    f = click.option("--burn", "burn", multiple=True, metavar="SPEC", help=BURN_HELP)(f)
    return f


def pop_burner_options(options: dict) -> dict:
    """Take burner_options' values out of a command's **options (the rest go to the run)."""
    return {name: tuple(options.pop(name) or ()) for name in BURNER_OPTION_NAMES if name in options}


def companions_for(burn=(), safety=(), config=None, echo=echo_err) -> list:
    """The companions of one run from --burn specs and --safety limits (see
    stressx.hostload.burners.session.companions_for); ConfigError naming the bad token."""
    return _session.companions_for(burn, safety, config=config, echo=echo)


# -- the summary -----------------------------------------------------------------------------
def format_burn_summary(s: dict, out_dir: str | None = None) -> str:
    lines = [f"stressx burn: {s['elapsed_s']:.2f} s of {s['duration_s']:g} s"]
    lines += format_host_section(s)
    if s.get("interrupted"):
        lines.append(f"  INTERRUPTED by {s['interrupted']}")
    if s.get("aborted"):
        lines.append(f"  ABORTED: {s['aborted']}")
    if out_dir:
        lines.append(f"  results: {out_dir}")
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------------
def burn_command(specs, duration, safety, out, as_json, quiet, dry_run=False) -> int:
    """`stressx burn`: validate, run the burners alone, print; returns the exit code. A dry
    run prints the burners and limits it would run, as JSON, and starts nothing."""
    from ..hostload.burners.session import run_burn

    try:
        if not specs:
            raise ConfigError("SPEC", "give at least one burner, e.g. cpu=50% mem=2G io=50MB/s")
        parsed = _session.parse_specs(specs)
        duration_s = parse_duration(duration)
        from ..judge.safety import parse_limit
        limits = [parse_limit(text) for text in safety]
    except ConfigError as exc:
        err(str(exc))
        return EXIT_USAGE
    out_dir = Path(out) if out else Path("stressx-results") / ("burn-" + time.strftime("%Y%m%d-%H%M%S"))
    if dry_run:
        click.echo(json.dumps({"command": "burn", "duration_s": duration_s,
                               "burn": [s.to_json() for s in parsed],
                               "safety": [lim.text for lim in limits], "out": str(out_dir)},
                              indent=2, default=str))
        return 0
    summary = run_burn(parsed, duration_s=duration_s, out_dir=out_dir, limits=limits,
                       echo=echo_err, progress=not quiet)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_burn_summary(summary, str(out_dir)))
    return summary["exit_code"]


def register(main) -> None:
    """Add the `burn` command to the `stressx` click group (idempotent)."""
    if "burn" in getattr(main, "commands", {}):
        return

    @main.command("burn", epilog=BURN_EXIT_CODES)
    @click.argument("specs", nargs=-1)
    @click.option("--duration", "-d", default="60s", show_default=True,
                  help="How long to hold the levels, e.g. 30s, 5m.")
    @click.option("--safety", "-S", multiple=True, metavar="LIMIT", help=SAFETY_HELP)
    @click.option("--out", "-o", type=click.Path(file_okay=False),
                  help="Results directory (default ./stressx-results/burn-<timestamp>).")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary JSON on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
    @click.option("--dry-run", is_flag=True, help="Print the burners and limits as JSON; start nothing.")
    def burn(specs, duration, safety, out, as_json, quiet, dry_run):
        """Load the host itself, with no requests: SPEC is cpu=50%[xN], mem=2G|25%,
        io=50MB/s[,path=DIR,read,nosync,floor=10G,size=1G]; levels can step: cpu=25%,50%@10s.

        Each burner is its own process; host metrics are sampled every 100 ms into
        host.arrows; the summary compares achieved and requested levels."""
        sys.exit(burn_command(specs, duration, safety, out, as_json, quiet, dry_run))
