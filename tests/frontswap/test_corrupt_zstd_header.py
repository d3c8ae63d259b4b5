"""Issue 16 row 9 through the whole stack: a zstd object whose frame-header byte was corrupted
comes back from ``swap_in`` as :class:`CorruptDataError` (not ``MemoryError``) and counts as
``decompress_fail``; the other pages are unaffected."""

from __future__ import annotations

import pytest

from hwzswap.errors import CorruptDataError

from fsutil import compressible_pages


def test_a_corrupt_zstd_frame_header_is_a_counted_corrupt_load(make_system):
    s = make_system(zswap={"compressor": "zstd", "entry_checksum": False})
    pages = compressible_pages(2)
    assert s.swap_out(0, 3, pages[0])
    (first,) = s.pool.handles()  # offset 3's object, the only one
    view = s.pool.map(first, writable=True)
    try:
        assert bytes(view[:4]) == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
        view[4] = 0xC3  # the frame header descriptor: an 8-byte content size of petabytes
    finally:
        s.pool.unmap(first)
    assert s.swap_out(0, 4, pages[1])
    with pytest.raises(CorruptDataError, match="zstd: .*frame header declares"):
        s.swap_in(0, 3)
    assert s.stats()["decompress_fail"] == 1
    assert s.swap_in(0, 4) == pages[1]
