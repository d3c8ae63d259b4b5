"""Every built-in backend on the same input forms: the single-page entry points take any page
layout the batch ones take, and the decoders refuse what is not one whole object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.backends import Backend, get_backend
from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.backends.registry import _BUILTINS
from hwzswap.errors import CorruptDataError, InvalidInputError

# 842-nx ships with the package as an entry point (the driver example), not in the built-in table
BUILTINS = sorted({*_BUILTINS, "842-nx"})
# The 842 format ends at its END op (and the kernel's decompressor reads no further), so bytes
# after it are not looked at; every other format here is rejected with anything appended.
WHOLE_OBJECT = [name for name in BUILTINS if not name.startswith("842")]


def _open(name: str) -> Backend:
    return get_backend(name, tune="off") if name == "lz4-opencl" else get_backend(name)


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, Backend]]:
    opened: dict[str, Backend] = {}
    try:
        yield opened
    finally:
        for backend in opened.values():
            backend.close()


def _backend(backends: dict[str, Backend], name: str) -> Backend:
    if name not in backends:
        backends[name] = _open(name)
    return backends[name]


def _page() -> np.ndarray:
    rng = np.random.default_rng(7)
    page = np.zeros(PAGE_SIZE, np.uint8)
    page[: PAGE_SIZE // 2] = rng.integers(0, 256, PAGE_SIZE // 2, dtype=np.uint8)
    page[3000:3100] = 0x5A
    return page


def _strided(page: np.ndarray) -> Any:
    buf = np.zeros(2 * PAGE_SIZE, np.uint8)
    buf[::2] = page
    return buf[::2]


def _fortran(page: np.ndarray) -> Any:
    return np.asfortranarray(page.reshape(64, 64))


def _read_only(page: np.ndarray) -> Any:
    return np.frombuffer(page.tobytes(), np.uint8)


def _strided_memoryview(page: np.ndarray) -> Any:
    return memoryview(bytearray(_strided(page).base.tobytes()))[::2]


FORMS: dict[str, Callable[[np.ndarray], Any]] = {
    "strided": _strided,
    "fortran": _fortran,
    "read-only": _read_only,
    "memoryview-of-bytearray": lambda p: memoryview(bytearray(p.tobytes())),
    "strided-memoryview": _strided_memoryview,
    "uint32-view": lambda p: p.view(np.uint32),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", BUILTINS)
def test_compress_takes_any_page_layout(backends, name: str, form: str) -> None:
    """A non-contiguous page is valid input (copied), as it is for compress_batch."""
    backend = _backend(backends, name)
    page = _page()
    arg = FORMS[form](page)
    assert np.asarray(arg).tobytes() == page.tobytes()  # the page's bytes, in C order
    expected = backend.compress(page.tobytes())
    assert expected is not None
    assert backend.compress(arg) == expected
    assert backend.decompress(expected) == page.tobytes()


@pytest.mark.parametrize("name", WHOLE_OBJECT)
@settings(max_examples=15)
@given(tail=st.binary(min_size=1, max_size=64), zeros=st.integers(0, PAGE_SIZE))
def test_bytes_after_the_object_are_corruption(backends, name: str, tail: bytes,
                                               zeros: int) -> None:
    backend = _backend(backends, name)
    page = _page()
    page[PAGE_SIZE - zeros:] = 0
    data = backend.compress(page.tobytes())
    assert data is not None
    with pytest.raises(CorruptDataError, match=f"^{name}: |: {name}: "):
        backend.decompress(data + tail)


@pytest.mark.parametrize("bad", [None, "abc", 17])
@pytest.mark.parametrize("name", BUILTINS)
def test_decompress_batch_with_a_non_buffer_item_is_invalid_input(backends, name: str,
                                                                  bad: Any) -> None:
    backend = _backend(backends, name)
    data = backend.compress(_page().tobytes())
    with pytest.raises(InvalidInputError, match=f"{name}: .*bytes-like"):
        backend.decompress_batch([data, bad])
