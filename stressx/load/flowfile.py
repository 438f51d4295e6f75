"""Python workload files: scenarios written as `async def` functions taking a virtual user.

    import stressx

    @stressx.scenario(weight=3, think=0.5)
    async def browse(user):
        '''Log in, then read an item.'''
        r = await user.get("/login?u=alice")
        await user.get("/items/42", headers={"Authorization": f"Bearer {r.json()['token']}"})

The decorators only register: `load_flow` imports the file under a private module name (never
`__main__`, never in sys.modules under its own name) and collects what registered while it ran.
A file that does not compile or raises while it is imported is a ConfigError naming the file
and line, before anything is sent; the coordinator imports it once to learn the scenarios, and
every shard imports it again to run them (stressx.flows).
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import inspect
import json
import random
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError


@dataclass
class FlowScenario:
    fn: object
    name: str
    weight: float = 1.0
    think: float | tuple | None = None      # seconds between iterations (or a (lo, hi) range)
    description: str = ""


@dataclass
class Registry:
    """What a flow file registered while it was imported."""
    scenarios: list = field(default_factory=list)
    user_start: list = field(default_factory=list)     # async fn(user), before a user's first iteration
    user_stop: list = field(default_factory=list)      # async fn(user), when the run ends
    run_start: list = field(default_factory=list)      # async fn(), once per shard before the start
    run_stop: list = field(default_factory=list)       # async fn(), once per shard at the end
    feeders: list = field(default_factory=list)
    module: object = None


_loading: Registry | None = None     # the registry of the file being imported


def _registry() -> Registry:
    global _loading
    if _loading is None:      # decorators used outside a workload file (a test, a REPL)
        _loading = Registry()
    return _loading


def _check_async(fn, what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        where = f"{fn.__code__.co_filename}:{fn.__code__.co_firstlineno}" if hasattr(fn, "__code__") else repr(fn)
        raise TypeError(f"{what} needs an `async def` function: {getattr(fn, '__name__', fn)} at {where}")


def scenario(fn=None, *, weight: float = 1.0, name: str | None = None, think=None):
    """Register an `async def f(user)` as a scenario of the mix: `weight` its share of the
    iterations, `name` its name (default the function's), `think` seconds a user waits after
    each of its iterations (a number, or (low, high) for a uniform draw)."""
    def register(f):
        _check_async(f, "@stressx.scenario")
        doc = " ".join((inspect.getdoc(f) or "").split())
        _registry().scenarios.append(FlowScenario(f, name or f.__name__, float(weight), think, doc))
        return f
    return register(fn) if fn is not None else register


def _hook(kind: str, fn, scope: str):
    if scope not in ("user", "run"):
        raise ValueError(f"@stressx.{kind}: scope is 'user' or 'run', got {scope!r}")
    def register(f):
        _check_async(f, f"@stressx.{kind}")
        getattr(_registry(), f"{scope}_{kind[3:]}").append(f)
        return f
    return register(fn) if fn is not None else register


def on_start(fn=None, *, scope: str = "user"):
    """Register setup: `async def f(user)` before each user's first iteration (scope='user',
    the default), or `async def f()` once per shard before the run starts (scope='run')."""
    return _hook("on_start", fn, scope)


def on_stop(fn=None, *, scope: str = "user"):
    """Register teardown: per user at the end of the run, or once per shard (scope='run')."""
    return _hook("on_stop", fn, scope)


class Feeder:
    """Rows of test data (CSV with a header row: dicts; JSON lines: one value a line), read
    once per shard. Each shard takes its own share (rows shard_index, shard_index + count, ...),
    so no two shards hand out the same row; `order` 'cycle' goes round them in turn, 'random'
    draws one each time. `next(feeder)` or `feeder.next()`."""

    def __init__(self, path, order: str = "cycle", base: Path | None = None):
        if order not in ("cycle", "random"):
            raise ValueError(f"stressx.feeder: order is 'cycle' or 'random', got {order!r}")
        p = Path(path)
        if not p.is_absolute() and base is not None:
            p = base / p
        self.path, self.order = p, order
        self.shard_index, self.shard_count = 0, 1
        self._rows: list | None = None
        self._i = 0
        self._rng = random.Random()

    def _share(self, index: int, count: int) -> None:
        self.shard_index, self.shard_count = index, count
        self._rows = None
        self._rng.seed(index + 1)

    def _load(self) -> list:
        text = self.path.read_text()
        if self.path.suffix == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        mine = rows[self.shard_index::self.shard_count]
        if not mine:
            raise ValueError(f"{self.path}: no rows for shard {self.shard_index} of "
                             f"{self.shard_count} ({len(rows)} rows in all)")
        return mine

    def rows(self) -> list:
        if self._rows is None:
            self._rows = self._load()
        return self._rows

    def next(self):
        rows = self.rows()
        if self.order == "random":
            return rows[self._rng.randrange(len(rows))]
        row = rows[self._i % len(rows)]
        self._i += 1
        return row

    __next__ = next

    def __iter__(self):
        return self


def feeder(path, order: str = "cycle") -> Feeder:
    """A Feeder over a CSV or JSON-lines file (relative to the workload file)."""
    caller = Path(inspect.stack()[1].filename).resolve().parent
    f = Feeder(path, order, caller)
    _registry().feeders.append(f)
    if not f.path.is_file():
        raise FileNotFoundError(f"stressx.feeder: no such file: {str(f.path)!r}")
    return f


def _user_frame(exc: BaseException, path: Path) -> int | None:
    """The line of the workload file where an exception raised while importing it."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return line


def import_flow(path) -> Registry:
    """Import a Python workload file and return what it registered. Raises ConfigError naming
    the file and line if it does not compile or raises while imported."""
    global _loading
    p = Path(path).resolve()
    if not p.is_file():
        raise ConfigError("--workload", f"cannot read {str(path)!r}: no such file")
    name = "_stressx_flow_" + hashlib.sha1(str(p).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, p)
    module = importlib.util.module_from_spec(spec)
    previous, _loading = _loading, Registry(module=module)
    sys.modules[name] = module          # dataclasses and pickling look their module up
    try:
        try:
            source = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"cannot read: {exc}") from None
        try:
            code = compile(source, str(p), "exec")
        except SyntaxError as exc:
            raise ConfigError(f"{path}:{exc.lineno}", f"SyntaxError: {exc.msg}") from None
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            line = _user_frame(exc, p)
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(where, f"{type(exc).__name__} while importing: {exc}") from None
        reg = _loading
    finally:
        _loading = previous
    if not reg.scenarios:
        raise ConfigError(str(path), "no scenarios: decorate an `async def f(user)` with @stressx.scenario")
    names = [s.name for s in reg.scenarios]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(str(path), f"scenario names must be unique; repeated: {', '.join(dup)}")
    for s in reg.scenarios:
        if not s.weight >= 0:
            raise ConfigError(f"{path}: scenario {s.name}", f"weight must be >= 0, got {s.weight}")
    if not sum(s.weight for s in reg.scenarios) > 0:
        raise ConfigError(str(path), "the scenario weights add up to 0")
    reg.module = module
    return reg
