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

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
