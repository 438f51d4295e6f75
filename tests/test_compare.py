"""Comparing runs: change per metric and per scenario, regressions in the worse direction only,
noise floors, output formats, the `compare` command, named baselines, and --baseline after a run."""
import json

import click
import pytest
from click.testing import CliRunner
from report_fixtures import SCENARIOS, copy_run, edit_summary, summary, with_scenarios
from stressx import report
from stressx.cli import reports as cli_reports
from stressx.errors import ConfigError
from stressx.judge import compare as C
from stressx.report import comparison
from stressx.results.files import load_results


@pytest.fixture(autouse=True)
def baselines(tmp_path, monkeypatch):
    path = tmp_path / "baselines"
    monkeypatch.setenv("STRESSX_BASELINES", str(path))
    return path


def rows_by_name(c: dict) -> dict:
    return {((r["scenario"] + ": ") if r["scenario"] else "") + r["metric"]: r for r in c["rows"]}


def regressed(tmp_path, name="current", **changes):
    """A copy of run_v1 made worse: p99 +50%, throughput -30%, 10x the errors."""
    d = copy_run(tmp_path, name)
    s = summary()
    latency = {"p99": round(s["latency_ms"]["p99"] * 1.5, 3), **changes.pop("latency_ms", {})}
    edit_summary(d, latency_ms=latency, rps=round(s["rps"] * 0.7, 3), error_count=20,
                 errors={"timeout": 20}, ok=780, **changes)
    return d


def test_identical_runs_do_not_regress(tmp_path):
    base, cur = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    c = C.compare(load_results(base), load_results(cur))
    assert c["passed"] and c["regressions"] == [] and c["differences"] == []
    assert {r["metric"] for r in c["rows"]} == {"rps", "error_rate", "mean", "p50", "p90", "p95",
                                                "p99", "p999", "max"}
    assert all(r["change_pct"] == 0 and not r["regression"] for r in c["rows"])


def test_synthetic_regression_is_marked_in_the_worse_direction_only(tmp_path):
    base = copy_run(tmp_path, "base")
    cur = regressed(tmp_path, latency_ms={"p99": 7.649, "p50": 3.0})
    c = C.compare(load_results(base), load_results(cur))
    r = rows_by_name(c)
    assert (r["p99"]["baseline"], r["p99"]["current"]) == (5.099, 7.649)
    assert r["p99"]["change_pct"] == pytest.approx(50.0, abs=0.01) and r["p99"]["regression"]
    assert r["p99"]["change_text"] == "+50.0%"
    assert r["rps"]["change_pct"] == pytest.approx(-30.0, abs=0.01) and r["rps"]["regression"]
    assert r["error_rate"]["baseline"] == 0.0025 and r["error_rate"]["current"] == 0.025
    assert r["error_rate"]["regression"] and r["error_rate"]["current_text"] == "2.50%"
    # latency going down by 35% is an improvement, never a regression
    assert r["p50"]["change_pct"] == pytest.approx(-34.88, abs=0.01)
    assert r["p50"]["improvement"] and not r["p50"]["regression"]
    assert not r["p90"]["regression"] and r["p90"]["change_pct"] == 0
    assert c["regressions"] == ["throughput", "error rate", "p99"] and not c["passed"]


def test_threshold_decides(tmp_path):
    base, cur = copy_run(tmp_path, "base"), regressed(tmp_path)
    c = C.compare(load_results(base), load_results(cur), threshold_pct=60)
    assert c["regressions"] == ["error rate"]         # +900%; p99 +50% and rps -30% are within 60%
    c = C.compare(load_results(base), load_results(cur), threshold_pct=1000)
    assert c["regressions"] == []


def test_error_rate_noise_floor(tmp_path):
    base = copy_run(tmp_path, "base")
    edit_summary(base, error_count=0, errors={}, ok=800)
    cur = copy_run(tmp_path, "cur")
    edit_summary(cur, error_count=1, errors={"reset": 1}, ok=799)   # 0 -> 0.125%: beyond 0.1 pp
    c = C.compare(load_results(base), load_results(cur))
    r = rows_by_name(c)["error_rate"]
    assert r["change_text"] == "new (was 0)" and r["change_pct"] is None and r["regression"]
    edit_summary(cur, completed=100_000)                             # 0 -> 0.001%: noise
    c = C.compare(load_results(base), load_results(cur))
    assert not rows_by_name(c)["error_rate"]["regression"]


