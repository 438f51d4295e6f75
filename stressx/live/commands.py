"""What a client may ask of a running test, validated the way the command line validates the
same values: a bad one is a CommandError naming the field, with the CLI's message for that
value (`rate: expected requests per second like 100, 100/s or 600/m, got 'x'`). The REST
routes and the WebSocket's JSON messages both come here."""
from __future__ import annotations

import math

from ..errors import ConfigError
from ..units import parse_rate

COMMANDS = ("rate", "pause", "resume", "stop", "emergency-stop", "burners")
RATE_FIELDS = ("rate", "scale", "connections")
MAX_SCALE = 1000.0
MAX_REASON = 200


class CommandError(ValueError):
    """A bad request: `field` names what was wrong, str() is the whole message (HTTP 400)."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message if message.startswith(f"{field}:") else f"{field}: {message}")
        self.field = field
        self.status = status


def _from_config(exc: ConfigError, field: str) -> CommandError:
    return CommandError(field, f"{field}: {str(exc).split(': ', 1)[1]}" if ": " in str(exc) else str(exc))


def _only(body: dict, allowed: tuple, command: str) -> None:
    for key in body:
        if key not in allowed:
            takes = ", ".join(allowed) if allowed else "no fields"
            raise CommandError(str(key)[:100], f"unknown field for {command}; it takes {takes}")


def whole_number(value, field: str, low: int, high: int) -> int:
    """As the CLI's --connections: a whole number within [low, high]."""
    try:
        if isinstance(value, bool):
            raise ValueError
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise CommandError(field, f"expected a whole number, got {str(value)[:100]!r}") from None
    if not low <= n <= high:
        raise CommandError(field, f"must be between {low} and {high}, got {n}")
    return n


def parse(command: str, body) -> dict:
    """A command and its JSON body -> the validated arguments ({"rate": 250.0}, {"scale": 2.0},
    {"connections": 8}, {"reason": ...}, {"burners": {"cpu": "50%"}}). Whether they fit the
    run (open or closed model, a burner of that kind) is checked when applied."""
    if command not in COMMANDS:
        raise CommandError("command", f"unknown command {str(command)[:100]!r}; commands are {', '.join(COMMANDS)}")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise CommandError("body", "expected a JSON object")
    if command == "rate":
        _only(body, RATE_FIELDS, "rate")
        given = [k for k in RATE_FIELDS if k in body]
        if len(given) != 1:
            raise CommandError("rate", 'give one of {"rate": R} or {"scale": F} (open model), '
                                       '{"connections": N} (closed model)')
        key = given[0]
        value = body[key]
        if key == "rate":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise CommandError("rate", f"expected requests per second like 100, 100/s or 600/m, got {str(value)[:100]!r}")
            try:
                return {"rate": parse_rate(value, "rate")}
            except ConfigError as exc:
                raise _from_config(exc, "rate") from None
        if key == "scale":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (0 < value <= MAX_SCALE) or math.isnan(value):
                raise CommandError("scale", f"expected a factor more than 0 and at most {MAX_SCALE:g}, got {str(value)[:100]!r}")
            return {"scale": float(value)}
        return {"connections": whole_number(value, "connections", 1, 1_000_000)}
    if command == "burners":
        if not body:
            raise CommandError("burners", "give levels by kind, e.g. {\"cpu\": \"50%\"}")
        from ..hostload.burners import BURNERS
        _only(body, tuple(BURNERS), "burners")
        levels = {}
        for kind, value in body.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise CommandError(kind, f"expected a level like 50%, 2G or 50MB/s, got {str(value)[:100]!r}")
            levels[kind] = str(value)
        return {"burners": levels}
    _only(body, ("reason",), command)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise CommandError("reason", f"expected a text of at most {MAX_REASON} characters")
    return {"reason": reason} if reason else {}
