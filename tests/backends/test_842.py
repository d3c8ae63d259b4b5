"""The 842 codec: the worked examples of 842.md, CRC, strict mode, every decoder error, backend."""

from __future__ import annotations

import numpy as np
import pytest

from hwzswap import get_backend
from hwzswap.backends.sw842 import codec, reference
from hwzswap.backends.sw842.format import (
    BEST_TEMPLATE,
    ENCODER_RANK,
    T_REQUIRED,
    TEMPLATES,
    max_compressed_size,
    template_bits,
)
from hwzswap.backends.sw842.status import DecodeFailure, Sw842DecodeError
from hwzswap.errors import CorruptDataError, InvalidInputError
from hwzswap.testing import check_backend, sample_pages

H = bytes.fromhex
LIMIT = H("1111111111111111" "1212121213131415" "1717171717171717" "1717171717171717")

# (input, expected stream) from 842.md §3.5 / §3.6.
WORKED = {
    "zeros": (bytes(32), H("e6c2f00000000000")),
    "example3_i4_i4": (
        H("0102030405060708" "0506070801020304"),
        H("00081018202830384600200f6d612ebb0000000000000000"),
    ),
    "example4_template_0c": (
        H("0102030405060708" "0102aabb0506ccdd"),
        H("000810182028303843002aaec0b3377d15ca078600000000"),
    ),
    "example5_short_data": (
        H("0102030405060708" "0a0b0c"),
        H("000810182028303847585058679a88e90a80000000000000"),
    ),
    "empty": (b"", H("f000000000000000")),
    "zero_page": (bytes(4096), H("e6ffdffbff7feffdffbff7f780") + bytes(11)),
}


@pytest.mark.parametrize("impl", [codec, reference], ids=["compiled", "reference"])
@pytest.mark.parametrize("name", sorted(WORKED))
def test_worked_examples_byte_exact(impl, name: str) -> None:
    data, stream = WORKED[name]
    assert impl.compress(data) == stream
    assert impl.decompress(stream, len(data)) == data


def test_zero_page_is_24_bytes() -> None:
    assert len(codec.compress(bytes(4096))) == 24
    assert get_backend("842").compress(bytes(4096)) == WORKED["zero_page"][1]


@pytest.mark.parametrize("impl", [codec, reference], ids=["compiled", "reference"])
def test_limit_vector(impl) -> None:
    """D8, D8, D8, REPEAT(0), END, CRC 0xB572712C: 255 bits, exactly 32 bytes."""
    out = impl.compress(LIMIT)
    assert len(out) == 32
    bits = int.from_bytes(out, "big")
    assert bits >> (256 - 5) == 0x00  # first op: D8
    assert (bits >> 1) & 0xFFFFFFFF == 0xB572712C  # the CRC ends at bit 255
    assert bits & 1 == 0
    assert codec.crc32_be(LIMIT) == 0xB572712C
    assert impl.decompress(out, 32) == LIMIT


def test_crc32_be_check_values() -> None:
    assert codec.crc32_be(b"123456789") == 0x89A1897F
    assert reference.crc32_be(b"123456789") == 0x89A1897F
    assert codec.crc32_be(b"") == 0
    assert codec.crc32_be(bytes(4096)) == 0
    rng = np.random.default_rng(5)
    for n in (1, 7, 8, 9, 63, 4096, 4099):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert codec.crc32_be(data) == reference.crc32_be(data), n


def test_template_tables() -> None:
    """Rank order is ascending argument bits; BEST_TEMPLATE agrees with a rank-order search."""
    args = [template_bits(c) - 5 for c in ENCODER_RANK]
    assert args == sorted(args)
    assert sorted(ENCODER_RANK) == list(range(len(TEMPLATES)))
    assert template_bits(0x00) == 69 and template_bits(0x19) == 13 and template_bits(0x18) == 23
    for mask in range(128):
        usable = [c for c in ENCODER_RANK if T_REQUIRED[c] & ~mask == 0]
        assert BEST_TEMPLATE[mask] == usable[0]
    assert BEST_TEMPLATE[127] == 0x19 and BEST_TEMPLATE[0] == 0x00
    assert max_compressed_size(4096) == 4424