def test_per_scenario_comparison(tmp_path):
    base = with_scenarios(tmp_path, "base")
    cur = with_scenarios(tmp_path, "cur")
    scenarios = json.loads(json.dumps(SCENARIOS))
    scenarios["checkout"]["latency_ms"]["p99"] = 8.0       # +53.8%
    scenarios["search"]["latency_ms"]["p95"] = 4.9         # +1%: within the threshold
    del scenarios["browse"]
    scenarios["admin"] = scenarios["search"]
    edit_summary(cur, scenarios=scenarios)
    c = C.compare(load_results(base), load_results(cur))
    r = rows_by_name(c)
    assert r["checkout: p99"]["regression"] and r["checkout: p99"]["current"] == 8.0
    assert not r["search: p95"]["regression"]
    assert "browse: p99" not in r and "admin: p99" not in r
    assert c["regressions"] == ["checkout: p99"]
    assert "scenario 'browse' only in the baseline" in c["differences"]
    assert "scenario 'admin' only in the current run" in c["differences"]
    # scenario throughput: requests over the run's duration
    assert r["checkout: rps"]["baseline"] == pytest.approx(250 / 3.995032)


def test_differences_in_configuration_are_reported(tmp_path):
    base, cur = copy_run(tmp_path, "base"), copy_run(tmp_path, "cur")
    edit_summary(cur, rate_target=400.0, saturated=True)
    c = C.compare(load_results(base), load_results(cur))
    assert "rate_target: 200.0 (baseline) vs 400.0 (current)" in c["differences"]
    assert any("current run was saturated" in d for d in c["differences"])


def test_output_formats(tmp_path):
    c = C.compare(load_results(copy_run(tmp_path, "base")), load_results(regressed(tmp_path)))
    text = comparison.format_text(c)
    assert "Compared with baseline" in text and "(regression threshold 15%)" in text
    line = next(l for l in text.splitlines() if l.strip().startswith("p99 ms"))
    assert line.split() == ["p99", "ms", "5.099", "7.649", "+50.0%", "REGRESSION"]
    assert "3 regression(s): throughput, error rate, p99" in text
    md = comparison.format_markdown(c)
    assert md.startswith("## ❌ Compared with baseline")
    assert "| p99 (ms) | 5.099 | 7.649 | +50.0% | ❌ regression |" in md.splitlines()
    assert "| throughput (req/s) | 200.2 | 140.2 | -30.0% | ❌ regression |" in md.splitlines()
    assert "| p50 (ms) | 4.607 | 4.607 | +0.0% |  |" in md.splitlines()
    html = comparison.format_html(c)
    assert html.startswith("<!DOCTYPE html>")
    assert ('<tr class="fail"><td>p99 (ms)</td><td>5.099</td><td>7.649</td><td>+50.0%</td>'
            '<td class="t">REGRESSION</td></tr>') in html


def cli():
    group = click.Group("stressx")
    cli_reports.register(group)
    return group


def test_compare_command(tmp_path):
    base, cur = copy_run(tmp_path, "base"), regressed(tmp_path)
    res = CliRunner().invoke(cli(), ["compare", str(base), str(cur)])
    assert res.exit_code == 3, res.output
    assert "REGRESSION" in res.output
    res = CliRunner().invoke(cli(), ["compare", str(base), str(cur), "--threshold", "1000%"])
    assert res.exit_code == 0 and "no regression" in res.output
    res = CliRunner().invoke(cli(), ["compare", str(base), str(cur), "--format", "md"])
    assert res.exit_code == 3 and "| p99 (ms) | 5.099 | 7.649 | +50.0% | ❌ regression |" in res.output
    out = tmp_path / "cmp.html"
    res = CliRunner().invoke(cli(), ["compare", str(base), str(cur), "-f", "html", "-o", str(out)])
    assert res.exit_code == 3 and out.read_text().startswith("<!DOCTYPE html>")
    res = CliRunner().invoke(cli(), ["compare", str(base), str(cur), "--threshold", "a lot"])
    assert res.exit_code == 2 and "--threshold: expected a regression threshold" in res.output
    res = CliRunner().invoke(cli(), ["compare", "nothing-saved", str(cur)])
    assert res.exit_code == 2 and "BASELINE: 'nothing-saved' is neither" in res.output


