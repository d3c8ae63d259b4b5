"""The zswap cache: frontswap operations over a compressor and a pool, with LRU writeback.

Pages on their way to swap are compressed into the pool (``store``; ``store_batch`` for a
reclaim pass of folios); ``load`` decompresses them back (``load_batch`` for a readahead
cluster); ``invalidate_page``/``invalidate_area`` drop them when the swap slot or area is freed.
When the pool is full the least recently stored entries are written back to the swap device
(``writeback``/``shrink``, below).

Engine modes (``batching``; each is the design it is named after):

========  ===========================================  ===============================
mode      how a reclaim batch reaches the compressor   kernel counterpart
========  ===========================================  ===============================
page      one call per page                            zswap v9 (2013): zswap_frontswap_store
folio     one call per folio (1 page, or an mTHP)      today's zswap_store(folio)
reclaim   one call per reclaim pass (<= 32 folios)     shrink_folio_list's batch, as IAA
                                                       batching proposes
async     reclaim batches handed to the device         swap writeback: bios in flight,
          without waiting, several in flight           completion later
========  ===========================================  ===============================

Every call into the driver goes through :class:`~hwzswap.frontswap.compressor.Compressor`, which
checks each result, enforces the device deadline and gives batch results per item: one failed
page of a batch rejects that page only, or, in the batched modes, the large folio it belongs to.
A large folio (an mTHP) is stored all or nothing in ``folio``, ``reclaim`` and ``async`` mode,
as today's ``zswap_store(folio)`` stores one (6.13+): when any of its pages is rejected, none
stays in zswap and the whole folio goes to the swap device (the page that failed counted under
its reason, the others as ``reject_folio``). ``page`` mode models v9, which had no large folios,
and stores each page on its own. Asynchronous devices (capability ``asynchronous``) are
driven through ``submit``/``poll``, but a device with a batch call gets each batch in one
``compress_batch``. ``async`` mode has two designs (``zswap.async_submit``): ``queue``, the
storing thread submits a batch's ops to the device's own queue and returns, and they are
polled later (:class:`~hwzswap.frontswap.opsinflight.OpsInFlight`, no engine thread), and
``worker``, the pipeline's worker thread makes the batch call
(:class:`~hwzswap.frontswap.pipeline.AsyncPipeline`).

Data structures (after the kernel, see ``shared/reference/kernel.md``):

* one index per swap type (the v9 ``zswap_tree``; today's kernel keys an xarray by offset): a
  ``ZswapTree`` offset -> entry with the entries linked in store order, so it doubles as the
  LRU (oldest first); writeback takes victims from its front (:mod:`.kernels` picks the
  compiled tree or its Python reference);
* an entry is the pool handle (an ``int``) of the compressed object, or, for a same-filled page,
  its repeated 8-byte word (``bytes``). The pools hand out handles in increasing order and never
  reuse one, so a handle is also the entry's store sequence number and identity;
* ``async`` mode only: *staged* pages, ``(type, offset) -> (batch, index)``, accepted but still
  being compressed. A staged page is loadable (from its copy) and can be invalidated or replaced;
  it joins the index, and so the LRU, only when its compression completes;
* with ``entry_checksum``, handle -> CRC-32 of the compressed object (checked before every
  decompression); with ``verify_pages``, handle -> CRC-32 of the page (taken before the driver
  gets the page, read-only, and checked after every decompression);
* one lock (the tree lock) guards the indexes, the staged pages, the pool (not thread-safe) and
  the counters. Compression runs outside it; a load decompresses straight from the pool's memory
  while holding it (no copy: nothing can free or move the object while the driver's call runs).
  One reference outlives the lock: an op given to an asynchronous device (``submit``/``poll``)
  and given up at its deadline keeps the pool view as its source after the load has gone on
  (decoded in software, or failed) and released the lock, so the device may read it after the
  object is freed or moved. That holds for an unwatched driver (a built-in under
  ``driver_watchdog: auto``; a watched one gets copies) and is harmless: the op's late result is
  discarded, and the view keeps its memory alive (the device may read another object's bytes,
  never freed memory). Python's locks are not fair (the kernel's spinlocks queue their waiters):
  a storer that releases the lock and takes it again at once can keep writeback out for a whole
  run (measured on a loaded 2-core machine: the writeback thread woken 590 times, 0 pages
  written back, the pool full throughout). So writeback says when it waits for the lock, and a
  store refused for a full pool lets it in first (:meth:`ZswapCache._yield_to_reclaim`).

Races (today's kernel's scheme, adapted; no refcounts). Writeback marks the slot *in flight* and
copies the object under the lock, writes the page without it, and re-checks under the lock that
the index still maps the offset to *that same entry* before freeing it. Meanwhile a **load**
still finds the entry; an **invalidate** or a **new store** replaces it, so the re-check fails
and the newer state wins; a **rejected store** of that slot, whose page is about to be written
to the device, first waits for the in-flight write of the same slot, so a stale page never lands
after a newer one. An async page whose compression failed is written to the device the same
way (in flight, re-checked), and stays loadable from its copy until it is there; if the device
write fails it stays staged (in RAM), never lost.

The caller serialises operations on one ``(type, offset)`` (the kernel's folio lock does that):
concurrent ops on *different* offsets, writeback and async completion are safe.

Corrupt objects: an object that no longer decompresses raises :class:`CorruptDataError` on load
(``decompress_fail``), the entry kept. A driver result that breaks the contract raises
:class:`~hwzswap.errors.DriverError`. Codecs copy literals unchecked, so a flipped bit can
decompress "fine" to a wrong page: ``entry_checksum`` catches corrupt pool memory,
``verify_pages`` a driver that returns wrong bytes (``verify_fail``).
"""

from __future__ import annotations

import operator
import threading
import time
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import accumulate
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompressedBatch,
    ItemStatus,
    as_count,
    check_page,
    check_pages,
)
from hwzswap.errors import (
    ConfigError,
    CorruptDataError,
    DeviceError,
    DriverError,
    HwzswapError,
    InvalidInputError,
    PoolAllocError,
    SwapDeviceError,
)
from hwzswap.frontswap.compressor import Compressor
from hwzswap.frontswap.kernels import MAX_NR_PAGES, ZswapTree, same_filled_pages
from hwzswap.frontswap.opsinflight import OpsInFlight
from hwzswap.frontswap.pipeline import AsyncPipeline
from hwzswap.frontswap.slots import batch_offsets, folio_groups, slot_error, value_text
from hwzswap.frontswap.policy import AUTO_ASYNC_BATCHES, SWAP_CLUSTER_MAX, ZswapPolicy
from hwzswap.frontswap.writeback import BackgroundWriteback
from hwzswap.pool.base import Pool

_WORDS = PAGE_SIZE // 8
_ZERO_WORD = bytes(8)
_ZERO_PAGE = bytes(PAGE_SIZE)
_NO_LIMIT = 1 << 62
_crc32 = zlib.crc32
_OK = int(ItemStatus.OK)  # plain ints: numpy compares them without the enum's lookups
_FAILED = int(ItemStatus.FAILED)

#: An index entry: a pool handle, or the word of a same-filled page.
Entry = int | bytes
#: A pass's same-filled pages held back with their large folio: folio -> [(item, word)].
_FolioWords = dict[int, list[tuple[int, bytes]]]
#: Whose pool-limit check it is (:meth:`ZswapCache._check_limits`).
_LimitCheck = Literal["store", "landing", "reclaim"]

# writeback outcomes
_WB_OK = 0
_WB_IO_FAIL = 1
_WB_DECOMPRESS_FAIL = 2  # the object does not decompress, or fails entry_checksum
_WB_VERIFY_FAIL = 3  # the page decompressed differs from the one stored (verify_pages)


class WritebackTarget(Protocol):
    """Where written-back pages go: the swap device of ``type`` (the swap system)."""

    def write_page(self, type: int, offset: int, page: bytes) -> None:
        """Write one page; raise :class:`SwapDeviceError` on failure."""


#: Pool pages a new object may take, for the folio-by-folio limit check: folios whose
#: objects stay this far under the limit go into the pool in one write. Bytes are no guide:
#: an object in an empty size class opens a zspage of up to ZSMALLOC_CHAIN_SIZE pages (after
#: writeback had emptied zspages, 31 objects of a pass took 81 pool pages).
_OBJECT_PAGES = 4

#: How long a store the full pool refused waits for a writeback that is waiting for the lock
#: to take it (it goes on as soon as writeback has it; the bound covers a writeback thread that
#: is not scheduled, or a lock some other thread holds)
RECLAIM_TURN_S = 0.05
_RECLAIM_TURN_POLL_S = 0.0001

# Counters reported by stats(), all plain int attributes of the cache.
_COUNTERS = (
    "zswpout",
    "pool_limit_hit",
    "reject_pool_limit",
    "reject_compress_poor",
    "reject_compress_fail",
    "reject_alloc_fail",
    "reject_reclaim_fail",
    "reject_folio",
    "written_back_pages",
    "writeback_fail",
    "writeback_raced",
    "duplicate_entry",
    "same_filled_pages",
    "decompress_fail",
    "verify_fail",
    "loads_hit",
    "loads_miss",
    "loads_staged",
    "invalidates",
    "async_write_fail",
    "async_write_skipped",
    "staged_dropped",
)


def async_design(name: str, caps: Capabilities, asked: str) -> str:
    """``zswap.async_submit`` resolved for driver ``name`` with capabilities ``caps``:
    ``auto`` is ``queue`` for an asynchronous device that prefers no more pages a call than
    one reclaim pass (its requests go on its own queue as they come), else ``worker`` (the
    worker merges queued passes into the large calls such a device wants, or gives a device
    without a queue its asynchrony). ``queue`` asked of a device without one is a
    :class:`~hwzswap.errors.ConfigError` (the bench asks this before a run, to skip it)."""
    asynchronous = bool(caps.asynchronous)
    if asked == "auto":
        fits = int(caps.preferred_batch) <= SWAP_CLUSTER_MAX
        return "queue" if asynchronous and fits else "worker"
    if asked == "queue" and not asynchronous:
        raise ConfigError(
            f"zswap.async_submit: queue needs an asynchronous device (submit/poll), and "
            f"{name!r} has none (capabilities.asynchronous is false); use worker or auto")
    return asked


def _as_page(page: Any) -> bytes:
    """A 4096-byte ``bytes`` copy of any buffer, or :class:`InvalidInputError`."""
    return check_page(page).tobytes()


def _staged_groups(groups: list[int], idx: list[int]) -> list[int]:
    """The folio sizes of a batch's pages at positions ``idx`` (ascending): what is left of
    each folio once its same-filled or refused pages are out."""
    if len(idx) == sum(groups):
        return groups
    out: list[int] = []
    end = j = 0
    for size in groups:
        end += size
        k = j
        while j < len(idx) and idx[j] < end:
            j += 1
        if j > k:
            out.append(j - k)
    return out


