"""`stressx interactive`: prompts answered on stdin, as a user would type them."""
import json

import yaml
from stressx._testing.target import TargetThread

from conftest import run_cli


def test_interactive_shows_command_and_config_without_running(tmp_path):
    answers = "http://127.0.0.1:9/\nburst\n5\n20\n2m\n10s\n30s\n1\nn\n"
    r = run_cli("interactive", input=answers)
    assert r.returncode == 0, r.stderr
    assert ("stressx burst http://127.0.0.1:9/ --baseline-rps 5 --burst-rps 20 --duration 2m "
            "--burst-duration 10s --burst-interval 30s --workers 1") in r.stdout
    config = yaml.safe_load(r.stdout.split("Equivalent config file (stressx run --config FILE):\n")[1]
                            .split("Shape:")[0])
    assert config["pattern"] == {"type": "burst", "baseline_rps": 5, "burst_rps": 20,
                                 "duration": "2m", "burst_duration": "10s", "burst_interval": "30s"}
    # the printed config file and the printed command resolve to the same plan
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    from_file = run_cli("run", "--config", tmp_path / "c.yaml", "--dry-run")
    from_flags = run_cli("burst", "http://127.0.0.1:9/", "--baseline-rps", "5", "--burst-rps", "20",
                         "--duration", "2m", "--burst-duration", "10s", "--burst-interval", "30s",
                         "--workers", "1", "--dry-run")
    assert from_file.returncode == 0 and from_flags.returncode == 0, (from_file.stderr, from_flags.stderr)
    file_plan, flags_plan = json.loads(from_file.stdout)[0], json.loads(from_flags.stdout)[0]
    assert file_plan["shape"]["name"] == "burst" and file_plan["shape"] == flags_plan["shape"]
    assert file_plan["duration"] == flags_plan["duration"] == 120
    assert file_plan["workers"] == flags_plan["workers"] == 1


def test_interactive_reasks_a_bad_value_then_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with TargetThread() as t:
        answers = f"{t.url}\nsteady\nfast\n50\n1s\n1\ny\n"
        r = run_cli("interactive", input=answers)
        served = t.counts.requests
    assert r.returncode == 0, r.stderr
    assert "--rps: expected requests per second" in r.stdout        # asked again
    results = list((tmp_path / "stressx-results").glob("*/summary.json"))
    # 50/s for 1 s, as answered: the server got exactly those 50
    assert len(results) == 1 and json.loads(results[0].read_text())["requests"] == served == 50
