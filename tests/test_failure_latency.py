"""Failures are timed (issue 9, item 3): every completed request has a latency, timeouts are
recorded at their deadline and marked censored, and percentile thresholds judge all requests
unless asked for `ok:` (successes only).

A real server on loopback that never answers every Nth request (it counts them), a real
`--timeout`, real shard processes, real files."""
from __future__ import annotations

import asyncio
import json

import pytest
import stressx
from stressx._testing.faults import LoopThread, format_url
from stressx.judge import thresholds as T
from stressx.results.censoring import censoring, decide, rank, sentence
from stressx.results.hdr import Histogram

from conftest import run_cli

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class StallEvery(LoopThread):
    """Answers at once, except every `every`-th request whose path starts with `prefix`:
    that one is never answered (the connection is held). Counts what it received."""

    def __init__(self, every: int, prefix: str = "/"):
        super().__init__()
        self.every, self.prefix = every, prefix.encode()
        self.requests = 0        # every request received
        self.matching = 0        # those under `prefix`
        self.stalled = 0
        self.port = 0

    @property
    def url(self) -> str:
        return format_url("http", "127.0.0.1", self.port)

    async def _start(self):
        srv = self

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                self.t, self.buf, self.stalled = transport, b"", False

            def data_received(self, data):
                self.buf += data
                while b"\r\n\r\n" in self.buf:
                    head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                    srv.requests += 1
                    path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
                    if path.startswith(srv.prefix):
                        srv.matching += 1
                        if srv.matching % srv.every == 0:
                            srv.stalled += 1
                            self.stalled = True
                    if not self.stalled:
                        self.t.write(OK)

        server = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _stop(self, server):
        server.close()


# -- the arithmetic, pure ------------------------------------------------------------------------

def test_censoring_marks_the_percentiles_ranked_among_the_timeouts():
    c = censoring(100, 20, 1000.0)
    assert c["count"] == 20 and c["fraction"] == 0.2 and c["bound_ms"] == 1000.0
    assert c["from_percentile"] == 80.0
    # p80 is the 80th value (a success), p90 .. max fall among the 20 timeouts
    assert c["keys"] == ["mean", "p90", "p95", "p99", "p999", "max"]
    assert c["text"] == "20% timed out at 1 s: percentiles above p80 are ≥ 1 s (censored)"
    assert censoring(100, 5, 1000.0)["keys"] == ["mean", "p99", "p999", "max"]   # p95: rank 95
    assert censoring(800, 2, 5.0)["keys"] == ["mean", "p999", "max"]
    assert censoring(4, 4, 250.0)["text"] == "100% timed out at 250 ms: every percentile is ≥ 250 ms (censored)"
    assert "min" in censoring(4, 4, 250.0)["keys"]
    assert censoring(100, 0, 1000.0) is None and censoring(0, 0, 1000.0) is None
    # the rank is the one the histogram reads percentiles at
    h = Histogram.from_values([1000] * 95 + [1_000_000] * 5)
    for p in (50, 90, 95, 99, 99.9):
        assert (h.value_at_percentile(p) == 1_000_000) == (rank(p, 100) > 95)
    assert sentence(0.0025, 5.0, 99.75) == "0.25% timed out at 5 ms: percentiles above p99.75 are ≥ 5 ms (censored)"


@pytest.mark.parametrize("op, limit, strict, verdict", [
    # a timeout recorded at its 1 s deadline: it took longer than 1 s (strict)
    ("<", 50.0, True, False), ("<=", 1000.0, True, False),   # above the limit for certain
    ("<", 5000.0, True, None), ("<=", 5000.0, True, None),   # under 5 s or not: undecided
    (">", 500.0, True, True), (">", 1000.0, True, True), (">=", 1000.0, True, True),
    (">", 5000.0, True, None), ("==", 50.0, True, False), ("!=", 50.0, True, True),
    ("==", 1000.0, True, False), ("==", 5000.0, True, None),
    # a recorded value that is only a lower bound (at least 1 s)
    ("<=", 1000.0, False, None), (">", 1000.0, False, None), (">=", 1000.0, False, True),
    ("!=", 1000.0, False, None), ("<", 1000.0, False, False),
])
def test_a_censored_value_is_judged_on_what_holds_for_every_real_value(op, limit, strict, verdict):
    assert decide(op, 1000.0, limit, strict) is verdict


