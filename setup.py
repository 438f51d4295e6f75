"""Builds the one compiled extension, stressx.engine._core; everything else is in pyproject.toml."""
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "stressx.engine._core",
        ["stressx/engine/_core.pyx"],
        extra_compile_args=["-O3", "-ffp-contract=off"],   # no fused multiply-add: the schedule
        # must round exactly as its Python twin (stressx/load/schedule.py) does
    )
]

# Cython's directives (language level, bounds checks, C division) are in _core.pyx itself.
setup(ext_modules=cythonize(extensions))
