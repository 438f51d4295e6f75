"""The live terminal dashboard: drawn when stdout is a terminal (the CLI run under a real
pseudo-terminal against the embedded target), its figures the results' own; one progress line a
second otherwise, and with --no-dashboard from each of its sources."""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from conftest import RUN_TIMEOUT_S, run_cli

from stressx.judge import thresholds as T
from stressx.load import shapes
from stressx.report.dashboard import SPARK_POINTS, LiveFigures, histogram_bins, sparkline
from stressx.results.files import load_results
from stressx.results.hdr import Histogram

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
PROGRESS = re.compile(r"^\[\s*\d+\.\ds\]\s+\d+ req/s \(sent .*  conns \d+.*$", re.M)


def run_in_pty(argv, env=None, cols=160, rows=60, timeout=RUN_TIMEOUT_S,
               signal_after: tuple[int, float] | None = None) -> tuple[int, str]:
    """Run argv with stdout and stderr on a pseudo-terminal of cols x rows, as in a terminal
    window; (exit code, everything it wrote, escape sequences removed). `signal_after`:
    (signal, seconds): send it to the process group then, as a terminal's Ctrl-C does."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    signal_at = time.monotonic() + signal_after[1] if signal_after else None
    try:
        while time.monotonic() < deadline:
            if signal_at is not None and time.monotonic() >= signal_at:
                os.killpg(proc.pid, signal_after[0])
                signal_at = None
            if not select.select([master], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:          # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, ANSI.sub("", out.decode("utf-8", "replace")).replace("\r", "")


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "stressx.cli", *map(str, args)]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRESSX_")}
    env.update(extra)
    return env


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", line)]


def _last(text: str, pattern: str) -> str:
    lines = [line for line in text.splitlines() if re.search(pattern, line)]
    assert lines, f"no line matches {pattern!r} in:\n{text[-3000:]}"
    return lines[-1]


def test_dashboard_in_a_terminal_draws_the_results_figures(target, tmp_path):
    out = tmp_path / "run"
    code, text = run_in_pty(cli("run", target.url, "--rate", "300", "--duration", "3s",
                                "--workers", "2", "--out", out, "--threshold", "p99<5s",
                                "--threshold", "error_rate<1%", "--burn", "cpu=10%"), env=_env())
    assert code == 0, text[-3000:]
    results = load_results(out)
    s = results.summary
    # the dashboard replaced the progress lines, and the summary follows its last frame
    assert not PROGRESS.search(text)
    frame_end = text.rindex("stressx: GET ")
    frame = text[:frame_end]
    assert "latency histogram (cumulative)" in frame and "finished" in frame
    # cumulative latency drawn = the summary's; the request count too
    cum = _numbers(_last(frame, r"^\s*cumulative\s"))
    assert cum == [s["latency_ms"][k] for k in ("p50", "p90", "p99", "p999", "max")]
    counts = _last(frame, r"^requests \d+")
    assert counts.split() == ["requests", str(s["requests"]), "completed", str(s["completed"]),
                              "ok", str(s["ok"]), "errors", str(s["error_count"])]
    assert _last(frame, r"^status\s").split()[1:] == [f"{code}" if i % 2 == 0 else f"×{n}"
                                                      for code, n in s["status"].items()
                                                      for i in (0, 1)]
    # "now" is the last whole interval row
    rows = [r for r in results.intervals.to_pylist() if r["interval_s"] >= 0.5]
    last = rows[-1]
    now = _numbers(_last(frame, r"^\s*now\s"))
    assert now == [last[f"latency_ms_{k}"] for k in ("p50", "p90", "p99", "p999", "max")]
    rates = _last(frame, r"^target req/s")
    assert rates.split()[:6] == ["target", "req/s", f"{last['rate_target']:,.0f}", "achieved",
                                 "req/s", f"{last['rps']:,.0f}"]
    # the sparkline: one block per whole interval
    spark = _last(frame, r"^last 60 s").split(None, 3)[3].strip()
    assert len(spark) == len(rows) and set(spark) <= set("▁▂▃▄▅▆▇█")
    # histogram rows add up to the successes
    hist = [line for line in frame[frame.rindex("latency histogram (cumulative)"):].splitlines()
            if re.match(r"^\s*[\d.]+-[\d.]+\s", line)]
    assert len(hist) == 10 and sum(int(line.split()[-1]) for line in hist) == s["ok"]
    # threshold states, judged on the run so far: both pass
    assert re.search(r"^\s*passing\s+p99 < 5 s\s", frame, re.M)
    assert re.search(r"^\s*passing\s+error_rate < 1%\s", frame, re.M)
    assert re.search(r"^phase steady, 0 s left\s+run 0 s left of 3 s", frame, re.M)
    assert re.search(r"^host\s+CPU \d+%  memory \d+%", frame, re.M)
    assert re.search(r"^burners\s+cpu0 10% \(now \d+%\)", frame, re.M)
    # the summary records what drawing cost the coordinator
    assert s["dashboard"]["frames"] >= 10 and s["dashboard"]["refresh_hz"] == 5


def test_closed_model_dashboard_shows_connections(target, tmp_path):
    out = tmp_path / "run"
    code, text = run_in_pty(cli("ramp", target.url, "--model", "closed", "--min-rps", "2",
                                "--max-rps", "4", "--duration", "2s", "--workers", "1",
                                "--out", out), env=_env())
    assert code == 0, text[-3000:]
    frame = text[:text.rindex("stressx: GET ")]
    last = [r for r in load_results(out).intervals.to_pylist() if r["interval_s"] >= 0.5][-1]
    assert _last(frame, r"^target connections").split() == [
        "target", "connections", "4", "active", str(last["users"]), "open", str(last["conn_open"])]
    assert _last(frame, r"^\s+achieved req/s").split()[2] == f"{last['rps']:,.0f}"
    assert re.search(r"^phase ramp, 0 s left", frame, re.M)


def test_a_short_terminal_drops_the_histogram_until_the_last_frame(target, tmp_path):
    """24 rows: the frames during the run leave the histogram out (and crop, never scroll);
    the last frame is drawn whole."""
    out = tmp_path / "run"
    code, text = run_in_pty(cli("run", target.url, "--rate", "200", "--duration", "3s",
                                "--workers", "1", "--out", out), env=_env(), cols=100, rows=24)
    assert code == 0, text[-3000:]
    frame = text[:text.rindex("stressx: GET ")]
    frames = frame.split("stressx GET ")[1:]        # a frame's first line: its header
    running = [f for f in frames if "   running " in f.split("\n", 1)[0]]
    assert len(running) >= 5 and frames[-1].split("\n", 1)[0].split()[1] == "finished"
    assert sum("latency histogram" not in f for f in running) >= 3     # left out while it runs
    assert all(len(f.rstrip("\n").split("\n")) <= 24 for f in running)
    assert "latency histogram (cumulative)" in frames[-1]             # the last frame: whole
    s = load_results(out).summary
    assert _numbers(_last(frame, r"^\s*cumulative\s")) == [
        s["latency_ms"][k] for k in ("p50", "p90", "p99", "p999", "max")]


def test_ctrl_c_under_the_dashboard(target, tmp_path):
    """Ctrl-C: the stop message shows above the dashboard, its last frame draws what was
    counted, and the results are complete (exit 130)."""
    out = tmp_path / "run"
    code, text = run_in_pty(cli("run", target.url, "--rate", "200", "--duration", "30s",
                                "--workers", "1", "--out", out), env=_env(),
                            signal_after=(signal.SIGINT, 3.0))
    assert code == 130, text[-3000:]
    assert "stressx: SIGINT: stopping, draining in-flight requests" in text
    s = load_results(out).summary
    assert s["interrupted"] == "SIGINT" and s["requests"] > 0
    frame = text[:text.rindex("stressx: GET ")]
    assert _numbers(_last(frame, r"^\s*cumulative\s")) == [
        s["latency_ms"][k] for k in ("p50", "p90", "p99", "p999", "max")]
    assert _last(frame, r"^requests \d+").split()[1] == str(s["requests"])


def _assertprogress_lines(text: str, out) -> None:
    """Today's output: one progress line a second, each exactly as the coordinator formats
    its interval row, then the summary; no dashboard."""
    from stressx.engine.coordinator import progress_line
    results = load_results(out)
    rows = [r for r in results.intervals.to_pylist() if r["interval_s"] >= 0.5]
    assert len(rows) >= 2
    assert PROGRESS.findall(text) == [progress_line(r["t_s"], r, r["rate_target"]) for r in rows]
    assert "latency histogram" not in text and "cumulative" not in text
    assert "dashboard" not in results.summary


def test_output_that_is_not_a_terminal_keeps_theprogress_lines(target, tmp_path):
    r = run_cli("run", target.url, "--rate", "200", "--duration", "2s", "--workers", "1",
                "--out", tmp_path, env=_env())
    assert r.returncode == 0, r.stderr
    assert not ANSI.search(r.stdout + r.stderr)
    _assertprogress_lines(r.stderr, tmp_path)
    assert r.stdout.startswith("stressx: GET ")


@pytest.mark.parametrize("source", ["flag", "env", "config"])
def test_no_dashboard_from_each_source(target, tmp_path, source):
    args, env = ["--rate", "200", "--duration", "2s", "--workers", "1", "--out", tmp_path / "o"], _env()
    if source == "flag":
        args.append("--no-dashboard")
    elif source == "env":
        env["STRESSX_NO_DASHBOARD"] = "1"
    else:
        cfg = tmp_path / "load.yaml"
        cfg.write_text("output:\n  dashboard: false\n")
        args += ["--config", cfg]
    code, text = run_in_pty(cli("run", target.url, *args), env=env)
    assert code == 0, text
    _assertprogress_lines(text, tmp_path / "o")


def test_no_dashboard_from_the_library(target, tmp_path):
    """stressx.run(progress=True) in a terminal draws the dashboard; dashboard=False gives the
    progress lines through echo."""
    script = ("import sys, stressx\n"
              "r = stressx.run(sys.argv[1], rate=200, duration='2s', workers=1, out=sys.argv[2],\n"
              "                progress=True, echo=print, dashboard=sys.argv[3] == 'on')\n"
              "print('exit', r.exit_code)\n")
    for mode in ("off", "on"):
        out = tmp_path / mode
        code, text = run_in_pty([sys.executable, "-c", script, target.url, out, mode], env=_env())
        assert code == 0 and "exit 0" in text, text
        if mode == "off":
            _assertprogress_lines(text, out)
        else:
            assert not PROGRESS.search(text) and "latency histogram (cumulative)" in text
            s = load_results(out).summary
            assert _numbers(_last(text, r"^\s*cumulative\s")) == [
                s["latency_ms"][k] for k in ("p50", "p90", "p99", "p999", "max")]


def test_bad_dashboard_setting_in_a_config_file(target, tmp_path):
    cfg = tmp_path / "load.yaml"
    cfg.write_text("output:\n  dashboard: 3\n")
    r = run_cli("run", target.url, "--rate", "10", "--duration", "1s", "--config", cfg,
                "--out", tmp_path / "o")
    assert r.returncode == 2
    assert r.stderr.strip() == f"stressx: error: {cfg}: output.dashboard: expected true or false, got 3"
    assert not (tmp_path / "o").exists()


# -- the figures, without a terminal ------------------------------------------------------------

def _row(t_s, rps, values_us, interval_s=1.0, **extra):
    h = Histogram.from_values(values_us)
    return dict({"t_s": t_s, "interval_s": interval_s, "rps": rps, "sent_rps": rps, "rate_target": 100.0,
                 "sent": h.total, "completed": h.total, "ok": h.total, "errors": 0, "late": 0,
                 "dropped": 0, "status": {200: h.total}, "latency_histogram": h,
                 "all_latency_histogram": h.copy()}, **extra)


def test_sparkline_keeps_the_last_minute_only():
    f = LiveFigures()
    for i in range(3 * SPARK_POINTS):
        f.add(i + 1.0, _row(i + 1.0, float(i), [1000]))
    assert len(f.rates) == SPARK_POINTS and f.rates[0] == 2 * SPARK_POINTS
    assert f.counts["sent"] == 3 * SPARK_POINTS and f.status == {200: 3 * SPARK_POINTS}
    assert sparkline([0, 50, 100]) == "▁▅█" and sparkline([]) == ""
    # a final sliver of a second counts, but draws no point (it would read as a drop)
    f.add(180.03, _row(180.03, 0.0, [1000], interval_s=0.03))
    assert f.counts["sent"] == 3 * SPARK_POINTS + 1 and f.rates[-1] == 3 * SPARK_POINTS - 1


def test_histogram_bins_cover_every_value():
    values = [100 + 37 * i for i in range(2000)] + [250_000]
    bins = histogram_bins(Histogram.from_values(values))
    assert len(bins) == 10 and sum(n for _, _, n in bins) == len(values)
    assert bins[0][0] == pytest.approx(0.1) and bins[-1][2] == 1      # the lone outlier
    assert histogram_bins(Histogram.empty()) == []


def test_threshold_states_passing_close_failing():
    ths = T.resolve(["p99<10ms", "p99<5.2ms", "p99<4ms", "error_rate<1%", "checkout:p99<1s"])
    f = LiveFigures(ths)
    f.add(1.0, _row(1.0, 100.0, [5000] * 100))
    states = f.threshold_states()
    assert [(text, state) for text, state, _ in states] == [
        ("p99 < 10 ms", "passing"), ("p99 < 5.2 ms", "close"), ("p99 < 4 ms", "failing"),
        ("error_rate < 1%", "passing")]                   # scenario thresholds: at the end only
    p99 = Histogram.from_values([5000] * 100).value_at_percentile(99) / 1000
    assert states[0][2] == T.format_value(ths[0], p99)


def test_phase_names_and_time_left():
    p = shapes.progressive(100, ["light", "heavy"], phase_duration=10, ramp_up=2)
    assert p.phase_at(0) == ("light", 0.0, 10.0) and p.phase_at(12.5) == ("heavy", 10.0, 20.0)
    assert p.phase_at(25)[0] == "heavy"
    changed = p.with_rate_from(5.0, 30.0)                  # a live change keeps the names
    assert changed.phase_at(12.5)[0] == "heavy"
    seq = shapes.phases([shapes.steady(10, 5), shapes.ramp(1, 20, 5)])
    assert seq.phase_at(6)[0] == "2:ramp"
    assert shapes.steady(10, 5).phase_at(2) == ("steady", 0.0, 5.0)
