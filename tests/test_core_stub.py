"""stressx/engine/_core.pyi describes the compiled extension as built: the same public names, members,
parameters and (where a tiny call can show them) return and attribute types.

A stub that drifts from the extension misleads every type checker and reader; the extension is
the truth, so each check reads it (at runtime, or its .pxi source for constructors, whose
signatures Cython does not expose).
"""
from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import stressx
from stressx.engine import _core

PKG = Path(stressx.__file__).resolve().parent
CORE = PKG / "engine"                  # the compiled core: _core.pyx, its .pxi files, _core.pyi
STUB = ast.parse((CORE / "_core.pyi").read_text())


# -- the stub, read with ast -------------------------------------------------------------------
def _members(body) -> dict[str, ast.AST]:
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            out.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return out


STUB_NAMES = _members(STUB.body)


def _public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def runtime_names() -> set[str]:
    return {n for n in _public(dir(_core)) if not isinstance(getattr(_core, n), types.ModuleType)}


def stub_params(fn: ast.FunctionDef, drop_self: bool) -> list[tuple]:
    """(name, kind, default) of a stub function; default is the literal or ... if none/unknown."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = [(p.arg, "positional", d) for p, d in zip(positional, defaults)]
    params += [(p.arg, "keyword", d) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if drop_self and params and params[0][0] == "self":
        params = params[1:]
    return [(name, kind, _literal(d)) for name, kind, d in params]


NO_DEFAULT = "<none>"


def _literal(node):
    if node is None:
        return NO_DEFAULT
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ...


# -- names -------------------------------------------------------------------------------------
def test_every_public_name_of_the_extension_is_in_the_stub_and_back():
    runtime, stub = runtime_names(), _public(STUB_NAMES)
    assert runtime - stub == set(), "in the extension, missing from _core.pyi"
    assert stub - runtime == set(), "in _core.pyi, not in the extension"


@pytest.mark.parametrize("cls", sorted(n for n in runtime_names() if isinstance(getattr(_core, n), type)))
def test_class_members_match(cls):
    runtime = _public(vars(getattr(_core, cls)))
    if cls not in STUB_NAMES:
        pytest.fail(f"class {cls} is missing from _core.pyi")
    stub = _public(_members(STUB_NAMES[cls].body))
    assert runtime - stub == set(), f"{cls}: in the extension, missing from _core.pyi"
    assert stub - runtime == set(), f"{cls}: in _core.pyi, not in the extension"


# -- parameters --------------------------------------------------------------------------------
def _runtime_callables():
    for name in sorted(runtime_names()):
        obj = getattr(_core, name)
        if isinstance(obj, type):
            for member in sorted(_public(vars(obj))):
                if callable(vars(obj)[member]):
                    yield f"{name}.{member}", getattr(obj, member)
        elif callable(obj):
            yield name, obj


def _stub_function(qualname: str):
    scope = STUB
    *owner, name = qualname.split(".")
    for part in owner:
        scope = _members(scope.body).get(part)
        if scope is None:
            pytest.fail(f"{part} is missing from _core.pyi")
    fn = _members(scope.body).get(name)
    if fn is None:
        pytest.fail(f"{qualname} is missing from _core.pyi")
    return fn


def _kind(p: inspect.Parameter) -> str:
    return "keyword" if p.kind is p.KEYWORD_ONLY else "positional"


@pytest.mark.parametrize("qualname,obj", list(_runtime_callables()),
                         ids=[q for q, _ in _runtime_callables()])
def test_parameters_match(qualname, obj):
    method = "." in qualname
    runtime = [(p.name, _kind(p), NO_DEFAULT if p.default is p.empty else p.default)
               for p in inspect.signature(obj).parameters.values()]
    if method:
        runtime = runtime[1:]
    assert stub_params(_stub_function(qualname), method) == runtime


PXI = "\n".join(p.read_text() for p in sorted(CORE.glob("_*.pxi")))


def pxi_constructor(cls: str) -> list[tuple]:
    """(name, kind, default) of a cdef class's constructor from its .pxi source: __init__ if it
    takes arguments, else __cinit__."""
    body = re.search(rf"^cdef class {cls}\b[^\n]*:\n(.*?)(?=^\S|\Z)", PXI, re.S | re.M)
    assert body, f"cdef class {cls} not found in the .pxi files"
    found = {}
    for m in re.finditer(r"^    def (__init__|__cinit__)\((.*?)\):", body.group(1), re.S | re.M):
        found[m.group(1)] = m.group(2)
    text = found.get("__init__") or found.get("__cinit__") or "self"
    params, kind = [], "positional"
    for chunk in (c.strip() for c in text.split(",")):
        if chunk == "*":
            kind = "keyword"
            continue
        decl, _, default = chunk.partition("=")
        name = decl.split()[-1]
        if name == "self":
            continue
        params.append((name, kind, _literal(ast.parse(default.strip(), mode="eval").body)
                       if default else NO_DEFAULT))
    return params


@pytest.mark.parametrize("cls", sorted(n for n in runtime_names() if isinstance(getattr(_core, n), type)
                                     and not issubclass(getattr(_core, n), BaseException)))
def test_constructor_parameters_match_the_source(cls):
    init = _members(_stub_function(cls).body).get("__init__")
    stub = stub_params(init, True) if init else []
    source = pxi_constructor(cls)
    assert [p[:2] for p in stub] == [p[:2] for p in source]
    for (name, _, want), (_, _, have) in zip(source, stub):
        if want is not ... and have is not ...:     # a C constant (NS_PER_S) is not checkable
            assert have == want, f"{cls}({name}=...)"


# -- return and attribute types, from tiny calls -------------------------------------------------
PROBE = r"""
import json, os, sys
import numpy as np
from stressx.engine import _core

