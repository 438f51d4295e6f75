"""A YAML workload with a `websocket:` scenario, run as Python scenarios: each of its
scenarios becomes an `async def f(user)` (the WebSocket form: connect, send N messages at a
rate, expect each echoed; an HTTP scenario: its one request, its expected statuses checked)."""
from __future__ import annotations

import asyncio

from ..load.flowfile import FlowScenario, Registry
from ..load.workload import load_workload
from .user import CheckFailed


def websocket_scenario(sc):
    spec = sc.websocket

    async def run(user):
        ws = await user.websocket(spec["path"], headers=spec["headers"] or None,
                                  subprotocols=spec["subprotocols"], name=sc.name)
        loop = asyncio.get_running_loop()
        interval = 1.0 / spec["rate"] if spec["rate"] > 0 else 0.0
        t0 = loop.time()
        try:
            for i in range(spec["messages"]):
                if interval:
                    wait = t0 + i * interval - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                await ws.send(spec["message"])
                reply = await ws.recv()
                if spec["expect_echo"] and not user.check(reply == spec["message"], f"{sc.name} echo"):
                    raise CheckFailed(f"{sc.name}: message {i} came back as {str(reply)[:60]!r}")
        finally:
            await ws.close()
    return run


def http_scenario(sc):
    headers = dict(sc.headers) or None
    expect = set(sc.expect_status)

    async def run(user):
        r = await user.request(sc.method, sc.path or "/", headers=headers, body=sc.body,
                               name=sc.name)
        ok = r.status in expect if expect else 200 <= r.status < 300
        if not user.check(ok, f"{sc.name} status"):
            raise CheckFailed(f"{sc.name}: status {r.status}")
    return run


def yaml_registry(path) -> Registry:
    wl = load_workload(path)
    reg = Registry()
    for sc in wl.scenarios:
        fn = websocket_scenario(sc) if sc.websocket else http_scenario(sc)
        reg.scenarios.append(FlowScenario(fn, sc.name, sc.weight, None, sc.description))
    return reg
