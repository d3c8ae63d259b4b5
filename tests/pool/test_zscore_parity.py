"""The compiled zsmalloc pool and its Python reference raise the same on odd arguments: what a
data object's ``__len__`` raises.

Every test runs on both (``ZsPool`` and ``PyZsPool``), whatever ``HWZSWAP_IMPL`` says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwzswap.errors import PoolError
from hwzswap.pool import ZsPool
from hwzswap.pool.zsmalloc import PyZsPool


@pytest.fixture(params=[ZsPool, PyZsPool], ids=["c", "py"])
def Zs(request: pytest.FixtureRequest) -> type:
    return request.param


class _Len:
    """A non-buffer object whose ``__len__`` raises ``exc`` (or returns it, if an int)."""

    def __init__(self, exc: Any) -> None:
        self.exc = exc

    def __len__(self) -> int:
        if isinstance(self.exc, int):
            return self.exc
        raise self.exc


# what len() raises for a __len__ that raises, or returns, each of these
_LEN_ERRORS = [
    (KeyboardInterrupt(), KeyboardInterrupt),
    (MemoryError(), MemoryError),
    (RuntimeError("len failed"), RuntimeError),
    (ValueError("boom"), ValueError),
    (2**70, OverflowError),  # len() cannot fit it in a Py_ssize_t
    (-1, ValueError),  # len() refuses a negative length
]


@pytest.mark.parametrize("exc, want", _LEN_ERRORS)
def test_an_error_from_len_propagates_from_malloc_write_and_write(Zs: type, exc: Any,
                                                                  want: type) -> None:
    pool = Zs()
    h = pool.malloc_write(b"abc")
    with pytest.raises(want):
        pool.malloc_write(_Len(exc))
    with pytest.raises(want):
        pool.write(h, _Len(exc))
    assert pool.read(h) == b"abc" and len(pool) == 1 and pool.stored_bytes == 3
    pool.check()


def test_a_typeerror_from_len_is_the_bytes_like_error(Zs: type) -> None:
    pool = Zs()
    h = pool.malloc_write(b"abc")
    for data in (_Len(TypeError("no")), 42, None):
        with pytest.raises(PoolError, match="bytes-like"):
            pool.malloc_write(data)
        with pytest.raises(PoolError, match="bytes-like"):
            pool.write(h, data)
    assert pool.read(h) == b"abc" and len(pool) == 1
    pool.check()
