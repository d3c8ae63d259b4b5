"""Build of the compiled zsmalloc core, hwzswap.pool._zscore (everything else is in
pyproject.toml). ``pip install -e .`` builds it in place; after editing the C file, rebuild
with ``make install`` (which reinstalls when the file changes) or
``.venv/bin/python setup.py build_ext --inplace``."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hwzswap.pool._zscore",
            sources=["hwzswap/pool/_zscore.c"],
            # the C is C99; -O2 overrides the interpreter's default optimisation level
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
            optional=False,
        )
    ],
)
