"""At the pool limit a same-filled page is refused like any other: the kernels that had
``same_filled_pages`` (4.16-6.10) ran ``zswap_check_limits()`` before the same-filled test."""

from __future__ import annotations

import numpy as np
import pytest

import hwzswap

from fsutil import same_filled, sized_page

MODES = ["page", "folio", "reclaim", "async"]


def _rejects(st: dict) -> int:
    return sum(v for k, v in st.items() if k.startswith("reject_"))


@pytest.mark.parametrize("mode", MODES)
def test_same_filled_pages_are_refused_while_the_pool_is_at_its_limit(tmp_path, mode):
    # a 40-page pool of ~1 KiB objects (4 a page); once full, stores are refused until it is
    # empty (threshold 0), and each refused store writes back one entry only: the hysteresis
    # holds for the rest of the test
    s = hwzswap.open_zswap({
        "zswap": {"compressor": "lz4", "batching": mode, "max_pool_percent": 1,
                  "accept_threshold_percent": 0, "writeback_batch": 1},
        "memory": {"total_ram_mb": 16},
        "swap": {"nr_pages": 1024, "path": str(tmp_path / "swap.img")}})
    try:
        pages = [sized_page(1000, seed) for seed in range(400)]
        off = 0
        while s.swap_out(0, off, pages[off]):
            s.drain()
            off += 1
            assert off < len(pages), "the pool limit was never reached"
        assert s.zswap._reached_full
        before = s.stats()
        zero, word = bytes(4096), same_filled()
        assert s.swap_out(0, 800, zero) is False
        folio = np.frombuffer(zero + word, dtype=np.uint8).reshape(2, 4096)
        assert s.swap_out_batch(0, [801, 802], folio, [2]) == [False, False]
        assert s.swap_out_batch(0, [803], folio[1:]) == [False]
        s.drain()
        after = s.stats()
        assert after["same_filled_pages"] == before["same_filled_pages"] == 0
        assert _rejects(after) - _rejects(before) == 4
        assert after["zswpout"] == before["zswpout"]
        assert after["stores"] == after["zswpout"] + _rejects(after) + after["staged_dropped"]
        # refused pages went to the swap device and come back byte-exact
        assert s.swap_in(0, 800) == zero and s.swap_in(0, 801) == zero
        assert s.swap_in(0, 802) == word and s.swap_in(0, 803) == word
        for k in range(off + 1):
            assert s.swap_in(0, k) == pages[k]
        s.zswap.check()
    finally:
        s.close()
