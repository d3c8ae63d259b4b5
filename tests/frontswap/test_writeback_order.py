"""Writeback takes the least recently stored entry first across every swap type, as the
kernel's one zswap LRU does (``zswap_list_lru``, not a list per swap device): stores to two
swap types interleaved come back out in the order they went in."""

from __future__ import annotations

from typing import Any

import pytest

from fsutil import compressible_pages

#: (swap type, offset) in store order: the types interleave, and neither type's offsets are
#: in its own store order, so neither per-type nor per-offset order can pass for it.
ORDER = [(0, 5), (1, 2), (1, 0), (0, 1), (1, 7), (0, 3), (0, 0), (1, 4)]


class _Recorder:
    """A writeback target that notes each (type, offset) written, then writes it for real."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.written: list[tuple[int, int]] = []

    def write_page(self, type: int, offset: int, page: bytes) -> None:
        self.written.append((type, offset))
        self.real.write_page(type, offset, page)


def _two_types(make_system: Any, tmp_path: Any) -> tuple[Any, _Recorder, dict]:
    s = make_system(swap={"nr_pages": 16}, zswap={"batching": "page"})
    s.swapon(1, 16, path=tmp_path / "second.img")
    pages = dict(zip(ORDER, compressible_pages(len(ORDER)), strict=True))
    for type_, offset in ORDER:
        assert s.swap_out(type_, offset, pages[(type_, offset)]) is True
    rec = _Recorder(s.zswap.writeback_target)
    s.zswap.writeback_target = rec
    return s, rec, pages


def test_one_at_a_time_oldest_first_across_types(make_system, tmp_path) -> None:
    s, rec, pages = _two_types(make_system, tmp_path)
    for k in range(len(ORDER)):
        assert s.zswap.writeback(1) == 1
        assert rec.written == ORDER[: k + 1]
    assert s.zswap.writeback(1) == 0 and s.stats()["written_back_pages"] == len(ORDER)
    for key, page in pages.items():  # every page back from its own device, byte-exact
        assert s.swap_in(*key) == page, key


@pytest.mark.parametrize("batch", [3, len(ORDER)])
def test_a_batch_takes_the_oldest_across_types(make_system, tmp_path, batch: int) -> None:
    s, rec, pages = _two_types(make_system, tmp_path)
    assert s.zswap.writeback(batch) == batch
    assert rec.written == ORDER[:batch]
    assert s.zswap.writeback(len(ORDER)) == len(ORDER) - batch
    assert rec.written == ORDER
    for key, page in pages.items():
        assert s.swap_in(*key) == page, key
