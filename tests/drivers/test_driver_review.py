"""Defects a driver author's review found (engine and kit side), one test each: a driver that
breaks a rule gets a clear error or a counter, a page the engine accepted comes back
byte-exact, and the kit and the engine apply one rule."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hwzswap.backends.contract import read_only_view
from hwzswap.testing import ConformanceError, run_conformance

import broken_drivers as bd
from test_engine_guard import _driver, _pages

# -- 1: the driver's read-only input cannot be made writable again ---------------------------------


def test_read_only_view_cannot_be_made_writable() -> None:
    base = np.zeros((4, 4096), np.uint8)
    for arr in (base, base[::2], base[1]):
        view = read_only_view(arr)
        assert np.shares_memory(view, arr) and view.shape == arr.shape
        with pytest.raises(ValueError):
            view.flags.writeable = True
        with pytest.raises(ValueError):
            view[0] = 1
    assert not base.any()


@pytest.mark.parametrize("batching", ["reclaim", "async"])
def test_a_driver_that_flips_its_input_writable_changes_no_page(system, batching) -> None:
    s = system(bd.FlipsWritable, batching=batching)
    pages = _pages(16)
    orig = pages.copy()
    results = s.swap_out_batch(0, list(range(16)), pages)
    s.drain()
    assert np.array_equal(pages, orig), "the driver changed the caller's pages"
    assert _driver(s)["bad_exception"] >= 1
    assert "read-only" in s.zswap.compressor.last_error
    for off in range(16):
        assert s.swap_in(0, off) == orig[off].tobytes(), f"page {off} (stored={results[off]})"


def test_the_kit_fails_a_driver_that_flips_its_input_writable(register) -> None:
    register(bd.FlipsWritable)
    with pytest.raises(ConformanceError) as info:
        run_conformance(bd.FlipsWritable.name, timeout_s=5.0)
    assert info.value.check == "batch"
    assert re.search(r"compress_batch wrote into its input .*read-only: compress_batch raised "
                     r"ValueError: cannot set WRITEABLE flag", str(info.value)), str(info.value)
