"""Raw asyncio fault server for error-classification tests (no aiohttp).

Each instance misbehaves in exactly one way (its *mode*) so a test can assert
how the load generator classifies that failure:

- ``stall``:   read the request, never answer, hold the connection open.
- ``garbage``: answer each request with non-HTTP bytes, keep the connection.
- ``reset``:   read the request, then close with RST (SO_LINGER 0).
- ``close``:   read the request, send a truncated response, close with FIN.
- ``ok``:      correct minimal keep-alive HTTP/1.1 responder (bodyless
               requests only), so a test can kill it mid-run with ``stop()``.
- ``eof``:     a valid response whose body ends where the server closes.
- ``head``:    correct: HEAD gets the headers a GET gets (``Content-Length:
               1000``) and no body; other methods get the 1000-byte body.
- ``headbody``: answers HEAD with a body anyway (bytes nobody asked for).
- ``informational``: ``100 Continue``, then 10 ms later ``103 Early Hints``
               and the final ``200``.
- ``nocontent``: ``204`` and ``304`` in turn (across all connections), each
               with a ``Content-Length: 5`` that announces a body that is
               never sent (neither status has one).
- ``upgrade``: ``101 Switching Protocols`` that nobody asked for.
- ``stray``:   a valid response and extra bytes in the same write.
- ``double``:  two valid responses to each request, in the same write.
- ``straylate``: a valid response, then extra bytes 20 ms later.
- ``bigheader``: a valid response whose head (status line and header
               section) is ``head_bytes`` long (default 90,000).
- ``endlessheader``: a status line, then header lines forever (4 KiB every
               5 ms, capped at 64 MiB) until the client closes.
- ``delay``:   the ``ok`` responder, each answer ``delay_s`` after its request
               arrived (a slow target with unlimited concurrency).

Every server counts what it receives: ``requests``, ``accepted`` connections
and ``reused`` (requests that arrived on a connection that had already
carried one), so a test can compare stressx's counts with the server's own.

This module also holds the helpers shared with ``target``: the loopback guard
and the background-event-loop thread runner.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import threading
from typing import Any, Awaitable, Callable, Optional

MODES = ("stall", "garbage", "reset", "close", "ok", "eof", "head", "headbody", "informational",
         "nocontent", "upgrade", "stray", "double", "straylate", "bigheader", "endlessheader",
         "delay")
GARBAGE = b"\x00\xffNOT HTTP\r\n\r\n"
PARTIAL = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# a valid response whose body ends when the server closes (no Content-Length, not chunked)
EOF_RESPONSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
HEAD_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
NO_CONTENT = (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
              b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
STRAY = b"STRAY BYTES\r\n"
BIG_HEAD_BYTES = 90_000
ENDLESS_CAP_BYTES = 64 * 1024 * 1024
_END = b"\r\n\r\n"


def big_head_response(head_bytes: int) -> bytes:
    """A 200 response with body ``ok`` whose head (status line through the blank line that
    ends the header section) is exactly `head_bytes` long, in lines of about 100 bytes."""
    start, end = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", b"\r\n"
    room = head_bytes - len(start) - len(end)
    if room < 20:
        raise ValueError(f"head_bytes must be at least {len(start) + len(end) + 20}")
    lines, i = [], 0
    while room:
        size = room if room < 200 else 100        # the last line takes what is left
        name = b"X-Pad-%06d: " % i
        lines.append(name + b"x" * (size - len(name) - 2) + b"\r\n")
        room -= size
        i += 1
    return start + b"".join(lines) + end + b"ok"


def require_loopback(host: str) -> None:
    """Raise ValueError unless *host* is loopback: load traffic stays local."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing non-loopback host {host!r}: stressx test servers bind to loopback only")


