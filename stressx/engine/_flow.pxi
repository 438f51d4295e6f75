# Python scenarios (stressx.flows): what runs per request in C. A virtual user owns one FlowConn
# (its keep-alive connection); `await conn.request(data, step)` writes a request built by the
# user and resolves with a Response once llhttp (httptools) has parsed all of it. Recording goes
# straight into the shard's segment like the static path's: the totals count HTTP requests, the
# step blocks (after the scenario blocks) count each named step, the scenario blocks count
# iterations. After a 101 Switching Protocols the connection carries raw bytes (WebSocket
# frames, read and written by stressx.flows.ws).

cdef enum:
    F_CONNECTING = 0
    F_IDLE = 1
    F_BUSY = 2
    F_CLOSED = 3
    F_RAW = 4              # upgraded (101): raw bytes both ways
    OK_BELOW_STATUS = 400  # a step's response counts as ok below this status


class RequestError(Exception):
    """A request of a Python scenario that got no response: refused, reset, timed out, closed,
    malformed. `kind` is the error kind it was counted as (connect_refused, timeout...)."""
    def __init__(self, kind, message=""):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


cdef class Headers:
    """Response headers, looked up case-insensitively; repeated names joined with ', ' by
    [] and get(), all kept by get_all() (Set-Cookie)."""
    def __init__(self, list items):
        self._items = items
        self._map = None

    cdef dict _index(self):
        cdef dict m = {}
        for k, v in self._items:
            key = k.lower()
            if key in m:
                m[key].append(v)
            else:
                m[key] = [v]
        self._map = m
        return m

    def get(self, name, default=None):
        m = self._map if self._map is not None else self._index()
        vals = m.get(name.lower())
        if vals is None:
            return default
        return vals[0] if len(vals) == 1 else ", ".join(vals)

    def get_all(self, name):
        m = self._map if self._map is not None else self._index()
        return list(m.get(name.lower(), ()))

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        m = self._map if self._map is not None else self._index()
        return name.lower() in m

    def items(self):
        return list(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return f"Headers({self._items!r})"


@cython.final
cdef class Response:
    """A response of a Python scenario: status, headers (case-insensitive), body (bytes),
    text, json(); `url` the path it answered, `history` the redirects followed to it."""
    def __cinit__(self, int status, list raw_headers, bytes body):
        self.status = status
        self.raw_headers = raw_headers
        self.body = body
        self.history = []

    @property
    def headers(self):
        if self._headers is None:
            self._headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                     for k, v in self.raw_headers])
        return self._headers

    @property
    def ok(self):
        return 0 < self.status < OK_BELOW_STATUS

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {len(self.body)} bytes>"


