# One HTTP/1.1 keep-alive client connection, as an asyncio protocol driven by uvloop.
# Parsing is httptools (llhttp): robust to malformed input, and its callbacks are only the ones
# we define (on_message_complete), so a response costs one callback.
import asyncio
import errno as _errno
import ssl as _ssl

import httptools

cdef object HttpResponseParser = httptools.HttpResponseParser
cdef object HttpParserError = httptools.HttpParserError
cdef object SSLError = _ssl.SSLError
cdef object CertificateError = _ssl.CertificateError
cdef object CancelledError = asyncio.CancelledError

cdef enum:
    C_CONNECTING = 0
    C_IDLE = 1
    C_BUSY = 2
    C_CLOSED = 3

cdef class Engine


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
    cdef Engine engine
    cdef object transport
    cdef object write           # transport.write, bound once
    cdef object parser
    cdef int state              # C_*
    cdef bint has_request       # a request is assigned (waiting to connect, or in flight)
    cdef bint complete          # set by on_message_complete inside feed_data
    cdef bint keep_alive
    cdef int status
    cdef int scenario           # which request of the mix is in flight
    cdef int64_t intended_ns    # when the request was due (open model) or first sent (closed)
    cdef int64_t sent_ns        # when it was written to the socket
    cdef int64_t opened_ns      # when the connect began, for the connect timeout
    cdef object connect_task
    cdef object head            # the response's first chunk: read only if the server closes

    def __cinit__(self, Engine engine):
        self.engine = engine
        self.state = C_CONNECTING

    def __call__(self):
        """Act as its own protocol factory for loop.create_connection."""
        return self

    # -- asyncio protocol ------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.write = transport.write
        self.parser = HttpResponseParser(self)
        self.engine.on_connected(self)

    def data_received(self, data):
        cdef int64_t now = now_ns()
        cdef Engine engine = self.engine
        engine.slots[S_BYTES_IN] += len(data)
        engine.scenario(self.scenario)[SC_BYTES_IN] += len(data)
        if self.head is None:
            self.head = data
        if self.state != C_BUSY:
            # bytes nobody asked for: the connection is out of step with the server
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            if self.complete:
                self.complete = False
                engine.finish(self, now, -1)
            if self.has_request:
                engine.finish(self, now, E_PROTOCOL)
            self.abort()
            return
        except BaseException:
            engine.slots[S_PARSE_FAILURES] += 1
            if self.has_request:
                engine.finish(self, now, E_OTHER)
            self.abort()
            return
        if self.complete:
            self.complete = False
            engine.finish(self, now, -1)
            if not self.keep_alive:
                self.close()
            else:
                engine.release(self, now)

    def on_message_complete(self):
        # called by httptools from inside feed_data()
        self.complete = True
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def eof_received(self):
        # A body without Content-Length or chunked coding ends where the connection does
        # (RFC 9112 6.3); llhttp would need llhttp_finish(), which httptools does not expose.
        if self.state == C_BUSY and self.has_request and self.eof_ends_body():
            self.status = self.parser.get_status_code()
            self.engine.finish(self, now_ns(), -1)
        return False  # let the transport close; connection_lost() settles anything else

    cdef bint eof_ends_body(self):
        cdef bytes head = self.head
        cdef Py_ssize_t end
        if head is None:
            return False
        end = head.find(b"\r\n\r\n")
        if end < 0:
            return False
        lowered = head[:end].lower()
        return b"\r\ncontent-length:" not in lowered and b"\r\ntransfer-encoding:" not in lowered

    def connection_lost(self, exc):
        self.state = C_CLOSED
        if self.has_request:
            self.engine.finish(self, now_ns(), classify_exception(exc, False))
        self.engine.on_closed(self)

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
        self.state = C_BUSY
        self.head = None
        self.has_request = True
        self.intended_ns = intended_ns
        self.sent_ns = now
        try:
            self.write(<bytes>PyList_GET_ITEM(engine.requests, self.scenario))
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
