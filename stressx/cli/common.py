"""What every `stressx` command shares: the one error line, help texts, the exit codes, and
options that can also come from STRESSX_* environment variables."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import EXIT_USAGE
from ..load.plan import env_var

EXIT_CODES = """\b
Exit codes:
  0    run finished, thresholds passed
  1    internal error
  2    usage or configuration error
  3    thresholds failed, or a regression against --baseline
  4    run aborted (a shard lost, a safety stop, an emergency stop)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM
"""
RATE_HELP = "requests per second: 10, 10/s or 600/m"
DURATION_HELP = "300, 300s, 5m or 1h30m"


def err(message: str) -> None:
    """The one line every bad input and failure gets on stderr."""
    click.echo(f"stressx: error: {message}", err=True)


def echo_err(line: str) -> None:
    """A progress or status line on stderr (stdout stays for results and JSON)."""
    click.echo(line, err=True)


def default_out_dir() -> Path:
    return Path("stressx-results") / time.strftime("%Y%m%d-%H%M%S")


class _OneLineError(click.ClickException):
    """A bad value click itself rejected (a choice, a boolean), shown as the one line every
    other bad input gets, naming the flag or the STRESSX_* variable it came from."""
    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        err(self.format_message())


class _EnvOption(click.Option):
    """An option that can come from STRESSX_<KEY>; click's own errors name that variable."""

    def handle_parse_result(self, ctx, opts, args):
        try:
            return super().handle_parse_result(ctx, opts, args)
        except click.BadParameter as exc:
            label = self.opts[0] if opts.get(self.name) is not None else self.envvar
            raise _OneLineError(f"{label}: {exc.message}") from None


class _Lines(click.types.StringParamType):
    """A repeatable text option whose environment variable holds one value per line (click
    splits on whitespace by default, which cuts 'Content-Type: application/json' in two)."""

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line.removesuffix("\r") for line in (rv or "").split("\n") if line.strip()]


def option(*decls, key, **kw):
    """A click option that can also come from STRESSX_<KEY>."""
    if kw.get("multiple"):
        kw.setdefault("type", _Lines())
    return click.option(*decls, key, envvar=env_var(key), show_envvar=True,
                        cls=_EnvOption, **kw)
