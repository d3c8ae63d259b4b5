"""``max_compression_ratio`` cuts off exactly where v9's C integer test does."""

from __future__ import annotations

import numpy as np
import pytest

import hwzswap
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.zswap import ZswapCache
from hwzswap.pool import PageAllocator, create_pool

from fsutil import lz4_len, sized_page


def _page_of_len(dlen: int) -> bytes:
    """A page lz4 compresses to exactly ``dlen`` bytes (random bytes then zeros)."""
    for k in range(dlen - 80, dlen + 1):
        for seed in range(4):
            page = sized_page(k, seed)
            if lz4_len(page) == dlen:
                return page
    raise AssertionError(f"no page compresses to {dlen} bytes")


def _v9_rejects(dlen: int, ratio: int) -> bool:
    """v9's ``dlen * 100 / PAGE_SIZE > zswap_max_compression_ratio``, in C integer arithmetic."""
    return dlen * 100 // 4096 > ratio


@pytest.mark.parametrize(("ratio", "last_kept"), [(80, 3317), (65, 2703), (100, 4136)])
def test_max_compressed_len_is_the_c_integer_expression(ratio, last_kept):
    assert ZswapPolicy(max_compression_ratio=ratio).max_compressed_len == last_kept
    for r in range(1, 101):
        n = ZswapPolicy(max_compression_ratio=r).max_compressed_len
        assert not _v9_rejects(min(n, 4095), r) and _v9_rejects(n + 1, r), r


@pytest.mark.parametrize(("ratio", "kept", "rejected"), [(80, 3317, 3318), (65, 2703, 2704)])
def test_store_keeps_the_last_length_v9_keeps_and_rejects_the_next(ratio, kept, rejected):
    c = ZswapCache(hwzswap.get_backend("lz4"), create_pool("zsmalloc", PageAllocator()),
                   ZswapPolicy(max_compression_ratio=ratio))
    try:
        c.init(0, 16)
        ok, poor = _page_of_len(kept), _page_of_len(rejected)
        assert not _v9_rejects(kept, ratio) and _v9_rejects(rejected, ratio)
        assert c.store(0, 0, ok) is True
        assert c.store(0, 1, poor) is False
        assert c.load(0, 0) == ok and c.load(0, 1) is None
        assert c.stats()["reject_compress_poor"] == 1
        # the batch path applies the same cut-off
        pages = np.frombuffer(ok + poor, dtype=np.uint8).reshape(2, 4096)
        assert c.store_batch(0, [2, 3], pages) == [True, False]
        assert c.stats()["reject_compress_poor"] == 2
    finally:
        c.close()
