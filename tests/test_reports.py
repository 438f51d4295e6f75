"""Reports built from a results directory alone: JSON, Markdown, HTML (opened in a real
headless Chromium), JUnit (validated against its schema), the terminal summary, and the
`stressx report` command."""
import json
import os
import re
import select
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pyarrow as pa
import pytest
import xmlschema
from click.testing import CliRunner
from report_fixtures import RUN_V1, copy_run, edit_summary, with_scenarios
from stressx import report
from stressx.cli import reports as cli_reports
from stressx.judge import thresholds as T
from stressx.report.text import format_summary, format_thresholds
from stressx.results.files import load_results

XSD = Path(__file__).parent / "fixtures" / "junit.xsd"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def judged(d: Path, *exprs, criteria=None) -> report.ReportData:
    """Evaluate thresholds into d/thresholds.json, as a run does, and load the report data
    (the summary as read back: run_v1 predates all-requests latency, derived when read)."""
    s = load_results(d).summary
    T.save(d, T.evaluate(T.resolve(exprs, criteria), s), criteria_name=criteria)
    return report.load(d)


@pytest.fixture
def run_dir(tmp_path):
    return copy_run(tmp_path)


# -- registry and loading ----------------------------------------------------------------------

def test_registry_and_formats():
    assert list(report.REPORTERS) == ["json", "md", "html", "junit"]
    assert report.parse_formats("json, MD,junit") == ["json", "md", "junit"]
    assert report.parse_formats(["md", "md,html"]) == ["md", "html"]
    assert report.parse_formats("all") == ["json", "md", "html", "junit"]
    with pytest.raises(ValueError, match="--format: unknown report format 'pdf'"):
        report.parse_formats("md,pdf")


def test_build_from_the_directory_alone(run_dir):
    judged(run_dir, "p99<5ms", criteria="ci")
    written = report.build(run_dir, ["json", "md", "html", "junit"])
    assert {p.name for p in written.values()} == {"report.json", "report.md", "report.html", "junit.xml"}
    assert all(p.parent == run_dir and p.stat().st_size > 500 for p in written.values())
    # no thresholds.json at all: reports still build, and say no thresholds were set
    (run_dir / "thresholds.json").unlink()
    out = report.build(run_dir, ["md"], run_dir / "out")["md"]
    assert "no thresholds set" in out.read_text()


# -- JSON --------------------------------------------------------------------------------------

def test_json_report(tmp_path):
    d = with_scenarios(tmp_path)
    doc = json.loads(report.REPORTERS["json"].render(judged(d, "p99<5ms", "browse:p99<10ms")))
    assert doc["format_version"] == 1 and doc["verdict"] == "failed"
    assert doc["summary"]["requests"] == 800 and doc["summary"]["latency_ms"]["p99"] == 5.099
    assert doc["scenarios"]["checkout"]["errors"] == {"timeout": 2}
    assert [t["passed"] for t in doc["thresholds"]] == [False, True]
    # every interval row is the one in intervals.arrows, as plain pyarrow reads it
    with pa.ipc.open_stream(str(d / "intervals.arrows")) as reader:
        rows = reader.read_all().to_pylist()
    assert len(doc["intervals"]) == len(rows) == 5
    for got, want in zip(doc["intervals"], rows):
        assert (got["t_s"], got["sent"], got["ok"], got["errors_timeout"], got["latency_ms_p99"]) == (
            want["t_s"], want["sent"], want["ok"], want["errors_timeout"], want["latency_ms_p99"])
        assert got["status"] == {str(code): n for code, n in want["status"]}
    assert sum(r["completed"] for r in doc["intervals"]) == 800
    assert doc["comparison"] is None and doc["manifest"]["config"]["timeout"] == 0.005


# -- Markdown ----------------------------------------------------------------------------------

