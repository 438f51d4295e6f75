"""Raw asyncio fault server for error-classification tests (no aiohttp).

Each instance misbehaves in exactly one way (its *mode*) so a test can assert
how the load generator classifies that failure:

- ``stall``:   read the request, never answer, hold the connection open.
- ``garbage``: answer each request with non-HTTP bytes, keep the connection.
- ``reset``:   read the request, then close with RST (SO_LINGER 0).
- ``close``:   read the request, send a truncated response, close with FIN.
- ``ok``:      correct minimal keep-alive HTTP/1.1 responder (bodyless
               requests only), so a test can kill it mid-run with ``stop()``.

Each server counts what arrives on its side (``connections`` accepted, ``requests``: complete
request heads received) so a test can check the client's figures against it.

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

MODES = ("stall", "garbage", "reset", "close", "ok", "eof")
GARBAGE = b"\x00\xffNOT HTTP\r\n\r\n"
PARTIAL = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# a valid response whose body ends when the server closes (no Content-Length, not chunked)
EOF_RESPONSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
_END = b"\r\n\r\n"


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
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(transport)
        self.server.accepted += 1

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.server.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        # Count request terminators; keep only the unterminated tail (3 bytes
        # suffice to catch a terminator split across reads).
        self.buf += data
        n = self.buf.count(_END)
        if n:
            self.buf = self.buf[self.buf.rfind(_END) + len(_END):]
        self.buf = self.buf[-3:] if len(self.buf) > 3 else self.buf
        if not n:
            return
        self.server.requests += n
        mode, t = self.server.mode, self.transport
        if mode == "ok":
            t.write(OK_RESPONSE * n)
        elif mode == "garbage":
            t.write(GARBAGE * n)
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
        # "stall": do nothing, ever.


class FaultServer:
    """Async fault server: ``await FaultServer(mode).start()`` then ``await stop()``."""

    def __init__(self, mode: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {MODES}")
        require_loopback(host)
        self.mode, self.host, self.port = mode, host, port
        self.connections: set = set()
        self.accepted = 0      # connections accepted since start
        self.requests = 0      # complete request heads received since start
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

    def __init__(self, mode: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self._fault = FaultServer(mode, host, port)  # validates mode and host eagerly

    async def _start(self) -> FaultServer:
        return await self._fault.start()

    async def _stop(self, server: FaultServer) -> None:
        await server.stop()

    mode = property(lambda self: self._fault.mode)
    host = property(lambda self: self._fault.host)
    port = property(lambda self: self._fault.port)
    url = property(lambda self: self._fault.url)
    accepted = property(lambda self: self._fault.accepted)
    requests = property(lambda self: self._fault.requests)
