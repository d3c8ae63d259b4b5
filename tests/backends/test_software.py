"""The software backends: conformance, reference interop, byte-exactness."""

from __future__ import annotations

import zlib

import lz4.block
import lzo
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap import get_backend
from hwzswap.errors import CorruptDataError, InvalidParameterError
from hwzswap.testing import check_backend, check_reference_interop, sample_pages

SOFTWARE = ["lzo", "lz4", "lz4hc", "zstd", "deflate"]

REFERENCE = {
    "lzo": (lambda b: lzo.compress(b, 1, False), lambda b: lzo.decompress(b, False, 4096)),
    "lz4": (
        lambda b: lz4.block.compress(b, store_size=False),
        lambda b: lz4.block.decompress(b, uncompressed_size=4096),
    ),
    "lz4hc": (
        lambda b: lz4.block.compress(b, mode="high_compression", store_size=False),
        lambda b: lz4.block.decompress(b, uncompressed_size=4096),
    ),
    "zstd": (
        lambda b: zstandard.ZstdCompressor(level=3).compress(b),
        lambda b: zstandard.ZstdDecompressor().decompress(b, max_output_size=4096),
    ),
    "deflate": (
        lambda b: (lambda c: c.compress(b) + c.flush())(zlib.compressobj(6, zlib.DEFLATED, -15)),
        lambda b: zlib.decompress(b, -15),
    ),
}


@pytest.mark.parametrize("name", SOFTWARE)
def test_conformance(name: str) -> None:
    check_backend(name)


@pytest.mark.parametrize("name", SOFTWARE)
def test_reference_interop(name: str) -> None:
    comp, decomp = REFERENCE[name]
    check_reference_interop(get_backend(name), comp, decomp)


def test_lzo_is_byte_identical_to_liblzo2_lzo1x_1() -> None:
    backend = get_backend("lzo")
    for page in sample_pages().values():
        raw = page.tobytes()
        expected = lzo.compress(raw, 1, False)
        got = backend.compress(page)
        if len(expected) < 4096:
            assert got == expected
        else:
            assert got is None


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("lz4", {"acceleration": 0}),
        ("lz4", {"acceleration": "fast"}),
        ("lz4", {"acceleration": True}),
        ("lz4hc", {"level": 13}),
        ("zstd", {"level": 23}),
        ("deflate", {"level": 0}),
        ("deflate", {"window_bits": 16}),
        ("lzo", {"level": 1}),
    ],
)
def test_bad_params_are_rejected(name: str, params: dict) -> None:
    key = next(iter(params))
    with pytest.raises(InvalidParameterError, match=key):
        get_backend(name, **params)


@pytest.mark.parametrize("name", SOFTWARE)
def test_too_long_output_is_rejected(name: str) -> None:
    """A stream that decodes to more than a page is corrupt, not truncated silently."""
    comp, _ = REFERENCE[name]
    two_pages = bytes(range(256)) * 32
    backend = get_backend(name)
    with pytest.raises(CorruptDataError):
        backend.decompress(comp(two_pages))


@pytest.mark.parametrize("name", SOFTWARE)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), zero_share=st.floats(0, 1))
def test_property_roundtrip_random_pages(name: str, seed: int, zero_share: float) -> None:
    rng = np.random.default_rng(seed)
    page = rng.integers(0, 256, 4096, dtype=np.uint8)
    page[rng.random(4096) < zero_share] = 0
    data = page.tobytes()
    backend = get_backend(name)
    out = backend.compress(data)
    if out is not None:
        assert len(out) < 4096
        assert backend.decompress(out) == data


@pytest.mark.parametrize("name", SOFTWARE)
@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.tuples(st.integers(0, 255), st.integers(1, 600)), min_size=1, max_size=40
    )
)
def test_property_roundtrip_structured_pages(name: str, runs: list) -> None:
    buf = b"".join(bytes([v]) * n for v, n in runs)
    page = (buf * (4096 // len(buf) + 1))[:4096]
    backend = get_backend(name)
    out = backend.compress(page)
    assert out is not None or len(set(page)) > 1
    if out is not None:
        assert backend.decompress(out) == page
    batch = np.frombuffer(page * 3, np.uint8).reshape(3, 4096)
    items = backend.compress_batch(batch)
    assert [bytes(i) if i is not None else None for i in items] == [out] * 3


def test_deflate_uses_the_kernels_settings() -> None:
    """crypto/deflate.c: raw deflate, level Z_DEFAULT_COMPRESSION (6), window 11 and memLevel
    MAX_MEM_LEVEL, which the kernel's include/linux/zconf.h sets to 8 (zlib's own is 9)."""
    backend = get_backend("deflate")
    differs = 0
    for page in sample_pages().values():
        raw = page.tobytes()
        c = zlib.compressobj(6, zlib.DEFLATED, -11, 8)
        expected = c.compress(raw) + c.flush()
        c9 = zlib.compressobj(6, zlib.DEFLATED, -11, 9)
        differs += (c9.compress(raw) + c9.flush()) != expected
        got = backend.compress(page)
        assert got == (expected if len(expected) < 4096 else None)
    assert differs  # the sample tells the two memLevels apart