def test_markdown_golden(run_dir):
    md = report.REPORTERS["md"].render(judged(run_dir, "p99<5ms", criteria="ci"))
    lines = md.splitlines()
    assert lines[0] == "## ❌ stressx: thresholds FAILED"
    assert "open model, 200 req/s target, 2 worker(s), 4.00 s" in lines[2]
    assert "### Thresholds: 5 passed, 1 failed" in lines
    for row in ["| ✅ | `error_rate < 1%` | 0.25% | criteria ci |",
                "| ✅ | `p95 < 2 s` | 4.787 ms | criteria ci |",
                "| ✅ | `status_5xx == 0` | 0 | criteria ci |",
                "| ✅ | `saturated == 0` | 0 | criteria ci |",
                "| ❌ | `p99 < 5 ms` | 5.099 ms | --threshold |",
                "|  | min | mean | p50 | p90 | p95 | p99 | p99.9 | max |",
                "| ok, from intended send | 4.330 | 4.613 | 4.607 | 4.747 | 4.787 | 5.099 | 7.703 | 8.499 |",
                "| ok, uncorrected (actual send) | 4.292 | 4.532 | 4.535 | 4.647 | 4.679 | 4.931 | 6.339 | 7.650 |",
                # every request: the 2 timeouts at the 5 ms deadline, censored above p99.75
                "| all requests | 4.330 | ≥ 4.614 | 4.607 | 4.751 | 4.787 | 5.099 | ≥ 7.703 | ≥ 8.499 |",
                "| failures | 5.000 | 5.002 | 5.000 | 5.000 | 5.000 | 5.000 | 5.000 | 5.000 |",
                "**Censored:** 0.25% timed out at 5 ms: percentiles above p99.75 are ≥ 5 ms (censored).",
                "| 800 | 800 | 798 | 2 | 0.25% | 200.2 | 200.2 | 200 |",
                "| timeout | 2 | 0.25% |",
                "Status codes: `200` × 798"]:
        assert row in lines, row
    assert "### Scenarios" not in md and "[!WARNING]" not in md


def test_markdown_scenarios_and_alerts(tmp_path):
    d = with_scenarios(tmp_path)
    edit_summary(d, saturated=True, saturation={"reasons": ["achieved 150.0/s of the 200/s asked"]},
                 interrupted="SIGINT", aborted="threshold p99 < 1 ms failed", insecure=True)
    md = report.REPORTERS["md"].render(judged(d, "search:baseline_violations < 5%"))
    assert md.startswith("## ❌ stressx: thresholds FAILED")
    for line in ["> [!WARNING]",
                 "> - **INTERRUPTED by SIGINT**: the run was cut short; figures cover 4.00 s",
                 "> - **ABORTED**: threshold p99 < 1 ms failed",
                 "> - **SATURATED**: the client did not keep the requested schedule: achieved 150.0/s of the 200/s asked",
                 "> - **INSECURE**: TLS certificate verification was off (--insecure)",
                 "| ❌ | `search: baseline_violations < 5%` | 24% | --threshold |",
                 "| scenario | requests | ok | errors | error rate | p50 ms | p95 ms | p99 ms | all requests p99 ms | baseline violations |",
                 "| `browse` | 500 | 500 | 0 | 0.00% | 4.601 | 4.780 | 5.011 | 5.011 | 4 (0.80%) |",
                 # synthetic: no histogram to time checkout's 2 timeouts from
                 "| `checkout` | 250 | 248 | 2 | 0.80% | 4.620 | 4.810 | 5.203 | n/a | 0 (0.00%) |",
                 "| `search` | 50 | 50 | 0 | 0.00% | 4.650 | 4.850 | 5.300 | 5.300 | 12 (24.00%) |"]:
        assert line in md.splitlines(), line


def test_terminal_summary_shows_the_markdown_key_figures(tmp_path):
    d = with_scenarios(tmp_path)
    data = judged(d, "p99<5ms")
    text = format_summary(data.summary, str(d)) + "\n" + format_thresholds(data.thresholds)
    md = report.REPORTERS["md"].render(data)
    for figure in ["4.607", "4.787", "5.099", "7.703", "8.499", "200.2", "0.25%", "timeout",
                   "4.620", "5.203", "p99 < 5 ms", "5.099 ms"]:
        assert figure in text and figure in md, figure
    assert re.search(r"checkout\s+250\s+248\s+2\s+0.80%\s+4.620\s+4.810\s+5.203\s+n/a\s+0", text)
    assert "  censored: 0.25% timed out at 5 ms: percentiles above p99.75 are ≥ 5 ms (censored)" in text
    assert "FAIL  p99 < 5 ms" in text and "0 passed, 1 failed: exit code 3" in text