class _StagedBatch:
    """async mode: one reclaim batch in flight -- its type, offsets, its own page copies
    (read-only: the driver gets them, and must not change them), the folio sizes of the pages
    it compresses (consecutive, the first ones), with ``verify_pages`` their CRCs (taken
    before the driver saw them), and ``words``: the same-filled pages of those folios (folio
    index -> ``(page index, word)``; staged after the pages to compress, never sent to the
    device, and stored or refused with their folio; ``None``: none)."""

    __slots__ = ("type", "offs", "pages", "groups", "pcsums", "words")

    def __init__(self, type: int, offs: list[int], pages: np.ndarray,
                 groups: list[int], pcsums: list[int] | None = None,
                 words: _FolioWords | None = None) -> None:
        self.type = type
        self.offs = offs
        self.pages = pages
        self.groups = groups
        self.pcsums = pcsums
        self.words = words


class _Admitted(NamedTuple):
    """What a batch store's first half (:meth:`ZswapCache._admit`) leaves for its second: the
    positions of the pages to compress (``idx``), those pages (``todo``: one row per position
    of ``idx``, or the whole batch when ``idx`` indexes it) and ``words``: the same-filled
    pages whose folio also has pages to compress, ``(position, word)``, stored or refused
    with their folio once it is compressed (a large folio is stored all or nothing): by
    folio in ``folio_words``, each folio counted among the folios of the pages to compress
    (as :func:`_staged_groups` counts them) and each page numbered after those pages."""

    todo: np.ndarray
    idx: list[int]
    words: list[tuple[int, bytes]]
    #: ``words`` by folio, as :meth:`ZswapCache._commit` takes them (``None``: no words)
    folio_words: _FolioWords | None = None


class _Landing:
    """One compressed pass going into the pool (:meth:`ZswapCache._commit`): its slots (the
    batch's items first, then the same-filled pages held back with their folios), the
    batch's CRCs (``verify_pages``), the compressed batch, the staged batch (async mode), the
    ``(start, end)`` of each folio's items and the folios' same-filled pages."""

    __slots__ = ("tree", "offs", "pcsums", "batch", "staged", "spans", "words")

    def __init__(self, tree: ZswapTree, offs: list[int], pcsums: list[int] | None,
                 batch: CompressedBatch, staged: _StagedBatch | None,
                 spans: list[tuple[int, int]], words: _FolioWords | None) -> None:
        self.tree = tree
        self.offs = offs
        self.pcsums = pcsums
        self.batch = batch
        self.staged = staged
        self.spans = spans
        self.words = words


