"""Embedded target server that stressx tests and `stressx demo`/`serve` load.

Any path and method answers with ``size`` bytes of ``b"x"`` and ``status``
after ``delay`` ms; per-request overrides come from the query string
(``?delay=ms&status=code&size=bytes``). ``/health`` always answers 200 "ok".

For multi-step flows (Python scenarios) a few paths behave differently: ``/login?u=NAME``
answers JSON ``{"token": "tok-NAME"}`` and sets cookie ``session=sess-NAME``; ``/me`` answers
``{"user": NAME}`` for ``Authorization: Bearer tok-NAME`` and 401 without it; ``/cookies``
echoes the Cookie header it got; ``/redirect/N`` redirects (302) to ``/redirect/N-1`` down to
``/redirect/0``, which answers 200 "done"; ``/ws`` is a WebSocket echo (text and binary; a
text message "close" makes the server close with code 4000).
The handler is kept minimal (no access log, no parsing when there is no query
string) so it can sustain thousands of requests per second. Loopback only.

Each server keeps its own tally (``Counts``) of the connections it accepted and the requests
it received, so tests can check the load generator's figures against an independent count.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections import Counter
from typing import Optional

from aiohttp import web

from .faults import LoopThread, format_url, require_loopback

MAX_DELAY_MS = 60_000.0
MAX_SIZE = 16 * 1024 * 1024


def _param(query, name: str, conv, lo, hi, default):
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = conv(raw)
    except ValueError:
        value = None
    if value is None or not (lo <= value <= hi):  # NaN fails the range check too
        raise web.HTTPBadRequest(text=f"bad {name}={raw!r}: expected {lo}..{hi}\n")
    return value


class Counts:
    """What the server itself saw, counted on its side of the socket: `connections` accepted
    (and, for TLS, handshaken), `requests` received (counted on arrival, before any delay),
    and `paths`: requests per URL path. /health is not counted."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.paths: Counter = Counter()

    def __repr__(self) -> str:
        return f"Counts(connections={self.connections}, requests={self.requests})"


COUNTS = web.AppKey("counts", Counts)   # the app's tally, for code holding only the app


