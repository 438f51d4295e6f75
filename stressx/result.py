"""The typed Result of a run, and the exit code a verdict gives (what `stressx run` exits with).

A Result holds summary.json (`result.summary`, unchanged) and the verdict of the checks the run
was given; its figures are attributes named as in summary.json, set once from it.
"""
from __future__ import annotations

from dataclasses import InitVar, dataclass, field, fields
from pathlib import Path

from .errors import EXIT_OK, EXIT_THRESHOLDS, SIGNAL_EXIT

INTERVALS_FILE = "intervals.arrows"
_INTERRUPTED_EXIT = {sig.name: code for sig, code in SIGNAL_EXIT.items()}


def verdict_exit_code(summary: dict, verdicts: list[dict], comparison: dict | None) -> int:
    """The exit code of a judged run. The run's own when that is not 0 (3 a window abort, 4 a
    safety stop or a lost shard, 130/143 interrupted: those say more than a threshold verdict on
    a cut-short run); else 3 when a threshold failed or a regression was found; else 0. An
    interrupted run is never 0."""
    code = summary.get("exit_code") or EXIT_OK
    if code == EXIT_OK and (any(not v["passed"] for v in verdicts)
                            or (comparison is not None and comparison["regressions"])):
        code = EXIT_THRESHOLDS
    if code == EXIT_OK and summary.get("interrupted"):
        code = _INTERRUPTED_EXIT.get(summary["interrupted"], 130)
    return code


def _figure():
    return field(init=False, repr=False, default=None)


@dataclass(eq=False)
class Result:
    """A finished run: its figures, its verdict and where its files are.

    Figures (summary.json's keys; `result.summary` is that whole dict, `result[key]` one key):

      requests, completed, ok     sends written; requests completed (ok + errors); successes
      error_count, errors         failed requests, and their count by kind ({"timeout": 2})
      status                      responses by status code ({"200": 998})
      due, late, dropped, dropped_reasons, abandoned, late_at_max_connections
                                  the open model's accounting (what was due, sent late, not sent)
      rps, sent_rps               completions per second of the run window; sends per second
                                  of the send window
      rate_target                 the shape's mean target over the send window (None: closed)
      duration_s, send_window_s, run_window_s
      latency_ms                  successful responses (from the intended send time in the open
                                  model): min, mean, p50, p90, p95, p99, p999, max
      all_latency_ms, all_latency_censored, failure_latency_ms, latency_uncorrected_ms,
      send_lag_ms, latency_basis  the other latency views (README: What the numbers mean)
      timer_slack_ms              open model: the --timer-slack the sends were batched by
      saturated, saturation       whether the client failed to deliver the schedule, and why
      connect_attempts, connect_failures, connect_failures_by_kind, prewarm_connect_failures,
      connections_opened, connections_closed_stray, bytes_in, bytes_out,
      tls_resumed                 https: handshakes that resumed a session (None for http)
      client_cpu_s, client_cpu_us_per_request, client_cpu_busy
                                  the shards' CPU; per shard in `shards` (cpu_pct,
                                  cpu_busy_from_t_s)
      url, method, model, shape, workers, workers_requested, connections, insecure, workload
      scenarios                   per scenario figures (runs with a workload; else None)
      interrupted, aborted        the signal name / the reason, when the run was cut short
      shards, notes, format_version, stressx_version
      host, burners, safety, threshold_window, adaptive
                                  the companions' sections (None when the run had none)

    Verdict (what `stressx run` with the same options prints and exits with):

      thresholds    the threshold verdicts, as in thresholds.json (dicts: text, passed, actual,
                    message, window_s ...); [] when none were set
      comparison    comparison.json's content when a baseline was given, else None
      reports       report format -> the file written ({"md": Path(".../report.md")})
      exit_code     0 ok, 3 a threshold failed or a regression, 4 aborted (a safety stop, a lost
                    shard), 130/143 interrupted
      passed        exit_code == 0

    Files: `out_dir` is the results directory (None when the run was given no `out`: its files
    went to a temporary directory, since removed). `intervals` is intervals.arrows as a
    pyarrow.Table, read on first use (kept in memory when there is no out_dir).
    """

    summary: dict
    out_dir: Path | None = None
    thresholds: list = field(default_factory=list)
    comparison: dict | None = None
    reports: dict = field(default_factory=dict)
    exit_code: int | None = None          # None: from the summary and the verdicts
    intervals_table: InitVar[object] = None   # the pyarrow.Table, when already read

    # -- figures (set from the summary) --
    format_version: int = _figure()
    stressx_version: str = _figure()
    url: str = _figure()
    method: str = _figure()
    model: str = _figure()
    workers: int = _figure()
    workers_requested: int = _figure()
    connections: int | None = _figure()
    due: int = _figure()
    requests: int = _figure()
    completed: int = _figure()
    ok: int = _figure()
    error_count: int = _figure()
    errors: dict = _figure()
    status: dict = _figure()
    duration_s: float = _figure()
    send_window_s: float = _figure()
    run_window_s: float = _figure()
    rate_target: float | None = _figure()
    shape: str | None = _figure()
    rps: float = _figure()
    sent_rps: float = _figure()
    latency_ms: dict | None = _figure()
    latency_uncorrected_ms: dict | None = _figure()
    failure_latency_ms: dict | None = _figure()
    all_latency_ms: dict | None = _figure()
    all_latency_censored: dict | None = _figure()
    latency_basis: str = _figure()
    send_lag_ms: dict | None = _figure()
    late: int = _figure()
    late_at_max_connections: int = _figure()
    dropped: int = _figure()
    dropped_reasons: dict = _figure()
    abandoned: int = _figure()
    bytes_in: int = _figure()
    bytes_out: int = _figure()
    connect_attempts: int = _figure()
    connections_opened: int = _figure()
    connections_closed_stray: int = _figure()
    tls_resumed: int | None = _figure()
    connect_failures: int = _figure()
    connect_failures_by_kind: dict = _figure()
    prewarm_connect_failures: dict = _figure()
    client_cpu_s: float = _figure()
    client_cpu_us_per_request: float | None = _figure()
    client_cpu_busy: bool = _figure()
    insecure: bool = _figure()
    interrupted: str | None = _figure()
    aborted: str | None = _figure()
    shards: list = _figure()
    notes: list = _figure()
    workload: str | None = _figure()
    scenarios: dict | None = _figure()
    saturated: bool = _figure()
    timer_slack_ms: float | None = _figure()
    saturation: dict | None = _figure()
    host: dict | None = _figure()
    burners: dict | None = _figure()
    safety: dict | None = _figure()
    threshold_window: dict | None = _figure()
    adaptive: dict | None = _figure()

    def __post_init__(self, intervals_table):
        self._intervals = intervals_table
        if self.out_dir is not None:
            self.out_dir = Path(self.out_dir)
        for f in fields(self):
            if not f.init:
                setattr(self, f.name, self.summary.get(f.name))
        if self.exit_code is None:
            self.exit_code = verdict_exit_code(self.summary, self.thresholds, self.comparison)

    @property
    def passed(self) -> bool:
        """The verdict: nothing failed, nothing regressed, the run was not cut short."""
        return self.exit_code == EXIT_OK

    @property
    def intervals(self):
        """intervals.arrows (one row per second, all shards merged) as a pyarrow.Table."""
        if self._intervals is None:
            if self.out_dir is None:
                raise FileNotFoundError("this run kept no results directory (run it with out=)")
            from .results.files import read_intervals
            self._intervals = read_intervals(self.out_dir / INTERVALS_FILE)
        return self._intervals

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
