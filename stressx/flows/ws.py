"""A WebSocket client (RFC 6455) for Python scenarios, on a compiled FlowConn of its own.

    ws = await user.websocket("/ws", subprotocols=["chat"])
    await ws.send("hello")
    reply = await ws.recv()          # str for a text message, bytes for a binary one
    await ws.close()

Written here rather than taken from a library: the handshake is one HTTP request on the same
compiled connection as every other request (so it is counted, timed and parsed the same way),
and what remains is framing: masking, fragments, ping/pong and the close handshake, ~150 lines.
The `websockets` package would bring its own connection and event-loop plumbing, and a
second HTTP client, for the same frames.

Steps: the handshake is a request of its own, step "WS /path connect"; each round trip (a send
followed by the next message received) is step "WS /path" (with name=: "NAME connect" and
"NAME"). A received message with no send before it is not a round trip and is not timed.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import os
import struct
import time

from ..engine import _core

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024


class WebSocketError(Exception):
    """The handshake failed (not a 101, a wrong Sec-WebSocket-Accept) or the peer broke the
    protocol."""


class ConnectionClosed(Exception):
    """recv() or send() on a closed WebSocket; `code` and `reason` of the close."""

    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"WebSocket closed (code {code}{': ' + reason if reason else ''})")
        self.code, self.reason = code, reason


def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame (masked, as RFC 6455 5.3 requires of a client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


class WebSocket:
    def __init__(self, user, conn, path: str, step: int, subprotocol: str | None):
        self._user, self._conn, self.path = user, conn, path
        self._stats = user.runner.stats
        self._step = step
        self.subprotocol = subprotocol
        self._buf = bytearray()
        self._sent = collections.deque()      # send times waiting for their reply
        self._fragments: list = []
        self._frag_op = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._close_sent = False
        self.closed = False
        self.timeout_s = user.runner.job.timeout_ns / 1e9

    # -- sending ---------------------------------------------------------------------------
    async def send(self, message) -> None:
        """Send a text (str) or binary (bytes) message; its round trip ends at the next
        message recv() returns."""
        if self.closed or self._close_sent:
            raise ConnectionClosed(self.close_code, self.close_reason)
        if isinstance(message, str):
            data = frame(OP_TEXT, message.encode())
        else:
            data = frame(OP_BINARY, bytes(message))
        self._sent.append(time.monotonic_ns())
        self._conn.raw_write(data)

    async def ping(self, payload: bytes = b"") -> None:
        self._conn.raw_write(frame(OP_PING, payload))

    # -- receiving -------------------------------------------------------------------------
    def _parse(self):
        """One whole frame from the buffer: (fin, opcode, payload), or None."""
        b = self._buf
        if len(b) < 2:
            return None
        fin, op = b[0] & 0x80, b[0] & 0x0F
        masked, n = b[1] & 0x80, b[1] & 0x7F
        at = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack_from("!H", b, 2)[0]
            at = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack_from("!Q", b, 2)[0]
            at = 10
        if n > MAX_MESSAGE:
            raise WebSocketError(f"a frame of {n} bytes (limit {MAX_MESSAGE})")
        key = b""
        if masked:
            key = bytes(b[at:at + 4])
            at += 4
        if len(b) < at + n:
            return None
        payload = bytes(b[at:at + n])
        del b[:at + n]
        if masked:
            payload = mask(payload, key)
        return bool(fin), op, payload

    async def recv(self, timeout: float | None = None):
        """The next message: str (text) or bytes (binary). Pings are answered; a close frame
        is answered and raises ConnectionClosed. Waits at most `timeout` seconds (default:
        the run's --timeout), then raises TimeoutError (the round trip counts as a timeout)."""
        deadline = time.monotonic() + (self.timeout_s if timeout is None else timeout)
        while True:
            if self.closed and not self._buf:
                raise ConnectionClosed(self.close_code, self.close_reason)
            got = self._parse() if self._buf else None
            if got is None:
                if self._conn.eof:
                    self._buf += self._conn.raw_take()
                    if self._parse_pending():
                        continue
                    self.closed = True
                    if self.close_code is None:
                        self.close_code = 1006      # closed without a close frame
                    self._fail_pending(_core.ERROR_KIND["closed"])
                    raise ConnectionClosed(self.close_code, self.close_reason)
                waiter = self._conn.raw_wait()
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail_pending(_core.ERROR_KIND["timeout"], one=True)
                    raise TimeoutError(f"no WebSocket message in {self.timeout_s if timeout is None else timeout} s")
                try:
                    await asyncio.wait_for(waiter, left)
                except asyncio.TimeoutError:
                    continue
                self._buf += self._conn.raw_take()
                continue
            fin, op, payload = got
            if op == OP_PING:
                self._conn.raw_write(frame(OP_PONG, payload))
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode("utf-8", "replace")
                if not self._close_sent:
                    self._close_sent = True
                    try:
                        self._conn.raw_write(frame(OP_CLOSE, payload[:2]))
                    except Exception:
                        pass
                self.closed = True
                self._conn.close()
                self._fail_pending(_core.ERROR_KIND["closed"])
                raise ConnectionClosed(self.close_code, self.close_reason)
            if op in (OP_TEXT, OP_BINARY):
                self._frag_op = op
                self._fragments = [payload]
            elif op == OP_CONT:
                self._fragments.append(payload)
            else:
                raise WebSocketError(f"unknown opcode {op}")
            if not fin:
                continue
            data = b"".join(self._fragments)
            self._fragments = []
            if self._sent:
                self._stats.record_step(self._step, -1, self._sent.popleft(), time.monotonic_ns())
            return data.decode("utf-8", "replace") if self._frag_op == OP_TEXT else data

    def _parse_pending(self) -> bool:
        return len(self._buf) >= 2

    def _fail_pending(self, kind: int, one: bool = False) -> None:
        """Sends that will get no reply: their round trips fail (closed, timeout)."""
        now = time.monotonic_ns()
        while self._sent:
            self._stats.record_step(self._step, kind, self._sent.popleft(), now)
            if one:
                break

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The close handshake: send a close frame, wait (up to the timeout) for the peer's."""
        if self.closed:
            return
        if not self._close_sent:
            self._close_sent = True
            try:
                self._conn.raw_write(frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()))
            except Exception:
                self.closed = True
                return
        try:
            while True:
                await self.recv()
        except (ConnectionClosed, TimeoutError, WebSocketError):
            pass
        finally:
            self.closed = True
            self._conn.close()
            self._user._websockets.discard(self)

    def abort(self) -> None:
        self.closed = True
        self._conn.abort()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False


