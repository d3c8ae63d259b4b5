"""``deflate``: raw deflate (no zlib/gzip wrapper) through zlib, as the kernel's ``deflate``.

The kernel's crypto deflate (crypto/deflate.c) uses raw deflate at ``Z_DEFAULT_COMPRESSION``
(6) with a 4 KiB-friendly window (``DEFLATE_DEF_WINBITS`` = 11) and ``DEFLATE_DEF_MEMLEVEL`` =
``MAX_MEM_LEVEL``, which the kernel's include/linux/zconf.h sets to 8 (zlib's own is 9): the
same settings here (the window is a parameter). The kernel's zlib is an older fork, so the bytes
can still differ from the kernel's.
"""

from __future__ import annotations

import zlib
from typing import Any

from hwzswap.backends.contract import (
    Capabilities,
    PAGE_SIZE,
    Backend,
    Param,
    check_page,
    compressed_input,
    corrupt,
    wrong_length,
)


#: The kernel's deflate memLevel (``MAX_MEM_LEVEL`` in include/linux/zconf.h).
MEM_LEVEL = 8


class DeflateBackend(Backend):
    name = "deflate"
    PARAMS = {
        "level": Param(int, 6, min=1, max=9, doc="deflate level (kernel default 6)"),
        "window_bits": Param(int, 11, min=9, max=15, doc="log2 of the history window"),
    }

    @property
    def capabilities(self) -> Capabilities:
        # a stateless C codec: safe from several threads at once
        return Capabilities(concurrent=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._level = self.params["level"]
        self._wbits = self.params["window_bits"]

    def compress(self, page: Any) -> bytes | None:
        if type(page) is not bytes or len(page) != PAGE_SIZE:
            page = check_page(page)
        c = zlib.compressobj(self._level, zlib.DEFLATED, -self._wbits, MEM_LEVEL)
        out = c.compress(page) + c.flush()
        return out if len(out) < PAGE_SIZE else None

    def decompress(self, data: Any) -> bytes:
        cls = data.__class__
        if cls is not bytes and not (cls is memoryview and data.c_contiguous):
            data = compressed_input(self.name, data)
        d = zlib.decompressobj(-15)  # a larger window decodes any smaller one
        try:
            out = d.decompress(data, PAGE_SIZE)
            if not d.eof:
                raise zlib.error("stream is truncated or longer than one page")
            if d.unused_data:  # one page is one whole stream, with nothing after its end
                raise zlib.error(f"{len(d.unused_data)} bytes follow the end of the stream")
        except (zlib.error, TypeError, ValueError) as exc:
            raise corrupt(self.name, str(exc)) from None
        if len(out) != PAGE_SIZE:
            raise wrong_length(self.name, len(out))
        return out
