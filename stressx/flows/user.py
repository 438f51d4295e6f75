"""The virtual user a Python scenario gets: HTTP on its own keep-alive connection (the
compiled FlowConn), cookies, redirects, think time, checks, timed blocks, per-user state."""
from __future__ import annotations

import asyncio
import json as _json
import time
import traceback
from urllib.parse import urlsplit

from ..engine import _core

RequestError = _core.RequestError
Response = _core.Response
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


class TooManyRedirects(Exception):
    """More redirects in a row than user.max_redirects."""


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


class User:
    """One virtual user: its connection, its cookies, `state` (a dict of its own)."""

    def __init__(self, runner, index: int):
        self._runner = runner
        self.index = index
        self.state: dict = {}
        self.cookies: dict[str, str] = {}
        self.max_redirects = MAX_REDIRECTS
        self._conn = None

    # -- HTTP ------------------------------------------------------------------------------
    async def _connect(self, step: int, t0: int):
        r = self._runner
        if self._conn is not None:
            self._conn.abort()
            self._conn = None
        conn = _core.FlowConn(r.stats, r.loop)
        r.stats.add("connect_attempts")
        try:
            await r.loop.create_connection(conn, r.address, r.port, ssl=r.ssl_context,
                                           server_hostname=r.server_hostname)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = _core.error_kind(exc, True)
            r.stats.request_failed(step, _core.ERROR_KIND[kind], t0)
            raise RequestError(kind, str(exc)) from None
        self._conn = conn
        return conn

    def _build(self, method: str, path: str, headers, body: bytes) -> bytes:
        r = self._runner
        if headers is None and not body and not self.cookies:
            key = (method, path)
            data = r.request_cache.get(key)
            if data is None:
                data = f"{method} {path} HTTP/1.1\r\nHost: {r.host_header}\r\nUser-Agent: {r.agent}\r\n\r\n".encode()
                if len(r.request_cache) < 4096:
                    r.request_cache[key] = data
            return data
        lines = [f"{method} {path} HTTP/1.1"]
        given = set()
        if headers:
            for k, v in (headers.items() if isinstance(headers, dict) else headers):
                given.add(k.lower())
                lines.append(f"{k}: {v}")
        if "host" not in given:
            lines.append(f"Host: {r.host_header}")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {r.agent}")
        if self.cookies and "cookie" not in given:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in given:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body

    def _keep_cookies(self, resp) -> None:
        if not resp.headers.get_all("set-cookie"):
            return
        for line in resp.headers.get_all("set-cookie"):
            first, _, attrs = line.partition(";")
            name, eq, value = first.strip().partition("=")
            if not eq or not name:
                continue
            low = attrs.lower().replace(" ", "")
            if "max-age=0" in low or "max-age=-" in low:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value.strip()

    async def request(self, method: str, path: str, *, headers=None, body=b"", json=None,
                      name: str | None = None, allow_redirects: bool = True):
        """Send one request on this user's connection (reconnecting if the server closed it)
        and return its Response; a request that gets no response raises RequestError. Counted
        under step `name` (default "METHOD /path"); each redirect hop is a request of its own,
        counted under the same name when one is given, else under its own default name."""
        method = method.upper()
        if json is not None:
            body = _json.dumps(json).encode()
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        r = self._runner
        history = []
        while True:
            step = r.step_index(name or default_name(method, path))
            data = self._build(method, path, headers, body)
            conn = self._conn
            if conn is None or not conn.idle:
                conn = await self._connect(step, time.monotonic_ns())
            try:
                resp = await conn.request(data, step, method == "HEAD")
            except asyncio.CancelledError:
                conn.abort()
                self._conn = None
                raise
            resp.url = path
            if self.cookies or "set-cookie" in resp.headers:
                self._keep_cookies(resp)
            if not (allow_redirects and resp.status in REDIRECTS):
                resp.history = history
                return resp
            location = resp.headers.get("location")
            if not location:
                resp.history = history
                return resp
            parts = urlsplit(location)
            if parts.netloc and parts.netloc != r.host_header:
                resp.history = history       # another host: not followed
                return resp
            history.append(resp)
            if len(history) > self.max_redirects:
                raise TooManyRedirects(f"more than {self.max_redirects} redirects from {history[0].url}")
            r.stats.add("redirects")
            if parts.path.startswith("/"):
                path = parts.path
            else:
                path = path.split("?", 1)[0].rsplit("/", 1)[0] + "/" + parts.path
            path += f"?{parts.query}" if parts.query else ""
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", b""
                if headers:
                    headers = {k: v for k, v in (headers.items() if isinstance(headers, dict) else headers)
                               if k.lower() not in ("content-type", "content-length")}

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

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
        self._runner.count_check(name, ok)
        return ok

    def timed(self, name: str) -> Timed:
        return Timed(self._runner, name)

    @property
    def shard(self) -> int:
        return self._runner.shard_index

    def close(self) -> None:
        if self._conn is not None:
            self._conn.abort()
            self._conn = None


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
