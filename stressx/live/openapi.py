"""The control API's OpenAPI 3.1 document, served at /v1/openapi.json. tests/test_live.py checks
that it names every route the server has and nothing else, and fuzzes the server from it."""
from __future__ import annotations

from .._version import __version__

_ERROR = {"type": "object", "required": ["error", "field"],
          "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}
_STATUS = {
    "type": "object",
    "required": ["state", "elapsed_s", "model", "phase", "paused", "rate", "connections",
                 "interval", "totals", "changes"],
    "properties": {
        "state": {"enum": ["starting", "running", "stopping", "done"]},
        "elapsed_s": {"type": "number", "description": "seconds since the common start"},
        "model": {"enum": ["open", "closed"]},
        "phase": {"type": ["string", "null"], "description": "the planned phase now (a progressive preset's name, else the shape's), or live / paused / stopping"},
        "paused": {"type": "boolean"},
        "rate": {"type": ["number", "null"], "description": "open model: the target rate now, requests/s"},
        "connections": {"type": ["integer", "null"], "description": "closed model: the target number of connections now"},
        "duration_s": {"type": ["number", "null"]},
        "stopping": {"type": ["string", "null"]},
        "interval": {"type": ["object", "null"], "description": "the last interval row, as in intervals.arrows"},
        "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
        "latency_ms": {"type": ["object", "null"]},
        "all_latency_ms": {"type": ["object", "null"]},
        "changes": {"type": "integer"},
        "burners": {"type": ["object", "null"]},
    },
}
_REASON = {"type": "object", "additionalProperties": False,
           "properties": {"reason": {"type": "string", "maxLength": 200}}}


def _post(summary: str, schema: dict | None, required: bool = False) -> dict:
    op = {"summary": summary, "responses": {
        "200": {"description": "done: the status after it", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
        "400": {"description": "a bad body or value, naming the field", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "401": {"description": "no or wrong bearer token"},
        "403": {"description": "Host or Origin refused"},
        "409": {"description": "the run is stopping or done", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "413": {"description": "body over 64 KiB"},
    }}
    if schema is not None:
        op["requestBody"] = {"required": required, "content": {"application/json": {"schema": schema}}}
    return {"post": op}


def _get(summary: str, content_type: str, schema: dict | None = None, params=None) -> dict:
    responses = {"200": {"description": summary, "content": {content_type: {"schema": schema or {"type": "string"}}}},
                 "401": {"description": "no or wrong bearer token"},
                 "403": {"description": "Host refused"}}
    op = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
        responses["400"] = {"description": "a bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {"get": op}


def document(server_url: str = "http://127.0.0.1:8089") -> dict:
    rate_body = {"oneOf": [
        {"type": "object", "required": ["rate"], "additionalProperties": False,
         "properties": {"rate": {"oneOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 10_000_000},
                                           {"type": "string", "description": "100, 100/s, 600/m"}]}}},
        {"type": "object", "required": ["scale"], "additionalProperties": False,
         "properties": {"scale": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000}}},
        {"type": "object", "required": ["connections"], "additionalProperties": False,
         "properties": {"connections": {"type": "integer", "minimum": 1, "maximum": 1_000_000}}},
    ]}
    burners_body = {"type": "object", "additionalProperties": False, "minProperties": 1,
                    "properties": {k: {"type": "string", "description": d} for k, d in
                                   (("cpu", "per-core utilisation: 50%"), ("mem", "resident size: 2G or 25%"),
                                    ("io", "write rate: 50MB/s"))}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "stressx control API", "version": __version__,
                 "description": "Watch and steer a running stressx test. Every route needs the bearer token when one is set."},
        "servers": [{"url": server_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Status": _STATUS, "Error": _ERROR},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/": _get("the live page (self-contained HTML)", "text/html"),
            "/v1/status": _get("the run now", "application/json", {"$ref": "#/components/schemas/Status"}),
            "/v1/intervals": _get("interval rows after `since` (the last hour at most)", "application/json",
                                  {"type": "object", "properties": {"intervals": {"type": "array", "items": {"type": "object"}}}},
                                  [{"name": "since", "in": "query", "required": False,
                                    "schema": {"type": "number"},
                                    "description": "seconds after the start: rows whose t_s is later"}]),
            "/metrics": _get("OpenMetrics text: stressx_* counters, gauges, latency quantiles",
                             "application/openmetrics-text"),
            "/v1/openapi.json": _get("this document", "application/json", {"type": "object"}),
            "/v1/ws": _get("WebSocket: each interval, phase changes, changes, safety and threshold "
                           "events; send {\"command\": \"rate\", \"rate\": 200} etc.", "application/json"),
            "/v1/rate": _post("set the open model's rate ({rate} or {scale}) or the closed model's connections", rate_body, True),
            "/v1/pause": _post("pause: rate 0 (closed model: 0 connections)", _REASON),
            "/v1/resume": _post("resume at the rate (connections) held before the pause", _REASON),
            "/v1/stop": _post("graceful stop: in-flight requests drain, results written, `stopped` in the summary", _REASON),
            "/v1/emergency-stop": _post("emergency stop: load and burners end within 1 s, results written, exit 4", _REASON),
            "/v1/burners": _post("set burner levels by kind", burners_body, True),
        },
    }
