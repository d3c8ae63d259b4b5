"""Decoder fuzz over every registered backend (issue 16, rows 9 and 15).

Random bytes and mutated real compressed pages go into ``decompress`` and ``decompress_batch``:
each call returns exactly one page (4096 bytes) or raises :class:`CorruptDataError` /
:class:`InvalidInputError`; nothing else ever comes out, and nothing crashes. Inputs that are
not bytes-like, or not contiguous, raise :class:`InvalidInputError` naming the backend.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.backends.contract import DecompressedBatch, ItemStatus
from hwzswap.backends.registry import backend_names
from hwzswap.errors import CorruptDataError, InvalidInputError
from hwzswap.testing import sample_pages

PAGE = 4096
NAMES = backend_names()
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class _Backends(dict):
    """Each backend built on first use (one that fails to build fails only its own tests)."""

    def __missing__(self, name):
        self[name] = hwzswap.get_backend(name)
        return self[name]


@pytest.fixture(scope="module")
def backends():
    made = _Backends()
    yield made
    for b in made.values():
        b.close()


def _streams(backend) -> list[bytes]:
    """Real compressed pages of this backend (a mix of contents), as seeds for mutation."""
    pages = [np.ascontiguousarray(p).tobytes() for p in sample_pages(7).values()]
    pages.append(bytes(range(256)) * 16)
    out = [backend.compress(p) for p in pages]
    return [bytes(c) for c in out if c is not None]


def _decode_one(backend, data) -> None:
    try:
        out = backend.decompress(data)
    except (CorruptDataError, InvalidInputError) as exc:
        assert str(exc)
        return
    assert type(out) is bytes and len(out) == PAGE, (backend.name, type(out), len(out))


def _decode_batch(backend, items) -> None:
    try:
        out = backend.decompress_batch(items)
    except (CorruptDataError, InvalidInputError) as exc:
        assert str(exc)
        return
    if isinstance(out, DecompressedBatch):
        assert len(out.status) == len(items)
        for k, status in enumerate(out.status):
            assert ItemStatus(status) in (ItemStatus.OK, ItemStatus.FAILED), (k, status)
        return
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.shape == (len(items), PAGE), (backend.name, out.shape)


def _mutate(stream: bytes, rng: random.Random) -> bytes:
    """One to four edits: flip, set, insert, delete, truncate, extend or splice."""
    b = bytearray(stream)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(7)
        i = rng.randrange(len(b) + 1) if b else 0
        if how == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif how == 1 and b:
            b[min(i, len(b) - 1)] = rng.choice([0, 0xFF, 0x80, 0x7F, 0xC3, rng.randrange(256)])
        elif how == 2:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif how == 3:
            del b[i : i + rng.randint(1, 8)]
        elif how == 4:
            del b[i:]
        elif how == 5:
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:
            b[i:] = stream[rng.randrange(len(stream) + 1):]
    return bytes(b)


@pytest.mark.parametrize("name", NAMES)
def test_every_backend_round_trips_its_seed_streams(backends, name):
    """The seeds are real: each decodes to the page it came from (so mutations start valid)."""
    b = backends[name]
    pages = [np.ascontiguousarray(p).tobytes() for p in sample_pages(3).values()]
    assert len(pages) >= 4
    for p in pages:
        c = b.compress(p)
        if c is not None:
            assert b.decompress(c) == p


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.binary(max_size=600) | st.binary(min_size=3000, max_size=5000))
def test_random_bytes_decode_to_a_page_or_raise_corrupt(backends, name, data):
    _decode_one(backends[name], data)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6))
def test_mutated_streams_decode_to_a_page_or_raise_corrupt(backends, name, seed, n):
    b = backends[name]
    rng = random.Random(seed)
    streams = _streams(b)
    items = [_mutate(rng.choice(streams), rng) for _ in range(n)]
    _decode_one(b, items[0])
    _decode_one(b, memoryview(bytearray(items[0])))  # other buffer types take the same path
    _decode_batch(b, items + [rng.choice(streams)])


@pytest.mark.parametrize("name", [n for n in NAMES if "opencl" not in n and n != "842-nx"])
def test_many_seeded_mutations_of_the_cpu_codecs(backends, name):
    """A longer seeded run for the fast CPU decoders (3,000 mutated streams each)."""
    b = backends[name]
    rng = random.Random(16)
    streams = _streams(b)
    for _ in range(3000):
        _decode_one(b, _mutate(rng.choice(streams), rng))


def test_zstd_corrupt_frame_header_is_corrupt_data_not_memory_error(backends):
    """Row 9: byte 4 (the frame header descriptor) set to 0xC3 declares an 8-byte content size
    of petabytes; python-zstandard would try to allocate it (MemoryError)."""
    b = backends["zstd"]
    for c in _streams(b):
        bad = bytearray(c)
        bad[4] = 0xC3
        with pytest.raises(CorruptDataError, match=r"zstd: .*frame header declares \d+ bytes"):
            b.decompress(bytes(bad))


BAD_INPUTS = [
    (None, "not NoneType"),
    ("text", "not str"),
    (5, "not int"),
    ([1, 2, 3], "not list"),
    (memoryview(b"x" * 100)[::2], "one contiguous buffer"),
    (np.zeros((8, 8), np.uint8)[:, ::2], "one contiguous buffer"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("value", "text"), BAD_INPUTS, ids=lambda v: type(v).__name__)
def test_non_bytes_or_strided_input_is_invalid_input(backends, name, value, text):
    b = backends[name]
    with pytest.raises(InvalidInputError, match=text) as info:
        b.decompress(value)
    assert "compressed data" in str(info.value)