# -- HTML --------------------------------------------------------------------------------------

CHARTS = ["latency-over-time", "throughput-over-time", "latency-distribution", "error-breakdown"]
_SPEC = re.compile(r'<script type="application/json" data-spec-for="([^"]+)">(.*?)</script>', re.S)


def chart_specs(page: str) -> dict:
    """The plotly specs a page embeds, by chart id."""
    return {cid: json.loads(text) for cid, text in _SPEC.findall(page)}


def without_scripts(page: str) -> str:
    return re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S)


def test_html_content(tmp_path):
    d = with_scenarios(tmp_path)
    page = report.REPORTERS["html"].render(judged(d, "p99<5ms", criteria="ci"))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for chart in CHARTS + ["scenario-success"]:
        assert f'data-chart="{chart}"' in page, chart
    assert '<span class="verdict failed" id="verdict">THRESHOLDS FAILED</span>' in page
    assert ('<td>FAIL</td><td class="t">p99 &lt; 5 ms</td><td>5.099 ms</td>'
            '<td class="t">--threshold</td>') in page
    assert ("<td>ok, from intended send</td><td>4.330</td><td>4.613</td><td>4.607</td><td>4.747</td>"
            "<td>4.787</td><td>5.099</td><td>7.703</td><td>8.499</td>") in page
    assert "<td>checkout</td><td>250</td><td>248</td><td>2</td><td>0.80%</td>" in page
    assert ("<b>Censored:</b> 0.25% timed out at 5 ms: percentiles above p99.75 are ≥ 5 ms "
            "(censored).") in page
    assert '<div class="k">success rate</div><div class="v">99.75%</div>' in page
    # the throughput chart draws the target as a dashed line beside what was achieved
    specs = chart_specs(page)
    assert set(CHARTS + ["scenario-success"]) <= set(specs)
    traces = {t["name"]: t for t in specs["throughput-over-time"]["data"]}
    assert traces["target req/s"]["line"]["dash"] == "dash"
    assert traces["completed req/s"]["line"]["dash"] == "solid"
    # self-contained: nothing is fetched (CSP forbids it, and nothing tries); the only code
    # is the two inline scripts the CSP names by hash: plotly.js and the chart drawing
    from stressx.report.charts import DRAW_SCRIPT, plotly_js
    from stressx.report.page import csp
    policy = csp((plotly_js(), DRAW_SCRIPT))
    assert f'content="{policy}"' in page and policy.startswith("default-src 'none';")
    assert policy.count("'sha256-") == 2 and "unsafe" not in policy.split("script-src")[1]
    assert re.findall(r"<script>", page) == ["<script>", "<script>"]
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<script""", without_scripts(page), re.I)
    # sections whose data the run lacks are left out
    assert 'id="host-metrics"' not in page and 'id="scaling"' not in page


def test_html_renders_host_metrics_only_when_present(run_dir):
    # the host sampler's output (hostmetrics.py): 100 ms samples in host.arrows, extremes and
    # per-burner verdicts under summary["host"]; written with the sampler's own schema, so a
    # renamed column cannot leave this test reading a file the sampler never writes
    from stressx.hostload.hostmetrics import host_schema
    samples = [{"t_s": 0.05 + i / 10, "interval_s": 0.1, "cpu_pct": 30.0 + i,
                "mem_used_pct": 41.0, "shards_cpu_pct": 12.5, "burners_cpu_pct": None}
               for i in range(40)]
    assert set(samples[0]) <= set(host_schema().names)
    table = pa.Table.from_pylist(samples, schema=host_schema())
    with pa.OSFile(str(run_dir / "host.arrows"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    edit_summary(run_dir, host={"samples": 40, "cpu_pct": {"mean": 49.5, "min": 30.0, "max": 69.0},
                                "mem_used_pct": {"mean": 41.0, "min": 41.0, "max": 41.0},
                                "burners": {"cpu": {"kind": "cpu", "unit": "% of a core"}}})
    data = report.load(run_dir)
    assert len(data.host_samples) == 40
    page = report.REPORTERS["html"].render(data)
    assert 'id="host-metrics"' in page and 'data-chart="host-metrics"' in page
    host = {t["name"]: t for t in chart_specs(page)["host-metrics"]["data"]}
    assert set(host) == {"host CPU %", "memory used %", "shards CPU % of a core"}  # burners: never sampled
    assert host["host CPU %"]["y"] == [s["cpu_pct"] for s in samples]
    assert host["host CPU %"]["x"] == [s["t_s"] for s in samples]
    assert "<h3>cpu_pct</h3>" in page and "<td>max</td><td>69</td>" in page
    assert 'id="scaling"' not in page
    md = report.REPORTERS["md"].render(data)
    assert "Host: CPU mean 49.5%, max 69%; memory used max 41%" in md


def test_scaling_test_reports_every_level_with_the_analysis(tmp_path):
    # `stressx scaling` writes BASE/scaling.json and one results directory per level
    base = tmp_path / "scaling"
    base.mkdir()
    levels = []
    for n, rps in ((2, 200.249), (4, 360.5)):
        copy_run(base, f"instances-{n}")
        levels.append({"instances": n, "rate_target": n * 100.0, "rps": rps, "ok": 798,
                       "error_count": 2, "error_rate": 0.0025, "saturated": n == 4,
                       "latency_ms": {"p50": 4.607, "p99": 5.099 * n / 2}, "exit_code": 0,
                       "rps_per_instance": round(rps / n, 3),
                       "efficiency": round((rps / n) / 100.1245, 4)})
    (base / "scaling.json").write_text(json.dumps({"rate_per_instance": 100.0, "levels": levels}))
    written = report.build(base, ["html", "md"])
    assert sorted(written) == ["instances-2/html", "instances-2/md", "instances-4/html", "instances-4/md"]
    page = written["instances-4/html"].read_text()
    assert 'data-chart="scaling"' in page and 'data-chart="scaling-efficiency"' in page
    assert ('<tr class="this"><td>4</td><td>400</td><td>360.5</td><td>90.125</td><td>0.90</td>'
            '<td>0.25%</td><td>4.607</td><td>10.198</td><td class="t">yes</td></tr>') in page
    assert '<tr><td>2</td>' in page
    assert 'id="scaling"' not in report.REPORTERS["html"].render(report.load(copy_run(tmp_path)))
    res = CliRunner().invoke(cli(), ["report", str(base), "-f", "junit"])
    assert res.exit_code == 0 and "instances-4/junit:" in res.output
    assert (base / "instances-2" / "junit.xml").exists()


def test_html_escapes_what_the_run_recorded(run_dir):
    edit_summary(run_dir, url="http://127.0.0.1:1/<script>alert(1)</script>",
                 errors={"<b>odd</b>": 2})
    page = report.REPORTERS["html"].render(report.load(run_dir))
    text = without_scripts(page)
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;odd&lt;/b&gt;" in text
    assert page.count("<script") == 2 + len(chart_specs(page))     # plotly.js, the drawing, specs
    # in a chart, a label is escaped for plotly (which reads <b>, <a href> in labels)
    assert chart_specs(page)["error-breakdown"]["data"][0]["y"] == ["&lt;b&gt;odd&lt;/b&gt;"]


def test_every_chart_spec_is_valid_plotly(tmp_path):
    """Each embedded spec passes plotly's own figure validation (a misspelt property raises)."""
    import plotly.graph_objects as go
    d = with_scenarios(tmp_path)
    page = report.REPORTERS["html"].render(judged(d, "p99<5ms"))
    specs = chart_specs(page)
    assert len(specs) >= 5
    for cid, spec in specs.items():
        go.Figure(data=spec["data"], layout=spec["layout"])
        assert spec["config"]["displaylogo"] is False, cid


