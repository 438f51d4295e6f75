"""Ctrl-C while the `stressx` program is still importing: nothing has been done yet, so it
exits 130 at once, without a traceback from the middle of an import.

Imported first by the cli package, before the slow imports; the handler is installed only when
this process is the program (the `stressx` script or `python -m stressx.cli`), never when a
library or a test imports the CLI. The command group puts the default handler back when a
command starts.
"""
from __future__ import annotations

import os
import signal
import sys

from ..errors import EXIT_SIGINT


def interrupted_while_starting(signum, frame):
    """SIGINT while the command is still importing: leave at once with the interrupted exit
    code."""
    os._exit(EXIT_SIGINT)


def is_program() -> bool:
    """This process runs the `stressx` command: the console script, or `python -m stressx.cli`
    (while Python imports the package it is about to run, sys.argv[0] is "-m")."""
    if os.path.basename(sys.argv[0] if sys.argv else "") == "stressx":
        return True
    argv = list(getattr(sys, "orig_argv", []))
    return (sys.argv[:1] == ["-m"]
            and any(a == "-mstressx.cli" or (a == "-m" and b == "stressx.cli")
                    for a, b in zip(argv, argv[1:] + [""])))


GUARDED = False
if is_program():
    try:
        signal.signal(signal.SIGINT, interrupted_while_starting)
        GUARDED = True
    except ValueError:      # not the main thread
        pass