def test_threshold_grammar_ok_and_scenarios():
    p = T.parse_threshold
    assert (p("p99<50ms").basis, p("p99<50ms").scenario) == ("all", None)
    assert (p("ok:p99<50ms").basis, p("ok:p99<50ms").scenario) == ("ok", None)
    assert (p("all:p99<50ms").basis, p("all:p99<50ms").scenario) == ("all", None)
    assert (p("search:p99<50ms").basis, p("search:p99<50ms").scenario) == ("all", "search")
    assert (p("search:ok:p99<50ms").basis, p("search : OK : p99<50ms").scenario) == ("ok", "search")
    assert (p("ok:all:p99<1s").basis, p("ok:all:p99<1s").scenario) == ("all", "ok")  # a scenario named ok
    assert p("ok:p99<50ms").text == "ok:p99 < 50 ms" and p("p99<50ms").text == "p99 < 50 ms"
    assert p("search:ok:p999<1s").text == "search: ok:p99.9 < 1 s"
    assert p("error_rate<1%").basis is None
    with pytest.raises(T.ConfigError, match=r"'ok:' chooses the requests a latency is measured on; error_rate is not a latency"):
        p("ok:error_rate<1%")


def test_thresholds_judge_all_requests_and_say_when_censored():
    s = {"completed": 100, "ok": 80, "error_count": 20, "errors": {"timeout": 20},
         "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 10.0, "max": 12.0, "mean": 1.5},
         "all_latency_ms": {"p50": 1.2, "p90": 1000.0, "p99": 1000.0, "max": 1000.0, "mean": 201.0},
         "all_latency_censored": censoring(100, 20, 1000.0)}
    got = {r.expression: r for r in T.evaluate(
        [T.parse_threshold(e) for e in ("p99<50ms", "ok:p99<50ms", "p99<5s", "p99>500ms", "p50<5ms",
                                        "mean<100ms")], s)}
    assert not got["p99<50ms"].passed and got["p99<50ms"].censored and got["p99<50ms"].actual == 1000.0
    assert got["p99<50ms"].message == ("p99 < 50 ms: FAILED (actual ≥ 1 s, censored: 20% timed out "
                                       "at 1 s: percentiles above p80 are ≥ 1 s (censored))")
    assert got["ok:p99<50ms"].passed and got["ok:p99<50ms"].actual == 10.0 and not got["ok:p99<50ms"].censored
    assert not got["p99<5s"].passed and "cannot be decided" in got["p99<5s"].message
    assert "set --timeout above 5 s to measure it" in got["p99<5s"].message
    assert got["p99>500ms"].passed and got["p99>500ms"].censored
    assert got["p50<5ms"].passed and not got["p50<5ms"].censored and got["p50<5ms"].actual == 1.2
    assert not got["mean<100ms"].passed   # a mean over timeouts at the deadline: at least 201 ms


def test_a_summary_without_all_requests_latency():
    """Written before failures were timed: without failures it is the successes' latency;
    with other failures it cannot be measured, and says what can."""
    base = {"completed": 10, "ok": 10, "error_count": 0, "errors": {}, "latency_ms": {"p99": 3.0}}
    (r,) = T.evaluate([T.parse_threshold("p99<5ms")], base)
    assert r.passed and r.actual == 3.0
    (r,) = T.evaluate([T.parse_threshold("p99<5ms")], dict(base, ok=9, error_count=1, errors={"reset": 1}))
    assert not r.passed and r.actual is None
    assert "no all-requests latency" in r.message and "'ok:p99' judges the successful responses" in r.message


def test_window_judges_all_requests_and_censoring():
    def row(t, ok_p99, all_p99, timeouts):
        return {"t_s": float(t), "interval_s": 1.0, "completed": 100, "ok": 100 - timeouts,
                "errors": timeouts, "errors_timeout": timeouts, "status": {},
                "latency_ms_p50": 1.0, "latency_ms_p90": 2.0, "latency_ms_p99": ok_p99,
                "latency_ms_p999": ok_p99, "latency_ms_max": ok_p99, "latency_ms_mean": 1.0,
                "all_latency_ms_p50": 1.0, "all_latency_ms_p90": 2.0, "all_latency_ms_p99": all_p99,
                "all_latency_ms_p999": all_p99, "all_latency_ms_max": all_p99, "all_latency_ms_mean": 20.0}
    rows = [row(1, 3.0, 3.0, 0), row(2, 4.0, 1000.0, 20)]
    assert T.window_value(T.parse_threshold("p99<50ms"), rows)[0] == 1000.0
    assert T.window_value(T.parse_threshold("ok:p99<50ms"), rows)[0] == 4.0
    w = T.WindowThresholds([T.parse_threshold("p99<5s"), T.parse_threshold("ok:p99<50ms")], 2.0, True)

    class Cfg:
        timeout = 1.0
    w.prepare(Cfg(), None)
    w.on_interval(1.0, rows[0])
    abort = w.on_interval(2.0, rows[1])
    assert abort is not None and "p99 < 5 s failed" in abort.reason
    assert "censored: 20 timed out at 1 s in the window" in abort.reason
    r_all, r_ok = T.window_results(w.finish())
    assert not r_all.passed and r_all.censored and r_ok.passed