def test_live_bundle_specs_name_the_columns_they_plot(run_dir):
    """What a live page starts from: plotly.js and the interval charts, each trace naming its
    row columns in `meta`, so rows appended later land in the right trace."""
    from stressx.report.charts import MIN_CHART_INTERVAL_S, live_bundle, plotly_js
    rows = report.load(run_dir).intervals
    js, specs = live_bundle(rows)
    assert js is plotly_js() and js.startswith("/**") and "Plotly" in js[:2000]
    whole = [r for r in rows if r["interval_s"] >= MIN_CHART_INTERVAL_S]
    assert set(specs) == {"latency-over-time", "throughput-over-time"}
    for spec in specs.values():
        for trace in spec["data"]:
            assert trace["x"] == [r[trace["meta"]["x"]] for r in whole]
            assert trace["y"] == [r[trace["meta"]["y"]] for r in whole], trace["name"]
    empty = live_bundle()[1]                     # before the first row: empty traces
    assert all(t["x"] == [] for spec in empty.values() for t in spec["data"])


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4): loads a
    page, records console messages, log entries and every request, and evaluates script in
    the page (DevTools evaluation is not subject to the page's CSP)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]

    def __init__(self, user_data_dir: Path, timeout_s: float = 60.0):
        to_r, self._w = os.pipe()
        self._r, from_w = os.pipe()

        def child():  # the DevTools pipe: the browser reads fd 3, writes fd 4
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *self.FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe",
             "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=child)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.events = b"", 0, []
        self.deadline = time.monotonic() + timeout_s

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read()
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_event(self, method: str) -> dict:
        seen = [m for m in self.events if m.get("method") == method]
        while not seen:
            m = self._read()
            self.events.append(m)
            if m.get("method") == method:
                seen.append(m)
        return seen[0]

    def open(self, url: str) -> str:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session)
        self.send("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired")
        return session

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


