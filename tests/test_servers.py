"""Tests for the loopback servers in stressx._testing (target + fault server)."""

import socket
import time
import urllib.error
import urllib.request

import pytest
import trustme

from stressx._testing import faults, target

TIMEOUT = 3.0
REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def get(url):
    """(status, body) for a GET, including error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def tgt():
    with target.TargetThread() as t:
        yield t


# --- target ---------------------------------------------------------------

def test_target_defaults_and_health(tgt):
    assert tgt.url == f"http://127.0.0.1:{tgt.port}/"
    assert get(tgt.url) == (200, b"xx")
    assert get(tgt.url + "any/path") == (200, b"xx")
    assert get(tgt.url + "health") == (200, b"ok")


def test_target_any_method(tgt):
    req = urllib.request.Request(tgt.url + "p", data=b"body", method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        assert (r.status, r.read()) == (200, b"xx")


def test_target_overrides(tgt):
    assert get(tgt.url + "?status=503") == (503, b"xx")
    assert get(tgt.url + "?size=1000") == (200, b"x" * 1000)
    assert get(tgt.url + "?size=0") == (200, b"")
    t0 = time.perf_counter()
    assert get(tgt.url + "?delay=200")[0] == 200
    assert time.perf_counter() - t0 >= 0.19


def test_target_counts_connections_requests_and_paths():
    """The tally tests compare the client's figures with: one keep-alive connection carrying
    three requests, then a second connection; /health is not counted."""
    import http.client
    with target.TargetThread() as t:
        c = http.client.HTTPConnection("127.0.0.1", t.port, timeout=TIMEOUT)
        for path in ("/a", "/a?size=3", "/b"):
            c.request("GET", path)
            c.getresponse().read()
        c.close()
        assert get(t.url + "health") == (200, b"ok")
        assert (t.counts.connections, t.counts.requests) == (2, 3)
        assert dict(t.counts.paths) == {"/a": 2, "/b": 1}


@pytest.mark.parametrize("q", ["delay=abc", "delay=-1", "delay=nan", "status=99", "status=700",
                               "status=x", "size=-1", "size=1.5", "size=999999999999"])
def test_target_rejects_bad_params(tgt, q):
    status, body = get(tgt.url + "?" + q)
    assert status == 400 and body.startswith(b"bad ")


def test_target_constructor_defaults():
    with target.TargetThread(delay_ms=100, status=201, size=5) as t:
        t0 = time.perf_counter()
        assert get(t.url) == (201, b"xxxxx")
        assert time.perf_counter() - t0 >= 0.09
        assert get(t.url + "?delay=0&status=200&size=1") == (200, b"x")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "example.com", "::"])
def test_refuses_non_loopback(host):
    with pytest.raises(ValueError, match="non-loopback"):
        target.TargetThread(host=host)
    with pytest.raises(ValueError, match="non-loopback"):
        faults.FaultServerThread("ok", host=host)


def test_target_https():
    import ssl
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with target.TargetThread(ssl_context=server_ctx) as t:
        assert t.url.startswith("https://127.0.0.1:")
        with urllib.request.urlopen(t.url, timeout=TIMEOUT, context=client_ctx) as r:
            assert r.read() == b"xx"


# --- fault server ---------------------------------------------------------

def connect(f):
    s = socket.create_connection(("127.0.0.1", f.port), timeout=TIMEOUT)
    s.sendall(REQ)
    return s


def recv_all(s):
    chunks = []
    while True:
        c = s.recv(65536)
        if not c:
            return b"".join(chunks)
        chunks.append(c)


def test_fault_unknown_mode():
    with pytest.raises(ValueError):
        faults.FaultServerThread("nope")


def test_fault_garbage():
    with faults.FaultServerThread("garbage") as f, connect(f) as s:
        assert f.url == f"http://127.0.0.1:{f.port}/"
        assert s.recv(1024) == faults.GARBAGE
        s.sendall(REQ)  # connection stays open and answers again
        assert s.recv(1024) == faults.GARBAGE


def test_fault_stall():
    with faults.FaultServerThread("stall") as f, connect(f) as s:
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1024)


def test_fault_reset():
    """An RST, not an orderly close: the read fails with ECONNRESET (a FIN would read b"")."""
    with faults.FaultServerThread("reset") as f, connect(f) as s:
        with pytest.raises(ConnectionResetError):
            s.recv(1024)


def test_fault_close_truncates():
    with faults.FaultServerThread("close") as f, connect(f) as s:
        data = recv_all(s)
        assert data == faults.PARTIAL
        assert len(data.split(b"\r\n\r\n", 1)[1]) < 100  # body shorter than Content-Length


def test_fault_ok_keepalive_and_pipelining():
    with faults.FaultServerThread("ok") as f, connect(f) as s:
        assert s.recv(1024) == faults.OK_RESPONSE
        s.sendall(REQ)
        assert s.recv(1024) == faults.OK_RESPONSE
        s.sendall(REQ[:-3])  # terminator split across writes
        time.sleep(0.05)
        s.sendall(REQ[-3:])
        assert s.recv(1024) == faults.OK_RESPONSE
        s.sendall(REQ * 3)  # pipelined
        want, got = faults.OK_RESPONSE * 3, b""
        while len(got) < len(want):
            got += s.recv(1024)
        assert got == want


def test_fault_counts_connections_and_requests():
    with faults.FaultServerThread("ok") as f:
        with connect(f) as s:                       # 1 request, then 3 pipelined, one split
            assert s.recv(1024) == faults.OK_RESPONSE
            s.sendall(REQ * 2 + REQ[:-2])
            time.sleep(0.05)
            s.sendall(REQ[-2:])
            want, got = faults.OK_RESPONSE * 3, b""
            while len(got) < len(want):
                got += s.recv(1024)
        with connect(f) as s:
            assert s.recv(1024) == faults.OK_RESPONSE
        assert (f.accepted, f.requests) == (2, 5)


def test_fault_stop_kills_connections():
    f = faults.FaultServerThread("ok").start()
    s = connect(f)
    try:
        assert s.recv(1024) == faults.OK_RESPONSE
        f.stop()
        try:
            assert s.recv(1024) == b""
        except ConnectionResetError:
            pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", f.port), timeout=TIMEOUT)
    finally:
        s.close()
        f.stop()  # idempotent


def test_free_port_refuses():
    port = faults.free_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
