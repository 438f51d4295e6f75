"""Repository hygiene: no build outputs, downloads or big blobs are committed.

A clone should carry sources only; a wheel or a compiled extension in the tree is stale the
moment the source changes and bloats every clone forever.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 1 << 20                           # 1 MiB, except under tests/fixtures/
FIXTURES = "tests/fixtures/"
BANNED_SUFFIXES = (".whl", ".egg", ".zip", ".tar", ".tgz", ".tar.gz", ".gz", ".bz2", ".tbz2",
                   ".xz", ".txz", ".zst", ".7z", ".rar", ".so", ".dylib", ".pyd", ".dll", ".o",
                   ".a")
MAGIC = {b"PK\x03\x04": "zip/wheel archive", b"\x1f\x8b": "gzip archive",
         b"\x7fELF": "ELF binary", b"\xfd7zXZ": "xz archive"}


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        pytest.skip(f"git ls-files failed: {r.stderr.decode(errors='replace').strip()}")
    return [p for p in r.stdout.decode().split("\0") if p]


def problems(paths: list[str]) -> list[str]:
    found = []
    for rel in paths:
        path = ROOT / rel
        if rel.lower().endswith(BANNED_SUFFIXES):
            found.append(f"{rel}: a wheel, archive or compiled object")
        elif rel.endswith(".c") and path.with_suffix(".pyx").exists():
            found.append(f"{rel}: generated from {path.with_suffix('.pyx').name}")
        if rel.startswith(FIXTURES) or not path.is_file():
            continue
        size = path.stat().st_size
        if size > MAX_BYTES:
            found.append(f"{rel}: {size} bytes (over 1 MiB)")
        with open(path, "rb") as f:
            head = f.read(8)
        kind = next((k for magic, k in MAGIC.items() if head.startswith(magic)), None)
        if kind and not rel.lower().endswith(BANNED_SUFFIXES):
            found.append(f"{rel}: content is a {kind}")
    return found


def test_no_build_outputs_archives_or_big_files_are_tracked():
    paths = tracked_files()
    assert "pyproject.toml" in paths
    assert problems(paths) == []


def test_the_check_sees_what_it_should(tmp_path, monkeypatch):
    """The check itself: a wheel, a shared object, a disguised archive and a big file are
    reported; big fixtures and ordinary sources are not."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "tests/fixtures").mkdir(parents=True)
    (tmp_path / "pkg").mkdir()
    files = {"tool-1.0-py3-none-any.whl": b"PK\x03\x04", "pkg/_core.so": b"\x7fELF",
             "data.bin": b"PK\x03\x04rest", "big.txt": b"x" * (MAX_BYTES + 1),
             "pkg/_core.pyx": b"", "pkg/_core.c": b"/* generated */",
             "tests/fixtures/big.arrows": b"x" * (MAX_BYTES + 1), "pkg/mod.py": b"x = 1\n"}
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    flagged = {line.split(":")[0] for line in problems(list(files))}
    assert flagged == {"tool-1.0-py3-none-any.whl", "pkg/_core.so", "data.bin", "big.txt",
                       "pkg/_core.c"}


def test_package_data_ships_the_stub_py_typed_and_workloads():
    """What must be installed by a non-editable `pip install .` is named in pyproject.toml's
    package-data: the type stub, py.typed (PEP 561) and every built-in workload file."""
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    import tomllib
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    pkg = ROOT / "stressx"
    shipped = {p for package, patterns in package_data.items() for pattern in patterns
               for p in (ROOT / package.replace(".", "/")).glob(pattern) if p.is_file()}
    needed = {pkg / "py.typed", pkg / "engine" / "_core.pyi"}
    needed |= {p for p in (pkg / "load" / "workloads").rglob("*") if p.is_file()}
    assert len(needed) > 4
    assert sorted(map(str, needed - shipped)) == []
