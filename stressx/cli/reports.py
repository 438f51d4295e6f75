"""The command line of thresholds, reports, comparisons and baselines.

`register(main)` adds the commands `report`, `compare` and `baseline save|list`. Commands that
send load take `run_options` (--threshold, --criteria, --threshold-window, --abort-on-fail,
--report, --baseline, --regression-threshold); their values become a
pipeline.Checks (validated before any request, judged after the run by the library), and
`show_verdict` prints what the judging found.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path

import click

from .. import report as _report
from ..engine.coordinator import Companion
from ..pipeline import Checks
from ..errors import EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE, ConfigError
from ..judge import compare as _compare, thresholds as _thresholds
from ..report.comparison import FORMATTERS as COMPARISON_FORMATTERS, format_text as format_comparison
from ..report.text import format_thresholds
from ..results.files import FormatVersionError
from ..results.summary import range_figures
from ..units import parse_duration
from .common import err
from ..microbench.command import maybe_compare as maybe_compare_benchmarks

RUN_OPTION_NAMES = ("threshold", "criteria", "threshold_window", "abort_on_fail", "report",
                    "baseline", "regression_threshold")


def run_options(f):
    """Threshold, report and baseline options for every command that sends load."""
    opts = [
        click.option("--threshold", "threshold", multiple=True, metavar="EXPR",
                     help="Pass/fail threshold, repeatable: 'p99<200ms', 'error_rate<1%', "
                          "'rps>50', 'status_5xx==0', 'baseline_violations<5%', "
                          "'SCENARIO:p95<1s' (p50 p90 p95 p99 p999 max mean; < <= > >= == !=). "
                          "A failed threshold exits 3."),
        click.option("--criteria", metavar="NAME",
                     help="A built-in threshold set: " + "; ".join(
                         f"{k}: {', '.join(v)}" for k, v in _thresholds.CRITERIA.items()) + "."),
        click.option("--threshold-window", metavar="DURATION",
                     help="Also judge the thresholds over a sliding window of this length while "
                          "the run goes on (e.g. 30s; percentiles exact, from the intervals' "
                          "latency histograms)."),
        click.option("--abort-on-fail", is_flag=True,
                     help="Stop the run as soon as a windowed threshold fails (exit 3); the "
                          f"window is {_thresholds.DEFAULT_WINDOW_S:g}s unless --threshold-window."),
        click.option("--report", "report", metavar="FORMATS",
                     help="Reports to write into the results directory: json, md, html, junit "
                          "(comma-separated) or all."),
        click.option("--baseline", metavar="NAME",
                     help="Compare with a saved baseline (or a results directory); a "
                          "regression exits 3."),
        click.option("--regression-threshold", metavar="PCT", default=None,
                     help=f"With --baseline: the change that counts as a regression "
                          f"(default {_compare.DEFAULT_REGRESSION_PCT:g}%)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def pop_run_options(options: dict) -> dict:
    """Take run_options' values out of a command's **options (the rest go to the run)."""
    return {name: options.pop(name) for name in RUN_OPTION_NAMES if name in options}


def companions_for(**options) -> list[Companion]:
    """Validate run_options' values (ConfigError on the first bad one: exit 2 before any
    request) and return the companions the run needs: the sliding-window judge, if asked.
    Takes run_options' names (threshold is a list of expressions) and optionally `origins`."""
    return Checks.resolve(**options).companions()


def after_run(summary: dict, out_dir, *, echo=click.echo, **options) -> int:
    """After a run: judge, write and report as the library does (pipeline.Checks.judge), print
    the verdicts, and return the exit code."""
    verdict = Checks.resolve(**options).judge(summary, out_dir)
    show_verdict(verdict, echo)
    return verdict.exit_code


def show_verdict(verdict, echo=click.echo) -> None:
    """The lines after a run's summary: the reports written, the threshold verdicts, the
    baseline comparison (`verdict`: a pipeline.Verdict or a Result)."""
    if verdict.reports:
        echo("reports: " + ", ".join(str(p) for p in verdict.reports.values()))
    if verdict.thresholds:
        echo(format_thresholds(verdict.thresholds))
    if verdict.comparison is not None:
        echo(format_comparison(verdict.comparison))


# -- commands ---------------------------------------------------------------------------------

def register(main: click.Group) -> None:
    """Add `report`, `compare` and `baseline` to the `stressx` command group."""
    main.add_command(report_command)
    main.add_command(compare_command)
    main.add_command(baseline_group)


