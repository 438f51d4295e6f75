"""What every `stressx` command that sends load shares: its options, and the way from flags
(or STRESSX_* environment variables), a config file and a profile to settings (plan.py), to
validated runs, to the coordinator, thresholds and reports.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click
from click.core import ParameterSource

from . import cli_burn, cli_reports
from .engine.coordinator import Coordinator, check_fd_limits, effective_workers
from .errors import (EXIT_ABORTED, EXIT_INTERNAL, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE,
                     ConfigError, StartupError)
from .load import plan as _plan, shapes
from .report.text import format_summary

EXIT_CODES = """\b
Exit codes:
  0    run finished, thresholds passed
  1    internal error
  2    usage or configuration error
  3    thresholds failed, or a regression against --baseline
  4    run aborted (a shard lost, a safety stop)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM
"""
RATE_HELP = "requests per second: 10, 10/s or 600/m"
DURATION_HELP = "300, 300s, 5m or 1h30m"


def _err(message: str) -> None:
    click.echo(f"stressx: error: {message}", err=True)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def default_out_dir() -> Path:
    return Path("stressx-results") / time.strftime("%Y%m%d-%H%M%S")


class _OneLineError(click.ClickException):
    """A bad value click itself rejected (a choice, a boolean), shown as the one line every
    other bad input gets, naming the flag or the STRESSX_* variable it came from."""
    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        _err(self.format_message())


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


def _option(*decls, key, **kw):
    """A click option that can also come from STRESSX_<KEY>."""
    if kw.get("multiple"):
        kw.setdefault("type", _Lines())
    return click.option(*decls, key, envvar=_plan.env_var(key), show_envvar=True,
                        cls=_EnvOption, **kw)


def load_options(f):
    """Options of every command that sends load (all also readable from STRESSX_* vars)."""
    opts = [
        _option("--connections", "-c", key="connections", help="Closed model: connections, each "
                "sending the next request when the last completes (default 10). Open model: "
                "connections opened before the start."),
        _option("--max-connections", key="max_connections", help="Open model: cap on connections (default 1024)."),
        _option("--workers", "-w", key="workers", help="Shard processes (default: one per CPU this "
                "process may use: affinity and cgroup quota)."),
        _option("--timeout", key="timeout", help="Deadline of each request, connect included (default 10s)."),
        _option("--method", "-X", key="method", help="HTTP method (default GET)."),
        _option("--header", "-H", key="headers", multiple=True, help="'Name: value' (repeatable; "
                "in STRESSX_HEADERS one header per line)."),
        _option("--body", key="body", help="Request body text."),
        _option("--body-file", key="body_file", help="Request body from a file."),
        _option("--insecure", "-k", key="insecure", is_flag=True, default=None,
                help="Do not verify TLS certificates (recorded in the results)."),
        _option("--ca-file", key="ca_file", help="CA bundle to verify the target's certificate with."),
        _option("--workload", key="workload", help="A workload file or name (./workloads/NAME.yaml, else a built-in: stressx list-scenarios): a weighted mix of scenarios."),
        _option("--scenario", key="scenario", help="Only these scenarios of the workload (comma-separated)."),
        _option("--config", key="config", type=click.Path(dir_okay=False), help="A YAML config file."),
        _option("--profile", key="profile", help="Start from a named profile (stressx list-profiles)."),
        _option("--out", "-o", key="out", help="Results directory (default ./stressx-results/<timestamp>)."),
        click.option("--json", "as_json", is_flag=True, default=None, help="Print the summary JSON on stdout."),
        click.option("--quiet", "-q", is_flag=True, default=None, help="No progress lines."),
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
    output = {k: params.pop(k) for k in ("as_json", "quiet", "dry_run")}
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
    return settings, origins, output


def run_command(ctx: click.Context, params: dict, pattern: str | None = None,
                extra_companions=None) -> int:
    """A load command: settings -> plan -> runs, with thresholds, reports and baselines."""
    checks = cli_reports.pop_run_options(params)
    host = cli_burn.pop_burner_options(params)
    try:
        settings, origins, output = settings_for(ctx, params, pattern)
        checks = _file_checks(settings, origins, checks)
        for key in ("burn", "safety"):       # host load from a config file, under the flags'
            value = settings.pop(key, None)
            if value is not None and not host.get(key):
                host[key] = [value] if isinstance(value, str) else list(value)
        cli_reports.companions_for(**checks)          # every bad option exits 2 before a request
        cli_burn.companions_for(**host)               # bad --burn / --safety too (starts nothing)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    echo = _echo_err if output["as_json"] else click.echo

    def companions(config):   # burners first: they start before the shards, stop before the sampler
        return (cli_burn.companions_for(**host, config=config, echo=_echo_err)
                + cli_reports.companions_for(**checks)
                + (extra_companions(config) if extra_companions else []))
    extra = {key: list(host[key]) for key in ("burn", "safety") if host.get(key)}
    return run_plan(settings, origins, output, companions_for=companions,
                    after_run=lambda summary, out_dir: cli_reports.after_run(summary, out_dir, echo=echo, **checks),
                    plan_extra=extra)


THRESHOLD_KEYS = {"expressions", "window", "abort_on_fail", "criteria"}


def _file_checks(settings: dict, origins: dict, checks: dict) -> dict:
    """Thresholds, criteria, reports and baseline from a config file, under the flags'.
    `thresholds:` is a list of expressions, or a mapping {expressions: [...], window: 30s,
    abort_on_fail: true, criteria: ci} for a sliding-window judge during the run."""
    checks = dict(checks)
    file_origins = dict(checks.get("origins") or {})
    spec = settings.get("thresholds")
    if isinstance(spec, dict):
        where = origins.get("thresholds", "thresholds")
        for key in spec:
            if key not in THRESHOLD_KEYS:
                raise ConfigError(f"{where}.{key}", f"unknown key; thresholds take {', '.join(sorted(THRESHOLD_KEYS))}")
        for key, name in (("window", "threshold_window"), ("abort_on_fail", "abort_on_fail"),
                          ("criteria", "criteria")):
            if spec.get(key) is not None and not checks.get(name):
                checks[name] = spec[key]
                file_origins[name] = f"{where}.{key}"
        settings["thresholds"] = spec.get("expressions") or None
        origins["thresholds"] = f"{where}.expressions"
    for key, name in (("thresholds", "threshold"), ("criteria", "criteria"),
                      ("report", "report"), ("baseline", "baseline")):
        value = settings.pop(key, None)
        if value is None or checks.get(name):
            continue
        if name == "threshold":
            value = list(value) if isinstance(value, (list, tuple)) else [value]
        elif name == "report" and isinstance(value, (list, tuple)):
            value = ",".join(value)
        checks[name] = value
        file_origins[name] = origins.get(key, key)
    if file_origins:
        checks["origins"] = file_origins
    return checks


def check_resources(config) -> None:
    """The checks the coordinator makes before its first request (file descriptors), on a copy
    of a planned run, so a plan stops before any of its runs rather than halfway."""
    cfg = dataclasses.replace(config)
    cfg.workers = effective_workers(cfg)[0]
    check_fd_limits(cfg)


def run_plan(settings: dict, origins: dict, output: dict, companions_for=None, after_run=None,
             plan_extra: dict | None = None) -> int:
    """Validate every run first, then run them in order; returns the exit code. A dry run
    prints the runs (with `plan_extra`: burners, limits, an adaptive ramp) and runs nothing."""
    try:
        tests = _plan.plan(settings, origins, progress=not output["quiet"])
        if not output["dry_run"]:
            for t in tests:
                check_resources(t.config)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if output["dry_run"]:
        click.echo(json.dumps([{"name": t.name, **t.config.to_json(), **(plan_extra or {})}
                               for t in tests], indent=2, default=str))
        return EXIT_OK
    base = Path(settings["out"]) if settings.get("out") else default_out_dir()
    worst = EXIT_OK
    for t in tests:
        out_dir = base if len(tests) == 1 else base / t.name
        if len(tests) > 1:
            _echo_err(f"stressx: test {t.name}: {t.config.shape.describe() if t.config.shape else t.config.model}")
        companions = companions_for(t.config) if companions_for else []
        coordinator = Coordinator(t.config, out_dir, echo=_echo_err, companions=companions,
                                  yield_cpu=True)
        try:
            summary = coordinator.run()
        except ConfigError as exc:      # the run does not fit the host's limits: nothing sent
            _err(str(exc))
            return EXIT_USAGE
        except StartupError as exc:
            _err(str(exc))
            return EXIT_INTERNAL
        except KeyboardInterrupt:
            return coordinator.exit_code() or 130
        if output["as_json"]:
            click.echo(json.dumps(summary, indent=2))
        else:
            click.echo(format_summary(summary, str(out_dir)))
        code = after_run(summary, out_dir) if after_run else summary["exit_code"]
        if code >= 128:          # interrupted: the rest of the plan does not run
            return code
        worst = max(worst, code, key=lambda c: {EXIT_OK: 0, EXIT_THRESHOLDS: 1, EXIT_ABORTED: 2}.get(c, 3))
    return worst