def _spans(groups: list[int]) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each folio of consecutive sizes ``groups``."""
    ends = list(accumulate(groups))
    return list(zip([0, *ends[:-1]], ends))


class ZswapCache:
    """The frontswap backend: ``init``/``store``/``load``/``invalidate_page``/``invalidate_area``.

    ``store`` returns ``True`` when the page is now held (compressed, or staged in ``async``
    mode), ``False`` when it was rejected (the caller writes it to the swap device; any older
    entry for the offset has been dropped so it cannot come back). ``load`` returns the page,
    or ``None`` on a miss. ``async`` mode needs a ``writeback_target``: pages whose compression
    fails after ``store`` returned go there.
    """

    def __init__(
        self,
        backend: Backend,
        pool: Pool,
        policy: ZswapPolicy | None = None,
        writeback_target: WritebackTarget | None = None,
    ) -> None:
        self.backend = backend
        self.pool = pool
        self.policy = policy = policy if policy is not None else ZswapPolicy()
        self.writeback_target = writeback_target
        self.batching = policy.batching
        if self.batching == "async" and writeback_target is None:
            raise ConfigError(
                "zswap.batching: async mode needs a writeback target (the swap system) for "
                "pages whose compression fails after the store returned; use open_zswap"
            )
        self.compressor = comp = Compressor(backend, policy.device_timeout_ms,
                                            policy.device_fail_after, policy.driver_watchdog,
                                            policy.device_retry_s)
        # Policy, copied to plain attributes for the hot paths.
        self._exclusive = policy.exclusive_loads
        self._max_len = policy.max_compressed_len
        self._max_pages = policy.max_pool_pages if policy.max_pool_pages is not None else _NO_LIMIT
        self._accept_pages = policy.accept_pages if policy.accept_pages is not None else _NO_LIMIT
        self._reached_full = False
        #: handle -> CRC-32 of the object (``entry_checksum``) / of the page (``verify_pages``)
        self._csums: dict[int, int] | None = {} if policy.entry_checksum else None
        self._pcsums: dict[int, int] | None = {} if policy.verify_pages else None
        self._enabled = policy.enabled
        self._set_gates()
        # The device calls, chosen once from the capabilities: an asynchronous device is
        # driven through submit/poll, except that a batch goes to a real batch path when it has
        # one (one call, one flat result; async mode overlaps it with the host instead).
        if comp.asynchronous:
            self._compress = self._compress_via_ops
            self._decompress = self._decompress_via_ops
        else:
            self._compress = comp.compress
            self._decompress = comp.decompress
        self._compress_batch = (comp.compress_ops if comp.asynchronous and not comp.batch
                                else comp.compress_batch)
        #: load_batch's fast path for a device without a batch call: every object decompressed,
        #: the results checked in bulk (None: redo one by one)
        self._decompress_each = (self._decompress_ops_each if comp.asynchronous
                                 else comp.decompress_each)
        self._pool_view = pool.view
        self._pool_free = pool.free
        # Indexes, lock, writeback and async state.
        #
        # Locking. ``_lock`` is the tree lock (the kernel's tree->lock): it guards the indexes,
        # ``_staged``, ``_inflight``, ``_unwritten``, the pool and the counters.
        # ``_acquire``/``_release`` are its bound methods (the hot paths' spelling of ``with
        # self._lock``) and ``_wb_done`` is a condition on it: a writer waits there for a
        # slot's device write in flight, which *releases the tree lock while waiting*
        # (``_reject_locked``, ``invalidate_area``, ``_write_staged``), so a caller must not
        # keep state it read under the lock across such a call. Writeback takes the lock
        # through ``_lock_for_reclaim`` only (``_reclaim_count``, a leaf lock, counts it as
        # waiting). Order: the tree lock first; then the compressor's locks: ``_ops_lock`` (one
        # submit/poll loop at a time; under it a loop hands on the ops it got back that are
        # async batches' to ``OpsInFlight._cv``, a leaf), then ``_serial`` (one thread at a
        # time in a directly called driver that is not ``concurrent``) or the watchdog's
        # lock, the software
        # decoder's (``_software_build``, ``_software_lock``) and ``_state`` (under it only
        # ``Compressor.failed``'s retry check takes the async pipeline's ``_cv``; nothing takes
        # ``_state`` while holding ``_cv``); then the driver's own locks: lz4-opencl's
        # ``_lock`` (one device launch at a time, taken by its calls and by its queue's worker
        # thread), 842-nx's ``FifoLock`` (one call at a time, in arrival order), and their
        # queues' conditions. A load decompresses under the tree lock, so it holds the tree
        # lock through every wait below it. ``_serial`` and ``_ops_lock`` are waited for as
        # long as the call holding them is within its own deadline
        # (``zswap.device_timeout_ms``; k of them for a pipeline call merging k batches),
        # re-checked as holders change: a load queued behind healthy calls waits for all of
        # them (no bound of its own), and behind one past its deadline (a stuck device) it is
        # refused at once (``driver_refused_stuck``; the load decodes in software or fails), so
        # one hung call holds it up at most the rest of that call's own deadline; a watched
        # call waits at most for the call ahead of it in the watchdog plus its own deadline,
        # and is refused at once behind a call given up on; ops get their deadline. Not bounded
        # by zswap's deadline: a trusted driver's call itself (made directly on the load's
        # thread, with no deadline: a ``poll`` that never returns hangs the load), and the
        # driver's own locks, waited for as the driver waits: lz4-opencl's ``_lock`` with no
        # timeout (e.g. for a launch of its queue's worker, which takes it without
        # ``_serial``); 842-nx's ``FifoLock`` at most its ``timeout_ms`` in a call (then a
        # DeviceError), about 1 ms in ``submit``/``poll`` (then BUSY, or nothing completed
        # yet). The async pipeline never holds its own lock while it calls back into the cache.
        self._trees: dict[int, ZswapTree] = {}
        self._lock = threading.Lock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._wb_done = threading.Condition(self._lock)
        #: writebacks waiting for the lock (see _lock_for_reclaim); its own lock keeps the count
        #: (a leaf: nothing is taken while it is held)
        self._reclaim_waiting = 0
        self._reclaim_count = threading.Lock()
        #: slots being written to the device: -> the entry's handle (writeback), or the
        #: ``_StagedBatch`` whose page it is (an async page rejected after its store returned)
        self._inflight: dict[tuple[int, int], int | _StagedBatch] = {}
        self._staged: dict[tuple[int, int], tuple[_StagedBatch, int]] = {}
        #: async: staged pages whose device write failed (kept in RAM), tried again at the
        #: next completion and at drain
        self._unwritten: dict[tuple[int, int], tuple[_StagedBatch, int]] = {}
        self._closed = False
        for name in _COUNTERS:
            setattr(self, name, 0)
        self._rejected = 0  # stores refused, for any reason (``stores`` = zswpout + this)
        self.outstanding_writebacks = 0
        #: the last device or decompression error writeback met (diagnostics)
        self.last_writeback_error: HwzswapError | None = None
        #: how async mode hands batches to the device (``queue``: :class:`OpsInFlight`,
        #: ``worker``: :class:`AsyncPipeline`); None in the other modes
        self.async_submit: str | None = (
            async_design(backend.name, comp.capabilities, policy.async_submit)
            if self.batching == "async" else None)
        self._pipeline: AsyncPipeline | OpsInFlight | None = (
            self._start_pipeline() if self.batching == "async" else None)
        self._background: BackgroundWriteback | None = None
        if policy.background_writeback:
            self._background = BackgroundWriteback(self)
            self._background.start()

    def _start_pipeline(self) -> AsyncPipeline | OpsInFlight:
        """``async`` mode's batches in flight, up to ``async_max_batches``, each completing in
        :meth:`_complete_async`, in the design :attr:`async_submit` names: on the device's
        own queue, submitted from the storing thread and polled later (``queue``:
        :class:`OpsInFlight`, no engine thread), or through its batch call on the pipeline's
        worker thread (``worker``: :class:`AsyncPipeline`)."""
        policy, comp = self.policy, self.compressor
        depth = policy.async_max_batches
        if depth == "auto":
            # four passes, more while they hold fewer pages than the device's preferred
            # batch, capped at what one call takes (max_batch) and at the pool limit
            # (staged copies are RAM too)
            depth = AUTO_ASYNC_BATCHES
            fill = min(x for x in (comp.preferred_batch, comp.max_batch,
                                   policy.max_pool_pages) if x is not None)
        else:
            fill = 0
        if self.async_submit == "queue":
            return OpsInFlight(comp, self._complete_async, depth, fill)
        # A call with a deadline of its own (a watched driver; ops under run_ops) counts its
        # own timeout: the pipeline's deadline is then a later backstop, not counted again.
        own = comp.watchdog is not None or self._compress_batch == comp.compress_ops
        pipeline = AsyncPipeline(
            self._compress_batch, self._complete_async, depth,
            2.0 * comp.timeout_s + 1.0 if own else comp.timeout_s,
            None if own else comp.note_timeouts, comp.max_batch,
            name=f"zswap-async-{self.backend.name}", fill_pages=fill,
            deadline=(f"a backstop: 2 x the call's own deadline ({comp.deadline_source}) "
                      f"+ 1 s, which did not end it" if own else comp.deadline_source))
        comp.stuck_checks.append(pipeline.stuck)
        return pipeline

    @property
    def async_last_error(self) -> str | None:
        """The last error an async completion raised (counted as ``async_completion_errors``;
        its batch's pages stay staged), or ``None``."""
        return self._pipeline.last_error if self._pipeline is not None else None

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
        """Compressed bytes held now (the pool's ``stored_bytes``)."""
        return self.pool.stored_bytes

    @property
    def pool_pages(self) -> int:
        """Pages the pool holds now."""
        return self.pool.total_pages()

    @property
    def accept_pages(self) -> int:
        """The accept threshold in pool pages (stores resume at or under it after the limit
        was hit; huge when there is no limit)."""
        return self._accept_pages

    # -- frontswap ops -------------------------------------------------------------------------

    def init(self, type: int, nr_pages: int) -> None:
        """Set up the index of swap ``type`` (swapon)."""
        if type.__class__ is not int or type < 0:
            raise SwapDeviceError(f"zswap init: swap type must be an int >= 0, got "
                                  f"{value_text(type)}")
        if nr_pages.__class__ is not int or not 1 <= nr_pages <= MAX_NR_PAGES:
            raise SwapDeviceError(f"zswap init: nr_pages must be an int 1..{MAX_NR_PAGES}, got "
                                  f"{value_text(nr_pages)}")
        with self._lock:
            self._check_open()
            if type in self._trees:
                raise SwapDeviceError(f"zswap init: swap type {type} is already initialised")
            self._trees[type] = ZswapTree(type, nr_pages)

    def store(self, type: int, offset: int, page: Any) -> bool:
        """Compress ``page`` into the pool as the entry for ``(type, offset)`` (one order-0
        folio). Returns ``False`` when a policy or a failure rejected it (counted by reason)."""
        tree, offset = self._slot(type, offset, "zswap store")
        if page.__class__ is not bytes or len(page) != PAGE_SIZE:
            page = _as_page(page)
        if self._pipeline is not None:
            arr = np.frombuffer(page, dtype=np.uint8).reshape(1, PAGE_SIZE)
            return self._store_async(tree, [offset], arr)[0]
        return self._store_page(tree, offset, page)

    def store_batch(self, type: int, offsets: Sequence[int], pages: np.ndarray,
                    folios: Sequence[int] | None = None) -> list[bool]:
        """Store a reclaim pass: ``pages`` an ``(N, 4096)`` uint8 array, one distinct offset
        each; ``folios`` the folio sizes (consecutive pages; ``None``: all order-0). How the
        batch reaches the compressor is the engine mode (module docstring). Returns one bool
        per page, as :meth:`store`."""
        tree = self._tree(type, "zswap store_batch")
        pages = check_pages(pages)
        offs = batch_offsets("zswap store_batch", type, offsets, tree.nr_pages, "a reclaim batch")
        n = len(pages)
        if len(offs) != n:
            raise InvalidInputError(
                f"zswap store_batch: {len(offs)} offsets for {n} pages (one offset per page)")
        groups = folio_groups(folios, n, "zswap store_batch")
        if n == 0:
            return []
        mode = self.batching
        if mode == "async":
            return self._store_async(tree, offs, pages, groups)
        if mode == "reclaim":
            return self._store_pages(tree, offs, pages, groups)
        results: list[bool] = []
        at = 0
        for size in groups if mode == "folio" else [1] * n:
            if size == 1:
                results.append(self._store_page(tree, offs[at], pages[at].tobytes()))
            else:
                results.extend(self._store_pages(tree, offs[at:at + size], pages[at:at + size]))
            at += size
        return results

    def load(self, type: int, offset: int) -> bytes | None:
        """The page stored for ``(type, offset)``, or ``None`` if zswap does not hold it.

        Raises :class:`CorruptDataError` when the object does not decompress to a page or
        fails a checksum (``decompress_fail``/``verify_fail``), :class:`DriverError` when the
        driver breaks the contract; the entry is kept and no data is returned.
        """
        tree, offset = self._slot(type, offset, "zswap load")
        self._acquire()
        try:
            return self._load_slot_locked(tree, offset, self._exclusive)
        finally:
            self._release()

    def load_batch(self, type: int, offsets: Sequence[int], *, keep: bool = False,
                   partial: bool = False) -> list[Any]:
        """The pages of a readahead cluster: one entry per offset, ``None`` where zswap does not
        hold the slot. The same as :meth:`load` on each offset in order (counters, and with
        ``exclusive_loads`` the hits freed), except that the compressed hits are decompressed
        together: one ``decompress_batch`` for a backend whose capabilities say ``batch`` (an
        offload device pays its round trip once per cluster). An item the device failed is
        retried on its own.

        An item that cannot be loaded (an object that does not decompress to its page, a
        device failure with no software decoder, a driver breaking the contract) is counted
        once, as :meth:`load` counts it, and keeps its entry. Then, by default, the call is
        all or nothing: it raises that item's error (the first in batch order) and nothing
        else changes, so every page is still loadable. With ``partial`` the result is per
        item instead, as each folio of a kernel readahead completes alone: the failed item's
        place holds its :class:`~hwzswap.errors.HwzswapError`, and every other item is
        loaded (counted, and freed with exclusive loads) as usual. (A batch call that breaks
        the contract as a whole raises :class:`~hwzswap.errors.DriverError` either way.)

        ``keep``: never free the hits, even with exclusive loads (the swap layer's first half
        of an exclusive readahead; it frees them with :meth:`drop_loaded` once its own device
        reads have succeeded too). The offsets must be distinct and in range.
        """
        tree = self._tree(type, "zswap load_batch")
        offs = batch_offsets("zswap load_batch", type, offsets, tree.nr_pages, "a readahead batch")
        return self._load_pages(tree, offs, self._exclusive and not keep, partial)

    def invalidate_page(self, type: int, offset: int) -> None:
        """Drop the entry for ``(type, offset)`` (its swap slot was freed). No entry: no-op."""
        tree, offset = self._slot(type, offset, "zswap invalidate_page")
        self._acquire()
        try:
            if self._staged and self._staged.pop((tree.type, offset), None) is not None:
                self.invalidates += 1
            entry = tree.pop(offset, None)
            if entry is not None:
                self.invalidates += 1
                self._free_locked(entry)
        finally:
            self._release()

    def drop_loaded(self, type: int, offsets: Sequence[int]) -> None:
        """Exclusive loads' second half: free the entries of slots just loaded with
        ``load_batch(..., keep=True)`` whose pages the caller now holds (not counted as
        invalidates). An entry writeback took meanwhile is gone already."""
        tree = self._tree(type, "zswap drop_loaded")
        offs = batch_offsets("zswap drop_loaded", type, offsets, tree.nr_pages, "a batch")
        with self._lock:
            staged = self._staged
            for off in offs:
                if staged:
                    staged.pop((tree.type, off), None)
                entry = tree.pop(off, None)
                if entry is not None:
                    self._free_locked(entry)

    def invalidate_area(self, type: int) -> None:
        """Drop every entry of swap ``type`` and its index (swapoff). Waits for device writes of
        that type still in flight (releasing the lock while it waits), so the caller may then
        close the device."""
        with self._lock:
            tree = self._trees.pop(type, None)
            if tree is None:
                return
            for key in [k for k in self._staged if k[0] == type]:
                del self._staged[key]
                self.invalidates += 1
            for entry in tree.values():
                self._free_locked(entry)
            self.invalidates += len(tree)
            tree.clear()
            while any(key[0] == type for key in self._inflight):
                self._wb_done.wait()

    def drain(self) -> None:
        """Wait until no compression is in flight (``async`` mode; a no-op in the others):
        every page stored so far is then in the pool or on the swap device, except one whose
        device write failed (``async_write_fail`` counts such pages): it stays staged, in RAM
        and loadable, and its write is tried again here and at each later completion, as the
        kernel redirties a page whose swap write failed."""
        if self._pipeline is not None:
            self._pipeline.drain()
            self._retry_unwritten()

    # -- the tree lock -------------------------------------------------------------------------

    def _lock_for_reclaim(self) -> None:
        """Take the lock for writeback, counted in ``_reclaim_waiting`` while it waits: a
        store the full pool refuses lets it in first (:meth:`_yield_to_reclaim`)."""
        with self._reclaim_count:
            self._reclaim_waiting += 1
        try:
            self._acquire()
        finally:
            with self._reclaim_count:
                self._reclaim_waiting -= 1

    def _yield_to_reclaim(self) -> None:
        """A store the full pool refused: while a writeback waits for the lock, give it the
        lock (sleeping releases the GIL and leaves the lock free), up to RECLAIM_TURN_S. Lock
        not held."""
        if not self._reclaim_waiting:
            return
        deadline = time.monotonic() + RECLAIM_TURN_S
        while self._reclaim_waiting and time.monotonic() < deadline:
            time.sleep(_RECLAIM_TURN_POLL_S)

    # -- the store step ------------------------------------------------------------------------

    def _store_page(self, tree: ZswapTree, offset: int, page: bytes) -> bool:
        """Store one page with one compress call (``page`` 4096 ``bytes``)."""
        # The gate: max_pool_pages normally, 0 while the hysteresis holds, -1 while disabled.
        # It comes before the same-filled test, as zswap_check_limits() did in the kernels
        # that had same_filled_pages (4.16-6.10): at the limit a same-filled page is refused.
        if self.pool.pages >= self._limit_gate:
            ok, why = self._check_limits()
            if not ok:
                return self._reject(tree, offset, why)
        # Same-filled: the batch's scan on a one-page buffer (one byte compare first rules
        # out most other pages: a same-filled page repeats its first byte at 4088).
        if page[4088] == page[0] and self._same_filled:
            same = same_filled_pages(page)
            if same:
                return self._store_same_filled(tree, offset, same[0][1])
        try:
            data = self._compress(page)
        except HwzswapError as exc:
            self.compressor.note_error(exc)
            return self._reject(tree, offset, "reject_compress_fail")
        if data is None or len(data) > self._max_len:
            return self._reject(tree, offset, "reject_compress_poor")
        csum = None if self._csums is None else (_crc32(data),)
        pcsum = None if self._pcsums is None else (_crc32(page),)
        self._acquire()
        try:
            handle = self.pool.malloc_write(data)
            self._insert_locked(tree, (offset,), (handle,), csum, pcsum)
            return True
        except PoolAllocError:
            pass
        finally:
            self._release()
        got = self._alloc_after_reclaim(data)
        if got.__class__ is str:
            return self._reject(tree, offset, got)  # type: ignore[arg-type]
        with self._lock:
            self._insert_locked(tree, (offset,), (got,), csum, pcsum)  # type: ignore[arg-type]
        return True

    def _store_pages(self, tree: ZswapTree, offs: list[int], pages: np.ndarray,
                     groups: list[int] | None = None) -> list[bool]:
        """Store a batch with one compress call (``pages`` checked, one offset each;
        ``groups``: its folio sizes, ``None``: one folio)."""
        results = [False] * len(pages)
        todo, idx, words, fwords = self._admit(tree, offs, pages, results, groups)
        if not idx:
            return results
        # verify_pages: the CRCs of the pages as given, before the driver sees them (it gets
        # them read-only; a CRC taken after the call would bless what a driver wrote there)
        pcsums = None if self._pcsums is None else _page_crcs(todo, idx)
        try:
            batch = self._compress_batch(todo)
        except HwzswapError as exc:  # a DriverError: the whole result is unusable
            self.compressor.note_error(exc)
            for i in idx:
                self._reject(tree, offs[i], "reject_compress_fail")
            for i, _ in words:  # their folios had pages that failed
                self._reject(tree, offs[i], "reject_folio")
            return results
        if len(idx) < len(todo):  # the batch went whole: drop its same-filled pages' items
            batch = batch.take(idx)
        at = idx + [i for i, _ in words] if words else idx  # each item's batch position
        stored, _ = self._commit(tree, [offs[i] for i in at], pcsums, batch, None,
                                 _staged_groups(groups or [len(pages)], idx), fwords)
        for k in stored:
            results[at[k]] = True
        return results

    def _admit(self, tree: ZswapTree, offs: list[int], pages: np.ndarray,
               results: list[bool], groups: list[int] | None = None) -> _Admitted:
        """A batch store's first half, through :meth:`_store_page`'s gate: the pool limit
        (reclaiming as ``_check_limits`` does; while disabled it refuses every folio,
        uncounted), then keep same-filled pages as their word (the limit first, as
        zswap_check_limits() came before the same-filled test in the kernels that had it,
        4.16-6.10: a refused folio's same-filled pages are refused too). Returns what is left
        for the store's second half (:class:`_Admitted`; nothing when ``idx`` is empty).

        The limit is checked folio by folio (``groups``: the folio sizes; ``None``: the batch
        is one folio), as the kernel's zswap_store checks each folio of a reclaim pass: each
        refused folio has reclaimed (one writeback batch) before the next is checked, and
        from the first folio the pool has room for, the rest of the pass is compressed (and
        checked again, folio by folio, as it goes into the pool: :meth:`_commit`). (One check
        for the whole pass refused it all on one writeback: under pressure the batched modes
        refused about half of all stores, page mode 4 %.)"""
        start = 0
        if self.pool.pages >= self._limit_gate:  # always while disabled: each folio refused
            start, why = self._first_admitted(groups or [len(pages)])
            for i in range(start):
                self._reject(tree, offs[i], why)
            if start == len(pages):
                return _Admitted(pages[:0], [], [])
        return self._same_filled_split(tree, offs, pages, results, groups, start)

    def _first_admitted(self, groups: list[int]) -> tuple[int, str | None]:
        """The pool is at its limit: check it folio by folio (``groups``: the folio sizes), as
        the kernel's zswap_store checks each folio, each refused folio reclaiming before the
        next is checked. Returns the position of the first folio the pool has room for (the
        batch's length: none) and why the ones before it were refused."""
        start, why = 0, None
        for size in groups:
            ok, reason = self._check_limits()
            if ok:
                break
            start, why = start + size, reason  # the refusals' reason, not the pass's None
        return start, why

    def _same_filled_split(self, tree: ZswapTree, offs: list[int], pages: np.ndarray,
                           results: list[bool], groups: list[int] | None, start: int = 0
                           ) -> _Admitted:
        """Sort a batch's same-filled pages from position ``start`` on (the pool limit
        admitted those; ``groups``: the batch's folio sizes, ``None``: one folio). A folio
        whose pages are all same-filled (an order-0 one included) is stored now, as words:
        nothing can refuse it any more. The same-filled pages of a folio that also has pages
        to compress wait for its verdict (a large folio is stored all or nothing:
        :meth:`_commit`). Returns the pages to compress, their positions and the pages that
        wait.

        For a codec on the host's CPU, when same-filled pages are under a quarter of the batch,
        the pages to compress are the batch itself, unchanged (copying the other rows out costs
        more than compressing a few same-filled pages), and the caller drops their results by
        position; so the array may be longer than the list of positions. A device never gets
        them: each would be a request of its own and modelled time the kernel's zswap never
        sends it (842-nx served 20 requests for a pass of 18 pages to compress in folio and
        reclaim mode, 18 in page mode)."""
        n = len(pages)
        rest = pages[start:] if start else pages
        same = same_filled_pages(rest) if self._same_filled else None
        if not same:
            return _Admitted(rest, list(range(start, n)), [])
        now: list[tuple[int, bytes]] = []
        later: list[tuple[int, bytes]] = []
        fwords: _FolioWords = {}
        if groups is not None and len(groups) == n:  # all order-0: each is a whole folio
            now = [(i + start, word) for i, word in same]
        else:
            groups = groups or [n]
            ends = list(accumulate(groups))
            folio = [bisect_right(ends, i + start) for i, _ in same]
            count: dict[int, int] = {}
            for f in folio:
                count[f] = count.get(f, 0) + 1
            wholly = sorted(f for f, c in count.items() if c == groups[f])
            # a held-back page's folio among those with pages to compress: the folios refused
            # before start and the wholly same-filled ones have none
            refused = bisect_right(ends, start)
            to_compress = n - start - len(same)  # the held-back pages are numbered after these
            for (i, word), f in zip(same, folio):
                if count[f] == groups[f]:
                    now.append((i + start, word))
                else:
                    later.append((i + start, word))
                    # f among the folios with pages to compress: less the folios refused
                    # before start and the wholly same-filled ones before it
                    among = f - refused - bisect_left(wholly, f)
                    fwords.setdefault(among, []).append((to_compress + len(later) - 1, word))
        for i, word in now:
            results[i] = self._store_same_filled(tree, offs[i], word)
        keep = np.zeros(n, dtype=bool)
        keep[start:] = True
        keep[[i + start for i, _ in same]] = False
        idx = keep.nonzero()[0].tolist()
        whole = not start and len(same) * 4 < n and self.compressor.on_host
        return _Admitted(pages if whole else pages[keep], idx, later, fwords or None)

    def _commit(self, tree: ZswapTree, offs: list[int], pcsums: list[int] | None,
                batch: CompressedBatch, staged: _StagedBatch | None = None,
                groups: list[int] | None = None, words: _FolioWords | None = None
                ) -> tuple[list[int], list[int]]:
        """The store's second half, for a compressed batch: each folio whose pages all
        compressed well goes into the pool and the index; the others are rejected; one the
        pool has no room for is retried after a writeback. ``offs``: the items' slots, the
        batch's items first; ``pcsums`` (``verify_pages``): their pages' CRCs; ``words``: the
        same-filled pages of the folios (folio index -> ``(item, word)``, items numbered after
        the batch's), stored or refused with their folio. Returns the items stored and the
        items rejected (indices).

        A folio of several pages (``groups``: the folio sizes of the batch's items; ``None``:
        one folio) is stored all or nothing, as today's zswap_store() stores a large folio
        (6.13+): when one of its pages is rejected (compression failed or too poor, no pool
        room, the limit), none of them stays in zswap and every page of it goes to the swap
        device. The page that failed is counted under its reason, the others as
        ``reject_folio``, except at the limit check, which refuses the folio before any of it
        is stored: each page then counts under that reason, as every page of an order-0 folio
        does.

        The pool limit is checked before each folio goes in, as the kernel's zswap_store
        checks each folio: a folio that finds the pool at its limit reclaims, and is refused
        if that did not make room. A batch whose objects fit well under the limit goes in
        with one batch write. (Checked only before compression, a reclaim pass went in whole:
        61 pages past a 176-page limit where page mode went 7.)

        ``staged`` (async mode): the items are that batch's staged pages. Only those still
        staged as such are committed (an invalidate, a newer store or an exclusive load may
        have taken one meanwhile; it is then in neither list), and a rejected one stays staged
        for the caller to write to the device."""
        status, sizes = batch.status, batch.sizes
        good = (status == _OK) & (sizes <= self._max_len)
        n = len(good)
        p = _Landing(tree, offs, pcsums, batch, staged, _spans(groups or [n]), words)
        stored: list[int] = []
        rejected: list[int] = []
        folios = list(range(len(p.spans)))
        if not good.all():  # a folio with a page that did not compress (well) is refused whole

            def why_of(k: int) -> str:
                if k >= n or good[k]:
                    return "reject_folio"
                return "reject_compress_fail" if status[k] == _FAILED else "reject_compress_poor"

            whole = []
            for f, (lo, hi) in enumerate(p.spans):
                if good[lo:hi].all():
                    whole.append(f)
                else:
                    self._refuse(p, f, rejected, why_of)
            folios = whole
            if not folios:
                return stored, rejected
        if self.pool.pages + n * _OBJECT_PAGES < self._limit_gate:  # far under it: at once
            self._commit_folios(p, folios, stored, rejected)
            return stored, rejected
        spans = p.spans
        at = 0
        while at < len(folios):
            room = self._limit_gate - self.pool.pages
            if room <= 0:  # at the limit: this folio reclaims, and goes in only if that helped
                ok, why = self._check_limits("store" if staged is None else "landing")
                if not ok:
                    self._refuse(p, folios[at], rejected, lambda k: why)
                    at += 1
                    continue
                room = self._limit_gate - self.pool.pages
            # Under the limit, the next folio goes in (its check passes), and with it the
            # folios after it that cannot take the pool to the limit: one batch write.
            lo, hi = spans[folios[at]]
            count, end = hi - lo, at + 1
            while end < len(folios):
                lo, hi = spans[folios[end]]
                if (count + hi - lo) * _OBJECT_PAGES >= room:
                    break
                count, end = count + hi - lo, end + 1
            self._commit_folios(p, folios[at:end], stored, rejected)
            at = end
        return stored, rejected

    def _folios_words_locked(self, p: _Landing, folios: list[int]) -> list[tuple[int, bytes]]:
        """The same-filled pages of ``folios`` (those still staged, in async mode). Lock
        held."""
        if not p.words:
            return []
        if len(folios) == len(p.spans):  # all of them
            words = [kw for ws in p.words.values() for kw in ws]
        else:
            words = [kw for f in folios for kw in p.words.get(f, ())]
        if words and p.staged is not None:
            words = [kw for kw in words if self._is_staged_locked(p.staged, kw[0])]
        return words

    def _refuse(self, p: _Landing, f: int, rejected: list[int],
                why_of: Callable[[int], str | None]) -> None:
        """Refuse folio ``f`` of a pass whole: each of its pages (those still staged, in async
        mode) counted under ``why_of(item)`` and appended to ``rejected``. None of it is in
        the index (:meth:`_commit_folios` indexes whole folios only), and the slots' older
        entries are dropped (the kernel's check_old)."""
        staged = p.staged
        lo, hi = p.spans[f]
        with self._lock:
            ks = list(range(lo, hi))
            ks.extend(k for k, _ in self._folios_words_locked(p, [f]))
            for k in ks:
                if staged is None or self._is_staged_locked(staged, k):
                    self._reject_locked(p.tree, p.offs[k], why_of(k),
                                        keep_staged=staged is not None)
                    rejected.append(k)

    def _commit_folios(self, p: _Landing, folios: list[int], stored: list[int],
                       rejected: list[int]) -> None:
        """Whole folios of a pass (every page compressed well) into the pool and the index:
        one batch write under the lock, and the folios it held indexed at once. When the pool
        stops the write, the folio it stopped in and those after it have their remaining
        objects retried one by one after a writeback (:meth:`_alloc_after_reclaim`); each
        folio is indexed only once all its objects are in the pool, and one that does not fit
        is refused whole, its objects freed (today's zswap_store drops the stored pages of a
        large folio it could not store whole). Appends to ``stored``/``rejected``."""
        staged, spans, batch = p.staged, p.spans, p.batch
        first, last = spans[folios[0]][0], spans[folios[-1]][1]
        if folios[-1] - folios[0] + 1 == len(folios):  # consecutive folios
            items = np.arange(first, last)
        else:
            items = np.concatenate([np.arange(*spans[f]) for f in folios])
        self._acquire()
        try:
            if staged is not None:
                items = items[np.fromiter((self._is_staged_locked(staged, k)
                                           for k in items.tolist()), dtype=bool,
                                          count=len(items))]
            handles = self.pool.malloc_write_batch(batch.buffer, batch.offsets, batch.sizes,
                                                   items)
            ks = items.tolist()
            if len(handles) == len(ks):  # all of it: every folio goes in
                cut, done = len(folios), len(ks)
            else:  # the folio the write stopped in, and those after it, wait
                stop = ks[len(handles)]
                cut = next(c for c, f in enumerate(folios) if stop < spans[f][1])
                done = int(np.searchsorted(items, spans[folios[cut]][0]))
            words = self._folios_words_locked(p, folios[:cut]) if p.words else []
            self._index_locked(p, ks[:done], handles[:done], words)
            stored.extend(ks[:done])
            stored.extend(k for k, _ in words)
        finally:
            self._release()
        if cut == len(folios):
            return
        pending = dict(zip(ks[done:], handles[done:]))
        rest, r, retried = ks[done:], 0, False
        for f in folios[cut:]:
            hi = spans[f][1]
            got: dict[int, int] = {}
            refused: tuple[int, str] | None = None
            while r < len(rest) and rest[r] < hi:  # this folio's objects
                k = rest[r]
                r += 1
                if refused is not None:
                    continue
                h = pending.get(k)
                if h is None:
                    h = self._alloc_after_reclaim(batch.item_bytes(k),
                                                  None if staged is None else (staged, k),
                                                  after_reclaim=retried)
                    retried = True
                    if h is None:  # no longer staged: nothing to store
                        continue
                    if h.__class__ is str:
                        refused = (k, h)  # type: ignore[assignment]
                        continue
                got[k] = h  # type: ignore[assignment]
            if refused is not None:
                with self._lock:
                    for h in got.values():
                        self._pool_free(h)
                bad, why = refused
                self._refuse(p, f, rejected, lambda k: why if k == bad else "reject_folio")
                continue
            with self._lock:  # the folio is whole in the pool: index what is still staged
                objs = [k for k in got if staged is None or self._is_staged_locked(staged, k)]
                if len(objs) < len(got):
                    for k in got.keys() - set(objs):
                        self._pool_free(got[k])
                words = self._folios_words_locked(p, [f])
                self._index_locked(p, objs, [got[k] for k in objs], words)
                stored.extend(objs)
                stored.extend(k for k, _ in words)

    def _index_locked(self, p: _Landing, objs: list[int], handles: Sequence[int],
                      words: list[tuple[int, bytes]]) -> None:
        """Index whole folios of a pass: items ``objs`` as the pool objects ``handles`` (with
        their checksums), and their same-filled pages as their words. Lock held."""
        landing = p.staged is not None
        if objs:
            csums = (None if self._csums is None
                     else [_crc32(p.batch[k]) for k in objs])  # type: ignore[arg-type]
            pcs = None if p.pcsums is None else [p.pcsums[k] for k in objs]
            self._insert_locked(p.tree, [p.offs[k] for k in objs], handles, csums, pcs,
                                landing)
        if words:
            self._insert_locked(p.tree, [p.offs[k] for k, _ in words],
                                [word for _, word in words], None, None, landing)

    def _set_gates(self) -> None:
        """Recompute the hot path's flags from ``_enabled`` and ``_reached_full``."""
        self._same_filled = self._enabled and self.policy.same_filled_pages
        if not self._enabled:
            self._limit_gate = -1
        else:
            self._limit_gate = 0 if self._reached_full else self._max_pages

    def _check_limits(self, check: _LimitCheck = "store") -> tuple[bool, str | None]:
        """The kernel's ``zswap_check_limits`` plus reclaim: may this store go ahead?

        Disabled: no (and no counter). At the limit: ``pool_limit_hit`` and the hysteresis
        starts. While it holds, reclaim (write back a batch here, or wake the background thread
        unless it is paused) and accept again only once the pool is at or under the accept
        threshold. ``check`` says whose check it is: a ``"store"``'s; a folio of an async pass
        ``"landing"`` (the second half of stores admitted while zswap was enabled, so not
        refused for being disabled now); or ``"reclaim"``, no store's at all (a completion that
        took the pool to its limit reclaiming), which is not counted in ``pool_limit_hit``:
        that counts the checks of stores and of folios landing that found the pool at its
        limit.
        """
        with self._lock:
            if not self._enabled and check == "store":
                return False, None
            cur = self.pool.total_pages()
            if cur >= self._max_pages:
                if check != "reclaim":
                    self.pool_limit_hit += 1
                self._set_full(True)
            elif self._reached_full and cur <= self._accept_pages:
                self._set_full(False)
            if not self._reached_full:
                return True, None
        bg = self._background
        if bg is not None and bg.wake(RECLAIM_TURN_S):  # let it start (BackgroundWriteback.wake)
            self._yield_to_reclaim()
            written = -1
        else:  # no thread, it is paused (background_paused), or it died (close raises its
            # error): reclaim here, as with no thread
            written = self.writeback(self.policy.writeback_batch)
        with self._lock:
            cur = self.pool.total_pages()
            # the accept threshold is always under the limit (config.accept_pages)
            if self._reached_full and cur <= self._accept_pages:
                self._set_full(False)
            if not self._reached_full:
                return True, None
        return False, ("reject_reclaim_fail" if written == 0 else "reject_pool_limit")

    def _set_full(self, full: bool) -> None:
        """Enter or leave the hysteresis (the kernel's ``zswap_pool_reached_full``)."""
        self._reached_full = full
        self._set_gates()

    def _store_same_filled(self, tree: ZswapTree, offset: int, word: bytes) -> bool:
        with self._lock:
            self._insert_locked(tree, (offset,), (word,), None, None)
        return True

    def _insert_locked(self, tree: ZswapTree, offs: Sequence[int], entries: Sequence[Entry],
                       csums: Sequence[int] | None, pcsums: Sequence[int] | None,
                       landing: bool = False) -> None:
        """Index new entries for ``offs`` (the store's insert step, the only one: one page or
        whole folios): all pool objects (``entries`` their handles, with their checksums) or
        all same-filled words (no checksums). Each replaces what its slot held
        (:meth:`_drop_older_locked`). ``landing``: these are the slots' staged pages
        completing (async), not newer pages. Lock held."""
        for off, entry in zip(offs, entries):
            self._drop_older_locked(tree, off, landing)
            tree[off] = entry
        if entries and entries[0].__class__ is bytes:
            self.same_filled_pages += len(entries)
        if csums is not None:
            self._csums.update(zip(entries, csums))  # type: ignore[union-attr,arg-type]
        if pcsums is not None:
            self._pcsums.update(zip(entries, pcsums))  # type: ignore[union-attr,arg-type]
        self.zswpout += len(entries)

    def _drop_older_locked(self, tree: ZswapTree, offset: int, landing: bool = False) -> None:
        """A newer page for a slot: its entry and its staged page in flight (async) are
        dropped, each counted in ``duplicate_entry`` as the kernel counts the old entry its
        store replaces; ``landing``: the staged page is the one being stored, no duplicate.
        Lock held."""
        old = tree.pop(offset, None)
        if old is not None:
            self.duplicate_entry += 1
            self._free_locked(old)
        if self._staged and self._staged.pop((tree.type, offset), None) is not None:
            self.duplicate_entry += not landing

    def _free_locked(self, entry: Entry) -> None:
        """Release an entry's pool object (or same-filled count). Lock held."""
        if entry.__class__ is int:
            self._pool_free(entry)
            if self._csums is not None:
                del self._csums[entry]  # type: ignore[arg-type]
            if self._pcsums is not None:
                del self._pcsums[entry]  # type: ignore[arg-type]
        else:
            self.same_filled_pages -= 1

    def _alloc_after_reclaim(self, data: Any, staged: tuple[_StagedBatch, int] | None = None,
                             after_reclaim: bool = False) -> int | str | None:
        """The pool refused an object: write back a batch (v9), retry once. Returns the new
        object's handle (not indexed yet: the caller indexes it, or frees it when its folio is
        refused), or why it was refused (``reject_reclaim_fail``: nothing could be written
        back; ``reject_alloc_fail``). ``after_reclaim``: a later item of a batch write that
        stopped; an earlier item's reclaim may have made room, so the pool is tried first and
        reclaim comes only if it refuses (reclaiming before every such retry wrote back a
        batch per item left: one pass at the allocator's limit wrote back 352 entries to
        store 26 pages). ``staged`` (async): the staged page it is; ``None`` is returned, and
        nothing allocated, when that page is no longer staged (invalidated or replaced)."""
        written = None if after_reclaim else self.writeback(self.policy.writeback_batch)
        while True:
            with self._lock:
                if staged is not None and not self._is_staged_locked(*staged):
                    return None
                try:
                    return self.pool.malloc_write(data)
                except PoolAllocError:
                    if written is not None:
                        return "reject_reclaim_fail" if written == 0 else "reject_alloc_fail"
            written = self.writeback(self.policy.writeback_batch)

    def _reject(self, tree: ZswapTree, offset: int, why: str | None) -> bool:
        with self._lock:
            self._reject_locked(tree, offset, why)
        return False

    def _reject_locked(self, tree: ZswapTree, offset: int, why: str | None,
                       keep_staged: bool = False) -> None:
        """Count the rejection, drop any older entry for the offset (the kernel's check_old:
        the caller is writing a newer page to the device, the old one must not come back),
        and wait until no device write of this slot is in flight, so the caller's write lands
        after it (the wait releases the lock: what the caller read under it may have
        changed). ``keep_staged``: an async completion rejecting its own staged page, which
        stays loadable until its device write (``_write_staged``) is done."""
        self._rejected += 1
        if why is not None:
            setattr(self, why, getattr(self, why) + 1)
        old = tree.pop(offset, None)
        if old is not None:
            self._free_locked(old)
        if keep_staged:
            return
        key = (tree.type, offset)
        if self._staged:
            self._staged.pop(key, None)
        if self._inflight:
            while key in self._inflight:
                self._wb_done.wait()

    # -- async mode ----------------------------------------------------------------------------

    def _store_async(self, tree: ZswapTree, offs: list[int], pages: np.ndarray,
                     groups: list[int] | None = None) -> list[bool]:
        """Stage a reclaim batch and hand it to the device without waiting for it (the
        pipeline's worker, or the device's own queue). Lock not held: the hand-off may run
        completions, which take it."""
        results = [False] * len(pages)
        _, idx, words, fwords = self._admit(tree, offs, pages, results, groups)
        if not idx:
            return results
        at = idx + [i for i, _ in words] if words else idx
        # its own copy of every page staged (the driver's input, what loads read meanwhile,
        # and what goes to the device if it is refused when the pass lands): the pages to
        # compress, then the same-filled pages held back with their folios (never compressed)
        rows = pages[at] if len(at) < len(pages) or words else np.array(pages, copy=True)
        rows.flags.writeable = False
        device = rows[:len(idx)] if words else rows
        staged = _StagedBatch(tree.type, [offs[i] for i in at], rows,
                              _staged_groups(groups or [len(pages)], idx),
                              None if self._pcsums is None else list(map(_crc32, device)),
                              fwords)
        with self._lock:
            for k, off in enumerate(staged.offs):
                self._drop_older_locked(tree, off)
                self._staged[(tree.type, off)] = (staged, k)
        for i in at:
            results[i] = True
        assert self._pipeline is not None
        self._pipeline.submit(staged, device)
        return results

    def _complete_async(self, staged: _StagedBatch, batch: CompressedBatch) -> None:
        """A staged batch's compression completed (or failed, or timed out): the store's second
        half for the pages still staged; the rejected ones go to the device from their copies.
        Staged pages whose device write failed before are tried again first.

        Completions may run at once on two threads, in any order (after a timeout the late
        batch completes on whichever thread noticed it, beside the new worker): each page
        lands under the lock, and only while it is still its slot's staged page, so a newer
        page of the slot always wins."""
        if self._unwritten:
            self._retry_unwritten()
        tree = self._trees.get(staged.type)
        if tree is None:  # swapoff meanwhile: its staged pages are gone
            with self._lock:
                self.staged_dropped += len(staged.offs)
            return
        # The limit was checked when the batch was staged, but batches in flight then were not
        # in the pool yet: each landing at once would take it far past its limit (lz4 pressure:
        # 202 pages against 74). So it is checked again as the batch lands, folio by folio as
        # a store is (_admit): the folios the pool has no room for, after the same reclaim,
        # are refused and go to the device.
        stored, rejected = self._commit(tree, staged.offs, staged.pcsums, batch, staged,
                                        staged.groups, staged.words)
        with self._lock:
            # the rest were freed, replaced or loaded (exclusively) while in flight: each
            # page staged ends in exactly one of zswpout, a reject_* or here
            self.staged_dropped += len(staged.offs) - len(stored) - len(rejected)
        if rejected:
            self._write_staged(staged, rejected)
        # A completion that took the pool to its limit reclaims as a store at the limit does
        # (one writeback batch, or the background thread woken), not only at a later store
        # that may never come.
        if self.pool.pages >= self._limit_gate:
            self._check_limits("reclaim")

    def _is_staged_locked(self, staged: _StagedBatch, k: int) -> bool:
        """Whether page ``k`` of ``staged`` is still the slot's staged page. Lock held."""
        st = self._staged.get((staged.type, staged.offs[k]))
        return st is not None and st[0] is staged and st[1] == k

    def _write_staged(self, staged: _StagedBatch, ks: list[int], again: bool = False) -> int:
        """Rejected after the store returned: write the staged pages to the swap device (in
        flight like a writeback, so a newer device write of the slot waits for it), then drop
        them from the staged set; a failed write keeps the page staged (in RAM), to be tried
        again (``again``: this is such a try; the page was counted in ``async_write_fail``
        already). Returns how many writes the device failed.

        One page at a time: a slot is marked in flight only while its own write runs, never
        while waiting for another slot (two completions writing the same slots in opposite
        order, each holding one and waiting for the other, hung for good)."""
        target = self.writeback_target
        assert target is not None
        type_ = staged.type
        failed = 0
        for k in ks:
            key = (type_, staged.offs[k])
            with self._lock:
                while key in self._inflight and self._is_staged_locked(staged, k):
                    self._wb_done.wait()
                if not self._is_staged_locked(staged, k):
                    # freed, stored again or loaded (exclusive) meanwhile: never written
                    self.async_write_skipped += 1
                    continue
                self._inflight[key] = staged
            ok = retry = False
            try:
                target.write_page(type_, staged.offs[k], staged.pages[k].tobytes())
                ok = True
            except HwzswapError as exc:  # the device failed: tried again later
                self.last_writeback_error = exc
                retry = True
                failed += 1
            finally:  # (anything else is a bug: raised, counted by the pipeline, not retried)
                with self._lock:
                    del self._inflight[key]
                    if self._is_staged_locked(staged, k):
                        if ok:
                            del self._staged[key]
                        else:
                            self.async_write_fail += not again
                            if retry:
                                self._keep_unwritten_locked(staged, k)
                    self._wb_done.notify_all()
        return failed

    def _retry_unwritten(self) -> None:
        """Try again the device writes of staged pages that failed (async): one first, the
        rest only if it went through. (Retrying every such page at every completion and
        drain, while the swap file stayed full, cost writes growing with the square of the
        batches.) Such a page freed, stored again or loaded (exclusive) since is never written:
        counted in ``async_write_skipped`` (its store counted under a ``reject_*`` and in
        ``async_write_fail``, never in ``pswpout``)."""
        with self._lock:
            todo = []
            for st in self._unwritten.values():
                if self._is_staged_locked(*st):
                    todo.append(st)
                else:
                    self.async_write_skipped += 1
            self._unwritten.clear()
        if todo and self._write_staged(todo[0][0], [todo[0][1]], again=True):
            with self._lock:  # the device still fails: the rest wait for the next try
                for st in todo[1:]:
                    self._keep_unwritten_locked(*st)
            return
        for staged, k in todo[1:]:
            self._write_staged(staged, [k], again=True)

    def _keep_unwritten_locked(self, staged: _StagedBatch, k: int) -> None:
        """Keep page ``k`` of ``staged``, whose device write failed, for the next try. A slot
        holds one such page: of two (an older one replaced meanwhile, then the newer one's
        write failed too), one is no longer staged, never written: counted in
        ``async_write_skipped`` now, and the other kept. Lock held."""
        key = (staged.type, staged.offs[k])
        old = self._unwritten.get(key)
        if old is not None and (old[0] is not staged or old[1] != k):
            self.async_write_skipped += 1  # at most one of the two is the slot's staged page
            if self._is_staged_locked(*old):
                return  # the one kept is that one
        self._unwritten[key] = (staged, k)

    # -- the load step -------------------------------------------------------------------------

    def _load_slot_locked(self, tree: ZswapTree, offset: int, free: bool, page: Any = None
                          ) -> bytes | None:
        """The load step, the only one: one slot, lock held throughout (nothing can free or
        move its object while it is decompressed; a device op given up at its deadline may keep
        its view longer: see the module docstring). :meth:`load` is this step for one page; a
        readahead cluster (:meth:`_load_pages`) is this step for each of its pages in order.

        1. A page in flight (async) comes from its staged copy (``loads_staged``).
        2. Else the slot's entry: none is a miss (``loads_miss``); a same-filled word is
           repeated, a pool object decompressed and checked by :meth:`_page_locked`, which
           counts a failure and raises it (nothing else counted, the entry kept). ``page``:
           the object's page, decompressed already with the rest of its cluster.
        3. A hit is counted (``loads_hit``) and, with ``free`` (exclusive loads), what it
           was loaded from is dropped: the staged page, or the entry and its object.
        """
        if self._staged:
            key = (tree.type, offset)
            st = self._staged.get(key)
            if st is not None:
                self.loads_hit += 1
                self.loads_staged += 1
                if free:
                    del self._staged[key]
                return st[0].pages[st[1]].tobytes()
        entry = tree.get(offset)
        if entry is None:
            self.loads_miss += 1
            return None
        if page is None:
            page = self._page_locked(tree, offset, entry)
        self.loads_hit += 1
        if free:
            del tree[offset]
            self._free_locked(entry)
        return page

    def _page_locked(self, tree: ZswapTree, offset: int, entry: Entry) -> bytes:
        """The page of an entry (lock held): the same-filled word repeated, or the object
        decompressed straight from the pool and checked. Failures are counted and raised."""
        if entry.__class__ is not int:
            return _ZERO_PAGE if entry == _ZERO_WORD else entry * _WORDS  # type: ignore[operator]
        data = self._pool_view(entry)
        try:
            if self._csums is not None:
                self._verify_object_locked(tree, offset, entry, data)
            try:
                page = self._decompress_or_software(data)
            except DriverError:
                self.decompress_fail += 1
                raise
            except DeviceError as exc:  # the device failed, and software does not decode it
                self.decompress_fail += 1
                raise DeviceError(
                    f"zswap: load of swap type {tree.type} offset {offset}: the device "
                    f"failed ({exc}) and no software decoder of its format is known; the "
                    f"entry is kept, no data was returned") from exc
            except HwzswapError as exc:
                self.decompress_fail += 1
                raise self._corrupt(tree, offset, data, exc) from exc
            if self._pcsums is not None:
                self._verify_page_locked(tree, offset, entry, page)
            return page
        finally:
            del data  # the view must not outlive the lock

    def _load_pages(self, tree: ZswapTree, offs: list[int], free: bool, partial: bool
                    ) -> list[Any]:
        """load_batch's body (``offs`` checked; ``free``: exclusive loads): the load step
        (:meth:`_load_slot_locked`) for each slot in order, under one hold of the lock. The
        one difference from looped loads: the cluster's pool objects are decompressed first,
        together (:meth:`_decompress_many_locked`), so a failed one is known before any slot
        is counted or freed: all or nothing, that item's error raised; with ``partial`` its
        place holds the error and the other slots go through the step."""
        n = len(offs)
        out: list[Any] = [None] * n
        failed: set[int] = set()
        step = self._load_slot_locked
        self._acquire()
        try:
            # the pool objects, but not the slots whose staged copies step 1 will serve
            entries = list(map(tree.get, offs))
            at = [i for i, e in enumerate(entries) if e.__class__ is int]
            if at and self._staged:
                type_, staged = tree.type, self._staged
                at = [i for i in at if (type_, offs[i]) not in staged]
            if at:
                if len(at) == n:  # the usual cluster: every slot a pool object
                    out, bad = self._decompress_many_locked(tree, offs, entries)
                else:
                    pages, bad = self._decompress_many_locked(tree, [offs[i] for i in at],
                                                              [entries[i] for i in at])
                    for k, i in enumerate(at):
                        out[i] = pages[k]  # a page for the step, or the error it raised
                if bad:
                    if not partial:
                        raise out[at[bad[0]]]
                    failed = {at[k] for k in bad}
            for i, off in enumerate(offs):
                if i not in failed:
                    out[i] = step(tree, off, free, out[i])
        finally:
            self._release()
        return out

    def _decompress_many_locked(self, tree: ZswapTree, offs: list[int], handles: list[int]
                                ) -> tuple[list[Any], list[int]]:
        """The pages of several pool objects (lock held), the batch form of
        :meth:`_page_locked`: one ``decompress_batch`` for a batch backend, one ``decompress``
        each for the others. Every result is checked; when anything is off (an error, a result
        of the wrong type or length, a failed item) the objects concerned go through
        :meth:`_page_locked` one by one, which counts the failure. Returns the pages and the
        positions that failed, whose place holds the error :meth:`_page_locked` raised."""
        if self._csums is not None or len(handles) == 1:
            redo = range(len(handles))
            pages: list[Any] = [None] * len(handles)
        else:
            views = list(map(self._pool_view, handles))
            try:
                pages, redo = self._decompress_objects(views)
            finally:
                del views
        bad: list[int] = []
        for k in redo:
            try:
                pages[k] = self._page_locked(tree, offs[k], handles[k])  # checked and counted
            except HwzswapError as exc:
                pages[k] = exc
                bad.append(k)
        if self._pcsums is not None and len(redo) < len(handles):
            skip = set(redo)
            for k, (off, h) in enumerate(zip(offs, handles)):
                if k in skip:
                    continue
                try:
                    self._verify_page_locked(tree, off, h, pages[k])
                except CorruptDataError as exc:
                    pages[k] = exc
                    bad.append(k)
            bad.sort()
        return pages, bad

    def _decompress_objects(self, datas: list[Any]) -> tuple[list[Any], list[int]]:
        """Several objects' pages at once: one ``decompress_batch`` for a batch device (its
        round trip paid once), else ``decompress`` on each. Returns the pages and the positions
        to redo one by one on the caller's own path, which counts and reports what went wrong:
        the items the device failed, or every position when anything in a one-by-one result is
        off. A batch call that breaks the contract raises DriverError."""
        if self.compressor.batch:
            result = self.compressor.decompress_batch(datas)
            return [row.tobytes() for row in result.pages], list(result.failed())
        pages = self._decompress_each(datas)
        if pages is not None:
            return pages, []
        return [None] * len(datas), list(range(len(datas)))

    def _verify_object_locked(self, tree: ZswapTree, offset: int, handle: int,
                              data: Any) -> None:
        """``entry_checksum``: the object must still have the CRC it was stored with."""
        want = self._csums[handle]  # type: ignore[index]
        err = _object_crc_error("load", tree.type, offset, data, want, "no data was returned")
        if err is not None:
            self.decompress_fail += 1
            raise err

    def _verify_page_locked(self, tree: ZswapTree, offset: int, handle: int,
                            page: bytes) -> None:
        """``verify_pages``: the decompressed page must have the CRC the stored page had."""
        want = self._pcsums[handle]  # type: ignore[index]
        err = _page_crc_error("load", tree.type, offset, page, want, self.backend.name,
                              "no data was returned")
        if err is not None:
            self.verify_fail += 1
            raise err

    def _corrupt(self, tree: ZswapTree, offset: int, data: Any, exc: Exception
                 ) -> CorruptDataError:
        return CorruptDataError(
            f"zswap: load of swap type {tree.type} offset {offset}: the stored object "
            f"({len(data)} bytes, {self.backend.name}) does not decompress to a page: {exc}; "
            f"the entry is kept, no data was returned"
        )

    # -- device calls through submit/poll (asynchronous devices) -------------------------------

    def _compress_via_ops(self, page: bytes) -> bytes | None:
        item = self.compressor.compress_ops(
            np.frombuffer(page, dtype=np.uint8).reshape(1, PAGE_SIZE))
        if item.status[0] == _FAILED:
            raise DeviceError(item.errors.get(0, "compress op failed"))
        return item.item_bytes(0)

    def _decompress_via_ops(self, data: Any) -> bytes:
        return self.compressor.decompress_op(data)

    def _decompress_ops_each(self, datas: list[Any]) -> list[bytes] | None:
        """``decompress_each`` for an asynchronous device: one checked (and counted) op each;
        ``None`` when one failed."""
        try:
            return list(map(self._decompress_via_ops, datas))
        except HwzswapError:
            return None

    def _decompress_or_software(self, data: Any) -> bytes:
        """The page of a pool object: the device's decompression or, when the device failed
        (not the data), the software decoder of its format; the device's DeviceError when
        there is none. (A load and a writeback both take this one path.)"""
        try:
            return self._decompress(data)
        except DeviceError as exc:
            return self.compressor.software_decompress(data, exc)

    # -- writeback -----------------------------------------------------------------------------

    def writeback(self, n: int) -> int:
        """Write back up to ``n`` of the least recently stored entries (v9's
        ``zswap_writeback_entry`` with today's revalidation); return how many were written
        back and freed. Steps: (1) under the lock, take the oldest entries, rotate them to the
        LRU tail, mark their slots in flight and copy their objects out; (2) without it,
        decompress and write each page at its own slot; (3) under the lock, free each entry
        the index still maps to (``written_back_pages``), or count the race or failure."""
        if n.__class__ is not int or n < 0:
            n = _count_arg("writeback", "n", n, "the number of entries to write back")
        target = self.writeback_target
        if target is None or n == 0:
            return 0
        self._lock_for_reclaim()
        try:
            room = self.policy.max_outstanding_writebacks - self.outstanding_writebacks
            victims = self._pick_victims_locked(min(n, room)) if room > 0 else []
            self.outstanding_writebacks += len(victims)
        finally:
            self._release()
        if not victims:
            return 0
        outcome: list[int] = []
        try:
            pages = self._writeback_pages(victims)
            for (type_, offset, _entry, data, csum, pcsum), page in zip(victims, pages):
                outcome.append(self._write_back_one(target, type_, offset, data, csum, pcsum,
                                                    page))
        finally:
            # Whatever happened, every victim leaves the in-flight set, or rejected stores and
            # swapoff would wait for it forever.
            outcome.extend([_WB_IO_FAIL] * (len(victims) - len(outcome)))
            written = self._finish_writeback(victims, outcome)
        return written

    def _writeback_pages(self, victims: list[tuple]) -> list[bytes | None]:
        """Step 2's decompression, batched as a readahead's is: the victims' pages from one
        device call for a batch device, so an offload device under pressure pays one round
        trip per writeback batch, not one per page. ``None`` where a victim takes the
        one-by-one path in :meth:`_write_back_one`: everything for a device that does not
        batch (nothing to gain) or with ``entry_checksum`` (each object is checked before it is
        decompressed); an item that failed; every item of a call that broke the contract."""
        if not self.compressor.batch or self._csums is not None or len(victims) < 2:
            return [None] * len(victims)
        try:
            pages, redo = self._decompress_objects([v[3] for v in victims])
        except HwzswapError:  # a batch call that broke the contract: each on its own
            return [None] * len(victims)
        for k in redo:
            pages[k] = None
        return pages

    def _write_back_one(self, target: WritebackTarget, type_: int, offset: int, data: bytes,
                        csum: int | None, pcsum: int | None, page: bytes | None = None) -> int:
        """Step 2 for one victim (``page``: already decompressed by the batch). A corrupt
        object never reaches the device as a wrong page: its checksums are checked around the
        decompression; a failure keeps the entry."""
        if csum is not None:
            err = _object_crc_error("writeback", type_, offset, data, csum,
                                    "it was not written")
            if err is not None:
                self.last_writeback_error = err
                return _WB_DECOMPRESS_FAIL
        if page is None:
            try:
                page = self._decompress_or_software(data)
            except HwzswapError as exc:
                self.last_writeback_error = exc
                return _WB_DECOMPRESS_FAIL
        if pcsum is not None:
            err = _page_crc_error("writeback", type_, offset, page, pcsum, self.backend.name,
                                  "it was not written")
            if err is not None:
                self.last_writeback_error = err
                return _WB_VERIFY_FAIL
        try:
            target.write_page(type_, offset, page)
        except HwzswapError as exc:  # SwapDeviceError: EIO, ENOSPC, device gone
            self.last_writeback_error = exc
            return _WB_IO_FAIL
        return _WB_OK

    def _finish_writeback(self, victims: list[tuple], outcome: list[int]) -> int:
        """Step 3: revalidate and free, or count the failure; wake waiters."""
        written = 0
        self._lock_for_reclaim()
        try:
            for (type_, offset, entry, *_), result in zip(victims, outcome):
                del self._inflight[(type_, offset)]
                if result == _WB_OK:
                    tree = self._trees.get(type_)
                    # the same entry: handles are never reused, so equal means the same object
                    if tree is not None and tree.get(offset) == entry:
                        del tree[offset]
                        self._free_locked(entry)
                        self.written_back_pages += 1
                        written += 1
                    else:  # invalidated or re-stored during the I/O: the newer state wins
                        self.writeback_raced += 1
                else:
                    self.writeback_fail += 1
                    if result == _WB_DECOMPRESS_FAIL:
                        self.decompress_fail += 1
                    elif result == _WB_VERIFY_FAIL:
                        self.verify_fail += 1
            self.outstanding_writebacks -= len(victims)
            self._wb_done.notify_all()
        finally:
            self._release()
        return written

    def _pick_victims_locked(self, take: int) -> list[tuple]:
        """Choose up to ``take`` victims, oldest first across swap types (each type's front
        compared by store sequence: its handle). Lock held."""
        trees = [t for t in self._trees.values() if t]
        if not trees or take <= 0:
            return []
        victims: list[tuple] = []
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
            if key in self._inflight:  # already under writeback (another caller)
                continue
            self._inflight[key] = entry
            victims.append((tree.type, offset, entry, self.pool.read(entry),
                            None if self._csums is None else self._csums[entry],
                            None if self._pcsums is None else self._pcsums[entry]))
        return victims

    def shrink(self, target_pages: int | None = None,
               stop: Callable[[], bool] | None = None) -> int:
        """Write back until the pool holds at most ``target_pages`` pages (default: the accept
        threshold), or nothing more can be, or ``stop()`` says so; compact the pool if that was
        not enough. Returns the entries written back. ``target_pages`` must be an int >= 0
        or ``None`` (:class:`~hwzswap.errors.InvalidInputError` otherwise)."""
        target = (self._accept_pages if target_pages is None
                  else _count_arg("shrink", "target_pages", target_pages,
                                  "the pool size in pages to shrink to, or None for the "
                                  "accept threshold"))
        total_pages = self.pool.total_pages
        batch = self.policy.writeback_batch
        written = 0
        for attempt in range(2):
            while total_pages() > target:
                if stop is not None and stop():
                    return written
                n = self.writeback(batch)
                if n == 0:
                    break
                written += n
            if total_pages() <= target or attempt:
                break
            self._lock_for_reclaim()
            try:
                if self._closed:
                    break
                freed = self.pool.compact()
            finally:
                self._release()
            if freed == 0:
                break
        return written

    # -- stats ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, with the kernel's debugfs names where they exist, plus the async
        pipeline's and the driver guard's (``driver_*``: contract violations by kind, device
        errors, timeouts, failed items, ``driver_failed`` while the device is marked failed,
        ``driver_recoveries`` the tries after ``device_retry_s`` it answered, ``driver_watched``
        when its calls run on the watchdog thread; its last error is
        ``compressor.last_error``, that of an async completion :attr:`async_last_error`).

        ``reject_folio``: pages refused with their large folio because another page of it was
        rejected (that page counted under its own reason; batched modes only).

        ``stores`` (pages offered) = ``zswpout`` + the ``reject_*`` counters +
        ``staged_dropped`` (async: pages freed, replaced or loaded while their batch was in
        flight, counted when it completes) + the stores offered while disabled (refused and
        counted nowhere else, as the kernel's zswap_store returns at once); pages still in
        flight are in none of them until then."""
        with self._lock:
            out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
            pool = self.pool
            out["stores"] = self.zswpout + self._rejected + self.staged_dropped
            out["stored_pages"] = sum(len(t) for t in self._trees.values())
            out["staged_pages"] = len(self._staged)
            pages = pool.pages if not self._closed else 0
            out["pool_pages"] = pages
            out["pool_total_size"] = pages * PAGE_SIZE
            out["pool_peak_pages"] = pool.peak_pages
            out["pool_limit_pages"] = self.policy.max_pool_pages or 0
            out["compressed_bytes"] = pool.stored_bytes if not self._closed else 0
            out["compressed_bytes_at_peak"] = pool.stored_at_peak
            out["outstanding_writebacks"] = self.outstanding_writebacks
        pipe = self._pipeline
        if pipe is not None:
            out["async_batches"] = pipe.batches
            out["async_device_calls"] = pipe.device_calls
            out["async_timeouts"] = pipe.timed_out
            out["async_peak_in_flight"] = pipe.peak_in_flight
            out["async_fill_pages"] = pipe.fill_pages
            out["async_completion_errors"] = pipe.completion_errors
        for key, value in self.compressor.counters().items():
            if key != "last_error":
                out[f"driver_{key}"] = int(value)
        return out

    def check(self) -> None:
        """Verify the cache's invariants at one instant (under the lock); raise
        :class:`~hwzswap.errors.HwzswapError` naming the first broken one. For tests."""
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
            for name, sums in (("checksums", self._csums), ("page checksums", self._pcsums)):
                if sums is not None and set(sums) != set(pooled):
                    problems.append(f"{len(sums)} {name} for {len(pooled)} pool entries")
            for (type_, off) in self._staged:
                tree = self._trees.get(type_)
                if tree is None or off in tree:
                    problems.append(f"slot ({type_}, {off}) is staged and indexed at once")
                    break
            wb = sum(1 for v in self._inflight.values() if v.__class__ is int)
            if self.outstanding_writebacks != wb:
                problems.append(f"outstanding_writebacks is {self.outstanding_writebacks}, "
                                f"{wb} entries are in flight")
            if not self._closed:
                self.pool.check()
        if problems:
            raise HwzswapError("zswap: inconsistent state: " + "; ".join(problems))

    # -- lifetime ------------------------------------------------------------------------------

    @contextmanager
    def background_paused(self) -> Iterator[None]:
        """Inside, no background writeback round runs (one already running is waited for);
        stores go on as with no background thread: one at the pool limit writes back a batch
        on its own thread (it does not wait for the paused thread; the wake-up is kept, and
        the thread's round runs once the pause ends). For a caller that times other work
        beside the cache (the bench's codec-alone pass) and must not have the shrink worker
        running beside it. Without ``background_writeback``, nothing to do."""
        bg = self._background
        if bg is None:
            yield
            return
        bg.pause()
        try:
            yield
        finally:
            bg.resume()

    def stop_background(self) -> None:
        """Stop the background writeback thread, if any (``close`` does it too)."""
        bg, self._background = self._background, None
        if bg is not None:
            bg.stop()

    def close(self) -> None:
        """Finish async work, stop background writeback, drop every entry, destroy the pool.
        Idempotent. An error of the background thread is raised after the rest is done."""
        try:
            try:
                if self._pipeline is not None:
                    self._pipeline.close()
            finally:  # the writeback thread must stop before the pool goes, whatever happened
                self.stop_background()
        finally:
            if not self._closed:
                self.compressor.close()  # its watchdog thread; a later call would start one
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

    def _tree(self, type: Any, op: str) -> ZswapTree:
        try:
            tree = self._trees.get(type)
        except TypeError:  # unhashable
            tree = None
        if tree is None:
            raise self._bad_slot(type, 0, op)
        return tree

    def _slot(self, type: Any, offset: Any, op: str) -> tuple[ZswapTree, int]:
        """The tree of ``type`` and ``offset`` as an int in range, or the slot error."""
        tree = self._tree(type, op)
        if offset.__class__ is not int:
            if offset.__class__ is bool or not hasattr(offset, "__index__"):
                raise self._bad_slot(type, offset, op)
            offset = operator.index(offset)
        if not 0 <= offset < tree.nr_pages:
            raise self._bad_slot(type, offset, op)
        return tree, offset

    def _bad_slot(self, type: Any, offset: Any, op: str) -> SwapDeviceError:
        if self._closed:
            return SwapDeviceError(f"{op} after the cache was closed")
        try:
            tree = self._trees.get(type)
        except TypeError:
            tree = None
        return slot_error(op, type, offset, None if tree is None else tree.nr_pages,
                          list(self._trees))

    def _check_open(self) -> None:
        if self._closed:
            raise SwapDeviceError("zswap: the cache was closed")

    def __repr__(self) -> str:
        return (
            f"<ZswapCache {self.backend.name} {self.batching} pool={self.pool.name} "
            f"stored={sum(len(t) for t in self._trees.values())}>"
        )


def _count_arg(op: str, name: str, value: Any, meaning: str) -> int:
    """A count argument of a public call (``writeback``'s ``n``, ``shrink``'s target) as an
    int >= 0: an int or a numpy integer (the contract's one rule, ``as_count``: never a bool,
    which is no count); anything else raises :class:`InvalidInputError` saying what to pass."""
    count = as_count(value)
    if count is None:
        raise InvalidInputError(
            f"zswap {op}: {name} must be an int >= 0 ({meaning}), got {value_text(value)}; "
            f"pass a whole number such as {op}(16)")
    value = count
    if value < 0:
        raise InvalidInputError(
            f"zswap {op}: {name} must be an int >= 0 ({meaning}), got {value}; pass 0 or more")
    return value


def _page_crcs(todo: np.ndarray, idx: list[int]) -> list[int]:
    """``verify_pages``: the CRC-32 of each page to compress, in ``idx`` order (``todo`` holds
    one row per position of ``idx``, or is the whole batch and ``idx`` its positions)."""
    if len(idx) == len(todo):
        return list(map(_crc32, todo))
    return [_crc32(todo[i]) for i in idx]


def _object_crc_error(op: str, type_: int, offset: int, data: Any, want: int, outcome: str
                      ) -> CorruptDataError | None:
    """``entry_checksum`` for a load or a writeback: the error when the object no longer has
    the CRC-32 it was stored with (the pool memory holding it was corrupted), else None."""
    got = _crc32(data)
    if got == want:
        return None
    return CorruptDataError(
        f"zswap: {op} of swap type {type_} offset {offset}: the stored object ({len(data)} "
        f"bytes) fails its checksum (CRC-32 {got:#010x}, stored with {want:#010x}): the pool "
        f"memory holding it was corrupted; the entry is kept, {outcome}")


def _page_crc_error(op: str, type_: int, offset: int, page: bytes, want: int, backend: str,
                    outcome: str) -> CorruptDataError | None:
    """``verify_pages`` for a load or a writeback: the error when the decompressed page does
    not have the CRC-32 the stored page had (the driver returned wrong bytes), else None."""
    got = _crc32(page)
    if got == want:
        return None
    return CorruptDataError(
        f"zswap: {op} of swap type {type_} offset {offset}: driver {backend!r} decompressed "
        f"the object to a page that differs from the one stored (CRC-32 {got:#010x}, stored "
        f"{want:#010x}; verify_pages); the entry is kept, {outcome}")


def _front_seq(cand: list[Any]) -> int:
    """Store order of the entry at the front (oldest end) of a candidate's tree: its pool
    handle (handed out in increasing order), 0 for a same-filled entry (only skipped)."""
    tree = cand[0]
    entry = tree[next(iter(tree))]
    return entry if entry.__class__ is int else 0


__all__ = ["Entry", "WritebackTarget", "ZswapCache", "batch_offsets", "folio_groups",
           "slot_error"]
