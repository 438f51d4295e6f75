"""Python scenarios (multi-step flows) end to end: a real `stressx run` subprocess against the
embedded target (or a small server of the test's own), its figures checked against what the
server itself counted."""
from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections import Counter, defaultdict

import pytest

from stressx._testing.target import TargetThread

from conftest import run_cli


def write_flow(tmp_path, body: str, name: str = "flow.py"):
    p = tmp_path / name
    p.write_text("import stressx\n" + textwrap.dedent(body))
    return p


def run_flow(tmp_path, url, flow, *args):
    out = tmp_path / "results"
    r = run_cli("run", url, "--workload", flow, "--json", "--quiet", "-o", out, *args)
    assert r.returncode in (0, 3), r.stderr
    return json.loads(r.stdout), out


def test_login_token_call_flow(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario(weight=1)
        async def browse(user):
            """Log in, then call with the token."""
            r = await user.get("/login?u=alice")
            token = r.json()["token"]
            me = await user.get("/me", headers={"Authorization": f"Bearer {token}"}, name="me")
            user.check(me.json().get("user") == "alice", "me is alice")
            user.check(me.headers["content-type"].startswith("application/json"), "json")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "3", "-w", "1", "--requests", "30")
        seen = dict(t.counts.paths)
    sc = s["scenarios"]["browse"]
    assert sc["iterations"] == 30 and sc["ok"] == 30 and sc["error_count"] == 0
    assert sc["description"] == "Log in, then call with the token."
    assert s["steps"]["GET /login"]["requests"] == 30 == seen["/login"]
    assert s["steps"]["me"]["ok"] == 30 == seen["/me"]            # no 401: the token was sent
    assert s["requests"] == s["ok"] == 60
    assert s["checks"] == {"json": {"passed": 30, "failed": 0},
                           "me is alice": {"passed": 30, "failed": 0}}
    assert s["steps"]["me"]["latency_ms"]["p50"] > 0


def test_cookies_are_kept_per_user(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def cookie(user):
            if "n" not in user.state:
                user.state["n"] = user.index
                await user.get(f"/login?u=user{user.index}")
            r = await user.get("/cookies")
            user.check(r.text == f"session=sess-user{user.index}", "own cookie")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "4", "-w", "2", "--requests", "40")
    assert s["checks"]["own cookie"] == {"passed": 40, "failed": 0}
    assert s["steps"]["GET /login"]["requests"] == 4


def test_redirect_chain_followed_and_counted(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def chain(user):
            r = await user.get("/redirect/3", name="chain")
            user.check(r.status == 200 and r.text == "done" and len(r.history) == 3, "followed")
            r = await user.get("/redirect/2", allow_redirects=False)
            user.check(r.status == 302 and r.headers["location"] == "/redirect/1", "not followed")
        @stressx.scenario(weight=0)
        async def loop(user):
            user.max_redirects = 1
            await user.get("/redirect/5")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "2", "-w", "1", "--requests", "10")
        seen = t.counts.requests
    assert s["checks"]["followed"]["passed"] == 10 and s["checks"]["not followed"]["passed"] == 10
    assert s["redirects"] == 30
    assert s["steps"]["chain"]["requests"] == 40            # 4 hops per iteration, one name
    assert s["requests"] == 50 == seen


def test_too_many_redirects_is_a_scenario_error(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def loop(user):
            user.max_redirects = 1
            await user.get("/redirect/5")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "1", "-w", "1", "--requests", "3")
    assert s["scenarios"]["loop"]["errors"] == {"scenario_error": 3}
    assert s["scenario_errors"] == {"TooManyRedirects": 3}
    assert s["requests"] == 6      # /redirect/5, /redirect/4, then the limit


