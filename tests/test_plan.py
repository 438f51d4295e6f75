"""Config files, env vars, flags and profiles: one validation, errors named by their origin."""
import json
import os
import time

import pytest
from stressx.errors import ConfigError
from stressx.load import plan

from conftest import run_cli

URL = "http://127.0.0.1:9/"


def _plan_file(tmp_path, text, environ=None):
    f = tmp_path / "load.yaml"
    f.write_text(text)
    settings, origins = plan.load_config_file(f, environ or {})
    return plan.plan(settings, origins)


def test_config_file_sequence(tmp_path):
    tests = _plan_file(tmp_path, f"""
target: {URL}
workers: 1
tests:
  - {{name: warmup, type: steady, rps: 5, duration: 10s}}
  - {{type: ramp, min_rps: 1, max_rps: 50/s, duration: 1m, workers: 2}}
  - {{type: wave, base_rps: 600/m, amplitude_rps: 5, period: 30s, duration: 2m, model: closed}}
""")
    assert [t.name for t in tests] == ["01-warmup", "02-ramp", "03-wave"]
    assert tests[0].config.shape.duration == 10 and tests[0].config.workers == 1
    assert tests[1].config.shape.rate_at(60 - 1e-9) == pytest.approx(50) and tests[1].config.workers == 2
    assert tests[2].config.model == "closed" and tests[2].config.users_shape.name == "wave"


def test_env_substitution(tmp_path):
    tests = _plan_file(tmp_path, "target: ${T}\nrate: ${R:-7/s}\nduration: 1s\n", {"T": URL})
    assert tests[0].config.url == URL and tests[0].config.rate == 7
    with pytest.raises(ConfigError, match="environment variable T is not set"):
        _plan_file(tmp_path, "target: ${T}\n")


@pytest.mark.parametrize("text,where,message", [
    ("target: X\nworker: 2\n", "load.yaml: worker", "did you mean 'workers'"),
    (f"target: {URL}\nrate: fast\n", "load.yaml: rate", "expected requests per second"),
    (f"target: {URL}\nduration: 5x\n", "load.yaml: duration", "expected a duration"),
    (f"target: {URL}\npattern: {{type: rmap, rps: 1}}\n", "load.yaml: pattern.type", "did you mean 'ramp'"),
    (f"target: {URL}\npattern: {{type: ramp, min_rps: 1, max_rsp: 5, duration: 1m}}\n",
     "load.yaml: pattern.max_rsp", "did you mean 'max_rps'"),
    (f"target: {URL}\npattern: {{type: ramp, min_rps: 9, max_rps: 5, duration: 1m}}\n",
     "load.yaml: pattern.min_rps", "must not exceed"),
    (f"target: {URL}\ntests:\n  - {{type: steady, rps: 1, duraton: 1m}}\n", "load.yaml: tests[0].duraton", "did you mean 'duration'"),
    (f"target: {URL}\nprofile: hevy\n", "load.yaml: profile", "did you mean 'heavy'"),
    (f"target: {URL}\noutput: {{dri: x}}\n", "load.yaml: output.dri", "did you mean 'dir'"),
    (f"target: {URL}\nrate: 5\npattern: {{type: steady, rps: 1, duration: 1s}}\n", "load.yaml: rate", "not both"),
])
def test_file_errors_name_file_and_key(tmp_path, text, where, message):
    with pytest.raises(ConfigError) as info:
        _plan_file(tmp_path, text)
    if where.startswith("load.yaml"):
        where = f"{tmp_path / where}"
    assert info.value.option == where, str(info.value)
    assert message in str(info.value)


def test_profile_with_overrides():
    tests = plan.plan({"target": URL, "profile": "incident-replay", "duration": "3m"},
                      {"profile": "--profile", "duration": "--duration"})
    shape = tests[0].config.shape
    assert shape.name == "burst" and shape.duration == 180
    assert shape.rate_at(10) == 1 and shape.rate_at(55) == 25       # bursts to 25x
    assert tests[0].config.connections == 25


@pytest.mark.parametrize("how", ["flag", "env", "file"])
def test_same_error_from_every_source(tmp_path, how):
    """--rate, STRESSX_RATE and `rate:` in a file fail with the same message."""
    env = dict(os.environ)
    args = ["run", URL, "--duration", "1s"]
    if how == "flag":
        args += ["--rate", "0"]
    elif how == "env":
        env["STRESSX_RATE"] = "0"
    else:
        (tmp_path / "c.yaml").write_text("rate: 0\n")
        args += ["--config", tmp_path / "c.yaml"]
    r = run_cli(*args, env=env)
    assert r.returncode == 2
    label = {"flag": "--rate", "env": "STRESSX_RATE", "file": f"{tmp_path / 'c.yaml'}: rate"}[how]
    assert r.stderr.strip() == f"stressx: error: {label}: must be more than 0 and at most 10000000 requests/s, got '0'"