def test_named_baselines(tmp_path, baselines):
    run = copy_run(tmp_path, "run1")
    (run / "report.md").write_text("not copied")
    res = CliRunner().invoke(cli(), ["baseline", "save", "main", str(run)])
    assert res.exit_code == 0 and f"saved baseline main: {baselines / 'main'}" in res.output
    saved = sorted(p.name for p in (baselines / "main").iterdir())
    assert saved == ["baseline.json", "histograms.json", "intervals.arrows", "manifest.json",
                     "shard_intervals.arrows", "summary.json"]
    assert json.loads((baselines / "main" / "baseline.json").read_text())["source"] == str(run.resolve())
    res = CliRunner().invoke(cli(), ["baseline", "list"])
    assert res.exit_code == 0
    line = res.output.splitlines()[1].split()
    assert line[0] == "main" and line[3:6] == ["200.2", "5.099", "http://127.0.0.1:38733/api/items"]
    # save again under the same name: replaced, not merged
    edit_summary(run, rps=100.0)
    assert CliRunner().invoke(cli(), ["baseline", "save", "main", str(run)]).exit_code == 0
    assert json.loads((baselines / "main" / "summary.json").read_text())["rps"] == 100.0
    assert [p.name for p in baselines.iterdir()] == ["main"]
    # compare against the name
    res = CliRunner().invoke(cli(), ["compare", "main", str(regressed(tmp_path))])
    assert res.exit_code == 3 and "Compared with baseline main" in res.output
    # bad names and directories
    res = CliRunner().invoke(cli(), ["baseline", "save", "../evil", str(run)])
    assert res.exit_code == 2 and "baseline name '../evil'" in res.output
    res = CliRunner().invoke(cli(), ["baseline", "save", "x", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a readable stressx results directory" in res.output
    with pytest.raises(ConfigError, match=r"--baseline: 'other' is neither .* \(saved: main\)"):
        C.resolve_baseline("other")


def test_baseline_list_when_empty():
    res = CliRunner().invoke(cli(), ["baseline", "list"])
    assert res.exit_code == 0 and res.output.startswith("no baselines in ")


def test_after_run_compares_with_the_baseline(tmp_path):
    C.save_baseline("nightly", copy_run(tmp_path, "first"))
    cur = regressed(tmp_path)
    lines = []
    opts = dict(baseline="nightly", report="md,html,junit,json",
                threshold=("rps > 0", "error_rate < 5%", "ok:p99 < 10s"))
    cli_reports.companions_for(**opts)                       # validated before the run
    code = cli_reports.after_run(load_results(cur).summary, cur,
                                 echo=lines.append, **opts)
    assert code == 3                                         # thresholds pass; p99 regressed
    comparison = json.loads((cur / "comparison.json").read_text())
    assert comparison["baseline"]["name"] == "nightly" and comparison["regressions"]
    assert any("Compared with baseline nightly" in line for line in lines)
    md = (cur / "report.md").read_text()
    assert md.startswith("## ✅ stressx: thresholds passed · ❌ 3 regression(s) against the baseline")
    assert "### ❌ Compared with baseline nightly" in md
    assert 'id="comparison"' in (cur / "report.html").read_text()
    assert '<testsuite name="stressx.baseline" tests="9" failures="3"' in (cur / "junit.xml").read_text()
    assert json.loads((cur / "report.json").read_text())["comparison"]["regressions"] == [
        "throughput", "error rate", "p99"]
    # regression threshold is an option too
    code = cli_reports.after_run(load_results(cur).summary, cur,
                                 echo=lines.append, baseline="nightly",
                                 regression_threshold="1000%")
    assert code == 0
    assert report.load(cur).comparison["passed"] is True
