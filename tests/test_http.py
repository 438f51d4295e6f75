"""HTTP/1.1 semantics of the client, end to end: real stressx runs against fault servers that
count what they receive, with the exact counts the design promises."""
import time

import pytest
import stressx
from stressx._testing.faults import HEAD_RESPONSE, FaultServerThread

from conftest import run_cli


def run(url, **options):
    options.setdefault("workers", 1)
    options.setdefault("out", None)
    return stressx.run(url, **options)


# -- bodiless responses --------------------------------------------------------------------------

def test_head_takes_no_body_whatever_content_length_says(fault):
    """The server announces Content-Length: 1000 and, rightly, sends no body: 50 HEAD
    requests are 50 responses on the 2 kept-alive connections, not 50 timeouts."""
    server = fault("head")
    r = run(server.url, method="HEAD", connections=2, requests=50, timeout="1s")
    assert r.ok == 50 and r.errors == {} and r.status == {"200": 50}
    assert server.requests == 50 and server.reused == 48 and server.accepted == 2
    assert r.connections_opened == 2
    # the same server's GET responses carry the 1000-byte body, and are read whole
    g = run(server.url, connections=2, requests=10, timeout="1s")
    assert g.ok == 10 and g.errors == {} and g.bytes_in == 10 * (len(HEAD_RESPONSE) + 1000)


@pytest.mark.parametrize("after,ok", [(b"", True), (b"STRAY", False)])
def test_head_response_split_across_reads(after, ok):
    """A HEAD response after a 100 Continue, its blank line split between two writes 20 ms
    apart: complete at the blank line, on one kept-alive connection; bytes right after that
    blank line, in the same read, are stray."""
    import socket, threading
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)
    pieces = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r",
              b"\n" + after)
    seen = []

    def serve():
        while len(seen) < 5:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(10)
                buf = b""
                try:
                    while len(seen) < 5:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                        while b"\r\n\r\n" in buf:
                            request, buf = buf.split(b"\r\n\r\n", 1)
                            seen.append(request.split(b" ", 1)[0])
                            for piece in pieces:
                                conn.sendall(piece)
                                time.sleep(0.02)
                except OSError:       # the client closed a connection it would not reuse
                    pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        r = run(f"http://127.0.0.1:{srv.getsockname()[1]}/", method="HEAD", connections=1,
                requests=5, timeout="2s")
    finally:
        srv.close()
    thread.join(5)
    assert seen == [b"HEAD"] * 5
    if ok:
        assert r.ok == 5 and r.errors == {} and r.connections_opened == 1
    else:
        assert r.ok == 0 and r.errors == {"protocol": 5} and r.connections_opened == 5


def test_head_against_the_embedded_target(target, tmp_path):
    r = run(target.url, method="HEAD", connections=2, requests=50, timeout="2s")
    assert r.ok == 50 and r.errors == {} and r.status == {"200": 50}
    assert r.connections_opened == 2
    cli = run_cli("run", target.url, "-X", "HEAD", "--connections", "2", "--requests", "20",
                  "--workers", "1", "--timeout", "2s", "--json", "--out", tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert '"ok": 20' in cli.stdout and '"error_count": 0' in cli.stdout


def test_informational_responses_are_skipped(fault):
    """100 Continue, then (10 ms later, in another read) 103 Early Hints and the 200: one
    response each, the 200, counted when it arrives."""
    server = fault("informational")
    r = run(server.url, connections=2, requests=20, timeout="1s")
    assert r.ok == 20 and r.errors == {} and r.status == {"200": 20}
    assert server.requests == 20 and server.reused == 18
    assert r.latency_uncorrected_ms["min"] >= 10     # measured to the final response


def test_no_content_and_not_modified_have_no_body(fault):
    """204 and 304 with a Content-Length: 5 that no body follows: complete at the header
    section (304 is not 2xx, so a `status` error by default), the connection kept."""
    server = fault("nocontent")
    r = run(server.url, connections=2, requests=20, timeout="1s")
    assert r.status == {"204": 10, "304": 10}
    assert r.ok == 10 and r.errors == {"status": 10}
    assert server.requests == 20 and server.reused == 18


# -- bytes nobody asked for ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["stray", "double", "headbody", "upgrade"])
def test_bytes_after_the_response_make_it_a_protocol_error(fault, mode):
    """Extra bytes in the same read as the response (after a body, a second response, a body
    on a HEAD response, an unasked-for 101): the response is a `protocol` error and its connection is never
    reused; each request goes out on a connection of its own."""
    server = fault(mode)
    r = run(server.url, method="HEAD" if mode == "headbody" else "GET", connections=2,
            requests=20, timeout="1s")
    assert r.ok == 0 and r.errors == {"protocol": 20} and r.completed == 20
    assert r.latency_ms is None
    assert server.requests == 20 and server.reused == 0
    assert r.connections_closed_stray == 0    # no connection was idle when they came


def test_bytes_on_an_idle_connection_close_it(fault):
    """Extra bytes 20 ms after a counted response, with no request outstanding (5 sends at
    200 ms intervals): each such connection is closed and counted, none is reused. The
    responses stay ok: they were counted before the bytes came. The run lasts its duration, so
    the last response's bytes (at ~0.82 s) come before its end too: all 5 are counted."""
    server = fault("straylate")
    r = run(server.url, rate=5, duration="1s", connections=8, timeout="1s")
    assert r.requests == 5 and r.ok == 5 and r.errors == {}
    assert r.connections_closed_stray == 5
    assert server.requests == 5 and server.reused == 0


# -- the response head limit (64 KiB) ------------------------------------------------------------

@pytest.mark.parametrize("head_bytes,ok", [(65536, True), (65537, False), (90_000, False)])
def test_response_head_limit(head_bytes, ok):
    with FaultServerThread("bigheader", head_bytes=head_bytes) as server:
        r = run(server.url, connections=2, requests=6, timeout="2s")
        assert server.requests == 6
    if ok:
        assert r.ok == 6 and r.errors == {}
    else:
        assert r.ok == 0 and r.errors == {"protocol": 6}


def test_endless_header_is_cut_at_the_limit_not_the_timeout(fault):
    """Header lines streamed forever (4 KiB every 5 ms): each request fails at 64 KiB, some
    80 ms in, long before the 20 s timeout."""
    server = fault("endlessheader")
    t0 = time.monotonic()
    r = run(server.url, connections=2, requests=4, timeout="20s")
    assert time.monotonic() - t0 < 10
    assert r.ok == 0 and r.errors == {"protocol": 4}
    assert server.requests == 4
