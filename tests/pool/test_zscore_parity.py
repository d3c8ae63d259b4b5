"""The compiled zsmalloc pool and its Python reference raise the same on odd arguments: what a
handle's ``__index__`` or a data object's ``__len__`` raises, and which handles are handles.

Every test runs on both (``ZsPool`` and ``PyZsPool``), whatever ``HWZSWAP_IMPL`` says."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.errors import InvalidHandleError, PoolError
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


class _Index:
    """An integer-like handle whose ``__index__`` raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __index__(self) -> int:
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), MemoryError(), RuntimeError("x")])
def test_an_error_from_a_handles_index_propagates(Zs: type, exc: BaseException) -> None:
    pool = Zs()
    h = pool.malloc_write(b"abc")
    bad = _Index(exc)
    calls = [pool.read, pool.view, pool.obj_size, pool.free, pool.read_free, pool.map,
             pool.unmap, lambda x: pool.write(x, b"z"), lambda x: x in pool]
    for call in calls:
        with pytest.raises(type(exc)):
            call(bad)
    assert pool.read(h) == b"abc" and len(pool) == 1
    pool.check()


def test_a_typeerror_from_a_handles_index_is_an_invalid_handle(Zs: type) -> None:
    pool = Zs()
    pool.malloc_write(b"abc")
    bad = _Index(TypeError("not an int"))
    with pytest.raises(InvalidHandleError):
        pool.read(bad)
    assert bad not in pool


def test_a_float_equal_to_a_handle_is_not_a_handle(Zs: type) -> None:
    """A handle is an int (or an integer type): ``float(h) == h`` finds nothing in either."""
    pool = Zs()
    h = pool.malloc_write(b"abc")
    for op in ("read", "view", "obj_size", "map", "unmap", "free", "read_free"):
        with pytest.raises(InvalidHandleError, match="a handle is an int from malloc"):
            getattr(pool, op)(float(h))
    with pytest.raises(InvalidHandleError, match="a handle is an int from malloc"):
        pool.write(float(h), b"xyz")
    assert float(h) not in pool and h in pool and pool.read(h) == b"abc"
    pool.check()
