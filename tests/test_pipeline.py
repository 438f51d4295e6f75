"""One pipeline: each load command and its library twin, with the same options against the same
embedded target, write the same files and end with the same exit code; the Result is typed; the
seams companions and shards see are narrow (RunControl, a frozen config, one shard job)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pyarrow as pa
import pytest

import stressx
from stressx._testing.target import TargetThread
from stressx.errors import EXIT_OK, EXIT_THRESHOLDS

from conftest import run_cli

PASSING = ["error_rate<1%", "rps>1"]
FAILING = ["error_rate<1%", "p99<1us"]          # no response comes back within a microsecond


def files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def verdicts(run_dir) -> list[tuple]:
    data = json.loads((run_dir / "thresholds.json").read_text())
    return [(t["text"], t["passed"], t["window_s"]) for t in data["thresholds"]] + [data["passed"]]


def summary(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def same_run(a, b) -> None:
    """Two results directories of one run each: the same files, summary keys, verdicts."""
    assert files(a) == files(b)
    assert set(summary(a)) == set(summary(b))
    if (a / "thresholds.json").exists():
        assert verdicts(a) == verdicts(b)


@pytest.mark.parametrize("thresholds, code", [(PASSING, EXIT_OK), (FAILING, EXIT_THRESHOLDS)])
def test_run_and_its_library_twin_write_the_same(target, tmp_path, thresholds, code):
    """`stressx run URL --threshold ... --report md,json --out A` and stressx.run(URL,
    thresholds=[...], report=[...], out=B): the same files, summary keys, verdicts and exit
    code (0 when the thresholds pass, 3 when one fails)."""
    a, b = tmp_path / "cli", tmp_path / "lib"
    flags = [x for th in thresholds for x in ("--threshold", th)]
    r = run_cli("run", target.url, "--rate", "40", "--duration", "1s", "--workers", "1", *flags,
                "--report", "md,json", "--out", a, "-q")
    assert r.returncode == code, r.stderr
    result = stressx.run(target.url, rate=40, duration="1s", workers=1, thresholds=thresholds,
                         report=["md", "json"], out=b)
    assert result.exit_code == code and result.passed is (code == EXIT_OK)
    same_run(a, b)
    assert {"thresholds.json", "report.md", "report.json", "host.arrows", "summary.json",
            "intervals.arrows"} <= set(files(b))
    assert result.reports == {"md": b / "report.md", "json": b / "report.json"}
    assert [(v["text"], v["passed"], v["window_s"]) for v in result.thresholds] + [code == 0] \
        == verdicts(b)
    assert ("FAIL  p99 < 0.001 ms" in r.stdout) is (code == EXIT_THRESHOLDS)


def test_a_config_sequence_and_run_config_write_the_same(target, tmp_path):
    """`stressx run --config FILE` with two tests, thresholds and a report, and
    stressx.run_config(FILE, out=B): the same tree, each test's files alike, the same exit
    code (3: the second test fails its threshold)."""
    config = tmp_path / "load.yaml"
    config.write_text(f"target: {target.url}\nworkers: 1\n"
                      "thresholds: ['error_rate<1%', 'rps>25']\n"
                      "output: {report: [md]}\n"
                      "tests:\n"
                      "  - {name: fast, type: steady, rps: 40, duration: 1s}\n"
                      "  - {name: slow, type: steady, rps: 5, duration: 1s}\n")
    a, b = tmp_path / "cli", tmp_path / "lib"
    r = run_cli("run", "--config", config, "--out", a, "-q")
    assert r.returncode == EXIT_THRESHOLDS, r.stderr
    done = stressx.run_config(config, out=b)
    assert done.exit_code == EXIT_THRESHOLDS and not done.passed
    assert [name for name, _ in done.runs] == ["01-fast", "02-slow"]
    assert done["01-fast"].passed and done["02-slow"].exit_code == EXIT_THRESHOLDS
    assert files(a) == files(b)
    for name in ("01-fast", "02-slow"):
        same_run(a / name, b / name)


@pytest.mark.parametrize("slo, code", [("p99<1s", EXIT_OK), ("p99<1us", EXIT_THRESHOLDS)])
def test_capacity_and_its_library_twin(target, tmp_path, slo, code):
    """Tiny capacity searches (1 s probes from 20/s up to a 40/s ceiling): the same probes,
    the same capacity.json verdict and files, the same exit code."""
    a, b = tmp_path / "cli", tmp_path / "lib"
    r = run_cli("capacity", target.url, "--slo", slo, "--start-rps", "20", "--max-rps", "40",
                "--probe-duration", "1s", "--workers", "1", "--out", a, "-q")
    assert r.returncode == code, r.stderr
    result = stressx.capacity(target.url, slo=[slo], start_rps=20, max_rps=40,
                              probe_duration="1s", workers=1, out=b)
    assert result.exit_code == code
    assert files(a) == files(b)
    ca, cb = (json.loads((d / "capacity.json").read_text()) for d in (a, b))
    assert [(p["rate"], p["passed"]) for p in ca["probes"]] \
        == [(p["rate"], p["passed"]) for p in cb["probes"]] \
        == ([(20, True), (40, True)] if code == EXIT_OK else [(20, False)])
    assert ca["capacity_rps"] == cb["capacity_rps"] == result.capacity


def test_scaling_and_its_library_twin(target, tmp_path):
    """A tiny scaling test (1 and 2 instances at 10/s each, 1 s levels, a scale command that
    records its argument): the same scale commands, levels, files and exit code."""
    a, b = tmp_path / "cli", tmp_path / "lib"
    log = tmp_path / "scaled"
    cmd = f"echo {{n}} >> {log}"
    r = run_cli("scaling", target.url, "--instances", "1,2", "--rps-per-instance", "10",
                "--duration", "1s", "--scale-cmd", cmd, "--workers", "1", "--out", a, "-q")
    assert r.returncode == EXIT_OK, r.stderr
    result = stressx.scaling(target.url, instances=[1, 2], rps_per_instance=10, duration="1s",
                             scale_cmd=cmd, workers=1, out=b)
    assert result.exit_code == EXIT_OK and log.read_text().split() == ["1", "2", "1", "2"]
    assert files(a) == files(b)
    sa, sb = (json.loads((d / "scaling.json").read_text()) for d in (a, b))
    assert [(lv["instances"], lv["rate_target"], lv["exit_code"]) for lv in sa["levels"]] \
        == [(lv["instances"], lv["rate_target"], lv["exit_code"]) for lv in sb["levels"]] \
        == [(1, 10, 0), (2, 20, 0)]
    assert sb == result.to_json()


def test_adaptive_and_its_library_twin(target, tmp_path):
    """`stressx adaptive` and stressx.adaptive(): the same files (no thresholds.json, no
    host.arrows: the command never had them) and a raise decision recorded by both."""
    a, b = tmp_path / "cli", tmp_path / "lib"
    r = run_cli("adaptive", target.url, "--start-rps", "10", "--step-rps", "10",
                "--step-every", "1s", "--duration", "2s", "--workers", "1", "--out", a, "-q")
    assert r.returncode == EXIT_OK, r.stderr
    result = stressx.adaptive(target.url, start_rps=10, step_rps=10, step_every="1s",
                              duration="2s", workers=1, out=b)
    assert result.exit_code == EXIT_OK
    same_run(a, b)
    assert "thresholds.json" not in files(b) and "host.arrows" not in files(b)
    assert summary(a)["adaptive"]["decisions"][0]["action"] == "raise"
    assert result.adaptive["decisions"][0]["action"] == "raise"


# -- the typed Result ---------------------------------------------------------------------------

def test_result_is_typed_and_keeps_its_dict(target, tmp_path):
    """Documented attributes (dataclass fields, no __getattr__ over the summary), the summary
    dict, result[key], and the interval table: read from out_dir, or kept in memory when the
    run kept no directory (the temporary one is gone)."""
    names = {f.name for f in dataclasses.fields(stressx.Result)}
    assert {"requests", "ok", "errors", "error_count", "rps", "sent_rps", "latency_ms",
            "all_latency_ms", "saturated", "exit_code", "thresholds"} <= names
    assert "__getattr__" not in vars(stressx.Result)
    for name in names - {"summary", "out_dir", "thresholds", "comparison", "reports",
                         "exit_code"}:
        assert name in stressx.Result.__doc__, name

    r = stressx.run(target.url, rate=20, duration="1s", workers=1, out=tmp_path)
    assert r.requests == r["requests"] == r.summary["requests"] == 20
    assert r.exit_code == EXIT_OK and r.passed and r.thresholds == [] and r.reports == {}
    assert isinstance(r.intervals, pa.Table)
    assert sum(r.intervals.column("sent").to_pylist()) == r.requests
    with pytest.raises(AttributeError):
        r.no_such_figure

    before = set(tmp_path.parent.glob("*"))
    r = stressx.run(target.url, rate=20, duration="1s", workers=1, thresholds=["p99<1us"])
    assert r.out_dir is None and r.exit_code == EXIT_THRESHOLDS and not r.passed
    assert sum(r.intervals.column("sent").to_pylist()) == r.requests == 20
    assert set(tmp_path.parent.glob("*")) == before
    with pytest.raises(stressx.ConfigError, match="^report: "):
        stressx.run(target.url, rate=20, duration="1s", report="md")


# -- narrow seams ----------------------------------------------------------------------------

def test_two_companions_of_one_name_are_refused_before_anything_is_sent():
    """stressx.run(companions=companions_for(...)) would add a second host sampler (two writers
    of host.arrows): refused, naming it, with nothing sent."""
    from stressx.hostload.burners.session import companions_for
    with TargetThread() as t:
        with pytest.raises(ValueError, match="two companions named 'host'"):
            stressx.run(t.url, rate=20, duration="1s", workers=1, companions=companions_for())
        assert t.counts.connections == 0 and t.counts.requests == 0


class _Steer(stressx.Companion):
    """Halves the rate after the first interval, then aborts after the second; records what
    its RunControl showed."""
    name = "steer"

    def __init__(self):
        self.seen = []

    def on_interval(self, t_s, row):
        c = self.control
        self.seen.append((c.latest["t_s"] == row["t_s"], c.elapsed() >= t_s, dict(c.shard_pids)))
        if len(self.seen) == 1:
            c.change_rate(c.rate_at() / 2)
        elif len(self.seen) == 2:
            c.abort("steered to a stop", 4)

    def finish(self):
        return {"intervals": len(self.seen)}


def test_companions_get_a_run_control_and_the_config_stays_as_resolved(target, tmp_path):
    """A companion steers through its RunControl (latest row, elapsed time, shard pids, rate
    change, abort). The RunConfig handed to the coordinator is never changed (frozen): the
    live target is in the control's schedule, which the summary reads; workers lowered for a
    small budget are the coordinator's copy."""
    from stressx.engine.coordinator import Coordinator
    from stressx.load.config import resolve
    cfg = resolve(target.url, rate=40, duration="6s", workers=1, progress=False)
    steer = _Steer()
    s = Coordinator(cfg, tmp_path / "a", companions=[steer]).run()
    assert s["aborted"] == "steered to a stop" and s["exit_code"] == 4
    pids = {f"shard{sh['index']}": sh["pid"] for sh in s["shards"]}
    assert all(latest and late for latest, late, _ in steer.seen)
    assert all(seen == pids for _, _, seen in steer.seen)
    assert "changed_at" not in cfg.shape.describe() and cfg.shape.rate_at(5) == 40
    assert "changed_at=" in s["shape"] and s["rate_target"] < 40   # the halved target
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.workers = 3

    small = resolve(target.url, rate=20, requests=1, workers=2, progress=False)
    s = Coordinator(small, tmp_path / "b").run()
    assert s["workers"] == 1 and s["workers_requested"] == 2 and small.workers == 2


