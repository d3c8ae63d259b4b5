"""The zswap cache: frontswap operations over a compressor backend and a pool.

Pages on their way to swap are compressed into the pool (``store``, or ``store_batch`` for a
reclaim batch); ``load`` decompresses them back (``load_batch`` for a readahead batch);
``invalidate_page``/``invalidate_area`` drop them when the swap slot or area is freed. When the
pool is full the least recently stored entries are written back to the swap device
(:mod:`hwzswap.frontswap.writeback`).

Data structures (after the kernel, see ``shared/reference/kernel.md``):

* one index per swap type (the v9 ``zswap_tree``; today's kernel keys an xarray by offset): a
  ``ZswapTree`` offset -> entry, an array slot per offset with the entries linked in store
  order, so it doubles as the tree's LRU (oldest first); writeback takes victims from its
  front. It is compiled (``_hotpath``) and behaves as the ``OrderedDict`` it replaced
  (``_hotpath_py.ZswapTreePy``, the reference);
* an entry is the pool handle (an ``int``) of the compressed object, or, for a same-filled page,
  its repeated 8-byte word (``bytes``). Nothing else is needed: the object's length is the
  pool's (``obj_size``; the pool's ``stored_bytes`` is zswap's compressed total), and the
  pools hand out handles in increasing order and never reuse one, so a handle is also the
  entry's store sequence number (writeback compares the fronts of several types' trees by it)
  and its identity (writeback's revalidation compares handles);
* with ``entry_checksum`` on, a dict handle -> CRC-32 of the compressed object, checked before
  every decompression (see below);
* one lock (the tree lock) guards the indexes, the pool (which is not thread-safe) and the
  counters. Compression runs outside it; a load decompresses straight from the pool's memory
  (a zero-copy view) while holding it, which is cheaper than copying the object out first and
  keeps compaction and frees from moving the object mid-decompression.

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

Corrupt objects: a pool object that no longer decompresses to a page makes ``load`` raise
:class:`CorruptDataError` (``decompress_fail``), whatever the settings. But most codecs, lz4
among them, copy literal bytes through unchecked, so a flipped bit in a literal decompresses
"fine" to a wrong page. With ``entry_checksum`` (off by default: the kernel has no such check,
and it costs a CRC-32 of every object on store and on load) such an object is caught too: load
and writeback verify the CRC before decompressing, so a corrupt object never comes back as
wrong bytes and never reaches the swap device.
"""

from __future__ import annotations

import operator
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from hwzswap.backends.contract import Backend, check_page, check_pages
from hwzswap.errors import (
    CorruptDataError,
    HwzswapError,
    InvalidInputError,
    PoolAllocError,
    SwapDeviceError,
    not_built,
)
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.pool.base import Pool

try:
    from hwzswap.frontswap._hotpath import (  # type: ignore[import-not-found]
        LoadHit,
        StoreHit,
        ZswapTree,
        insert_objects,
        same_filled_pages,
    )
except ImportError as exc:
    raise not_built("hwzswap.frontswap._hotpath", "zswap's compiled hot paths") from exc

PAGE_SIZE = 4096
_WORDS = PAGE_SIZE // 8
_ZERO_WORD = bytes(8)
_ZERO_PAGE = bytes(PAGE_SIZE)
_NO_LIMIT = 1 << 62
_crc32 = zlib.crc32

#: An index entry: a pool handle, or the word of a same-filled page.
Entry = int | bytes


class WritebackTarget(Protocol):
    """Where written-back pages go: the swap device of ``type`` (the swap system)."""

    def write_page(self, type: int, offset: int, page: bytes) -> None:
        """Write one page; raise :class:`SwapDeviceError` on failure."""


#: The per-type index and LRU: offset -> entry, oldest stored first (``ZswapTree``, compiled;
#: ``_hotpath_py.ZswapTreePy`` is the same as an ``OrderedDict``).
_Tree = ZswapTree


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