@click.command("report")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--format", "-f", "formats", default="all", show_default=True,
              help="json, md, html, junit (comma-separated) or all.")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Where to write the reports (default: RESULTS_DIR itself).")
@click.option("--threshold", "threshold", multiple=True, metavar="EXPR",
              help="Judge these thresholds now (replacing the stored verdicts in the reports, "
                   "and in RESULTS_DIR/thresholds.json when --out is not given); exit 3 if one fails.")
@click.option("--criteria", metavar="NAME", help="A built-in threshold set to judge now.")
@click.option("--from", "from_", metavar="DURATION",
              help="With --to or alone: instead of the reports, the figures of the intervals "
                   "from this time after the start on (e.g. 30s), latency percentiles exact "
                   "(from latency.hlog); printed and saved as range-FROM-TO.json; thresholds "
                   "are judged on them.")
@click.option("--to", "to", metavar="DURATION",
              help="The end of that range (default: the end of the run).")
def report_command(results_dir, formats, out, threshold, criteria, from_, to):
    """Build reports from a results directory alone (any run, any time later)."""
    path = Path(results_dir)
    try:
        names = _report.parse_formats(formats)
        ths = _thresholds.resolve(threshold, criteria)
        span = _parse_range(from_, to)
        if not (path / "manifest.json").exists() and (path / _report.SCALING_FILE).exists():
            # a scaling test's base directory: every level's reports, with the analysis
            if ths:
                raise ConfigError("--threshold", f"{path} holds a scaling test: judge its levels "
                                                 f"one by one ({path}/instances-N)")
            for name, p in _report.build(path, names, out).items():
                click.echo(f"{name}: {p}")
            sys.exit(EXIT_OK)
        runs = [path]
        if not (path / "manifest.json").exists():
            # a sequence of tests (stressx run --config with `tests:`) or capacity probes: one
            # report per run directory below
            runs = sorted(p.parent for p in path.glob("*/manifest.json")) or runs
        if span is not None:
            _range_reports(runs, span, ths, out)
        loaded = [(p, _report.load(p)) for p in runs]
    except (ConfigError, FormatVersionError) as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)
    except (OSError, ValueError) as exc:
        err(f"RESULTS_DIR: cannot read {results_dir}: {exc}")
        sys.exit(EXIT_USAGE)
    code = EXIT_OK
    for run_dir, data in loaded:
        target_dir = (Path(out) / run_dir.name if len(loaded) > 1 else Path(out)) if out else run_dir
        if ths:
            verdicts = _thresholds.evaluate(ths, data.summary)
            data.thresholds = [v.to_json() for v in verdicts]
            _thresholds.save(target_dir, verdicts, criteria_name=criteria)
            if len(loaded) > 1:
                click.echo(f"{run_dir.name}:")
            click.echo(format_thresholds(data.thresholds))
            if not all(v.passed for v in verdicts):
                code = EXIT_THRESHOLDS
        for name, p in _report.write(data, names, target_dir).items():
            click.echo(f"{name}: {p}")
    sys.exit(code)


def _parse_range(from_, to) -> tuple[float, float] | None:
    """--from/--to as seconds after the start instant (None: no range asked)."""
    if from_ is None and to is None:
        return None
    zero = re.compile(r"\s*0*\.?0*\s*(h|m|s|ms|us)?\s*")
    lo = 0.0 if from_ is None or zero.fullmatch(str(from_)) else parse_duration(from_, "--from")
    hi = math.inf if to is None else parse_duration(to, "--to")
    if hi <= lo:
        raise ConfigError("--to", f"must be after --from ({to!r} is not after {from_!r})")
    return lo, hi


def _range_reports(runs: list[Path], span: tuple[float, float], ths, out) -> None:
    """`report --from/--to`: each run's figures over the range, printed and saved; exits."""
    code = EXIT_OK
    tag = "-".join("end" if math.isinf(v) else f"{v:g}s" for v in span)
    done = []
    for run_dir in runs:
        try:
            figures = range_figures(run_dir, *span)
        except (OSError, ValueError) as exc:
            err(f"RESULTS_DIR: {exc}")
            sys.exit(EXIT_USAGE)
        target_dir = (Path(out) / run_dir.name if len(runs) > 1 else Path(out)) if out else run_dir
        target_dir.mkdir(parents=True, exist_ok=True)
        if ths:
            verdicts = _thresholds.evaluate(ths, figures)
            figures["thresholds"] = [v.to_json() for v in verdicts]
            if not all(v.passed for v in verdicts):
                code = EXIT_THRESHOLDS
        dest = target_dir / f"range-{tag}.json"
        dest.write_text(json.dumps(figures, indent=2) + "\n")
        done.append((run_dir, figures, dest))
    for run_dir, figures, dest in done:
        click.echo(format_range(run_dir, figures))
        if figures.get("thresholds"):
            click.echo(format_thresholds(figures["thresholds"]))
        click.echo(f"range: {dest}")
    sys.exit(code)


