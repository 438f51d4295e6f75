"""HTTPS end to end: the engine's own TLS (an ssl.SSLObject over memory BIOs inside the compiled
connection protocol, _tls.pxi) against real TLS servers on loopback.

What it must keep from the SSL transport it replaced: verification on by default (the chain
and the host name), failed handshakes as `tls` errors with no request reaching the server,
close_notify as the end of a body that runs until the close and a bare TCP FIN as no such end.
What it adds: sessions resumed on reconnect, counted in `tls_resumed`.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading

import pytest
import stressx
import trustme
from stressx._testing.faults import FaultServerThread
from stressx._testing.target import TargetThread


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca, *names, max_version=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(ctx)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class TlsServer:
    """A small asyncio TLS server in a thread, one behaviour per instance (`mode`):

    - ``close``:    a full response with ``Connection: close``, then close_notify and close (every
                    request needs a new connection: sessions get resumed or not)
    - ``big``:      keep-alive responses with a ``size``-byte body (many TLS records each)
    - ``partial``:  half a response (Content-Length 100, 3 bytes sent), then close_notify
    - ``eofbody``:  a response whose body runs until the close, then close_notify
    - ``finbody``:  the same body, then a TCP FIN without close_notify (a truncation, for all
                    the client can tell)
    - ``hangup``:   closes every connection as soon as it is accepted, before any handshake
    - ``plain``:    no TLS: answers every connection with a plain HTTP 400 and closes it

    Counts: ``accepted`` connections, ``requests`` (complete request heads), ``resumed``
    (handshakes the server saw resume a session).
    """

    def __init__(self, ctx: ssl.SSLContext, mode: str, size: int = 0):
        self.ctx, self.mode, self.size = ctx, mode, size
        self.accepted = self.requests = self.resumed = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        ssl_ctx = None if self.mode in ("hangup", "plain") else self.ctx
        self.server = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(lambda: _ServerProtocol(self), "127.0.0.1", 0, ssl=ssl_ctx),
            self.loop).result(5)
        self.url = f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, server: TlsServer):
        self.server, self.buf = server, b""

    def connection_made(self, transport):
        self.transport = transport
        self.server.accepted += 1
        if self.server.mode == "hangup":
            transport.abort()
            return
        if self.server.mode == "plain":
            transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            transport.close()
            return
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None and sslobj.session_reused:
            self.server.resumed += 1

    def data_received(self, data):
        self.buf += data
        *requests, self.buf = self.buf.split(b"\r\n\r\n")
        for _ in requests:
            self.server.requests += 1
            self.respond()

    def respond(self):
        t, mode = self.transport, self.server.mode
        if mode == "close":
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            t.close()                       # asyncio's SSL transport sends close_notify
        elif mode == "big":
            body = bytes(i % 251 for i in range(self.server.size))
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif mode == "partial":
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            t.close()
        elif mode == "eofbody":
            t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            t.close()
        elif mode == "finbody":
            t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            # the records above go out first, then a FIN and no close_notify
            self.server.loop.call_later(0.02, self.fin)

    def fin(self):
        sock = self.transport.get_extra_info("socket")
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.server.loop.call_later(0.5, self.transport.abort)


def run(url, tmp_path, name, **kw):
    kw.setdefault("workers", 1)
    return stressx.run(url, out=tmp_path / name, **kw)


# -- verification ---------------------------------------------------------------------------------

def test_verified_run_counts_what_the_server_counts(ca, ca_file, tmp_path):
    with TargetThread(ssl_context=server_context(ca)) as t:
        r = run(t.url, tmp_path, "ok", connections=4, requests=400, ca_file=ca_file)
        assert r.ok == 400 and r.error_count == 0 and r.status == {"200": 400}
        assert t.counts.requests == 400
        assert r.connections_opened == t.counts.connections == 4
        assert not r.insecure
        assert r.tls_resumed == 0          # four fresh connections, opened together


def test_unknown_ca_fails_every_handshake_and_sends_nothing(ca, tmp_path):
    other = trustme.CA()
    other_file = tmp_path / "other.pem"
    other.cert_pem.write_to_path(str(other_file))
    with TargetThread(ssl_context=server_context(ca)) as t:
        r = run(t.url, tmp_path, "bad", connections=2, requests=20, ca_file=str(other_file))
        assert t.counts.requests == 0       # no request reached the handler
    assert r.ok == 0 and r.errors == {"tls": 20}
    assert r.connect_failures_by_kind == {"tls": r.connect_failures} and r.connect_failures >= 20


def test_host_name_mismatch_is_a_tls_error(ca, ca_file, tmp_path):
    # a certificate from the trusted CA, for another name than the one in the URL
    with TargetThread(ssl_context=server_context(ca, "example.org")) as t:
        r = run(t.url, tmp_path, "mismatch", connections=2, requests=10, ca_file=ca_file)
        assert t.counts.requests == 0
        insecure = run(t.url, tmp_path, "insecure", connections=2, requests=10, insecure=True)
        assert t.counts.requests == 10
    assert r.ok == 0 and r.errors == {"tls": 10}
    assert insecure.ok == 10 and insecure.insecure


def test_plain_http_server_on_an_https_url_is_a_tls_error(ca, tmp_path):
    # the ClientHello gets a plain HTTP answer: not a TLS record
    with TlsServer(server_context(ca), "plain") as s:
        r = run(s.url, tmp_path, "plain", connections=1, requests=3, insecure=True, timeout="2s")
        assert s.requests == 0
    assert r.ok == 0 and r.errors == {"tls": 3}


def test_handshake_that_never_ends_times_out(tmp_path):
    # a server that accepts and never answers the ClientHello: the connect times out, as before
    with FaultServerThread("stall") as f:
        r = run(f.url.replace("http://", "https://"), tmp_path, "stall", connections=1,
                requests=2, insecure=True, timeout="0.5s")
        assert f.requests == 0
    assert r.ok == 0 and r.errors == {"timeout": 2}


def test_peer_closing_before_the_handshake_is_a_reset(ca, tmp_path):
    with TlsServer(server_context(ca), "hangup") as s:
        r = run(s.url, tmp_path, "hangup", connections=1, requests=3, insecure=True, timeout="2s")
        assert s.requests == 0
    assert r.ok == 0 and set(r.errors) == {"reset"} and r.errors["reset"] == 3


# -- sessions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_reconnects_resume_the_session(ca, ca_file, tmp_path, version):
    """Every response closes its connection: each request after the first ones is a
    reconnect, which offers the last session and has it resumed (the server agrees)."""
    with TlsServer(server_context(ca, max_version=version), "close") as s:
        r = run(s.url, tmp_path, "resume", connections=2, requests=30, ca_file=ca_file)
        assert s.requests == 30
    assert r.ok == 30 and r.error_count == 0
    assert r.connections_opened == s.accepted >= 30
    # only connections opened before any session was known do a full handshake
    assert r.tls_resumed == s.resumed
    assert r.tls_resumed >= r.connections_opened - 4, (r.tls_resumed, r.connections_opened)


def test_tls_resumed_is_none_for_http(target, tmp_path):
    r = run(target.url, tmp_path, "http", connections=1, requests=5)
    assert r.ok == 5 and r.tls_resumed is None


# -- the byte stream --------------------------------------------------------------------------------

def test_large_bodies_across_many_records(ca, ca_file, tmp_path):
    size = 300_000                 # about 19 TLS records of 16 KiB per response
    with TlsServer(server_context(ca), "big", size=size) as s:
        r = run(s.url, tmp_path, "big", connections=3, requests=30, ca_file=ca_file)
        assert s.requests == 30
    head = len(b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n")
    assert r.ok == 30 and r.error_count == 0
    assert r.bytes_in == 30 * (head + size)        # plaintext, every byte once
    assert r.connections_opened == 3               # kept alive throughout


def test_close_notify_mid_response_fails_the_request_as_closed(ca, ca_file, tmp_path):
    with TlsServer(server_context(ca), "partial") as s:
        r = run(s.url, tmp_path, "partial", connections=1, requests=4, ca_file=ca_file)
        assert s.requests == 4
    assert r.ok == 0 and r.errors == {"closed": 4}


def test_close_notify_ends_a_body_that_runs_until_the_close(ca, ca_file, tmp_path):
    with TlsServer(server_context(ca), "eofbody") as s:
        r = run(s.url, tmp_path, "eofbody", connections=1, requests=4, ca_file=ca_file)
        assert s.requests == 4
    assert r.ok == 4 and r.error_count == 0


def test_fin_without_close_notify_ends_no_body(ca, ca_file, tmp_path):
    # the same response cut by a bare FIN: it may be a truncation, so it is not a success
    with TlsServer(server_context(ca), "finbody") as s:
        r = run(s.url, tmp_path, "finbody", connections=1, requests=3, ca_file=ca_file, timeout="3s")
        assert s.requests == 3
    assert r.ok == 0 and r.errors == {"closed": 3}
