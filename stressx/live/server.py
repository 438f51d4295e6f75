"""The control API and the live page: an aiohttp server in a thread of the coordinator process,
beside the run as one of its companions (it sees the run through its RunControl, as every
companion does, and never touches a request).

The shards never wait for it: a command writes the rate change into their shared memory (the
RunControl's handshake, picked up by each shard's 10 ms sweep), and what it shows is what the
coordinator already cut (each interval row, the events companions emit). Every route is checked
in the order: Host header (403: DNS rebinding), bearer token if one is set (401), a browser's
Origin on POST and the WebSocket (403), body size (413), then the body itself (400 naming the
field). Nothing here prints or records the token.
"""
from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import math
import socket
import threading
import time

from aiohttp import WSMsgType, web

from ..engine.coordinator import Companion
from ..errors import ConfigError
from ..results.hdr import Histogram
from . import commands as _commands, metrics as _metrics, openapi as _openapi
from .settings import ControlSettings

MAX_BODY = 64 * 1024
MAX_ROWS = 3600                 # interval rows kept for /v1/intervals (the last hour)
WS_QUEUE = 256                  # events waiting for one WebSocket client before it is dropped
STOP_WAIT_S = 2.0
COMMAND_AHEAD_S = 0.025         # a command's answer shows the target from when it applies


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):                # numpy scalars
        return _json_safe(value.item())
    return value


def public_row(row: dict) -> dict:
    """An interval row as the API shows it: JSON values, no histograms."""
    return _json_safe({k: v for k, v in row.items() if not k.endswith("histogram")})


def phase_at(shape, t_s: float) -> str | None:
    """The planned phase at t_s: a part's name (a progressive preset's phase), else the
    shape's name."""
    return None if shape is None else shape.phase_at(t_s)[0]


