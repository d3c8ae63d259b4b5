"""The per-page loops of zswap's batch store, in Python: the reference for ``_hotpath``.

:mod:`hwzswap.frontswap._hotpath` (C) runs these three loops for ``store_batch`` and
``swap_out_batch``; each function here, of the same name plus ``_py``, is the same algorithm
written out, and the tests drive both on the same cases and compare every result, counter and
list they fill. Read these to know what the compiled ones do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hwzswap.errors import PoolAllocError

PAGE_SIZE = 4096
_WORDS = PAGE_SIZE // 8


def same_filled_pages_py(buf: Any) -> list[tuple[int, bytes]]:
    """The same-filled pages of a contiguous buffer of whole pages: (page index, the 8-byte
    word the page repeats), in page order."""
    view = memoryview(buf)
    if not view.c_contiguous:
        raise ValueError("same_filled_pages: the buffer is not C-contiguous")
    flat = view.cast("B") if view.nbytes else memoryview(b"")
    if flat.nbytes % PAGE_SIZE:
        raise ValueError(
            f"same_filled_pages: a buffer of whole pages is needed, got {flat.nbytes} bytes"
        )
    out = []
    for at in range(0, flat.nbytes, PAGE_SIZE):
        page = flat[at : at + PAGE_SIZE].tobytes()
        word = page[:8]
        if page == word * _WORDS:
            out.append((at // PAGE_SIZE, word))
    return out


def claim_slots_py(smap: bytearray, offsets: Sequence[Any], n: int) -> list[int] | None:
    """Mark a batch's swap slots in use in ``smap`` and return the offsets as a list, when
    ``offsets`` is a list, tuple or range of ``n`` ints in ``0..len(smap) - 1`` and none
    appears twice; else mark nothing and return ``None`` (the caller's slow path then converts
    other integer types, or names the problem). Other iterables are declined untouched, as the
    slow path may need to read them."""
    if offsets.__class__ not in (list, tuple, range) or len(offsets) != n:
        return None
    offs = list(offsets)
    nr = len(smap)
    if any(o.__class__ is not int or not 0 <= o < nr for o in offs):
        return None
    if len(set(offs)) != len(offs):
        return None
    for off in offs:
        smap[off] = 1
    return offs


def insert_objects_py(cache: Any, tree: Any, offs: Sequence[int], idx: list[int],
                      outs: list[Any], sums: list[int] | None, max_len: int,
                      results: list[bool], poor: list[int],
                      retry: list[tuple[int, Any]]) -> None:
    """``store_batch``'s critical section (the tree lock held): put each compressed object
    ``outs[k]`` of batch position ``idx[k]`` in the pool and index it at ``offs[idx[k]]``.

    An object that is ``None`` or longer than ``max_len`` goes to ``poor`` (its position); one
    the pool has no room for goes to ``retry`` (position, object). A stored one replaces the
    offset's older entry (``cache._drop_old_locked``), gets its checksum ``sums[k]`` when the
    cache keeps them (``cache._csums``), and sets ``results[position]``. ``cache.zswpout``
    counts the objects stored, also when an error stops the loop.
    """
    malloc_write = cache._malloc_write
    csums = cache._csums
    stored = 0
    try:
        for k, i in enumerate(idx):
            data = outs[k]
            if data is None or len(data) > max_len:
                poor.append(i)
                continue
            try:
                handle = malloc_write(data)
            except PoolAllocError:
                retry.append((i, data))
                continue
            off = offs[i]
            if off in tree:
                cache._drop_old_locked(tree, off)
            tree[off] = handle
            if csums is not None:
                csums[handle] = sums[k]  # type: ignore[index]
            results[i] = True
            stored += 1
    finally:
        cache.zswpout += stored
