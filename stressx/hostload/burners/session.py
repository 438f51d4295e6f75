"""Burners with no request load: ``stressx burn`` as a library call.

run_burn() drives the same companions a load test uses (BurnerGroup, HostSampler,
SafetyMonitor) through the same lifecycle as the coordinator: launch -> common start instant ->
1 s ticks -> stop -> finish, and writes a results directory: ``manifest.json``,
``host.arrows`` (flushed each second) and ``summary.json``.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from ..._version import __version__
from ...engine.coordinator import START_DELAY_NS
from ...errors import EXIT_ABORTED, EXIT_OK, SIGNAL_EXIT, ConfigError
from ...results.files import FORMAT_VERSION, host_info, write_json
from . import parse_spec
from .group import BurnerGroup

TICK_S = 0.05


def parse_specs(tokens, shape=None) -> list:
    """Burner specs from their tokens, validated; `follow` specs scale with `shape` (the run's
    load shape; ConfigError when there is none, as in `stressx burn`)."""
    specs = []
    for token in tokens:
        spec = parse_spec(token)
        if spec.kind in ("mem", "io") and any(s.kind == spec.kind for s in specs):
            raise ConfigError(token, f"give one {spec.kind}= spec (its level is the total)")
        if spec.follow:
            if shape is None:
                raise ConfigError(token, "follow needs a load run with a rate or users shape "
                                  "to follow")
            spec.follow_shape(shape)
        specs.append(spec)
    return specs


class _AnyShape:
    """Stands in for a run's shape when companions_for only validates (no config yet)."""

    def rate_at(self, t: float) -> float:
        return 1.0

    def peak(self) -> float:
        return 1.0


def companions_for(burn=(), safety=(), config=None, echo=None) -> list:
    """Companions for one run from burner spec texts (``cpu=50%``) and safety limit texts
    (``mem>90%:stop``), in the order the coordinator must call them: BurnerGroup (if any
    specs), HostSampler (always: every run records host metrics), SafetyMonitor (if any
    limits). `config` (the run's RunConfig) gives the load shape `follow` specs scale with.
    Validates everything and raises ConfigError naming the bad token; starts nothing
    (processes start in prepare()), so it can be called once just to validate. Companions are
    single-use: call it once per run."""
    from ...judge.safety import parse_limit

    shape = None
    if config is not None:
        shape = getattr(config, "shape", None) or getattr(config, "users_shape", None)
    elif any("follow" in str(t).split(",") for t in burn):
        shape = _AnyShape()          # validating before the plan exists: accept follow
    specs = parse_specs(burn, shape)
    limits = [parse_limit(text) for text in safety]
    return companions(specs, limits, echo)


def companions(specs=(), limits=(), echo=None) -> list:
    """The companions of a run with host load: [BurnerGroup (if any specs), HostSampler,
    SafetyMonitor (if any limits)], in the order the coordinator must call them."""
    from ...judge.safety import SafetyMonitor
    from ..hostmetrics import HostSampler

    group = BurnerGroup(specs, echo=echo) if specs else None
    sampler = HostSampler(burners=group)
    out = [group] if group else []
    out.append(sampler)
    if limits:
        out.append(SafetyMonitor(limits, burners=group, sampler=sampler, echo=echo))
    return out


def _progress(t_s: float, group: BurnerGroup, sampler) -> str:
    from . import describe
    row = sampler.last_row
    parts = [f"[{t_s:6.1f}s]"]
    if row:
        for h in group.handles:
            got = row["burner_achieved"].get(h.name)
            want = row["burner_requested"].get(h.name)
            if h.kind == "cpu" and got is not None:
                parts.append(f"{h.name} {got:.1f}%/{want:.0f}%")
            elif got is not None:
                parts.append(f"{h.name} {describe(h.kind, got)}/{describe(h.kind, want)}")
        parts.append(f"| host cpu {row['cpu_pct']:.0f}% mem {row['mem_used_pct']:.0f}%")
    return "  ".join(parts)


def run_burn(specs, *, duration_s: float, out_dir, limits=(), echo=None,
             progress: bool = True) -> dict:
    """Run burners alone for `duration_s`, with the host sampler and `limits`; returns the
    summary (also written to out_dir/summary.json). SIGINT/SIGTERM (in the main thread) stop
    it cleanly with exit_code 130/143; a second signal stops the burners and exits at once."""
    echo = echo or (lambda line: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    comps = companions(specs, limits, echo)
    group, sampler = comps[0], comps[1]
    safety = comps[2] if len(comps) > 2 else None
    write_json(out / "manifest.json", {
        "format_version": FORMAT_VERSION, "stressx_version": __version__,
        "created_unix": time.time(), "host": host_info(), "command": "burn",
        "config": {"burn": [s.to_json() for s in specs], "duration_s": duration_s,
                   "safety": [lim.text for lim in safety.limits] if safety else []},
    })
    state = {"signal": None, "count": 0}

    def on_signal(signum, frame):
        state["count"] += 1
        if state["count"] == 1:
            state["signal"] = signum
            echo(f"stressx: {signal.Signals(signum).name}: stopping the burners "
                 f"(again to quit at once)")
            return
        group.emergency_stop("second signal")
        os._exit(SIGNAL_EXIT.get(signum, 128 + signum))

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in SIGNAL_EXIT}
    aborted, start_ns, end_ns = None, 0, 0
    try:
        sampler.open(out)
        group.launch()
        aborted = group.failed
        if not aborted and not state["signal"]:
            start_ns = time.monotonic_ns() + START_DELAY_NS
            group.start(start_ns)
            sampler.start(start_ns)
            end_ns = start_ns + int(duration_s * 1e9)
            next_tick = start_ns + 1_000_000_000
            while not state["signal"]:
                now = time.monotonic_ns()
                abort = (safety.poll() if safety else None) or group.on_interval(0, {})
                if abort:
                    aborted = abort.reason
                    break
                if now >= end_ns:
                    break
                if now >= next_tick:
                    t_s = (now - start_ns) / 1e9
                    if safety:
                        safety.on_interval(t_s, {})
                    if progress:
                        echo(_progress(t_s, group, sampler))
                    next_tick += 1_000_000_000
                time.sleep(min(TICK_S, max(0.0, (min(end_ns, next_tick) - now) / 1e9)))
    finally:
        stopped_ns = time.monotonic_ns()
        group.stop()
        sampler.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    elapsed = max(0, stopped_ns - start_ns) / 1e9 if start_ns else 0.0
    interrupted = signal.Signals(state["signal"]).name if state["signal"] else None
    summary = {
        "format_version": FORMAT_VERSION, "stressx_version": __version__, "command": "burn",
        "duration_s": duration_s, "elapsed_s": round(elapsed, 6),
        "interrupted": interrupted, "aborted": aborted,
        "burners": group.finish(), "host": sampler.finish(),
        "safety": safety.finish() if safety else None,
    }
    if state["signal"]:
        code = SIGNAL_EXIT.get(state["signal"], 128 + state["signal"])
    elif aborted:
        code = EXIT_ABORTED
    else:
        code = EXIT_OK
    summary["exit_code"] = code
    write_json(out / "summary.json", summary)
    return summary
