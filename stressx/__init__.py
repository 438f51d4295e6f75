"""stressx: load generation with wrk-class speed and wrk2-honest latencies.

    import stressx
    result = stressx.run("http://127.0.0.1:8080/", rate=1000, duration="10s")
    print(result.rps, result.latency_ms["p99"], result.saturated)

The names below are imported on first use (PEP 562), so that `python -m stressx.cli` and the
shards reach their own code, and their signal handling, before the slow imports.
"""
from ._version import __version__

__all__ = [
    # running load
    "run", "run_async", "Result",
    # reading results
    "load_results",
    # timing functions
    "benchmark", "BenchmarkResult",
    # errors
    "ConfigError",
    "__version__",
]

_LAZY = {"run": "api", "run_async": "api", "Result": "api", "load_results": "results",
         "ConfigError": "config", "benchmark": "microbench", "BenchmarkResult": "microbench"}


def require_core():
    """Import the compiled core, with a clear message when it is missing."""
    try:
        from . import _core
    except ImportError as exc:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            f"stressx: the compiled extension stressx._core failed to import ({exc}). "
            "stressx has no pure-Python fallback: a slow client would under-deliver load and "
            "blame the target. Reinstall with `pip install .` (needs a C compiler and Python "
            "headers)."
        ) from exc
    return _core


def __getattr__(name):
    if name in _LAZY:
        require_core()
        import importlib
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stressx' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
