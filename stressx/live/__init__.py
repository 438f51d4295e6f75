"""Watch and steer a running test: the control API (REST, WebSocket, OpenMetrics) and the live
web page, served from the coordinator process while the run goes on.

    settings.py   --control [HOST:]PORT and --control-token: parsed, and refused when unsafe
    commands.py   what a client may ask (rate, scale, connections, pause, stop...), validated
    server.py     the aiohttp server: a companion of the run, in a thread of its own
    openapi.py    the API's OpenAPI document (served, and checked against the routes by a test)
    metrics.py    the OpenMetrics text of /metrics
    page.py       the live page: one self-contained HTML file, plotly embedded
"""
from .settings import ControlSettings, resolve_control

__all__ = ["ControlSettings", "resolve_control"]
