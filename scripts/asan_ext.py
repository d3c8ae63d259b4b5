"""pytest plugin for ``make asan``: import the compiled parts from the sanitizer build.

``scripts/asan.sh`` builds ``hwzswap.pool._zscore`` and ``hwzswap.frontswap._hotpath`` with
AddressSanitizer and UndefinedBehaviorSanitizer into ``$HWZSWAP_ASAN_LIB`` (a separate build
directory: the in-place build everyone else uses stays as it is) and loads this plugin with
``-p asan_ext``. Plugins load before any test module, so the finder below is in place before
``hwzswap`` imports its compiled parts; the run refuses to start if they came from elsewhere.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

import pytest

MODULES = ("hwzswap.pool._zscore", "hwzswap.frontswap._hotpath")
LIB = Path(os.environ.get("HWZSWAP_ASAN_LIB", "build/asan/lib")).resolve()


def _built(name: str) -> Path:
    folder = LIB.joinpath(*name.split(".")[:-1])
    stem = name.rsplit(".", 1)[1]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / (stem + suffix)
        if path.is_file():
            return path
    raise pytest.UsageError(f"asan_ext: no sanitizer build of {name} under {LIB}; "
                            f"run scripts/asan.sh (make asan)")


class SanitizerBuild(importlib.abc.MetaPathFinder):
    """Finds the compiled parts in the sanitizer build directory."""

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name in MODULES:
            return importlib.util.spec_from_file_location(name, _built(name))
        return None


sys.meta_path.insert(0, SanitizerBuild())


def pytest_configure(config: pytest.Config) -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        if Path(module.__file__ or "").resolve() != _built(name):
            raise pytest.UsageError(f"asan_ext: {name} was imported from {module.__file__}, "
                                    f"not from the sanitizer build in {LIB}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"compiled parts from the sanitizer build: {LIB}"
