#!/usr/bin/env python3
"""Memory of 10,000 concurrent WebSocket connections on one shard (Python scenarios).

    python benchmarks/bench_ws_memory.py                  # 10,000 connections
    python benchmarks/bench_ws_memory.py --connections 2000 --hold 3

A WebSocket echo server (aiohttp, in this process, backlog 8192) and `stressx run --workload
ws.py --connections N --workers 1 --requests N`: each of the N users opens a WebSocket, makes
one round trip, holds it open for --hold seconds, then closes it. The shard's peak resident
memory (VmHWM, read by an on_stop(scope="run") hook inside the shard) is compared with a run
of the same N users that open no WebSocket (they only sleep as long): the difference over N
is the memory one open WebSocket costs a shard, its connection, buffers, the WebSocket object
and the suspended coroutine included. The most connections open at once is counted by the
scenario itself. Reports; does not gate.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]

FLOW = '''\
import asyncio, json, os, stressx
OPEN = [0, 0]        # open now, most at once
HOLD = {hold}
@stressx.scenario
async def hold(user):
    if {connect}:
        ws = await user.websocket("/ws")
        await ws.send("x")
        await ws.recv()
        OPEN[0] += 1
        OPEN[1] = max(OPEN[1], OPEN[0])
        await asyncio.sleep(HOLD)
        OPEN[0] -= 1
        await ws.close()
    else:
        await asyncio.sleep(HOLD + 1)

@stressx.on_stop(scope="run")
async def report():
    status = open("/proc/self/status").read()
    kb = {{l.split(":")[0]: int(l.split()[1]) for l in status.splitlines() if l.startswith(("VmHWM", "VmRSS"))}}
    open({out!r}, "w").write(json.dumps(dict(kb, max_open=OPEN[1])))
'''


def serve(port_box: list, stop: threading.Event) -> None:
    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == web.WSMsgType.TEXT:
                await sock.send_str(msg.data)
        return sock

    async def main():
        app = web.Application()
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=8192)
        await site.start()
        port_box.append(runner.addresses[0][1])
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()
    asyncio.run(main())


def run(n: int, hold: float, connect: bool, port: int, tmp: Path) -> dict:
    out = tmp / f"mem-{int(connect)}.json"
    flow = tmp / f"ws-{int(connect)}.py"
    flow.write_text(FLOW.format(hold=hold, connect=connect, out=str(out)))
    cmd = [sys.executable, "-m", "stressx.cli", "run", f"http://127.0.0.1:{port}/", "--workload",
           str(flow), "--connections", str(n), "--workers", "1", "--requests", str(n),
           "--timeout", "60s", "--duration", f"{hold + 60:.0f}s", "--json", "--quiet",
           "--out", str(tmp / f"r-{int(connect)}")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=hold + 180,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    s = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    mem = json.loads(out.read_text()) if out.exists() else {}
    return {"exit": r.returncode, "stderr": r.stderr[-500:], "summary": s, "mem": mem}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--hold", type=float, default=8.0)
    a = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.connections + 1024)), hard))
    stop, box = threading.Event(), []
    t = threading.Thread(target=serve, args=(box, stop), daemon=True)
    t.start()
    while not box:
        time.sleep(0.05)
    tmp = Path(tempfile.mkdtemp(prefix="stressx-wsmem-"))
    try:
        base = run(a.connections, a.hold, False, box[0], tmp)
        ws = run(a.connections, a.hold, True, box[0], tmp)
    finally:
        stop.set()
        t.join(timeout=10)
    for name, r in (("no WebSocket", base), ("WebSocket", ws)):
        if r["exit"] not in (0, 3) or not r["mem"]:
            print(f"{name} run failed (exit {r['exit']}): {r['stderr']}")
            return 0
    s = ws["summary"]
    per = (ws["mem"]["VmHWM"] - base["mem"]["VmHWM"]) * 1024 / a.connections
    print(f"{a.connections} users on one shard, held {a.hold:g} s")
    print(f"  without WebSocket: shard peak RSS {base['mem']['VmHWM'] / 1024:.1f} MiB")
    print(f"  with WebSocket:    shard peak RSS {ws['mem']['VmHWM'] / 1024:.1f} MiB, "
          f"{ws['mem']['max_open']} open at once, round trips ok "
          f"{s['steps']['WS /ws']['ok']}, handshakes {s['steps']['WS /ws connect']['ok']}, "
          f"iterations ok {s['scenarios']['hold']['ok']} / {s['scenarios']['hold']['iterations']}")
    print(f"  per open WebSocket: {per / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
