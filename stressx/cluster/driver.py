"""The driver of a cluster run: place one agent per host, start them together, merge as they go,
gather and merge at the end, and never leave a partial run looking whole.

    connect       --cluster: local:N starts N simulated hosts here (local.py), else Ray connects
    place         a placement group with one bundle per load host, STRICT_SPREAD: one agent each
    share         the global shard numbering split over the hosts (each host's --workers, or its
                  CPUs), so the hosts' shards send the single-host schedule interleaved
    prepare       each agent spawns its shards and waits at the start gate
    clock         each host's CLOCK_MONOTONIC offset from the driver's: the probe with the
                  shortest round trip of CLOCK_PROBES; refused above --max-clock-uncertainty
    start         one instant on the driver's clock, given to each host on its own
    measure       poll every agent each POLL_S: interval messages merged bucket by bucket into
                  the driver's rows (progress, latency.hlog, companions: sliding-window
                  thresholds); an agent that fails a call or does not answer for LOST_AFTER_S
                  is lost: the run is aborted (exit 4), the others stopped and their data kept
    gather        each host's results directory under hosts/<name>/, its final readings merged
                  into one summary (the single-host maths over every host's shards) with `hosts`
"""
from __future__ import annotations

import dataclasses
import io
import os
import signal
import tarfile
import threading
import time
from pathlib import Path

from ..engine.control import RunControl
from ..engine.coordinator import HISTOGRAMS, close_summary, effective_workers, progress_line
from ..engine.shm import Reading
from ..errors import EXIT_ABORTED, EXIT_OK, SIGNAL_EXIT, ConfigError, StartupError
from ..results.files import ResultsWriter, read_intervals
from ..results.hdr import Histogram
from ..results.summary import build_summary, scenario_histograms
from .agent import Agent, agent_config
from .wire import IntervalMerger, merge_intervals

POLL_S = 0.25                  # how often the driver polls every agent (also its heartbeat)
LOST_AFTER_S = 4.0             # an agent silent this long is lost (detected within 5 s)
DRIVER_SILENCE_S = 10.0        # an agent stops its load when the driver is silent this long
CLOCK_PROBES = 9               # offset probes per host; the one with the shortest round trip
START_LEAD_S = 0.25            # the start instant: this far ahead, plus twice the worst round trip
CHANGE_LEAD_S = 0.1            # a live change (the control API, companions): this far ahead, plus
                               # twice the worst round trip, so every host has it before it applies
READY_TIMEOUT_S = 120.0
FINISH_TIMEOUT_S = 60.0        # after the last interval: summaries, readings, results directories
PLACE_TIMEOUT_S = 30.0


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--cluster", "needs Ray, an optional extra: pip install 'stressx[ray]'") from None
    return ray


class _Hosts:
    """The agents of a run and what the driver knows of each."""

    def __init__(self, names, actors, infos):
        self.names, self.actors, self.infos = names, actors, infos
        self.workers = [0] * len(names)
        self.first = [0] * len(names)
        self.offset_ns = [0] * len(names)         # host clock - driver clock
        self.uncertainty_ns = [0] * len(names)    # half the shortest round trip
        self.start_ns = [0] * len(names)          # the start instant on each host's clock
        self.start_late_ms = [0.0] * len(names)
        self.lost: dict[int, str] = {}
        self.lost_at_s: dict[int, float] = {}
        self.done: set[int] = set()

    def __len__(self):
        return len(self.names)

    def live(self):
        return [i for i in range(len(self.names)) if i not in self.lost]


