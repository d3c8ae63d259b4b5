"""zswap's compiled scans and index (``_hotpath``) and their Python references (``_hotpath_py``)
on odd arguments: both take the same ones and raise the same errors. Every test runs on both,
whatever ``HWZSWAP_IMPL`` says."""

from __future__ import annotations

import array

import numpy as np
import pytest

from hwzswap.frontswap import _hotpath, _hotpath_py

PAGE = 4096

SAME_FILLED = [_hotpath.same_filled_pages, _hotpath_py.same_filled_pages_py]


@pytest.mark.parametrize("fn", SAME_FILLED, ids=["c", "py"])
def test_same_filled_pages_refuses_any_non_contiguous_buffer_with_a_valueerror(fn) -> None:
    for buf in (memoryview(bytes(4 * PAGE))[::2],  # a strided memoryview
                memoryview(bytes(4 * PAGE)).cast("B", (4, PAGE))[::2],
                np.zeros((4, PAGE), np.uint8)[::2],  # a numpy slice
                np.zeros((2, PAGE), np.uint8).T):  # Fortran order
        with pytest.raises(ValueError, match="same_filled_pages: the buffer is not C-contiguous"):
            fn(buf)


@pytest.mark.parametrize("fn", SAME_FILLED, ids=["c", "py"])
def test_same_filled_pages_takes_any_contiguous_buffer(fn) -> None:
    zero = [(0, bytes(8))]
    assert fn(np.zeros(PAGE, ">i4")) == [(0, bytes(8)), (1, bytes(8)), (2, bytes(8)),
                                         (3, bytes(8))]
    assert fn(array.array("d", [0.0] * (PAGE // 8))) == zero
    assert fn(memoryview(bytes(PAGE)).cast("B", (1, PAGE))) == zero
    assert fn(memoryview(b"x" * PAGE).toreadonly()) == [(0, b"x" * 8)]
    assert fn(np.zeros((0, PAGE), np.uint8)) == [] and fn(b"") == []
    with pytest.raises(TypeError):
        fn("abc")
