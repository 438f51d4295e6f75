"""What goes wrong, and the exit codes that say so: a leaf every stage imports.

A bad option, flag, environment variable, config key or workload field raises ConfigError
naming it; the CLI prints it as one line `stressx: error: ...` and exits EXIT_USAGE before any
request is sent. StartupError is a run that could not start (nothing was sent).
"""
from __future__ import annotations

import signal

EXIT_OK = 0             # finished; thresholds passed
EXIT_INTERNAL = 1       # internal error (a shard could not start)
EXIT_USAGE = 2          # usage or configuration error: nothing sent
EXIT_THRESHOLDS = 3     # thresholds failed, or a regression against the baseline
EXIT_ABORTED = 4        # aborted: a shard lost, a safety stop
EXIT_SIGINT = 130       # interrupted by SIGINT (Ctrl-C)
EXIT_SIGTERM = 143      # interrupted by SIGTERM
SIGNAL_EXIT = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}


class ConfigError(ValueError):
    """A bad option: `option` names it as the user wrote it (e.g. '--rate')."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


class StartupError(RuntimeError):
    """A shard could not start; the run sent nothing."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C reached a run where its own handler could not take it (while it was being set
    up or torn down): a KeyboardInterrupt carrying the exit code the run had come to."""

    def __init__(self, exit_code: int = EXIT_SIGINT):
        super().__init__(exit_code)
        self.exit_code = exit_code


def yaml_error(source: str, exc: Exception) -> ConfigError:
    """A YAML syntax error as one line: the file, the line and column, the parser's problem
    and what it was parsing (PyYAML's own text spans several lines)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return ConfigError(source, f"not valid YAML: {' '.join(str(exc).split())}")
    message = f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark:
        message += f" ({context} at line {cmark.line + 1}, column {cmark.column + 1})"
    elif context:
        message += f" ({context})"
    return ConfigError(source, message)