def test_exception_in_user_code_counts_and_user_goes_on(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def flaky(user):
            user.state["i"] = user.state.get("i", 0) + 1
            await user.get("/a")
            if user.state["i"] % 2 == 0:
                raise KeyError("token")
            if user.state["i"] % 3 == 0:
                {}["x"]
            await user.get("/b")
    ''')
    with TargetThread() as t:
        s, out = run_flow(tmp_path, t.url, flow, "-c", "1", "-w", "1", "--requests", "12")
        seen = dict(t.counts.paths)
    sc = s["scenarios"]["flaky"]
    # i = 1..12: even -> KeyError (6), odd multiples of 3 (3, 9) -> KeyError: 8 errors
    assert sc["iterations"] == 12 and sc["error_count"] == 8 and sc["ok"] == 4
    assert sc["errors"] == {"scenario_error": 8}
    assert s["scenario_errors"] == {"KeyError": 8}
    assert seen["/a"] == 12 and seen["/b"] == 4
    assert len(s["tracebacks"]) == 2                       # two distinct raising lines
    assert all("KeyError" in tb and "flow.py" in tb for tb in s["tracebacks"])


def test_syntax_error_exits_2_naming_file_and_line_nothing_sent(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import stressx\n\n@stressx.scenario\nasync def f(user):\n    await user.get('/'\n")
    broken = tmp_path / "broken.py"
    broken.write_text("import stressx\nimport no_such_module_here\n")
    with TargetThread() as t:
        r = run_cli("run", t.url, "--workload", bad, "-d", "1")
        r2 = run_cli("run", t.url, "--workload", broken, "-d", "1")
        assert t.counts.requests == 0 and t.counts.connections == 0
    assert r.returncode == 2 and r2.returncode == 2
    assert r.stderr.startswith("stressx: error: ") and f"{bad}:5" in r.stderr
    assert "SyntaxError" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"{broken}:2" in r2.stderr and "ModuleNotFoundError" in r2.stderr


def test_feeder_each_shard_its_own_share(tmp_path):
    (tmp_path / "users.csv").write_text("name\n" + "".join(f"u{i}\n" for i in range(6)))
    flow = write_flow(tmp_path, '''
        users = stressx.feeder("users.csv")
        @stressx.scenario
        async def fed(user):
            await user.get(f"/fed/{next(users)['name']}?shard={user.shard}")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "2", "-w", "2", "--requests", "24")
        paths = dict(t.counts.paths)
    names = Counter({p.rsplit("/", 1)[1]: n for p, n in paths.items() if p.startswith("/fed/")})
    assert sum(paths.values()) == 24 and set(names) == {f"u{i}" for i in range(6)}
    assert all(n == 4 for n in names.values()), names     # each shard cycles its 3 rows


def test_feeder_rows_never_cross_shards(tmp_path):
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(4)))
    flow = write_flow(tmp_path, '''
        rows = stressx.feeder("rows.jsonl", order="random")
        @stressx.scenario
        async def fed(user):
            await user.get(f"/row/{next(rows)['id']}/{user.shard}")
    ''')
    with TargetThread() as t:
        run_flow(tmp_path, t.url, flow, "-c", "2", "-w", "2", "--requests", "40")
        paths = dict(t.counts.paths)
    by_shard = defaultdict(set)
    for p in paths:
        _, _, row, shard = p.split("/")
        by_shard[shard].add(int(row))
    assert by_shard == {"0": {0, 2}, "1": {1, 3}}


def test_websocket_round_trips_against_embedded_target(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def chat(user):
            ws = await user.websocket("/ws", subprotocols=["chat"])
            user.check(ws.subprotocol == "chat", "subprotocol")
            for i in range(5):
                await ws.send(f"m{i}")
                user.check(await ws.recv() == f"m{i}", "echo")
            await ws.send(b"\\x00\\x01")
            user.check(await ws.recv() == b"\\x00\\x01", "binary")
            await ws.ping(b"p")
            await ws.close()
            user.check(ws.close_code == 1000, "closed 1000")
        @stressx.scenario(weight=0)
        async def unused(user):
            pass
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "2", "-w", "1", "--requests", "6")
    assert s["scenarios"]["chat"]["ok"] == 6
    assert s["checks"]["echo"] == {"passed": 30, "failed": 0}
    assert s["checks"]["binary"]["passed"] == 6 and s["checks"]["subprotocol"]["passed"] == 6
    assert s["checks"]["closed 1000"]["passed"] == 6
    assert s["steps"]["WS /ws"]["requests"] == 36 and s["steps"]["WS /ws"]["ok"] == 36
    assert s["steps"]["WS /ws connect"]["requests"] == 6
    assert s["status"] == {"101": 6}