def _need_chromium():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test the HTML report in Chromium, and {CHROMIUM} is missing "
                        "(.ci/run installs the Debian package `chromium`)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


_CHARTS_JS = """JSON.stringify(Array.from(document.querySelectorAll('div.chart')).map(el => {
  const box = el.getBoundingClientRect();
  return {chart: el.dataset.chart, width: box.width, height: box.height,
          svg: el.querySelectorAll('svg.main-svg').length,
          drawn: Array.from(el.querySelectorAll('.scatterlayer .trace, .barlayer .point')).map(m => {
            const b = m.getBBox(); return [b.width, b.height];
          }),
          traces: (el.data || []).map(t => ({name: t.name, x: Array.from(t.x || []),
                                             y: Array.from(t.y || [])}))};
}))"""


def _load_offline(browser, url: str) -> str:
    """Open `url` with the browser's network emulated offline: a page that needed anything
    from the network would fail to draw."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session)
    browser.send("Network.emulateNetworkConditions", session, offline=True, latency=0,
                 downloadThroughput=-1, uploadThroughput=-1)
    browser.send("Page.navigate", session, url=url)
    browser.wait_event("Page.loadEventFired")
    return session


def test_html_report_in_headless_chromium(tmp_path):
    """The page loads offline in a real browser with no request beyond itself, no console
    message or CSP violation; every chart is drawn by plotly with its series and bars, and
    the plotted points are the interval rows' values."""
    _need_chromium()
    d = with_scenarios(tmp_path)
    judged(d, "p99<5ms", criteria="ci")
    page = report.build(d, ["html"])["html"]
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        session = _load_offline(browser, page.as_uri())
        charts = json.loads(browser.evaluate(session, _CHARTS_JS))
        title = browser.evaluate(session, "document.title")
        verdict = browser.evaluate(session, "document.getElementById('verdict').textContent")
        png = browser.send("Page.captureScreenshot", session, captureBeyondViewport=True)["data"]
    finally:
        browser.close()
    assert title.startswith("stressx report: GET http://127.0.0.1:38733/api/items")
    assert verdict == "THRESHOLDS FAILED"
    by_id = {c["chart"]: c for c in charts}
    assert set(CHARTS + ["scenario-success"]) <= set(by_id)
    for c in charts:
        assert c["width"] > 300 and c["height"] > 80, c
        assert c["svg"] >= 1 and c["drawn"] and all(w > 0 for w, _ in c["drawn"]), c
    names = lambda chart: [t["name"] for t in by_id[chart]["traces"]]
    assert names("latency-over-time") == ["p50", "p90", "p99", "p99.9", "max"]
    assert names("throughput-over-time") == ["completed req/s", "sent req/s", "target req/s"]
    assert by_id["scenario-success"]["traces"][0]["y"] == ["browse", "checkout", "search"]
    assert by_id["error-breakdown"]["traces"][0]["y"] == ["timeout"]
    # the plotted values are the interval rows' (the partial last interval left out)
    rows = [r for r in report.load(d).intervals if r["interval_s"] >= 0.25]
    assert len(rows) >= 4
    latency = {t["name"]: t for t in by_id["latency-over-time"]["traces"]}
    for name, col in (("p50", "latency_ms_p50"), ("p99", "latency_ms_p99"), ("max", "latency_ms_max")):
        assert latency[name]["x"] == [r["t_s"] for r in rows]
        assert latency[name]["y"] == [r[col] for r in rows], name
    throughput = {t["name"]: t for t in by_id["throughput-over-time"]["traces"]}
    assert throughput["completed req/s"]["y"] == [r["rps"] for r in rows]
    assert throughput["target req/s"]["y"] == [r["rate_target"] for r in rows]
    requested = [e["params"]["request"]["url"] for e in browser.events
                 if e.get("method") == "Network.requestWillBeSent"]
    assert requested == [page.as_uri()]
    problems = [e for e in browser.events if e.get("method") in (
        "Network.loadingFailed", "Runtime.consoleAPICalled", "Runtime.exceptionThrown",
        "Log.entryAdded")]
    assert problems == []
    assert len(png) > 10_000     # a screenshot of the whole page was rendered


