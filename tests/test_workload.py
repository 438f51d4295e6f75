"""Workload files and weighted scenario mixes, end to end."""
import json
from pathlib import Path

import pytest
import stressx
from stressx._testing.target import TargetThread
from stressx.errors import ConfigError
from stressx.load.workload import BUILTIN_DIR, list_workloads, load_workload, parse_workload

from conftest import run_cli


def test_shipped_workloads_load():
    names = {w.name for w in list_workloads(BUILTIN_DIR)}
    assert {"quick", "heavy", "error", "mixed"} <= names
    heavy = load_workload("heavy")                      # a bare name: ./workloads, built-ins
    assert Path(heavy.source).parent == BUILTIN_DIR
    upload = next(s for s in heavy.scenarios if s.name == "upload")
    assert upload.method == "POST" and upload.body.startswith(b'{"items"')


@pytest.mark.parametrize("data,where,message", [
    ({"scenarios": [{"name": "a", "path": "/", "wieght": 2}]}, "scenarios[0].wieght", "did you mean 'weight'"),
    ({"scenarios": [{"path": "/"}]}, "scenarios[0].name", "needs a name"),
    ({"scenarios": [{"name": "a"}]}, "scenarios[0].path", "exactly one of path or url"),
    ({"scenarios": [{"name": "a", "path": "x"}]}, "scenarios[0].path", "must start with '/'"),
    ({"scenarios": [{"name": "a", "path": "/", "weight": -1}]}, "scenarios[0].weight", ">= 0"),
    ({"scenarios": [{"name": "a", "path": "/", "expect_status": [99]}]}, "scenarios[0].expect_status", "100..599"),
    ({"scenarios": [{"name": "a", "path": "/", "baseline_min_ms": 9, "baseline_max_ms": 3}]},
     "scenarios[0].baseline_min_ms", "must not exceed"),
    ({"scenarios": [{"name": "a", "path": "/"}, {"name": "a", "path": "/b"}]}, "scenarios", "unique"),
    ({"scenarios": []}, "scenarios", "non-empty"),
    ({"scenarios": [{"name": "a", "path": "/"}], "descripton": "x"}, "descripton", "did you mean"),
])
def test_bad_workloads_name_file_and_key(tmp_path, data, where, message):
    with pytest.raises(ConfigError) as info:
        parse_workload(data, "w.yaml", tmp_path)
    assert info.value.option == f"w.yaml: {where}"
    assert message in str(info.value)


def test_weighted_mix_and_per_scenario_stats(tmp_path):
    wl = tmp_path / "wl.yaml"
    wl.write_text("""
scenarios:
  - {name: fast, path: /a, weight: 3, baseline_max_ms: 1000}
  - {name: slow, path: "/b?delay=30", weight: 1, baseline_max_ms: 10}
  - {name: missing, path: "/c?status=404", weight: 1, expect_status: [404]}
  - {name: broken, path: "/d?status=500", weight: 1}
""")
    with TargetThread() as t:
        r = stressx.run(t.url, rate=600, duration="2s", workers=2, workload=str(wl), out=tmp_path / "o")
        paths = dict(t.counts.paths)
    sc = r.scenarios
    assert sum(s["requests"] for s in sc.values()) == r.requests == 1200
    # each scenario's count is what the server received on that scenario's path
    assert paths == {"/a": sc["fast"]["requests"], "/b": sc["slow"]["requests"],
                     "/c": sc["missing"]["requests"], "/d": sc["broken"]["requests"]}
    # the mix follows the weights (3:1:1:1 of 1200 -> 600:200:200:200, binomial noise)
    assert 520 < sc["fast"]["requests"] < 680 and 150 < sc["slow"]["requests"] < 250
    assert sc["missing"]["ok"] == sc["missing"]["requests"]          # 404 was expected
    assert sc["broken"]["ok"] == 0 and sc["broken"]["errors"] == {"status": sc["broken"]["requests"]}
    assert sc["slow"]["baseline_violations"] == sc["slow"]["too_slow"] == sc["slow"]["ok"]
    assert sc["fast"]["baseline_violations"] == 0
    assert sc["slow"]["latency_ms"]["p50"] >= 30 > sc["fast"]["latency_ms"]["p50"]
    assert r.ok == sc["fast"]["ok"] + sc["slow"]["ok"] + sc["missing"]["ok"]
    assert r.status["404"] == sc["missing"]["requests"] and r.status["500"] == sc["broken"]["requests"]
    hist = json.loads((tmp_path / "o" / "histograms.json").read_text())["merged"]
    assert {"scenario:fast", "scenario:slow"} <= set(hist)
    per_interval = stressx.load_results(tmp_path / "o").scenario_intervals.to_pylist()
    for name in sc:
        rows = [row for row in per_interval if row["scenario"] == name]
        assert sum(row["sent"] for row in rows) == sc[name]["requests"]
        assert sum(row["violations"] for row in rows) == sc[name]["baseline_violations"]


