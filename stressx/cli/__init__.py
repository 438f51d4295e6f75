"""The `stressx` command line: thin click commands over the library's stages.

    startup.py   Ctrl-C while still importing exits 130 (imported first)
    common.py    what every command shares: the error line, help texts, STRESSX_* options
    run.py       `run`, the pattern commands, `phases`, `list-scenarios`, `list-profiles`, and
                 the way from flags, a config file and a profile to runs
    reports.py   `report`, `compare`, `baseline`, and a run's threshold/report/baseline options
    burn.py      `burn`, and a run's --burn/--safety options
    explore.py   `capacity`, `scaling`, `adaptive`, `interactive`
    serve.py     `demo` and `serve`: the embedded target server
"""
from __future__ import annotations

import signal
import sys

from . import startup  # first: the Ctrl-C guard, before the slow imports

import click  # noqa: E402

from .._version import __version__  # noqa: E402
from ..errors import EXIT_SIGINT  # noqa: E402
from . import burn, explore, reports, run, serve  # noqa: E402
from ..microbench.command import register as register_bench  # noqa: E402
from .common import EXIT_CODES  # noqa: E402


class _Group(click.Group):
    """The `stressx` group: Ctrl-C outside a run (validating, at a prompt, writing reports)
    exits 130 like an interrupted run, not click's "Aborted!" with 1."""

    def invoke(self, ctx):
        if startup.GUARDED and signal.getsignal(signal.SIGINT) is startup.interrupted_while_starting:
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


run.register(main)
serve.register(main)
reports.register(main)
burn.register(main)
explore.register(main)
register_bench(main)
