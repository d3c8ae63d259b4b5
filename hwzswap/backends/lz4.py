"""``lz4`` and ``lz4hc``: the LZ4 block format through python-lz4 (no size prefix).

The block format is what the kernel's ``lz4``/``lz4hc`` produce and what ``lz4-opencl`` emits.
"""

from __future__ import annotations

from typing import Any

import lz4.block as _block
import numpy as np

from hwzswap.backends.contract import (
    Capabilities,
    PAGE_SIZE,
    Backend,
    Param,
    check_page,
    compressed_input,
    corrupt,
    page_views,
    wrong_length,
)

_compress = _block.compress
_decompress = _block.decompress


def lz4_decompress_page(name: str, data: Any) -> bytes:
    """Decode one LZ4 block that must yield exactly one page."""
    cls = data.__class__
    if cls is not bytes and not (cls is memoryview and data.c_contiguous):  # pool views pass
        data = compressed_input(name, data)
    try:
        out = _decompress(data, uncompressed_size=PAGE_SIZE)
    except (_block.LZ4BlockError, TypeError, ValueError) as exc:
        raise corrupt(name, str(exc)) from None
    if len(out) != PAGE_SIZE:
        raise wrong_length(name, len(out))
    return out


class Lz4Backend(Backend):
    """LZ4 fast mode; ``acceleration`` trades ratio for speed (1 = kernel default)."""

    name = "lz4"
    PARAMS = {"acceleration": Param(int, 1, min=1, max=65537, doc="LZ4 acceleration factor")}

    @property
    def capabilities(self) -> Capabilities:
        # a stateless C codec: safe from several threads at once
        return Capabilities(concurrent=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._accel = self.params["acceleration"]

    def compress(self, page: Any) -> bytes | None:
        if type(page) is not bytes or len(page) != PAGE_SIZE:
            page = check_page(page)
        out = _compress(page, mode="fast", acceleration=self._accel, store_size=False)
        return out if len(out) < PAGE_SIZE else None

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        # The codec on each page's view directly: the views are checked once, as a batch.
        acc = self._accel
        return [out if len(out := _compress(v, mode="fast", acceleration=acc, store_size=False))
                < PAGE_SIZE else None for v in page_views(pages)]

    def decompress(self, data: Any) -> bytes:
        return lz4_decompress_page(self.name, data)


class Lz4hcBackend(Backend):
    """LZ4 high-compression mode (same block format, slower, better ratio)."""

    name = "lz4hc"
    PARAMS = {"level": Param(int, 9, min=1, max=12, doc="LZ4HC level (kernel default 9)")}

    @property
    def capabilities(self) -> Capabilities:
        # a stateless C codec: safe from several threads at once
        return Capabilities(concurrent=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._level = self.params["level"]

    def compress(self, page: Any) -> bytes | None:
        if type(page) is not bytes or len(page) != PAGE_SIZE:
            page = check_page(page)
        out = _compress(page, mode="high_compression", compression=self._level, store_size=False)
        return out if len(out) < PAGE_SIZE else None

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        level = self._level
        return [out if len(out := _compress(v, mode="high_compression", compression=level,
                                            store_size=False)) < PAGE_SIZE else None
                for v in page_views(pages)]

    def decompress(self, data: Any) -> bytes:
        return lz4_decompress_page(self.name, data)
