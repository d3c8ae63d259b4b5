"""The 842 software codec: byte-compatible with the Linux kernel's ``lib/842``.

Public API (used by the ``842`` backend and by the ``842-nx`` accelerator emulation):

* :func:`compress` -- the kernel's ``sw842_compress`` stream, byte for byte (templates, REPEAT,
  ZEROS, SHORT_DATA tail, END, CRC, zero padding to a multiple of 8 bytes);
* :func:`decompress` -- decodes one stream, kernel and lib842 streams included, and raises
  :class:`Sw842DecodeError` (a :class:`~hwzswap.errors.CorruptDataError`) for every malformed
  one. Unlike the kernel, *every* action is checked against ``max_out``;
* :func:`crc32_be` -- the CRC the stream carries (kernel ``crc32_be`` with seed 0).

The hot loops are compiled with numba (:mod:`._jit`, compiled on first use and cached on disk).
Without numba the same API runs on the plain-Python model in :mod:`.reference` (correct, about
a thousand times slower); :data:`COMPILED` says which one is in use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.backends.sw842 import reference as _ref
from hwzswap.backends.sw842.format import max_compressed_size
from hwzswap.backends.sw842.status import DecodeFailure, Sw842DecodeError
from hwzswap.errors import CorruptDataError, InvalidInputError

try:
    from hwzswap.backends.sw842 import _jit
except ImportError as _exc:  # numba missing: fall back to the reference model
    _jit = None  # type: ignore[assignment]
    IMPORT_ERROR: str | None = f"{type(_exc).__name__}: {_exc}"
else:
    IMPORT_ERROR = None

COMPILED: bool = _jit is not None
MAX_INPUT = (1 << 31) - 1  # the encoder's event numbers stay below 2**30 (see _jit)

_PAGE_CAP = max_compressed_size(PAGE_SIZE) + 8


class _Workspace(threading.local):
    """Per-thread encoder state and page buffers, reused call after call.

    The compiled code writes into them; one set per thread keeps concurrent callers (e.g. the
    NX emulation's engine threads) from sharing a buffer between the call and the copy-out.
    """

    def __init__(self) -> None:
        self.state = _jit.new_state()
        self.out = np.empty(_PAGE_CAP, np.uint8)
        self.page = np.empty(PAGE_SIZE, np.uint8)


if _jit is not None:
    _ws = _Workspace()
    _compress_into = _jit.compress_into
    _decompress_into = _jit.decompress_into

_FAILURES = {
    1: DecodeFailure.BAD_OP,
    2: DecodeFailure.SHORT_DATA_ZERO,
    3: DecodeFailure.REPEAT_EARLY,
    4: DecodeFailure.INDEX_PAST_END,
    5: DecodeFailure.OUTPUT_OVERFLOW,
    6: DecodeFailure.INPUT_END,
    7: DecodeFailure.CRC_MISMATCH,
    8: DecodeFailure.SHORT_DATA_FORBIDDEN,
    9: DecodeFailure.INPUT_END,  # the padding after the CRC is missing (page decoding only)
}


def as_u8(data: Any, what: str = "input") -> np.ndarray:
    """A flat uint8 view of a bytes-like object (no copy when it is contiguous)."""
    if type(data) is bytes:
        return np.frombuffer(data, np.uint8)
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8 and data.ndim == 1 and data.flags.c_contiguous:
            return data
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        view = memoryview(data)
    except TypeError:
        raise InvalidInputError(
            f"842: {what} must be a bytes-like object, not {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        return np.frombuffer(view.tobytes(), np.uint8)
    return np.frombuffer(view.cast("B") if view.ndim != 1 or view.format != "B" else view, np.uint8)


def _strict_error(n: int) -> InvalidInputError:
    return InvalidInputError(
        f"842 strict mode: input length {n} is not a multiple of 8 (the NX-842 hardware format "
        "has no SHORT_DATA op); pad the input or use strict=False"
    )


def compress(data: Any, strict: bool = False) -> bytes:
    """Compress ``data`` (any length) to a kernel-format 842 stream.

    The output equals the Linux kernel's ``sw842_compress`` output byte for byte (the kernel
    picks, among ring slots holding a value, the most recently written one; so do we).
    ``strict=True`` is the kernel's hardware-compatible mode: the length must be a multiple of
    8 (else :class:`~hwzswap.errors.InvalidInputError`), so no SHORT_DATA op is ever emitted.
    """
    src = as_u8(data)
    n = src.size
    if strict and n & 7:
        raise _strict_error(n)
    if _jit is None:
        return _ref.compress(src.tobytes(), strict)
    if n > MAX_INPUT:
        raise InvalidInputError(f"842: input of {n} bytes is over the {MAX_INPUT}-byte limit")
    ws = _ws
    cap = max_compressed_size(n) + 8
    out = ws.out if cap <= _PAGE_CAP else np.empty(cap, np.uint8)
    k = _compress_into(src, n, out, 0, ws.state)
    return out[:k].tobytes()


def _decode_error(
    st: int, produced: int, d1: int, d2: int, bit: int, max_out: int
) -> Sw842DecodeError:
    failure = _FAILURES[st]
    if failure is DecodeFailure.BAD_OP:
        what = f"invalid op code {d1:#04x} (codes 0x1a and 0x1f are not defined)"
    elif failure is DecodeFailure.SHORT_DATA_ZERO:
        what = "SHORT_DATA op with a byte count of 0"
    elif failure is DecodeFailure.SHORT_DATA_FORBIDDEN:
        what = "SHORT_DATA op in a stream that must not have one (NX-842 hardware rejects it)"
    elif failure is DecodeFailure.REPEAT_EARLY:
        what = f"REPEAT op after only {d1} output bytes (it needs a full 8-byte group)"
    elif failure is DecodeFailure.INDEX_PAST_END:
        what = (
            f"I{d2} index {d1} points past the output produced so far "
            f"({produced // 8 * 8} bytes: the {produced} bytes before this action, rounded "
            f"down to 8)"
        )
    elif failure is DecodeFailure.OUTPUT_OVERFLOW:
        what = f"output overflow: the stream decodes to more than max_out={max_out} bytes"
    elif st == 9:
        what = (
            f"the data is {d1} bytes but the stream with its padding is {d2}: it was truncated "
            "(842 streams are padded to a multiple of 8 bytes)"
        )
    elif failure is DecodeFailure.INPUT_END:
        what = (
            f"input ran out ({d1} more bits needed): the stream is truncated or has no END/CRC"
        )
    else:
        what = f"CRC mismatch: the stream carries {d1:#010x}, the decoded data has {d2:#010x}"
    return Sw842DecodeError(
        f"842: compressed data is corrupt: {what} (at bit {bit}, {produced} bytes decoded)",
        failure,
        bit,
        produced,
    )


def decompress(
    data: Any, max_out: int, check_crc: bool = True, allow_short_data: bool = True
) -> bytes:
    """Decode one 842 stream into at most ``max_out`` bytes.

    Bytes after the CRC are ignored (padding). ``check_crc=False`` decodes streams made before
    the kernel added the CRC (2015 ``lib/842``): decoding stops at END and no CRC is read.
    ``allow_short_data=False`` rejects SHORT_DATA, as the NX-842 hardware does.
    Raises :class:`Sw842DecodeError` (a ``CorruptDataError``; ``.failure`` says which rule).
    """
    if max_out < 0:
        raise InvalidInputError(f"842: max_out must be >= 0, got {max_out}")
    src = as_u8(data, "compressed data")
    if _jit is None:
        return _ref.decompress(src.tobytes(), max_out, check_crc, allow_short_data)
    # A stream cannot decode to more than 64 groups per 11-bit REPEAT: never allocate beyond it.
    cap = min(max_out, (src.size * 8 // 11 + 1) * 8 * 64)
    out = _ws.page if cap <= PAGE_SIZE else np.empty(cap, np.uint8)
    st, produced, d1, d2, bit = _decompress_into(
        src, src.size, out, cap, check_crc, allow_short_data
    )
    if st:
        raise _decode_error(st, produced, d1, d2, bit, max_out)
    return out[:produced].tobytes()


def compress_page(page: np.ndarray) -> bytes | None:
    """Compress one 4096-byte uint8 page; ``None`` when the stream would not be smaller.

    Stops encoding as soon as the stream reaches the page size (incompressible pages cost
    less). Requires numba (:data:`COMPILED`).
    """
    ws = _ws
    out = ws.out
    k = _compress_into(page, PAGE_SIZE, out, PAGE_SIZE, ws.state)
    return None if k < 0 else out[:k].tobytes()


def decompress_page(data: Any) -> bytes:
    """Decode one stored page: exactly 4096 bytes, CRC checked, padding present.

    Every 842 producer pads its stream to a multiple of 8 bytes and a stored page is exactly
    what the compressor produced, so data shorter than the padded stream was truncated even if
    the CRC happens to be intact. Requires numba (:data:`COMPILED`).
    """
    src = as_u8(data, "compressed data")
    out = _ws.page
    st, produced, d1, d2, bit = _decompress_into(src, src.size, out, PAGE_SIZE, True, True)
    if st:
        raise _decode_error(st, produced, d1, d2, bit, PAGE_SIZE)
    if produced != PAGE_SIZE:
        raise Sw842DecodeError(
            f"842: decompressed to {produced} bytes, expected {PAGE_SIZE}: the data is corrupt "
            "or is not a compressed page",
            DecodeFailure.INPUT_END,
            bit,
            produced,
        )
    end = ((bit + 7) // 8 + 7) & ~7
    if src.size < end:
        raise _decode_error(9, produced, src.size, end, bit, PAGE_SIZE)
    return out.tobytes()


def compress_pages(pages: np.ndarray) -> list[bytes | None]:
    """Compress each row of a C-contiguous ``(N, 4096)`` uint8 array in one compiled call."""
    n = pages.shape[0]
    out = np.empty((n, _PAGE_CAP), np.uint8)
    lens = np.empty(n, np.int64)
    _jit.compress_pages(pages, out, lens, PAGE_SIZE, _ws.state)
    return [None if k < 0 else row[:k].tobytes() for row, k in zip(out, lens.tolist())]


def decompress_pages(items: Sequence[Any]) -> np.ndarray:
    """Decode N stored pages into an ``(N, 4096)`` array in one compiled call.

    Raises :class:`~hwzswap.errors.CorruptDataError` naming the first bad item.
    """
    n = len(items)
    out = np.empty((n, PAGE_SIZE), np.uint8)
    if n == 0:
        return out
    try:
        blobs = [x if type(x) is bytes else memoryview(x).tobytes() for x in items]
    except TypeError as exc:
        raise InvalidInputError(f"842: batch items must be bytes-like ({exc})") from None
    starts = np.zeros(n + 1, np.int64)
    np.cumsum([len(b) for b in blobs], out=starts[1:])
    src = np.frombuffer(b"".join(blobs), np.uint8)
    bad, st, produced, d1, d2, bit = _jit.decompress_pages(src, starts, out, True, True)
    if bad >= 0:
        if st:
            exc: CorruptDataError = _decode_error(st, produced, d1, d2, bit, PAGE_SIZE)
        else:
            exc = CorruptDataError(
                f"842: decompressed to {produced} bytes, expected {PAGE_SIZE}: the data is "
                "corrupt or is not a compressed page"
            )
        raise CorruptDataError(f"item {bad}: {exc}") from exc
    return out


def crc32_be(data: Any) -> int:
    """The kernel's ``crc32_be(0, data, len)``: poly 0x04C11DB7, MSB-first, no final xor."""
    src = as_u8(data)
    if _jit is None:
        return _ref.crc32_be(src.tobytes())
    return int(_jit.crc32_be_array(src, src.size))


__all__ = [
    "COMPILED",
    "DecodeFailure",
    "Sw842DecodeError",
    "compress",
    "crc32_be",
    "decompress",
]
