"""The statistics of benchmark samples: the HDR histogram they are recorded into, percentiles,
the Mann-Whitney U test and a bootstrap interval for comparisons, and the least-squares slope
the leak check judges.

Per-call times are recorded in an HDR histogram of integer nanoseconds (1 ns .. 1 hour, 3
significant figures: every value within 0.1 %), HdrHistogram's standard layout, so any
HdrHistogram tool reads the encoded histograms a results directory keeps.
"""
from __future__ import annotations

import math

import numpy as np

#: 1 ns .. 1 hour in ns, 3 significant figures.
HDR_LOWEST_NS = 1
HDR_HIGHEST_NS = 3_600_000_000_000
HDR_SIGNIFICANT_FIGURES = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new_histogram():
    from hdrh.histogram import HdrHistogram
    return HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_SIGNIFICANT_FIGURES)


def histogram_of(per_call_ns) -> "object":
    """An HDR histogram of per-call times (ns; rounded, negative ones at 0, clamped to 1 h)."""
    h = new_histogram()
    values = np.clip(np.rint(np.asarray(per_call_ns, dtype=np.float64)), 0, HDR_HIGHEST_NS)
    uniq, counts = np.unique(values.astype(np.int64), return_counts=True)
    for v, c in zip(uniq.tolist(), counts.tolist()):
        h.record_value(v, c)
    return h


def decode_histogram(text: str):
    from hdrh.histogram import HdrHistogram
    return HdrHistogram.decode(text)


def histogram_percentiles(h) -> dict[str, float]:
    """p50 .. p999 in ns (HdrHistogram's value at percentile: the highest value equivalent to
    the bucket's, as every HdrHistogram implementation reports)."""
    if h.get_total_count() == 0:
        return {k: math.nan for k in PERCENTILES}
    got = h.get_percentile_to_value_dict(list(PERCENTILES.values()))
    return {k: float(got[p]) for k, p in PERCENTILES.items()}


def histogram_values(h) -> np.ndarray:
    """The recorded values back out of a histogram (each bucket's median-equivalent value, as
    often as counted): samples for the tests when only histograms were kept."""
    values, counts = [], []
    for item in h.get_recorded_iterator():
        v = item.value_iterated_to
        lo, hi = h.get_lowest_equivalent_value(v), h.get_highest_equivalent_value(v)
        values.append(lo + (hi - lo + 1) // 2)
        counts.append(item.count_at_value_iterated_to)
    return np.repeat(np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.int64))


def summarize(per_call_ns) -> dict:
    """mean, stdev, min, max (exact, from the samples) and p50 .. p999 (from the histogram),
    all in ns, with the histogram itself."""
    x = np.asarray(per_call_ns, dtype=np.float64)
    h = histogram_of(x)
    if x.size == 0:
        out = {k: math.nan for k in ("mean", "stdev", "min", "max")}
    else:
        out = {"mean": float(x.mean()), "stdev": float(x.std(ddof=1)) if x.size > 1 else 0.0,
               "min": float(x.min()), "max": float(x.max())}
    out.update(histogram_percentiles(h))
    out["histogram"] = h
    return out


# -- comparisons --------------------------------------------------------------------------------

def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    x = np.asarray(x)
    sorter = np.argsort(x, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size, dtype=np.intp)
    xs = x[sorter]
    obs = np.r_[True, xs[1:] != xs[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def mann_whitney(a, b) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of `a` against `b`: (U of a, p value), by the normal
    approximation with the tie correction and a continuity correction (sound from about 8
    samples a side; benchmark runs have far more). p is 1.0 when every value is equal."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return math.nan, 1.0
    both = np.concatenate([a, b])
    ranks = rankdata(both)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n2
    _, counts = np.unique(both, return_counts=True)
    ties = float(((counts.astype(np.float64) ** 3) - counts).sum())
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1, 1.0
    mu = n1 * n2 / 2.0
    diff = u1 - mu
    z = (abs(diff) - 0.5) / math.sqrt(var) if abs(diff) >= 0.5 else 0.0
    return u1, min(1.0, math.erfc(z / math.sqrt(2.0)))


def bootstrap_ratio_ci(base, cur, level: float = 0.95, resamples: int = 2000,
                       seed: int = 12345) -> tuple[float, float]:
    """A percentile bootstrap interval of mean(cur) / mean(base) (seeded: the same data give
    the same interval)."""
    base = np.asarray(base, dtype=np.float64)
    cur = np.asarray(cur, dtype=np.float64)
    if base.size == 0 or cur.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    chunk = max(1, int(4_000_000 // max(base.size, cur.size)))
    done = 0
    while done < resamples:
        k = min(chunk, resamples - done)
        mb = base[rng.integers(0, base.size, size=(k, base.size))].mean(axis=1)
        mc = cur[rng.integers(0, cur.size, size=(k, cur.size))].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[done:done + k] = mc / mb
        done += k
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.nanpercentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


# -- leak regression ----------------------------------------------------------------------------

def slope(x, y) -> tuple[float, float]:
    """Least-squares slope of y on x and its standard error (inf when undetermined)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 3:
        return math.nan, math.inf
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx == 0:
        return math.nan, math.inf
    b = float(((x - xm) * (y - ym)).sum() / sxx)
    resid = y - (ym + b * (x - xm))
    s2 = float((resid ** 2).sum()) / (x.size - 2)
    return b, math.sqrt(s2 / sxx)