def format_range(run_dir: Path, f: dict) -> str:
    lo, hi = f["range_s"]
    errors = f["error_count"]
    share = f" ({errors / f['completed']:.2%})" if f["completed"] else ""
    lines = [f"{run_dir}: {lo:g} s .. {hi:g} s after the start ({f['intervals']} intervals)",
             f"  requests {f['requests']}  ok {f['ok']}  errors {errors}{share}  "
             f"rps {f['rps']:.1f}"]
    lat = f["latency_ms"]
    if lat:
        lines.append("  ok latency ms (exact):  " + "  ".join(
            f"{'p99.9' if k == 'p999' else k} {v:g}" for k, v in lat.items()))
    else:
        lines.append("  latency: no successful responses in the range")
    all_lat, censored = f.get("all_latency_ms"), f.get("all_latency_censored") or {}
    if all_lat and errors:
        lines.append("  all requests ms (exact):  " + "  ".join(
            f"{'p99.9' if k == 'p999' else k} {'≥' if k in (censored.get('keys') or ()) else ''}{v:g}"
            for k, v in all_lat.items()))
    if censored.get("text"):
        lines.append(f"  censored: {censored['text']}")
    return "\n".join(lines)


@click.command("compare")
@click.argument("baseline")
@click.argument("current", type=click.Path(file_okay=False))
@click.option("--threshold", default=f"{_compare.DEFAULT_REGRESSION_PCT:g}%", show_default=True,
              help="The change (in %) beyond which a worse metric is a regression.")
@click.option("--format", "-f", "fmt", type=click.Choice(list(COMPARISON_FORMATTERS)),
              default="text", show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write to this file, not stdout.")
def compare_command(baseline, current, threshold, fmt, out):
    """Compare CURRENT with BASELINE (a results directory or a saved baseline's name), per
    metric and per scenario. Exit 3 when something regressed beyond the threshold.
    Two `stressx bench` results directories are compared with a statistical test."""
    maybe_compare_benchmarks(baseline, current, threshold, fmt, out)
    try:
        pct = _compare.parse_percent(threshold)
        comparison = _compare.compare_dirs(baseline, current, pct)
    except (ConfigError, FormatVersionError) as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)
    except (OSError, ValueError) as exc:
        err(f"cannot read results: {exc}")
        sys.exit(EXIT_USAGE)
    text = COMPARISON_FORMATTERS[fmt](comparison)
    if out:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        click.echo(f"{fmt}: {out}")
    else:
        click.echo(text.rstrip("\n"))
    sys.exit(EXIT_THRESHOLDS if comparison["regressions"] else EXIT_OK)


@click.group("baseline")
def baseline_group():
    """Named baselines: results saved under $STRESSX_BASELINES (default ./stressx-baselines)
    to compare later runs with (`--baseline NAME`, `stressx compare NAME DIR`)."""


@baseline_group.command("save")
@click.argument("name")
@click.argument("results_dir", type=click.Path(file_okay=False))
def baseline_save(name, results_dir):
    """Save RESULTS_DIR as the baseline NAME (replacing an older one of that name)."""
    try:
        path = _compare.save_baseline(name, results_dir)
    except ConfigError as exc:
        err(str(exc))
        sys.exit(EXIT_USAGE)
    click.echo(f"saved baseline {name}: {path}")


@baseline_group.command("list")
def baseline_list():
    """The saved baselines: name, when saved, target, throughput and p99."""
    rows = _compare.list_baselines()
    if not rows:
        click.echo(f"no baselines in {_compare.baselines_dir()}")
        return
    width = max(4, *(len(r["name"]) for r in rows))
    click.echo(f"{'name':<{width}}  {'saved':<19}  {'req/s':>10}  {'p99 ms':>9}  url")
    for r in rows:
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["saved_unix"])) if r["saved_unix"] else "-"
        rps = f"{r['rps']:.1f}" if r["rps"] is not None else "-"
        p99 = f"{r['p99']:.3f}" if r["p99"] is not None else "-"
        click.echo(f"{r['name']:<{width}}  {saved:<19}  {rps:>10}  {p99:>9}  {r['url'] or '-'}")
