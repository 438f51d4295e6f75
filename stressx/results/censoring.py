"""Censored latencies: a timed-out request's latency is only known to be at least its deadline.

stressx times every completed request (the all-requests view, `all_latency_ms`): a success at
its response, a failure at the failure, and a timeout at its deadline (`--timeout`, from the
intended send time), since how long it would have taken is unknown. The timeouts are then the
largest values, all at that bound; a percentile whose rank falls among them is *censored*: the
real value is the bound or more. The summary says which (`all_latency_censored`), the reports
print it, and a threshold on a censored percentile is judged on "at least the bound".

Plain arithmetic on counts (no stressx imports), shared by the summary, the results reader,
the thresholds and the reports.
"""
from __future__ import annotations

#: the percentile keys of a latency dict, with their percentiles (summary.LATENCY_KEYS order)
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
KEY_ORDER = ("min", "mean", "p50", "p90", "p95", "p99", "p999", "max")


def rank(p: float, n: int) -> int:
    """The 1-based rank HdrHistogram reads percentile p at among n values (hdr.Histogram):
    p% of n rounded half up, at least the first value."""
    return min(max(int(p * float(n) / 100.0 + 0.5), 1), n)


def format_ms(value_ms: float) -> str:
    """1000 -> '1 s', 250 -> '250 ms' (as thresholds print limits)."""
    return f"{value_ms / 1000:.6g} s" if value_ms >= 1000 else f"{value_ms:.6g} ms"


def censoring(total: int, timeouts: int, bound_ms: float | None) -> dict | None:
    """What is censored among `total` timed requests of which `timeouts` were recorded at the
    bound `bound_ms`; None when nothing is (no timeouts, or no bound known).

    count, fraction: the censored requests; bound_ms: the censoring bound (--timeout);
    from_percentile: percentiles above it are censored; keys: the latency keys that are
    (percentiles ranked among the timeouts, the max, the mean, the min if all timed out);
    text: the sentence the reports print."""
    if not total or not timeouts or bound_ms is None:
        return None
    timeouts = min(int(timeouts), int(total))
    known = total - timeouts
    keys = {k for k, p in PERCENTILES if rank(p, total) > known} | {"mean", "max"}
    if known == 0:
        keys.add("min")
    fraction = timeouts / total
    from_p = 100.0 * known / total
    return {"count": timeouts, "fraction": round(fraction, 6), "bound_ms": float(bound_ms),
            "from_percentile": round(from_p, 4),
            "keys": [k for k in KEY_ORDER if k in keys],
            "text": sentence(fraction, bound_ms, from_p)}


def sentence(fraction: float, bound_ms: float, from_percentile: float) -> str:
    """'20% timed out at 1 s: percentiles above p80 are ≥ 1 s (censored)'."""
    bound = format_ms(bound_ms)
    head = f"{fraction * 100:.3g}% timed out at {bound}"
    if from_percentile <= 0:
        return f"{head}: every percentile is ≥ {bound} (censored)"
    return f"{head}: percentiles above p{from_percentile:.5g} are ≥ {bound} (censored)"


def censored_key(lat_censored: dict | None, key: str) -> float | None:
    """The bound (ms) if latency key `key` is censored, else None."""
    if lat_censored and key in (lat_censored.get("keys") or ()):
        return float(lat_censored["bound_ms"])
    return None


def decide(op: str, lower: float, limit: float, strict: bool = False) -> bool | None:
    """A threshold `VALUE op limit` where VALUE is only known to be at least `lower` (or, with
    `strict`, above it: a timeout at its deadline had not answered by then): True or False when
    that settles it, None when the value could fall on either side of the limit. (A censored
    value is never below what was recorded: recording a timeout at its deadline can only lower
    a percentile, a mean or a max.)"""
    above = lower >= limit if strict else lower > limit     # VALUE > limit for certain
    at_least = lower >= limit                                 # VALUE >= limit for certain
    if op == "<":
        return False if at_least else None
    if op == "<=":
        return False if above else None
    if op == ">":
        return True if above else None
    if op == ">=":
        return True if at_least else None
    if op == "==":
        return False if above else None
    if op == "!=":
        return True if above else None
    raise ValueError(f"unknown operator {op!r}")