def test_scenario_selection(tmp_path):
    with TargetThread() as t:
        r = stressx.run(t.url, connections=2, requests=30, workers=1, workload="error",
                        scenarios=["not_found"], out=tmp_path)
        paths = dict(t.counts.paths)
        with pytest.raises(ConfigError, match="did you mean 'not_found'"):
            stressx.run(t.url, workload="error", scenarios=["not_fund"])
        assert t.counts.requests == 30       # the misspelt selection sent nothing
    assert list(r.scenarios) == ["not_found"] and r.ok == 30 and r.status == {"404": 30}
    assert paths == {"/missing": 30}     # not_found's path; the other scenarios were never sent


def test_list_scenarios():
    r = run_cli("list-scenarios", BUILTIN_DIR)
    assert r.returncode == 0
    assert "mixed" in r.stdout and "report" in r.stdout and "expect 404" in r.stdout
    assert "50.0%" in r.stdout      # ping's share of the mixed workload


# -- built-in workloads: shipped in the package, found from any directory ---------------------
BUILTINS = ("error", "heavy", "mixed", "quick")


def test_builtins_from_any_directory(tmp_path):
    assert not (tmp_path / "workloads").exists()
    r = run_cli("list-scenarios", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines() if not line.startswith(" ")]
    assert listed == list(BUILTINS)
    assert str(BUILTIN_DIR / "mixed.yaml") in r.stdout
    r = run_cli("run", "http://127.0.0.1:9/", "--workload", "mixed", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(BUILTIN_DIR / "mixed.yaml") in r.stdout and "/api/ping" in r.stdout


def test_builtin_by_name_with_its_data_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    heavy = load_workload("heavy")
    assert heavy.source == str(BUILTIN_DIR / "heavy.yaml")
    upload = next(s for s in heavy.scenarios if s.name == "upload")
    assert upload.body == (BUILTIN_DIR / "data" / "upload.json").read_bytes()


def test_unknown_name_lists_the_builtins(tmp_path):
    r = run_cli("run", "http://127.0.0.1:9/", "--workload", "mixd", "--dry-run", cwd=tmp_path)
    assert r.returncode == 2
    assert "--workload" in r.stderr and "'mixd'" in r.stderr and "error, heavy, mixed, quick" in r.stderr


LOCAL_MIXED = "description: my own mix\nscenarios:\n  - {name: mine, path: /mine}\n"


def test_a_local_workload_wins_over_the_builtin(tmp_path):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "mixed.yaml").write_text(LOCAL_MIXED)
    (tmp_path / "workloads" / "extra.yml").write_text(LOCAL_MIXED.replace("mine", "extra"))
    r = run_cli("list-scenarios", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    heads = [line for line in r.stdout.splitlines() if not line.startswith(" ")]
    assert [h.split()[0] for h in heads] == ["error", "extra", "heavy", "mixed", "quick"]
    assert "my own mix" in r.stdout and "Cheap API call" not in r.stdout
    r = run_cli("run", "http://127.0.0.1:9/", "--workload", "mixed", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "/mine" in r.stdout and "/api/ping" not in r.stdout and str(BUILTIN_DIR) not in r.stdout


def test_an_explicit_path_wins(tmp_path):
    own = tmp_path / "elsewhere" / "mixed.yaml"
    own.parent.mkdir()
    own.write_text(LOCAL_MIXED)
    r = run_cli("run", "http://127.0.0.1:9/", "--workload", own, "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "/mine" in r.stdout and "/api/ping" not in r.stdout
    r = run_cli("list-scenarios", own.parent, cwd=tmp_path)         # a directory: only it
    assert r.returncode == 0 and "my own mix" in r.stdout and "heavy" not in r.stdout


def test_list_profiles():
    r = run_cli("list-profiles")
    assert r.returncode == 0
    for name in ("smoke", "light", "normal", "heavy", "stress", "soak", "spike", "incident-replay"):
        assert name in r.stdout
