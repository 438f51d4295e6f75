"""Judging runs: thresholds (at the end and over a sliding window), comparisons with a
baseline, and safety limits that stop a run.

    thresholds.py  'p99<200ms' expressions, criteria sets, the sliding-window judge
    compare.py     baseline vs current per metric, and named baselines
    safety.py      host and latency limits during a run: warn, back off or stop
"""
