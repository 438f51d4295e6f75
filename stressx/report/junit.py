"""junit.xml: the verdicts as JUnit test results, so CI systems (Jenkins, GitLab, GitHub
test reporters) show them natively.

Suites: `stressx.thresholds` (one test case per threshold, failed when it failed),
`stressx.scenarios` (one per scenario, failed when a threshold scoped to it failed; its figures
in system-out), `stressx.baseline` (one per compared metric, when the run was compared with a
baseline; failed on a regression) and `stressx.run` (one case, failed when the run was
interrupted or aborted, so a cut-short run can never look green).
"""
from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET

from . import figures as F

FILENAME = "junit.xml"


def _suite(root: ET.Element, name: str, data, cases: list[dict]) -> None:
    s = data.summary
    created = data.results.manifest.get("created_unix") or time.time()
    suite = ET.SubElement(root, "testsuite", {
        "name": name, "tests": str(len(cases)),
        "failures": str(sum(1 for c in cases if c.get("failure"))),
        "errors": "0", "skipped": "0",
        "time": f"{s.get('duration_s', 0):.3f}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)),
        "hostname": (data.results.manifest.get("host") or {}).get("hostname") or socket.gethostname(),
    })
    props = ET.SubElement(suite, "properties")
    for key in ("url", "method", "model", "rate_target", "workers", "stressx_version"):
        ET.SubElement(props, "property", {"name": key, "value": str(s.get(key))})
    for c in cases:
        tc = ET.SubElement(suite, "testcase", {"classname": name, "name": c["name"],
                                               "time": c.get("time", "0")})
        if c.get("failure"):
            f = ET.SubElement(tc, "failure", {"message": c["failure"], "type": c.get("type", "failure")})
            f.text = c.get("details") or c["failure"]
        if c.get("out"):
            ET.SubElement(tc, "system-out").text = c["out"]


def _threshold_cases(data) -> list[dict]:
    return [{"name": t["text"] + (f" [{t['window_s']:g} s window]" if t.get("window_s") else ""),
             "failure": None if t["passed"] else t["message"], "type": "threshold",
             "out": t["message"]} for t in data.thresholds]


def _scenario_cases(data) -> list[dict]:
    cases = []
    for r in F.scenario_rows(data.summary):
        scoped = [t for t in data.thresholds if t.get("scenario") == r["name"]]
        failed = [t["message"] for t in scoped if not t["passed"]]
        figures = (f"requests {r['requests']}, ok {r['ok']}, errors {r['errors']} "
                   f"({F.pct(r['error_rate'])}), p50 {F.ms(r['p50'])} ms, p95 {F.ms(r['p95'])} ms, "
                   f"p99 {F.ms(r['p99'])} ms, all requests p99 "
                   f"{F.ms_censored(r['all_p99'], r['all_p99_censored'])} ms, baseline violations "
                   f"{'-' if r['baseline_violations'] is None else r['baseline_violations']}")
        cases.append({"name": r["name"], "type": "threshold",
                      "failure": f"{len(failed)} threshold(s) failed" if failed else None,
                      "details": "\n".join(failed), "out": figures})
    return cases


def _baseline_cases(data) -> list[dict]:
    c = data.comparison
    cases = []
    for row in c.get("rows", []):
        name = (f"{row['scenario']}: " if row.get("scenario") else "") + row["metric"]
        msg = (f"{row['metric']}: baseline {row['baseline']}, current {row['current']}, "
               f"change {row['change_text']}")
        cases.append({"name": name, "type": "regression", "out": msg,
                      "failure": f"regression beyond {c['threshold_pct']:g}%: {msg}"
                      if row.get("regression") else None})
    return cases


def _run_case(data) -> dict:
    s = data.summary
    problems = [a for a in F.alerts(s) if a.startswith(("INTERRUPTED", "ABORTED", "SHARD LOST"))]
    censored = [f"censored: {F.censoring_note(s)}"] if F.censoring_note(s) else []
    out = "; ".join([f"{s.get('requests')} requests, {s.get('ok')} ok, {s.get('error_count')} "
                     f"errors, {s.get('rps')} req/s"] + F.alerts(s) + censored)
    return {"name": "run completed", "time": f"{s.get('duration_s', 0):.3f}", "type": "run",
            "failure": "; ".join(problems) or None, "out": out}


def render(data) -> str:
    root = ET.Element("testsuites", {"name": "stressx"})
    _suite(root, "stressx.thresholds", data, _threshold_cases(data))
    scenarios = _scenario_cases(data)
    if scenarios:
        _suite(root, "stressx.scenarios", data, scenarios)
    if data.comparison:
        _suite(root, "stressx.baseline", data, _baseline_cases(data))
    _suite(root, "stressx.run", data, [_run_case(data)])
    suites = root.findall("testsuite")
    root.set("tests", str(sum(int(s.get("tests")) for s in suites)))
    root.set("failures", str(sum(int(s.get("failures")) for s in suites)))
    root.set("errors", "0")
    root.set("time", f"{data.summary.get('duration_s', 0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
