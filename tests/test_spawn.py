"""Child processes import exactly the parent's stressx, whatever the working directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import stressx
from stressx.engine.spawn import PACKAGE_DIR, child_argv

TIMEOUT_S = 60


@pytest.fixture
def decoy_cwd(tmp_path):
    """A working directory like a fresh clone's root after a non-editable install: a `stressx`
    folder that is not the imported package (here it refuses to import), plus modules named
    like standard ones a child imports (a user's ./bisect.py or ./tempfile.py)."""
    cwd = tmp_path / "cwd"
    (cwd / "stressx" / "engine").mkdir(parents=True)
    (cwd / "stressx" / "hostload" / "burners").mkdir(parents=True)
    boom = "raise ImportError('decoy imported from the working directory')\n"
    (cwd / "stressx" / "__init__.py").write_text(boom)
    (cwd / "stressx" / "engine" / "shard.py").write_text(boom)
    (cwd / "stressx" / "hostload" / "burners" / "__init__.py").write_text(boom)
    for name in ("bisect", "tempfile", "uvloop"):
        (cwd / f"{name}.py").write_text(boom)
    return cwd


def _cli(*args, cwd):
    # -P: the parent itself must not pick up the decoy either (as the `stressx` script does not)
    return subprocess.run([sys.executable, "-P", "-m", "stressx.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_argv_runs_without_the_working_directory_on_sys_path():
    argv = child_argv("stressx.engine.shard")
    assert argv[0] == sys.executable and argv[1] == "-P"
    assert PACKAGE_DIR in argv and "stressx.engine.shard" in argv     # ps/psutil still find the shards
    assert PACKAGE_DIR == stressx.__path__[0]
    with pytest.raises(ValueError):
        child_argv("os")


def test_run_from_a_directory_with_a_decoy_package(target, tmp_path, decoy_cwd):
    out = tmp_path / "out"
    r = _cli("run", target.url, "--rate", 100, "--requests", 50, "--workers", 2, "--out", out,
             cwd=decoy_cwd)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == 50 and summary["ok"] == 50


def test_burners_from_a_directory_with_decoys(tmp_path, decoy_cwd):
    out = tmp_path / "out"
    r = _cli("burn", "cpu=10%x1", "mem=16M", "--duration", "1s", "--out", out, "-q", cwd=decoy_cwd)
    assert r.returncode == 0, r.stderr
    burners = json.loads((out / "summary.json").read_text())["burners"]["burners"]
    assert len(burners) == 2 and all(b["exit_code"] == 0 and b["lost"] is None for b in burners)


def test_burner_boot_stays_light(decoy_cwd):
    """Burners skip stressx/__init__.py (the engine, numpy, pyarrow) but import the parent's
    stressx.hostload.burners."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    r = subprocess.run(child_argv("stressx.hostload.burners", light=True), input="{}", cwd=decoy_cwd,
                       env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "stressx.hostload.burners.base" in imported, r.stderr
    assert not {"numpy", "pyarrow", "stressx.engine.coordinator", "stressx.api"} & imported
    assert "decoy" not in r.stderr
