"""stressx: load generation with wrk-class speed and wrk2-honest latencies.

    import stressx
    result = stressx.run("http://127.0.0.1:8080/", rate=1000, duration="10s")
    print(result.rps, result.latency_ms["p99"], result.saturated)

The names below are imported on first use (PEP 562), so that `python -m stressx.cli` and the
shards reach their own code, and their signal handling, before the slow imports.
"""
from ._version import __version__

__all__ = [
    # running load, judged as `stressx run` judges it: a Result with .passed and .exit_code
    "run", "run_async", "Result",
    # the other commands: run --config (a sequence), capacity, scaling, adaptive
    "run_config", "capacity", "scaling", "adaptive",
    # shaping it: run(shape=shapes.ramp(100, 2000, 60)) or run(users=shapes.wave(...))
    "shapes",
    # beside a run: run(companions=[...]), each given a RunControl
    "Companion", "RunControl",
    # reading results
    "load_results",
    # timing functions
    "benchmark", "BenchmarkResult",
    # Python workload files: @stressx.scenario async def f(user), hooks, data feeders
    "scenario", "on_start", "on_stop", "feeder", "RequestError",
    # errors
    "ConfigError",
    "__version__",
]

# name -> (module, attribute; None: the module itself)
_LAZY = {"run": ("api", "run"), "run_async": ("api", "run_async"), "Result": ("api", "Result"),
         "run_config": ("api", "run_config"), "capacity": ("api", "capacity"),
         "scaling": ("api", "scaling"), "adaptive": ("api", "adaptive"),
         "shapes": ("load.shapes", None),
         "Companion": ("engine.coordinator", "Companion"),
         "RunControl": ("engine.control", "RunControl"),
         "load_results": ("results.files", "load_results"),
         "ConfigError": ("errors", "ConfigError"),
         "scenario": ("load.flowfile", "scenario"), "on_start": ("load.flowfile", "on_start"),
         "on_stop": ("load.flowfile", "on_stop"), "feeder": ("load.flowfile", "feeder"),
         "RequestError": ("flows.user", "RequestError"),
         "benchmark": ("microbench", "benchmark"),
         "BenchmarkResult": ("microbench", "BenchmarkResult")}


def require_core():
    """Import the compiled core, with a clear message when it is missing."""
    try:
        from .engine import _core
    except ImportError as exc:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            f"stressx: the compiled extension stressx.engine._core failed to import ({exc}). "
            "stressx has no pure-Python fallback: a slow client would under-deliver load and "
            "blame the target. Reinstall with `pip install .` (needs a C compiler and Python "
            "headers)."
        ) from exc
    return _core


def __getattr__(name):
    if name in _LAZY:
        require_core()
        import importlib
        module, attribute = _LAZY[name]
        value = importlib.import_module(f".{module}", __name__)
        if attribute is not None:
            value = getattr(value, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stressx' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