def test_strict_mode() -> None:
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        codec.compress(b"\x01" * 11, strict=True)
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        reference.compress(b"\x01" * 3, strict=True)
    data = H("0102030405060708") * 3
    assert codec.compress(data, strict=True) == codec.compress(data)
    assert codec.compress(b"", strict=True) == WORKED["empty"][1]


def test_input_forms() -> None:
    data = WORKED["example4_template_0c"][0]
    stream = WORKED["example4_template_0c"][1]
    arr = np.frombuffer(data, np.uint8)
    for form in (data, bytearray(data), memoryview(data), arr, arr.view(np.uint16), arr.copy()):
        assert codec.compress(form) == stream
    assert codec.compress(np.frombuffer(data * 2, np.uint8)[::2]) == codec.compress((data * 2)[::2])
    assert codec.decompress(bytearray(stream), 16) == data
    with pytest.raises(InvalidInputError, match="bytes-like"):
        codec.compress("text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="max_out"):
        codec.decompress(stream, -1)


# -- decoder errors -----------------------------------------------------------------------------


def _bits(*fields: tuple[int, int]) -> bytes:
    """Pack (value, width) fields MSB-first and pad to 8 bytes, like the compressor."""
    s = "".join(format(v, f"0{w}b") for v, w in fields)
    s += "0" * (-len(s) % 64)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def _crc_fields(data: bytes) -> tuple[tuple[int, int], ...]:
    return ((0x1E, 5), (codec.crc32_be(data), 32))


G = H("0102030405060708")
D8 = ((0x00, 5), (int.from_bytes(G, "big"), 64))

BAD_STREAMS = {
    "op 0x1a": (_bits((0x1A, 5)), 64, DecodeFailure.BAD_OP, "0x1a"),
    "op 0x1f": (_bits(*D8, (0x1F, 5)), 64, DecodeFailure.BAD_OP, "0x1f"),
    "nx header magic": (H("f842000001"), 64, DecodeFailure.BAD_OP, "0x1f"),
    "short data n=0": (_bits((0x1D, 5), (0, 3)), 64, DecodeFailure.SHORT_DATA_ZERO, "count of 0"),
    "repeat first": (_bits((0x1B, 5), (0, 6)), 64, DecodeFailure.REPEAT_EARLY, "REPEAT"),
    "repeat after short data": (
        _bits((0x1D, 5), (3, 3), (1, 8), (2, 8), (3, 8), (0x1B, 5), (0, 6)),
        64,
        DecodeFailure.REPEAT_EARLY,
        "3 output bytes",
    ),
    "i8 index with no output": (_bits((0x19, 5), (0, 8)), 64, DecodeFailure.INDEX_PAST_END, "I8"),
    "i8 index past end": (_bits(*D8, (0x19, 5), (1, 8)), 64, DecodeFailure.INDEX_PAST_END, "I8 index 1"),
    "i4 index past end": (_bits(*D8, (0x18, 5), (1, 9), (2, 9)), 64, DecodeFailure.INDEX_PAST_END, "I4 index 2"),
    "i2 index past end": (_bits(*D8, (0x12, 5), (0, 8), (1, 8), (2, 8), (4, 8)), 64, DecodeFailure.INDEX_PAST_END, "I2 index 4"),
    "literal overflow": (_bits(*D8, *D8, *_crc_fields(G * 2)), 8, DecodeFailure.OUTPUT_OVERFLOW, "max_out=8"),
    "zeros overflow": (_bits((0x1C, 5), (0x1C, 5), *_crc_fields(bytes(16))), 12, DecodeFailure.OUTPUT_OVERFLOW, "max_out=12"),
    "repeat overflow": (_bits(*D8, (0x1B, 5), (63, 6), *_crc_fields(G * 65)), 64, DecodeFailure.OUTPUT_OVERFLOW, "max_out=64"),
    # The kernel's decoder does not check these two (LKML 2020/6/5/727):
    "index overflow": (_bits(*D8, (0x19, 5), (0, 8), *_crc_fields(G * 2)), 12, DecodeFailure.OUTPUT_OVERFLOW, "max_out=12"),
    "short data overflow": (_bits((0x1D, 5), (5, 3), *([(9, 8)] * 5), *_crc_fields(bytes([9]) * 5)), 4, DecodeFailure.OUTPUT_OVERFLOW, "max_out=4"),
    "empty input": (b"", 64, DecodeFailure.INPUT_END, "input ran out"),
    "truncated literal": (_bits(*D8)[:4], 64, DecodeFailure.INPUT_END, "input ran out"),
    "no end": (_bits(*D8)[:9], 64, DecodeFailure.INPUT_END, "input ran out"),
    "truncated crc": (_bits(*D8, (0x1E, 5), (0, 32))[:11], 64, DecodeFailure.INPUT_END, "input ran out"),
    "crc mismatch": (_bits(*D8, (0x1E, 5), (0x12345678, 32)), 64, DecodeFailure.CRC_MISMATCH, "0x12345678"),
}


@pytest.mark.parametrize("impl", [codec, reference], ids=["compiled", "reference"])
@pytest.mark.parametrize("name", sorted(BAD_STREAMS))
def test_decoder_rejects(impl, name: str) -> None:
    stream, max_out, failure, text = BAD_STREAMS[name]
    with pytest.raises(Sw842DecodeError) as info:
        impl.decompress(stream, max_out)
    assert info.value.failure is failure
    assert isinstance(info.value, CorruptDataError)
    if impl is codec:
        assert text in str(info.value)


def test_valid_hand_made_streams_decode() -> None:
    """The same building blocks, used correctly, decode (so the rejections above are specific)."""
    assert codec.decompress(_bits(*D8, (0x19, 5), (0, 8), *_crc_fields(G * 2)), 16) == G * 2
    assert codec.decompress(_bits(*D8, (0x1B, 5), (63, 6), *_crc_fields(G * 65)), 520) == G * 65
    assert codec.decompress(_bits(*D8, (0x18, 5), (1, 9), (0, 9), *_crc_fields(G + G[4:] + G[:4])), 16) == G + G[4:] + G[:4]


# G, SHORT_DATA of 3 bytes (11 bytes out), then template 0x01 (D4 D2 I2): its I2 runs at 17 bytes.
_SD = H("aabbcc")
_MID_SHORT = ((0x1D, 5), (3, 3), *((b, 8) for b in _SD), (0x01, 5), (0x11223344, 32), (0x5566, 16))


@pytest.mark.parametrize("impl", [codec, reference], ids=["compiled", "reference"])
def test_index_after_a_mid_stream_short_data_uses_the_current_length(impl) -> None:
    """The kernel's __do_index rounds the output length at each index action down to 8 (842.md
    §1.4): after a mid-stream SHORT_DATA that is 16 here, not the op's start rounded (8)."""
    head = G + _SD + H("112233445566")  # 17 bytes
    for k in (4, 7):  # out[8:10], out[14:16]: inside the first 16 bytes, past the op's start
        data = head + head[2 * k : 2 * k + 2]
        assert impl.decompress(_bits(*D8, *_MID_SHORT, (k, 8), *_crc_fields(data)), 64) == data
    with pytest.raises(Sw842DecodeError) as info:  # out[16:18]: past the 16 bytes
        impl.decompress(_bits(*D8, *_MID_SHORT, (8, 8), *_crc_fields(head)), 64)
    assert info.value.failure is DecodeFailure.INDEX_PAST_END
    if impl is codec:
        assert "I2 index 8 points past the output produced so far (16 bytes: the 17" in str(
            info.value)


def test_bounds_check_regression() -> None:
    """lib842's test_decompress_boundscheck: 256 bytes of i % 16 into 64 bytes must fail."""
    data = bytes(i % 16 for i in range(256))
    stream = codec.compress(data)
    assert stream == reference.compress(data)
    assert codec.decompress(stream, 256) == data
    for impl in (codec, reference):
        with pytest.raises(Sw842DecodeError) as info:
            impl.decompress(stream, 64)
        assert info.value.failure is DecodeFailure.OUTPUT_OVERFLOW


def test_huge_max_out_allocates_only_what_the_stream_can_produce() -> None:
    data, stream = WORKED["zero_page"]
    assert codec.decompress(stream, 1 << 50) == data
    with pytest.raises(InvalidInputError, match="max_out"):
        codec.decompress(stream, -1)


def test_crc_switch_and_padding() -> None:
    data, stream = WORKED["example3_i4_i4"]
    assert codec.decompress(stream + b"\xff" * 16, 16) == data  # bytes after the CRC: ignored
    old = _bits(*D8, (0x1E, 5))  # a 2015 CRC-less stream
    assert codec.decompress(old, 8, check_crc=False) == G
    assert reference.decompress(old, 8, check_crc=False) == G
    with pytest.raises(Sw842DecodeError):
        codec.decompress(old[:9], 8)  # with the CRC check, the CRC is missing
    bad = bytearray(stream)
    bad[-9] ^= 1  # inside the CRC
    with pytest.raises(Sw842DecodeError, match="CRC mismatch"):
        codec.decompress(bytes(bad), 16)
    assert codec.decompress(bytes(bad), 16, check_crc=False) == data


def test_allow_short_data_switch() -> None:
    data, stream = WORKED["example5_short_data"]
    for impl in (codec, reference):
        with pytest.raises(Sw842DecodeError, match="SHORT_DATA") as info:
            impl.decompress(stream, 64, allow_short_data=False)
        assert info.value.failure is DecodeFailure.SHORT_DATA_FORBIDDEN
    assert codec.decompress(WORKED["example3_i4_i4"][1], 64, allow_short_data=False) == (
        WORKED["example3_i4_i4"][0]
    )


# -- the backend ----------------------------------------------------------------------------


def test_conformance() -> None:
    check_backend("842")


def test_backend_pages_match_codec() -> None:
    backend = get_backend("842")
    assert backend.capabilities.batch
    pages = np.stack(list(sample_pages().values()))
    batch = backend.compress_batch(pages)
    for page, item in zip(pages, batch, strict=True):
        stream = codec.compress(page)
        if len(stream) < 4096:
            assert item == stream == backend.compress(page)
        else:
            assert item is None and backend.compress(page) is None
    kept = [i for i, it in enumerate(batch) if it is not None]
    assert np.array_equal(backend.decompress_batch([batch[i] for i in kept]), pages[kept])


def test_backend_rejects_bad_items() -> None:
    backend = get_backend("842")
    good = backend.compress(sample_pages()["text"])
    short = codec.compress(bytes(4088))
    with pytest.raises(CorruptDataError, match="4088"):
        backend.decompress(short)
    with pytest.raises(CorruptDataError, match="item 1"):
        backend.decompress_batch([good, short])
    with pytest.raises(CorruptDataError, match="item 2: .*truncated"):
        backend.decompress_batch([good, good, good[:-1]])
    with pytest.raises(CorruptDataError, match="overflow"):
        backend.decompress(codec.compress(bytes(4104)))


def test_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend says why it cannot run; the codec API falls back to the Python model."""
    from hwzswap.backends.sw842.backend import Sw842Backend

    monkeypatch.setattr(codec, "COMPILED", False)
    monkeypatch.setattr(codec, "IMPORT_ERROR", "ModuleNotFoundError: No module named 'numba'")
    ok, reason = Sw842Backend.availability()
    assert not ok and "numba" in reason
    monkeypatch.setattr(codec, "_jit", None)
    data, stream = WORKED["example4_template_0c"]
    assert codec.compress(data) == stream
    assert codec.decompress(stream, 16) == data
    assert codec.crc32_be(b"123456789") == 0x89A1897F
    with pytest.raises(Sw842DecodeError, match="CRC"):
        codec.decompress(BAD_STREAMS["crc mismatch"][0], 64)
