"""The `stressx` command line: thin click commands over config, coordinator and reports."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import config as _config
from ._version import __version__
from .coordinator import EXIT_INTERNAL, EXIT_USAGE, Coordinator, StartupError
from .report.text import format_summary

EXIT_CODES = """\b
Exit codes:
  0    run finished, thresholds passed
  1    internal error
  2    usage or configuration error
  3    thresholds failed
  4    run aborted (a shard lost, a safety stop)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM
"""


def _err(message: str) -> None:
    click.echo(f"stressx: error: {message}", err=True)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def default_out_dir() -> Path:
    return Path("stressx-results") / time.strftime("%Y%m%d-%H%M%S")


def load_options(f):
    """Options shared by every command that sends load."""
    opts = [
        click.option("--rate", "-R", help="Open model: arrival rate, e.g. 1000, 1000/s, 600/m."),
        click.option("--connections", "-c", help="Closed model: connections each sending the next "
                     "request when the last completes (default 10). With --rate: connections "
                     "opened before the start."),
        click.option("--max-connections", help="Open model: cap on connections (default 1024)."),
        click.option("--duration", "-d", help="How long to send, e.g. 30, 30s, 5m, 1h30m "
                     "(default 10s unless --requests is given)."),
        click.option("--requests", "-n", help="Total number of requests to send."),
        click.option("--workers", "-w", help="Shard processes (default: one per core)."),
        click.option("--timeout", default="10s", show_default=True,
                     help="Deadline of each request, connect included."),
        click.option("--method", "-X", default="GET", show_default=True),
        click.option("--header", "-H", "headers", multiple=True, help="'Name: value' (repeatable)."),
        click.option("--body", help="Request body text."),
        click.option("--body-file", type=click.Path(dir_okay=False), help="Request body from a file."),
        click.option("--insecure", "-k", is_flag=True, help="Do not verify TLS certificates (recorded in the results)."),
        click.option("--ca-file", help="CA bundle to verify the target's certificate with."),
        click.option("--out", "-o", type=click.Path(file_okay=False), help="Results directory "
                     "(default ./stressx-results/<timestamp>)."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary JSON on stdout."),
        click.option("--quiet", "-q", is_flag=True, help="No progress lines."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def execute(url: str, *, out, as_json: bool, quiet: bool, body=None, body_file=None,
            companions=(), **options) -> int:
    """Validate, run, print; returns the exit code."""
    try:
        if body is not None and body_file is not None:
            raise _config.ConfigError("--body-file", "give --body or --body-file, not both")
        if body_file is not None:
            try:
                body = Path(body_file).read_bytes()
            except OSError as exc:
                raise _config.ConfigError("--body-file", f"cannot read {body_file!r}: {exc.strerror}") from None
        cfg = _config.resolve(url, body=body or b"", progress=not quiet, **options)
    except _config.ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    out_dir = Path(out) if out else default_out_dir()
    coordinator = Coordinator(cfg, out_dir, echo=_echo_err, companions=companions)
    try:
        summary = coordinator.run()
    except StartupError as exc:
        _err(str(exc))
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        return coordinator.exit_code() or 130
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary, str(out_dir)))
    return summary["exit_code"]


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stressx")
def main():
    """stressx: load generation with wrk-class speed and wrk2-honest latencies."""


@main.command(epilog=EXIT_CODES)
@click.argument("url")
@load_options
def run(url, **options):
    """Send load to URL and summarise it.

    Open model with --rate (latency measured from each request's intended send time, as wrk2
    does); closed model with --connections (as wrk does)."""
    sys.exit(execute(url, **options))


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
        code = execute(target.url, out=out, as_json=as_json, quiet=False, rate=rate,
                       duration=duration, workers=workers)
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--delay", default=0.0, show_default=True, help="Response delay in ms.")
@click.option("--status", default=200, show_default=True, type=int)
@click.option("--size", default=2, show_default=True, type=int, help="Body size in bytes.")
def serve(host, port, delay, status, size):
    """Run the embedded target server (loopback only). Per request: ?delay=ms&status=&size=."""
    from ._testing.target import serve_forever

    try:
        serve_forever(host, port, delay, status, size)
    except ValueError as exc:
        _err(f"--host: {exc}")
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
