"""zswap's per-page hot paths in Python: the reference for ``_hotpath``.

:mod:`hwzswap.frontswap._hotpath` (C) runs three loops for ``store_batch`` and
``swap_out_batch``, the common paths of ``store`` (``StoreHit``) and of ``load``/``swap_in``
(``LoadHit``), and the per-type index (``ZswapTree``); each piece here, of the same name plus
``_py`` (``Py``), is the same algorithm written out, and the tests drive both on the same cases
and compare every result, counter and list they fill. Read these to know what the compiled ones
do.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hwzswap.errors import HwzswapError, PoolAllocError

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


class LoadHitPy:
    """``(type, offset) -> page``: the hit path of zswap's load, for a cache without exclusive
    loads or entry checksums (``ZswapCache.load_hit_path``).

    Under the tree lock: the type's index, the offset's entry; a pool handle is decompressed
    straight from the pool's memory and counted in ``cache.loads_hit``. Every other case -- an
    unknown type, a miss, a same-filled entry, an error from the pool or the codec (an
    ``Exception``; anything else is raised) -- changes nothing and returns
    ``fallback(type, offset)``: the Python method, which handles it as it always does.
    """

    def __init__(self, trees: dict[int, Any], acquire: Callable[[], Any],
                 release: Callable[[], Any], view: Callable[[int], Any],
                 decompress: Callable[[Any], Any], cache: Any,
                 fallback: Callable[[Any, Any], Any]) -> None:
        self.trees, self.acquire, self.release = trees, acquire, release
        self.view, self.decompress, self.cache = view, decompress, cache
        self.fallback = fallback

    def __call__(self, type: Any, offset: Any) -> Any:
        try:
            tree = self.trees.get(type)
        except Exception:  # an unhashable type: the method raises the error that fits
            tree = None
        if tree is None:
            return self.fallback(type, offset)
        hit, page = False, None
        self.acquire()
        try:
            entry = dict.get(tree, offset)
            if entry.__class__ is int:
                data = self.view(entry)
                page = self.decompress(data)
                del data  # the view must not outlive the lock
                self.cache.loads_hit += 1
                hit = True
        except Exception:
            hit = False
        finally:
            self.release()
        return page if hit else self.fallback(type, offset)


class ZswapTreePy(OrderedDict):  # type: ignore[type-arg]
    """One swap type's index and LRU: offset -> entry, oldest stored first (``ZswapTree``).

    An ``OrderedDict`` whose keys are the type's offsets, ``0..nr_pages - 1``: any other key
    (out of range, not an integer) is simply absent, and storing at one raises ``KeyError``.
    An integer of another type (a numpy integer) names the same offset as the ``int``. A new
    entry goes to the end (newest); replacing an entry keeps its place; ``move_to_end`` that
    moves an entry is a change for iterators (they raise ``RuntimeError``, as any change).
    ``keys``, ``values`` and ``items`` are lists, oldest first, never partly filled.
    """

    def __init__(self, swap_type: Any, nr_pages: int) -> None:
        super().__init__()
        if nr_pages < 1:
            raise ValueError(f"ZswapTree: nr_pages must be >= 1, got {nr_pages}")
        self.type = swap_type
        self.nr_pages = nr_pages

    def _offset(self, key: Any) -> int | None:
        try:
            off = operator.index(key)
        except TypeError:
            return None
        return off if 0 <= off < self.nr_pages else None

    def __contains__(self, key: object) -> bool:
        off = self._offset(key)
        return off is not None and super().__contains__(off)

    def __getitem__(self, key: Any) -> Any:
        off = self._offset(key)
        if off is None:
            raise KeyError(key)
        return super().__getitem__(off)

    def __setitem__(self, key: Any, value: Any) -> None:
        off = self._offset(key)
        if off is None:
            raise KeyError(
                f"ZswapTree of swap type {self.type!r}: {key!r} is not an offset in "
                f"0..{self.nr_pages - 1}"
            )
        super().__setitem__(off, value)

    def __delitem__(self, key: Any) -> None:
        off = self._offset(key)
        if off is None:
            raise KeyError(key)
        super().__delitem__(off)

    def get(self, key: Any, default: Any = None) -> Any:
        off = self._offset(key)
        return default if off is None else super().get(off, default)

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        off = self._offset(key)
        if off is None or not super().__contains__(off):
            if default is ZswapTreePy._MISSING:
                raise KeyError(key)
            return default
        return super().pop(off)

    def move_to_end(self, key: Any, last: bool = True) -> None:
        off = self._offset(key)
        if off is None or not last:
            raise KeyError(key)
        super().move_to_end(off)

    def _snapshot(self, view: Callable[[], Any]) -> list[Any]:
        """``list(view())``, taken again if the tree changed while it was read: making the
        list may run the GC, whose finalisers may change the tree (``ZswapTree`` copies the
        entries before it makes any object, to the same end)."""
        while True:
            try:
                return list(view())
            except RuntimeError:
                continue

    def keys(self) -> list[int]:  # type: ignore[override]
        return self._snapshot(super().keys)

    def values(self) -> list[Any]:  # type: ignore[override]
        return self._snapshot(super().values)

    def items(self) -> list[tuple[int, Any]]:  # type: ignore[override]
        return self._snapshot(super().items)

    def __iter__(self) -> Iterator[int]:
        return super().__iter__()


class StoreHitPy:
    """``(type, offset, page) -> bool``: the common path of zswap's store, for a cache without
    entry checksums (``ZswapCache.store_hit_path``).

    Before the codec: a page that is not a 4096-byte ``bytes``, may be same-filled (byte 0 ==
    byte 4088), an unknown type, an offset that is not an ``int`` in range, or the pool at its
    limit gate (or zswap disabled) goes to ``fallback(type, offset, page)``, the Python method,
    with nothing changed. From the codec call on, everything is done here, with the method's own
    helpers for the outcomes other than a plain insert: a codec error or a poor result is
    ``cache._reject``; under the lock, ``malloc_write``, the older entry replaced
    (``cache._drop_old_locked``), the index, ``zswpout``; a full pool is
    ``cache._store_after_reclaim``. Nothing falls back after the codec: a modelled device must
    not be asked twice for one page.
    """

    def __init__(self, trees: dict[int, Any], cache: Any, pool: Any,
                 compress: Callable[[Any], Any], malloc_write: Callable[[Any], int],
                 acquire: Callable[[], Any], release: Callable[[], Any],
                 fallback: Callable[[Any, Any, Any], bool]) -> None:
        self.trees, self.cache, self.pool = trees, cache, pool
        self.compress, self.malloc_write = compress, malloc_write
        self.acquire, self.release, self.fallback = acquire, release, fallback

    def __call__(self, type: Any, offset: Any, page: Any) -> bool:
        if (offset.__class__ is not int or page.__class__ is not bytes
                or len(page) != PAGE_SIZE or page[PAGE_SIZE - 8] == page[0]):
            return self.fallback(type, offset, page)
        try:
            tree = self.trees.get(type)
        except Exception:  # an unhashable type: the method raises the error that fits
            tree = None
        cache = self.cache
        if (tree is None or not 0 <= offset < tree.nr_pages or cache._limit_gate < 0
                or self.pool.pages >= cache._limit_gate):
            return self.fallback(type, offset, page)
        try:
            data = self.compress(page)
        except HwzswapError:
            return cache._reject(tree, offset, "reject_compress_fail")
        if data is None or len(data) > cache._max_len:
            return cache._reject(tree, offset, "reject_compress_poor")
        handle = None
        self.acquire()
        try:
            try:
                handle = self.malloc_write(data)
            except PoolAllocError:
                pass
            if handle is not None:
                if offset in tree:
                    cache._drop_old_locked(tree, offset)
                tree[offset] = handle
                cache.zswpout += 1
        finally:
            self.release()
        if handle is None:
            return cache._store_after_reclaim(tree, offset, data)
        return True
