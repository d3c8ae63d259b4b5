"""The zswap cache: frontswap operations over a compressor backend and a pool.

Pages on their way to swap are compressed into the pool (``store``); ``load`` decompresses them
back; ``invalidate_page``/``invalidate_area`` drop them when the swap slot or area is freed. When
the pool is full the least recently stored entries are written back to the swap device
(:mod:`hwzswap.frontswap.writeback`).

Data structures (after the kernel, see ``shared/reference/kernel.md``):

* one index per swap type (the v9 ``zswap_tree``): an ``OrderedDict`` offset -> entry. Its order is
  the store order, so it doubles as the tree's LRU (oldest first); writeback takes victims from
  its front, picking across types by a global store sequence number;
* an entry is a tuple ``(handle, length, seq)`` for a pool object, or ``(None, word, seq)`` for a
  same-filled page (``word``: the 8 repeated bytes). Tuples are immutable, so an entry's identity
  is all the race handling needs;
* one lock (the tree lock) guards the indexes, the pool (which is not thread-safe) and the
  counters. Compression and decompression run outside it.

Race handling (today's kernel's scheme, adapted; no refcounts): writeback marks the entry
*in flight* and copies its compressed bytes under the lock, then decompresses and writes the page
without the lock, and finally re-checks under the lock that the index still maps the offset to
*that same entry* before freeing it. Meanwhile:

* a **load** finds the entry still in the index and returns the right bytes (the v9
  "load during writeback" fix) -- the object is freed only after the page is on the device;
* an **invalidate** or a **new store** of the offset replaces or removes the entry; the
  re-check then fails and writeback frees nothing, so the newer data (in zswap) wins and an
  invalidated slot is never read (the swap layer refuses to read a freed slot);
* a **rejected store** of that offset, whose page the swap layer is about to write to the device
  itself, first waits for the in-flight writeback of the same slot, so the stale page can never
  land on the device after the newer one;
* two writebacks of one slot never overlap (a slot in flight is skipped).

The caller serialises operations on one ``(type, offset)`` (the kernel's folio lock does that):
concurrent ops on *different* offsets, and writeback of any offset, are safe.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from hwzswap.backends.contract import Backend, check_page, check_pages
from hwzswap.errors import (
    CorruptDataError,
    HwzswapError,
    InvalidInputError,
    PoolAllocError,
    SwapDeviceError,
)
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.pool.base import Pool

PAGE_SIZE = 4096
_WORDS = PAGE_SIZE // 8
_ZERO_WORD = bytes(8)
_ZERO_PAGE = bytes(PAGE_SIZE)


class WritebackTarget(Protocol):
    """Where written-back pages go: the swap device of ``type`` (the swap system)."""

    def write_page(self, type: int, offset: int, page: bytes) -> None:
        """Write one page; raise :class:`SwapDeviceError` on failure."""


class _Tree(OrderedDict):  # type: ignore[type-arg]
    """The per-type index and LRU: offset -> entry, oldest stored first."""

    def __init__(self, swap_type: int, nr_pages: int) -> None:
        super().__init__()
        self.type = swap_type
        self.nr_pages = nr_pages


# Counters reported by stats(), all plain int attributes of the cache.
_COUNTERS = (
    "zswpout",
    "pool_limit_hit",
    "reject_pool_limit",
    "reject_compress_poor",
    "reject_compress_fail",
    "reject_alloc_fail",
    "reject_reclaim_fail",
    "written_back_pages",
    "writeback_fail",
    "writeback_raced",
    "duplicate_entry",
    "same_filled_pages",
    "decompress_fail",
    "loads_hit",
    "loads_miss",
    "invalidates",
)


def _as_page(page: Any) -> bytes:
    """A 4096-byte ``bytes`` copy of any buffer, or :class:`InvalidInputError`."""
    return check_page(page).tobytes()


class ZswapCache:
    """The frontswap backend: ``init``/``store``/``load``/``invalidate_page``/``invalidate_area``.

    ``store`` returns ``True`` when the page is now held compressed, ``False`` when it was
    rejected (the caller writes it to the swap device; any older entry for the offset has been
    dropped so it cannot come back). ``load`` returns the page, or ``None`` on a miss.
    """

    def __init__(
        self,
        backend: Backend,
        pool: Pool,
        policy: ZswapPolicy | None = None,
        writeback_target: WritebackTarget | None = None,
    ) -> None:
        from hwzswap.frontswap.writeback import BackgroundWriteback, LruWriteback

        self.backend = backend
        self.pool = pool
        self.policy = policy = policy if policy is not None else ZswapPolicy()
        self.writeback_target = writeback_target
        # Policy, copied to plain attributes for the hot paths.
        self.enabled = policy.enabled
        self._same_filled = policy.same_filled_pages
        self._exclusive = policy.exclusive_loads
        self._max_len = policy.max_compressed_len
        self._max_pages = policy.max_pool_pages if policy.max_pool_pages is not None else 1 << 62
        self._accept_pages = policy.accept_pages if policy.accept_pages is not None else 1 << 62
        self._reached_full = False
        self._limit_gate = self._max_pages
        # Bound methods, looked up once.
        self._compress = backend.compress
        self._decompress = backend.decompress
        self._malloc = pool.malloc
        self._pool_write = pool.write
        self._pool_read = pool.read
        self._pool_free = pool.free
        self._total_pages = pool.total_pages
        # Indexes, lock, writeback state.
        self._trees: dict[int, _Tree] = {}
        self._lock = threading.Lock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._wb_done = threading.Condition(self._lock)
        self._inflight: dict[tuple[int, int], tuple[Any, Any, int]] = {}
        self._seq = itertools.count(1)
        self._closed = False
        for name in _COUNTERS:
            setattr(self, name, 0)
        self._rejected = 0  # stores refused, for any reason (``stores`` = zswpout + this)
        self._last_pages = 0
        self.outstanding_writebacks = 0
        self.compressed_bytes = 0
        self.pool_peak_pages = 0
        self.compressed_bytes_at_peak = 0
        self.writeback_engine = LruWriteback(self, writeback_target)
        self._background: BackgroundWriteback | None = None
        if policy.background_writeback:
            self._background = BackgroundWriteback(self)
            self._background.start()

    # -- frontswap ops -------------------------------------------------------------------------

    def init(self, type: int, nr_pages: int) -> None:
        """Set up the index of swap ``type`` (swapon)."""
        if type.__class__ is not int or type < 0:
            raise SwapDeviceError(f"zswap: swap type must be an int >= 0, got {type!r}")
        if nr_pages.__class__ is not int or nr_pages < 1:
            raise SwapDeviceError(f"zswap: nr_pages must be an int >= 1, got {nr_pages!r}")
        with self._lock:
            self._check_open()
            if type in self._trees:
                raise SwapDeviceError(f"zswap: swap type {type} is already initialised (swapon)")
            self._trees[type] = _Tree(type, nr_pages)

    def store(self, type: int, offset: int, page: Any) -> bool:
        """Compress ``page`` into the pool as the entry for ``(type, offset)``.

        Returns ``False`` when a policy or a failure rejected it (counted by reason).
        """
        tree = self._trees.get(type)
        if tree is None or not 0 <= offset < tree.nr_pages:
            raise self._bad_slot(type, offset, "store")
        if page.__class__ is not bytes or len(page) != PAGE_SIZE:
            page = _as_page(page)
        if not self.enabled:
            return self._reject(tree, offset, None)
        # Same-filled: one byte compare rules out nearly every other page (a same-filled page
        # has byte 0 == byte 4088); the zero page, the common case, compares without building
        # a pattern.
        if page[4088] == page[0] and self._same_filled:
            word = page[:8]
            if page == _ZERO_PAGE if word == _ZERO_WORD else page == word * _WORDS:
                return self._store_same_filled(tree, offset, word)
        # _last_pages is the pool size after the last allocation: never below the real size
        # (only allocations grow the pool), so skipping the exact check is safe; _limit_gate is
        # max_pages, or 0 while the hysteresis holds (so every store checks).
        if self._last_pages >= self._limit_gate:
            ok, why = self._check_limits()
            if not ok:
                return self._reject(tree, offset, why)
        try:
            data = self._compress(page)
        except HwzswapError:
            return self._reject(tree, offset, "reject_compress_fail")
        if data is None:
            return self._reject(tree, offset, "reject_compress_poor")
        dlen = len(data)
        if dlen > self._max_len:
            return self._reject(tree, offset, "reject_compress_poor")
        # The hot path: _insert_locked inlined, explicit acquire/release (cheaper than `with`).
        self._acquire()
        try:
            try:
                handle = self._malloc(dlen)
            except PoolAllocError:
                handle = None
            if handle is not None:
                self._pool_write(handle, data)
                old = tree.get(offset)
                if old is not None:
                    del tree[offset]
                    self.duplicate_entry += 1
                    self._free_locked(old)
                tree[offset] = (handle, dlen, next(self._seq))
                self.zswpout += 1
                self.compressed_bytes += dlen
                pages = self._total_pages()
                self._last_pages = pages
                if pages > self.pool_peak_pages:
                    self.pool_peak_pages = pages
                    self.compressed_bytes_at_peak = self.compressed_bytes
                return True
        finally:
            self._release()
        return self._store_after_reclaim(tree, offset, data, dlen)

    def store_batch(self, type: int, offsets: Sequence[int], pages: np.ndarray) -> list[bool]:
        """Store a reclaim batch: one ``compress_batch`` call, then per-page policy and pool
        allocations (under one lock). Returns one bool per page, as :meth:`store`. The offsets
        must be distinct.

        Same-filled pages are found first (vectorised) and kept as their word. When they are
        under a quarter of the batch the backend still gets the whole batch, unchanged (copying
        the other rows out would cost more than compressing a few same-filled pages, which
        compress fastest), and their results are dropped.
        """
        tree = self._trees.get(type)
        if tree is None:
            raise self._bad_slot(type, offsets[0] if len(offsets) else 0, "store_batch")
        pages = check_pages(pages)
        n = len(pages)
        offs = [int(o) for o in offsets]
        if len(offs) != n:
            raise InvalidInputError(
                f"zswap store_batch: {len(offs)} offsets for {n} pages (one offset per page)"
            )
        nr = tree.nr_pages
        for off in offs:
            if not 0 <= off < nr:
                raise self._bad_slot(type, off, "store_batch")
        if len(set(offs)) != n:
            raise InvalidInputError(
                "zswap store_batch: an offset appears twice in one batch (a reclaim batch holds "
                "distinct pages); store them in separate calls"
            )
        results = [False] * n
        if n == 0:
            return results
        if not self.enabled:
            for i in range(n):
                self._reject(tree, offs[i], None)
            return results
        same: list[int] = []
        if self._same_filled:
            words = pages.view(np.uint64)
            cand = np.flatnonzero(words[:, 0] == words[:, -1])
            if cand.size:
                sub = words[cand]
                same = cand[(sub == sub[:, :1]).all(axis=1)].tolist()
        for i in same:
            results[i] = self._store_same_filled(tree, offs[i], pages[i, :8].tobytes())
        if len(same) * 4 >= n:
            # Many same-filled pages: compress only the others (worth the copy of the rest).
            keep = np.ones(n, dtype=bool)
            keep[same] = False
            idx = np.flatnonzero(keep).tolist()
            todo = pages[keep]
            if not idx:
                return results
            sel = None
        else:
            # Few: hand the backend the batch as it is (no copy) and drop their results.
            todo = pages
            sel = set(same) if same else None
            idx = [i for i in range(n) if i not in sel] if sel else list(range(n))
        if self._last_pages >= self._limit_gate:
            ok, why = self._check_limits()
            if not ok:
                for i in idx:
                    self._reject(tree, offs[i], why)
                return results
        try:
            outs = self.backend.compress_batch(todo)
            if len(outs) != len(todo):
                raise CorruptDataError(
                    f"{self.backend.name}: compress_batch returned {len(outs)} items for "
                    f"{len(todo)} pages"
                )
        except HwzswapError:
            for i in idx:
                self._reject(tree, offs[i], "reject_compress_fail")
            return results
        if sel is not None:
            outs = [outs[i] for i in idx]
        max_len = self._max_len
        retry: list[tuple[int, Any, int]] = []
        poor: list[int] = []
        with self._lock:
            malloc = self._malloc
            write = self._pool_write
            seq = self._seq
            free = self._free_locked
            added = 0
            for i, data in zip(idx, outs):
                if data is None:
                    poor.append(i)
                    continue
                dlen = len(data)
                if dlen > max_len:
                    poor.append(i)
                    continue
                try:
                    handle = malloc(dlen)
                except PoolAllocError:
                    retry.append((i, data, dlen))
                    continue
                write(handle, data)
                off = offs[i]
                old = tree.get(off)
                if old is not None:
                    del tree[off]
                    self.duplicate_entry += 1
                    free(old)
                tree[off] = (handle, dlen, next(seq))
                added += dlen
                results[i] = True
            if added:
                self.zswpout += sum(results) - len(same)
                cbytes = self.compressed_bytes + added
                self.compressed_bytes = cbytes
                pages_now = self._total_pages()
                self._last_pages = pages_now
                if pages_now > self.pool_peak_pages:
                    self.pool_peak_pages = pages_now
                    self.compressed_bytes_at_peak = cbytes
        for i in poor:
            self._reject(tree, offs[i], "reject_compress_poor")
        for i, data, dlen in retry:
            results[i] = self._store_after_reclaim(tree, offs[i], data, dlen)
        return results

    def load(self, type: int, offset: int) -> bytes | None:
        """The page stored for ``(type, offset)``, or ``None`` if zswap does not hold it.

        Raises :class:`CorruptDataError` when the stored object does not decompress to a page
        (counted in ``decompress_fail``); never returns wrong-length data.
        """
        try:
            tree = self._trees[type]
        except KeyError:
            raise self._bad_slot(type, offset, "load") from None
        if self._exclusive:
            return self._load_exclusive(tree, offset)
        self._acquire()
        try:
            entry = tree.get(offset)
            if entry is None:
                self.loads_miss += 1
                return None
            handle = entry[0]
            if handle is None:  # same-filled
                self.loads_hit += 1
                return entry[1] * _WORDS
            data = self._pool_read(handle)
            self.loads_hit += 1
        finally:
            self._release()
        try:
            return self._decompress(data)
        except HwzswapError as exc:
            with self._lock:
                self.decompress_fail += 1
                self.loads_hit -= 1
            raise self._corrupt(tree, offset, entry, exc) from exc

    def _load_exclusive(self, tree: _Tree, offset: int) -> bytes | None:
        """Today's kernel: a hit frees the entry, once the page is safely decompressed."""
        with self._lock:
            entry = tree.get(offset)
            if entry is None:
                self.loads_miss += 1
                return None
            handle = entry[0]
            if handle is None:
                self.loads_hit += 1
                del tree[offset]
                self.same_filled_pages -= 1
                return entry[1] * _WORDS
            data = self._pool_read(handle)
        try:
            page = self._decompress(data)
        except HwzswapError as exc:
            with self._lock:
                self.decompress_fail += 1
            raise self._corrupt(tree, offset, entry, exc) from exc
        with self._lock:
            self.loads_hit += 1
            if tree.get(offset) is entry:
                del tree[offset]
                self._free_locked(entry)
        return page

    def _corrupt(self, tree: _Tree, offset: int, entry: Any, exc: Exception) -> CorruptDataError:
        return CorruptDataError(
            f"zswap: load of swap type {tree.type} offset {offset}: the stored object "
            f"({entry[1]} bytes, {self.backend.name}) does not decompress to a page: {exc}; "
            f"the entry is kept, no data was returned"
        )

    def invalidate_page(self, type: int, offset: int) -> None:
        """Drop the entry for ``(type, offset)`` (its swap slot was freed). No entry: no-op."""
        tree = self._trees.get(type)
        if tree is None:
            raise self._bad_slot(type, offset, "invalidate_page")
        with self._lock:
            entry = tree.pop(offset, None)
            if entry is not None:
                self.invalidates += 1
                self._free_locked(entry)

    def invalidate_area(self, type: int) -> None:
        """Drop every entry of swap ``type`` and its index (swapoff). Waits for writebacks of
        that type still in flight, so the caller may then close the device."""
        with self._lock:
            tree = self._trees.pop(type, None)
            if tree is None:
                return
            for entry in tree.values():
                self._free_locked(entry)
            self.invalidates += len(tree)
            tree.clear()
            while any(key[0] == type for key in self._inflight):
                self._wb_done.wait()

    # -- writeback -----------------------------------------------------------------------------

    def writeback(self, n: int) -> int:
        """Write back up to ``n`` least recently stored entries; return how many succeeded."""
        return self.writeback_engine.writeback(n)

    def shrink(self, target_pages: int | None = None) -> int:
        """Write back until the pool is at or under ``target_pages`` (default: the accept
        threshold), then compact the pool; return the entries written back."""
        target = self._accept_pages if target_pages is None else target_pages
        return self.writeback_engine.shrink(target)

    # -- stats ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, with the kernel's debugfs names where they exist."""
        with self._lock:
            out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
            out["stores"] = self.zswpout + self._rejected
            out["stored_pages"] = sum(len(t) for t in self._trees.values())
            pages = self._total_pages() if not self._closed else 0
            out["pool_pages"] = pages
            out["pool_total_size"] = pages * PAGE_SIZE
            out["pool_peak_pages"] = self.pool_peak_pages
            out["pool_limit_pages"] = self.policy.max_pool_pages or 0
            out["compressed_bytes"] = self.compressed_bytes
            out["compressed_bytes_at_peak"] = self.compressed_bytes_at_peak
            out["outstanding_writebacks"] = self.outstanding_writebacks
        return out

    def check(self) -> None:
        """Verify the cache's invariants at one instant (under the lock); raise
        :class:`~hwzswap.errors.HwzswapError` naming the first broken one. For tests and
        debugging: it walks every entry."""
        with self._lock:
            entries = [e for t in self._trees.values() for e in t.values()]
            pooled = [e for e in entries if e[0] is not None]
            problems = []
            if len(pooled) != len(self.pool):
                problems.append(f"{len(pooled)} pool entries but {len(self.pool)} pool objects")
            if len(entries) - len(pooled) != self.same_filled_pages:
                problems.append(f"same_filled_pages is {self.same_filled_pages}, "
                                f"{len(entries) - len(pooled)} same-filled entries exist")
            cbytes = sum(e[1] for e in pooled)
            if cbytes != self.compressed_bytes:
                problems.append(f"compressed_bytes is {self.compressed_bytes}, entries hold "
                                f"{cbytes}")
            if self.outstanding_writebacks != len(self._inflight):
                problems.append(f"outstanding_writebacks is {self.outstanding_writebacks}, "
                                f"{len(self._inflight)} entries are in flight")
            if len({id(e) for e in entries}) != len(entries):
                problems.append("an entry is indexed twice")
            for e in pooled:
                if self.pool.obj_size(e[0]) != e[1]:
                    problems.append(f"handle {e[0]:#x}: object size differs from the entry's")
                    break
            pool_check = getattr(self.pool, "check", None)
            if pool_check is not None and not self._closed:
                pool_check()
        if problems:
            raise HwzswapError("zswap: inconsistent state: " + "; ".join(problems))

    # -- lifetime ------------------------------------------------------------------------------

    def stop_background(self) -> None:
        """Stop the background writeback thread, if any (``close`` does it too); writeback
        then happens only from the store path and explicit calls."""
        bg, self._background = self._background, None
        if bg is not None:
            bg.stop()

    def close(self) -> None:
        """Stop background writeback, drop every entry, destroy the pool. Idempotent."""
        self.stop_background()
        if self._closed:
            return
        for t in list(self._trees):
            self.invalidate_area(t)
        with self._lock:
            while self._inflight:
                self._wb_done.wait()
            self._closed = True
            self.pool.destroy()

    def __enter__(self) -> ZswapCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _insert_locked(self, tree: _Tree, offset: int, handle: int, data: Any, dlen: int) -> None:
        """Write ``data`` into the new object and make it the entry for ``offset``."""
        self._pool_write(handle, data)
        old = tree.pop(offset, None)
        tree[offset] = (handle, dlen, next(self._seq))
        if old is not None:
            self.duplicate_entry += 1
            self._free_locked(old)
        self.zswpout += 1
        cbytes = self.compressed_bytes + dlen
        self.compressed_bytes = cbytes
        pages = self._total_pages()
        self._last_pages = pages
        if pages > self.pool_peak_pages:
            self.pool_peak_pages = pages
            self.compressed_bytes_at_peak = cbytes

    def _store_same_filled(self, tree: _Tree, offset: int, word: bytes) -> bool:
        with self._lock:
            old = tree.pop(offset, None)
            tree[offset] = (None, word, next(self._seq))
            if old is not None:
                self.duplicate_entry += 1
                self._free_locked(old)
            self.zswpout += 1
            self.same_filled_pages += 1
        return True

    def _free_locked(self, entry: tuple[Any, Any, int]) -> None:
        """Release an entry's pool object (or same-filled count). Lock held."""
        handle = entry[0]
        if handle is None:
            self.same_filled_pages -= 1
        else:
            self._pool_free(handle)
            self.compressed_bytes -= entry[1]

    def _check_limits(self) -> tuple[bool, str | None]:
        """The kernel's ``zswap_check_limits`` plus reclaim: may this store go ahead?

        At the limit: ``pool_limit_hit`` and the hysteresis starts. While it holds, reclaim
        (write back a batch here, or wake the background thread) and accept again only once
        the pool is at or under the accept threshold.
        """
        with self._lock:
            cur = self._total_pages()
            self._last_pages = cur
            if cur >= self._max_pages:
                self.pool_limit_hit += 1
                self._set_full(True)
            elif self._reached_full and cur <= self._accept_pages:
                self._set_full(False)
            if not self._reached_full:
                return True, None
        bg = self._background
        if bg is not None:
            bg.wake()
            written = -1
        else:
            written = self.writeback_engine.writeback(self.policy.writeback_batch)
        with self._lock:
            cur = self._total_pages()
            self._last_pages = cur
            if self._reached_full and cur <= self._accept_pages:
                self._set_full(False)
            if not self._reached_full:
                return True, None
        return False, ("reject_reclaim_fail" if written == 0 else "reject_pool_limit")

    def _set_full(self, full: bool) -> None:
        """Enter or leave the hysteresis (the kernel's ``zswap_pool_reached_full``)."""
        self._reached_full = full
        self._limit_gate = 0 if full else self._max_pages

    def _store_after_reclaim(self, tree: _Tree, offset: int, data: Any, dlen: int) -> bool:
        """The pool refused the object: write back a batch (v9), retry once, else reject."""
        written = self.writeback_engine.writeback(self.policy.writeback_batch)
        with self._lock:
            try:
                handle = self._malloc(dlen)
            except PoolAllocError:
                why = "reject_reclaim_fail" if written == 0 else "reject_alloc_fail"
                self._reject_locked(tree, offset, why)
                return False
            self._insert_locked(tree, offset, handle, data, dlen)
            return True

    def _reject(self, tree: _Tree, offset: int, why: str | None) -> bool:
        with self._lock:
            self._reject_locked(tree, offset, why)
        return False

    def _reject_locked(self, tree: _Tree, offset: int, why: str | None) -> None:
        """Count the rejection, drop any older entry for the offset (the kernel's check_old:
        the caller is writing a newer page to the device, the old one must not come back),
        and wait until no writeback of this slot is in flight, so the device write the caller
        is about to do lands after it."""
        self._rejected += 1
        if why is not None:
            setattr(self, why, getattr(self, why) + 1)
        old = tree.pop(offset, None)
        if old is not None:
            self._free_locked(old)
        if self._inflight:
            key = (tree.type, offset)
            while key in self._inflight:
                self._wb_done.wait()

    def _check_open(self) -> None:
        if self._closed:
            raise SwapDeviceError("zswap: the cache was closed")

    def _bad_slot(self, type: Any, offset: Any, op: str) -> HwzswapError:
        if self._closed:
            return SwapDeviceError(f"zswap: {op} after the cache was closed")
        tree = self._trees.get(type)
        if tree is None:
            return SwapDeviceError(
                f"zswap: {op} of swap type {type!r}, which is not initialised (swapon it first; "
                f"active types: {sorted(self._trees) or 'none'})"
            )
        return SwapDeviceError(
            f"zswap: {op} of offset {offset!r} in swap type {type}: offsets are "
            f"0..{tree.nr_pages - 1}"
        )

    def __repr__(self) -> str:
        return (
            f"<ZswapCache {self.backend.name} pool={self.pool.name} "
            f"stored={sum(len(t) for t in self._trees.values())}>"
        )


__all__ = ["WritebackTarget", "ZswapCache"]
