# One HTTP/1.1 keep-alive client connection, as an asyncio protocol driven by uvloop.
# Parsing is httptools (llhttp): robust to malformed input, and its callbacks are only the ones
# we define (message begin, headers complete, message complete: three C-to-Python calls per
# response, ~30 ns each). llhttp already knows that 1xx, 204 and 304 responses have no body;
# a response to HEAD it cannot be told about through httptools (llhttp skips the body when
# on_headers_complete returns 1, which httptools only does for upgrades), so HEAD responses are
# fed to it only up to the end of their header section (Conn.feed_head).
import asyncio
import errno as _errno
import ssl as _ssl

import httptools
from libc.string cimport memcmp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize

cdef object HttpResponseParser = httptools.HttpResponseParser
cdef object HttpParserError = httptools.HttpParserError
cdef object HttpParserUpgrade = httptools.HttpParserUpgrade   # not an HttpParserError
cdef object SSLError = _ssl.SSLError
cdef object CertificateError = _ssl.CertificateError
cdef object CancelledError = asyncio.CancelledError

cdef enum:
    C_CONNECTING = 0
    C_IDLE = 1
    C_BUSY = 2
    C_CLOSED = 3
    # A response head (status line and header section, with any 1xx responses before it) longer
    # than this is a `protocol` error: a bound on what a server can make the client buffer and
    # parse, and an end to a header section that never ends. Bytes.
    MAX_HEAD_BYTES = 65536

class StrayResponse(Exception):
    """A message began after the response to the only request outstanding had completed."""


cdef int classify_exception(object exc, bint connecting):
    """Map a connection failure to an E_* error kind."""
    if exc is None:
        return E_CLOSED
    if isinstance(exc, OSError) and exc.errno in (_errno.EMFILE, _errno.ENFILE):
        return E_FD_LIMIT      # our own limit (socket() failed), never the target's fault
    if isinstance(exc, (SSLError, CertificateError)):
        return E_TLS
    if isinstance(exc, ConnectionRefusedError):
        return E_CONNECT_REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return E_RESET
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return E_TIMEOUT
    if connecting and isinstance(exc, OSError):
        return E_CONNECT
    return E_OTHER