def test_html_report_dump_dom(tmp_path):
    """The plain command-line route: --dump-dom prints the DOM Chromium built, every chart
    drawn by plotly in it, and with logging on, no console message (a blocked fetch or a CSP
    refusal would log one)."""
    _need_chromium()
    d = copy_run(tmp_path)
    page = report.build(d, ["html"])["html"]
    proc = subprocess.run([CHROMIUM, *Chromium.FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for chart in CHARTS:
        m = re.search(rf'<div class="chart[^"]*" id="{chart}" data-chart="{chart}"[^>]*>(.*?)'
                      rf'<script type="application/json"', proc.stdout, re.S)
        assert m and 'class="main-svg"' in m.group(1), chart
    assert proc.stdout.count('class="trace scatter') >= 10
    assert ":CONSOLE" not in proc.stderr, proc.stderr[-2000:]


# -- JUnit -------------------------------------------------------------------------------------

def test_junit_validates_against_the_schema(tmp_path):
    schema = xmlschema.XMLSchema(str(XSD))
    d = with_scenarios(tmp_path)
    edit_summary(d, interrupted="SIGTERM")
    xml = report.REPORTERS["junit"].render(
        judged(d, "p99<5ms", "checkout:p99<5ms", "browse:p99<6ms", criteria="ci"))
    schema.validate(xml)
    root = ET.fromstring(xml)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["stressx.thresholds", "stressx.scenarios", "stressx.run"]
    th = suites["stressx.thresholds"]
    assert (th.get("tests"), th.get("failures")) == ("8", "2")
    names = [c.get("name") for c in th.findall("testcase")]
    assert names == ["error_rate < 1%", "p95 < 2 s", "p99 < 5 s", "status_5xx == 0",
                     "saturated == 0", "p99 < 5 ms", "checkout: p99 < 5 ms", "browse: p99 < 6 ms"]
    failure = th.findall("testcase")[5].find("failure")
    assert failure.get("message") == "p99 < 5 ms: FAILED (actual 5.099 ms)"
    sc = {c.get("name"): c for c in suites["stressx.scenarios"].findall("testcase")}
    assert list(sc) == ["browse", "checkout", "search"]
    assert sc["checkout"].find("failure") is not None and sc["browse"].find("failure") is None
    assert "requests 250, ok 248, errors 2 (0.80%)" in sc["checkout"].find("system-out").text
    run = suites["stressx.run"].find("testcase")
    assert run.find("failure").get("message").startswith("INTERRUPTED by SIGTERM")
    assert (root.get("tests"), root.get("failures")) == ("12", "4")


def test_junit_of_a_clean_run_has_no_failure(run_dir):
    xml = report.REPORTERS["junit"].render(judged(run_dir, criteria="ci"))
    xmlschema.XMLSchema(str(XSD)).validate(xml)
    root = ET.fromstring(xml)
    assert root.get("failures") == "0" and root.get("tests") == "6"


# -- the `stressx report` command --------------------------------------------------------------

def cli():
    group = click.Group("stressx")
    cli_reports.register(group)
    return group


def test_report_command_rebuilds_everything(run_dir):
    judged(run_dir, "p99<5ms")
    res = CliRunner().invoke(cli(), ["report", str(run_dir), "--format", "json,md,html,junit",
                                     "--out", str(run_dir / "reports")])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (run_dir / "reports").iterdir())
    assert files == ["junit.xml", "report.html", "report.json", "report.md"]
    # the stored verdict made it into every format
    assert "`p99 < 5 ms`" in (run_dir / "reports" / "report.md").read_text()
    assert 'name="p99 &lt; 5 ms"' in (run_dir / "reports" / "junit.xml").read_text()


def test_report_command_can_judge_thresholds_later(run_dir):
    res = CliRunner().invoke(cli(), ["report", str(run_dir), "-f", "md", "--criteria", "ci"])
    assert res.exit_code == 0, res.output
    assert "5 passed, 0 failed" in res.output
    assert "✅ stressx: thresholds passed" in (run_dir / "report.md").read_text()
    res = CliRunner().invoke(cli(), ["report", str(run_dir), "-f", "md", "--threshold", "p99<5ms"])
    assert res.exit_code == 3 and "FAIL  p99 < 5 ms" in res.output


def test_report_command_bad_input_exits_2(tmp_path, run_dir):
    res = CliRunner().invoke(cli(), ["report", str(run_dir), "--threshold", "p99 < 5 parsecs"])
    assert res.exit_code == 2
    assert "stressx: error: --threshold: 'p99 < 5 parsecs': not a threshold expression" in res.output
    res = CliRunner().invoke(cli(), ["report", str(run_dir), "--format", "pdf"])
    assert res.exit_code == 2 and "unknown report format 'pdf'" in res.output
    res = CliRunner().invoke(cli(), ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "RESULTS_DIR: cannot read" in res.output


def test_fixture_untouched():
    assert not (RUN_V1 / "thresholds.json").exists() and not (RUN_V1 / "report.md").exists()


def test_report_on_a_sequence_base_directory(tmp_path):
    """`stressx run --config` with tests: writes one directory per test; `stressx report BASE`
    reports each."""
    import sys
    src = Path(__file__).parent / "fixtures" / "run_v1"
    for name in ("01-warmup", "02-ramp"):
        shutil.copytree(src, tmp_path / name)
    r = subprocess.run([sys.executable, "-m", "stressx.cli", "report", str(tmp_path), "--format", "md"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in ("01-warmup", "02-ramp"):
        md = (tmp_path / name / "report.md").read_text()
        assert md.startswith("## stressx: run summary (no thresholds set)")
        assert f"results `{tmp_path / name}`" in md                     # each run's own report
        assert "| 800 | 800 | 798 | 2 | 0.25% | 200.2 | 200.2 | 200 |" in md.splitlines()