# -- end to end --------------------------------------------------------------------------------

def test_failures_are_timed_and_timeouts_censored_at_the_deadline(tmp_path):
    """Every 20th request is never answered: 5 of 100 time out at 1 s. All-requests p90 and
    p95 are successes, p99 the deadline; success p99 stays small."""
    with StallEvery(20) as srv:
        r = stressx.run(srv.url, connections=10, requests=100, workers=1, timeout="1s", out=tmp_path)
        stalled = srv.stalled
    assert srv.requests == 100 and stalled == 5
    assert r.requests == r.completed == 100 and r.ok == 95 and r.errors == {"timeout": stalled}
    s = r.summary
    lat, all_, fail = s["latency_ms"], s["all_latency_ms"], s["failure_latency_ms"]
    assert lat["p99"] < 50 and lat["max"] < 1000
    assert all_["p90"] < 1000 and all_["p95"] < 1000 <= all_["p99"]
    assert all_["p99"] == all_["p999"] == all_["max"] == 1000.0        # recorded at the deadline
    assert fail["min"] == fail["max"] == 1000.0
    assert s["all_latency_censored"] == {
        "count": 5, "fraction": 0.05, "bound_ms": 1000.0, "from_percentile": 95.0,
        "keys": ["mean", "p99", "p999", "max"],
        "text": "5% timed out at 1 s: percentiles above p95 are ≥ 1 s (censored)"}
    hist = json.loads((tmp_path / "histograms.json").read_text())["merged"]
    h_all, h_fail, h_ok = (Histogram.decode(hist[k]) for k in ("all_latency", "failure_latency", "latency"))
    assert (h_all.total, h_fail.total, h_ok.total) == (100, 5, 95)
    assert h_all == h_ok + h_fail
    # interval rows carry the all-requests percentiles beside the successes'
    res = stressx.load_results(tmp_path)
    iv = res.intervals.to_pylist()
    assert max(row["all_latency_ms_max"] or 0 for row in iv) >= 1000.0
    assert max(row["latency_ms_max"] or 0 for row in iv) < 1000.0
    assert sum(row["completed"] for row in iv) == 100
    # the interval logs: the successes' and every request's; ranges judge all requests
    from stressx.results.files import read_latency_log
    from stressx.results.summary import range_figures
    assert sum(i.histogram.total for i in read_latency_log(tmp_path / "latency.hlog")) == 95
    assert sum(i.histogram.total for i in read_latency_log(tmp_path / "all_latency.hlog")) == 100
    whole = range_figures(tmp_path)
    # (an interval log keeps buckets, not exact maxima: 1 s reads as its bucket, within 0.05%)
    assert whole["completed"] == 100 and whole["all_latency_ms"]["p99"] == pytest.approx(1000.0, rel=5e-4)
    assert whole["all_latency_censored"]["count"] == 5 and whole["latency_ms"]["p99"] < 50
    (v,) = T.evaluate([T.parse_threshold("p99<50ms")], whole)
    assert not v.passed and v.censored


