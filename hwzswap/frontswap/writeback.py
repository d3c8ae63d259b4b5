"""LRU writeback: move the least recently stored entries from the pool to the swap device.

One writeback of an entry (v9's ``zswap_writeback_entry``, with today's revalidation in place of
v9's refcount state machine):

1. under the tree lock: take the oldest entry, rotate it to the LRU tail (so a failure needs no
   re-insertion), mark its slot *in flight*, copy its compressed bytes out of the pool;
2. without the lock: check the object's CRC (with ``entry_checksum``), decompress, write the
   page to the swap device at the entry's own ``(type, offset)``;
3. under the lock: clear the in-flight mark; if the index still maps the offset to *this same
   entry*, drop it and free its object (``written_back_pages``). If it was invalidated or
   replaced meanwhile, free nothing (``writeback_raced``): the newer state wins. If the device
   failed (EIO, ENOSPC), the entry simply stays where it is (``writeback_fail``); so does a
   corrupt one (``writeback_fail`` and ``decompress_fail``), whose load then raises: a corrupt
   object is never written to the device as a wrong page (with ``entry_checksum``; without it
   only what the codec itself detects is caught).

At most ``max_outstanding_writebacks`` entries are in flight at once (v9's
``ZSWAP_MAX_OUTSTANDING_FLUSHES``). Same-filled entries hold no pool memory and are never
written back. See :mod:`hwzswap.frontswap.zswap` for how loads, invalidates and re-stores of an
offset under writeback stay correct.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hwzswap.errors import CorruptDataError, HwzswapError

if TYPE_CHECKING:
    from hwzswap.frontswap.zswap import Entry, WritebackTarget, ZswapCache

    #: (type, offset, entry, compressed bytes copied out, CRC-32 or None)
    _Victim = tuple[int, int, Entry, bytes, int | None]

_OK = 0
_IO_FAIL = 1
_DECOMPRESS_FAIL = 2


def _front_seq(cand: list[Any]) -> int:
    """Store order of the entry at the front (oldest end) of a candidate's tree: its pool
    handle (the pools hand handles out in increasing order), 0 for a same-filled entry (it is
    only skipped, so it may as well go first)."""
    tree = cand[0]
    entry = tree[next(iter(tree))]
    return entry if entry.__class__ is int else 0


class LruWriteback:
    """The writeback engine of one :class:`~hwzswap.frontswap.zswap.ZswapCache`.

    It works on the cache's indexes under the cache's lock; ``target.write_page(type, offset,
    page)`` does the I/O. Without a target nothing can be written back (``writeback`` returns 0).
    """

    def __init__(self, cache: ZswapCache, target: WritebackTarget | None) -> None:
        self.cache = cache
        self.target = target
        #: The last device or decompression error writeback met (diagnostics).
        self.last_error: HwzswapError | None = None

    def writeback(self, n: int) -> int:
        """Write back up to ``n`` of the least recently stored entries; return how many were
        written back and freed."""
        cache = self.cache
        target = self.target
        if target is None or n <= 0:
            return 0
        lock = cache._lock
        with lock:
            room = cache.policy.max_outstanding_writebacks - cache.outstanding_writebacks
            victims = self._pick_locked(min(n, room)) if room > 0 else []
            cache.outstanding_writebacks += len(victims)
        if not victims:
            return 0
        decompress = cache._decompress
        outcome: list[int] = []
        try:
            for swap_type, offset, _entry, data, csum in victims:
                # A corrupt object must not reach the device as a wrong page: with
                # entry_checksum its CRC is checked first; either failure keeps the entry (a
                # load then raises), counted in writeback_fail and decompress_fail.
                if csum is not None and zlib.crc32(data) != csum:
                    self.last_error = CorruptDataError(
                        f"zswap writeback of swap type {swap_type} offset {offset}: the stored "
                        f"object fails its checksum (corrupt pool memory); not written, the "
                        f"entry is kept"
                    )
                    outcome.append(_DECOMPRESS_FAIL)
                    continue
                try:
                    page = decompress(data)
                except HwzswapError as exc:
                    self.last_error = exc
                    outcome.append(_DECOMPRESS_FAIL)
                    continue
                try:
                    target.write_page(swap_type, offset, page)
                except HwzswapError as exc:  # SwapDeviceError: EIO, ENOSPC, device gone
                    self.last_error = exc
                    outcome.append(_IO_FAIL)
                else:
                    outcome.append(_OK)
        finally:
            # Whatever happened (even a bug raising something unexpected), every victim leaves
            # the in-flight set, or rejected stores and swapoff would wait for it forever.
            outcome.extend([_IO_FAIL] * (len(victims) - len(outcome)))
            written = self._finish(victims, outcome)
        return written

    def _finish(self, victims: list[_Victim], outcome: list[int]) -> int:
        """Step 3: revalidate and free, or count the failure; wake waiters."""
        cache = self.cache
        written = 0
        with cache._lock:
            inflight = cache._inflight
            trees = cache._trees
            for (swap_type, offset, entry, _data, _csum), result in zip(victims, outcome):
                del inflight[(swap_type, offset)]
                if result == _OK:
                    tree = trees.get(swap_type)
                    # the same entry: handles are never reused, so equal means the same object
                    if tree is not None and tree.get(offset) == entry:
                        del tree[offset]
                        cache._free_locked(entry)
                        cache.written_back_pages += 1
                        written += 1
                    else:  # invalidated or re-stored during the I/O: the newer state wins
                        cache.writeback_raced += 1
                else:
                    cache.writeback_fail += 1
                    if result == _DECOMPRESS_FAIL:
                        cache.decompress_fail += 1
            cache.outstanding_writebacks -= len(victims)
            cache._wb_done.notify_all()
        return written

    def _pick_locked(self, take: int) -> list[_Victim]:
        """Choose up to ``take`` victims, oldest first across swap types. Lock held."""
        cache = self.cache
        trees = [t for t in cache._trees.values() if t]
        if not trees or take <= 0:
            return []
        inflight = cache._inflight
        read = cache._pool_read
        csums = cache._csums
        victims: list[_Victim] = []
        # [tree, entries not yet visited]: each entry is looked at most once per call.
        cands = [[t, len(t)] for t in trees]
        while len(victims) < take and cands:
            cand = cands[0] if len(cands) == 1 else min(cands, key=_front_seq)
            tree = cand[0]
            cand[1] -= 1
            if cand[1] == 0:
                cands.remove(cand)
            offset = next(iter(tree))
            entry = tree[offset]
            tree.move_to_end(offset)
            if entry.__class__ is not int:  # same-filled: no pool memory to free
                continue
            key = (tree.type, offset)
            if key in inflight:  # already under writeback (another caller)
                continue
            inflight[key] = entry
            victims.append((tree.type, offset, entry, read(entry),
                            csums[entry] if csums is not None else None))
        return victims

    def shrink(self, target_pages: int, stop: Callable[[], bool] | None = None) -> int:
        """Write back until the pool holds at most ``target_pages`` pages (or nothing more can
        be written back, or ``stop()`` says so); compact the pool if that was not enough.
        Returns entries written."""
        cache = self.cache
        total_pages = cache._total_pages
        batch = cache.policy.writeback_batch
        written = 0
        for attempt in range(2):
            while total_pages() > target_pages:
                if stop is not None and stop():
                    return written
                n = self.writeback(batch)
                if n == 0:
                    break
                written += n
            if total_pages() <= target_pages or attempt:
                break
            with cache._lock:
                if cache._closed:
                    break
                freed = cache.pool.compact()
            if freed == 0:
                break
        return written


class BackgroundWriteback:
    """A thread that keeps the pool at or under the accept threshold (the kernel's
    ``shrink_worker``). Woken by a store that hits the limit, and every ``interval`` seconds."""

    def __init__(self, cache: ZswapCache, interval: float = 0.02) -> None:
        self.cache = cache
        self.interval = interval
        self._event = threading.Event()
        self._stopping = False
        self.rounds = 0
        #: An unexpected exception that ended the thread (re-raised by :meth:`stop`).
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zswap-writeback", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop and join the thread; re-raise what killed it, if anything did."""
        self._stopping = True
        self._event.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def _should_stop(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        cache = self.cache
        try:
            while True:
                self._event.wait(self.interval)
                self._event.clear()
                if self._stopping:
                    return
                if cache._total_pages() > cache._accept_pages:
                    self.rounds += 1
                    cache.writeback_engine.shrink(cache._accept_pages, self._should_stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc


__all__ = ["BackgroundWriteback", "LruWriteback"]
