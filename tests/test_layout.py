"""The package layout a newcomer reads: no import cycles (imports inside functions included), no
private name imported across modules, the stages' order kept, few modules at the top, and the
README's "How it works" tree naming files that exist.

The import graph is built from the source with `ast`, not by importing: every `import` and
`from ... import` anywhere in a module (module level, functions, classes, `if` blocks) is an
edge to the stressx module it names. `from pkg import name` is an edge to `pkg.name` when that
is a module, else to `pkg` (its __init__). Importing a submodule also runs its package's
__init__, but that implicit step is not counted as an edge (as import linters do), so a
package's __init__ may import its own submodules.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "stressx"
MAX_TOP_LEVEL = 10

# The stages in import order: a module may import from its own stage and from stages before
# it, never from one after it. The pipeline reads down this list (what to send -> the format a
# run leaves, which the engine writes -> how it is sent -> judging it -> host load beside it
# -> exploring -> reports -> spreading a run over hosts -> the library's face and the command
# line).
STAGES = [
    ("leaves", ["stressx._version", "stressx.errors", "stressx.units", "stressx.system",
                "stressx._testing"]),
    ("load", ["stressx.load"]),
    ("results", ["stressx.results"]),
    ("engine", ["stressx.engine", "stressx.flows"]),   # flows: Python scenarios, run by a shard
    ("judge", ["stressx.judge"]),
    ("hostload", ["stressx.hostload"]),
    ("explore", ["stressx.explore"]),
    ("report", ["stressx.report"]),
    ("microbench", ["stressx.microbench"]),
    ("cluster", ["stressx.cluster"]),
    ("live", ["stressx.live"]),
    ("api", ["stressx.result", "stressx.pipeline", "stressx.api"]),
    ("pytest", ["stressx.pytest_plugin"]),
    ("cli", ["stressx.cli"]),
    ("top", ["stressx"]),        # the package's own __init__ (only): the lazy public names
]
# the compiled core has no stressx imports of its own: any stage may use it
ANYWHERE = ("stressx.engine._core",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    for p in PACKAGE.rglob("*.pyx"):          # compiled modules: nodes without Python imports
        found.setdefault(module_name(p), p)
    return found


def _absolute(current: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported stressx module, name used from it or "", line) for every import in the
    module, and for every `module._name` attribute read through a module it imported."""
    if path.suffix != ".py":
        return []
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "stressx" or alias.name.startswith("stressx."):
                    target = alias.name
                    while target not in known and "." in target:
                        target = target.rsplit(".", 1)[0]
                    out.append((target, "", node.lineno))
                    if alias.asname:
                        aliases[alias.asname] = target
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node.level, node.module)
            if not (base == "stressx" or base.startswith("stressx.")):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    out.append((sub, "", node.lineno))
                    aliases[alias.asname or alias.name] = sub
                else:
                    out.append((base, alias.name, node.lineno))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")):
            out.append((aliases[node.value.id], node.attr, node.lineno))
    return out


def graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str, int]]]:
    mods = modules()
    known = set(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    named = []
    for name, path in mods.items():
        for target, imported, line in imports(name, path, known):
            if target != name:
                edges[name].add(target)
            if imported:
                named.append((name, target, imported, line))
    return edges, named


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in edges}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = GREY
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if colour.get(n, BLACK) == GREY:
                return stack[stack.index(n):] + [n]
            if colour.get(n) == WHITE:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        colour[m] = BLACK
        return None

    for m in sorted(edges):
        if colour[m] == WHITE:
            found = visit(m)
            if found:
                return found
    return None


