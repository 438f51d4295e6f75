"""Host metrics: the sampler in a real load run and in a burn run, read back from host.arrows."""
import json
import os

import pytest

import stressx
from stressx.burners import make_spec
from stressx.burners.session import run_burn
from stressx.cli_burn import companions_for
from stressx.hostmetrics import HOST_FILE, host_schema, read_host


def test_host_metrics_in_a_load_run(target, tmp_path):
    r = stressx.run(target.url, rate=300, duration="2s", workers=1, out=tmp_path,
                    companions=companions_for())
    assert r.exit_code == 0
    host = read_host(tmp_path)
    assert host.schema.equals(host_schema(), check_metadata=False)
    t = host.column("t_s").to_pylist()
    assert 17 <= len(t) <= 25 and t == sorted(t) and t[0] < 0.2 and t[-1] <= 2.5
    assert all(abs(b - a - 0.1) < 0.05 for a, b in zip(t, t[1:]))   # on the 100 ms grid
    rows = host.to_pylist()
    assert all(len(row["cpu_core_pct"]) == os.cpu_count() for row in rows)
    assert all(0 <= row["cpu_pct"] <= 100 and row["mem_total_bytes"] > 0 for row in rows)
    assert all(row["load1"] >= 0 and row["mem_available_bytes"] > 0 for row in rows)
    assert sum(row["net_sent_bytes"] for row in rows) > 0            # loopback traffic counted
    assert max(row["shards_cpu_pct"] for row in rows) > 0            # the shard was found
    assert "shard0" in dict(rows[5]["proc_cpu_pct"])
    s = r.summary["host"]
    assert s["samples"] == len(rows) and s["file"] == HOST_FILE
    assert s["cpu_pct"]["max"] >= s["cpu_pct"]["mean"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["host"]["samples"] == len(rows)


def test_burner_levels_on_the_timeline_and_achieved_vs_requested(tmp_path):
    spec = make_spec("cpu", [(0, 0.4), (2.0, 0.2)], workers=1)
    summary = run_burn([spec], duration_s=3.6, out_dir=tmp_path)
    assert summary["exit_code"] == 0
    rows = read_host(tmp_path).to_pylist()
    requested = [(row["t_s"], dict(row["burner_requested"])["cpu"]) for row in rows]
    assert all(v == 40.0 for t, v in requested if 0.1 < t < 1.9)
    assert all(v == 20.0 for t, v in requested if 2.1 < t)
    rep = summary["host"]["burners"]["cpu"]
    assert rep["kind"] == "cpu" and rep["unit"] == "% of a core"
    # per-second readings from the burner's own CPU time: [t_end, requested, achieved]
    first = rep["per_second"][0]
    assert first[1] == pytest.approx(40, abs=0.5) and first[2] == pytest.approx(40, abs=8)
    assert rep["steady_windows"] >= 1
    assert rep["requested_mean"] == pytest.approx(20, abs=0.5)
    assert rep["achieved_mean"] == pytest.approx(20, abs=6)
    assert summary["host"]["burners_cpu_pct"]["mean"] > 10
