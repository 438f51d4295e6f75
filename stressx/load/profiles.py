"""Named load profiles: presets of users, rate, shape and duration that a run can start from.

Any setting a profile makes can be overridden by a config file, an environment variable or a
flag (in that order of precedence, flags last)."""
from __future__ import annotations

PROFILES = {
    "smoke": dict(description="A few requests: does the target answer at all?",
                  pattern="steady", rps=2, duration="30s", connections=2),
    "light": dict(description="Light everyday traffic",
                  pattern="steady", rps=10, duration="2m", connections=5),
    "normal": dict(description="Typical production traffic",
                   pattern="steady", rps=50, duration="5m", connections=20),
    "heavy": dict(description="Peak-hour traffic",
                  pattern="steady", rps=200, duration="10m", connections=50),
    "stress": dict(description="Ramp far past the expected peak to find the breaking point",
                   pattern="ramp", min_rps=10, max_rps=1000, duration="10m", connections=100),
    "soak": dict(description="Normal traffic held for an hour: leaks, drift, slow degradation",
                 pattern="steady", rps=50, duration="1h", connections=20),
    "spike": dict(description="A sudden 20x surge on a steady baseline",
                  pattern="spike", baseline_rps=20, spike_rps=400, spike_at="2m",
                  spike_duration="30s", duration="5m", connections=50),
    "incident-replay": dict(description="Replay a bursty incident: ~1 req/s with sharp bursts "
                                        "to 25x for 10 s every 60 s",
                            pattern="burst", baseline_rps=1, burst_rps=25, burst_duration="10s",
                            burst_interval="60s", duration="24m", connections=25),
}


def profile_settings(name: str) -> dict:
    """The settings of a profile (without its description)."""
    from ..errors import ConfigError
    if name not in PROFILES:
        import difflib
        close = difflib.get_close_matches(name, list(PROFILES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError("--profile", f"unknown profile {name!r}{hint}; profiles are {', '.join(PROFILES)}")
    return {k: v for k, v in PROFILES[name].items() if k != "description"}