def test_websocket_server_close_code(tmp_path):
    flow = write_flow(tmp_path, '''
        from stressx.flows.ws import ConnectionClosed
        @stressx.scenario
        async def closing(user):
            ws = await user.websocket("/ws")
            await ws.send("close")
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                user.check(exc.code == 4000 and ws.close_code == 4000, "code 4000")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "-c", "1", "-w", "1", "--requests", "3")
    assert s["checks"]["code 4000"] == {"passed": 3, "failed": 0}
    assert s["steps"]["WS /ws"]["errors"] == {"closed": 3}


def test_open_model_iteration_latency_counts_from_intended_time(tmp_path):
    """A server that answers one request at a time, 50 ms each, at 40 arrivals/s with one
    user allowed: the backlog grows by 2 iterations/s, so iteration latency (from the intended
    time) far exceeds the 50 ms each request takes."""
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def slow(user):
            await user.get("/x?delay=50")
    ''')
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, flow, "--rate", "40", "-d", "2", "-w", "1",
                        "--max-connections", "1", "--timeout", "20s")
    sc = s["scenarios"]["slow"]
    step = s["steps"]["GET /x"]
    assert step["latency_ms"]["max"] < 200                  # each request: ~50 ms
    assert sc["latency_ms"]["max"] > 500                    # iterations waited for the user
    assert sc["latency_ms"]["p50"] > 3 * step["latency_ms"]["p50"]
    assert s["model"] == "open"


def test_step_thresholds(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def two(user):
            await user.get("/fast", name="fast")
            await user.get("/slow?delay=30", name="slow")
    ''')
    with TargetThread() as t:
        out = tmp_path / "r"
        r = run_cli("run", t.url, "--workload", flow, "-c", "1", "-w", "1", "--requests", "5",
                    "--threshold", "fast:p99<25ms", "--threshold", "slow:p99<20ms",
                    "--json", "--quiet", "-o", out)
    assert r.returncode == 3, r.stderr
    verdicts = json.loads((out / "thresholds.json").read_text())["thresholds"]
    by = {th["expression"]: th["passed"] for th in verdicts}
    assert by == {"fast:p99<25ms": True, "slow:p99<20ms": False}


def test_interval_rows_have_steps(tmp_path):
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def one(user):
            await user.get("/a", name="a")
    ''')
    with TargetThread() as t:
        s, out = run_flow(tmp_path, t.url, flow, "-c", "2", "-w", "2", "-d", "2")
    import stressx
    res = stressx.load_results(out)
    rows = [r for r in res.scenario_intervals.to_pylist() if r["scenario"] == "step:a"]
    assert rows and sum(r["ok"] for r in rows) == s["steps"]["a"]["ok"] == s["requests"]


def test_yaml_websocket_form(tmp_path):
    wl = tmp_path / "ws.yaml"
    wl.write_text(textwrap.dedent('''
        description: echo
        scenarios:
          - name: echo
            websocket: {path: /ws, messages: 4, rate: 200, message: hello}
          - name: health
            path: /x
            weight: 1
    '''))
    with TargetThread() as t:
        s, _ = run_flow(tmp_path, t.url, wl, "-c", "2", "-w", "1", "--requests", "10")
        seen = dict(t.counts.paths)
    echo = s["scenarios"]["echo"]
    assert s["checks"]["echo echo"]["failed"] == 0
    assert s["steps"]["echo"]["requests"] == 4 * echo["iterations"] == s["checks"]["echo echo"]["passed"]
    assert s["steps"]["echo connect"]["requests"] == echo["iterations"] == seen.get("/ws", 0)
    assert echo["iterations"] + s["scenarios"]["health"]["iterations"] == 10
    assert s["steps"]["health"]["requests"] == seen.get("/x", 0)


