"""Host metrics: the sampler in a real load run and in a burn run, read back from host.arrows."""
import json
import os
import threading

import pytest

import stressx
from stressx.hostload.burners import make_spec
from stressx.hostload.burners.session import run_burn
from stressx.hostload.hostmetrics import HOST_FILE, host_schema, read_host


def _meminfo_bytes(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            name, value = line.split(":", 1)
            if name == key:
                return int(value.split()[0]) * 1024
    raise KeyError(key)


def test_host_metrics_in_a_load_run(target, tmp_path):
    # the kernel updates the load average every 5 s: reading it every 20 ms through the run
    # sees every load1 value the sampler could have recorded
    loads, stop = set(), threading.Event()

    def watch_load():
        while True:
            loads.add(os.getloadavg()[0])
            if stop.wait(0.02):
                return
    watcher = threading.Thread(target=watch_load, daemon=True)
    watcher.start()
    try:
        # every run samples the host; no companions of our own (a second sampler would write
        # the same host.arrows)
        r = stressx.run(target.url, rate=300, duration="2s", workers=1, out=tmp_path)
    finally:
        stop.set()
        watcher.join(2)
    assert r.exit_code == 0
    host = read_host(tmp_path)
    assert host.schema.equals(host_schema(), check_metadata=False)
    t = host.column("t_s").to_pylist()
    assert 17 <= len(t) <= 25 and t == sorted(t) and t[0] < 0.2 and t[-1] <= 2.5
    assert all(abs(b - a - 0.1) < 0.05 for a, b in zip(t, t[1:]))   # on the 100 ms grid
    rows = host.to_pylist()
    assert all(len(row["cpu_core_pct"]) == os.cpu_count() for row in rows)
    assert all(0 <= row["cpu_pct"] <= 100 for row in rows)
    assert all(row["mem_total_bytes"] == _meminfo_bytes("MemTotal") for row in rows)
    assert all(0 < row["mem_available_bytes"] <= row["mem_total_bytes"] for row in rows)
    # load1 is the kernel's 1-minute figure at the time of the sample
    assert {row["load1"] for row in rows} <= loads, ([row["load1"] for row in rows], loads)
    # loopback counted: the run's own requests and responses crossed lo while it was sampled
    # (the first ~0.1 s is before the first sample, hence a half)
    own = r.summary["bytes_out"] + r.summary["bytes_in"]
    assert sum(row["net_sent_bytes"] for row in rows) >= own / 2, own
    assert max(row["shards_cpu_pct"] for row in rows) > 0            # the shard was found
    assert "shard0" in dict(rows[5]["proc_cpu_pct"])
    s = r.summary["host"]
    assert s["samples"] == len(rows) and s["file"] == HOST_FILE
    # the summary's figures are those of the samples in the file
    cpu = [row["cpu_pct"] for row in rows]
    assert (s["cpu_pct"]["min"], s["cpu_pct"]["max"]) == (min(cpu), max(cpu))
    assert s["cpu_pct"]["mean"] == round(sum(cpu) / len(cpu), 3)
    assert s["net_sent_bytes"] == sum(row["net_sent_bytes"] for row in rows)
    assert s["load1_max"] == max(row["load1"] for row in rows)
    assert json.loads((tmp_path / "summary.json").read_text())["host"]["samples"] == len(rows)


def test_burner_levels_on_the_timeline_and_achieved_vs_requested(tmp_path):
    spec = make_spec("cpu", [(0, 0.4), (2.0, 0.2)], workers=1)
    summary = run_burn([spec], duration_s=3.6, out_dir=tmp_path)
    assert summary["exit_code"] == 0
    rows = read_host(tmp_path).to_pylist()
    requested = [(row["t_s"], dict(row["burner_requested"])["cpu"]) for row in rows]
    step1 = [v for t, v in requested if 0.1 < t < 1.9]
    step2 = [v for t, v in requested if 2.1 < t]
    # samples every 100 ms: ~18 in the first step, ~15 in the second (3.6 s run)
    assert len(step1) >= 15 and len(step2) >= 10, requested
    assert set(step1) == {40.0} and set(step2) == {20.0}
    rep = summary["host"]["burners"]["cpu"]
    assert rep["kind"] == "cpu" and rep["unit"] == "% of a core"
    # per-second readings from the burner's own CPU time: [t_end, requested, achieved]
    first = rep["per_second"][0]
    assert first[1] == pytest.approx(40, abs=0.5) and first[2] == pytest.approx(40, abs=8)
    assert rep["steady_windows"] >= 1
    assert rep["requested_mean"] == pytest.approx(20, abs=0.5)
    assert rep["achieved_mean"] == pytest.approx(20, abs=6)
    assert summary["host"]["burners_cpu_pct"]["mean"] > 10