def batch_offsets(offsets: Sequence[Any], op: str) -> list[int]:
    """A batch's offsets as a list of ints (numpy integers are fine; floats, strings and the
    like raise :class:`InvalidInputError`)."""
    try:
        return list(map(operator.index, offsets))
    except TypeError:
        raise InvalidInputError(
            f"{op}: offsets must be integers, got {list(offsets)[:8]!r}"
        ) from None


def batch_range_error(offs: list[int], nr_pages: int, op: str, why: str, fix: str) -> int | None:
    """Check a batch's offsets (ints, from :func:`batch_offsets`): raise
    :class:`InvalidInputError` when one appears twice (``why`` says why a batch cannot, ``fix``
    what to do instead); return the first offset outside ``0..nr_pages - 1`` (the lowest if one
    is negative, else the highest) for the caller's own out-of-range error, or ``None``."""
    if not offs:
        return None
    lo, hi = min(offs), max(offs)
    if lo < 0 or hi >= nr_pages:
        return lo if lo < 0 else hi
    if len(set(offs)) != len(offs):
        raise InvalidInputError(f"{op}: an offset appears twice in one batch ({why}); {fix}")
    return None


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
        self._exclusive = policy.exclusive_loads
        self._max_len = policy.max_compressed_len
        self._max_pages = policy.max_pool_pages if policy.max_pool_pages is not None else _NO_LIMIT
        self._accept_pages = policy.accept_pages if policy.accept_pages is not None else _NO_LIMIT
        self._reached_full = False
        #: handle -> CRC-32 of the object, with ``entry_checksum``; else None.
        self._csums: dict[int, int] | None = {} if policy.entry_checksum else None
        # _enabled, _same_filled (same_filled_pages and enabled) and _limit_gate: see _set_gates
        self._enabled = policy.enabled
        self._set_gates()
        # Bound methods, looked up once.
        self._compress = backend.compress
        self._decompress = backend.decompress
        # load_batch hands a batch-capable backend one decompress_batch call; for the others the
        # contract's default decompress_batch is a loop over decompress plus a copy of each page
        # into an array and out again (lz4: ~2.0 -> ~3.5 us a page), so they get the loop alone.
        self._decompress_batch = backend.decompress_batch if backend.capabilities.batch else None
        self._malloc_write = pool.malloc_write
        self._pool_read = pool.read
        self._pool_view = pool.view
        self._pool_free = pool.free
        self._total_pages = pool.total_pages
        # Indexes, lock, writeback state.
        self._trees: dict[int, _Tree] = {}
        self._lock = threading.Lock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._wb_done = threading.Condition(self._lock)
        self._inflight: dict[tuple[int, int], Entry] = {}
        self._closed = False
        for name in _COUNTERS:
            setattr(self, name, 0)
        self._rejected = 0  # stores refused, for any reason (``stores`` = zswpout + this)
        self.outstanding_writebacks = 0
        self.writeback_engine = LruWriteback(self, writeback_target)
        self._background: BackgroundWriteback | None = None
        if policy.background_writeback:
            self._background = BackgroundWriteback(self)
            self._background.start()
        # The common paths of store and load, compiled (None where they would do more).
        store_fast = self.store_hit_path(ZswapCache.store.__get__(self))
        if store_fast is not None:
            self.store = store_fast  # type: ignore[method-assign]
        load_fast = self.load_hit_path(ZswapCache.load.__get__(self))
        if load_fast is not None:
            self.load = load_fast  # type: ignore[method-assign]

    @property
    def enabled(self) -> bool:
        """Whether stores are accepted (the kernel's ``enabled`` parameter; may be changed at
        run time: entries already stored stay loadable)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        with self._lock:
            self._enabled = bool(value)
            self._set_gates()

    @property
    def compressed_bytes(self) -> int:
        """Compressed bytes held now (the pool's ``stored_bytes``: every pool object is an
        entry's)."""
        return self.pool.stored_bytes

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
        if offset.__class__ is not int:
            offset = self._int_offset(type, offset, "store")
        if page.__class__ is not bytes or len(page) != PAGE_SIZE:
            page = _as_page(page)
        # Same-filled: one byte compare rules out nearly every other page (a same-filled page
        # has byte 0 == byte 4088); the zero page, the common case, compares without building
        # a pattern. (_same_filled is off while zswap is disabled: such a page then falls
        # through to the gate below, which rejects it.)
        if page[4088] == page[0] and self._same_filled:
            word = page[:8]
            if page == _ZERO_PAGE if word == _ZERO_WORD else page == word * _WORDS:
                return self._store_same_filled(tree, offset, word)
        # The gate: max_pool_pages normally, 0 while the hysteresis holds (every store checks
        # the limits), -1 while zswap is disabled (every store is rejected there).
        if self.pool.pages >= self._limit_gate:
            ok, why = self._check_limits()
            if not ok:
                return self._reject(tree, offset, why)
        try:
            data = self._compress(page)
        except HwzswapError:
            return self._reject(tree, offset, "reject_compress_fail")
        if data is None or len(data) > self._max_len:
            return self._reject(tree, offset, "reject_compress_poor")
        csums = self._csums
        if csums is not None:
            csum = _crc32(data)
        # The hot path: explicit acquire/release (cheaper than `with`), one fused pool call.
        self._acquire()
        try:
            handle = self._malloc_write(data)
            if offset in tree:
                self._drop_old_locked(tree, offset)
            tree[offset] = handle
            if csums is not None:
                csums[handle] = csum
            self.zswpout += 1
            return True
        except PoolAllocError:
            pass
        finally:
            self._release()
        return self._store_after_reclaim(tree, offset, data)

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
        offs = batch_offsets(offsets, "zswap store_batch")
        n = len(pages)
        if len(offs) != n:
            raise InvalidInputError(
                f"zswap store_batch: {len(offs)} offsets for {n} pages (one offset per page)"
            )
        bad = batch_range_error(offs, tree.nr_pages, "zswap store_batch",
                                "a reclaim batch holds distinct pages",
                                "store them in separate calls")
        if bad is not None:
            raise self._bad_slot(type, bad, "store_batch")
        return self._store_batch_checked(type, offs, pages)

    def _store_batch_checked(self, type: int, offs: list[int], pages: np.ndarray) -> list[bool]:
        """:meth:`store_batch` once its arguments are known good (the swap system checks them
        itself): ``offs`` distinct ints in range, ``pages`` from ``check_pages``, same length."""
        tree = self._trees[type]
        n = len(pages)
        results = [False] * n
        if n == 0:
            return results
        if not self._enabled:
            for off in offs:
                self._reject(tree, off, None)
            return results
        same: list[int] = []
        if self._same_filled:
            # one C loop over the batch (_hotpath_py.same_filled_pages_py is the same in Python)
            for i, word in same_filled_pages(pages):
                same.append(i)
                results[i] = self._store_same_filled(tree, offs[i], word)
        if len(same) * 4 >= n:
            # Many same-filled pages: compress only the others (worth the copy of the rest).
            keep = np.ones(n, dtype=bool)
            keep[same] = False
            idx = keep.nonzero()[0].tolist()
            todo = pages[keep]
            if not idx:
                return results
            sel = None
        else:
            # Few: hand the backend the batch as it is (no copy) and drop their results.
            todo = pages
            sel = set(same) if same else None
            idx = [i for i in range(n) if i not in sel] if sel else list(range(n))
        if self.pool.pages >= self._limit_gate:
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
        elif outs.__class__ is not list:
            outs = list(outs)
        sums = None
        if self._csums is not None:
            sums = [_crc32(d) if d is not None else 0 for d in outs]
        retry: list[tuple[int, Any]] = []
        poor: list[int] = []
        # The critical section: pool allocations and index inserts, one C loop
        # (_hotpath_py.insert_objects_py is the same in Python).
        self._acquire()
        try:
            insert_objects(self, tree, offs, idx, outs, sums, self._max_len, results, poor, retry)
        finally:
            self._release()
        for i in poor:
            self._reject(tree, offs[i], "reject_compress_poor")
        for i, data in retry:
            results[i] = self._store_after_reclaim(tree, offs[i], data)
        return results

    def load(self, type: int, offset: int) -> bytes | None:
        """The page stored for ``(type, offset)``, or ``None`` if zswap does not hold it.

        Raises :class:`CorruptDataError` when the stored object does not decompress to a page
        or (with ``entry_checksum``) fails its checksum, counted in ``decompress_fail``; the
        entry is kept. Never returns wrong-length data, nor (with ``entry_checksum``) wrong
        bytes.
        """
        try:
            tree = self._trees[type]
        except KeyError:
            raise self._bad_slot(type, offset, "load") from None
        if offset.__class__ is not int:
            offset = self._int_offset(type, offset, "load")
        if self._exclusive:
            return self._load_exclusive(tree, offset)
        self._acquire()
        try:
            entry = tree.get(offset)
            if entry.__class__ is int:
                # Decompress straight from the pool's memory, under the lock (nothing can free
                # or move the object meanwhile).
                data = self._pool_view(entry)
                if self._csums is not None:
                    self._verify_locked(tree, offset, entry, data)
                try:
                    page = self._decompress(data)
                except HwzswapError as exc:
                    self.decompress_fail += 1
                    raise self._corrupt(tree, offset, data, exc) from exc
                self.loads_hit += 1
                return page
            if entry is None:
                self.loads_miss += 1
                return None
            self.loads_hit += 1  # same-filled
            return _ZERO_PAGE if entry == _ZERO_WORD else entry * _WORDS
        finally:
            self._release()

    def store_hit_path(self, fallback: Callable[[int, int, Any], bool]
                       ) -> Callable[[int, int, Any], bool] | None:
        """A compiled ``(type, offset, page) -> bool`` for the common case of a store: a
        4096-byte ``bytes`` page that is not same-filled, with the pool under its limit gate.
        It does what :meth:`store` does from the codec call on (with the method's own helpers
        for every outcome but a plain insert); the cases before it go to ``fallback`` with the
        same arguments, nothing changed. ``None`` with entry checksums.

        The cache installs one as its own ``store``, falling back to the method.
        ``_hotpath_py.StoreHitPy`` is the same in Python.
        """
        if self._csums is not None:
            return None
        return StoreHit(self._trees, self, self.pool, self._compress, self._malloc_write,
                        self._acquire, self._release, fallback)

    def load_hit_path(self, fallback: Callable[[int, int], Any]) -> Callable[[int, int], Any] | None:
        """A compiled ``(type, offset) -> page`` for the common case of a load: a compressed
        entry found and decompressed (counted in ``loads_hit``), exactly as :meth:`load` does
        it; every other case goes to ``fallback`` with the same arguments, nothing changed.
        ``None`` with exclusive loads or entry checksums, whose hits do more.

        The cache installs one as its own ``load`` (falling back to the method); the swap
        system installs one as ``swap_in``, whose hit is the same (falling back to its method,
        which reads the device on a miss). ``_hotpath_py.LoadHitPy`` is the same in Python.
        """
        if self._exclusive or self._csums is not None:
            return None
        return LoadHit(self._trees, self._acquire, self._release, self._pool_view,
                       self._decompress, self, fallback)

    def _load_exclusive(self, tree: _Tree, offset: int) -> bytes | None:
        """Today's kernel: a hit frees the entry, once the page is safely decompressed."""
        with self._lock:
            entry = tree.get(offset)
            if entry is None:
                self.loads_miss += 1
                return None
            if entry.__class__ is not int:
                self.loads_hit += 1
                del tree[offset]
                self.same_filled_pages -= 1
                return _ZERO_PAGE if entry == _ZERO_WORD else entry * _WORDS
            data = self._pool_view(entry)
            if self._csums is not None:
                self._verify_locked(tree, offset, entry, data)
            page = self._decompress_locked(tree, offset, data)
            del data  # the view must not outlive the object
            self.loads_hit += 1
            del tree[offset]
            self._free_locked(entry)
        return page

    def load_batch(self, type: int, offsets: Sequence[int]) -> list[bytes | None]:
        """The pages stored for a batch of slots of swap ``type`` (a readahead cluster): one
        entry per offset, ``None`` where zswap does not hold the slot.

        The result is what calling :meth:`load` on each offset in order returns, with the same
        counters (``loads_hit``/``loads_miss``) and, with ``exclusive_loads``, the hit entries
        freed. The compressed hits are decompressed together: in one ``decompress_batch`` call
        for a backend whose capabilities say ``batch`` (an offload device pays its round trip
        once per batch, not once per page), else one ``decompress`` each. Like :meth:`load`,
        this runs under the tree lock straight from the pool's memory.

        All or nothing: when an object is corrupt (it does not decompress, or fails its
        ``entry_checksum``), :class:`CorruptDataError` names the first such offset in batch
        order, as the looped loads would have raised, after counting ``decompress_fail``;
        nothing else changes (no hit counted, no entry freed), so every page of the batch is
        still loadable. The offsets must be distinct (readahead never names a slot twice; with
        exclusive loads a repeated slot would be a hit and then a miss) and in range.
        """
        tree = self._trees.get(type)
        if tree is None:
            raise self._bad_slot(type, offsets[0] if len(offsets) else 0, "load_batch")
        offs = batch_offsets(offsets, "zswap load_batch")
        bad = batch_range_error(offs, tree.nr_pages, "zswap load_batch",
                                "a readahead batch names distinct slots", "load it once")
        if bad is not None:
            raise self._bad_slot(type, bad, "load_batch")
        return self._load_batch_checked(type, offs, self._exclusive)

    def _load_batch_checked(self, type: int, offs: list[int], free: bool) -> list[bytes | None]:
        """:meth:`load_batch` once its arguments are known good (an initialised ``type``,
        distinct offsets in range); ``free``: drop the hit entries (exclusive loads). The swap
        system passes ``False`` and calls :meth:`_drop_loaded` once its device reads have
        succeeded too."""
        tree = self._trees[type]
        out: list[bytes | None] = [None] * len(offs)
        at: list[int] = []  # batch positions of the compressed hits
        handles: list[int] = []
        misses = 0
        get = tree.get
        self._acquire()
        try:
            for i, off in enumerate(offs):
                entry = get(off)
                if entry.__class__ is int:
                    at.append(i)
                    handles.append(entry)
                elif entry is None:
                    misses += 1
                else:
                    out[i] = _ZERO_PAGE if entry == _ZERO_WORD else entry * _WORDS
            if handles:
                view = self._pool_view
                items = [view(h) for h in handles]
                pages = self._decompress_hits_locked(tree, offs, at, handles, items)
                del items  # the views must not outlive the objects
                for k, i in enumerate(at):
                    out[i] = pages[k]
            self.loads_hit += len(offs) - misses
            self.loads_miss += misses
            if free and misses < len(offs):
                pop = tree.pop
                for i, off in enumerate(offs):
                    if out[i] is not None:
                        self._free_locked(pop(off))
        finally:
            self._release()
        return out

    def _decompress_hits_locked(self, tree: _Tree, offs: list[int], at: list[int],
                                handles: list[int], items: list[Any]) -> list[bytes]:
        """Decompress the batch's pool objects (views, lock held) into pages, or raise
        :class:`CorruptDataError` for the first bad one in batch order, as :meth:`load` would."""
        bad = None  # the first object failing its checksum
        csums = self._csums
        if csums is not None:
            for k, handle in enumerate(handles):
                if _crc32(items[k]) != csums[handle]:
                    bad = k
                    break
        batch = self._decompress_batch
        if bad is None and batch is not None:
            try:
                arr = batch(items)
                if (arr.__class__ is np.ndarray and arr.shape == (len(items), PAGE_SIZE)
                        and arr.dtype == np.uint8):
                    return [row.tobytes() for row in arr]
            except HwzswapError:
                pass  # find the object to blame, one at a time, below
        # One object at a time, in order: the non-batch backends' path, and the way to name the
        # first bad object after a failed batch (an error that no single object reproduces
        # -- a transient device fault -- leaves the pages good, and they are returned).
        pages = [self._decompress_locked(tree, offs[at[k]], items[k])
                 for k in range(len(items) if bad is None else bad)]
        if bad is not None:
            self._verify_locked(tree, offs[at[bad]], handles[bad], items[bad])  # raises
        return pages

    def _decompress_locked(self, tree: _Tree, offset: int, data: Any) -> bytes:
        """Decompress the object of ``offset`` (lock held); a failure is counted in
        ``decompress_fail`` and raised as the corrupt-entry error. (``load`` inlines the same
        steps: it is the hot path.)"""
        try:
            return self._decompress(data)
        except HwzswapError as exc:
            self.decompress_fail += 1
            raise self._corrupt(tree, offset, data, exc) from exc

    def _drop_loaded(self, type: int, offs: Sequence[int]) -> None:
        """Exclusive loads, second half: free the entries of ``offs`` the swap system has
        handed back. An entry writeback took meanwhile is gone already (its page went to the
        device, which the caller discards)."""
        tree = self._trees[type]
        self._acquire()
        try:
            pop = tree.pop
            for off in offs:
                entry = pop(off, None)
                if entry is not None:
                    self._free_locked(entry)
        finally:
            self._release()

    def _verify_locked(self, tree: _Tree, offset: int, handle: int, data: Any) -> None:
        """``entry_checksum``: the object must still have the CRC it was stored with."""
        want = self._csums[handle]  # type: ignore[index]
        got = _crc32(data)
        if got != want:
            self.decompress_fail += 1
            raise CorruptDataError(
                f"zswap: load of swap type {tree.type} offset {offset}: the stored object "
                f"({len(data)} bytes) fails its checksum (CRC-32 {got:#010x}, stored with "
                f"{want:#010x}): the pool memory holding it was corrupted; the entry is kept, "
                f"no data was returned"
            )

    def _corrupt(self, tree: _Tree, offset: int, data: Any, exc: Exception) -> CorruptDataError:
        return CorruptDataError(
            f"zswap: load of swap type {tree.type} offset {offset}: the stored object "
            f"({len(data)} bytes, {self.backend.name}) does not decompress to a page: {exc}; "
            f"the entry is kept, no data was returned"
        )

    def invalidate_page(self, type: int, offset: int) -> None:
        """Drop the entry for ``(type, offset)`` (its swap slot was freed). No entry: no-op."""
        tree = self._trees.get(type)
        if tree is None:
            raise self._bad_slot(type, offset, "invalidate_page")
        if offset.__class__ is not int:
            offset = self._int_offset(type, offset, "invalidate_page")
        self._acquire()
        try:
            entry = tree.pop(offset, None)
            if entry is not None:
                self.invalidates += 1
                self._free_locked(entry)
        finally:
            self._release()

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
            pool = self.pool
            out["stores"] = self.zswpout + self._rejected
            out["stored_pages"] = sum(len(t) for t in self._trees.values())
            pages = pool.pages if not self._closed else 0
            out["pool_pages"] = pages
            out["pool_total_size"] = pages * PAGE_SIZE
            out["pool_peak_pages"] = pool.peak_pages
            out["pool_limit_pages"] = self.policy.max_pool_pages or 0
            out["compressed_bytes"] = pool.stored_bytes if not self._closed else 0
            out["compressed_bytes_at_peak"] = pool.stored_at_peak
            out["outstanding_writebacks"] = self.outstanding_writebacks
        return out

    def check(self) -> None:
        """Verify the cache's invariants at one instant (under the lock); raise
        :class:`~hwzswap.errors.HwzswapError` naming the first broken one. For tests and
        debugging: it walks every entry."""
        with self._lock:
            entries = [e for t in self._trees.values() for e in t.values()]
            pooled = [e for e in entries if e.__class__ is int]
            problems = []
            if len(pooled) != len(self.pool):
                problems.append(f"{len(pooled)} pool entries but {len(self.pool)} pool objects")
            if len(set(pooled)) != len(pooled):
                problems.append("a pool handle is indexed twice")
            if any(e.__class__ is not bytes or len(e) != 8 for e in entries
                   if e.__class__ is not int):
                problems.append("an entry is neither a handle nor an 8-byte word")
            if len(entries) - len(pooled) != self.same_filled_pages:
                problems.append(f"same_filled_pages is {self.same_filled_pages}, "
                                f"{len(entries) - len(pooled)} same-filled entries exist")
            if not self._closed:
                cbytes = sum(self.pool.obj_size(h) for h in pooled)
                if cbytes != self.pool.stored_bytes:
                    problems.append(f"the pool stores {self.pool.stored_bytes} bytes, entries "
                                    f"hold {cbytes}")
            if self._csums is not None and set(self._csums) != set(pooled):
                problems.append(f"{len(self._csums)} checksums for {len(pooled)} pool entries")
            if self.outstanding_writebacks != len(self._inflight):
                problems.append(f"outstanding_writebacks is {self.outstanding_writebacks}, "
                                f"{len(self._inflight)} entries are in flight")
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

    def _set_gates(self) -> None:
        """Recompute the hot path's flags from ``_enabled`` and ``_reached_full``."""
        self._same_filled = self._enabled and self.policy.same_filled_pages
        if not self._enabled:
            self._limit_gate = -1
        else:
            self._limit_gate = 0 if self._reached_full else self._max_pages

    def _drop_old_locked(self, tree: _Tree, offset: int) -> None:
        """A store replaces the offset's entry (``duplicate_entry``). Lock held."""
        old = tree.pop(offset)
        self.duplicate_entry += 1
        self._free_locked(old)

    def _insert_locked(self, tree: _Tree, offset: int, data: Any) -> bool:
        """Store ``data`` in a new pool object as the entry for ``offset``; ``False`` (nothing
        changed) if the pool has no room. Lock held."""
        try:
            handle = self._malloc_write(data)
        except PoolAllocError:
            return False
        if offset in tree:
            self._drop_old_locked(tree, offset)
        tree[offset] = handle
        if self._csums is not None:
            self._csums[handle] = _crc32(data)
        self.zswpout += 1
        return True

    def _store_same_filled(self, tree: _Tree, offset: int, word: bytes) -> bool:
        with self._lock:
            if offset in tree:
                self._drop_old_locked(tree, offset)
            tree[offset] = word
            self.zswpout += 1
            self.same_filled_pages += 1
        return True

    def _free_locked(self, entry: Entry) -> None:
        """Release an entry's pool object (or same-filled count). Lock held."""
        if entry.__class__ is int:
            self._pool_free(entry)
            if self._csums is not None:
                del self._csums[entry]
        else:
            self.same_filled_pages -= 1

    def _check_limits(self) -> tuple[bool, str | None]:
        """The kernel's ``zswap_check_limits`` plus reclaim: may this store go ahead?

        Disabled: no (and no counter). At the limit: ``pool_limit_hit`` and the hysteresis
        starts. While it holds, reclaim (write back a batch here, or wake the background
        thread) and accept again only once the pool is at or under the accept threshold.
        """
        with self._lock:
            if not self._enabled:
                return False, None
            cur = self._total_pages()
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
            if self._reached_full and cur <= self._accept_pages:
                self._set_full(False)
            if not self._reached_full:
                return True, None
        return False, ("reject_reclaim_fail" if written == 0 else "reject_pool_limit")

    def _set_full(self, full: bool) -> None:
        """Enter or leave the hysteresis (the kernel's ``zswap_pool_reached_full``)."""
        self._reached_full = full
        self._set_gates()

    def _store_after_reclaim(self, tree: _Tree, offset: int, data: Any) -> bool:
        """The pool refused the object: write back a batch (v9), retry once, else reject."""
        written = self.writeback_engine.writeback(self.policy.writeback_batch)
        with self._lock:
            if self._insert_locked(tree, offset, data):
                return True
            why = "reject_reclaim_fail" if written == 0 else "reject_alloc_fail"
            self._reject_locked(tree, offset, why)
            return False

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

    def _int_offset(self, type: int, offset: Any, op: str) -> int:
        """An offset given as another integer type (a numpy integer) as an ``int``; anything
        else (a float, a string) raises the bad-slot error."""
        try:
            return operator.index(offset)
        except TypeError:
            raise self._bad_slot(type, offset, op) from None

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


__all__ = ["Entry", "WritebackTarget", "ZswapCache", "batch_offsets"]