def run_cluster(config, out_dir, *, echo=None, companions=()) -> dict:
    """Run `config` over the cluster it names; the merged summary (results in `out_dir`, each
    host's under hosts/<name>/). Raises ConfigError (nothing sent: no Ray, too few hosts, a
    host refusing the run, clocks too unsure) and StartupError."""
    echo = echo or (lambda line: None)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    loopback = config.cluster.startswith("local:") or _is_loopback(config.cluster)
    if loopback:
        from .local import quiet_env
        quiet_env()
    ray = _ray()
    local = None
    if loopback:
        from .local import pin_loopback
        pin_loopback()
    if config.cluster.startswith("local:"):
        from .local import LocalCluster
        n = int(config.cluster.split(":", 1)[1])
        echo(f"stressx: starting a local Ray cluster of {n} simulated hosts (head on 127.0.0.1)")
        local = LocalCluster(n)
        address, init_args = local.address, local.init_args()
    else:
        address = config.cluster
        init_args = ({"_node_ip_address": "127.0.0.1"}
                     if loopback and not address.startswith("ray://") else {})
    ours = not ray.is_initialized()
    try:
        if ours:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False,
                         **init_args)
            except ConnectionError as exc:
                raise ConfigError("--cluster", f"cannot reach the Ray cluster at {address}: {exc}") from None
        return _Run(ray, config, Path(out_dir), echo, list(companions), local is not None).run()
    finally:
        if ours and ray.is_initialized():
            ray.shutdown()
        if local is not None:
            local.shutdown()


