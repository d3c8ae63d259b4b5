"""zswap's compiled scans and index (``_hotpath``) and their Python references (``_hotpath_py``)
on odd arguments: both take the same ones and raise the same errors. Every test runs on both,
whatever ``HWZSWAP_IMPL`` says."""

from __future__ import annotations

import array
import sys

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
    for bad, name in (("abc", "str"), (12, "int"), (None, "NoneType")):
        with pytest.raises(TypeError, match=f"^a bytes-like object is required, not '{name}'$"):
            fn(bad)


CLAIM = [_hotpath.claim_slots, _hotpath_py.claim_slots_py]


@pytest.mark.parametrize("fn", CLAIM, ids=["c", "py"])
def test_claim_slots_declines_a_batch_it_cannot_claim_and_leaves_the_map(fn) -> None:
    for offsets, n in ((range(2**64), 5),  # longer than a Py_ssize_t
                       (range(2**64), -1),  # (the C went on with an error set)
                       (range(2**62), 2**62),  # more offsets than slots: never copied
                       ([1, 2], 2**70), ([1, 2], -2**70), ([1, 2], -1), ([1, 2], True),
                       ([1, 1], 2), ([1, 10], 2), ([1, np.int64(2)], 2), (iter([1]), 1),
                       ({1: 0}, 1)):
        smap = bytearray(10)
        assert fn(smap, offsets, n) is None
        assert smap == bytearray(10)


@pytest.mark.parametrize("fn", CLAIM, ids=["c", "py"])
def test_claim_slots_takes_an_integer_n_and_a_bytearray_map_only(fn) -> None:
    for smap in (memoryview(bytearray(10)), bytes(10), np.zeros(10, np.uint8), [0] * 10):
        with pytest.raises(TypeError, match="bytearray"):
            fn(smap, [1], 1)
        if isinstance(smap, memoryview):
            assert smap.tobytes() == bytes(10)
    for n in (2.0, "2", None, 2 + 0j):
        smap = bytearray(10)
        with pytest.raises(TypeError, match="integer"):
            fn(smap, [1, 2], n)
        assert smap == bytearray(10)
    smap = bytearray(10)
    # an integer type is an integer
    assert fn(smap, range(0, 4, 2), np.int64(2)) == ([0, 2], b"\x00\x00")
    assert fn(smap, (9,), 1) == ([9], b"\x00") and fn(smap, [], 0) == ([], b"")
    assert smap == b"\x01\x00\x01" + bytes(6) + b"\x01"
    assert fn(smap, [9, 1, 2], 3) == ([9, 1, 2], b"\x01\x00\x01")  # the states before


TREES = [_hotpath.ZswapTree, _hotpath_py.ZswapTreePy]


def test_the_tree_size_limit_is_the_swap_systems() -> None:
    from hwzswap.config import _SWAP_KEYS

    assert _hotpath.MAX_NR_PAGES == _hotpath_py.MAX_NR_PAGES == 1 << 30
    assert _SWAP_KEYS["nr_pages"](_hotpath_py.MAX_NR_PAGES) is None  # the largest swap.nr_pages
    assert _SWAP_KEYS["nr_pages"](_hotpath_py.MAX_NR_PAGES + 1) is not None


@pytest.mark.parametrize("cls", TREES, ids=["c", "py"])
def test_a_tree_is_at_most_max_nr_pages_long(cls) -> None:
    top = _hotpath_py.MAX_NR_PAGES
    for nr in (0, -1, top + 1, 2**62, sys.maxsize, sys.maxsize - 10, 2**70, -(2**70)):
        with pytest.raises(ValueError, match=rf"nr_pages must be in 1\.\.{top} .* got {nr}$"):
            cls(0, nr)
    for nr in (2.0, "5", None):
        with pytest.raises(TypeError):
            cls(0, nr)
    tree = cls(swap_type=3, nr_pages=np.int64(top))  # the largest: made and usable
    tree[top - 1] = "x"
    assert tree.nr_pages == top and tree.get(top - 1) == "x" and top not in tree
    with pytest.raises(KeyError):
        tree[top] = "y"
    assert len(tree) == 1 and cls(0, 1).nr_pages == 1