def make_app(default_delay_ms: float = 0.0, default_status: int = 200, default_size: int = 2,
             concurrency: int = 0, counts: Optional[Counts] = None) -> web.Application:
    """aiohttp app: fixed small body, configurable delay/status/size (see module doc).
    `concurrency` > 0 serves at most that many requests at once (the rest queue), like a fixed
    worker pool: with a delay of D ms its capacity is concurrency * 1000 / D requests/s, a known
    figure for capacity-search tests."""
    default_body = b"x" * default_size
    default_delay = default_delay_ms / 1000.0
    pool = asyncio.Semaphore(concurrency) if concurrency > 0 else None
    counts = counts if counts is not None else Counts()

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=b"ok")

    async def handler(request: web.Request) -> web.Response:
        counts.requests += 1
        counts.paths[request.path] += 1
        if pool is not None:
            async with pool:
                return await serve(request)
        return await serve(request)

    async def serve(request: web.Request) -> web.Response:
        if not request.query_string:  # fast path
            if default_delay:
                await asyncio.sleep(default_delay)
            return web.Response(body=default_body, status=default_status)
        q = request.query
        delay = _param(q, "delay", float, 0.0, MAX_DELAY_MS, default_delay_ms)
        status = _param(q, "status", int, 200, 599, default_status)
        size = _param(q, "size", int, 0, MAX_SIZE, default_size)
        if delay:
            await asyncio.sleep(delay / 1000.0)
        return web.Response(body=b"x" * size, status=status)

    def counted(fn):
        async def wrapped(request: web.Request):
            counts.requests += 1
            counts.paths[request.path] += 1
            return await fn(request)
        return wrapped

    async def login(request: web.Request) -> web.Response:
        name = request.query.get("u", "anon")
        resp = web.json_response({"token": f"tok-{name}"})
        resp.set_cookie("session", f"sess-{name}")
        return resp

    async def me(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer tok-"):
            return web.json_response({"error": "no token"}, status=401)
        return web.json_response({"user": auth[len("Bearer tok-"):]})

    async def cookies(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", ""))

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n <= 0:
            return web.Response(text="done")
        return web.Response(status=302, headers={"Location": f"/redirect/{n - 1}"})

    async def ws(request: web.Request):
        sock = web.WebSocketResponse(protocols=("echo", "chat"))
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == web.WSMsgType.TEXT:
                if msg.data == "close":
                    await sock.close(code=4000, message=b"asked to")
                    break
                await sock.send_str(msg.data)
            elif msg.type == web.WSMsgType.BINARY:
                await sock.send_bytes(msg.data)
        return sock

    app = web.Application()
    app[COUNTS] = counts
    app.router.add_route("*", "/health", health)
    app.router.add_route("*", "/login", counted(login))
    app.router.add_route("*", "/me", counted(me))
    app.router.add_route("*", "/cookies", counted(cookies))
    app.router.add_route("*", r"/redirect/{n:\d+}", counted(redirect))
    app.router.add_route("GET", "/ws", counted(ws))
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


class Target:
    """A running target server: ``.host``, ``.port``, ``.url``, ``.counts``, ``await close()``."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, scheme: str,
                 counts: Counts) -> None:
        self._runner, self.host, self.port, self.counts = runner, host, port, counts
        self.url = format_url(scheme, host, port)

    @property
    def requests(self) -> int:
        """Requests this server has received (any path but /health): ``counts.requests``."""
        return self.counts.requests

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_target(host: str = "127.0.0.1", port: int = 0, *, delay_ms: float = 0.0, status: int = 200,
                       size: int = 2, ssl_context: Optional[ssl.SSLContext] = None,
                       concurrency: int = 0) -> Target:
    """Start the target on loopback (ValueError otherwise); ``port=0`` picks a free port."""
    require_loopback(host)
    counts = Counts()
    runner = web.AppRunner(make_app(delay_ms, status, size, concurrency, counts), access_log=None,
                           handle_signals=False)
    await runner.setup()
    server, accepted = runner.server, runner.server.connection_made

    def connection_made(handler, transport) -> None:   # once per accepted connection
        counts.connections += 1
        accepted(handler, transport)
    server.connection_made = connection_made
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return Target(runner, host, bound_port, "https" if ssl_context else "http", counts)


class TargetThread(LoopThread):
    """``with TargetThread(delay_ms=5) as t: t.url`` — target in a background thread.

    For sync tests and ``stressx demo``. Raises if not started within 2 s.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, delay_ms: float = 0.0, status: int = 200,
                 size: int = 2, ssl_context: Optional[ssl.SSLContext] = None, concurrency: int = 0) -> None:
        super().__init__()
        require_loopback(host)
        self._args = dict(host=host, port=port, delay_ms=delay_ms, status=status, size=size,
                          ssl_context=ssl_context, concurrency=concurrency)

    async def _start(self) -> Target:
        return await start_target(**self._args)

    async def _stop(self, server: Target) -> None:
        await server.close()

    host = property(lambda self: self.server.host)
    port = property(lambda self: self.server.port)
    url = property(lambda self: self.server.url)
    counts = property(lambda self: self.server.counts)
    requests = property(lambda self: self.server.requests)


def serve_forever(host: str = "127.0.0.1", port: int = 8080, delay_ms: float = 0.0, status: int = 200,
                  size: int = 2, concurrency: int = 0) -> int:
    """Blocking server for ``stressx serve``; stops cleanly on SIGINT/SIGTERM and returns the
    signal's exit code (130/143), as every stressx command does."""
    received: list[int] = []

    async def main() -> None:
        target = await start_target(host, port, delay_ms=delay_ms, status=status, size=size,
                                    concurrency=concurrency)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, lambda sig=sig: (received.append(sig), stop.set()))
            except (NotImplementedError, RuntimeError, ValueError):  # e.g. non-main thread
                pass
        print(f"stressx target listening on {target.url}", flush=True)
        try:
            await stop.wait()
        finally:
            await target.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        received.append(signal.SIGINT)
    return 128 + received[0] if received else 0
