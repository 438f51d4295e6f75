"""Parsing the units and texts a user writes: durations, rates, sizes, HTTP methods, headers,
request targets and URLs. A leaf: it imports only stressx.errors.

Every function raises ConfigError naming the option as the user spelled it (a flag, an
environment variable, a config key, a workload field), so each caller passes `option`.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

from .errors import ConfigError

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")      # RFC 9110 token (use fullmatch)
LINE_BREAKERS = re.compile(r"[\x00-\x20\x7f]")          # cannot go on a request line
VALUE_BREAKERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # cannot go in a header value (tab can)
_HOST_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_ASCII_PRINTABLE = "".join(map(chr, range(0x21, 0x7f)))
_NAMED = {"\r": "CR", "\n": "LF", "\0": "NUL", " ": "a space", "\t": "a tab"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)?")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration(value, option: str = "--duration") -> float:
    """Seconds from 10, 2.5, '300', '300s', '5m', '1h30m', '500ms'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        pos, seconds, units = 0, 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, None: 1}
        while pos < len(text):
            m = _DURATION_PART.match(text, pos)
            if not m or (m.group(2) is None and m.end() != len(text)):
                raise ConfigError(option, f"expected a duration like 30, 30s, 5m, 1h30m or 500ms, got {str(value)!r}")
            seconds += float(m.group(1)) * units[m.group(2)]
            pos = m.end()
        if not text:
            raise ConfigError(option, "expected a duration like 30, 30s, 5m, 1h30m or 500ms, got ''")
    if not (seconds > 0 and seconds < 366 * 86400):
        raise ConfigError(option, f"must be more than 0 and under a year, got {str(value)!r}")
    return seconds


def parse_rate(value, option: str = "--rate") -> float:
    """Requests per second from 100, '100', '100/s', '600/m', '3600/h'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rate = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|h|sec|min|hour))?\s*", str(value).lower())
        if not m:
            raise ConfigError(option, f"expected requests per second like 100, 100/s or 600/m, got {str(value)!r}")
        per = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}[m.group(2)]
        rate = float(m.group(1)) / per
    if not (rate > 0 and rate <= 10_000_000):
        raise ConfigError(option, f"must be more than 0 and at most 10000000 requests/s, got {str(value)!r}")
    return rate


def _char(c: str) -> str:
    return _NAMED.get(c) or f"the control byte 0x{ord(c):02X}"


def check_method(value, option: str = "--method") -> str:
    """The method as it goes on the request line: an RFC 9110 token, upper-cased."""
    if not TOKEN.fullmatch(str(value)):     # before upper(): 'ſ'.upper() is 'S'
        raise ConfigError(option, f"expected an HTTP method token like GET or POST, got {str(value)!r}")
    return str(value).upper()


def check_header(name, value, option: str = "--header") -> tuple[str, str]:
    """A header as it goes on the wire: the name an RFC 9110 token, the value free of CR, LF,
    NUL and other control bytes (which would end the header or the request early)."""
    name, value = str(name).strip(), str(value).strip()
    if not TOKEN.fullmatch(name):
        raise ConfigError(option, f"{name!r} is not a valid header name (letters, digits and !#$%&'*+.^_`|~-)")
    bad = VALUE_BREAKERS.search(value)
    if bad:
        raise ConfigError(option, f"value of {name!r} contains {_char(bad.group())}, which a header value cannot carry: {value!r}")
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(option, f"value of {name!r} is not valid text: {value!r}") from None
    return name, value


def parse_header(text: str, option: str = "--header") -> tuple[str, str]:
    """'Name: value' from a flag, env var line or config list."""
    name, sep, value = str(text).partition(":")
    if not sep or not TOKEN.fullmatch(name.strip()):
        raise ConfigError(option, f"expected 'Name: value' with a valid header name, got {text!r}")
    return check_header(name, value, option)


def request_target(text, option: str) -> str:
    """A path and query as they go on the request line. Spaces, CR, LF, NUL and other control
    bytes would split or corrupt the request and are refused; non-ASCII is percent-encoded as
    UTF-8 (as browsers and curl do); '%' escapes already there are kept."""
    text = str(text)
    bad = LINE_BREAKERS.search(text)
    if bad:
        raise ConfigError(option, f"contains {_char(bad.group())}, which cannot go on a request line "
                                  f"(percent-encode it, e.g. %20 for a space): {text!r}")
    if "#" in text:
        raise ConfigError(option, f"a fragment ('#...') is never sent to a server; write %23 for a literal '#': {text!r}")
    if not text.startswith("/"):
        raise ConfigError(option, f"must start with '/', got {text!r}")
    try:
        return quote(text, safe=_ASCII_PRINTABLE, errors="surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(option, f"is not valid text: {text!r}") from None


def ascii_host(host: str, option: str = "URL") -> str:
    """The host as it goes in the Host header and the TLS server name: an internationalised
    name IDNA-encoded (UTS 46, as browsers do), an ASCII name as written."""
    if host.isascii():
        if not _HOST_CHARS.fullmatch(host):
            raise ConfigError(option, f"host {host!r} has characters a host name cannot have")
        return host
    import idna      # a dependency of aiohttp's yarl; IDNA 2008, unlike the stdlib codec
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ConfigError(option, f"host {host!r} is not a valid internationalised domain name: {exc}") from None


def split_url(url, option: str = "URL") -> tuple[str, str, int, str]:
    """(scheme, ASCII host, port, request target) of an http(s) URL, checked for what would
    corrupt a request. The raw text is checked first: urlsplit silently drops tabs and line
    breaks, which would hide them."""
    text = str(url)
    bad = LINE_BREAKERS.search(text)
    if bad:
        raise ConfigError(option, f"contains {_char(bad.group())}, which a URL cannot carry "
                                  f"(percent-encode it, e.g. %20 for a space): {text!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(option, f"{exc} in {text!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(option, f"expected an http:// or https:// URL, got {text!r}")
    if not parts.hostname:
        raise ConfigError(option, f"no host in {text!r}")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ascii_host(host, option)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), request_target(path, option)


def text_bytes(text: str, option: str) -> bytes:
    """Text as UTF-8; bytes an env var or argv could not decode go out as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(option, f"is not valid text: {text!r}") from None


# -- sizes ------------------------------------------------------------------------------------
def parse_bytes(text: str) -> int:
    """Bytes from '2G', '512M', '1.5GiB' (binary: K, M, G, T, KiB...) or '100MB', '1GB'
    (decimal: KB, MB, GB, TB), or a plain number of bytes. ValueError if not a size."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    number, prefix, suffix = float(m.group(1)), m.group(2).lower(), m.group(3).lower()
    if prefix and suffix == "b":          # KB, MB, GB: decimal, as disks and dd count
        return int(number * 1000 ** _POWERS[prefix])
    if not prefix and suffix not in ("", "b"):
        raise ValueError(f"not a size: {text!r}")
    return int(number * 1024 ** _POWERS[prefix])  # K, M, G, KiB, MiB: binary, as free(1)


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"
