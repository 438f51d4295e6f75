"""Where the control API listens and who may use it. Off unless asked; loopback by default; a
non-loopback address without a token is refused before anything starts (an open control port
is a remote trigger for load)."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ..errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
MIN_TOKEN_LENGTH = 16
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>[^:]*)")


@dataclass(frozen=True)
class ControlSettings:
    """A validated --control: the address to bind and the bearer token (None: no token; it is
    never shown: repr and to_json leave it out)."""
    host: str
    port: int
    token: str | None = field(default=None, repr=False)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def to_json(self) -> dict:
        return {"address": self.address, "token": self.token is not None}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text, option: str = "--control") -> tuple[str, int]:
    """'8089', ':8089', '127.0.0.1:8089', '[::1]:8089', 'localhost:8089' -> (host, port); an
    empty host is the loopback default. Port 0 picks a free port (tests)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        host, port = DEFAULT_HOST, text
    else:
        m = _HOST_PORT.fullmatch(text)
        if not m:
            raise ConfigError(option, f"expected [HOST:]PORT like 8089 or 127.0.0.1:8089, got {text!r}")
        host, port = m.group("v6") or m.group("host") or DEFAULT_HOST, m.group("port")
    if not re.fullmatch(r"\d{1,5}", port) or int(port) > 65535:
        raise ConfigError(option, f"port must be a number from 0 to 65535, got {port!r}")
    if host.lower() != "localhost":
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise ConfigError(option, f"host must be an IP address or localhost (a name could "
                                      f"resolve anywhere), got {host!r}") from None
    return host, int(port)


def resolve_control(control, token=None, *, option: str = "--control",
                    token_option: str = "--control-token") -> ControlSettings | None:
    """A validated ControlSettings from --control and --control-token (None: no control API).
    A non-loopback bind without a token is a ConfigError (exit 2); so is a token without
    --control, or one too short to resist guessing."""
    if isinstance(control, ControlSettings):
        return control
    if control is None or control is False or control == "":
        if token:
            raise ConfigError(token_option, "protects the control API: give --control [HOST:]PORT too")
        return None
    host, port = parse_address(control, option)
    if token is not None:
        token = str(token)
        if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
            raise ConfigError(token_option, f"must be at least {MIN_TOKEN_LENGTH} printable "
                                            f"characters without spaces (e.g. from `openssl rand "
                                            f"-hex 16`)")
    if not is_loopback(host) and token is None:
        raise ConfigError(option, f"{host} is not a loopback address: anyone who can reach it "
                                  f"could start and steer load; give --control-token (or "
                                  f"STRESSX_CONTROL_TOKEN), or bind 127.0.0.1")
    return ControlSettings(host, port, token)