class _Run:
    def __init__(self, ray, config, out_dir: Path, echo, companions: list, local: bool):
        self.ray, self.config, self.out_dir, self.echo = ray, config, out_dir, echo
        self.companions, self.local = companions, local
        self._drawn = any(getattr(c, "shows_progress", False) for c in companions)
        self.hosts: _Hosts | None = None
        self.pg = None
        self.aborted: str | None = None
        self.abort_code = EXIT_ABORTED
        self.interrupted: int | None = None
        self._signals = 0
        self._abort_request = None
        self._abort_lock = threading.Lock()
        self.stopped: str | None = None       # a graceful stop asked through the control API
        self.start_ns = 0
        self.notes: list[str] = []
        self.saturated = {"count": 0, "first_t_s": None, "reasons": []}

    # -- the phases --------------------------------------------------------------------------
    def run(self) -> dict:
        try:
            t0 = time.monotonic()
            self._place()
            self._share()
            h = self.hosts
            self.echo(f"stressx: {len(h)} agents placed, one per host, in {time.monotonic() - t0:.1f} s: "
                      + ", ".join(f"{n} ({w} shard{'s' if w > 1 else ''})"
                                  for n, w in zip(h.names, h.workers)))
            t0 = time.monotonic()
            self._prepare()
            self._probe_clocks()
            self.echo(f"stressx: shards ready on every host in {time.monotonic() - t0:.1f} s; "
                      f"clock offsets known to +-{max(h.uncertainty_ns) / 1e6:.3f} ms at worst")
            writer = ResultsWriter(self.out_dir)
            restore = self._install_signal_handlers()
            try:
                total = sum(self.hosts.workers)
                self.run_config = dataclasses.replace(self.config, workers=total)
                writer.manifest(self.run_config.to_json(), {"workers": total,
                                                            "cluster": self._cluster_info()})
                self.control = RunControl(self.run_config, self._publish_rate, self._request_abort,
                                          request_stop=self._request_control_stop)
                for c in self.companions:
                    c.control = self.control
                    c.prepare(self.run_config, self.out_dir)
                if self.interrupted or self.control.stopping:
                    self._stop_all(self.control.stopping or "interrupted before the start")
                    return self._gather(writer, started=False)
                self._start(writer)
                self._measure(writer)
                return self._gather(writer, started=True)
            finally:
                restore()
                for c in self.companions:
                    c.stop()
                writer.close()
        finally:
            self._teardown()

    def _place(self) -> None:
        """One agent per load host: a STRICT_SPREAD placement group of one bundle per host."""
        ray = self.ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        label, count = _hosts_choice(self.config.hosts)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if label is None:
            fits = [n for n in nodes if n.get("Resources", {}).get("CPU", 0) >= 1]
            bundle, what = {"CPU": 1}, "a free CPU"
        else:
            fits = [n for n in nodes if n.get("Resources", {}).get(label, 0) >= 1]
            bundle, what = {label: 1}, f"the resource {label!r}"
        n = count or len(fits)
        where = "--hosts" if self.config.hosts else "--cluster"
        if n == 0 and label is not None:
            raise ConfigError(where, f"no host of the cluster has the resource {label!r} (start "
                                     f"the load hosts with ray start --resources "
                                     f"'{{\"{label}\": 1}}')")
        if n == 0 or n > len(fits):
            raise ConfigError(where, f"the cluster has {len(fits)} host(s) with {what}, "
                                     f"{n or 1} needed (one agent per host)")
        self.pg = placement_group([dict(bundle) for _ in range(n)], strategy="STRICT_SPREAD")
        try:
            ray.get(self.pg.ready(), timeout=PLACE_TIMEOUT_S)
        except Exception:
            raise ConfigError(where, f"could not place {n} agents on {n} different hosts with "
                                     f"{what} within {PLACE_TIMEOUT_S:g} s (hosts busy?)") from None
        remote = ray.remote(Agent)
        actors = []
        for i in range(n):
            actors.append(remote.options(
                num_cpus=bundle.get("CPU", 0), resources={k: v for k, v in bundle.items() if k != "CPU"},
                max_concurrency=16, max_restarts=0, max_task_retries=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=self.pg, placement_group_bundle_index=i)).remote())
        try:
            infos = ray.get([a.info.remote() for a in actors], timeout=READY_TIMEOUT_S)
        except Exception as exc:
            raise StartupError(f"the agents did not start: {exc}") from None
        names = []
        for i, info in enumerate(infos):
            names.append(f"h{i}-{info['hostname']}")
        self.hosts = _Hosts(names, actors, infos)

    def _share(self) -> None:
        """Shards per host (--workers each, else the host's CPUs; 1 per simulated host), then
        fewer if the run cannot keep them all busy, at least one per host."""
        h, cfg = self.hosts, self.config
        for i, info in enumerate(h.infos):
            h.workers[i] = cfg.workers or (1 if self.local else max(1, info["cpus"]))
        total = sum(h.workers)
        keep, why = effective_workers(dataclasses.replace(cfg, workers=total))
        if keep < len(h):
            raise ConfigError("--hosts" if cfg.hosts else "--cluster",
                              f"{len(h)} hosts each need a shard, but {why}")
        while sum(h.workers) > keep:
            h.workers[h.workers.index(max(h.workers))] -= 1
        if keep < total:
            self._note(f"{total} shards over {len(h)} hosts lowered to {keep}: {why}")
        first = 0
        for i in range(len(h)):
            h.first[i], first = first, first + h.workers[i]

    def _prepare(self) -> None:
        h, total = self.hosts, sum(self.hosts.workers)
        for i, actor in enumerate(h.actors):
            actor.prepare.remote(agent_config(self.config, h.workers[i]), h.first[i], total,
                                 h.names[i], DRIVER_SILENCE_S)
        timeout = READY_TIMEOUT_S + self.config.timeout
        try:
            states = self.ray.get([a.wait_ready.remote(timeout) for a in h.actors],
                                  timeout=timeout + 10)
        except Exception as exc:
            self._stop_all("a host could not start")
            raise StartupError(f"the agents did not get ready: {exc}") from None
        for i, st in enumerate(states):
            if st["state"] != "ready":
                self._stop_all("a host could not start")
                err = st["error"]
                if err["kind"] == "config":
                    raise ConfigError(err["option"] or "--cluster", f"host {h.names[i]}: {err['message']}")
                raise StartupError(f"host {h.names[i]}: {err['message']}")

    def _probe_clocks(self) -> None:
        """Each host's clock offset from the probe with the shortest round trip; refuse the
        start when one is less sure than --max-clock-uncertainty."""
        h = self.hosts
        for i, actor in enumerate(h.actors):
            h.offset_ns[i], h.uncertainty_ns[i] = self._probe(actor)
        limit_ns = self.config.clock_uncertainty * 1e9
        worst = max(range(len(h)), key=lambda i: h.uncertainty_ns[i])
        if h.uncertainty_ns[worst] > limit_ns:
            self._stop_all("clocks too unsure")
            raise ConfigError("--max-clock-uncertainty",
                              f"host {h.names[worst]}: its clock offset is known to +-"
                              f"{h.uncertainty_ns[worst] / 1e6:.3f} ms only (half the shortest "
                              f"round trip of {CLOCK_PROBES} probes), over the "
                              f"{limit_ns / 1e6:g} ms allowed: the hosts could not start "
                              f"together; raise the limit or use a closer network")

    def _probe(self, actor, probes: int = CLOCK_PROBES) -> tuple[int, int]:
        best = None
        for _ in range(probes):
            t0 = time.monotonic_ns()
            remote = self.ray.get(actor.clock.remote(), timeout=10)
            t1 = time.monotonic_ns()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, remote - (t0 + t1) // 2)
        return best[1], best[0] // 2

    def _start(self, writer: ResultsWriter) -> None:
        h = self.hosts
        lead_ns = int(START_LEAD_S * 1e9) + 4 * max(h.uncertainty_ns)
        self.start_ns = self.control.start_ns = time.monotonic_ns() + lead_ns
        refs = []
        for i, actor in enumerate(h.actors):
            h.start_ns[i] = self.start_ns + h.offset_ns[i]
            refs.append(actor.start.remote(h.start_ns[i]))
        for i, r in enumerate(self.ray.get(refs, timeout=30)):
            h.start_ns[i] = r["start_ns"]
            h.start_late_ms[i] = r["late_ms"]
        writer.start_latency_log(time.time() + (self.start_ns - time.monotonic_ns()) / 1e9)
        self.control.state = "running"
        self.control.min_delay_s = CHANGE_LEAD_S + 4 * max(h.uncertainty_ns) / 1e9
        for c in self.companions:
            c.start(self.start_ns)
        # measured after the start: each host's start instant on the driver's clock, by a
        # fresh probe (what drifted since the first one shows here)
        starts = []
        for i in h.live():
            offset, unc = self._probe(h.actors[i], 5)
            starts.append((h.start_ns[i] - offset) / 1e6)
        self.start_skew_ms = round(max(starts) - min(starts), 3)

    def _measure(self, writer: ResultsWriter) -> None:
        """Poll every agent, merge the intervals as they come, until every host is done or
        lost; a lost host aborts the run (the others are stopped, their data kept)."""
        ray, h = self.ray, self.hosts
        merger = IntervalMerger(list(range(len(h))))
        self.merger = merger
        outstanding: dict = {}              # ref -> (host, sent at)
        last_answer = {i: time.monotonic() for i in range(len(h))}
        while True:
            now = time.monotonic()
            busy = {i for i, _ in outstanding.values()}
            for i in h.live():
                if i not in h.done and i not in busy:
                    outstanding[h.actors[i].poll.remote()] = (i, now)
            if outstanding:
                ready, _ = ray.wait(list(outstanding), num_returns=len(outstanding), timeout=POLL_S)
            else:
                ready = []
            for ref in ready:
                i, _ = outstanding.pop(ref)
                try:
                    answer = ray.get(ref)
                except Exception as exc:       # the actor or its node died
                    self._lose(i, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                               merger)
                    continue
                last_answer[i] = time.monotonic()
                merger.add(i, answer["intervals"])
                if answer["state"] in ("done", "failed"):
                    h.done.add(i)
                    merger.finish(i)
                    if answer["state"] == "failed" and self.aborted is None:
                        self._abort_run(f"host {h.names[i]} failed: {answer['error']['message']}",
                                        EXIT_ABORTED)
            for ref, (i, sent) in list(outstanding.items()):
                if time.monotonic() - last_answer[i] > LOST_AFTER_S and i not in h.lost:
                    outstanding.pop(ref)
                    self._lose(i, f"no answer for {LOST_AFTER_S:g} s", merger)
            self._take_abort()
            for c in self.companions:
                self._abort_run_from(c.poll())
            while (k := merger.ready()) is not None:
                self._interval(writer, merger, k)
            if all(i in h.done or i in h.lost for i in range(len(h))):
                while (k := merger.ready()) is not None:
                    self._interval(writer, merger, k)
                return
            if not ready:
                continue
            time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))

    def _interval(self, writer: ResultsWriter, merger: IntervalMerger, k: int) -> None:
        messages = merger.cut(k)
        t_s = max(m["t_s"] for m in messages)
        rate = self.control.schedule.mean_rate(merger.cut_t_s, t_s)
        slack_ms = self.config.timer_slack * 1000 if self.config.open_model else 0.0
        row, hists, took = merge_intervals(messages, merger.cut_t_s, rate, slack_ms)
        merger.merge_s.append(took)
        start_s, span = merger.cut_t_s, row["interval_s"]
        merger.cut_t_s = t_s
        if row["saturated"]:
            sat = self.saturated
            sat["count"] += 1
            if sat["first_t_s"] is None:
                sat["first_t_s"] = row["t_s"]
            for reason in row["saturation"].split(", "):
                if reason not in sat["reasons"]:
                    sat["reasons"].append(reason)
        self.control.latest = row
        writer.intervals([row], [])
        writer.latency_interval(start_s, span, hists["latency"])
        writer.latency_interval(start_s, span, hists["all_latency"], "all_latency")
        if self.config.progress and span >= 0.5 and not self._drawn:
            line = progress_line(t_s, row, row["rate_target"])
            if len(messages) < len(self.hosts):
                line += f"  ({len(messages)} of {len(self.hosts)} hosts)"
            self.echo(line)
        for c in self.companions:
            self._abort_run_from(c.on_interval(t_s, dict(
                row, latency_histogram=hists["latency"], all_latency_histogram=hists["all_latency"],
                send_lag_histogram=hists["send_lag"])))

    def _gather(self, writer: ResultsWriter, started: bool) -> dict:
        """Every surviving host's results under hosts/<name>/, one summary over all their
        shards' final readings, with the hosts' own figures and the gaps."""
        ray, h = self.ray, self.hosts
        refs = {i: h.actors[i].finish.remote(FINISH_TIMEOUT_S) for i in h.live()}
        finals = {}
        for i, ref in refs.items():
            try:
                finals[i] = ray.get(ref, timeout=FINISH_TIMEOUT_S + 10)
            except Exception as exc:
                self._lose(i, f"its results could not be gathered: {type(exc).__name__}", None)
        readings, shard_info, per_shard = [], [], []
        hosts_out = []
        send_windows, run_windows = [0.0], [0.0]
        shard_rows = []
        for i, name in enumerate(h.names):
            entry = {"name": name, "hostname": h.infos[i]["hostname"],
                     "node_id": h.infos[i].get("node_id"),
                     "shards": list(range(h.first[i], h.first[i] + h.workers[i])),
                     "clock_offset_ms": round(h.offset_ns[i] / 1e6, 3),
                     "clock_uncertainty_ms": round(h.uncertainty_ns[i] / 1e6, 3),
                     "start_monotonic_ns": h.start_ns[i],
                     "start_late_ms": round(h.start_late_ms[i], 3),
                     "lost": h.lost.get(i), "results": None}
            fin = finals.get(i)
            if fin is not None and fin.get("summary") is not None:
                s = fin["summary"]
                dest = self.out_dir / "hosts" / name
                dest.mkdir(parents=True, exist_ok=True)
                with tarfile.open(fileobj=io.BytesIO(fin["results_tar"]), mode="r:gz") as tar:
                    tar.extractall(dest, filter="data")
                entry["results"] = f"hosts/{name}"
                for key in ("requests", "completed", "ok", "error_count", "dropped", "rps",
                            "sent_rps", "send_window_s", "run_window_s", "latency_ms",
                            "all_latency_ms", "send_lag_ms", "saturated", "aborted"):
                    entry[key] = s.get(key)
                send_windows.append(s["send_window_s"])
                run_windows.append(s["run_window_s"])
                for sh in s["shards"]:
                    shard_info.append(dict(sh, host=name))
                for slots in fin["readings"]:
                    r = Reading(slots)
                    readings.append(r)
                    per_shard.append({n: r.histogram(n) for n in HISTOGRAMS})
                if (dest / "shard_intervals.arrows").exists():
                    shard_rows += read_intervals(dest / "shard_intervals.arrows").to_pylist()
            else:
                # lost: what its interval messages counted before it was
                merger = getattr(self, "merger", None)
                entry["complete"] = False
                entry["last_interval_t_s"] = merger.last_t_s[i] if merger else None
            hosts_out.append(entry)
        if shard_rows:
            writer.intervals([], sorted(shard_rows, key=lambda r: (r["t_s"], r["shard"])))
        cfg = self.run_config
        merged = {name: Histogram.empty() for name in HISTOGRAMS}
        for hs in per_shard:
            for name, hist in hs.items():
                merged[name] += hist
        if cfg.workload is not None and readings:
            n = len(cfg.scenarios)
            for sc, hh, ha in zip(cfg.scenarios, scenario_histograms(readings, n),
                                  scenario_histograms(readings, n, "all_latency")):
                merged[f"scenario:{sc.name}"] = hh
                merged[f"scenario_all:{sc.name}"] = ha
        interrupted = signal.Signals(self.interrupted).name if self.interrupted else None
        summary = build_summary(cfg, readings, merged, send_window_s=max(send_windows),
                                run_window_s=max(run_windows), shards=shard_info,
                                interrupted=interrupted, aborted=self.aborted, started=started,
                                workers_requested=cfg.workers, notes=self.notes,
                                saturated_intervals=self.saturated,
                                shape=self.control.schedule.shape)
        summary["hosts"] = hosts_out
        summary["cluster"] = self._cluster_info()
        self.control.state = "done"
        close_summary(summary, self.stopped, self.control, self.companions, self.exit_code())
        writer.histograms(merged, per_shard)
        writer.summary(summary)
        return summary

    # -- aborts, signals ------------------------------------------------------------------------
    def exit_code(self) -> int:
        if self.interrupted:
            return SIGNAL_EXIT.get(self.interrupted, 128 + self.interrupted)
        return self.abort_code if self.aborted else EXIT_OK

    def _lose(self, i: int, why: str, merger) -> None:
        h = self.hosts
        if i in h.lost:
            return
        h.lost[i] = why
        if merger is not None:
            merger.finish(i)
            h.lost_at_s[i] = merger.last_t_s[i]
        self._abort_run(f"host {h.names[i]} lost: {why}", EXIT_ABORTED)

    def _abort_run(self, reason: str, exit_code: int) -> None:
        if self.aborted is None:
            self.aborted, self.abort_code = reason, exit_code
            self.echo(f"stressx: stopping every host: {reason}; keeping the others' data")
            self._stop_all(reason, exit_code)

    def _abort_run_from(self, abort) -> None:
        if abort is not None:
            self._abort_run(abort.reason, abort.exit_code)

    def _request_abort(self, reason: str, exit_code: int) -> None:
        with self._abort_lock:
            if self._abort_request is None:
                self._abort_request = (reason, exit_code)

    def _request_control_stop(self, reason: str, now: bool) -> None:
        """RunControl.stop() (the control API's stop and emergency stop), from any thread, told to
        every live host at once. Graceful: each host stops sending and drains, its results are
        gathered and merged as at the end, `stopped` holds the reason (the exit code is the
        checks'). now: each host ends its load at once (in-flight requests abandoned), the run is
        aborted (exit 4); what every host counted is still gathered."""
        with self._abort_lock:
            if not now and self.stopped is None and self.aborted is None \
                    and self._abort_request is None:
                self.stopped = reason
        self.control.state = "stopping"
        self.control.stopping = self.control.stopping or reason
        if self.hosts is not None:
            for i in self.hosts.live():
                try:
                    self.hosts.actors[i].stop_sending.remote(reason, now)
                except Exception:
                    pass
        if now:
            self._request_abort(reason, EXIT_ABORTED)

    def _take_abort(self) -> None:
        with self._abort_lock:
            req, self._abort_request = self._abort_request, None
        if req is not None:
            self._abort_run(*req)

    def _stop_all(self, reason: str, exit_code: int = EXIT_ABORTED) -> None:
        if self.hosts is None:
            return
        for i in self.hosts.live():
            try:
                self.hosts.actors[i].stop.remote(reason, exit_code)
            except Exception:
                pass

    def _publish_rate(self, rate: float, at_ns: int) -> None:
        """RunControl.change_rate over the cluster: the same instant after the common start on
        every host."""
        at_s = max(0.0, (at_ns - self.start_ns) / 1e9) if self.start_ns else 0.0
        for i in self.hosts.live():
            if self.config.open_model:
                self.hosts.actors[i].change_rate.remote(rate, at_s)
            else:                 # the closed model's total connections (shards split it)
                self.hosts.actors[i].change_connections.remote(int(rate), at_s)

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        if self._signals == 1:
            self.interrupted = signum
            self.echo(f"stressx: {signal.Signals(signum).name}: stopping every host, draining "
                      f"in-flight requests (again to quit at once)")
            self._stop_all(signal.Signals(signum).name)
            return
        os._exit(SIGNAL_EXIT.get(signum, 128 + signum))

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNAL_EXIT}
        return lambda: [signal.signal(sig, hd) for sig, hd in previous.items()]

    def _note(self, note: str) -> None:
        self.notes.append(note)
        self.echo(f"stressx: {note}")

    def _cluster_info(self) -> dict:
        h = self.hosts
        merge_s = getattr(getattr(self, "merger", None), "merge_s", [])
        return {
            "address": self.config.cluster,
            "hosts": len(h),
            "lost": [{"host": h.names[i], "reason": why, "last_interval_t_s": h.lost_at_s.get(i)}
                     for i, why in sorted(h.lost.items())],
            "clock_uncertainty_ms": round(max(h.uncertainty_ns) / 1e6, 3),
            "max_clock_uncertainty_ms": round(self.config.clock_uncertainty * 1e3, 3),
            "start_skew_ms": getattr(self, "start_skew_ms", None),
            "merge_ms": ({"intervals": len(merge_s),
                          "mean": round(sum(merge_s) / len(merge_s) * 1e3, 3),
                          "max": round(max(merge_s) * 1e3, 3)} if merge_s else None),
        }

    def _teardown(self) -> None:
        ray = self.ray
        if self.hosts is not None:
            for a in self.hosts.actors:
                try:
                    ray.kill(a)
                except Exception:
                    pass
        if self.pg is not None:
            try:
                from ray.util.placement_group import remove_placement_group
                remove_placement_group(self.pg)
            except Exception:
                pass


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _hosts_choice(hosts: str | None) -> tuple[str | None, int | None]:
    """--hosts as (resource label or None, count or None: every host that fits)."""
    if hosts is None:
        return None, None
    if hosts.isdigit():
        return None, int(hosts)
    label, _, count = hosts.partition(":")
    return label, int(count) if count else None
