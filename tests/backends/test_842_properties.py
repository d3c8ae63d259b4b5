"""Property tests: the compiled 842 codec against the plain-Python model, and round trips.

The model (``sw842.reference``) keeps its rings in dicts; the compiled encoder uses event-numbered
hash chains. Equal bytes on inputs full of repeated 2/4/8-byte values -- where several ring slots
hold the same value and slots get overwritten -- is what shows the tie-break is the kernel's.
"""

from __future__ import annotations

import glob
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap import get_backend
from hwzswap.backends.sw842 import _jit, codec, reference
from hwzswap.backends.sw842.status import Sw842DecodeError
from hwzswap.testing import real_memory_mix, sample_pages

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Building blocks that make matches likely: a few 2-, 4- and 8-byte values.
_TOKENS = [bytes.fromhex(h) for h in ("0000", "ffff", "1234", "00000001", "deadbeef", "7f00")]
_TOKENS += [bytes.fromhex("00007f3a12340000"), bytes.fromhex("0102030405060708"), bytes(8)]


@st.composite
def structured(draw, max_len: int = 5000) -> bytes:
    """Bytes made of repeated tokens, runs (REPEAT, 64+ repeats, zeros) and random noise."""
    parts: list[bytes] = []
    total = 0
    target = draw(st.integers(0, max_len))
    while total < target:
        kind = draw(st.integers(0, 5))
        if kind <= 2:
            part = b"".join(draw(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=40)))
        elif kind == 3:
            unit = draw(st.sampled_from(_TOKENS + [b"\x00" * 8, b"\xab" * 8]))
            part = unit * draw(st.integers(1, 140))
        elif kind == 4:
            part = draw(st.binary(min_size=1, max_size=64))
        else:  # an earlier stretch again, so old ring slots match
            if not parts:
                continue
            part = draw(st.sampled_from(parts))
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:target]


@SETTINGS
@given(structured())
def test_compiled_equals_reference(data: bytes) -> None:
    stream = codec.compress(data)
    assert stream == reference.compress(data)
    assert len(stream) % 8 == 0
    assert codec.decompress(stream, len(data)) == data
    assert codec.decompress(stream + b"\x00" * 8, len(data) + 100) == data


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_round_trip(data: bytes) -> None:
    stream = codec.compress(data)
    assert stream == reference.compress(data)
    assert codec.decompress(stream, len(data)) == data