async def connect(user, path: str, *, headers=None, subprotocols=(), name: str | None = None) -> WebSocket:
    """The opening handshake (RFC 6455 4.1) on a new connection of the user's."""
    r = user.runner
    base = name or f"WS {path.split('?', 1)[0]}"
    connect_step = r.step_index(f"{base} connect")
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {r.host_header}", f"User-Agent: {r.agent}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13"]
    if subprotocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    for k, v in (headers.items() if isinstance(headers, dict) else (headers or ())):
        lines.append(f"{k}: {v}")
    if user.cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in user.cookies.items()))
    conn = _core.FlowConn(r.stats, r.loop)
    t0 = time.monotonic_ns()
    r.stats.add("connect_attempts")
    try:
        await asyncio.wait_for(r.loop.create_connection(conn, r.address, r.port, ssl=r.ssl_context,
                                                        server_hostname=r.server_hostname),
                               r.job.timeout_ns / 1e9)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        kind = _core.error_kind(exc, True)
        r.stats.request_failed(connect_step, _core.ERROR_KIND[kind], t0)
        raise _core.RequestError(kind, str(exc)) from None
    resp = await conn.request(("\r\n".join(lines) + "\r\n\r\n").encode(), connect_step)
    if resp.status != 101:
        conn.close()
        raise WebSocketError(f"{path}: the server answered {resp.status}, not 101 Switching Protocols")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if resp.headers.get("sec-websocket-accept") != accept:
        conn.abort()
        raise WebSocketError(f"{path}: wrong Sec-WebSocket-Accept {resp.headers.get('sec-websocket-accept')!r}, expected {accept!r}")
    ws = WebSocket(user, conn, path, r.step_index(base), resp.headers.get("sec-websocket-protocol"))
    ws._buf += conn.raw_take()
    user._websockets.add(ws)
    return ws