class LiveServer(Companion):
    """The control API of one run. bind() listens (before the run: a port in use is a
    ConfigError, exit 2, nothing sent); the coordinator then calls the Companion hooks; the
    server stops when the run's sending has ended (stop())."""

    name = "control"

    def __init__(self, settings: ControlSettings, *, burners=None, echo=None):
        self.settings = settings
        self.burners = burners                  # the run's BurnerGroup, if it has burners
        self.echo = echo or (lambda line: None)
        self.sock: socket.socket | None = None
        self.port = settings.port
        self.rows: collections.deque = collections.deque(maxlen=MAX_ROWS)
        self.totals = {k: 0 for k in ("sent", "completed", "ok", "errors", "dropped", "late",
                                      "due", "bytes_in", "bytes_out")}
        self.hist = Histogram.empty()           # the run's successful-response latency so far
        self.all_hist = Histogram.empty()
        self.paused_from: float | int | None = None   # the rate / connections a pause held
        self.phase: str | None = None
        self.requests = 0                       # HTTP requests and WebSocket messages served
        self.refused = collections.Counter()    # refusals by status
        self.events = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._clients: set = set()
        self._stopped = False
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def bind(self) -> None:
        """Listen now (before the run starts): ConfigError naming --control when the address
        cannot be bound."""
        if self.sock is not None:
            return
        s = self.settings
        family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
        host = "127.0.0.1" if s.host == "localhost" else s.host
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, s.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ConfigError("--control", f"cannot listen on {s.address}: {exc.strerror}") from None
        sock.setblocking(False)
        self.sock = sock
        self.port = sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.settings.host == "localhost" else self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def prepare(self, config, out_dir) -> None:
        self.bind()
        self.config = config
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="stressx-control",
                                        daemon=True)
        self._thread.start()
        ready.wait(5.0)
        self.control.subscribe(self._on_event)
        self.echo(f"stressx: control API and live page on {self.url}/"
                  + (" (bearer token required)" if self.settings.token else ""))

    def start(self, start_ns: int) -> None:
        self.phase = phase_at(self.control.config.shape, 0.0)
        self._publish({"event": "state", "state": "running", "t_s": 0.0})

    def on_interval(self, t_s: float, row: dict):
        h = row.get("latency_histogram")
        if isinstance(h, Histogram):
            self.hist += h
        h = row.get("all_latency_histogram")
        if isinstance(h, Histogram):
            self.all_hist += h
        shown = public_row(row)
        with self._lock:
            for key in self.totals:
                self.totals[key] += int(row.get(key) or 0)
            self.rows.append(shown)
        self._publish({"event": "interval", "row": shown, "status": self.status()})
        phase = self.current_phase()
        if phase != self.phase:
            self.phase = phase
            self._publish({"event": "phase", "phase": phase, "t_s": round(t_s, 3)})
        return None

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._loop is None:
            if self.sock is not None:
                self.sock.close()
            return
        self._publish({"event": "state", "state": "done", "t_s": round(self.control.elapsed(), 3)})
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(STOP_WAIT_S)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)

    def finish(self) -> dict:
        self.stop()
        return dict(self.settings.to_json(), url=self.url, requests=self.requests,
                    refused={str(k): v for k, v in sorted(self.refused.items())},
                    events=self.events)

    # -- what is shown ---------------------------------------------------------------------
    def current_phase(self) -> str | None:
        c = self.control
        if self.paused_from is not None:
            return "paused"
        if c.stopping:
            return "stopping"
        if c.schedule.change_count or c.schedule.connections is not None:
            return "live"                      # a live change holds: the rest of the shape is dropped
        if not c.open_model:
            return phase_at(c.config.users_shape, c.elapsed()) or "closed"
        return phase_at(c.config.shape, c.elapsed())

    def status(self, ahead_s: float = 0.0) -> dict:
        """The run now; `ahead_s` later for the target (a command's answer shows the target
        it set, which takes effect in the shards 20 ms after it was asked)."""
        c = self.control
        with self._lock:
            latest = self.rows[-1] if self.rows else None
            totals = dict(self.totals)
        elapsed = c.elapsed()
        rate = c.rate_at(elapsed + ahead_s) if c.open_model and c.start_ns else None
        if c.open_model and not c.start_ns:
            rate = c.config.shape.rate_at(0.0)
        return _json_safe({
            "state": c.state, "elapsed_s": round(elapsed, 3), "model": c.config.model,
            "phase": self.current_phase(), "paused": self.paused_from is not None,
            "rate": round(rate, 6) if rate is not None else None,
            "connections": c.connections_now(),
            "duration_s": c.config.planned_seconds(),
            "stopping": c.stopping,
            "interval": latest, "totals": totals,
            "latency_ms": self.hist.summary_ms() if self.hist.total else None,
            "all_latency_ms": self.all_hist.summary_ms() if self.all_hist.total else None,
            "changes": len(c.changes) + c.changes_dropped,
            "burners": self._burner_levels(),
        })

    def intervals(self, since: float | None) -> list[dict]:
        with self._lock:
            rows = list(self.rows)
        return [r for r in rows if since is None or r["t_s"] > since]

    def _burner_levels(self) -> dict | None:
        g = self.burners
        if g is None:
            return None
        return {h.name: {"kind": h.kind, "token": h.spec.token, "pid": h.pid,
                         "running": bool(h.proc and h.proc.poll() is None)} for h in g.handles}

    # -- commands --------------------------------------------------------------------------
    def execute(self, command: str, body, source: str) -> dict:
        """Validate and apply one command (REST or WebSocket); returns the new status.
        CommandError (400/409) when it is bad or does not fit the run."""
        args = _commands.parse(command, body)
        c = self.control
        if c.state == "done" or (c.stopping and command not in ("emergency-stop",)):
            raise _commands.CommandError("state", f"the run is {c.state if c.state == 'done' else 'stopping'}: "
                                                  f"nothing to {command}", status=409)
        if c.state == "starting" and command not in ("stop", "emergency-stop"):
            raise _commands.CommandError("state", f"the run has not started yet: nothing to {command}",
                                         status=409)
        if command == "rate":
            self._change(args, source)
        elif command == "pause":
            if self.paused_from is None:
                if c.open_model:
                    self.paused_from = c.rate_at()
                    c.change_rate(0.0, source=source)
                else:
                    self.paused_from = c.connections_now()
                    c.change_connections(0, source=source)
        elif command == "resume":
            if self.paused_from is not None:
                held, self.paused_from = self.paused_from, None
                if c.open_model:
                    c.change_rate(held, source=source)
                else:
                    c.change_connections(held, source=source)
        elif command == "stop":
            c.stop(args.get("reason") or f"stopped through the control API ({source})", source=source)
        elif command == "emergency-stop":
            reason = args.get("reason") or f"emergency stop through the control API ({source})"
            if self.burners is not None:
                self.burners.emergency_stop(reason)
            c.stop(reason, now=True, source=source)
        elif command == "burners":
            self._burners(args["burners"], source)
        self.echo(f"stressx: control: {command} {json.dumps(args) if args else ''} ({source})".rstrip())
        return self.status(ahead_s=COMMAND_AHEAD_S + c.min_delay_s)

    def _change(self, args: dict, source: str) -> None:
        c = self.control
        if "connections" in args:
            if c.open_model:
                raise _commands.CommandError("connections", 'an open-model run has a rate: give {"rate": R} or {"scale": F}')
            n = args["connections"]
            if c.max_connections is not None and n > c.max_connections:
                raise _commands.CommandError("connections", f"must be between 1 and {c.max_connections}, got {n}")
            self.paused_from = None
            c.change_connections(n, source=source)
            return
        if not c.open_model:
            field = "rate" if "rate" in args else "scale"
            raise _commands.CommandError(field, 'a closed-model run has connections: give {"connections": N}')
        if "scale" in args:
            base = self.paused_from if self.paused_from is not None else c.rate_at()
            rate = base * args["scale"]
            try:
                rate = _commands.parse_rate(rate, "scale")
            except ConfigError as exc:
                raise _commands.CommandError("scale", f"the rate it gives ({rate:g}/s): "
                                                      f"{str(exc).split(': ', 1)[1]}") from None
        else:
            rate = args["rate"]
        self.paused_from = None
        c.change_rate(rate, source=source)

    def _burners(self, levels: dict, source: str) -> None:
        g = self.burners
        if g is None:
            raise _commands.CommandError(next(iter(levels)), "this run has no burners (start them with --burn)")
        from ..hostload.burners import parse_spec
        specs = {}
        for kind, level in levels.items():
            if not any(h.kind == kind for h in g.handles):
                raise _commands.CommandError(kind, f"this run has no {kind} burner (start one with --burn {kind}=...)")
            try:
                specs[kind] = parse_spec(f"{kind}={level}")
            except ConfigError as exc:
                raise _commands.CommandError(kind, f"{kind}: {str(exc).split(': ', 1)[-1]}") from None
            if specs[kind].follow:
                raise _commands.CommandError(kind, f"{kind}: a live level is a level or steps, not follow")
        for kind, spec in specs.items():
            g.set_spec(kind, spec)
            self.control.record(f"burner:{kind}", levels[kind], source)

    # -- events to WebSocket clients -------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        if event.get("event") in ("change",) or event.get("event") in ("safety", "threshold"):
            self._publish(event)

    def _publish(self, event: dict) -> None:
        """Send an event to every WebSocket client (from any thread; never waits)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self.events += 1
        text = json.dumps(_json_safe(event))
        try:
            loop.call_soon_threadsafe(self._fan_out, text)
        except RuntimeError:
            pass                                # the loop is closing

    def _fan_out(self, text: str) -> None:
        for ws, queue in list(self._clients):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:           # a client that does not read: dropped
                self._clients.discard((ws, queue))
                asyncio.ensure_future(ws.close(code=1008, message=b"too slow"))

    # -- the server ------------------------------------------------------------------------
    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            app = self.app()
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.SockSite(self._runner, self.sock).start())
        finally:
            ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        for ws, queue in list(self._clients):
            queue.put_nowait(None)
        await asyncio.sleep(0.05)               # let the last events go out
        if self._runner is not None:
            await self._runner.cleanup()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/v1/intervals", self._intervals)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/openapi.json", self._openapi)
        app.router.add_get("/v1/ws", self._ws)
        for command in _commands.COMMANDS:
            app.router.add_post(f"/v1/{command}", self._command_handler(command))
        return app

    def _allowed_host(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        h = host_header.strip().lower()
        if h.startswith("["):
            name, _, rest = h[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            name, _, port = h.partition(":") if h.count(":") == 1 else (h, "", "")
        if port and port != str(self.port):
            return False
        if name == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False                       # a name: what DNS rebinding would send
        bound = ipaddress.ip_address("127.0.0.1" if self.settings.host == "localhost" else self.settings.host)
        return ip == bound or bound.is_unspecified or (bound.is_loopback and ip.is_loopback)

    def _refuse(self, status: int, field: str, message: str) -> web.Response:
        self.refused[status] += 1
        return web.json_response({"error": message, "field": field}, status=status,
                                 headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        self.requests += 1
        if not self._allowed_host(request.headers.get("Host")):
            return self._refuse(403, "Host", f"Host must name the control address ({self.settings.address}) or localhost")
        token = self.settings.token
        if token is not None:
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return self._refuse(401, "Authorization", "a bearer token is required: Authorization: Bearer TOKEN")
        if request.method == "POST" or request.path == "/v1/ws":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"http://{request.headers.get('Host')}":
                return self._refuse(403, "Origin", f"Origin {origin[:100]!r} is not this page's own")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._refuse(413, "body", f"body over {MAX_BODY} bytes")
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "body", f"body over {MAX_BODY} bytes")
        except _commands.CommandError as exc:
            return self._refuse(exc.status, exc.field, str(exc))

    async def _page(self, request):
        from .page import page_html
        return web.Response(text=page_html(), content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'"})

    async def _status(self, request):
        return web.json_response(self.status())

    async def _intervals(self, request):
        since = request.query.get("since")
        value = None
        if since is not None:
            try:
                value = float(since)
                if not math.isfinite(value):
                    raise ValueError
            except ValueError:
                raise _commands.CommandError("since", f"expected seconds after the start like 10 or 12.5, got {since[:100]!r}") from None
        return web.json_response({"intervals": self.intervals(value)})

    async def _metrics(self, request):
        return web.Response(body=_metrics.render(self).encode(),
                            headers={"Content-Type": _metrics.CONTENT_TYPE})

    async def _openapi(self, request):
        return web.json_response(_openapi.document(self.url))

    def _command_handler(self, command: str):
        async def handler(request: web.Request):
            raw = await request.read()
            body = None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise _commands.CommandError("body", f"not valid JSON: {exc}") from None
            status = await asyncio.get_running_loop().run_in_executor(
                None, self.execute, command, body, "api")
            return web.json_response(status)
        handler.__name__ = f"post_{command.replace('-', '_')}"
        return handler

    async def _ws(self, request):
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(WS_QUEUE)
        client = (ws, queue)
        self._clients.add(client)
        await ws.send_str(json.dumps({"event": "hello", "status": self.status()}))

        async def sender():
            while True:
                text = await queue.get()
                if text is None or ws.closed:
                    break
                await ws.send_str(text)
            await ws.close()
        task = asyncio.ensure_future(sender())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self.requests += 1
                reply = await self._ws_command(msg.data)
                queue.put_nowait(json.dumps(_json_safe(reply)))
        finally:
            self._clients.discard(client)
            task.cancel()
        return ws

    async def _ws_command(self, text: str) -> dict:
        try:
            try:
                message = json.loads(text)
            except ValueError as exc:
                raise _commands.CommandError("body", f"not valid JSON: {exc}") from None
            if not isinstance(message, dict):
                raise _commands.CommandError("body", "expected a JSON object")
            message = dict(message)
            command = message.pop("command", None)
            ident = message.pop("id", None)
            status = await asyncio.get_running_loop().run_in_executor(
                None, self.execute, command, message, "websocket")
            return {"event": "reply", "id": ident, "command": command, "ok": True, "status": status}
        except _commands.CommandError as exc:
            self.refused[exc.status] += 1
            return {"event": "reply", "ok": False, "error": str(exc), "field": exc.field}
