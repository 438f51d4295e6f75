"""Safety limits: parsing (tables), then real trips: an emergency stop in a real load run, host
limits stopping and backing off real burners."""
import time

import pytest

import stressx
from stressx._testing.target import TargetThread
from stressx.errors import ConfigError
from stressx.hostload.burners import make_spec
from stressx.hostload.burners.session import run_burn
from stressx.hostload.hostmetrics import read_host
from stressx.judge.safety import parse_limit


@pytest.mark.parametrize("text,metric,threshold,unit,action", [
    ("mem>90%:stop", "mem", 90.0, "%", "stop"),
    ("mem>20G", "mem", float(20 << 30), "bytes", "stop"),
    ("cpu>95%:backoff", "cpu", 95.0, "%", "backoff"),
    ("swap>0:warn", "swap", 0.0, "bytes", "warn"),
    ("temp>85", "temp", 85.0, "C", "stop"),
    ("errors>5%:stop", "errors", 5.0, "%", "stop"),
    ("p99>500ms:stop", "p99", 500.0, "ms", "stop"),
    ("latency>1s", "p99", 1000.0, "ms", "stop"),
    ("p50 >= 250 : warn", "p50", 250.0, "ms", "warn"),
])
def test_parse_limit(text, metric, threshold, unit, action):
    lim = parse_limit(text)
    assert (lim.metric, lim.threshold, lim.unit, lim.action) == (metric, threshold, unit, action)


@pytest.mark.parametrize("text,says", [
    ("mem<90%", "METRIC>VALUE"),
    ("disk>90%", "unknown metric"),
    ("mem>90%:panic", "unknown action"),
    ("cpu>150%", "95%"),
    ("p99>soon", "latency"),
])
def test_bad_limits_name_the_option(text, says):
    with pytest.raises(ConfigError) as e:
        parse_limit(text)
    assert str(e.value).startswith(f"--safety {text!r}:") and says in str(e.value)


def test_latency_limit_emergency_stop_in_a_real_run(tmp_path):
    with TargetThread(delay_ms=30) as slow:
        t0 = time.monotonic()
        r = stressx.run(slow.url, rate=50, duration="20s", workers=1, out=tmp_path,
                        burn=["cpu=10%x1"], safety=["p50>10ms:stop"])
        took = time.monotonic() - t0
    assert r.exit_code == 4 and took < 8
    assert r.aborted.startswith("safety stop: p50") and "p50>10ms:stop" in r.aborted
    assert r.summary["safety"]["stopped"] == r.aborted
    assert r.duration_s < 3.5                    # load ended within about a second of the trip
    burner = r.summary["burners"]["burners"][0]
    assert burner["lost"] is None and burner["exit_code"] == 0   # stopped, not lost
    assert r.summary["burners"]["emergency_stop"] == r.aborted
    assert stressx.load_results(tmp_path).summary["aborted"] == r.aborted


def test_error_rate_limit_stops_a_real_run(target, tmp_path):
    r = stressx.run(target.url + "?status=503", rate=100, duration="20s", workers=1,
                    out=tmp_path, safety=["errors>50%:stop"])
    assert r.exit_code == 4 and "errors" in r.aborted and r.duration_s < 3.5


def test_host_memory_limit_stops_burners_at_once(tmp_path):
    spec = make_spec("mem", 64 << 20)
    t0 = time.monotonic()
    s = run_burn([spec], duration_s=20, out_dir=tmp_path, limits=[parse_limit("mem>0.01%:stop")])
    assert time.monotonic() - t0 < 5
    assert s["exit_code"] == 4 and s["aborted"].startswith("safety stop: mem")
    assert s["elapsed_s"] < 1.0           # the first host sample trips it; stopped within it
    assert s["safety"]["events"][0]["action"] == "stop"


def test_backoff_lowers_burner_levels(tmp_path):
    spec = make_spec("cpu", 0.6, workers=1)
    s = run_burn([spec], duration_s=2.8, out_dir=tmp_path, limits=[parse_limit("cpu>0%:backoff")])
    assert s["exit_code"] == 0
    backoffs = [e for e in s["safety"]["events"] if e["action"] == "backoff"]
    assert len(backoffs) == 2 and s["burners"]["scale"] == 0.25   # at once and 2 s later
    assert any("burner levels only" in note for note in s["safety"]["notes"])
    requested = [dict(row["burner_requested"])["cpu"] for row in read_host(tmp_path).to_pylist()]
    assert requested[0] == 60.0 and requested[-1] == 15.0


def test_warn_only_warns(tmp_path):
    lines = []
    s = run_burn([make_spec("cpu", 0.1, workers=1)], duration_s=1.5, out_dir=tmp_path,
                 limits=[parse_limit("cpu>0%:warn")], echo=lines.append, progress=False)
    assert s["exit_code"] == 0 and s["aborted"] is None
    assert [e["action"] for e in s["safety"]["events"]] == ["warn"]
    assert sum("safety warning" in line for line in lines) == 1


def test_backoff_lowers_the_request_rate_of_an_open_model_run(tmp_path):
    with TargetThread() as t:
        r = stressx.run(t.url, rate=400, duration="2.5s", workers=1, out=tmp_path,
                        safety=["cpu>0%:backoff"])
        served = t.counts.requests
    assert r.exit_code == 0
    rates = [e["request_rate"] for e in r.summary["safety"]["events"]]
    assert rates[:2] == [200.0, 100.0]             # at the first sample, then 2 s later
    # the shards really slowed down: the server got well under the 1000 of 400/s for 2.5 s
    assert served == r.requests < 400 * 2.5 * 0.6
