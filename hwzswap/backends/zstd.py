"""``zstd``: Zstandard frames through python-zstandard, one frame per page.

Frames are written without the content-size field or checksum; the decoder is always told the
page size. The kernel's crypto zstd (level 3 too) compresses with ``zstd_get_params(3, 256 KiB)``,
whose frame parameters keep the content size (2 more bytes a page at 4 KiB) and whose match
parameters are the 256 KiB table's, where python-zstandard sizes them for the 4 KiB page: the
ratios are close, the bytes not the kernel's.

python-zstandard's compressor and decompressor objects are not safe from several threads at
once (one shared decompressor, called by a load, a writeback and an async completion at the
same time, returned wrong pages and crashed the process): each thread gets its own pair, made
on its first call (a ``threading.local``), so the backend is ``concurrent`` as the kernel's
per-CPU compression contexts are.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import zstandard as _zstd

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    Param,
    check_page,
    compressed_input,
    corrupt,
    page_views,
    smaller_or_none,
    wrong_length,
)


# frame_content_size() says "not in the header" as -1; the module constant is 2**64 - 1.
_UNKNOWN_SIZE = (-1, _zstd.CONTENTSIZE_UNKNOWN)


class _Contexts(threading.local):
    """One thread's compression and decompression contexts, each made on its first use
    (a thread that only decodes, such as the writeback worker, never allocates a compressor).
    ``threading.local`` runs ``__init__`` once in each thread that touches the object."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.cctx: _zstd.ZstdCompressor | None = None
        self.dctx: _zstd.ZstdDecompressor | None = None

    def compressor(self) -> _zstd.ZstdCompressor:
        cctx = self.cctx = _zstd.ZstdCompressor(
            level=self.level, write_content_size=False, write_checksum=False)
        return cctx

    def decompressor(self) -> _zstd.ZstdDecompressor:
        dctx = self.dctx = _zstd.ZstdDecompressor()
        return dctx


class ZstdBackend(Backend):
    name = "zstd"
    PARAMS = {"level": Param(int, 3, min=-7, max=22, doc="zstd level (kernel default 3)")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = _Contexts(self.params["level"])

    @property
    def capabilities(self) -> Capabilities:
        # per-thread contexts (see the module's docstring): safe from several threads at once
        return Capabilities(concurrent=True)

    def compress(self, page: Any) -> bytes | None:
        if type(page) is not bytes or len(page) != PAGE_SIZE:
            page = check_page(page)
        ctx = self._ctx
        out = (ctx.cctx or ctx.compressor()).compress(page)
        return out if len(out) < PAGE_SIZE else None

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        # The codec on each page's view directly: the views are checked once, as a batch.
        ctx = self._ctx
        compress = (ctx.cctx or ctx.compressor()).compress
        return smaller_or_none([compress(v) for v in page_views(pages)])

    def decompress(self, data: Any) -> bytes:
        cls = data.__class__
        if cls is not bytes and not (cls is memoryview and data.c_contiguous):
            data = compressed_input(self.name, data)
        try:
            # A frame header may declare its content size: python-zstandard then allocates that
            # much before decoding, so a corrupt header (one flipped descriptor bit) would ask
            # for petabytes. Only a header declaring one page (or nothing) is decoded.
            size = _zstd.frame_content_size(data)
            if size != PAGE_SIZE and size not in _UNKNOWN_SIZE:
                raise corrupt(self.name, f"the frame header declares {size} bytes, not one page")
            # One page is one whole frame: bytes after its end are corruption, not padding
            # (allow_extra_data=False). Positional (max_output_size, read_across_frames,
            # allow_extra_data; python-zstandard >= 0.19): keywords cost ~0.1 µs a call here.
            ctx = self._ctx
            out = (ctx.dctx or ctx.decompressor()).decompress(data, PAGE_SIZE, False, False)
        except (_zstd.ZstdError, TypeError, ValueError) as exc:
            raise corrupt(self.name, str(exc)) from None
        except MemoryError:  # the decoder could not allocate what a corrupt frame asks for
            raise corrupt(self.name, "the frame asks for more memory than a page needs") from None
        if len(out) != PAGE_SIZE:
            raise wrong_length(self.name, len(out))
        return out