def test_dry_run_prints_the_resolved_plan(tmp_path):
    """The plan is printed and nothing runs: the target (which counts what reaches it) sees no
    connection, and no results directory appears in the working directory."""
    from stressx._testing.target import TargetThread
    with TargetThread() as t:
        r = run_cli("ramp", t.url, "--min-rps", "1", "--max-rps", "600/m", "--duration", "5m",
                    "--dry-run", cwd=tmp_path)
        time.sleep(0.2)   # a connection made just before exit would be counted by now
        seen = (t.counts.connections, t.counts.requests)
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)
    # 1/s rising linearly to 600/m = 10/s over 300 s, as one segment
    assert runs[0]["shape"]["name"] == "ramp"
    assert runs[0]["shape"]["segments"] == [["linear", 300.0, 1.0, 10.0, 0.0]]
    assert seen == (0, 0)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [
    ["steady", "--rps", "10/s", "--duration", "1s"],
    ["burst", "--baseline-rps", "5", "--burst-rps", "20", "--duration", "1s", "--burst-duration", "0.2s", "--burst-interval", "0.5s"],
    ["ramp", "--min-rps", "1", "--max-rps", "20", "--duration", "1s", "--ramp-down"],
    ["wave", "--base-rps", "10", "--amplitude-rps", "5", "--period", "1s", "--duration", "1s"],
    ["step", "--start-rps", "5", "--step-rps", "5", "--step-every", "0.25s", "--max-rps", "15", "--duration", "1s"],
    ["spike", "--baseline-rps", "5", "--spike-rps", "40", "--spike-at", "0.3s", "--spike-duration", "0.2s", "--duration", "1s"],
    ["phases", "--max-rps", "40", "--phases", "light,heavy", "--phase-duration", "0.5s", "--ramp-up", "0.2s"],
])
def test_pattern_commands_dry_run(args):
    r = run_cli(args[0], URL, *args[1:], "--dry-run")
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)[0]
    assert run["shape"]["name"] == ("progressive" if args[0] == "phases" else args[0])
    assert run["duration"] == pytest.approx(1.0)


def test_pattern_command_bad_value_exit_2():
    r = run_cli("burst", URL, "--baseline-rps", "5", "--burst-rps", "20", "--duration", "10s",
                "--burst-duration", "30s", "--burst-interval", "20s")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("stressx: error: --burst-duration: must not exceed --burst-interval")


def test_phases_and_per_phase_progressive_settings(tmp_path):
    tests = _plan_file(tmp_path, f"""
target: {URL}
tests:
  - type: phases
    phases:
      - {{type: steady, rps: 5, duration: 30s}}
      - {{type: ramp, min_rps: 5, max_rps: 50, duration: 1m}}
  - type: progressive
    max_rps: 1000
    phases: [idle, {{name: heavy, duration: 2m, ramp_up: 30s}}]
""")
    one, two = (t.config.shape for t in tests)
    assert one.duration == 90 and one.integral(90) == pytest.approx(150 + 1650)
    assert two.duration == 180 and two.rate_at(60 + 15) == pytest.approx(625)   # 500 -> 750 over 30 s
    with pytest.raises(ConfigError) as info:
        _plan_file(tmp_path, f"target: {URL}\npattern: {{type: phases, phases: [{{type: steady, rps: 5}}]}}\n")
    assert info.value.option.endswith("load.yaml: pattern.phases[0].duration")


def test_config_file_sliding_window_abort(tmp_path):
    """thresholds: {expressions, window, abort_on_fail} in a file stops a real run early."""
    from stressx._testing.target import TargetThread
    with TargetThread(delay_ms=40) as t:
        (tmp_path / "c.yaml").write_text(f"""
target: {t.url}
rate: 50
duration: 20s
workers: 1
thresholds:
  expressions: ["p99<10ms"]
  window: 1s
  abort_on_fail: true
output: {{dir: {tmp_path / 'out'}}}
""")
        r = run_cli("run", "--config", tmp_path / "c.yaml", "-q")
    assert r.returncode == 3, r.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "p99 < 10 ms" in s["aborted"] and s["duration_s"] < 10
