"""``842``: the kernel's software 842 (``842-scomp`` / ``842-generic``) as a backend.

The stream is byte-identical to ``sw842_compress``'s, so pages this backend compresses decode on
any kernel, and pages the emulated NX-842 (``842-nx``) produces decode here. Batches run as one
compiled call over the ``(N, 4096)`` array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    check_page,
    check_pages,
    wrong_length,
)
from hwzswap.backends.sw842 import codec
from hwzswap.backends.sw842.format import max_compressed_size
from hwzswap.errors import CorruptDataError, InvalidInputError

_OUT_CAP = max_compressed_size(PAGE_SIZE) + 8


class Sw842Backend(Backend):
    """Software 842, kernel-compatible; pages of 4096 bytes never need SHORT_DATA."""

    name = "842"

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        if not codec.COMPILED:
            return False, (
                f"numba is not importable ({codec.IMPORT_ERROR}); the 842 codec's bit-level "
                "loops need it (pip install numba)"
            )
        return True, None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="cpu", batch=True, preferred_batch=64)

    def compress(self, page: Any) -> bytes | None:
        if type(page) is bytes and len(page) == PAGE_SIZE:
            src = np.frombuffer(page, np.uint8)
        else:
            src = np.frombuffer(check_page(page), np.uint8)
        out = codec._OUT
        k = codec._compress_into(
            src, PAGE_SIZE, out, PAGE_SIZE, codec._STATE
        )
        return None if k < 0 else out[:k].tobytes()

    def decompress(self, data: Any) -> bytes:
        src = codec.as_u8(data, "compressed data")
        out = codec._PAGE_OUT
        st, produced, d1, d2, bit = codec._decompress_into(
            src, src.size, out, PAGE_SIZE, True, True
        )
        if st:
            raise codec._decode_error(st, produced, d1, d2, bit, PAGE_SIZE)
        if produced != PAGE_SIZE:
            raise wrong_length(self.name, produced)
        # A stored page is exactly what a compressor produced, and every 842 producer pads to
        # 8 bytes: data shorter than that was cut off even if the CRC happens to be intact.
        end = ((bit + 7) // 8 + 7) & ~7
        if src.size < end:
            raise codec._decode_error(9, produced, src.size, end, bit, PAGE_SIZE)
        return out.tobytes()

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        pages = check_pages(pages)
        n = pages.shape[0]
        out = np.empty((n, _OUT_CAP), np.uint8)
        lens = np.empty(n, np.int64)
        codec._jit.compress_pages(
            pages, out, lens, PAGE_SIZE, codec._STATE
        )
        return [None if k < 0 else row[:k].tobytes() for row, k in zip(out, lens.tolist())]

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray:
        n = len(items)
        out = np.empty((n, PAGE_SIZE), np.uint8)
        if n == 0:
            return out
        try:
            blobs = [bytes(x) if type(x) is not bytes else x for x in items]
        except TypeError as exc:
            raise InvalidInputError(f"842: batch items must be bytes-like ({exc})") from None
        starts = np.zeros(n + 1, np.int64)
        np.cumsum([len(b) for b in blobs], out=starts[1:])
        src = np.frombuffer(b"".join(blobs), np.uint8)
        bad, st, produced, d1, d2, bit = codec._jit.decompress_pages(src, starts, out, True, True)
        if bad >= 0:
            if st:
                exc: CorruptDataError = codec._decode_error(st, produced, d1, d2, bit, PAGE_SIZE)
            else:
                exc = wrong_length(self.name, produced)
            raise CorruptDataError(f"item {bad}: {exc}") from exc
        return out
