"""Worker processes for benchmark(processes=N): each measures in a fresh process and sends its
ProcessRun back over a pipe.

A function that a new interpreter can import (module-level, pickled by reference, or a
`stressx bench` file function) runs in a *spawned* interpreter (`python -m
stressx.microbench.workers`: its own hash seed and memory layout, which is what averaging over
processes is for); anything else (a lambda, a closure, a function of the __main__ script) in a
*forked* child. Concurrent workers calibrate and warm up, report "ready" with their loops, and
all start timing on "go" with the largest of those loops; sequential workers run one after
another with the first one's loops (pyperf's way).

Protocol (pickles on two pipes): parent -> child: the job (spawned only), ("go", loops);
child -> parent: ("ready", loops), then ("done", ProcessRun) or ("error", text) or
("load-error", text) (the spawned child could not find the function: the parent forks instead).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from dataclasses import replace

from .measure import BenchmarkError, Options, ProcessRun, Target, measure_process

_WAIT_S = 10.0


def _send(wf, msg) -> None:
    pickle.dump(msg, wf, protocol=pickle.HIGHEST_PROTOCOL)
    wf.flush()


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


def serve(target: Target, opts: Options, rf, wf) -> None:
    """A worker's life after it has its target: measure, rendezvous on go, send the run."""
    def go(loops: int) -> int:
        _send(wf, ("ready", loops))
        msg = pickle.load(rf)                # EOFError: the parent gave up; we leave
        return int(msg[1])

    try:
        run = measure_process(target, opts, go=go)
    except EOFError:
        return
    except BaseException as exc:             # noqa: BLE001 - reported to the parent
        try:
            _send(wf, ("error", str(exc) if isinstance(exc, BenchmarkError) and exc.__cause__ is None
                       else _error_text(exc)))
        except OSError:
            pass
        return
    _send(wf, ("done", run))


def _load(job: dict) -> Target:
    sys.path[:] = job["sys_path"]
    kind = job["target"][0]
    if kind == "file":
        _, path, module_name, qualname, args, kwargs = job["target"]
        from .files import load_bench_file
        module = load_bench_file(path, module_name)
        fn = module
        for part in qualname.split("."):
            fn = getattr(fn, part)
        return Target(fn, args, kwargs, name=job["name"], spec=("file", path, module_name, qualname))
    fn, args, kwargs = pickle.loads(job["target"][1])
    return Target(fn, args, kwargs, name=job["name"])


def main(argv: list[str]) -> int:
    """`python -m stressx.microbench.workers RFD WFD`: a spawned worker."""
    rf = os.fdopen(int(argv[1]), "rb")
    wf = os.fdopen(int(argv[2]), "wb")
    job = pickle.load(rf)
    try:
        target = _load(job)
    except BaseException as exc:             # noqa: BLE001 - reported to the parent
        _send(wf, ("load-error", _error_text(exc)))
        return 1
    serve(target, job["options"], rf, wf)
    return 0


def start_method(target: Target) -> tuple[str, bytes | None]:
    """("spawn", payload) when a new interpreter can find the function, else ("fork", None)."""
    if target.spec is not None:
        return "spawn", None
    module = getattr(target.fn, "__module__", None)
    if module and module != "__main__":
        try:
            return "spawn", pickle.dumps((target.fn, target.args, target.kwargs),
                                         protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:                    # noqa: BLE001 - lambdas, closures, locals
            pass
    if not hasattr(os, "fork"):              # pragma: no cover - POSIX only here
        raise BenchmarkError(f"{target.name}: processes > 1 needs a module-level function on "
                             f"this platform (no fork)")
    return "fork", None


class _Worker:
    def __init__(self, target: Target, opts: Options, method: str, payload: bytes | None):
        self.name = target.name
        self.proc = self.pid = None
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        if method == "spawn":
            job = {"sys_path": list(sys.path), "options": opts, "name": target.name,
                   "target": (("file", *target.spec[1:], target.args, target.kwargs)
                              if target.spec is not None else ("pickle", payload))}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stressx.microbench.workers", str(p2c_r), str(c2p_w)],
                pass_fds=(p2c_r, c2p_w))
            os.close(p2c_r)
            os.close(c2p_w)
            self.rf, self.wf = os.fdopen(c2p_r, "rb"), os.fdopen(p2c_w, "wb")
            _send(self.wf, job)
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:                # noqa: BLE001
                pass
        pid = os.fork()
        if pid == 0:                         # the child: measure, report, leave at once
            code = 1
            try:
                os.close(p2c_w)
                os.close(c2p_r)
                serve(target, opts, os.fdopen(p2c_r, "rb"), os.fdopen(c2p_w, "wb"))
                code = 0
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:        # noqa: BLE001
                        pass
                os._exit(code)
        self.pid = pid
        os.close(p2c_r)
        os.close(c2p_w)
        self.rf, self.wf = os.fdopen(c2p_r, "rb"), os.fdopen(p2c_w, "wb")

    def expect(self, kind: str):
        try:
            msg = pickle.load(self.rf)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise BenchmarkError(f"{self.name}: a worker process exited without a result "
                                 f"(exit status {self.wait()})") from None
        if msg[0] == kind:
            return msg[1]
        if msg[0] == "load-error":
            raise _LoadError(msg[1])
        raise BenchmarkError(f"{self.name} failed in a worker process: {msg[1]}")

    def go(self, loops: int) -> None:
        _send(self.wf, ("go", loops))

    def wait(self):
        for f in (self.wf, self.rf):
            try:
                f.close()
            except OSError:
                pass
        if self.proc is not None:
            try:
                return self.proc.wait(_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        if self.pid is not None:
            import time
            deadline = time.monotonic() + _WAIT_S
            while time.monotonic() < deadline:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.pid = None
                    return os.waitstatus_to_exitcode(status)
                time.sleep(0.01)
            os.kill(self.pid, 9)
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            return os.waitstatus_to_exitcode(status)
        return None


class _LoadError(BenchmarkError):
    """A spawned worker could not import the function (the parent forks instead)."""


def run_workers(target: Target, opts: Options, processes: int,
                sequential: bool) -> tuple[list[ProcessRun], str]:
    """`processes` workers' runs, and the start method used ("spawn" or "fork")."""
    method, payload = start_method(target)
    try:
        return _run(target, opts, processes, sequential, method, payload), method
    except _LoadError:
        if method != "spawn" or target.spec is not None or not hasattr(os, "fork"):
            raise
        return _run(target, opts, processes, sequential, "fork", None), "fork"


def _run(target, opts, processes, sequential, method, payload) -> list[ProcessRun]:
    runs: list[ProcessRun] = []
    if sequential:
        for _ in range(processes):
            w = _Worker(target, replace(opts, loops=runs[0].loops if runs else opts.loops),
                        method, payload)
            try:
                w.go(w.expect("ready"))
                runs.append(w.expect("done"))
            finally:
                w.wait()
        return runs
    workers = []
    try:
        for _ in range(processes):
            workers.append(_Worker(target, opts, method, payload))
        loops = max(w.expect("ready") for w in workers)
        for w in workers:
            w.go(loops)
        runs = [w.expect("done") for w in workers]
    finally:
        for w in workers:
            w.wait()
    return runs


if __name__ == "__main__":
    sys.exit(main(sys.argv))
