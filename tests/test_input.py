"""Every input is checked before it reaches the wire (issue 8).

A bad method, path, query, header or URL from any source (URL argument, flag, STRESSX_*
variable, config file, workload file, Python) stops the run with one line naming the field and
its source, exit 2, and the loopback server below receives not one byte. What is valid goes out
in wire form: non-ASCII paths percent-encoded as UTF-8, internationalised hosts IDNA-encoded.
"""
from __future__ import annotations

import asyncio
import os

import pytest
import stressx
from stressx._testing.faults import OK_RESPONSE, LoopThread
from stressx.errors import ConfigError
from stressx.load.config import build_request, resolve
from stressx.load.workload import Scenario, Workload
from stressx.units import ascii_host, request_target

from conftest import run_cli

INJECTION = "/p HTTP/1.0\r\nX-Injected: yes\r\n\r\nGET /smuggled"


class Recorder(LoopThread):
    """A loopback HTTP/1.1 server that answers 200 to each (bodyless) request and keeps every
    byte and request head it received, and how many connections were made."""

    def __init__(self):
        super().__init__()
        self.connections = 0
        self.data = bytearray()
        self.heads: list[list[bytes]] = []
        self.transports: set = set()
        self.port = 0

    async def _start(self):
        rec = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                rec.connections += 1
                rec.transports.add(transport)
                self.transport, self.buf = transport, b""

            def connection_lost(self, exc):
                rec.transports.discard(self.transport)

            def data_received(self, data):
                rec.data += data
                self.buf += data
                while b"\r\n\r\n" in self.buf:
                    head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                    rec.heads.append(head.split(b"\r\n"))
                    self.transport.write(OK_RESPONSE)

        server = await asyncio.get_running_loop().create_server(Protocol, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _stop(self, server):
        server.close()
        for t in list(self.transports):
            t.abort()
        await server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def header(self, name: bytes, index: int = 0) -> bytes | None:
        for line in self.heads[index][1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


@pytest.fixture
def server():
    with Recorder() as s:
        yield s


def _cli(*args, env=None, cwd=None):
    """The CLI with STRESSX_* from this process removed and `env` added: one request, one
    connection, one shard."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STRESSX_")}
    environ.update(env or {})
    return run_cli(*args, env=environ, cwd=cwd)


def _one_error_line(r, *parts: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stressx: error: "), r.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


ONE = ["-n", "1", "-c", "1", "-w", "1", "-q"]


# -- the request line and headers, from every source ------------------------------------------

def _yaml_str(text: str) -> str:
    """A YAML double-quoted scalar with \\r, \\n, \\t, \\0 written as escapes."""
    return '"' + text.encode("unicode_escape").decode().replace('"', '\\"') + '"'


@pytest.mark.parametrize("case", [
    # (files {name: text}, args after URL (None: the config gives the target), env, label)
    ({"w.yaml": f"scenarios:\n  - {{name: search, path: {_yaml_str(INJECTION)}}}\n"},
     ["--workload", "w.yaml"], {}, "w.yaml: scenarios[0].path"),
    ({"w.yaml": "scenarios:\n  - {name: a, path: \"/a\\tb\"}\n"},
     ["--workload", "w.yaml"], {}, "w.yaml: scenarios[0].path"),
    ({"w.yaml": "scenarios:\n  - {name: a, url: \"http://127.0.0.1:{port}/a\\r\\nX: y\"}\n"},
     ["--workload", "w.yaml"], {}, "w.yaml: scenarios[0].url"),
    ({"w.yaml": "scenarios:\n  - {name: a, path: /, headers: {X-A: \"a\\rb\"}}\n"},
     ["--workload", "w.yaml"], {}, "w.yaml: scenarios[0].headers"),
    ({"w.yaml": "scenarios:\n  - {name: a, path: /, headers: {\"X-A: b\": c}}\n"},
     ["--workload", "w.yaml"], {}, "w.yaml: scenarios[0].headers"),
    ({"w.yaml": "scenarios:\n  - {name: a, path: /, method: \"GET /x\"}\n"},
     ["--workload", "w.yaml"], {}, "w.yaml: scenarios[0].method"),
    ({"w.yaml": "scenarios:\n  - {name: a, path: /}\n"},
     ["--workload", "w.yaml", "-H", "X-A: a\x01b"], {}, "--header"),
    ({}, ["--method", "GET /x"], {}, "--method"),
    ({}, ["--method", "\u017fet"], {}, "--method"),             # 'ſet'.upper() would be 'SET'
    ({}, [], {"STRESSX_METHOD": "GET\n"}, "STRESSX_METHOD"),
    ({}, ["-H", "X-A: a\x7fb"], {}, "--header"),
    ({}, ["-H", "X A: b"], {}, "--header"),
    ({}, [], {"STRESSX_HEADERS": "X-A: a\rb"}, "STRESSX_HEADERS"),
    ({}, ["-H", "Content-Length: 5", "--body", "abc"], {}, "--header"),
    ({}, ["-H", "Transfer-Encoding: chunked"], {}, "--header"),
    ({"c.yaml": "target: \"http://127.0.0.1:{port}/a b\"\n"}, None, {}, "c.yaml: target"),
    ({"c.yaml": "target: \"http://127.0.0.1:{port}/\"\nmethod: \"GET\\n\"\n"}, None, {}, "c.yaml: method"),
    ({"c.yaml": "target: \"http://127.0.0.1:{port}/\"\nheaders: {X-A: \"a\\nb\"}\n"}, None, {}, "c.yaml: headers"),
    ({"c.yaml": "target: \"http://127.0.0.1:{port}/\"\nscenarios:\n  - {name: a, path: \"/a\\0\"}\n"},
     None, {}, "c.yaml: scenarios[0].path"),
], ids=["workload-path-smuggling", "workload-path-tab", "workload-url-crlf", "workload-header-cr",
        "workload-header-name-colon", "workload-method", "header-with-workload", "flag-method", "flag-method-long-s",
        "env-method-newline", "flag-header-del", "flag-header-name", "env-headers-cr",
        "content-length-mismatch", "transfer-encoding", "config-target-space",
        "config-method", "config-headers", "config-scenarios-nul"])
def test_bad_request_parts_exit_2_naming_the_source_and_send_nothing(server, tmp_path, case):
    files, args, env, label = case
    for name, text in files.items():
        (tmp_path / name).write_text(text.replace("{port}", str(server.port)))
    head = ["run", "--config", "c.yaml"] if args is None else ["run", server.url, *args]
    r = _cli(*head, *ONE, "-o", tmp_path / "out", env=env, cwd=tmp_path)
    assert _one_error_line(r).startswith(f"stressx: error: {label}: "), r.stderr
    assert server.connections == 0 and not server.data
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tail,what", [
    ("a b", "a space"), ("a\tb", "a tab"), ("a\r\nX-Injected: yes", "CR"), ("a\x7f", "0x7F"),
    ("a\x1b[31m", "0x1B"),
])
def test_url_argument_with_bytes_that_split_a_request(server, tmp_path, tail, what):
    """urlsplit silently drops tabs and line breaks; the raw URL is checked first."""
    r = _cli("run", server.url + tail, *ONE, "-o", tmp_path / "out")
    assert _one_error_line(r, what).startswith("stressx: error: URL: ")
    assert server.connections == 0 and not server.data


def test_the_smuggling_workload_used_to_send_two_requests_per_send(server, tmp_path):
    """The issue's reproduction: one scenario, one request budget, one request line only."""
    wl = tmp_path / "mixed.yaml"
    wl.write_text(f"scenarios:\n  - {{name: search, path: {_yaml_str(INJECTION)}}}\n")
    r = _cli("run", server.url, "--workload", wl, *ONE, "-o", tmp_path / "out")
    _one_error_line(r, f"{wl}: scenarios[0].path: contains a space")
    assert server.heads == []


# -- what is valid goes out in wire form -----------------------------------------------------------

@pytest.mark.parametrize("path,sent", [
    ("日本?q=café", b"/%E6%97%A5%E6%9C%AC?q=caf%C3%A9"),
    ("caf%C3%A9/x%20y?a=1&b=%2F", b"/caf%C3%A9/x%20y?a=1&b=%2F"),     # escapes kept as written
    ("a\"<>|{}^`", b"/a\"<>|{}^`"),                                  # odd but harmless ASCII
])
def test_non_ascii_url_paths_go_out_percent_encoded(server, tmp_path, path, sent):
    r = _cli("run", server.url + path, *ONE, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert server.heads[0][0] == b"GET " + sent + b" HTTP/1.1"


def test_workload_path_with_non_ascii_is_percent_encoded(server, tmp_path):
    wl = tmp_path / "w.yaml"
    wl.write_text("scenarios:\n  - {name: a, path: /café, headers: {X-Name: Zoë}}\n", encoding="utf-8")
    r = _cli("run", server.url, "--workload", wl, *ONE, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert server.heads[0][0] == b"GET /caf%C3%A9 HTTP/1.1"
    assert server.header(b"X-Name") == "Zoë".encode()          # a header value goes as UTF-8


def test_env_headers_one_per_line_with_spaces(server, tmp_path):
    """STRESSX_HEADERS holds one 'Name: value' per line; spaces stay inside a value."""
    r = _cli("run", server.url, *ONE, "-o", tmp_path / "a",
             env={"STRESSX_HEADERS": "Content-Type: application/json"})
    assert r.returncode == 0, r.stderr
    assert server.header(b"Content-Type") == b"application/json"
    r = _cli("run", server.url, *ONE, "-o", tmp_path / "b",
             env={"STRESSX_HEADERS": "X-A: one\r\nX-B: two words here\n\n"})
    assert r.returncode == 0, r.stderr
    assert server.header(b"X-A", 1) == b"one" and server.header(b"X-B", 1) == b"two words here"


# -- hosts: IDNA ---------------------------------------------------------------------------

@pytest.mark.parametrize("host,encoded", [
    ("bücher.example", "xn--bcher-kva.example"),
    ("日本.jp", "xn--wgv71a.jp"),
    ("Straße.de", "xn--strae-oqa.de"),                 # UTS 46 non-transitional, as browsers
    ("ｌｏｃａｌｈｏｓｔ", "localhost"),                  # full-width letters map to ASCII
    ("example.com", "example.com"),
    ("a_b.internal", "a_b.internal"),                  # ASCII names pass as written
])
def test_ascii_host(host, encoded):
    assert ascii_host(host) == encoded


@pytest.mark.parametrize("host", ["a\u200db.example", "ü" * 70 + ".example", "a\"b", "a%0d.example"])
def test_ascii_host_refuses_bad_names(host):
    with pytest.raises(ConfigError, match="^URL: host"):
        ascii_host(host)


def test_idn_host_goes_out_idna_encoded_in_the_host_header(server, tmp_path):
    """ｌｏｃａｌｈｏｓｔ is an internationalised spelling of localhost: the only IDN that
    reaches loopback. The Host header carries its IDNA form (it used to crash, exit 1)."""
    r = _cli("run", f"http://ｌｏｃａｌｈｏｓｔ:{server.port}/", *ONE, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert server.header(b"Host") == f"localhost:{server.port}".encode()


@pytest.mark.parametrize("url,parts", [
    ("http://" + "ü" * 70 + ".invalid/", ("URL: host", "not a valid internationalised domain name")),
    ("http://bücher.invalid/", ("URL: cannot resolve host", "xn--bcher-kva.invalid")),
])
def test_non_loopback_idn_is_refused_cleanly(tmp_path, url, parts):
    r = _cli("run", url, *ONE, "-o", tmp_path / "out")
    _one_error_line(r, *parts)


# -- YAML syntax errors ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["config", "workload"])
def test_yaml_syntax_errors_name_file_line_column_and_problem(server, tmp_path, kind):
    bad = tmp_path / "bad.yaml"
    bad.write_text(("target" if kind == "config" else "scenarios") + ": [a, b\nx: 1\n")
    args = ["--config", bad] if kind == "config" else [server.url, "--workload", bad]
    r = _cli("run", *args, *ONE, "-o", tmp_path / "out")
    line = _one_error_line(r, f"{bad}: line 2, column 2", "not valid YAML",
                           "expected ',' or ']', but got ':'", "flow sequence at line 1, column")
    assert line.startswith(f"stressx: error: {bad}: ")
    assert server.connections == 0


def test_yaml_error_column_counts_from_one(tmp_path):
    bad = tmp_path / "tab.yaml"
    bad.write_text("target: http://127.0.0.1:1/\nrate: @5\n")
    r = _cli("run", "--config", bad, "-o", tmp_path / "out")
    _one_error_line(r, f"{bad}: line 2, column 7", "'@' that cannot start any token")


# -- every STRESSX_* error names the variable ------------------------------------------------------

@pytest.mark.parametrize("command,env", [
    (["run"], {"STRESSX_RATE": "abc"}),
    (["run"], {"STRESSX_HEADERS": "nocolon"}),
    (["run"], {"STRESSX_HEADERS": "X-A: a\x01b"}),
    (["run"], {"STRESSX_METHOD": "G T"}),
    (["run"], {"STRESSX_INSECURE": "maybe"}),
    (["run"], {"STRESSX_CONFIG": "/nonexistent/stressx.yaml"}),
    (["run"], {"STRESSX_WORKLOAD": "/nonexistent/w.yaml"}),
    (["run"], {"STRESSX_BODY_FILE": "/nonexistent/body"}),
    (["run"], {"STRESSX_SCENARIO": "nope"}),
    (["run"], {"STRESSX_PROFILE": "nope"}),
    (["run"], {"STRESSX_TIMEOUT": "-1"}),
    (["steady", "--rps", "1"], {"STRESSX_MODEL": "sideways"}),
    (["ramp", "--min-rps", "1", "--max-rps", "2"], {"STRESSX_RAMP_DOWN": "maybe"}),
    (["phases", "--max-rps", "2", "--phase-duration", "1s"], {"STRESSX_PRESET": "nope"}),
    (["steady", "--duration", "1s"], {"STRESSX_RPS": "fast"}),
])
def test_every_env_var_error_names_the_variable(server, tmp_path, command, env):
    """The README's promise: a bad STRESSX_X gives one line naming STRESSX_X, exit 2."""
    (name, value), = env.items()
    bound = ["-d", "1s"] if command == ["run"] else ["--duration", "1s"] if "--rps" in command \
        or "--min-rps" in command else []
    r = _cli(command[0], server.url, *command[1:], *bound, "-o", tmp_path / "out", env=env)
    assert _one_error_line(r).startswith(f"stressx: error: {name}: "), r.stderr
    assert server.connections == 0


def test_click_errors_from_a_flag_are_one_line_too(server, tmp_path):
    r = _cli("steady", server.url, "--rps", "1", "--duration", "1s", "--model", "sideways",
             "-o", tmp_path / "out")
    assert _one_error_line(r).startswith("stressx: error: --model: "), r.stderr


# -- the library: the same checks, and the last one before the wire ----------------------------

def test_library_validates_scenarios_built_in_python(server):
    wl = Workload("mine", "", [Scenario("s", path=INJECTION)])
    with pytest.raises(ConfigError, match=r"^mine: scenario s\.path: contains a space"):
        stressx.run(server.url, requests=1, workers=1, workload=wl)
    with pytest.raises(ConfigError, match=r"^--header: value of 'X-A' contains LF"):
        stressx.run(server.url, requests=1, workers=1, headers=[("X-A", "b\nc")])
    assert server.connections == 0


def test_build_request_refuses_a_config_changed_after_resolve():
    cfg = resolve("http://127.0.0.1:1/", workers=1)
    assert build_request(cfg).startswith(b"GET / HTTP/1.1\r\n")
    cfg.scenarios[0].method = "GET / HTTP/1.0\r\nX: y"
    with pytest.raises(ConfigError, match="malformed"):
        build_request(cfg)


@pytest.mark.parametrize("text,out", [("/a?b=c", "/a?b=c"), ("/é", "/%C3%A9"), ("/%41", "/%41")])
def test_request_target(text, out):
    assert request_target(text, "x") == out


@pytest.mark.parametrize("text", ["/a b", "/a#frag", "a", "/\udcff\ud800"])
def test_request_target_refuses(text):
    with pytest.raises(ConfigError, match="^x: "):
        request_target(text, "x")


def test_results_directory_that_cannot_be_written_exits_2_and_sends_nothing(tmp_path):
    """An output directory that cannot be created is bad input: one line naming --out, exit 2,
    nothing sent (it used to be a FileNotFoundError traceback, exit 1)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with Recorder() as server:
        r = run_cli("run", f"http://127.0.0.1:{server.port}/", "--rate", "10", "-d", "1s",
                    "--out", blocker / "sub")
        assert server.connections == 0
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stressx: error: --out: "), r.stderr
    assert str(blocker / "sub") in lines[0]
