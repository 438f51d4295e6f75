# TLS inside the connection protocol. The connection is plain TCP to the event loop; its Conn owns
# an ssl.SSLObject over two memory BIOs and drives it itself: per chunk received, one BIO write
# and the SSL_read calls that drain it; per request, one SSL_write and one transport write of the
# records it made. No second asyncio protocol, no app transport, no call_soon per chunk: uvloop's
# own SSL transport cost ~3x the client CPU per request of this over HTTPS (benchmarks/README.md).
#
# Behaviour kept from the SSL transport it replaces: certificate and host name verification as
# the context says (on unless --insecure); the connection counts as connected, and its request is
# written, only once the handshake is done, so a handshake that fails or times out is a failed
# connect (`tls`, or `reset` for a peer that closes mid-handshake) and no request reaches the
# server; a TCP EOF without close_notify is never the end of a body (it may be a truncation);
# close_notify is.
# Sessions: the engine keeps the last resumable session it saw and offers it to every new
# connection; S_TLS_RESUMED counts the handshakes the server resumed.

from cpython.bytearray cimport PyByteArray_AS_STRING

cdef object MemoryBIO = _ssl.MemoryBIO
cdef object SSLWantReadError = _ssl.SSLWantReadError

cdef enum:
    # Bytes asked of one SSL_read: above a record's largest plaintext (16 KiB), so a read that
    # returns less than this has emptied the record it decrypted.
    TLS_READ_SIZE = 65536
    # TLS 1.3 sends its session tickets after the handshake: chunks looked at for one before the
    # connection stops looking (a server that sends none costs nothing after these).
    TICKET_LOOKS = 4