@SETTINGS
@given(structured(max_len=2100), st.integers(1, 7))
def test_tails_and_strict_mode(data: bytes, tail: int) -> None:
    body = data[: len(data) // 8 * 8]
    strict = codec.compress(body, strict=True)
    assert strict == codec.compress(body)
    assert codec.decompress(strict, len(body), allow_short_data=False) == body
    padded = body + data[:tail].ljust(tail, b"\x5a")
    stream = codec.compress(padded)
    assert stream == reference.compress(padded)
    assert codec.decompress(stream, len(padded)) == padded
    with pytest.raises(Sw842DecodeError, match="SHORT_DATA"):
        codec.decompress(stream, len(padded), allow_short_data=False)


@SETTINGS
@given(structured(max_len=3000), st.data())
def test_decoders_agree_on_damaged_streams(data: bytes, draw) -> None:
    """Flip bits and cut streams: both decoders accept the same ones with the same output."""
    stream = bytearray(codec.compress(data))
    for _ in range(draw.draw(st.integers(1, 3))):
        pos = draw.draw(st.integers(0, len(stream) * 8 - 1))
        stream[pos // 8] ^= 0x80 >> (pos % 8)
    stream = bytes(stream[: draw.draw(st.integers(0, len(stream)))])
    max_out = draw.draw(st.integers(0, len(data) + 64))
    check_crc = draw.draw(st.booleans())
    try:
        want = reference.decompress(stream, max_out, check_crc)
    except Sw842DecodeError as exc:
        with pytest.raises(Sw842DecodeError) as info:
            codec.decompress(stream, max_out, check_crc)
        assert info.value.failure is exc.failure
        assert info.value.bit == exc.bit
    else:
        assert codec.decompress(stream, max_out, check_crc) == want


def test_state_carries_nothing_between_calls() -> None:
    """Each call starts with empty rings, also across the event-number rebase."""
    pages = list(sample_pages().values())
    first = [codec.compress(p) for p in pages]
    event_base = codec._ws.state[_jit._OFF_CTR : _jit._OFF_CTR + 8].view(np.int64)
    event_base[0] = _jit.EVENT_LIMIT - 1024  # the next call must rebase and clear the heads
    second = [codec.compress(p) for p in reversed(pages)][::-1]
    assert first == second
    assert 0 < event_base[0] < 1 << 20
    for page, stream in zip(pages[:3], first[:3], strict=False):
        assert stream == reference.compress(page.tobytes())


def test_threads_do_not_share_buffers() -> None:
    """Concurrent callers (e.g. emulated engine threads) get their own workspace."""
    pages = real_memory_mix(48, seed=9)
    want = [codec.compress(p) for p in pages]
    errors: list[str] = []

    def worker(k: int) -> None:
        for _ in range(3):
            for i in range(k, len(pages), 4):
                if codec.compress(pages[i]) != want[i]:
                    errors.append(f"compress {i}")
                if codec.decompress(want[i], 4096) != pages[i].tobytes():
                    errors.append(f"decompress {i}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _real_pages() -> np.ndarray:
    """The bundled corpus when present (a sample of it), else the synthetic mix."""
    root = Path(hwzswap.__file__).parent / "data" / "corpus"
    files = sorted(glob.glob(str(root / "*.pages.zst")))
    if files:
        from hwzswap.bench.corpus import load_pages

        return np.concatenate([load_pages(f)[::97] for f in files])
    return real_memory_mix(128)


def test_real_pages_round_trip_and_match_reference() -> None:
    pages = _real_pages()
    backend = get_backend("842")
    items = backend.compress_batch(pages)
    kept = [i for i, it in enumerate(items) if it is not None]
    assert kept, "no page compressed"
    assert np.array_equal(backend.decompress_batch([items[i] for i in kept]), pages[kept])
    for i in range(0, len(pages), max(1, len(pages) // 6)):  # the slow model on a few pages
        raw = pages[i].tobytes()
        stream = reference.compress(raw)
        assert stream == codec.compress(raw)
        assert items[i] == (stream if len(stream) < 4096 else None)
        assert reference.decompress(stream, 4096) == raw


def _colliding(bits: int, width: int) -> tuple[int, int]:
    """Two different ``width``-byte values in the same encoder hash bucket (white-box)."""
    mask = (1 << 64) - 1
    seen: dict[int, int] = {}
    for k in range(1, 1 << 20):
        v = (k * 0x2545F4914F6CDD1D) & ((1 << (8 * width)) - 1)
        b = ((v * 0x9E3779B97F4A7C15) & mask) >> (64 - bits)
        if b in seen and seen[b] != v:
            return seen[b], v
        seen[b] = v
    raise AssertionError("no collision found")


@pytest.mark.parametrize("width", [8, 4])
def test_hash_collisions_keep_the_kernel_choice(width: int) -> None:
    """Values sharing a bucket: a lookup walks past the other value to the newest match."""
    v, w = _colliding(_jit.H8_BITS if width == 8 else _jit.H4_BITS, width)
    vb, wb = v.to_bytes(width, "big"), w.to_bytes(width, "big")
    sequences = [
        [vb, wb, vb],  # v's slot is behind w's in the bucket
        [vb, wb, vb, wb, vb, wb],  # several slots hold each value: the newest must win
        [vb] + [bytes([i]) * width for i in range(1, 40)] + [wb, vb],
    ]
    for seq in sequences:
        if width == 8:
            data = b"".join(seq)
        else:  # the other half differs every time, so only the I4 ring can match
            data = b"".join(x + (0xA1B2C300 + i).to_bytes(4, "big") for i, x in enumerate(seq))
        # a long gap so some slots expire (I8/I4 windows are 2048 bytes), then both again
        data += bytes(range(256)) * 9 + data
        assert codec.compress(data) == reference.compress(data)
        assert codec.decompress(codec.compress(data), len(data)) == data
