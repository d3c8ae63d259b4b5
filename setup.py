"""Build of the compiled zsmalloc core (everything else is in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hwzswap.pool._zscore",
            sources=["hwzswap/pool/_zscore.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
            optional=False,
        )
    ],
)