def test_the_host_sampler_takes_the_shard_pids_from_the_coordinator(target, tmp_path):
    """A process of ours whose command line says stressx.engine.shard is not a shard of the
    run: the sampler records exactly the run's shard (it used to search the children)."""
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                              "stressx.engine.shard"])
    try:
        r = stressx.run(target.url, rate=20, duration="1.5s", workers=1, out=tmp_path)
    finally:
        decoy.kill()
        decoy.wait()
    rows = pa.ipc.open_stream(str(tmp_path / "host.arrows")).read_all().to_pylist()
    names = {name for row in rows for name, _ in (row["proc_cpu_pct"] or [])
             if name.startswith("shard")}
    assert names == {"shard0"} and r.shards[0]["pid"] != decoy.pid


def test_the_shard_job_is_one_versioned_message(tmp_path):
    """ShardJob round-trips through its one serialisation; a shard given a job of another
    version refuses it in one line (exit 2) instead of failing on a missing key."""
    from stressx.engine.job import JOB_VERSION, ShardJob, ShardScenario
    from stressx.engine.spawn import child_argv
    job = ShardJob(segment="/stressx-x", index=0, count=1, coordinator_pid=1, scheme="http",
                   host="127.0.0.1", address="127.0.0.1", port=80,
                   scenarios=(ShardScenario(b"GET / HTTP/1.1\r\n\r\n", 1, (200,)),),
                   insecure=False, ca_file=None, segments=[[1.0, 2.0, 3.0, 4.0]],
                   users_segments=None, budget=-1, duration_ns=10**9, timeout_ns=10**9,
                   grace_ns=10**9, connections=1, max_connections=1, fd_margin=32)
    assert ShardJob.loads(job.dumps()) == job and job.version == JOB_VERSION
    other = json.loads(job.dumps())
    other["version"] = JOB_VERSION + 1
    p = subprocess.run(child_argv("stressx.engine.shard"), input=json.dumps(other).encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 2
    assert p.stderr.decode().strip() == (f"stressx shard: error: shard job version "
                                         f"{JOB_VERSION + 1}: this shard reads version "
                                         f"{JOB_VERSION} (the coordinator and the shard are "
                                         f"different stressx)")
    del other["fd_margin"]
    other["version"] = JOB_VERSION
    with pytest.raises(ValueError, match=r"missing \['fd_margin'\]"):
        ShardJob.loads(json.dumps(other))