def stage_of(module: str) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(STAGES):
        for p in prefixes:
            if module == p or (p != "stressx" and module.startswith(p + ".")):
                if best is None or len(p) > best[1]:
                    best = (i, len(p))
    return None if best is None else best[0]


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The checker itself: relative, absolute, function-level and `from pkg import module`
    imports are all edges, and a cycle through a function-level import is found."""
    src = ("from . import b\nimport stressx.c\n"
           "def f():\n    from .d import thing\n    from stressx import e\n    return b._hidden\n")
    tree_mods = {"stressx.a", "stressx.b", "stressx.c", "stressx.d", "stressx.e"}
    p = tmp_path / "a.py"
    p.write_text(src)
    got = imports("stressx.a", p, tree_mods)
    assert {(t, n) for t, n, _ in got} == {("stressx.b", ""), ("stressx.c", ""),
                                           ("stressx.d", "thing"), ("stressx.e", ""),
                                           ("stressx.b", "_hidden")}
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None
    assert stage_of("stressx.errors") < stage_of("stressx.load.config") < stage_of("stressx.engine.shard")
    assert stage_of("stressx.engine._core") == stage_of("stressx.engine")
    assert stage_of("stressx.elsewhere") is None


def test_no_import_cycle():
    edges, _ = graph()
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_import_names_a_module_that_exists():
    """A stale import (a module that moved) fails here, in stressx/, tests/ and benchmarks/,
    even one inside a function that no test runs."""
    mods = modules()
    known = set(mods)
    users = dict(mods)
    users.update({f"{p.parent.name}.{p.stem}": p for folder in ("tests", "benchmarks")
                  for p in (ROOT / folder).glob("*.py")})
    bad = [f"{name}:{line} imports {target}" for name, path in users.items()
           for target, _, line in imports(name, path, known) if target not in known]
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_modules():
    """A name starting with '_' is the business of the module that defines it."""
    _, named = graph()
    bad = [f"{src}:{line} imports {name} from {target}" for src, target, name, line in named
           if name.startswith("_") and not name.startswith("__") and name != "_core"]
    assert not bad, "\n".join(bad)


def test_stages_import_only_from_earlier_stages():
    edges, _ = graph()
    bad = []
    for src, targets in edges.items():
        s = stage_of(src)
        assert s is not None, f"{src} is in no stage of tests/test_layout.py STAGES"
        for t in targets:
            ts = stage_of(t)
            if t in ANYWHERE or ts is None or ts <= s:
                continue
            bad.append(f"{src} ({STAGES[s][0]}) imports {t} ({STAGES[ts][0]}), a later stage")
    assert not bad, "\n".join(sorted(bad))


def test_few_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


def readme_tree() -> list[str]:
    """The paths named in the README's "How it works" tree, relative to the repository
    (directories end with '/')."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## How it works", 1)[1]
    tree = re.search(r"```text\n(stressx/\n.*?)```", section, re.S).group(1)
    paths, stack = [], []
    for line in tree.splitlines()[1:]:
        m = re.match(r"( *)(\S+)", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2 - 1
        entry = m.group(2)
        stack[depth:] = [entry.rstrip("/")]
        paths.append("stressx/" + "/".join(stack) + ("/" if entry.endswith("/") else ""))
    return paths


def listable(directory: Path) -> set[str]:
    """What the tree should name in a directory: modules and the core's sources (not
    __init__.py), and folders that are not caches."""
    out = set()
    for p in directory.iterdir():
        rel = str(p.relative_to(ROOT))
        if p.is_dir() and p.name != "__pycache__":
            out.add(rel)
        elif p.suffix in (".py", ".pyx", ".pxd", ".pxi", ".pyi") and p.name != "__init__.py":
            out.add(rel)
    return out


def test_readme_tree_names_files_that_exist():
    """Every path in the README's "How it works" tree exists; the tree names every module and
    package directly under stressx/, and every file of each folder whose contents it lists."""
    paths = readme_tree()
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"named in README's tree but absent: {missing}"
    named = {p.rstrip("/") for p in paths}
    top = {f"stressx/{p.name}" for p in PACKAGE.iterdir()
           if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert top <= named, f"in stressx/ but not in README's tree: {sorted(top - named)}"
    expanded = {p.rsplit("/", 1)[0] for p in named if p.count("/") >= 2}
    for folder in sorted(expanded):
        unnamed = listable(ROOT / folder) - named
        assert not unnamed, f"in {folder}/ but not in README's tree: {sorted(unnamed)}"


def test_compiled_core_directives_in_one_place():
    """boundscheck and wraparound are set once, on _core.pyx's first line; C division is never
    set for the whole module, only on functions, each with the reason its divisors cannot be
    zero. Every extension class the .pxi files define is declared in _core.pxd."""
    core = PACKAGE / "engine"
    header = (core / "_core.pyx").read_text().splitlines()[0]
    assert header.startswith("# cython:") and "boundscheck=False" in header
    assert "wraparound=False" in header and "cdivision" not in header
    sources = [*sorted(core.glob("_*.pxi")), core / "_core.pxd", ROOT / "setup.py"]
    setting = re.compile(r"(boundscheck|wraparound|cdivision)\s*[=(:]")
    for path in sources:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if setting.search(line):
                assert re.fullmatch(r"\s*@cython\.cdivision\(True\)\s+# \S.*", line), \
                    f"{path.name}:{n}: {line.strip()}"
    declared = set(re.findall(r"^cdef class (\w+):", (core / "_core.pxd").read_text(), re.M))
    defined = {name for path in core.glob("_*.pxi")
               for name in re.findall(r"^cdef class (\w+):", path.read_text(), re.M)}
    assert defined and defined <= declared, sorted(defined - declared)
