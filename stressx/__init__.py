"""stressx: load generation with wrk-class speed and wrk2-honest latencies.

    import stressx
    result = stressx.run("http://127.0.0.1:8080/", rate=1000, duration="10s")
    print(result.rps, result.latency_ms["p99"], result.saturated)
"""
try:
    from . import _core  # noqa: F401  (the compiled core is required, never optional)
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        f"stressx: the compiled extension stressx._core failed to import ({exc}). "
        "stressx has no pure-Python fallback: a slow client would under-deliver load and blame "
        "the target. Reinstall with `pip install .` (needs a C compiler and Python headers)."
    ) from exc

from ._version import __version__
from .api import Result, run, run_async
from .config import ConfigError
from .results import load_results

__all__ = [
    # running load
    "run", "run_async", "Result",
    # reading results
    "load_results",
    # errors
    "ConfigError",
    "__version__",
]
