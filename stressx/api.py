"""The library face of stressx: `run()` and `run_async()` for perf scripts and pytest."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from .engine.coordinator import Coordinator
from .load import config as _config


class Result:
    """A finished run: the summary figures as attributes, the results directory as `out_dir`.

    `result.summary` is exactly what summary.json holds. `out_dir` is None when the run was
    asked for no output directory (its files were written to a temporary one and removed).
    """

    def __init__(self, summary: dict, out_dir: Path | None):
        self.summary = summary
        self.out_dir = out_dir

    def __getattr__(self, name):
        try:
            return self.__dict__["summary"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        return self.summary[key]

    def check(self, *expressions: str, criteria: str | None = None) -> list:
        """Judge threshold expressions ('p99<200ms', 'error_rate<1%', 'search:p95<50ms') or a
        named criteria set against this run: a list of thresholds.ThresholdResult."""
        from .judge.thresholds import evaluate, resolve
        return evaluate(resolve(expressions, criteria, option="check"), self.summary)

    def assert_thresholds(self, *expressions: str, criteria: str | None = None) -> None:
        """For pytest: raise AssertionError listing every failed threshold (and a run that was
        interrupted or aborted, whose figures cannot pass)."""
        failed = [r.message for r in self.check(*expressions, criteria=criteria) if not r.passed]
        if self.summary.get("interrupted") or self.summary.get("aborted"):
            failed.append(f"run {'interrupted' if self.summary.get('interrupted') else 'aborted'}: "
                          f"{self.summary.get('aborted') or self.summary.get('interrupted')}")
        if failed:
            raise AssertionError("stressx thresholds failed:\n  " + "\n  ".join(failed))

    @property
    def ok_ratio(self) -> float:
        return self.summary["ok"] / self.summary["completed"] if self.summary["completed"] else 0.0

    def __repr__(self) -> str:
        s = self.summary
        p99 = (s["latency_ms"] or {}).get("p99")
        return (f"<stressx.Result {s['model']} {s['requests']} requests, {s['rps']:.0f} req/s, "
                f"ok {s['ok']}, errors {s['error_count']}, p99 {p99} ms, saturated {s['saturated']}>")


def run(url: str, *, out: str | Path | None = None, echo=None, companions=(), burn=(),
        safety=(), **options) -> Result:
    """Run one load test and return its Result. Options are the CLI's: rate, connections,
    max_connections, duration, requests, workers, timeout, method, headers, body, insecure,
    ca_file, progress, shape / users (shapes.Shape), workload, scenarios; `burn` and `safety`
    take the --burn / --safety texts ('cpu=50%', 'mem>90%:stop'); `companions` adds coordinator
    companions (thresholds.WindowThresholds, adaptive.AdaptiveRamp...). Every run samples host
    metrics. Raises ConfigError (a ValueError) for a bad option."""
    from .hostload.burners.session import companions_for
    options.setdefault("progress", False)
    cfg = _config.resolve(url, **options)
    companions = companions_for(burn, safety, config=cfg, echo=echo) + list(companions)
    tmp = None
    if out is None:
        tmp = tempfile.mkdtemp(prefix="stressx-")
    try:
        summary = Coordinator(cfg, out or tmp, echo=echo, companions=companions).run()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return Result(summary, Path(out) if out else None)


async def run_async(url: str, **options) -> Result:
    """run() for async code: the coordinator runs in a worker thread, the loop stays free."""
    return await asyncio.to_thread(run, url, **options)