def test_hooks_timed_and_library_call(tmp_path):
    flow = write_flow(tmp_path, '''
        import asyncio
        log = []
        @stressx.on_start(scope="run")
        async def setup():
            log.append("run")
        @stressx.on_start
        async def login(user):
            r = await user.get("/login?u=u%d" % user.index)
            user.state["token"] = r.json()["token"]
        @stressx.on_stop
        async def logout(user):
            await user.get("/logout", name="logout")
        @stressx.scenario
        async def work(user):
            user.check(log == ["run"], "run hook ran")
            async with user.timed("think"):
                await asyncio.sleep(0.02)
            await user.get("/me", headers={"Authorization": "Bearer " + user.state["token"]})
    ''')
    import stressx
    with TargetThread() as t:
        result = stressx.run(t.url, workload=str(flow), connections=2, workers=1, requests=6,
                             progress=False, out=str(tmp_path / "lib"))
        seen = dict(t.counts.paths)
    s = result.summary
    assert seen["/login"] == 2 and seen["/logout"] == 2 and seen["/me"] == 6
    assert s["checks"]["run hook ran"]["passed"] == 6
    assert s["steps"]["GET /me"]["ok"] == 6                 # the token from on_start worked
    think = s["steps"]["think"]
    assert think["requests"] == 6 and 18 <= think["latency_ms"]["p50"] <= 200
    assert s["scenarios"]["work"]["iterations"] == 6


def test_users_shape_changes_running_users(tmp_path):
    flow = write_flow(tmp_path, '''
        import asyncio
        @stressx.scenario
        async def one(user):
            await user.get(f"/u/{user.index}")
            await asyncio.sleep(0.05)
    ''')
    with TargetThread() as t:
        out = tmp_path / "results"
        r = run_cli("ramp", t.url, "--min-rps", "1", "--max-rps", "4", "--duration", "2s",
                    "--model", "closed", "--workload", flow, "-w", "1", "--json", "--quiet",
                    "-o", out)
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        paths = dict(t.counts.paths)
    assert {p for p in paths if p.startswith("/u/")} == {"/u/0", "/u/1", "/u/2", "/u/3"}
    assert paths["/u/0"] > paths["/u/3"]                    # user 3 started last
    assert s["scenarios"]["one"]["iterations"] == sum(paths.values())


def test_interrupted_flow_run_leaves_complete_results(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    flow = write_flow(tmp_path, '''
        @stressx.scenario
        async def two(user):
            await user.get("/a")
            await user.get("/b?delay=20")
    ''')
    out = tmp_path / "r"
    with TargetThread() as t:
        p = subprocess.Popen([sys.executable, "-m", "stressx.cli", "run", t.url, "--workload",
                              str(flow), "-c", "4", "-w", "2", "-d", "30s", "--json", "--quiet",
                              "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        deadline = time.monotonic() + 30
        while t.counts.requests < 50 and time.monotonic() < deadline:
            time.sleep(0.05)          # interrupt it running (a loaded machine starts it late)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=30)
        seen = t.counts.requests
    assert p.returncode == 130, stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] == "SIGINT"
    assert s["requests"] == s["completed"] + s["abandoned"] == seen
    assert s["completed"] == s["ok"] + s["error_count"]
    steps = s["steps"]
    assert steps["GET /a"]["requests"] + steps["GET /b"]["requests"] == s["requests"]


def test_list_scenarios_shows_python_scenarios(tmp_path):
    flow = tmp_path / "shop.py"
    flow.write_text('"""Shop flows."""\n' + textwrap.dedent('''
        import stressx
        @stressx.scenario(weight=3)
        async def browse(user):
            """Home page, then an item."""
        @stressx.scenario(name="buy")
        async def checkout(user):
            """Put one in the cart."""
    '''))
    r = run_cli("list-scenarios", flow)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "Shop flows." in lines[0]
    assert any("browse" in l and "75.0%" in l and "Home page, then an item." in l for l in lines)
    assert any("buy" in l and "25.0%" in l and "Put one in the cart." in l for l in lines)