@cython.final
cdef class FlowStats:
    """The recorder of one flow shard over its segment (laid out with n_steps step blocks)."""
    def __init__(self, memory, int64_t timeout_ns):
        self.mem = memory
        self.slots = segment_of(self.mem, SNAPSHOT_BUFFERS)
        self.h_lat = self.slots + S_HISTOGRAMS + H_LATENCY * HIST_SLOTS
        self.h_unc = self.slots + S_HISTOGRAMS + H_LATENCY_UNCORRECTED * HIST_SLOTS
        self.h_lag = self.slots + S_HISTOGRAMS + H_SEND_LAG * HIST_SLOTS
        self.h_fail = self.slots + S_HISTOGRAMS + H_FAILURE * HIST_SLOTS
        self.h_all = self.slots + S_HISTOGRAMS + H_ALL * HIST_SLOTS
        self.n_scenarios = self.slots[S_N_SCENARIOS]
        self.n_steps = self.slots[S_N_STEPS]
        self.sc_base = self.slots + S_HISTOGRAMS + N_HISTOGRAMS * HIST_SLOTS
        self.step_base = self.sc_base + self.n_scenarios * SC_BLOCK
        self.timeout_ns = timeout_ns

    cdef inline int64_t *step(self, int j) noexcept:
        if 0 <= j < self.n_steps:
            return self.step_base + j * SC_BLOCK
        return NULL

    cdef void req_sent(self, int step, int64_t nbytes) noexcept:
        cdef int64_t *block = self.step(step)
        self.slots[S_SENT] += 1
        self.slots[S_DUE] += 1           # a flow's requests are due when its user sends them
        self.slots[S_INFLIGHT] += 1
        self.slots[S_BYTES_OUT] += nbytes
        if block != NULL:
            block[SC_SENT] += 1
        else:
            self.slots[S_STEP_OVERFLOW] += 1

    @cython.cdivision(True)   # NS_PER_US is a constant
    cdef void req_done(self, int step, int status, int kind, int64_t sent_ns, int64_t now) noexcept:
        """A request settled: kind -1 with its status (ok below 400, else a `status` error),
        or an E_* failure. Latency from its send (a flow's request is sent when its user gets
        to it; the iteration's latency carries any wait before that)."""
        cdef int64_t *block = self.step(step)
        cdef int64_t latency_us = (now - sent_ns) // NS_PER_US
        if kind < 0 and now - sent_ns > self.timeout_ns:
            kind = E_TIMEOUT
        self.slots[S_INFLIGHT] -= 1
        self.slots[S_COMPLETED] += 1
        self.slots[S_LAST_DONE_NS] = now
        if kind < 0:
            self.slots[S_STATUS + (status if 0 <= status < N_STATUS else 0)] += 1
            if not 0 < status < OK_BELOW_STATUS:
                kind = E_STATUS
        if kind < 0:
            self.slots[S_OK] += 1
            hdr_record(self.h_lat, latency_us)
            hdr_record(self.h_unc, latency_us)
            hdr_record(self.h_all, latency_us)
        else:
            if kind == E_TIMEOUT:
                latency_us = self.timeout_ns // NS_PER_US
            self.slots[S_ERRORS] += 1
            self.slots[S_ERROR_KINDS + kind] += 1
            hdr_record(self.h_fail, latency_us)
            hdr_record(self.h_all, latency_us)
        if block != NULL:
            self.block_done(block, kind, latency_us)

    cdef void block_done(self, int64_t *block, int kind, int64_t latency_us) noexcept:
        if kind < 0:
            block[SC_OK] += 1
            hdr_record(block + SC_HEADER, latency_us)
        else:
            block[SC_ERRORS] += 1
            block[SC_ERROR_KINDS + kind] += 1
        hdr_record(block + SC_ALL_HIST, latency_us)

    # -- from Python ----------------------------------------------------------------------
    def request_failed(self, int step, int kind, int64_t start_ns, int64_t nbytes=0):
        """A request that never reached a socket (its connect failed): sent and failed."""
        self.req_sent(step, nbytes)
        self.req_done(step, 0, kind, start_ns, now_ns())

    @cython.cdivision(True)   # NS_PER_US is a constant
    def record_step(self, int step, int kind, int64_t start_ns, int64_t end_ns):
        """A step that is not an HTTP request (a timed block, a WebSocket round trip or
        connect): kind -1 ok, else an E_* kind."""
        cdef int64_t *block = self.step(step)
        if block == NULL:
            self.slots[S_STEP_OVERFLOW] += 1
            return
        block[SC_SENT] += 1
        self.block_done(block, kind, (end_ns - start_ns) // NS_PER_US)

    @cython.cdivision(True)   # NS_PER_US is a constant
    def iteration_start(self, int sc, int64_t intended_ns, int64_t now, bint open_model):
        self.sc_base[sc * SC_BLOCK + SC_SENT] += 1
        self.slots[S_ITER_ACTIVE] += 1
        if open_model:
            hdr_record(self.h_lag, (now - intended_ns) // NS_PER_US)

    @cython.cdivision(True)   # NS_PER_US is a constant
    def iteration_end(self, int sc, int kind, int64_t intended_ns, int64_t now):
        """An iteration ended: kind -1 ok, else the E_* kind of what ended it. Latency from
        its intended start (open model) or its start (closed)."""
        self.slots[S_ITER_ACTIVE] -= 1
        self.block_done(self.sc_base + sc * SC_BLOCK, kind, (now - intended_ns) // NS_PER_US)

    def add(self, str name, int64_t n=1):
        """Add n to a counter slot by its SLOTS name (redirects, users...)."""
        self.slots[SLOTS[name]] += n

    def set(self, str name, int64_t v):
        self.slots[SLOTS[name]] = v

    def get(self, str name):
        return self.slots[SLOTS[name]]


@cython.final
cdef class FlowConn:
    """A virtual user's connection; its own asyncio protocol (and protocol factory)."""
    def __cinit__(self, FlowStats stats, loop):
        self.stats = stats
        self.loop = loop
        self.state = F_CONNECTING

    def __call__(self):
        return self

    def connection_made(self, transport):
        self.transport = transport
        self.write = transport.write
        self.parser = HttpResponseParser(self)
        self.state = F_IDLE
        self.stats.slots[S_CONNECTS] += 1
        self.stats.slots[S_CONN_OPEN] += 1

    @property
    def idle(self):
        return self.state == F_IDLE

    def request(self, bytes data, int step, bint head=False):
        """Write one request; the returned future resolves with its Response, or fails with
        RequestError (it is counted either way, under `step`)."""
        cdef int64_t now = now_ns()
        if self.state != F_IDLE:
            raise RuntimeError("the connection is not idle")
        self.state = F_BUSY
        self.step = step
        self.bodiless = head
        self.headers_done = False
        self.complete = False
        self.has_length = False
        self.set_cookie = False
        self.status = 0
        self.headers = []
        self.body = []
        self.sent_ns = now
        self.waiter = self.loop.create_future()
        self.stats.req_sent(step, len(data))
        try:
            self.write(data)
        except BaseException:
            self.settle(E_RESET, now)
            self.abort()
        return self.waiter

    def data_received(self, data):
        cdef int64_t now
        cdef int kind = -1
        cdef Py_ssize_t at
        self.stats.slots[S_BYTES_IN] += len(data)
        if self.state == F_RAW:
            self.raw += data
            self.wake()
            return
        if self.state != F_BUSY:
            self.stats.slots[S_STRAY_CLOSES] += 1
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            if self.status == 101:
                at = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
                self.raw = bytearray(data[at:])
                self.complete = True
                self.keep_alive = True
            else:
                kind = E_PROTOCOL
        except HttpParserError:
            kind = E_PROTOCOL
        except BaseException:
            self.stats.slots[S_PARSE_FAILURES] += 1
            kind = E_OTHER
        now = now_ns()
        if kind >= 0:
            self.settle(kind, now)
            self.abort()
            return
        if self.complete:
            self.settle(-1, now)

    def on_header(self, name, value):
        self.headers.append((name, value))
        if len(name) == 10 and name.lower() == b"set-cookie":
            self.set_cookie = True

    def on_headers_complete(self):
        cdef int status = self.parser.get_status_code()
        cdef bytes k
        if 100 <= status < 200 and status != 101:
            self.headers = []        # interim: the final response follows
            return
        self.headers_done = True
        self.status = status
        for k, _ in self.headers:
            if k.lower() in (b"content-length", b"transfer-encoding"):
                self.has_length = True
        if self.bodiless:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        if self.headers_done:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    cdef void settle(self, int kind, int64_t now) noexcept:
        """Count the request in flight and hand its outcome to the waiting user."""
        cdef object waiter = self.waiter
        cdef Response resp
        if self.state != F_BUSY:
            return
        self.waiter = None
        self.stats.req_done(self.step, self.status, kind, self.sent_ns, now)
        if kind >= 0:
            self.state = F_CLOSED
            if waiter is not None and not waiter.done():
                waiter.set_exception(RequestError(ERROR_KINDS[kind]))
            return
        resp = Response(self.status, self.headers,
                        b"".join(self.body) if len(self.body) != 1 else self.body[0])
        self.headers = None
        self.body = None
        if self.status == 101:
            self.state = F_RAW
            self.eof = False
        elif self.bodiless:
            self.parser = HttpResponseParser(self)
            self.state = F_IDLE if self.keep_alive else F_CLOSED
        else:
            self.state = F_IDLE if self.keep_alive else F_CLOSED
        if self.state == F_CLOSED:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(resp)

    def eof_received(self):
        if (self.state == F_BUSY and self.headers_done and not self.complete
                and not self.has_length):
            self.complete = True      # the body ends where the connection does
            self.keep_alive = False
            self.settle(-1, now_ns())
        return False

    def connection_lost(self, exc):
        cdef int prev = self.state
        if self.transport is not None:
            self.stats.slots[S_CONN_OPEN] -= 1
        if prev == F_BUSY:
            self.settle(classify_exception(exc, False), now_ns())
        self.state = F_CLOSED
        self.eof = True
        self.wake()

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    def check_timeout(self, int64_t now):
        """Fail the request in flight if its deadline (--timeout, from its send) passed."""
        if self.state == F_BUSY and now - self.sent_ns >= self.stats.timeout_ns:
            self.settle(E_TIMEOUT, now)
            self.abort()
            return True
        return False

    # -- raw bytes after an upgrade (WebSocket) --------------------------------------------
    def raw_write(self, data):
        if self.state != F_RAW:
            raise RequestError("closed", "the connection is closed")
        self.stats.slots[S_BYTES_OUT] += len(data)
        self.write(data)

    def raw_take(self):
        """The bytes received so far (and forget them)."""
        cdef bytes out
        if self.raw is None:
            return b""
        out = bytes(self.raw)
        del self.raw[:]
        return out

    def raw_wait(self):
        """A future resolved when bytes arrive or the peer closes."""
        self.waiter = self.loop.create_future()
        if (self.raw is not None and len(self.raw)) or self.eof:
            self.waiter.set_result(None)
        return self.waiter

    def wake(self):
        cdef object w = self.waiter
        if self.state != F_BUSY and w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def close(self):
        if self.state == F_BUSY:
            self.settle(E_CLOSED, now_ns())
        self.state = F_CLOSED
        if self.transport is not None:
            try:
                self.transport.close()
            except BaseException:
                pass

    def abort(self):
        if self.transport is not None:
            try:
                self.transport.abort()
            except BaseException:
                pass
        self.state = F_CLOSED


ERROR_KIND = {kind: i for i, kind in enumerate(ERROR_KINDS)}


def error_kind(exc, bint connecting=False):
    """The error kind (a name of ERROR_KINDS) a connection failure counts as."""
    return ERROR_KINDS[classify_exception(exc, connecting)]


cdef object _urlsplit = None
cdef object _json_dumps = None
cdef tuple REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class TooManyRedirects(Exception):
    """More redirects in a row than user.max_redirects."""


cdef class UserCore:
    """The HTTP side of a virtual user, compiled: request() is a Cython coroutine, so a
    scenario's `await user.get(...)` costs no Python frame of ours."""
    def __init__(self, runner):
        self.runner = runner
        self.cookies = {}
        self.max_redirects = 10
        self.conn = None
        self.stats = runner.stats
        self.loop = runner.loop
        self.cache = runner.request_cache
        self.steps = runner.steps
        self.host_header = runner.host_header
        self.agent = runner.agent

    cdef int step_of(self, str name) except? -2:
        cdef object j = self.steps.get(name)
        if j is None:
            return self.runner.step_index(name)
        return <int>j

    cdef bytes build(self, str method, str path, object headers, bytes body):
        cdef list lines = [f"{method} {path} HTTP/1.1"]
        cdef set given = set()
        if headers:
            for k, v in (headers.items() if isinstance(headers, dict) else headers):
                given.add(k.lower())
                lines.append(f"{k}: {v}")
        if "host" not in given:
            lines.append(f"Host: {self.host_header}")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {self.agent}")
        if self.cookies and "cookie" not in given:
            lines.append("Cookie: " + "; ".join([f"{k}={v}" for k, v in self.cookies.items()]))
        if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in given:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body

    cdef void keep_cookies(self, object response) except *:
        cdef Response resp = <Response>response
        cdef bytes k, v
        for k, v in resp.raw_headers:
            if len(k) != 10 or k.lower() != b"set-cookie":
                continue
            line = v.decode("latin-1")
            first, _, attrs = line.partition(";")
            cname, eq, value = first.strip().partition("=")
            if not eq or not cname:
                continue
            low = attrs.lower().replace(" ", "")
            if "max-age=0" in low or "max-age=-" in low:
                self.cookies.pop(cname, None)
            else:
                self.cookies[cname] = value.strip()

    async def connect(self, int step, int64_t t0):
        """A new connection for this user (the old one, if any, is dropped)."""
        cdef FlowConn conn
        r = self.runner
        if self.conn is not None:
            self.conn.abort()
            self.conn = None
        conn = FlowConn(self.stats, self.loop)
        self.stats.slots[S_CONNECT_ATTEMPTS] += 1
        try:
            # the connect (and a TLS handshake) within the request's deadline
            await asyncio.wait_for(
                self.loop.create_connection(conn, r.address, r.port, ssl=r.ssl_context,
                                            server_hostname=r.server_hostname),
                self.stats.timeout_ns / 1e9)
        except CancelledError:
            raise
        except Exception as exc:
            kind = classify_exception(exc, True)
            self.stats.slots[S_CONNECT_FAIL_KINDS + kind] += 1
            self.stats.request_failed(step, kind, t0)
            raise RequestError(ERROR_KINDS[kind], str(exc)) from None
        self.conn = conn
        return conn

    async def request(self, str method, str path, *, headers=None, body=b"", json=None,
                      str name=None, bint allow_redirects=True):
        """Send one request on this user's connection (reconnecting if the server closed it)
        and return its Response; one that gets no response raises RequestError. Counted under
        step `name` (default "METHOD /path" without the query); a redirect followed is a
        request of its own, under the same `name` if given, else under its own default."""
        global _urlsplit, _json_dumps
        cdef bytes data
        cdef int step
        cdef FlowConn conn
        cdef Response resp
        cdef list history = None
        cdef tuple cached
        method = method.upper()
        if json is not None:
            if _json_dumps is None:
                import json as _j
                _json_dumps = _j.dumps
            body = _json_dumps(json).encode()
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        while True:
            if headers is None and not body and not self.cookies:
                cached = self.cache.get((method, path))
                if cached is None:
                    cached = (self.build(method, path, None, b""),
                              f"{method} {path.split('?', 1)[0]}")
                    if len(self.cache) < 4096:
                        self.cache[(method, path)] = cached
                data = cached[0]
                step = self.step_of(name if name is not None else cached[1])
            else:
                data = self.build(method, path, headers, body)
                step = self.step_of(name if name is not None else f"{method} {path.split('?', 1)[0]}")
            conn = self.conn
            if conn is None or conn.state != F_IDLE:
                conn = await self.connect(step, now_ns())
            try:
                resp = await conn.request(data, step, method == "HEAD")
            except CancelledError:
                conn.abort()
                self.conn = None
                raise
            resp.url = path
            if conn.set_cookie:
                self.keep_cookies(resp)
            if not allow_redirects or resp.status not in REDIRECT_STATUSES:
                if history is not None:
                    resp.history = history
                return resp
            location = resp.headers.get("location")
            if not location:
                return resp
            if _urlsplit is None:
                from urllib.parse import urlsplit as _u
                _urlsplit = _u
            parts = _urlsplit(location)
            if parts.netloc and parts.netloc != self.host_header:
                if history is not None:
                    resp.history = history     # another host: not followed
                return resp
            if history is None:
                history = []
            history.append(resp)
            if len(history) > self.max_redirects:
                raise TooManyRedirects(f"more than {self.max_redirects} redirects from {history[0].url}")
            self.stats.slots[S_REDIRECTS] += 1
            if parts.path.startswith("/"):
                path = parts.path
            else:
                path = path.split("?", 1)[0].rsplit("/", 1)[0] + "/" + parts.path
            if parts.query:
                path += "?" + parts.query
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", b""
                if headers:
                    headers = {k: v for k, v in (headers.items() if isinstance(headers, dict) else headers)
                               if k.lower() not in ("content-type", "content-length")}

    def get(self, str path, *, headers=None, body=b"", json=None, str name=None,
            bint allow_redirects=True):
        return self.request("GET", path, headers=headers, body=body, json=json, name=name,
                            allow_redirects=allow_redirects)

    def post(self, str path, *, headers=None, body=b"", json=None, str name=None,
            bint allow_redirects=True):
        return self.request("POST", path, headers=headers, body=body, json=json, name=name,
                            allow_redirects=allow_redirects)

    def put(self, str path, *, headers=None, body=b"", json=None, str name=None,
            bint allow_redirects=True):
        return self.request("PUT", path, headers=headers, body=body, json=json, name=name,
                            allow_redirects=allow_redirects)

    def patch(self, str path, *, headers=None, body=b"", json=None, str name=None,
            bint allow_redirects=True):
        return self.request("PATCH", path, headers=headers, body=body, json=json, name=name,
                            allow_redirects=allow_redirects)

    def delete(self, str path, *, headers=None, body=b"", json=None, str name=None,
            bint allow_redirects=True):
        return self.request("DELETE", path, headers=headers, body=body, json=json, name=name,
                            allow_redirects=allow_redirects)

    def head(self, str path, *, headers=None, body=b"", json=None, str name=None,
            bint allow_redirects=True):
        return self.request("HEAD", path, headers=headers, body=body, json=json, name=name,
                            allow_redirects=allow_redirects)
