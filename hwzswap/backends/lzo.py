"""``lzo``: LZO1X-1 through python-lzo (liblzo2), the seed's default compressor.

``lzo.compress(data, 1, False)`` is liblzo2's ``lzo1x_1_compress`` with no header: the LZO1X
format the kernel's ``lzo`` decodes, but not always its bytes. liblzo2's LZO1X-1 hashes into a
2^14-entry dictionary (``D_BITS`` 14), the kernel's lib/lzo into 2^13 (lzodefs.h), so about half
of the pages compress to different bytes, and the ratio differs by about 0.1 %.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    Capabilities,
    PAGE_SIZE,
    Backend,
    check_page,
    compressed_input,
    corrupt,
    page_views,
    smaller_or_none,
    wrong_length,
)

try:
    import lzo as _lzo
except ImportError as _exc:  # pragma: no cover - exercised only without python-lzo
    _lzo = None
    _IMPORT_ERROR = str(_exc)


class LzoBackend(Backend):
    name = "lzo"

    @property
    def capabilities(self) -> Capabilities:
        # a stateless C codec: safe from several threads at once
        return Capabilities(concurrent=True)

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        if _lzo is None:
            return False, f"python-lzo is not installed ({_IMPORT_ERROR})"
        return True, None

    def compress(self, page: Any) -> bytes | None:
        if type(page) is not bytes or len(page) != PAGE_SIZE:
            page = check_page(page).tobytes()
        out = _lzo.compress(page, 1, False)
        return out if len(out) < PAGE_SIZE else None

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        # The views are checked once, as a batch; python-lzo takes only bytes, hence the copy.
        compress = _lzo.compress
        return smaller_or_none([compress(v.tobytes(), 1, False) for v in page_views(pages)])

    def decompress(self, data: Any) -> bytes:
        if type(data) is not bytes:
            data = bytes(compressed_input(self.name, data))  # python-lzo takes only bytes
        try:
            out = _lzo.decompress(data, False, PAGE_SIZE)
        except _lzo.error as exc:
            raise corrupt(self.name, str(exc)) from None
        if len(out) != PAGE_SIZE:
            raise wrong_length(self.name, len(out))
        return out