@cython.final
cdef class Conn:
    """A connection owned by an Engine. It carries at most one request at a time; the engine
    decides what it sends next. Callbacks never raise into the event loop: a failure ends the
    request as an error and closes the connection."""
    def __cinit__(self, Engine engine):
        self.engine = engine
        self.state = C_CONNECTING
        self.fd = -1

    def __call__(self):
        """Act as its own protocol factory for loop.create_connection."""
        return self

    # -- asyncio protocol ------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        if self.engine.ssl_context is not None:
            self.tls = TlsConn(self)     # connected once its handshake is done
            self.tls.start(transport)
            return
        self.write = transport.write
        self.parser = HttpResponseParser(self)
        on_connected(self.engine, self)

    def data_received(self, data):
        if self.tls is not None:
            self.tls.received(data)      # decrypts, then calls received() with the plaintext
        else:
            self.received(data)

    cdef void received(self, object data) noexcept:
        """Response bytes (plaintext) arrived: now, or at arrival_ns when the engine read them
        on a later wake-up (the kernel's receive time: what their latency ends on)."""
        cdef int64_t now = now_ns()
        cdef int64_t at = self.arrival_ns if self.arrival_ns > 0 else now
        cdef Engine engine = self.engine
        cdef Py_ssize_t n = len(data)
        cdef int kind = -1
        engine.slots[S_BYTES_IN] += n
        engine.scenario(self.scenario)[SC_BYTES_IN] += n
        if self.first_chunk is None:
            self.first_chunk = data
        if self.state != C_BUSY:
            # Bytes with no request outstanding: the response before them was already counted,
            # but the connection is out of step with the server. Close it, never reuse it, and
            # count the connection (there is no request to charge them to).
            if self.state == C_IDLE:
                engine.slots[S_STRAY_CLOSES] += 1
            self.abort()
            return
        try:
            if self.headers_done or (not self.bodiless and self.head_bytes + n <= MAX_HEAD_BYTES):
                self.head_bytes += n
                self.parser.feed_data(data)
            else:
                kind = self.feed_head(data)
        except (HttpParserError, HttpParserUpgrade):
            # malformed, an unasked-for upgrade (101), or bytes after the complete response
            # (StrayResponse, or what llhttp rejects as the start of a next message): the
            # response is a protocol error even if it looked complete
            kind = E_PROTOCOL
        except BaseException:
            engine.slots[S_PARSE_FAILURES] += 1
            kind = E_OTHER
        if kind >= 0:
            self.complete = False
            if self.has_request:
                engine.finish(self, at, kind)
            self.abort()
            return
        if self.complete:
            self.complete = False
            if self.has_request:   # else the late answer of a request settled as a timeout
                engine.finish(self, at, -1)
            if self.bodiless:
                # the parser still waits for the body the headers announced: start afresh
                self.parser = HttpResponseParser(self)
            if not self.keep_alive:
                self.close()
            else:
                release(engine, self, now)

    cdef int feed_head(self, object data) except -2:
        """Feed `data` while the final response's head is incomplete and the request was HEAD
        or the head nears MAX_HEAD_BYTES: in pieces that stop where the head would pass the
        limit and, for HEAD, where each header section ends, so the parser never takes what
        follows for a body. Returns an E_* kind, or -1 when all of `data` was fed."""
        cdef Py_ssize_t pos = 0, end, k, n = len(data)
        cdef bytes window
        while pos < n:
            if self.headers_done:
                if self.bodiless:
                    return E_PROTOCOL     # bytes after a HEAD response's header section
                self.parser.feed_data(data[pos:])
                return -1
            if self.head_bytes >= MAX_HEAD_BYTES:
                return E_PROTOCOL         # the head is longer than the limit
            end = min(n, pos + (MAX_HEAD_BYTES - self.head_bytes))
            if self.bodiless:
                window = self.tail + data[pos:end]
                k = window.find(b"\r\n\r\n")
                if k >= 0:
                    end = pos + k + 4 - len(self.tail)
                    self.tail = b""
                else:
                    self.tail = window[max(0, len(window) - 3):]   # (no wraparound)
            self.parser.feed_data(data[pos:end])
            self.head_bytes += end - pos
            pos = end
        return -1

    def on_message_begin(self):
        # called by httptools from inside feed_data()
        if self.complete:
            raise StrayResponse()

    def on_headers_complete(self):
        # called by httptools from inside feed_data(). A 1xx response (100 Continue, 103 Early
        # Hints) is interim: the final response follows it and is the one counted. 101 is
        # raised by httptools as an upgrade, which nobody asked for.
        cdef int status = self.parser.get_status_code()
        if 100 <= status < 200:
            return
        self.headers_done = True
        self.status = status
        if self.bodiless:
            self.complete = True
            # llhttp thinks a HEAD response without Content-Length or chunked coding runs
            # until the server closes, so it says "close" for it: the connection is closed
            # after it, which costs a reconnect but never a wrong count
            self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self):
        # called by httptools from inside feed_data()
        if self.headers_done:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    def eof_received(self):
        if self.tls is not None:
            return self.tls.raw_eof()
        self.body_ends_at_eof()
        return False  # let the transport close; connection_lost() settles anything else

    cdef void body_ends_at_eof(self) except *:
        # A body without Content-Length or chunked coding ends where the connection does
        # (RFC 9112 6.3); llhttp would need llhttp_finish(), which httptools does not expose.
        if (self.state == C_BUSY and self.has_request and self.headers_done and not self.complete
                and self.eof_ends_body()):
            self.engine.finish(self, now_ns(), -1)

    cdef bint eof_ends_body(self):
        """The final response's header section (in the first chunk, after any 1xx responses)
        has neither Content-Length nor Transfer-Encoding."""
        cdef bytes head = self.first_chunk
        cdef Py_ssize_t start = 0, end
        if head is None:
            return False
        while True:
            end = head.find(b"\r\n\r\n", start)
            if end < 0:
                return False
            if head[start + 9:start + 10] != b"1":   # "HTTP/1.1 1xx": interim, skip it
                break
            start = end + 4
        lowered = head[start:end].lower()
        return b"\r\ncontent-length:" not in lowered and b"\r\ntransfer-encoding:" not in lowered

    def connection_lost(self, exc):
        if self.tls is not None and self.tls.handshaking:
            self.tls.lost(exc)           # a failed connect, never a connected one
            return
        self.state = C_CLOSED
        if self.has_request:
            self.engine.finish(self, now_ns(), classify_exception(exc, False))
        on_closed(self.engine, self)

    def pause_for_engine(self):
        """The engine reads this connection itself (_batched.pxi): the loop stops watching it."""
        if self.fd >= 0 and self.state != C_CLOSED:
            try:
                self.transport.pause_reading()
            except BaseException:
                self.fd = -1

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    # -- helpers ---------------------------------------------------------------------------
    cdef inline void send(self, int64_t intended_ns, int64_t now) noexcept:
        """Send a new request of the mix."""
        self.scenario = self.engine.pick()
        self.send_picked(intended_ns, now)

    cdef inline void send_picked(self, int64_t intended_ns, int64_t now) noexcept:
        """Send the request of scenario self.scenario."""
        cdef Engine engine = self.engine
        cdef bytes request = <bytes>PyList_GET_ITEM(engine.requests, self.scenario)
        self.state = C_BUSY
        self.first_chunk = None
        self.has_request = True
        self.bodiless = (PyBytes_GET_SIZE(request) >= 5
                         and memcmp(PyBytes_AS_STRING(request), b"HEAD ", 5) == 0)
        self.headers_done = False
        self.head_bytes = 0
        self.tail = b""
        self.intended_ns = intended_ns
        self.sent_ns = now
        try:
            if self.tls is not None:
                self.tls.write_request(request)   # a C call: no Python-level method
            else:
                self.write(request)
        except BaseException:
            engine.slots[S_SENT] += 1
            engine.scenario(self.scenario)[SC_SENT] += 1
            engine.slots[S_INFLIGHT] += 1
            engine.finish(self, now, E_RESET)
            self.abort()
            return
        engine.slots[S_SENT] += 1
        engine.scenario(self.scenario)[SC_SENT] += 1
        engine.slots[S_INFLIGHT] += 1
        engine.slots[S_BYTES_OUT] += engine.request_lens[self.scenario]

    cdef void close(self) noexcept:
        self.state = C_CLOSED
        if self.tls is not None:
            self.tls.close_notify()
        if self.transport is not None:
            try:
                self.transport.close()
            except BaseException:
                pass

    cdef void abort(self) noexcept:
        self.state = C_CLOSED
        if self.transport is not None:
            try:
                self.transport.abort()
            except BaseException:
                pass
        elif self.connect_task is not None:
            self.connect_task.cancel()
