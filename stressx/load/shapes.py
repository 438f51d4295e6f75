"""Load shapes: the target rate (open model) or number of users (closed model) as a pure
function of elapsed time.

Every shape is a list of segments of three kinds, each with a closed-form integral: constant,
linear (ramps) and sinusoidal (waves). The compiled scheduler (``_core.Schedule``) sends on the
integral of the rate, so it follows any shape exactly, with no bursts at the joints; this module
holds the same arithmetic in Python for the coordinator (per-interval targets) and as the tests'
oracle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..units import parse_duration, parse_rate

INF = math.inf


@dataclass(frozen=True)
class Segment:
    """`length` seconds of rate: const (a), linear (a -> b), sine (a + b*sin(2 pi t / c))."""

    kind: str
    length: float
    a: float
    b: float = 0.0
    c: float = 0.0

    def rate(self, tau: float) -> float:
        if self.kind == "const":
            return self.a
        if self.kind == "linear":
            return self.a + (self.b - self.a) * tau / self.length
        return self.a + self.b * math.sin(2 * math.pi * tau / self.c)

    def integral(self, tau: float) -> float:
        if self.kind == "const":
            return self.a * tau
        if self.kind == "linear":
            return self.a * tau + (self.b - self.a) * tau * tau / (2 * self.length)
        return self.a * tau + self.b * self.c / (2 * math.pi) * (1 - math.cos(2 * math.pi * tau / self.c))

    def as_tuple(self) -> tuple:
        return (self.kind, self.length, self.a, self.b, self.c)


@dataclass(frozen=True)
class Shape:
    """A named sequence of segments. `duration` is finite unless the last segment is open."""

    name: str
    segments: tuple[Segment, ...]
    params: dict = field(default_factory=dict, compare=False)
    # host-load weights by phase: ((start_s, end_s, {"cpu": w, "mem": w, "io": w}), ...);
    # burners that follow the shape multiply their level by their kind's weight
    weights: tuple = field(default=(), compare=False)
    # named phases: ((start_s, end_s, name), ...); empty: the whole shape is one phase, its name
    phase_spans: tuple = field(default=(), compare=False)

    def phase_at(self, t: float) -> tuple[str, float, float]:
        """(name, start_s, end_s) of the phase at t seconds (the live dashboard's "phase" and
        "time left"); a shape without named phases is one phase named after itself."""
        for start, end, name in self.phase_spans:
            if start <= t < end:
                return name, start, end
        if self.phase_spans and t >= self.phase_spans[-1][1]:
            return self.phase_spans[-1][2], self.phase_spans[-1][0], self.phase_spans[-1][1]
        return self.name, 0.0, self.duration

    def weight(self, kind: str, t: float) -> float:
        for start, end, w in self.weights:
            if start <= t < end:
                return w.get(kind, 1.0)
        return 1.0

    @property
    def duration(self) -> float:
        return sum(s.length for s in self.segments)

    def rate_at(self, t: float) -> float:
        start = 0.0
        for s in self.segments:
            if start <= t < start + s.length:
                return s.rate(t - start)
            start += s.length
        return 0.0

    def integral(self, t: float) -> float:
        """Sends due in the first t seconds (all shards together)."""
        total, start = 0.0, 0.0
        for s in self.segments:
            if t < start + s.length:
                return total + s.integral(max(0.0, t - start))
            total += s.integral(s.length)
            start += s.length
        return total

    def mean_rate(self, t0: float, t1: float) -> float:
        return (self.integral(t1) - self.integral(t0)) / (t1 - t0) if t1 > t0 else self.rate_at(t0)

    def peak(self) -> float:
        return max(max(s.a, s.b) if s.kind == "linear" else s.a + (s.b if s.kind == "sine" else 0.0)
                   for s in self.segments)

    def with_rate_from(self, t: float, rate: float) -> "Shape":
        """This shape up to t seconds, then a constant `rate` (0: paused) for the rest of the
        run: what Schedule.change_rate() does to the sends, so per-interval targets follow
        live rate changes. A ramp cut at t keeps its slope, so the integral up to t is kept;
        the rest of the shape is dropped (whoever changed the rate owns it from then on)."""
        segs, start = [], 0.0
        for s in self.segments:
            if start >= t:
                break
            if start + s.length <= t:
                segs.append(s)
            else:
                segs.append(Segment(s.kind, t - start, s.a, s.b if s.kind != "linear" else s.rate(t - start), s.c))
            start += s.length
        if start < t:   # the shape had ended: nothing was due in between
            segs.append(Segment("const", t - start, 0.0))
        segs.append(Segment("const", INF, rate))
        return Shape(self.name, tuple(_compact(segs, t)), dict(self.params, changed_at=round(t, 3)),
                     self.weights, self.phase_spans)

    def for_schedule(self) -> list[tuple]:
        return [s.as_tuple() for s in self.segments]

    def describe(self) -> str:
        p = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                      else f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({p})"


#: A shape changed live keeps at most this many segments, give or take those of the last
#: EXACT_HISTORY_S (see _compact).
MAX_SEGMENTS = 64
EXACT_HISTORY_S = 60.0


def _compact(segs: list, t: float) -> list:
    """Live changes (an adaptive ramp, safety back-offs) add a segment each: over a long run
    that would grow without end, and so would the per-interval target's walk over them. Once
    there are more than MAX_SEGMENTS, the leading ones that ended over EXACT_HISTORY_S before
    `t` become one constant segment of the same length and integral: the sends due up to any
    later instant (the summary's target rate, every interval row from then on) are kept, the
    rate inside that old stretch becomes its mean (rate_at and peak there are no longer
    exact; nothing reads them once the run has started)."""
    if len(segs) <= MAX_SEGMENTS:
        return segs
    n, end, total = 0, 0.0, 0.0
    while (n < len(segs) - MAX_SEGMENTS // 2 and segs[n].length != INF
           and end + segs[n].length <= t - EXACT_HISTORY_S):
        total += segs[n].integral(segs[n].length)
        end += segs[n].length
        n += 1
    if n < 2 or not end > 0:
        return segs
    return [Segment("const", end, total / end)] + segs[n:]


def _check(option: str, value: float, low: float = 0.0, allow_equal: bool = True) -> float:
    v = float(value)
    if not (v >= low if allow_equal else v > low) or math.isnan(v):
        raise ConfigError(option, f"must be {'>=' if allow_equal else '>'} {low:g}, got {str(value)!r}")
    return v


# -- the shapes --------------------------------------------------------------------------------
def steady(rate: float, duration: float) -> Shape:
    _check("--rps", rate, 0, False)
    _check("--duration", duration, 0, False)
    return Shape("steady", (Segment("const", duration, rate),), dict(rps=rate, duration=duration))


def ramp(min_rate: float, max_rate: float, duration: float, down: bool = False) -> Shape:
    """Linear from min to max (or max to min with down=True) over duration."""
    _check("--min-rps", min_rate)
    _check("--max-rps", max_rate, 0, False)
    _check("--duration", duration, 0, False)
    if min_rate > max_rate:
        raise ConfigError("--min-rps", f"must not exceed --max-rps ({max_rate:g}), got {min_rate:g}")
    a, b = (max_rate, min_rate) if down else (min_rate, max_rate)
    return Shape("ramp", (Segment("linear", duration, a, b),),
                 dict(min_rps=min_rate, max_rps=max_rate, duration=duration, down=down))


def burst(baseline: float, burst_rate: float, duration: float, burst_duration: float,
          burst_interval: float) -> Shape:
    """Baseline rate with a burst at the end of every interval: each cycle of `burst_interval`
    seconds runs `burst_interval - burst_duration` at the baseline, then `burst_duration` at the
    burst rate (so a run opens on the baseline, the level the bursts are compared with)."""
    _check("--baseline-rps", baseline)
    _check("--burst-rps", burst_rate, 0, False)
    _check("--duration", duration, 0, False)
    _check("--burst-duration", burst_duration, 0, False)
    _check("--burst-interval", burst_interval, 0, False)
    if burst_duration > burst_interval:
        raise ConfigError("--burst-duration", f"must not exceed --burst-interval ({burst_interval:g} s), got {burst_duration:g}")
    segs, t = [], 0.0
    while t < duration - 1e-9:
        for rate, length in ((baseline, burst_interval - burst_duration), (burst_rate, burst_duration)):
            length = min(length, duration - t)
            if length > 1e-9:
                segs.append(Segment("const", length, rate))
                t += length
    return Shape("burst", tuple(segs), dict(baseline_rps=baseline, burst_rps=burst_rate, duration=duration,
                                            burst_duration=burst_duration, burst_interval=burst_interval))


def wave(base: float, amplitude: float, period: float, duration: float) -> Shape:
    """base + amplitude * sin(2 pi t / period)."""
    _check("--base-rps", base, 0, False)
    _check("--amplitude-rps", amplitude)
    _check("--period", period, 0, False)
    _check("--duration", duration, 0, False)
    if amplitude > base:
        raise ConfigError("--amplitude-rps", f"must not exceed --base-rps ({base:g}): a rate cannot go below 0, got {amplitude:g}")
    return Shape("wave", (Segment("sine", duration, base, amplitude, period),),
                 dict(base_rps=base, amplitude_rps=amplitude, period=period, duration=duration))


def step(start: float, step_size: float, step_every: float, max_rate: float, duration: float) -> Shape:
    """start, start+step, ... every `step_every` seconds, capped at max."""
    _check("--start-rps", start, 0, False)
    _check("--step-rps", step_size, 0, False)
    _check("--step-every", step_every, 0, False)
    _check("--max-rps", max_rate, 0, False)
    _check("--duration", duration, 0, False)
    segs, t, rate = [], 0.0, start
    while t < duration - 1e-9:
        length = min(step_every, duration - t)
        segs.append(Segment("const", length, min(rate, max_rate)))
        t += length
        rate += step_size
    return Shape("step", tuple(segs), dict(start_rps=start, step_rps=step_size, step_every=step_every,
                                           max_rps=max_rate, duration=duration))


def spike(baseline: float, spike_rate: float, spike_at: float, spike_duration: float, duration: float) -> Shape:
    _check("--baseline-rps", baseline)
    _check("--spike-rps", spike_rate, 0, False)
    _check("--spike-at", spike_at)
    _check("--spike-duration", spike_duration, 0, False)
    _check("--duration", duration, 0, False)
    if spike_at + spike_duration > duration:
        raise ConfigError("--spike-at", f"the spike ({spike_at:g} s + {spike_duration:g} s) must end within --duration ({duration:g} s)")
    parts = [(baseline, spike_at), (spike_rate, spike_duration), (baseline, duration - spike_at - spike_duration)]
    segs = tuple(Segment("const", length, rate) for rate, length in parts if length > 1e-9)
    return Shape("spike", segs, dict(baseline_rps=baseline, spike_rps=spike_rate, spike_at=spike_at,
                                     spike_duration=spike_duration, duration=duration))


def phases(parts: list[Shape], name: str = "phases") -> Shape:
    """Shapes one after another."""
    if not parts:
        raise ConfigError("phases", "needs at least one phase")
    segs = tuple(s for p in parts for s in p.segments)
    spans, t = [], 0.0
    for i, p in enumerate(parts):
        spans.append((t, t + p.duration, f"{i + 1}:{p.name}"))
        t += p.duration
    return Shape(name, segs, dict(phases=len(parts), duration=sum(p.duration for p in parts)),
                 phase_spans=tuple(spans))


# Progressive ramp preset: named phases as a share of a maximum rate (min %, max %).
PROGRESSIVE_PHASES = {
    "idle": (0.0, 5.0),
    "light": (10.0, 25.0),
    "medium": (25.0, 50.0),
    "heavy": (50.0, 75.0),
    "extreme": (75.0, 90.0),
    "critical": (90.0, 95.0),
    "chaos": (95.0, 100.0),
}
PRESETS = {"progressive": tuple(PROGRESSIVE_PHASES)}


def progressive(max_rate: float, phase_names=None, phase_duration: float = 60.0,
                ramp_up: float = 15.0, ramp_down: float = 0.0, overrides: dict | None = None) -> Shape:
    """Named phases in order, each ramping from its min% to its max% of `max_rate` over
    `ramp_up` seconds, holding at max% and, if `ramp_down` > 0, easing back to min% at its end.
    `overrides` maps a phase name to {duration, ramp_up, ramp_down, min_percent, max_percent,
    cpu_weight, mem_weight, io_weight}: the weights scale burners that follow the shape
    (`--burn cpu=80%,follow`) in that phase, so host load can rise by its own profile."""
    _check("--max-rps", max_rate, 0, False)
    names = list(phase_names or PRESETS["progressive"])
    overrides = overrides or {}
    segs, weights, spans, t = [], [], [], 0.0
    for name in names:
        if name not in PROGRESSIVE_PHASES:
            raise ConfigError("--phases", f"unknown phase {name!r}; phases are {', '.join(PROGRESSIVE_PHASES)}")
        o = overrides.get(name, {})
        lo, hi = o.get("min_percent", PROGRESSIVE_PHASES[name][0]), o.get("max_percent", PROGRESSIVE_PHASES[name][1])
        d, up, down = o.get("duration", phase_duration), o.get("ramp_up", ramp_up), o.get("ramp_down", ramp_down)
        if up + down > d:
            raise ConfigError("--ramp-up", f"phase {name}: ramp-up {up:g} s + ramp-down {down:g} s exceed its duration {d:g} s")
        r_lo, r_hi = max_rate * lo / 100, max_rate * hi / 100
        w = {k: float(o[f"{k}_weight"]) for k in ("cpu", "mem", "io") if f"{k}_weight" in o}
        if w:
            weights.append((t, t + d, w))
        spans.append((t, t + d, name))
        t += d
        if up > 0:
            segs.append(Segment("linear", up, r_lo, r_hi))
        if d - up - down > 1e-9:
            segs.append(Segment("const", d - up - down, r_hi))
        if down > 0:
            segs.append(Segment("linear", down, r_hi, r_lo))
    return Shape("progressive", tuple(segs), dict(max_rps=max_rate, phases=",".join(names),
                                                  phase_duration=phase_duration, ramp_up=ramp_up,
                                                  ramp_down=ramp_down), tuple(weights),
                 tuple(spans))


# -- patterns by name: what the pattern commands and config files build ------------------------
def _rate(v, option):
    return parse_rate(v, option)


def _dur(v, option):
    return parse_duration(v, option)


def _float(v, option):
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ConfigError(option, f"expected a number, got {v!r}") from None


def _rate0(v, option):
    """A rate that may be 0 (a baseline, a ramp's start)."""
    if str(v).strip() in ("0", "0.0", "0/s"):
        return 0.0
    return _rate(v, option)


def parse_flag(v, option):
    """A boolean pattern parameter: true/false, yes/no, on/off, 1/0."""
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("1", "true", "yes", "on"):
        return True
    if str(v).lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(option, f"expected true or false, got {v!r}")


def _phase_list(v, option):
    """Progressive phases: 'light,heavy', or a list of names and/or mappings
    {name, duration, ramp_up, ramp_down, min_percent, max_percent} for per-phase settings."""
    items = v.split(",") if isinstance(v, str) else list(v)
    names, overrides = [], {}
    for i, item in enumerate(items):
        if isinstance(item, dict):
            item = dict(item)
            name = str(item.pop("name", ""))
            o = {}
            for key, value in item.items():
                where = f"{option}[{i}].{key}"
                if key in ("duration", "ramp_up", "ramp_down"):
                    o[key] = _dur(value, where) if key == "duration" else _dur0(value, where)
                elif key in ("min_percent", "max_percent", "cpu_weight", "mem_weight", "io_weight"):
                    o[key] = _float(value, where)
                else:
                    raise ConfigError(where, "a phase takes name, duration, ramp_up, ramp_down, "
                                             "min_percent, max_percent, cpu_weight, mem_weight, io_weight")
            overrides[name] = o
        else:
            name = str(item).strip()
        if name:
            names.append(name)
    return names, overrides


def _dur0(v, option):
    return 0.0 if str(v).strip() in ("0", "0s", "0.0") else _dur(v, option)


def _shape_list(v, option):
    """`phases` of any patterns: a list of {type: ..., parameters...}, each with its duration."""
    if not isinstance(v, list) or not v:
        raise ConfigError(option, "expected a list of patterns, each {type: ..., its parameters}")
    out = []
    for i, spec in enumerate(v):
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(f"{option}[{i}]", f"expected {{type: one of {', '.join(PATTERNS)}, ...}}")
        spec = dict(spec)
        out.append(build(spec.pop("type"), spec, lambda k, i=i: f"{option}[{i}].{k}"))
    return out


# pattern -> (builder, [(parameter, parser, required, default)])
PATTERNS = {
    "steady": (steady, [("rps", _rate, True, None), ("duration", _dur, True, None)]),
    "ramp": (ramp, [("min_rps", _rate0, True, None), ("max_rps", _rate, True, None),
                    ("duration", _dur, True, None), ("ramp_down", parse_flag, False, False)]),
    "burst": (burst, [("baseline_rps", _rate0, True, None), ("burst_rps", _rate, True, None),
                      ("duration", _dur, True, None), ("burst_duration", _dur, True, None),
                      ("burst_interval", _dur, True, None)]),
    "wave": (wave, [("base_rps", _rate, True, None), ("amplitude_rps", _rate0, True, None),
                    ("period", _dur, True, None), ("duration", _dur, True, None)]),
    "step": (step, [("start_rps", _rate, True, None), ("step_rps", _rate, True, None),
                    ("step_every", _dur, True, None), ("max_rps", _rate, True, None),
                    ("duration", _dur, True, None)]),
    "spike": (spike, [("baseline_rps", _rate0, True, None), ("spike_rps", _rate, True, None),
                      ("spike_at", _dur, True, None), ("spike_duration", _dur, True, None),
                      ("duration", _dur, True, None)]),
    "progressive": (progressive, [("max_rps", _rate, True, None), ("phases", _phase_list, False, (None, {})),
                                  ("phase_duration", _dur, False, 60.0), ("ramp_up", _dur0, False, 15.0),
                                  ("ramp_down", _dur0, False, 0.0)]),
    "phases": (phases, [("phases", _shape_list, True, None)]),
}
_ARG_ORDER = {  # builder positional order
    "steady": ["rps", "duration"], "ramp": ["min_rps", "max_rps", "duration", "ramp_down"],
    "burst": ["baseline_rps", "burst_rps", "duration", "burst_duration", "burst_interval"],
    "wave": ["base_rps", "amplitude_rps", "period", "duration"],
    "step": ["start_rps", "step_rps", "step_every", "max_rps", "duration"],
    "spike": ["baseline_rps", "spike_rps", "spike_at", "spike_duration", "duration"],
    "progressive": ["max_rps", "phases", "phase_duration", "ramp_up", "ramp_down"],
    "phases": ["phases"],
}


def flag_name(param: str) -> str:
    return "--" + param.replace("_", "-")


def build(pattern: str, params: dict, where=flag_name) -> Shape:
    """A shape from a pattern name and its parameters as strings or numbers (from flags, env
    or a config file). `where(param)` names a parameter in errors: '--min-rps' for flags,
    'tests[0].min_rps' for a file."""
    if pattern not in PATTERNS:
        raise ConfigError(where("pattern"), f"unknown pattern {pattern!r}; patterns are {', '.join(PATTERNS)}")
    builder, spec = PATTERNS[pattern]
    known = {name for name, *_ in spec}
    for key in params:
        if key not in known:
            hint = _suggest(key, known)
            raise ConfigError(where(key), f"not a parameter of the {pattern} pattern{hint}; it takes {', '.join(sorted(known))}")
    values = {}
    for name, parse, required, default in spec:
        if params.get(name) is None:
            if required:
                raise ConfigError(where(name), f"the {pattern} pattern needs it")
            values[name] = default
        else:
            values[name] = parse(params[name], where(name))
    if pattern == "progressive":   # the phase list carries its per-phase overrides
        names, overrides = values.pop("phases")
        values["phases"] = names or None
        values["overrides"] = overrides
    try:
        if pattern == "progressive":
            return progressive(values["max_rps"], values["phases"], values["phase_duration"],
                               values["ramp_up"], values["ramp_down"], values["overrides"])
        return builder(*[values[n] for n in _ARG_ORDER[pattern]])
    except ConfigError as exc:
        # the builders name flags; say it the way the user wrote it
        param = exc.option.lstrip("-").replace("-", "_")
        raise ConfigError(where(param) if param in known else exc.option,
                          str(exc).split(": ", 1)[1]) from None


def _suggest(key: str, known) -> str:
    import difflib
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