def kind(v, homogeneous=False):
    if v is None: return "None"
    if isinstance(v, bool): return "bool"
    if isinstance(v, int): return "int"
    if isinstance(v, float): return "float"
    if isinstance(v, str): return "str"
    if isinstance(v, tuple):
        if homogeneous and len({kind(x) for x in v}) == 1:
            return f"tuple[{kind(v[0])}, ...]"
        return "tuple[" + ", ".join(kind(x) for x in v) + "]"
    if isinstance(v, dict):
        ks, vs = {kind(k) for k in v}, {kind(x) for x in v.values()}
        return f"dict[{ks.pop()}, {vs.pop()}]" if len(ks) == len(vs) == 1 else "dict"
    return type(v).__name__

out = {}
def probe(name, fn):
    out[name] = kind(fn())

for name in dir(_core):
    v = getattr(_core, name)
    if name.isupper():
        out[name] = kind(v, homogeneous=True)

probe("monotonic_ns", _core.monotonic_ns)
probe("set_timer_slack_ns", lambda: _core.set_timer_slack_ns(50_000))
probe("set_parent_death_signal", lambda: _core.set_parent_death_signal(0))
probe("counts_index", lambda: _core.counts_index(1))
probe("process_cpu_ns", _core.process_cpu_ns)
probe("process_cpu_ns_of", lambda: _core.process_cpu_ns_of(os.getpid()))
probe("burn_cpu", lambda: _core.burn_cpu(1000, _core.monotonic_ns() + 1_000_000))
probe("spin_iterations", lambda: _core.spin_iterations(10))
probe("sleep_until_ns", lambda: _core.sleep_until_ns(0))
probe("touch_pages", lambda: _core.touch_pages(bytearray(8192), 0, 8192, 4096, 1))
probe("fill_bytes", lambda: _core.fill_bytes(bytearray(16), 0, 16, 1))
probe("error_kind", lambda: _core.error_kind(ConnectionRefusedError(), True))

t = _core.Timer()
out["Timer.fd"] = kind(t.fd)
probe("Timer.arm", lambda: t.arm(_core.monotonic_ns() + 10**9))
probe("Timer.close", t.close)

r = _core.Recorder(np.zeros(_core.HDR_PARAMS["slots"], dtype=np.int64))
probe("Recorder.record", lambda: r.record(5))
probe("Recorder.record_many", lambda: r.record_many(np.array([1, 2], dtype=np.int64)))
probe("Recorder.bench_record_calls", lambda: r.bench_record_calls(10, 5))

s = _core.Schedule(rate=10.0)
for attr in ("shard_index", "shard_count", "budget", "duration_ns", "total"):
    out[f"Schedule.{attr}"] = kind(getattr(s, attr))
probe("Schedule.due_at", lambda: s.due_at(0))
probe("Schedule.pace", lambda: s.pace(0, 0))
probe("Schedule.due_count", lambda: s.due_count(10**9))
probe("Schedule.rate_at", lambda: s.rate_at(0.5))
probe("Schedule.integral", lambda: s.integral(1.0))
probe("Schedule.change_rate", lambda: s.change_rate(1.0, 5.0))

from stressx.engine.shm import ShardMemory, new_run_id
mem = ShardMemory.create(new_run_id(), 0, 1)
mem.unlink()
dest = np.empty(mem.live, dtype=np.int64)
probe("snapshot_stress", lambda: _core.snapshot_stress(mem.slots, 1, 10))
probe("publish_snapshot", lambda: _core.publish_snapshot(mem.slots))
probe("snapshot_seqs", lambda: _core.snapshot_seqs(mem.slots))
probe("read_snapshot", lambda: _core.read_snapshot(mem.slots, 0, dest))
probe("publish_rate_change", lambda: _core.publish_rate_change(mem.slots, 2.5, 1))
probe("rate_change", lambda: _core.rate_change(mem.slots))
print(json.dumps(out))
"""


def stub_types() -> dict[str, str]:
    """Return annotations of functions and annotations of constants/attributes, by qualname."""
    out = {}

    def walk(body, prefix):
        for name, node in _members(body).items():
            if isinstance(node, ast.ClassDef):
                walk(node.body, f"{name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
                out[prefix + name] = ast.unparse(node.returns)
            elif isinstance(node, ast.AnnAssign):
                out[prefix + name] = ast.unparse(node.annotation)
    walk(STUB.body, "")
    return out


@pytest.fixture(scope="module")
def observed() -> dict[str, str]:
    # in a child: set_timer_slack_ns / set_parent_death_signal must not touch the test process
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_return_and_attribute_types_match(observed):
    declared = stub_types()
    mismatched = {name: (declared.get(name), seen) for name, seen in observed.items()
                  if declared.get(name) != seen}
    assert mismatched == {}, "name: (_core.pyi, the extension)"


def test_every_module_function_is_probed(observed):
    functions = {n for n in runtime_names() if not isinstance(getattr(_core, n), type)
                 and callable(getattr(_core, n))}
    assert functions - set(observed) == set()


def test_py_typed_ships_next_to_the_package():
    assert (PKG / "py.typed").is_file()
    assert (CORE / "_core.pyi").is_file()