def format_url(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port/`` with IPv6 literals bracketed."""
    h = f"[{host}]" if ":" in host else host
    return f"{scheme}://{h}:{port}/"


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port with nothing listening on it (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _FaultProtocol(asyncio.Protocol):
    """One client connection; reacts to each complete request per the mode."""

    def __init__(self, server: "FaultServer") -> None:
        self.server = server
        self.buf = b""
        self.served = 0
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(transport)
        self.server.accepted += 1

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.server.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        # Requests are bodyless: each ends at a blank line. Keep the unterminated tail.
        self.buf += data
        *requests, self.buf = self.buf.split(_END)
        for request in requests:
            self.server.requests += 1
            if self.served:
                self.server.reused += 1
            self.served += 1
            self.respond(request.split(b" ", 1)[0])

    def respond(self, method: bytes) -> None:
        mode, t, server = self.server.mode, self.transport, self.server
        if t.is_closing():
            return
        later = asyncio.get_running_loop().call_later
        if mode == "ok":
            t.write(OK_RESPONSE)
        elif mode == "delay":
            later(server.delay_s, self.write, OK_RESPONSE)
        elif mode == "garbage":
            t.write(GARBAGE)
        elif mode == "close":
            t.write(PARTIAL)
            t.close()
        elif mode == "eof":
            t.write(EOF_RESPONSE)
            t.close()
        elif mode == "reset":
            sock = t.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.abort()
        elif mode == "head":
            t.write(HEAD_RESPONSE if method == b"HEAD" else HEAD_RESPONSE + b"x" * 1000)
        elif mode == "headbody":
            t.write(HEAD_RESPONSE + b"x" * 1000)
        elif mode == "informational":
            t.write(CONTINUE)
            later(0.01, self.write, EARLY_HINTS + OK_RESPONSE)
        elif mode == "nocontent":
            t.write(NO_CONTENT[server.nocontent_turn % 2])
            server.nocontent_turn += 1
        elif mode == "upgrade":
            t.write(UPGRADE)
        elif mode == "stray":
            t.write(OK_RESPONSE + STRAY)
        elif mode == "double":
            t.write(OK_RESPONSE * 2)
        elif mode == "straylate":
            t.write(OK_RESPONSE)
            later(0.02, self.write, STRAY)
        elif mode == "bigheader":
            t.write(big_head_response(server.head_bytes))
        elif mode == "endlessheader":
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
            self.endless(0)
        # "stall": do nothing, ever.

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def endless(self, sent: int) -> None:
        """One more 4 KiB of header lines every 5 ms while the client listens."""
        if self.transport.is_closing() or sent >= ENDLESS_CAP_BYTES:
            return
        lines = b"".join(b"X-Endless-%09d: %s\r\n" % (sent + i, b"y" * 100) for i in range(32))
        self.transport.write(lines)
        asyncio.get_running_loop().call_later(0.005, self.endless, sent + len(lines))


class FaultServer:
    """Async fault server: ``await FaultServer(mode).start()`` then ``await stop()``."""

    def __init__(self, mode: str, host: str = "127.0.0.1", port: int = 0, *,
                 head_bytes: int = BIG_HEAD_BYTES, delay_s: float = 1.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {MODES}")
        require_loopback(host)
        self.mode, self.host, self.port = mode, host, port
        self.head_bytes = head_bytes     # bigheader: the response head's length
        big_head_response(head_bytes)    # validate now, not per request
        self.delay_s = delay_s           # delay: how long each answer takes
        self.connections: set = set()
        self.requests = 0                # requests received (a complete request head each)
        self.accepted = 0                # connections accepted
        self.reused = 0                  # requests on a connection that had carried one before
        self.nocontent_turn = 0
        self._server: Optional[asyncio.base_events.Server] = None

    @property
    def url(self) -> str:
        return format_url("http", self.host, self.port)

    async def start(self) -> "FaultServer":
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _FaultProtocol(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and abort every open client connection."""
        if self._server is not None:
            self._server.close()
        for t in list(self.connections):
            t.abort()
        self.connections.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class LoopThread:
    """Runs an async server in a daemon thread with its own event loop.

    Subclasses provide ``_start()`` (returns the started server object) and
    ``_stop(server)``. Used as a context manager by sync tests and the CLI.
    """

    start_timeout = 2.0

    def __init__(self) -> None:
        self.server: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    async def _start(self) -> Any:
        raise NotImplementedError

    async def _stop(self, server: Any) -> None:
        raise NotImplementedError

    def start(self):
        ready = threading.Event()
        error: list = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self.server = loop.run_until_complete(self._start())
            except BaseException as e:  # report to the starting thread
                error.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(self.start_timeout):
            raise RuntimeError(f"{type(self).__name__} did not start within {self.start_timeout}s")
        if error:
            raise error[0]
        return self

    def _call(self, coro_fn: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop).result(timeout)

    def stop(self) -> None:
        """Close the server (and its connections), end the loop, join the thread. Idempotent."""
        if self._thread is None:
            return
        if self.server is not None and self._loop.is_running():
            self._call(lambda: self._stop(self.server))
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class FaultServerThread(LoopThread):
    """``with FaultServerThread("reset") as f: f.url`` — fault server in a thread.

    ``stop()`` closes the listener and all open client connections, which
    simulates the server being killed mid-run.
    """

    def __init__(self, mode: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        super().__init__()
        self._fault = FaultServer(mode, host, port, **options)  # validates mode and host eagerly

    async def _start(self) -> FaultServer:
        return await self._fault.start()

    async def _stop(self, server: FaultServer) -> None:
        await server.stop()

    mode = property(lambda self: self._fault.mode)
    host = property(lambda self: self._fault.host)
    port = property(lambda self: self._fault.port)
    url = property(lambda self: self._fault.url)
    requests = property(lambda self: self._fault.requests)
    accepted = property(lambda self: self._fault.accepted)
    reused = property(lambda self: self._fault.reused)
