"""The virtual user a Python scenario gets: HTTP on its own keep-alive connection (the
compiled FlowConn), cookies, redirects, think time, checks, timed blocks, per-user state."""
from __future__ import annotations

import asyncio
import time
import traceback

from ..engine import _core

RequestError = _core.RequestError
Response = _core.Response


TooManyRedirects = _core.TooManyRedirects


class CheckFailed(Exception):
    """Raise it to end an iteration as failed kind `check` (not `scenario_error`): what a
    YAML WebSocket scenario does when an echo differs."""


def default_name(method: str, path: str) -> str:
    """A request's step name unless name= says otherwise: method and path without the query."""
    return f"{method} {path.split('?', 1)[0]}"


class Timed:
    """`async with user.timed("db.query"):` times its body as a step (an exception in it
    counts the step as a `scenario_error`, and propagates)."""
    __slots__ = ("_runner", "_step", "_t0")

    def __init__(self, runner, name: str):
        self._runner = runner
        self._step = runner.step_index(name)

    async def __aenter__(self):
        self._t0 = time.monotonic_ns()
        return self

    async def __aexit__(self, et, ev, tb):
        self._runner.stats.record_step(self._step, -1 if et is None else _core.ERROR_KIND["scenario_error"],
                                       self._t0, time.monotonic_ns())
        return False


class User(_core.UserCore):
    """One virtual user: its connection, its cookies (`cookies`, a dict), `state` (a dict of
    its own). get/post/put/patch/delete/head/request are compiled (engine/_flow.pxi)."""

    def __init__(self, runner, index: int):
        super().__init__(runner)
        self.index = index
        self.state: dict = {}
        self._websockets: set = set()

    async def websocket(self, path: str, *, headers=None, subprotocols=(), name: str | None = None):
        """Open a WebSocket on a connection of its own (see stressx.flows.ws)."""
        from .ws import connect
        return await connect(self, path, headers=headers, subprotocols=subprotocols, name=name)

    # -- the rest --------------------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        """Think time."""
        await asyncio.sleep(seconds)

    def check(self, condition, name: str) -> bool:
        """Count a check under `name`: passed or failed (failed ones do not end the iteration)."""
        ok = bool(condition)
        self.runner.count_check(name, ok)
        return ok

    def timed(self, name: str) -> Timed:
        return Timed(self.runner, name)

    @property
    def shard(self) -> int:
        return self.runner.shard_index

    def close(self) -> None:
        for ws in list(self._websockets):
            ws.abort()
        self._websockets.clear()
        if self.conn is not None:
            self.conn.abort()
            self.conn = None


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
