"""Corrupt pool objects: with ``entry_checksum`` they never come back as wrong bytes (load raises,
writeback keeps the entry and writes nothing); without it, only what the codec detects is caught.

The corruption is a bit flipped in the pool's own memory, through ``map(writable=True)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.errors import CorruptDataError
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.zswap import ZswapCache
from hwzswap.pool import PageAllocator, Pool, create_pool

from fsutil import compressible_pages, same_filled

PAGES = compressible_pages(6)
HYP = settings(max_examples=60, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


def cache(checksum: bool, backend: str = "lz4", exclusive: bool = False) -> ZswapCache:
    c = ZswapCache(hwzswap.get_backend(backend), create_pool("zsmalloc", PageAllocator()),
                   ZswapPolicy(entry_checksum=checksum, exclusive_loads=exclusive))
    c.init(0, 64)
    return c


def flip(pool: Pool, handle: int, pos: int, bit: int) -> None:
    """Flip one bit of a stored object, in the pool's memory."""
    view = pool.map(handle, writable=True)
    view[pos] ^= 1 << bit
    pool.unmap(handle)


def only_handle(c: ZswapCache) -> int:
    (handle,) = c.pool.handles()
    return handle


@HYP
@given(which=st.integers(0, len(PAGES) - 1), where=st.floats(0, 1, exclude_max=True),
       bit=st.integers(0, 7), backend=st.sampled_from(["lz4", "zstd"]),
       exclusive=st.booleans())
def test_with_the_checksum_any_flipped_bit_raises_and_the_entry_is_kept(
        which, where, bit, backend, exclusive):
    c = cache(True, backend, exclusive)
    page = PAGES[which]
    assert c.store(0, 5, page)
    handle = only_handle(c)
    pos = int(where * c.pool.obj_size(handle))
    flip(c.pool, handle, pos, bit)
    with pytest.raises(CorruptDataError, match="swap type 0 offset 5.*fails its checksum"):
        c.load(0, 5)
    s = c.stats()
    assert s["decompress_fail"] == 1 and s["loads_hit"] == 0 and s["stored_pages"] == 1
    flip(c.pool, handle, pos, bit)  # repaired: the kept entry is whole again
    assert c.load(0, 5) == page
    assert c.stats()["stored_pages"] == (0 if exclusive else 1)
    c.check()
    c.close()


@HYP
@given(which=st.integers(0, len(PAGES) - 1), where=st.floats(0, 1, exclude_max=True),
       bit=st.integers(0, 7))
def test_without_the_checksum_a_flipped_bit_raises_or_yields_a_whole_page(which, where, bit):
    # All that is guaranteed without entry_checksum: a CorruptDataError when the codec notices,
    # else a 4096-byte page (which may be wrong: see the literal-byte test below).
    c = cache(False)
    assert c.store(0, 5, PAGES[which])
    handle = only_handle(c)
    flip(c.pool, handle, int(where * c.pool.obj_size(handle)), bit)
    try:
        page = c.load(0, 5)
    except CorruptDataError as exc:
        assert "swap type 0 offset 5" in str(exc) and "does not decompress" in str(exc)
        assert c.stats()["decompress_fail"] == 1
    else:
        assert type(page) is bytes and len(page) == 4096
        assert c.stats()["decompress_fail"] == 0
    assert c.stats()["stored_pages"] == 1
    c.close()


def literal_page() -> bytes:
    # 64 distinct bytes then zeros: lz4 emits a token, one length byte, the 64 literals (object
    # bytes 2..65), then a match for the zeros. Object byte 10 is page byte 8.
    return bytes(range(1, 65)) + bytes(4096 - 64)


def test_a_flipped_literal_is_wrong_bytes_without_the_checksum_and_an_error_with_it():
    page = literal_page()
    plain = cache(False)
    assert plain.store(0, 0, page)
    flip(plain.pool, only_handle(plain), 10, 2)
    wrong = plain.load(0, 0)  # lz4 copies literals through unchecked
    assert wrong != page and wrong[8] == page[8] ^ 4
    assert wrong[:8] + wrong[9:] == page[:8] + page[9:]
    assert plain.stats()["decompress_fail"] == 0

    checked = cache(True)
    assert checked.store(0, 0, page)
    flip(checked.pool, only_handle(checked), 10, 2)
    with pytest.raises(CorruptDataError, match="checksum"):
        checked.load(0, 0)


def test_writeback_never_writes_a_corrupt_object_to_the_device(make_system):
    s = make_system(zswap={"entry_checksum": True})
    pages = compressible_pages(4)
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page)
    oldest = min(s.pool.handles())  # handles increase: offset 0's object, first in the LRU
    flip(s.pool, oldest, 3, 0)
    assert s.zswap.writeback(4) == 3
    st = s.stats()
    assert st["written_back_pages"] == 3 and st["pswpout"] == 3
    assert st["writeback_fail"] == 1 and st["decompress_fail"] == 1 and st["stored_pages"] == 1
    err = s.zswap.last_writeback_error
    assert isinstance(err, CorruptDataError) and "offset 0" in str(err)
    assert s.zswap.writeback(1) == 0 and s.stats()["writeback_fail"] == 2  # kept, tried again
    with pytest.raises(CorruptDataError, match="offset 0.*checksum"):
        s.swap_in(0, 0)
    assert [s.swap_in(0, off) for off in (1, 2, 3)] == pages[1:]  # from the device, intact
    assert s.stats()["pswpout"] == 3  # slot 0 was never written
    assert s.swap_out(0, 0, pages[0])  # a new store replaces the corrupt entry
    assert s.swap_in(0, 0) == pages[0]
    s.zswap.check()


def test_without_the_checksum_writeback_keeps_an_object_the_codec_rejects(make_system):
    s = make_system()
    pages = compressible_pages(2)
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page)
    oldest = min(s.pool.handles())
    s.pool.write(oldest, b"\xff" * s.pool.obj_size(oldest))  # lz4 detects this one
    assert s.zswap.writeback(2) == 1
    st = s.stats()
    assert st["writeback_fail"] == 1 and st["decompress_fail"] == 1 and st["pswpout"] == 1
    with pytest.raises(CorruptDataError, match="offset 0.*does not decompress"):
        s.swap_in(0, 0)


def test_checksums_follow_every_entry_and_leave_same_filled_pages_alone():
    c = cache(True)
    pages = compressible_pages(8)
    for off, page in enumerate(pages):
        assert c.store(0, off, page)
    assert c.store(0, 20, bytes(4096)) and c.store(0, 21, same_filled())
    assert len(c._csums) == len(pages)  # same-filled entries hold no object, need no checksum
    assert c.store(0, 3, pages[4])  # duplicate: the old object's checksum goes with it
    c.invalidate_page(0, 5)
    batch = np.frombuffer(b"".join(pages[:4]), np.uint8).reshape(4, 4096)
    assert c.store_batch(0, [30, 31, 32, 33], batch) == [True] * 4
    assert c.store_batch(0, [40, 41], np.zeros((2, 4096), np.uint8)) == [True, True]
    c.check()  # checksums exactly for the pool entries
    assert c.load(0, 20) == bytes(4096) and c.load(0, 21) == same_filled()
    assert c.load(0, 3) == pages[4] and c.load(0, 32) == pages[2]
    flip(c.pool, max(c.pool.handles()), 0, 7)  # the last object stored by the batch (offset 33)
    with pytest.raises(CorruptDataError, match="offset 33.*checksum"):
        c.load(0, 33)
    assert c.load(0, 30) == pages[0]
    c.invalidate_area(0)
    assert c._csums == {} and len(c.pool) == 0
    c.close()
