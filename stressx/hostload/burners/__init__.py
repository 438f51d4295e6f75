"""Host-load burners: dedicated processes that hold a CPU, memory or IO level precisely.

    BURNERS = {"cpu": CpuBurner, "mem": MemoryBurner, "io": IoBurner}

A spec is written ``KIND=LEVEL[,LEVEL@TIME...][,key=value...][,flag...]``:

    cpu=50%                 50% of a core on every usable CPU (one process each)
    cpu=50%x2               two processes at 50% of a core
    cpu=25%,50%@10s,75%@20s steps: 25% from the start, 50% from 10 s, 75% from 20 s
    mem=2G | mem=25%        resident size (binary units; % of total memory)
    mem=2G,churn=100MB/s    ... rewriting 100 MB/s of it
    io=50MB/s               writes (decimal MB) with fdatasync each 100 ms, in the temp dir
    io=50MB/s,path=/data,read,floor=10G

Levels can follow any schedule: a BurnerSpec's `schedule` is any object with
``level_at(elapsed_s)`` (a number, a list of (start_s, level) steps, a plain function and a
stressx.load.shapes Shape are wrapped by ``as_schedule``), in the burner's unit: fraction of a core,
bytes, bytes/s. ``make_spec("cpu", shapes.ramp(0.1, 0.8, 60), workers=2)`` ramps two cores
from 10% to 80% over a minute.
"""
from __future__ import annotations

from ...errors import ConfigError
from .base import BurnerSpec, Constant, FromShape, Function, Steps, as_schedule
from .cpu import CpuBurner
from .io import IoBurner
from .memory import MemoryBurner

BURNERS = {"cpu": CpuBurner, "mem": MemoryBurner, "io": IoBurner}
ALIASES = {"memory": "mem", "vm": "mem", "disk": "io", "hdd": "io"}


def parse_spec(token: str) -> BurnerSpec:
    """One burner spec from its text, validated (caps, floors, paths) against this host now.
    Raises ConfigError naming the token."""
    kind, eq, rest = str(token).partition("=")
    kind = ALIASES.get(kind.strip().lower(), kind.strip().lower())
    if not eq or kind not in BURNERS:
        raise ConfigError(str(token), f"expected KIND=LEVEL with KIND one of "
                          f"{', '.join(BURNERS)} (e.g. cpu=50%, mem=2G, io=50MB/s)")
    return BURNERS[kind].from_token(str(token), rest)


def make_spec(kind: str, level, *, workers: int | None = None, **options) -> BurnerSpec:
    """A spec from Python: `level` is a number, (start_s, level) steps, a function of elapsed
    seconds or an object with level_at(), in the burner's unit (fraction of a core, bytes,
    bytes/s); `options` as in the text form (cap=, reserve=, churn=, path=, floor=, size=,
    read=True, nosync=True). Validated like parse_spec."""
    cls = BURNERS[ALIASES.get(kind, kind)]
    token = f"{cls.kind}=<{type(level).__name__}>"
    spec = BurnerSpec(cls.kind, as_schedule(level), workers or cls.default_workers(),
                      {k: v for k, v in options.items() if v is not None}, token)
    unknown = set(spec.options) - set(cls.option_names) - set(cls.flags)
    if unknown:
        raise ConfigError(token, f"unknown option(s) {', '.join(sorted(unknown))}")
    cls.validate(spec)
    return spec


def describe(kind: str, level: float) -> str:
    return BURNERS[kind].describe(level)


__all__ = ["BURNERS", "BurnerSpec", "parse_spec", "make_spec", "describe", "as_schedule",
           "Constant", "Steps", "Function", "FromShape", "ConfigError"]
