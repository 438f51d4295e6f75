"""Option parsing and validation: every bad value names its option."""
import pytest

from stressx.errors import ConfigError
from stressx.load.config import build_request, resolve
from stressx.units import parse_duration, parse_rate


@pytest.mark.parametrize("text,seconds", [
    (10, 10.0), (2.5, 2.5), ("300", 300.0), ("300s", 300.0), ("5m", 300.0), ("1h30m", 5400.0),
    ("500ms", 0.5), ("1m30s", 90.0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "-3", "0", "10 s s", "1h-5m"])
def test_bad_durations(text):
    with pytest.raises(ConfigError, match="--duration"):
        parse_duration(text)


@pytest.mark.parametrize("text,rate", [(10, 10.0), ("10", 10.0), ("10/s", 10.0), ("600/m", 10.0),
                                       ("3600/h", 1.0), ("0.5", 0.5)])
def test_rates(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["0", "-1", "fast", "10/d", "1e99"])
def test_bad_rates(text):
    with pytest.raises(ConfigError, match="--rate"):
        parse_rate(text)


@pytest.mark.parametrize("kwargs,option", [
    (dict(url="ftp://127.0.0.1/"), "URL"),
    (dict(url="http:///nohost"), "URL"),
    (dict(url="http://127.0.0.1:99999/"), "URL"),
    (dict(url="http://127.0.0.1/", workers=0), "--workers"),
    (dict(url="http://127.0.0.1/", workers="two"), "--workers"),
    (dict(url="http://127.0.0.1/", connections=0), "--connections"),
    (dict(url="http://127.0.0.1/", requests=1.5), "--requests"),
    (dict(url="http://127.0.0.1/", headers=["NoColon"]), "--header"),
    (dict(url="http://127.0.0.1/", headers=["Bad Name: x"]), "--header"),
    (dict(url="http://127.0.0.1/", timeout="0s"), "--timeout"),
    (dict(url="http://127.0.0.1/", method="GE T"), "--method"),
    (dict(url="http://127.0.0.1/", connections=10, max_connections=5), "--max-connections"),
    (dict(url="http://127.0.0.1/", ca_file="/nonexistent/ca.pem"), "--ca-file"),
])
def test_bad_options_name_the_option(kwargs, option):
    url = kwargs.pop("url")
    with pytest.raises(ConfigError) as info:
        resolve(url, **kwargs)
    assert info.value.option == option
    assert str(info.value).startswith(option + ":")


def test_defaults():
    cfg = resolve("http://127.0.0.1:8080/x?y=1")
    assert cfg.model == "closed" and cfg.connections == 10 and cfg.duration == 10.0
    assert cfg.target.path == "/x?y=1" and cfg.target.port == 8080
    cfg = resolve("https://localhost/", rate="100/s", requests=50)
    assert cfg.model == "open" and cfg.rate == 100.0 and cfg.duration is None
    assert cfg.target.port == 443 and cfg.target.address in ("127.0.0.1", "::1")


def test_request_bytes():
    cfg = resolve("http://127.0.0.1:8080/api?q=1", method="post", body='{"a":1}',
                  headers=["Content-Type: application/json", "X-Trace: t1"])
    req = build_request(cfg)
    head, body = req.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api?q=1 HTTP/1.1"
    assert "Host: 127.0.0.1:8080" in lines
    assert "Content-Type: application/json" in lines and "X-Trace: t1" in lines
    assert "Content-Length: 7" in lines
    assert body == b'{"a":1}'


def test_host_header_can_be_overridden():
    cfg = resolve("http://127.0.0.1/", headers=["Host: example.test"])
    lines = build_request(cfg).decode().split("\r\n")
    assert lines.count("Host: example.test") == 1 and not any(l == "Host: 127.0.0.1" for l in lines)
