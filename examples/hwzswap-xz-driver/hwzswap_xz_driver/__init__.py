"""An example third-party backend: raw LZMA2 through Python's ``lzma`` module.

It exists to show (and test) that a driver living in its own package registers through the
``hwzswap.backends`` entry-point group and passes ``hwzswap.testing.check_backend``.
"""

from __future__ import annotations

import lzma
from typing import Any

from hwzswap.backends.contract import PAGE_SIZE, Backend, Param, check_page, corrupt, wrong_length


class XzBackend(Backend):
    name = "xz"
    PARAMS = {"preset": Param(int, 1, min=0, max=9, doc="xz preset")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._filters = [{"id": lzma.FILTER_LZMA2, "preset": self.params["preset"]}]

    def compress(self, page: Any) -> bytes | None:
        data = check_page(page)
        out = lzma.compress(data, format=lzma.FORMAT_RAW, filters=self._filters)
        return out if len(out) < PAGE_SIZE else None

    def decompress(self, data: Any) -> bytes:
        d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=self._filters)
        try:
            out = d.decompress(bytes(data), max_length=PAGE_SIZE + 1)
        except lzma.LZMAError as exc:
            raise corrupt(self.name, str(exc)) from None
        if not d.eof:
            raise corrupt(self.name, "stream is truncated")
        if len(out) != PAGE_SIZE:
            raise wrong_length(self.name, len(out))
        return out
