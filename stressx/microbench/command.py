"""`stressx bench FILE.py[::FUNC]` and the benchmark side of `stressx compare`.

`register(main)` adds `bench` to the `stressx` group; `maybe_compare(...)` is called first by
`stressx compare`: when both directories hold benchmark results it compares them and exits,
otherwise it returns and the load-run comparison goes on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..errors import ConfigError
from ..units import parse_duration

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_THRESHOLDS = 0, 1, 2, 3
BENCH_PREFIX = "bench_"

EXIT_CODES = """\b
Exit codes:
  0    every benchmark ran, thresholds passed
  1    a benchmark raised (the others still run and are written)
  2    usage or configuration error (bad flag, file, function or threshold)
  3    a threshold failed
  130  interrupted by SIGINT (Ctrl-C)
"""


def _err(message: str) -> None:
    click.echo(f"stressx: error: {message}", err=True)


def _whole(value, flag: str, low: int):
    if value is None:
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ConfigError(flag, f"expected a whole number >= {low}, got {value!r}") from None
    if n < low:
        raise ConfigError(flag, f"expected a whole number >= {low}, got {value!r}")
    return n


def split_target(text: str) -> tuple[Path, str | None]:
    """'bench.py::bench_parse' -> (Path, 'bench_parse'); ConfigError naming FILE otherwise."""
    path, _, func = str(text).partition("::")
    p = Path(path)
    if p.suffix != ".py":
        raise ConfigError("FILE", f"expected a Python file FILE.py or FILE.py::FUNC, got {text!r}")
    if not p.is_file():
        raise ConfigError("FILE", f"no such file: {path}")
    if "::" in str(text) and not func:
        raise ConfigError("FILE", f"{text!r}: give a function name after '::'")
    return p, func or None


def collect(path: Path, func: str | None) -> tuple[str, list[tuple[str, object]]]:
    """(module name, [(qualname, function)]) of the file: the one named, or every bench_*
    function in the order the file defines them."""
    import inspect

    from .files import load_bench_file, module_name_for
    name = module_name_for(path)
    try:
        module = load_bench_file(path, name)
    except SystemExit as exc:
        raise ConfigError("FILE", f"importing {path} called sys.exit({exc.code!r})") from None
    except Exception as exc:  # noqa: BLE001 - any error of the user's file
        raise ConfigError("FILE", f"cannot import {path}: {type(exc).__name__}: {exc}") from None
    if func:
        obj = module
        try:
            for part in func.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            found = [n for n in vars(module) if n.startswith(BENCH_PREFIX)]
            raise ConfigError("FILE", f"{path} has no function {func!r} (its bench functions: "
                                      f"{', '.join(found) or 'none'})") from None
        if not callable(obj):
            raise ConfigError("FILE", f"{path}::{func} is not callable")
        return name, [(func, obj)]
    found = [(n, f) for n, f in vars(module).items()
             if n.startswith(BENCH_PREFIX) and inspect.isfunction(f)]
    if not found:
        raise ConfigError("FILE", f"{path} defines no {BENCH_PREFIX}* function (or name one: "
                                  f"{path}::FUNC)")
    return name, found


def _cell_time(v) -> str:
    from .result import format_time
    return format_time(v)


def format_row(r, width: int, memory: bool | None = None, leak: bool | None = None) -> str:
    """One table row; `memory`/`leak`: whether the table has those columns (default: whether
    this result measured them)."""
    from .result import format_bytes
    spread = f"{100 * r.stdev / r.mean:.1f}%" if r.mean and r.mean > 0 else "-"
    row = (f"{r.name:<{width}}  {_cell_time(r.mean):>10}  {_cell_time(r.p50):>10}  "
           f"{_cell_time(r.p99):>10}  {spread:>7}  {r.ops_per_s:>14,.1f}  {r.iterations:>12,}")
    if r.memory if memory is None else memory:
        row += f"  {format_bytes(r.bytes_per_op) if r.memory else '-':>10}"
    if r.leak_check if leak is None else leak:
        text = ("LEAK " + format_bytes(r.leak_bytes_per_op) + "/op") if r.leak else "none"
        row += f"  {text if r.leak_check else '-':>14}"
    return row


def header(width: int, memory: bool, leak: bool) -> str:
    h = (f"{'benchmark':<{width}}  {'mean':>10}  {'p50':>10}  {'p99':>10}  {'stdev':>7}  "
         f"{'ops/s':>14}  {'calls':>12}")
    if memory:
        h += f"  {'bytes/op':>10}"
    if leak:
        h += f"  {'leak':>14}"
    return h


@click.command("bench", epilog=EXIT_CODES)
@click.argument("target", metavar="FILE.py[::FUNC]")
@click.option("--min-time", metavar="DURATION",
              help="Timed time per benchmark and caller: 1, 0.5s, 200ms (default 1s).")
@click.option("--warmup", metavar="N", help="Warm-up samples dropped after calibration "
              "(default: 10% of --min-time, at most 0.25 s).")
@click.option("--repeat", metavar="N", help="At least N timed samples per caller (default 5).")
@click.option("--processes", metavar="N", default="1", show_default=True,
              help="Worker processes (fresh interpreters), calling at once (throughput under "
                   "contention) or, with --sequential, one after another (noise averaging).")
@click.option("--sequential", is_flag=True, help="Run the --processes one after another.")
@click.option("--threads", metavar="N", default="1", show_default=True,
              help="Concurrent calling threads per process.")
@click.option("--memory", is_flag=True, help="Also measure bytes per call (tracemalloc), the "
              "peak and RSS growth.")
@click.option("--leak-check", is_flag=True, help="Also judge whether calls keep memory.")
@click.option("--threshold", "threshold", multiple=True, metavar="EXPR",
              help="Gate, repeatable: 'p99<50us', 'ops_per_s>10000', 'bytes_per_op<512', "
                   "'leak==0', 'bench_parse:mean<2us'. A failed threshold exits 3.")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Results directory (default stressx-results/bench-YYYYmmdd-HHMMSS).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the table.")
def bench_command(target, min_time, warmup, repeat, processes, sequential, threads, memory,
                  leak_check, threshold, out, as_json):
    """Run the bench_* functions of FILE.py (or the one named) and write their results.

    Each function is timed as stressx.benchmark() does (calibrated loops, warm-up dropped, the
    empty loop's cost subtracted, percentiles from an HDR histogram); async functions are
    awaited on uvloop. Compare two runs with `stressx compare A B`."""
    from . import gates as _gates
    try:
        path, func = split_target(target)
        opts = {"min_time": parse_duration(min_time, "--min-time") if min_time is not None else None,
                "warmup": _whole(warmup, "--warmup", 0), "repeat": _whole(repeat, "--repeat", 1),
                "processes": _whole(processes, "--processes", 1),
                "threads": _whole(threads, "--threads", 1), "sequential": sequential}
        gates = _gates.parse_all(threshold)
        need = _gates.needs(gates)
        memory, leak_check = memory or need["memory"], leak_check or need["leak_check"]
        module_name, functions = collect(path, func)
        _gates.check_scopes(gates, [n for n, _ in functions])
    except ConfigError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    code = run_file(path, module_name, functions, opts, memory, leak_check, gates, out, as_json)
    sys.exit(code)


def run_file(path: Path, module_name: str, functions, opts: dict, memory: bool,
             leak_check: bool, gates, out, as_json: bool) -> int:
    from . import gates as _gates
    from .api import run
    from .files import write_results
    from .measure import BenchmarkError, Target
    width = max([len(n) for n, _ in functions] + [9])
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    echo(header(width, memory, leak_check))
    results, failed = [], []
    for qualname, fn in functions:
        t = Target(fn, name=qualname, spec=("file", str(path.resolve()), module_name, qualname))
        try:
            r = run(t, memory=memory, leak_check=leak_check, **opts)
        except BenchmarkError as exc:
            _err(f"{qualname}: {exc}")
            failed.append(qualname)
            continue
        results.append(r)
        echo(format_row(r, width))
    out_dir = Path(out) if out else Path("stressx-results") / time.strftime("bench-%Y%m%d-%H%M%S")
    verdicts = _gates.evaluate(gates, results)
    config = {"file": str(path), "functions": [n for n, _ in functions], "memory": memory,
              "leak_check": leak_check, "thresholds": [g.expression for g in gates],
              **{k: v for k, v in opts.items() if v is not None}}
    if results:
        write_results(out_dir, results, config, verdicts if gates else None)
        echo(f"results: {out_dir}")
    if as_json and results:
        click.echo((out_dir / "summary.json").read_text().rstrip("\n"))
    for v in verdicts:
        echo(("  ok    " if v.passed else "  FAIL  ") + v.message)
    if failed:
        return EXIT_ERROR
    return EXIT_THRESHOLDS if any(not v.passed for v in verdicts) else EXIT_OK


def _bench_dir(name_or_path) -> Path | None:
    """The directory `stressx compare` would read for BASELINE (a path or a saved name)."""
    p = Path(str(name_or_path))
    if p.is_dir():
        return p
    from ..judge.compare import baselines_dir
    d = baselines_dir() / str(name_or_path)
    return d if d.is_dir() else None


def maybe_compare(baseline, current, threshold, fmt: str, out) -> None:
    """`stressx compare` on benchmark results: compare, print, and exit (3 on a regression);
    return when neither directory holds benchmark results."""
    from .files import is_bench_dir
    base_dir = _bench_dir(baseline)
    base_is = base_dir is not None and is_bench_dir(base_dir)
    cur_is = is_bench_dir(current)
    if not base_is and not cur_is:
        return
    if base_is != cur_is:
        which, other = (baseline, current) if base_is else (current, baseline)
        _err(f"cannot compare benchmark results ({which}) with something else ({other}): "
             f"give two `stressx bench` results directories")
        sys.exit(EXIT_USAGE)
    from ..judge.compare import parse_percent
    from ..results.files import FormatVersionError
    from .compare import FORMATTERS, compare_dirs
    try:
        pct = parse_percent(threshold)
        comparison = compare_dirs(base_dir, current, pct)
    except (ConfigError, FormatVersionError) as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    except (OSError, ValueError, KeyError) as exc:
        _err(f"cannot read benchmark results: {exc}")
        sys.exit(EXIT_USAGE)
    text = FORMATTERS.get(fmt, FORMATTERS["text"])(comparison)
    if out:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        click.echo(f"{fmt}: {out}")
    else:
        click.echo(text.rstrip("\n"))
    sys.exit(EXIT_THRESHOLDS if comparison["regressions"] else EXIT_OK)


def register(main: click.Group) -> None:
    """Add `bench` to the `stressx` command group."""
    main.add_command(bench_command)
