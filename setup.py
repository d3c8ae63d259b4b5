"""Build of the compiled parts: the zsmalloc core, hwzswap.pool._zscore, and zswap's
self-contained index and batch scans, hwzswap.frontswap._hotpath (everything else is in
pyproject.toml). Both have Python references that need no compiler (HWZSWAP_IMPL=py, see
hwzswap/impl.py). ``pip install -e .`` builds them in place; after editing a C file, rebuild
with ``make install`` (which reinstalls when the file changes) or
``.venv/bin/python setup.py build_ext --inplace``; ``make asan`` builds sanitizer copies
elsewhere (scripts/asan.sh).

Both are optional: without a compiler the package still installs, and runs on the Python
references with HWZSWAP_IMPL=py (HWZSWAP_IMPL=c then names the missing module and how to build
it)."""

from setuptools import Extension, setup

# the C is C99; -O2 overrides the interpreter's default optimisation level
FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers",
         "-Wno-cast-function-type"]

setup(
    ext_modules=[
        Extension("hwzswap.pool._zscore", sources=["hwzswap/pool/_zscore.c"],
                  extra_compile_args=FLAGS, optional=True),
        Extension("hwzswap.frontswap._hotpath", sources=["hwzswap/frontswap/_hotpath.c"],
                  extra_compile_args=FLAGS, optional=True),
    ],
)
