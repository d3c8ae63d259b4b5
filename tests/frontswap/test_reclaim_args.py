"""``ZswapCache.writeback`` and ``shrink`` refuse a count that is not an int >= 0, saying what
to pass, and change nothing."""

from __future__ import annotations

import numpy as np
import pytest

import hwzswap
from hwzswap.errors import InvalidInputError

from fsutil import compressible_pages


@pytest.fixture
def system(tmp_path):
    s = hwzswap.open_zswap({"zswap": {"compressor": "lz4"},
                            "swap": {"nr_pages": 64, "path": str(tmp_path / "swap.img")}})
    try:
        for off, page in enumerate(compressible_pages(12)):
            assert s.swap_out(0, off, page)
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("bad", ["3", 2.5, True, False, np.True_, None, -1, -5, [2]])
def test_writeback_refuses_a_bad_count(system, bad):
    with pytest.raises(InvalidInputError, match=r"zswap writeback: n must be an int >= 0"):
        system.zswap.writeback(bad)
    st = system.stats()
    assert st["stored_pages"] == 12 and st["written_back_pages"] == 0


@pytest.mark.parametrize("bad", ["10", 1.5, True, np.False_, -1, -5, (3,)])
def test_shrink_refuses_a_bad_target(system, bad):
    with pytest.raises(InvalidInputError, match=r"zswap shrink: target_pages must be an int >= 0"):
        system.zswap.shrink(bad)
    st = system.stats()
    assert st["stored_pages"] == 12 and st["written_back_pages"] == 0


def test_integer_counts_still_work(system):
    assert system.zswap.writeback(0) == 0
    assert system.zswap.writeback(np.int64(2)) == 2
    assert system.zswap.shrink(np.int32(0)) == 10
    assert system.stats()["stored_pages"] == 0
    assert system.zswap.shrink(None) == 0  # the accept threshold: nothing to do
