"""/metrics: the run so far as OpenMetrics text (Prometheus scrapes it), every name stressx_*.

Counters are totals over the interval rows cut so far (the same rows as intervals.arrows, so
they add up to the summary at the end); gauges are the latest row's or the target now; the
latency summary's quantiles are over every successful response so far (the merged interval
histograms), in seconds.
"""
from __future__ import annotations

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
QUANTILES = (0.5, 0.9, 0.99, 0.999)

COUNTERS = (
    ("due", "due", "Sends whose intended time came within the run so far."),
    ("requests", "sent", "Requests written to a socket so far."),
    ("completed", "completed", "Requests completed so far (ok + errors)."),
    ("ok", "ok", "Successful responses so far (an expected status)."),
    ("errors", "errors", "Failed requests so far, every kind."),
    ("dropped", "dropped", "Due sends that never reached a socket so far."),
    ("late", "late", "Open model: sends that waited for a connection so far."),
    ("received_bytes", "bytes_in", "Bytes received so far."),
    ("sent_bytes", "bytes_out", "Bytes sent so far."),
)
GAUGES = (
    ("rps", "rps", "Completions per second over the last interval."),
    ("sent_rps", "sent_rps", "Sends per second over the last interval."),
    ("connections_open", "conn_open", "Open connections at the end of the last interval."),
    ("inflight", "inflight", "Requests in flight at the end of the last interval."),
    ("queued", "queued", "Open model: sends waiting for a connection at the end of the last interval."),
)


def _num(value) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def render(server) -> str:
    """The exposition text for a LiveServer's run now."""
    status = server.status()
    row = status["interval"] or {}
    out = []

    def family(name, kind, help_text, samples):
        out.append(f"# TYPE stressx_{name} {kind}")
        out.append(f"# HELP stressx_{name} {help_text}")
        for suffix, labels, value in samples:
            out.append(f"stressx_{name}{suffix}{labels} {_num(value)}")

    for name, key, help_text in COUNTERS:
        family(name, "counter", help_text, [("_total", "", status["totals"].get(key, 0))])
    for name, key, help_text in GAUGES:
        family(name, "gauge", help_text, [("", "", row.get(key))])
    family("elapsed_seconds", "gauge", "Seconds since the common start.", [("", "", status["elapsed_s"])])
    family("target_rate", "gauge", "Open model: the target rate now, requests per second (NaN: closed model).",
           [("", "", status["rate"])])
    family("target_connections", "gauge", "Closed model: the target number of connections now (NaN: open model).",
           [("", "", status["connections"])])
    family("paused", "gauge", "1 while paused through the control API.", [("", "", status["paused"])])
    family("saturated", "gauge", "1 when the last interval was saturated (the client missed its schedule).",
           [("", "", bool(row.get("saturated")))])
    family("running", "gauge", "1 while the run is sending.", [("", "", status["state"] == "running")])
    family("changes", "counter", "Live changes made so far (rate, connections, burners, pause, stop).",
           [("_total", "", status["changes"])])
    for name, hist, what in (("latency_seconds", server.hist, "successful responses"),
                             ("all_latency_seconds", server.all_hist, "every completed request")):
        samples = []
        if hist.total:
            for q in QUANTILES:
                samples.append(("", f'{{quantile="{q:g}"}}', hist.value_at_percentile(q * 100) / 1e6))
        samples.append(("_sum", "", hist.mean() * hist.total / 1e6 if hist.total else 0.0))
        samples.append(("_count", "", hist.total))
        family(name, "summary", f"Latency of {what} so far (open model: from the intended send time).",
               samples)
    lag = row.get("send_lag_ms_p99")
    family("send_lag_p99_seconds", "gauge", "99th percentile send lag over the last interval.",
           [("", "", lag / 1000 if lag is not None else None)])
    out.append("# EOF")
    return "\n".join(out) + "\n"