cdef class TlsConn:
    """One connection's TLS state, owned by its Conn (made by Conn, never by users)."""
    def __cinit__(self, Conn conn):
        cdef Engine engine = conn.engine
        self.conn = conn
        self.incoming = MemoryBIO()
        self.outgoing = MemoryBIO()
        self.sslobj = engine.ssl_context.wrap_bio(
            self.incoming, self.outgoing, server_hostname=engine.server_hostname,
            session=engine.tls_session)
        self.incoming_write = self.incoming.write
        self.outgoing_read = self.outgoing.read
        raw = getattr(self.sslobj, "_sslobj", self.sslobj)
        self.read = raw.read
        self.ssl_write = raw.write
        self.handshaking = True
        self.ticket_looks = TICKET_LOOKS
        if engine.tls_rbuf is None:
            engine.tls_rbuf = bytearray(TLS_READ_SIZE)
        self.rbuf = engine.tls_rbuf
        self.rptr = PyByteArray_AS_STRING(self.rbuf)

    cdef void write_request(self, object data) except *:
        """Encrypt one request and write its records."""
        self.ssl_write(data)
        self.transport_write(self.outgoing_read())

    cdef void start(self, object transport) noexcept:
        """The TCP connection is up: send the ClientHello."""
        self.transport_write = transport.write
        self.handshake()

    cdef inline void flush(self) except *:
        if self.outgoing.pending:
            self.transport_write(self.outgoing_read())

    cdef void handshake(self) noexcept:
        """One step of the handshake; on its end the Conn becomes connected (its request, if
        it has one, is written then)."""
        cdef Conn conn = self.conn
        try:
            try:
                self.sslobj.do_handshake()
            except SSLWantReadError:
                self.flush()
                return
            self.flush()
        except BaseException as exc:
            self.handshake_failed(exc)
            return
        self.handshaking = False
        if self.sslobj.session_reused:
            conn.engine.slots[S_TLS_RESUMED] += 1
        if self.sslobj.version() != "TLSv1.3":
            self.keep_session(False)   # TLS 1.2 and older: the session is complete already
            self.ticket_looks = 0
        conn.parser = HttpResponseParser(conn)
        on_connected(conn.engine, conn)

    cdef void handshake_failed(self, object exc) noexcept:
        """A failed connect, counted once: the engine counts it (and marks the connection
        closed), the connection is dropped, and its connection_lost then counts nothing more."""
        cdef Conn conn = self.conn
        if conn.state == C_CLOSED:
            return
        on_connect_failed(conn.engine, conn, exc)
        conn.state = C_CLOSED
        try:
            conn.transport.abort()
        except BaseException:
            pass

    cdef void keep_session(self, bint tls13) noexcept:
        """Offer this connection's session to the connections opened after it: in TLS 1.3
        once a ticket came for it (the session before that cannot be resumed)."""
        session = self.sslobj.session
        if session is not None and (session.has_ticket or (not tls13 and session.id)):
            self.conn.engine.tls_session = session
            self.ticket_looks = 0

    cdef void received(self, object data) noexcept:
        """Records from the server: decrypt every whole one, then hand the plaintext to the
        HTTP side in one piece (as the SSL transport did)."""
        cdef Conn conn = self.conn
        cdef object chunk, plain = None
        cdef list chunks = None
        cdef bint closed = False
        cdef Py_ssize_t n
        try:
            self.incoming_write(data)
        except BaseException as exc:
            self.fatal(exc)
            return
        if self.handshaking:
            self.handshake()
            if self.handshaking or conn.state == C_CLOSED or not self.incoming.pending:
                return
        while True:
            try:
                # into the engine's buffer: no 64 KiB bytes object made and shrunk per read
                n = self.read(TLS_READ_SIZE, self.rbuf)
            except SSLWantReadError:
                break            # the rest of a record is still on its way
            except BaseException as exc:
                self.fatal(exc)
                return
            if n <= 0:
                closed = True    # close_notify
                break
            chunk = PyBytes_FromStringAndSize(self.rptr, n)
            if plain is None:
                plain = chunk
            else:
                if chunks is None:
                    chunks = [plain]
                chunks.append(chunk)
            if n < TLS_READ_SIZE and not self.incoming.pending:
                break
        try:
            self.flush()         # anything the records asked of us (a key update's answer)
        except BaseException as exc:
            self.fatal(exc)
            return
        if self.ticket_looks > 0:
            self.ticket_looks -= 1
            self.keep_session(True)
        if chunks is not None:
            plain = b"".join(chunks)
        if plain is not None:
            conn.received(plain)
        if closed and conn.state != C_CLOSED:
            try:
                conn.body_ends_at_eof()
            except BaseException:
                conn.engine.slots[S_PARSE_FAILURES] += 1
            conn.close()

    cdef void fatal(self, object exc) noexcept:
        """A TLS failure after the handshake (a bad record, an alert): the request fails as
        `tls` and the connection is dropped."""
        cdef Conn conn = self.conn
        if conn.has_request:
            conn.engine.finish(conn, now_ns(), classify_exception(exc, False))
        conn.abort()

    cdef bint raw_eof(self) noexcept:
        """The peer half-closed TCP. Mid-handshake, the connect fails as reset (as uvloop's
        SSL transport says); after it, without close_notify, it ends nothing: the connection
        closes and an outstanding request fails as `closed`."""
        if self.handshaking:
            self.handshake_failed(ConnectionResetError("connection closed during the TLS handshake"))
        return False

    cdef void lost(self, object exc) noexcept:
        """The connection is gone before its handshake finished: a failed connect, unless we
        closed it ourselves (a connect timeout, the end of the run, a handshake failure),
        which counted it already."""
        if self.conn.state != C_CLOSED:
            self.handshake_failed(exc if exc is not None else
                                  ConnectionResetError("connection lost during the TLS handshake"))
        self.conn.state = C_CLOSED

    cdef void close_notify(self) noexcept:
        """A clean close: say so to the server before the TCP close (best effort)."""
        if self.handshaking:
            return
        try:
            self.sslobj.unwrap()
        except BaseException:
            pass        # SSLWantReadError: ours is sent, the server's is not awaited
        try:
            self.flush()
        except BaseException:
            pass
