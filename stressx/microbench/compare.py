"""Comparing two benchmark results directories, with a statistical test.

Per benchmark both runs have: the ratio of the mean times per call (current / baseline), the
two-sided Mann-Whitney U test on the two runs' samples, and a 95% bootstrap interval of that
ratio. A change is *significant* when both agree: p < alpha (default 0.01) and the interval
excludes 1. It is a REGRESSION when it is significant, slower, and slower by more than the
threshold (default 15%, `stressx compare --threshold`). A benchmark that now leaks, or whose
bytes per call grew beyond the threshold (and by 64 bytes or more), is a regression too.
"""
from __future__ import annotations

import math
from html import escape

from . import stats
from .result import format_bytes, format_time

DEFAULT_ALPHA = 0.01
MIN_SAMPLES = 5
BYTES_FLOOR = 64


def ratio_text(ratio: float) -> str:
    if not math.isfinite(ratio) or ratio <= 0:
        return "n/a"
    return f"{ratio:.2f}x slower" if ratio >= 1 else f"{1 / ratio:.2f}x faster"


def compare_one(name: str, base, cur, threshold_pct: float, alpha: float = DEFAULT_ALPHA) -> dict:
    a, b = base.samples_ns, cur.samples_ns
    row = {"name": name, "base_mean": base.mean, "cur_mean": cur.mean,
           "base_p99": base.p99, "cur_p99": cur.p99, "base_ops_per_s": base.ops_per_s,
           "cur_ops_per_s": cur.ops_per_s, "ratio": None, "p_value": None, "ci": None,
           "significant": False, "regression": False, "reasons": []}
    if base.mean and base.mean > 0 and cur.mean == cur.mean:
        row["ratio"] = cur.mean / base.mean
    if a is None or b is None or len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        row["verdict"] = (f"not tested: too few samples ({0 if a is None else len(a)} and "
                          f"{0 if b is None else len(b)}; {MIN_SAMPLES} needed a side)")
    else:
        _, p = stats.mann_whitney(a, b)
        lo, hi = stats.bootstrap_ratio_ci(a, b)
        row["p_value"], row["ci"] = p, [lo, hi]
        row["significant"] = bool(p < alpha and not (lo <= 1.0 <= hi))
        ratio = row["ratio"] or math.nan
        if row["significant"]:
            row["verdict"] = f"{ratio_text(ratio)} (significant)"
            if ratio > 1 and (ratio - 1) * 100 > threshold_pct:
                row["regression"] = True
                row["reasons"].append(f"{(ratio - 1) * 100:.1f}% slower, beyond {threshold_pct:g}%")
        else:
            row["verdict"] = "no significant change"
    if cur.leak and base.leak is False:
        row["regression"] = True
        row["reasons"].append(f"now leaks ({format_bytes(cur.leak_bytes_per_op)}/op kept)")
    bb, cb = base.bytes_per_op, cur.bytes_per_op
    if bb is not None and cb is not None:
        row["base_bytes_per_op"], row["cur_bytes_per_op"] = bb, cb
        if cb - bb >= BYTES_FLOOR and cb > bb * (1 + threshold_pct / 100):
            row["regression"] = True
            row["reasons"].append(f"bytes/op {format_bytes(bb)} -> {format_bytes(cb)}")
    return row


def compare(base: dict, cur: dict, threshold_pct: float, alpha: float = DEFAULT_ALPHA,
            base_name: str = "baseline", cur_name: str = "current") -> dict:
    """base, cur: name -> BenchmarkResult (files.read_results)."""
    rows = [compare_one(n, base[n], cur[n], threshold_pct, alpha) for n in cur if n in base]
    return {"kind": "benchmark", "baseline": base_name, "current": cur_name,
            "threshold_pct": threshold_pct, "alpha": alpha, "rows": rows,
            "only_baseline": [n for n in base if n not in cur],
            "only_current": [n for n in cur if n not in base],
            "regressions": [r["name"] for r in rows if r["regression"]]}


def compare_dirs(base_dir, cur_dir, threshold_pct: float, alpha: float = DEFAULT_ALPHA) -> dict:
    from .files import read_results
    return compare(read_results(base_dir), read_results(cur_dir), threshold_pct, alpha,
                   str(base_dir), str(cur_dir))


def _detail(r: dict) -> str:
    parts = []
    if r["p_value"] is not None:
        parts.append(f"p={r['p_value']:.2g}")
    if r["ci"] is not None:
        lo, hi = r["ci"]
        parts.append(f"95% CI of the ratio {lo:.3f}..{hi:.3f}")
    if r["ratio"] is not None and not r["significant"]:
        parts.insert(0, f"ratio {r['ratio']:.3f}")
    return ", ".join(parts)


def format_text(c: dict) -> str:
    lines = [f"benchmarks: {c['baseline']} -> {c['current']} (Mann-Whitney U, alpha "
             f"{c['alpha']:g}, and a 95% bootstrap interval of the mean ratio; a regression is "
             f"significant and over {c['threshold_pct']:g}% slower)"]
    width = max([len(r["name"]) for r in c["rows"]] + [9])
    for r in c["rows"]:
        mark = "  REGRESSION: " + "; ".join(r["reasons"]) if r["regression"] else ""
        lines.append(f"  {r['name']:<{width}}  {format_time(r['base_mean']):>10} -> "
                     f"{format_time(r['cur_mean']):<10}  {r['verdict']}  ({_detail(r)}){mark}")
    for key, label in (("only_baseline", "only in the baseline"), ("only_current", "only in the current run")):
        if c[key]:
            lines.append(f"  {label}: {', '.join(c[key])}")
    n = len(c["regressions"])
    lines.append(f"{n} regression{'s' if n != 1 else ''}" + (f": {', '.join(c['regressions'])}" if n else ""))
    return "\n".join(lines)


def format_markdown(c: dict) -> str:
    lines = [f"## Benchmarks: `{c['baseline']}` -> `{c['current']}`", "",
             "| benchmark | baseline mean | current mean | change | p | 95% CI of ratio | verdict |",
             "|---|---:|---:|---|---:|---|---|"]
    for r in c["rows"]:
        ci = f"{r['ci'][0]:.3f}..{r['ci'][1]:.3f}" if r["ci"] else "-"
        p = f"{r['p_value']:.2g}" if r["p_value"] is not None else "-"
        verdict = ("**REGRESSION**: " + "; ".join(r["reasons"])) if r["regression"] else "ok"
        lines.append(f"| {r['name']} | {format_time(r['base_mean'])} | {format_time(r['cur_mean'])} "
                     f"| {r['verdict']} | {p} | {ci} | {verdict} |")
    return "\n".join(lines) + "\n"


def format_html(c: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(r['name'])}</td><td>{format_time(r['base_mean'])}</td>"
        f"<td>{format_time(r['cur_mean'])}</td><td>{escape(r['verdict'])}</td>"
        f"<td>{escape(_detail(r))}</td><td>{'REGRESSION' if r['regression'] else 'ok'}</td></tr>"
        for r in c["rows"])
    return ("<!doctype html><meta charset=utf-8><title>stressx benchmark comparison</title>"
            f"<h1>{escape(c['baseline'])} &rarr; {escape(c['current'])}</h1><table>"
            "<tr><th>benchmark</th><th>baseline</th><th>current</th><th>change</th><th>test</th>"
            f"<th>verdict</th></tr>{rows}</table>\n")


FORMATTERS = {"text": format_text, "md": format_markdown, "html": format_html}
