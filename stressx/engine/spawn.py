"""The argv that runs a stressx module in a child process with exactly the parent's stressx.

`python -m stressx.engine.shard` puts the current directory first on sys.path: from a source checkout
after a non-editable `pip install .`, the unbuilt ./stressx folder (no compiled _core) shadows
the installed package and every child fails; any ./bisect.py or ./yaml.py would shadow the
standard library or a dependency the same way. So a child runs with `python -P` (neither the
current nor a script directory on sys.path) and loads the package from this very directory
(the directory of the stressx package this module belongs to) by an explicit import spec, then runs the module as
`python -m` would. The module name is its own argv element, so psutil/ps can still find
"stressx.engine.shard" or "stressx.hostload.burners" in a child's command line.
"""
from __future__ import annotations

import os
import sys

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # stressx/

# argv[1] package dir, argv[2] "full" | "light", argv[3] module; the module sees argv[3:].
# "light" creates the package module from its spec without executing stressx/__init__.py (the
# load engine, numpy, pyarrow): a burner then starts in ~60 ms with ~24 MiB resident instead of
# ~300 ms and ~64 MiB, which matters with one CPU burner per core and for how low a memory
# level can go.
_BOOT = """\
import sys, runpy, importlib.util as u
d, boot, mod = sys.argv[1:4]
spec = u.spec_from_file_location('stressx', d + '/__init__.py', submodule_search_locations=[d])
pkg = u.module_from_spec(spec)
sys.modules['stressx'] = pkg
if boot == 'full':
    spec.loader.exec_module(pkg)
del sys.argv[:3]
runpy.run_module(mod, run_name='__main__', alter_sys=True)
"""


def child_argv(module: str, *args: str, light: bool = False) -> list[str]:
    """argv running `module` (e.g. "stressx.engine.shard") like `python -m module args`, importing
    the stressx package this process imported, whatever the child's working directory.
    `light`: skip stressx/__init__.py (for modules that need none of it)."""
    if module != "stressx" and not module.startswith("stressx."):
        raise ValueError(f"not a stressx module: {module}")
    return [sys.executable, "-P", "-c", _BOOT, PACKAGE_DIR, "light" if light else "full",
            module, *args]
