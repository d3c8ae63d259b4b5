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
    compressed_input,
)
from hwzswap.backends.sw842 import codec


class Sw842Backend(Backend):
    """Software 842, kernel-compatible. A 4096-byte page never needs SHORT_DATA, so the
    streams are also valid input for the NX-842 hardware (no ``strict`` parameter needed)."""

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
            return codec.compress_page(np.frombuffer(page, np.uint8))
        return codec.compress_page(np.frombuffer(check_page(page), np.uint8))

    def decompress(self, data: Any) -> bytes:
        if type(data) is not bytes:
            data = compressed_input(self.name, data)
        return codec.decompress_page(data)

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        return codec.compress_pages(check_pages(pages))

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray:
        return codec.decompress_pages(items)
