"""The stressx pytest plugin in real pytest sessions (pytester): fixtures, the stress marker,
--stressx-profile, user profiles, per-test results directories and the session summary."""
from __future__ import annotations

import json

import pytest

from stressx.pytest_plugin import PROFILES, run_options

pytest_plugins = ["pytester"]

LOAD_TESTS = """
import pytest

@pytest.mark.stress(duration="1s", workers=1)
def test_light_passes(stressx_load):
    r = stressx_load(None, "p99<2s", "error_rate<1%")
    assert r.requests > 0 and r.error_count == 0

@pytest.mark.stress(profile="medium", duration="1s", workers=1,
                    thresholds=["p99<1us", "rps>100000000"])
def test_medium_fails_twice(stressx_load):
    stressx_load()

def test_call_options(stressx_load, stressx_target):
    r = stressx_load(stressx_target, connections=2, duration="1s", workers=1, criteria=None)
    assert r.summary["completed"] > 0
"""


def _manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def _session_dir(pytester):
    dirs = list((pytester.path / "stressx-results").iterdir())
    assert len(dirs) == 1
    return dirs[0]


def test_load_fixture_thresholds_marker_and_summary(pytester):
    pytester.makepyfile(test_load=LOAD_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    # one AssertionError listing every failed threshold of the test
    # (counted on the traceback's "E" lines: with CI set, pytest's short summary repeats it whole)
    assert sum(1 for line in out.splitlines() if line.startswith("E ")
               and "AssertionError: stressx thresholds failed (profile medium" in line) == 1
    assert "p99 < 0.001 ms: FAILED" in out and "rps > 1e+08/s: FAILED" in out
    # the session table
    result.stdout.re_match_lines([r"=+ stressx =+",
                                  r"load test\s+profile\s+requests",
                                  r"test_load.py::test_light_passes\s+light\s+\d+.*passed 7",
                                  r"test_load.py::test_medium_fails_twice\s+medium\s+\d+.*FAILED 2/7",
                                  r"test_load.py::test_call_options\s+light\s+\d+.*-$",
                                  r"stressx results: .*stressx-results/pytest-\d+-\d+"])
    session = _session_dir(pytester)
    light = _manifest(session / "test_load.py__test_light_passes")["config"]
    medium = _manifest(session / "test_load.py__test_medium_fails_twice")["config"]
    call = _manifest(session / "test_load.py__test_call_options")["config"]
    # the profiles' clients (closed model), shortened by the marker's duration
    assert (light["model"], light["connections"], light["duration"]) == ("closed", 3, 1.0)
    assert (medium["model"], medium["connections"]) == ("closed", 10)
    assert call["connections"] == 2
    data = json.loads((session / "session.json").read_text())
    assert [r["profile"] for r in data["load_runs"]] == ["light", "medium", "light"]


def test_profile_option_overrides_markers(pytester):
    pytester.makepyfile(test_p="""
        import pytest

        @pytest.mark.stress(profile="light", duration="1s", workers=1)
        def test_one(stressx_load):
            stressx_load(criteria=None)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--stressx-profile", "heavy")
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r"test_p.py::test_one\s+heavy\s+\d+"])
    config = _manifest(_session_dir(pytester) / "test_p.py__test_one")["config"]
    assert config["connections"] == 20                       # heavy: 20 clients


def test_unknown_profile_is_a_usage_error(pytester):
    pytester.makepyfile(test_u="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--stressx-profile", "gigantic")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stressx: error: --stressx-profile: unknown profile 'gigantic'; "
                                 "profiles are *extreme*heavy*light*medium*"])


def test_user_profiles_from_the_ini_file(pytester):
    pytester.makefile(".yaml", profiles="""
        tiny:
          description: two clients for a second
          model: closed
          pattern: steady
          rps: 2
          duration: 1s
          workers: 1
          thresholds: ["p99<1us"]
    """)
    pytester.makeini("[pytest]\nstressx_profiles = profiles.yaml\nstressx_profile = tiny\n")
    pytester.makepyfile(test_t="""
        def test_tiny(stressx_load):
            stressx_load()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stressx thresholds failed (profile tiny*", "*p99 < 0.001 ms: FAILED*"])
    config = _manifest(_session_dir(pytester) / "test_t.py__test_tiny")["config"]
    assert (config["connections"], config["duration"]) == (2, 1.0)


def test_bench_fixture_table_and_results(pytester):
    pytester.makepyfile(test_b="""
        import time

        def spin():
            end = time.perf_counter_ns() + 20_000
            while time.perf_counter_ns() < end:
                pass

        def test_spin(stressx_bench):
            r = stressx_bench(spin, min_time=0.05)
            assert 19e-6 <= r.p50 <= 40e-6
            r.assert_thresholds("p50<1ms")

        def test_gate_fails(stressx_bench):
            stressx_bench(spin, repeat=5).assert_thresholds("p50<1us", "ops_per_s>1e9")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*stressx benchmark thresholds failed:*",
                                 "*p50 < 1 us: FAILED*", "*ops_per_s > 1e+09/s: FAILED*"])
    result.stdout.re_match_lines([r"benchmark\s+mean\s+p50\s+p99", r"test_spin/spin\s+\d",
                                  r"test_gate_fails/spin\s+\d"])
    summary = json.loads((_session_dir(pytester) / "benchmarks" / "summary.json").read_text())
    assert list(summary["benchmarks"]) == ["test_spin/spin", "test_gate_fails/spin"]


def test_a_session_without_stressx_leaves_nothing(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "stressx results" not in result.stdout.str() and " stressx =" not in result.stdout.str()
    assert not (pytester.path / "stressx-results").exists()


def test_the_plugin_is_installed_through_the_entry_point():
    from importlib.metadata import entry_points
    assert any(e.value == "stressx.pytest_plugin" for e in entry_points(group="pytest11"))


def test_profiles_become_run_options():
    heavy = run_options(PROFILES["heavy"], {})
    users = heavy["users"]
    assert users.name == "burst" and users.peak() == 100 and users.duration == 600
    assert "connections" not in heavy and "criteria" not in heavy
    short = run_options(PROFILES["heavy"], {"duration": "2s"})
    assert short["users"].duration == 2
    assert run_options(PROFILES["light"], {"rate": 50}) == {"duration": "5m", "rate": 50}
