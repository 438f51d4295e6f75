"""`stressx demo` and `stressx serve`: the embedded target server, alone or under a short run."""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_USAGE
from .common import EXIT_CODES, err
from .run import run_plan


def register(main: click.Group) -> None:
    for command in (demo, serve):
        main.add_command(command)


@click.command(epilog=EXIT_CODES)
@click.option("--rate", "-R", default="1000", show_default=True, help="Arrival rate.")
@click.option("--duration", "-d", default="5s", show_default=True)
@click.option("--workers", "-w", help="Shard processes (default: one per usable CPU).")
@click.option("--delay", default=1.0, show_default=True, help="Target's response delay in ms.")
@click.option("--out", "-o", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def demo(rate, duration, workers, delay, out, as_json):
    """Start the embedded target on 127.0.0.1 and run a short open-model test against it."""
    from .._testing.target import TargetThread

    with TargetThread(delay_ms=delay) as target:
        click.echo(f"stressx demo: target {target.url} (response delay {delay} ms)", err=True)
        settings = {"target": target.url, "rate": rate, "duration": duration, "workers": workers,
                    "out": out}
        code = run_plan({k: v for k, v in settings.items() if v is not None}, {},
                        {"as_json": as_json, "quiet": False, "dry_run": False})
    sys.exit(code)


@click.command()
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
    from .._testing.target import serve_forever

    try:
        sys.exit(serve_forever(host, port, delay, status, size, concurrency))
    except ValueError as exc:
        err(f"--host: {exc}")
        sys.exit(EXIT_USAGE)