def test_cli_threshold_fails_on_all_requests_and_passes_on_successes(tmp_path):
    """20% of requests stall past --timeout 1s: `p99<50ms` fails (exit 3), `ok:p99<50ms`
    passes (exit 0); the summary and the reports say what is censored."""
    sentence_ = "20% timed out at 1 s: percentiles above p80 are ≥ 1 s (censored)"
    runs = {}
    for expr in ("p99<50ms", "ok:p99<50ms"):
        out = tmp_path / expr.replace(":", "_").replace("<", "_")
        with StallEvery(5) as srv:
            proc = run_cli("run", srv.url, "-c", "10", "-n", "50", "-w", "1", "--timeout", "1s",
                           "--threshold", expr, "--report", "md,json,junit,html", "-o", out)
            runs[expr] = (proc, out, srv.stalled, srv.requests)
    for expr, code in (("p99<50ms", 3), ("ok:p99<50ms", 0)):
        proc, out, stalled, received = runs[expr]
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert received == 50 and stalled == 10
        s = json.loads((out / "summary.json").read_text())
        assert s["errors"] == {"timeout": stalled} and s["all_latency_censored"]["count"] == stalled
        assert f"censored: {sentence_}" in proc.stdout
        assert sentence_ in (out / "report.md").read_text()
        assert json.loads((out / "report.json").read_text())["summary"]["all_latency_censored"]["text"] == sentence_
        assert sentence_ in (out / "junit.xml").read_text()
        assert sentence_ in (out / "report.html").read_text()
    assert "FAIL  p99 < 50 ms  actual ≥ 1 s (censored)" in runs["p99<50ms"][0].stdout
    assert "PASS  ok:p99 < 50 ms" in runs["ok:p99<50ms"][0].stdout
    # a time range (here the whole run) is judged the same way, from all_latency.hlog
    out = runs["p99<50ms"][1]
    rng = run_cli("report", out, "--from", "0s", "--threshold", "p99<50ms", "--threshold", "ok:p99<50ms")
    assert rng.returncode == 3, rng.stdout + rng.stderr
    assert f"censored: {sentence_}" in rng.stdout and "PASS  ok:p99 < 50 ms" in rng.stdout


def test_scenario_thresholds_all_and_ok(tmp_path):
    """Only /search stalls (every 4th of its requests): its timeouts are exactly the server's
    stalled count; `search:p99` judges all of its requests, `search:ok:p99` its successes."""
    wl = tmp_path / "wl.yaml"
    wl.write_text("scenarios:\n  - {name: search, path: /search, weight: 1}\n"
                  "  - {name: home, path: /home, weight: 1}\n")
    with StallEvery(4, "/search") as srv:
        r = stressx.run(srv.url, connections=8, requests=80, workers=1, timeout="1s",
                        workload=str(wl), out=tmp_path / "o")
        stalled, searched = srv.stalled, srv.matching
    sc = r.scenarios
    assert sc["search"]["requests"] == searched and stalled == searched // 4 >= 1
    assert sc["search"]["errors"] == {"timeout": stalled} and sc["home"]["errors"] == {}
    assert sc["search"]["all_latency_censored"]["count"] == stalled
    assert sc["home"]["all_latency_censored"] is None
    assert sc["home"]["all_latency_ms"] == sc["home"]["latency_ms"]
    got = {v.expression: v.passed for v in T.evaluate(
        [T.parse_threshold(e) for e in ("search:p999<50ms", "search:ok:p999<50ms", "home:p99<50ms",
                                        "search:max<50ms")], r.summary)}
    assert got == {"search:p999<50ms": False, "search:ok:p999<50ms": True, "home:p99<50ms": True,
                   "search:max<50ms": False}
    hist = json.loads((tmp_path / "o" / "histograms.json").read_text())["merged"]
    assert Histogram.decode(hist["scenario_all:search"]).total == searched
    rows = stressx.load_results(tmp_path / "o").scenario_intervals.to_pylist()
    assert max(row["all_latency_ms_max"] or 0 for row in rows if row["scenario"] == "search") >= 1000.0


def test_older_results_gain_all_requests_latency_only_where_their_files_settle_it(tmp_path):
    """run_v1 predates failure timing: its 2 timeouts at the 5 ms deadline plus its success
    histogram give all_latency_ms exactly; the same run with resets instead has none."""
    from report_fixtures import copy_run, edit_summary
    s = stressx.load_results(copy_run(tmp_path, "timeouts")).summary
    assert s["all_latency_ms"]["p99"] == 5.099 and s["all_latency_ms"]["max"] == 8.499
    assert s["failure_latency_ms"]["min"] == s["failure_latency_ms"]["max"] == 5.0
    assert s["all_latency_censored"]["count"] == 2 and s["all_latency_censored"]["bound_ms"] == 5.0
    d = copy_run(tmp_path, "resets")
    edit_summary(d, errors={"reset": 2})
    s = stressx.load_results(d).summary
    assert "all_latency_ms" not in s
    (v,) = T.evaluate([T.parse_threshold("p99<1s")], s)
    assert not v.passed and "no all-requests latency" in v.message
