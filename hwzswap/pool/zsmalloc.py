"""zsmalloc: the dense, size-class pool zswap and zram store compressed pages in.

Modelled on the kernel's ``mm/zsmalloc.c`` (facts as summarised in
``shared/reference/kernel.md``, section 1b; no kernel code is copied):

* **Size classes** from ``ZS_MIN_ALLOC_SIZE`` (32) to ``PAGE_SIZE`` in ``ZS_SIZE_CLASS_DELTA``
  (16) byte steps: 255 classes. A non-huge object carries an 8-byte handle header
  (``ZS_HANDLE_SIZE``) in front of its payload, so ``malloc(size)`` looks the class up with
  ``size + 8``; the bytes are reserved in the slot so that class choice and density are the
  kernel's. (The kernel keeps the object's handle in that header so compaction can find the
  owner; here the handle table plays that part and the header bytes stay unused.)
* **Zspages**: each class packs its objects back to back into zspages of 1..``chain_size``
  pages. The page count is the one that leaves the least tail waste (first minimum wins; 1 for
  power-of-two sizes), so objects may straddle page boundaries.
* **Class merging**: walking from the largest class down, a class with the same
  ``(pages_per_zspage, objs_per_zspage)`` as the one above shares it (its objects use the larger
  slot).
* **Huge class**: one object per one-page zspage and no header; pages that barely compress
  (payload >= :attr:`ZsPool.huge_class_size`) land here.
* **Fullness groups**: a zspage is in group 0 (empty), 1..10 (``inuse`` ratio 0-9%, 10-19%,
  ..., 90-99%) or 11 (full). ``malloc`` takes a zspage from the fullest non-full group, so
  objects concentrate and emptied zspages go back to the allocator at once.
* **Compaction** moves objects from the least used zspages of a class into the most used ones
  and frees the emptied zspages; handles stay valid.

The knob: ``max_pages_per_zspage`` is the kernel's ``CONFIG_ZSMALLOC_CHAIN_SIZE`` (range 4..16 in
Kconfig; 1..16 accepted here for experiments). The kernel default is 8 and so is ours: longer
chains waste less at each zspage's tail and push the huge-class watermark up (3264 bytes with 4,
3632 with 8), which is where most of the density difference comes from.

Two implementations of one algorithm: :class:`PyZsPool` in Python, the readable reference model
that the rest of this docstring describes (here, importable without a compiler), and
:class:`~hwzswap.pool.zsmalloc_c.ZsPool`, the pool zswap uses by default, whose data structure
lives in the C core :mod:`hwzswap.pool._zscore` (``_zscore.c``): the per-object calls cost a C
call each instead of several Python-level steps (issue 3 wants pool work under a quarter of
lz4's compression of the page; see ``benchmarks/results/pool_density.md``). Both make the same
choices, so they place every object in the same slot and compact the same pages;
``tests/pool/test_zsmalloc_differential.py`` checks that step by step. ``HWZSWAP_IMPL=py``
makes ``create_pool("zsmalloc")`` build the Python one (:mod:`hwzswap.impl`).

Fast path (the model): the class is a list lookup by size; each zspage keeps a stack of free
payload offsets (its use count is ``objs - len(free)``); and each class fills one zspage at a
time, ``cur``, taken out of its fullness group when picked (the most recently added zspage of
the fullest non-empty group, as the kernel takes the list head, found through a bitmask of
non-empty groups; or a new zspage) and put back when it fills up, or when a free leaves another
zspage in a fuller group than it. So ``malloc`` touches a group only when it picks or fills a
zspage, and ``free`` only when a zspage crosses a group boundary. (Filing groups lazily, leaving
a zspage that merely gets emptier where it is until ``malloc`` meets it, was measured: it moves
the cost from ``free`` to ``malloc`` and saves nothing.)
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any

from hwzswap.errors import InvalidParameterError, PoolAllocError, PoolError
from hwzswap.pool._handles import HandlePool, data_length, handle_key
from hwzswap.pool.allocator import PageAllocator
from hwzswap.pool.base import PAGE_SIZE

__all__ = [
    "ZS_HANDLE_SIZE",
    "ZS_MAX_ALLOC_SIZE",
    "ZS_MIN_ALLOC_SIZE",
    "ZS_SIZE_CLASSES",
    "ZS_SIZE_CLASS_DELTA",
    "PyZsPool",
    "SizeClassSpec",
    "ZsLayout",
    "zs_layout",
]

ZS_HANDLE_SIZE = 8
ZS_MIN_ALLOC_SIZE = 32
ZS_MAX_ALLOC_SIZE = PAGE_SIZE
ZS_SIZE_CLASS_DELTA = PAGE_SIZE >> 8  # CLASS_BITS = 8
ZS_SIZE_CLASSES = -(-(ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) // ZS_SIZE_CLASS_DELTA) + 1  # 255
ZSMALLOC_CHAIN_SIZE = 8  # Kconfig default
MAX_CHAIN_SIZE = 16

# Fullness groups (the kernel's ZS_INUSE_RATIO_*): 0 empty, 1..10 by tenths of use, 11 full.
ZS_INUSE_RATIO_0 = 0
ZS_INUSE_RATIO_100 = 11
NR_FULLNESS_GROUPS = 12
_FULL = ZS_INUSE_RATIO_100
_MAX_SHELLS = 64  # released zspage objects kept per class for reuse (cheaper than new ones)
_NO_MEMORY = memoryview(b"")  # what a released zspage object points at
FULLNESS_LABELS = ("0%", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "99%",
                   "100%")  # noqa: E501 - one row per group, as in the kernel's debugfs "classes"


@dataclass(frozen=True)
class SizeClassSpec:
    """One distinct (merged) size class."""

    index: int  #: kernel class index of the largest size in the merged run
    first_index: int  #: smallest class index merged into it
    size: int  #: slot size in bytes (header included for non-huge classes)
    pages_per_zspage: int
    objs_per_zspage: int

    @property
    def huge(self) -> bool:
        return self.pages_per_zspage == 1 and self.objs_per_zspage == 1

    @property
    def header(self) -> int:
        """Bytes in front of the payload: ``ZS_HANDLE_SIZE``, none in the huge class."""
        return 0 if self.huge else ZS_HANDLE_SIZE

    @property
    def max_payload(self) -> int:
        return self.size - self.header


@dataclass(frozen=True)
class ZsLayout:
    """The class table of a pool for one chain size."""

    chain_size: int
    classes: tuple[SizeClassSpec, ...]  #: distinct classes, ascending size
    class_of_size: tuple[int, ...]  #: payload size 0..4096 -> position in ``classes`` (-1 for 0)
    huge_class_size: int  #: smallest payload that lands in the huge class (zs_huge_class_size)


def chain_size_for(class_size: int, chain_size: int) -> int:
    """Pages per zspage for a class: the count in 1..chain_size with the least tail waste."""
    if class_size & (class_size - 1) == 0:
        return 1
    best, best_waste = 1, PAGE_SIZE % class_size
    for pages in range(2, chain_size + 1):
        waste = (pages * PAGE_SIZE) % class_size
        if waste < best_waste:
            best, best_waste = pages, waste
    return best


def class_index(lookup_size: int) -> int:
    """Kernel class index for a lookup size (payload + header), clamped to the last class."""
    if lookup_size <= ZS_MIN_ALLOC_SIZE:
        return 0
    return min(-(-(lookup_size - ZS_MIN_ALLOC_SIZE) // ZS_SIZE_CLASS_DELTA), ZS_SIZE_CLASSES - 1)


@functools.lru_cache(maxsize=None)
def zs_layout(chain_size: int = ZSMALLOC_CHAIN_SIZE) -> ZsLayout:
    """Build (once per chain size) the merged class table and the size lookup."""
    if type(chain_size) is not int or not 1 <= chain_size <= MAX_CHAIN_SIZE:
        raise InvalidParameterError(
            f"zsmalloc: max_pages_per_zspage (ZSMALLOC_CHAIN_SIZE) must be an int in "
            f"1..{MAX_CHAIN_SIZE}, got {chain_size!r}"
        )
    # Walk from the largest class down; merge runs with the same (pages, objs).
    owner_of = [0] * ZS_SIZE_CLASSES  # kernel index -> kernel index of the class it merges into
    runs: list[list[int]] = []  # [owner index, first index, size, pages, objs]
    for i in range(ZS_SIZE_CLASSES - 1, -1, -1):
        size = min(ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA, PAGE_SIZE)
        pages = chain_size_for(size, chain_size)
        objs = pages * PAGE_SIZE // size
        if runs and runs[-1][3] == pages and runs[-1][4] == objs:
            runs[-1][1] = i
        else:
            runs.append([i, i, size, pages, objs])
        owner_of[i] = runs[-1][0]
    specs = tuple(
        SizeClassSpec(index=r[0], first_index=r[1], size=r[2], pages_per_zspage=r[3],
                      objs_per_zspage=r[4])
        for r in reversed(runs)
    )
    pos_of_index = {spec.index: pos for pos, spec in enumerate(specs)}
    lookup = [-1]
    huge_class_size = PAGE_SIZE + 1
    for payload in range(1, PAGE_SIZE + 1):
        pos = pos_of_index[owner_of[class_index(payload + ZS_HANDLE_SIZE)]]
        if specs[pos].huge and payload < huge_class_size:
            huge_class_size = payload
        lookup.append(pos)
    return ZsLayout(chain_size, specs, tuple(lookup), huge_class_size)


def zs_stats(pool: Any, per_class: list[tuple[Any, int]], objects: int, nzspages: int,
             compacted: int, alloc_fail: int) -> dict[str, Any]:
    """``stats()`` of either implementation from its per-class (zspages per fullness group,
    free slots) and its counters (zspages, pages compacted, failed allocations)."""
    rows = []
    freeable_total = 0
    for spec, (counts, free_slots) in zip(pool.layout.classes, per_class):
        objs, pages = spec.objs_per_zspage, spec.pages_per_zspage
        zspages = sum(counts)
        freeable = 0 if objs == 1 else free_slots // objs * pages
        freeable_total += freeable
        rows.append({
            "index": spec.index,
            "size": spec.size,
            "pages_per_zspage": pages,
            "objs_per_zspage": objs,
            "huge": spec.huge,
            "zspages": zspages,
            "objects": zspages * objs - free_slots,
            "obj_allocated": zspages * objs,
            "pages_used": zspages * pages,
            "freeable": freeable,
            "fullness": dict(zip(FULLNESS_LABELS, counts)),
        })
    pool_bytes = pool.pages * PAGE_SIZE
    stored = pool.stored_bytes
    return {
        "name": pool.name,
        "kind": "zsmalloc",
        "pool_bytes": pool_bytes,
        "pages": pool.pages,
        "zspages": nzspages,
        "objects": objects,
        "stored_bytes": stored,
        "density": stored / pool_bytes if pool_bytes else 0.0,
        "pages_compacted": compacted,
        "freeable": freeable_total,
        "alloc_fail": alloc_fail,
        "huge_class_size": pool.layout.huge_class_size,
        "max_pages_per_zspage": pool.max_pages_per_zspage,
        "classes": rows,
    }


class _SizeClass:
    """Run-time state of one (merged) class.

    Every zspage of the class is either ``cur`` (the one ``malloc`` fills; in no group) or in
    ``fullness[fg]`` with ``fg == fg_of_free[len(zspage.free)]`` (and ``zspage.fg == fg``).
    Bit ``fg`` of ``partial_mask`` is set exactly when the partial group ``fg`` (1..10) is not
    empty, so the fullest one is found without a scan.
    """

    __slots__ = ("spec", "size", "pages", "objs", "fullness", "full", "partial_mask", "cur",
                 "fg_of_free", "free_template", "shells")

    def __init__(self, spec: SizeClassSpec) -> None:
        self.spec = spec
        self.size = spec.size
        self.pages = spec.pages_per_zspage
        self.objs = objs = spec.objs_per_zspage
        # One insertion-ordered dict (used as a set) of zspages per fullness group.
        self.fullness: list[dict[_Zspage, None]] = [{} for _ in range(NR_FULLNESS_GROUPS)]
        self.full = self.fullness[_FULL]
        self.partial_mask = 0
        self.cur: _Zspage | None = None
        self.shells: list[_Zspage] = []  # released zspage objects, for reuse (no memory)
        # Fullness group by number of free slots (ZS_INUSE_RATIO_*: ratio // 10 + 1).
        fg_of_free = []
        for nfree in range(objs + 1):
            inuse = objs - nfree
            if inuse == 0:
                fg_of_free.append(ZS_INUSE_RATIO_0)
            elif inuse == objs:
                fg_of_free.append(_FULL)
            else:
                fg_of_free.append(100 * inuse // objs // 10 + 1)
        self.fg_of_free = tuple(fg_of_free)
        hdr = spec.header
        # Payload offsets of the slots, highest first, so pop() hands out the lowest slot.
        self.free_template = [slot * spec.size + hdr for slot in range(objs - 1, -1, -1)]

    def zspage_list(self) -> list[_Zspage]:
        out = [zs for group in self.fullness for zs in group]
        if self.cur is not None:
            out.append(self.cur)
        return out

    def attach_cur(self) -> None:
        """Put ``cur`` back into its fullness group (before compaction, stats walks...)."""
        zs = self.cur
        if zs is not None:
            self.add(zs, self.fg_of_free[len(zs.free)])
            self.cur = None

    def add(self, zs: _Zspage, fg: int) -> None:
        """Put ``zs`` into group ``fg``."""
        zs.fg = fg
        self.fullness[fg][zs] = None
        if fg != _FULL:
            self.partial_mask |= 1 << fg


def _is_run(mv: Any, pages: int) -> bool:
    """What a page allocator must return: a writable, contiguous memoryview of single bytes,
    ``pages * PAGE_SIZE`` long."""
    return (isinstance(mv, memoryview) and not mv.readonly and mv.contiguous and mv.ndim == 1
            and mv.itemsize == 1 and mv.format == "B" and mv.nbytes == pages * PAGE_SIZE)


class _Zspage:
    """One zspage: ``pages`` contiguous pages and a stack of free payload offsets."""

    __slots__ = ("mv", "ro", "cls", "free", "fg", "mapped")

    def __init__(self, mv: memoryview, cls: _SizeClass) -> None:
        self.mv = mv  # the page run from the allocator
        self.ro = mv.toreadonly()  # the same memory, for reads (handle table, view, map)
        self.cls = cls
        self.free = cls.free_template.copy()
        self.fg = ZS_INUSE_RATIO_0
        self.mapped = 0  # objects of this zspage mapped now (pins it against compaction)

    @property
    def inuse(self) -> int:
        return self.cls.objs - len(self.free)


class PyZsPool(HandlePool):
    """The zsmalloc pool in pure Python: the readable reference model of :class:`ZsPool`
    (which runs the same algorithm compiled, and is checked against this one by the
    differential tests). See the module docstring for the model and
    :mod:`hwzswap.pool._handles` for the handle format.

    ``max_pages_per_zspage`` is ``CONFIG_ZSMALLOC_CHAIN_SIZE`` (default 8, as in the kernel).
    """

    def __init__(
        self,
        allocator: PageAllocator | None = None,
        max_pages_per_zspage: int = ZSMALLOC_CHAIN_SIZE,
        name: str = "zsmalloc",
    ) -> None:
        layout = zs_layout(max_pages_per_zspage)
        super().__init__(allocator, name)
        self.layout = layout
        self.max_pages_per_zspage = max_pages_per_zspage
        self._classes = [_SizeClass(spec) for spec in layout.classes]
        self._class_of: list[_SizeClass | None] = [None]
        self._class_of.extend(self._classes[pos] for pos in layout.class_of_size[1:])
        self._zspages = 0
        self._peak_before = (0, 0)  # peak_pages, _stored_at_peak before the last new zspage
        self._compacted = 0
        self._alloc_fail = 0

    @property
    def huge_class_size(self) -> int:
        """Payload sizes from this up go to the huge class (``zs_huge_class_size``)."""
        return self.layout.huge_class_size

    # -- malloc / free -----------------------------------------------------------------------

    def malloc(self, size: int) -> int:
        """Reserve ``size`` (1..4096) bytes; return the handle.

        :class:`PoolError` for a bad size; :class:`PoolAllocError` when a new zspage is needed
        and the allocator refuses (the pool is then unchanged).
        """
        try:
            cls = self._class_of[size]
        except (IndexError, TypeError):
            cls = None
        if cls is None or size < 0:
            raise self.bad_size_error(size)
        if size.__class__ is not int:
            size = operator.index(size)  # (a numpy integer: its int, as the compiled pool)
        zs = cls.cur
        if zs is None:  # only when the current zspage filled up: off the common path
            zs = self._pick_zspage(cls, size)
        free = zs.free
        off = free.pop()
        if not free:  # full: into the 100% group; the next malloc picks again
            zs.fg = _FULL
            cls.full[zs] = None
            cls.cur = None
        handle = self._serial + 1
        self._serial = handle
        self._objs[handle] = (zs.ro, off, size, zs)
        self._stored += size
        return handle

    def malloc_write(self, data: Any) -> int:
        """``malloc(len(data))`` + ``write``: store a bytes-like object, return its handle.
        Same errors as the two calls; on any error nothing is allocated."""
        size = data_length(data)
        if size < 0:
            raise self.bad_data_error(0, data)
        try:
            cls = self._class_of[size]
        except IndexError:
            cls = None
        if cls is None:
            raise self.bad_size_error(size)
        zs = cls.cur
        picked = zs is None
        if picked:  # only when the current zspage filled up: off the common path
            zs = self._pick_zspage(cls, size)
        free = zs.free
        off = free.pop()
        try:
            zs.mv[off : off + size] = data
        except (TypeError, ValueError):
            self._unwind(zs, off, picked)
            raise self.bad_data_error(0, data) from None
        if not free:
            zs.fg = _FULL
            cls.full[zs] = None
            cls.cur = None
        handle = self._serial + 1
        self._serial = handle
        self._objs[handle] = (zs.ro, off, size, zs)
        self._stored += size
        return handle

    def _unwind(self, zs: _Zspage, off: int, picked: bool) -> None:
        """Undo a ``malloc_write`` whose write failed, so that the pool is as it was: the slot
        goes back; a zspage made for the object goes back, and the peak with it; a zspage
        picked from its fullness group (``picked``) goes back to where it was in it."""
        zs.free.append(off)
        cls = zs.cls
        if len(zs.free) == cls.objs:  # a zspage made for this object
            cls.cur = None
            self._release_zspage(zs)
            self.peak_pages, self._stored_at_peak = self._peak_before
        elif picked:  # (it was popped off its group's end: appending puts it back)
            cls.cur = None
            cls.add(zs, zs.fg)

    def free(self, handle: int) -> None:
        """Release the object; an emptied zspage goes back to the allocator at once."""
        objs = self._objs
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            _, off, size, zs = objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "free") from None
        handle = key
        if zs.mapped and handle in self._maps:
            raise self.pinned_error(handle)
        del objs[handle]  # (the table stays in allocation order: compaction relies on it)
        stored = self._stored
        if self.pages == self.peak_pages and stored > self._stored_at_peak:
            self._stored_at_peak = stored  # the most the pool held at its peak size
        self._stored = stored - size
        free = zs.free
        free.append(off)
        cls = zs.cls
        nfree = len(free)
        fg = cls.fg_of_free[nfree]
        cur = cls.cur
        if zs is cur:  # the zspage being filled is in no group
            if fg != cls.fg_of_free[nfree - 1]:
                if nfree == cls.objs:
                    cls.cur = None
                    self._release_zspage(zs)
                elif cls.partial_mask >> (fg + 1):
                    cls.attach_cur()  # a fuller zspage exists: the next malloc picks it
            return
        old = zs.fg
        if fg != old:  # crossed into another fullness group
            fullness = cls.fullness
            group = fullness[old]
            del group[zs]
            if not group and old != _FULL:
                cls.partial_mask &= ~(1 << old)
            if nfree == cls.objs:
                self._release_zspage(zs)
            elif cur is not None and fg > cls.fg_of_free[len(cur.free)]:
                cls.attach_cur()  # zs is now fuller than the zspage being filled: fill zs
                cls.cur = zs
            else:
                zs.fg = fg
                fullness[fg][zs] = None
                cls.partial_mask |= 1 << fg

    def read_free(self, handle: int) -> bytes:
        """``read`` + ``free`` (zswap's exclusive load): the object's bytes; the object is gone."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            ro, off, size, _ = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "read_free") from None
        handle = key
        data = ro[off : off + size].tobytes()
        self.free(handle)
        return data

    def _pick_zspage(self, cls: _SizeClass, size: int) -> _Zspage:
        """Make the fullest partial zspage of ``cls`` current (the most recently added one of
        its group, as the kernel), or a new zspage when none has room."""
        mask = cls.partial_mask
        if not mask:
            return self._new_zspage(cls, size)
        fg = mask.bit_length() - 1
        group = cls.fullness[fg]
        zs = group.popitem()[0]
        if not group:
            cls.partial_mask = mask ^ (1 << fg)
        cls.cur = zs
        return zs

    def _new_zspage(self, cls: _SizeClass, size: int) -> _Zspage:
        """A new, empty zspage for ``cls`` (for an object of ``size`` bytes), made ``cur``."""
        try:
            mv = self.allocator.alloc_pages(cls.pages)
        except PoolAllocError as exc:
            self._alloc_fail += 1
            raise self.alloc_failed_error(cls.pages, cls.size, exc) from None
        if not _is_run(mv, cls.pages):  # the C core's check, with the same message
            try:
                self.allocator.free_pages(mv)
            except Exception:  # noqa: BLE001 - it is not a run: its own error is the one to see
                pass
            raise self.bad_run_error(mv, cls.pages)
        shells = cls.shells
        if shells:  # reuse a released zspage's object (its memory went back to the allocator)
            zs = shells.pop()
            zs.mv = mv
            zs.ro = mv.toreadonly()
            zs.free = cls.free_template.copy()
        else:
            zs = _Zspage(mv, cls)
        pages = self.pages + cls.pages
        self.pages = pages
        self._zspages += 1
        cls.cur = zs
        self._peak_before = (self.peak_pages, self._stored_at_peak)
        if pages > self.peak_pages:
            self.peak_pages = pages
            self._stored_at_peak = self._stored + size
        return zs

    def _release_zspage(self, zs: _Zspage) -> None:
        """Return an empty zspage's pages (the caller has taken it out of its group)."""
        cls = zs.cls
        self.pages -= cls.pages
        self._zspages -= 1
        self.allocator.free_pages(zs.mv)
        zs.mv = zs.ro = _NO_MEMORY  # drop the run: the allocator may hand it to someone else
        zs.fg = ZS_INUSE_RATIO_0
        zs.mapped = 0
        if len(cls.shells) < _MAX_SHELLS:
            cls.shells.append(zs)

    # -- compaction --------------------------------------------------------------------------

    def compact(self) -> int:
        """Move objects out of sparse zspages into fuller ones, class by class from the largest;
        return the pages freed (also added to ``pages_compacted``). Mapped objects stay put."""
        if self._destroyed:
            return 0
        self._note_peak()
        freed = 0
        owners: dict[_Zspage, list[int]] | None = None
        for cls in reversed(self._classes):
            if self._can_compact(cls) == 0:
                continue
            if owners is None:
                # Reverse map zspage -> handles, built once per compaction (the kernel reads
                # the handle from each object's header instead). The handle table is in
                # allocation order, so each list is too, and the newest object moves first.
                owners = {}
                for handle, loc in self._objs.items():
                    lst = owners.get(loc[3])
                    if lst is None:
                        owners[loc[3]] = [handle]
                    else:
                        lst.append(handle)
            freed += self._compact_class(cls, owners)
        self._compacted += freed
        return freed

    def _compact_class(self, cls: _SizeClass, owners: dict[_Zspage, list[int]]) -> int:
        """Two-finger compaction: sources from the least used end, destinations from the most
        used end of the class's partial zspages."""
        cls.attach_cur()
        fullness = cls.fullness
        partial: list[_Zspage | None] = []
        for fg in range(ZS_INUSE_RATIO_0 + 1, _FULL):
            partial.extend(fullness[fg])
            fullness[fg].clear()
        cls.partial_mask = 0
        # least used first; zspages with mapped objects cannot be sources, so they go to the
        # destination end, where they get filled first
        partial.sort(key=lambda z: (z.mapped > 0, -len(z.free)))  # type: ignore[union-attr]
        objs = self._objs
        freed = 0
        src_i, dst_i = 0, len(partial) - 1
        while src_i < dst_i:
            src = partial[src_i]
            assert src is not None
            if src.mapped:
                src_i += 1
                continue
            dst = partial[dst_i]
            assert dst is not None
            moving = owners[src]
            dfree, sfree = dst.free, src.free
            dmv, smv, dro = dst.mv, src.mv, dst.ro
            while moving and dfree:
                handle = moving.pop()
                _, off, size, _ = objs[handle]
                doff = dfree.pop()
                dmv[doff : doff + size] = smv[off : off + size]
                objs[handle] = (dro, doff, size, dst)
                sfree.append(off)
            if not moving:
                self._release_zspage(src)
                freed += cls.pages
                partial[src_i] = None
                src_i += 1
            if not dfree:
                dst_i -= 1
        fg_of_free = cls.fg_of_free
        for zs in partial:
            if zs is not None:
                cls.add(zs, fg_of_free[len(zs.free)])
        return freed

    @staticmethod
    def _can_compact(cls: _SizeClass) -> int:
        """Pages compaction could free in ``cls`` (the kernel's ``zs_can_compact``)."""
        if cls.objs == 1:
            return 0
        free_slots = sum(len(zs.free) for group in cls.fullness for zs in group)
        if cls.cur is not None:
            free_slots += len(cls.cur.free)
        return free_slots // cls.objs * cls.pages

    # -- accounting --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Totals and one row per distinct class (cost: one pass over the zspages).

        Totals: ``pool_bytes``, ``pages``, ``zspages``, ``objects``, ``stored_bytes``,
        ``density`` (stored / pool bytes; 0 for an empty pool), ``pages_compacted``,
        ``freeable`` (pages compaction could free now), ``alloc_fail``, ``huge_class_size``,
        ``max_pages_per_zspage``. Class rows, like the kernel's debugfs ``classes`` file:
        ``index``, ``size``, ``pages_per_zspage``, ``objs_per_zspage``, ``huge``, ``zspages``,
        ``objects`` (in use), ``obj_allocated``, ``pages_used``, ``freeable``, ``fullness``
        (zspages per group, keyed "0%".."100%").
        """
        per_class = []
        for cls in self._classes:
            counts = [len(group) for group in cls.fullness]
            free_slots = sum(len(zs.free) for group in cls.fullness for zs in group)
            if cls.cur is not None:
                counts[cls.fg_of_free[len(cls.cur.free)]] += 1
                free_slots += len(cls.cur.free)
            per_class.append((counts, free_slots))
        return zs_stats(self, per_class, len(self._objs), self._zspages, self._compacted,
                        self._alloc_fail)

    def check(self) -> None:
        """Verify the pool's internal invariants; raise :class:`PoolError` naming the first
        broken one. For tests and debugging (cost: a pass over everything)."""
        live_slots: dict[_Zspage, set[int]] = {}
        stored = 0
        for handle, (ro, off, size, zs) in self._objs.items():
            if ro is not zs.ro or ro.obj is not zs.mv.obj:
                raise PoolError(f"handle {handle:#x}: view is not its zspage's")
            spec = zs.cls.spec
            if not 0 < size <= spec.max_payload or (off - spec.header) % spec.size:
                raise PoolError(f"handle {handle:#x}: size {size} / offset {off} wrong for class")
            slots = live_slots.setdefault(zs, set())
            if off in slots:
                raise PoolError(f"handle {handle:#x}: slot {off} used twice")
            slots.add(off)
            stored += size
        pages = zspages = 0
        held: set[_Zspage] = set()
        for cls in self._classes:
            cur = cls.cur
            for fg, group in enumerate(cls.fullness):
                in_mask = bool(cls.partial_mask >> fg & 1)
                if ZS_INUSE_RATIO_0 < fg < _FULL and bool(group) != in_mask:
                    raise PoolError(f"class {cls.size}: partial_mask disagrees with group {fg}")
                for zs in group:
                    if zs.fg != fg or cls.fg_of_free[len(zs.free)] != fg or zs is cur:
                        raise PoolError(f"class {cls.size}: zspage in the wrong fullness group")
                    held.add(zs)
            if cur is not None:
                if not cur.free:
                    raise PoolError(f"class {cls.size}: the zspage being filled is full")
                best = cls.fg_of_free[len(cur.free)]
                if any(cls.fullness[fg] for fg in range(best + 1, _FULL)):
                    raise PoolError(f"class {cls.size}: the zspage being filled is not the "
                                    "fullest")
                held.add(cur)
            for zs in cls.zspage_list():
                pages += cls.pages
                zspages += 1
                if zs.cls is not cls:
                    raise PoolError(f"class {cls.size}: zspage of another class")
                slots = live_slots.get(zs, set())
                if not slots:
                    raise PoolError(f"class {cls.size}: an empty zspage was kept")
                if len(slots) + len(zs.free) != cls.objs or set(zs.free) & slots:
                    raise PoolError(f"class {cls.size}: free list and live objects disagree")
                if not self.allocator.owns(zs.mv):
                    raise PoolError(f"class {cls.size}: zspage memory not from the allocator")
        if pages != self.pages or zspages != self._zspages:
            raise PoolError("page/zspage counters disagree with the zspages held")
        if set(live_slots) - held:
            raise PoolError("a live object's zspage is not in the pool")
        if stored != self._stored:
            raise PoolError("stored_bytes counter disagrees with the live objects")

    def destroy(self) -> None:
        """Free every zspage (swapoff). Later calls raise; ``destroy`` itself is idempotent.
        Mapped views are released; while a buffer or view derived from one is alive it raises
        :class:`PoolError` and frees nothing (as ``unmap`` refuses)."""
        if self._destroyed:
            return
        self._release_maps()
        self._note_peak()
        for cls in self._classes:
            for zs in cls.zspage_list():
                zs.mapped = 0
                self._release_zspage(zs)
            for group in cls.fullness:
                group.clear()
            cls.partial_mask = 0
            cls.cur = None
        self._objs.clear()
        self._stored = 0
        self._destroyed = True
        self._class_of = [None] * len(self._class_of)


def __getattr__(name: str) -> Any:
    """``ZsPool`` (the compiled pool) lives in :mod:`hwzswap.pool.zsmalloc_c`, imported on
    first use, so that this module (the layout and the Python model) needs no compiler."""
    if name == "ZsPool":
        from hwzswap.pool.zsmalloc_c import ZsPool

        return ZsPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
