"""zswap's self-contained structures and scans in Python: the references for ``_hotpath``.

:mod:`hwzswap.frontswap._hotpath` (C) holds the per-type index and LRU (``ZswapTree``), the
same-filled page scan of a batch (``same_filled_pages``) and a batch's swap-slot claim
(``claim_slots``). Each piece here, of the same name plus ``Py``/``_py``, is the same
algorithm written out, with the same results and errors; the tests drive both on the same cases
and compare. ``HWZSWAP_IMPL=py`` runs the engine on these (:mod:`hwzswap.frontswap.kernels`
picks), and this module needs no compiler: it imports nothing compiled.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

PAGE_SIZE = 4096
_WORDS = PAGE_SIZE // 8
#: The largest ``nr_pages`` of a ZswapTree: the most ``swap.nr_pages`` allows (hwzswap.config;
#: 2**30 pages, 4 TiB of swap), as ``_hotpath.MAX_NR_PAGES`` (the C tree makes its array of
#: chunk pointers, ``nr_pages / 8`` bytes, up front).
MAX_NR_PAGES = 1 << 30


def same_filled_pages_py(buf: Any) -> list[tuple[int, bytes]]:
    """The same-filled pages of a contiguous buffer of whole pages: (page index, the 8-byte
    word the page repeats), in page order."""
    try:
        view = memoryview(buf)
    except TypeError:  # worded as the compiled kernel's buffer-protocol error
        raise TypeError(f"a bytes-like object is required, not {type(buf).__name__!r}") from None
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


def claim_slots_py(smap: bytearray, offsets: Sequence[Any], n: int
                   ) -> tuple[list[int], bytes] | None:
    """Mark a batch's swap slots in use in ``smap`` and return ``(offsets as a list, the
    slots' states before)``, one byte each, so the caller can roll the claim back exactly, when
    ``offsets`` is a list, tuple or range of ``n`` ints in ``0..len(smap) - 1`` and none
    appears twice; else mark nothing and return ``None`` (the caller's slow path then converts
    other integer types, or names the problem). Other iterables are declined untouched, as the
    slow path may need to read them; so is a range longer than ``sys.maxsize``, and any ``n``
    outside ``0..len(smap)``. The map must be a ``bytearray`` and ``n`` an integer (a
    ``TypeError`` otherwise). The map is held exported meanwhile (a finaliser run by the GC
    cannot resize it), and the offsets are read from a copy, as ``claim_slots`` does."""
    if not isinstance(smap, bytearray):
        raise TypeError(
            f"claim_slots() argument 1 must be bytearray, not {type(smap).__name__}"
        )
    n = operator.index(n)  # a TypeError for a float n
    if offsets.__class__ not in (list, tuple, range) or not 0 <= n <= len(smap):
        return None  # (n distinct offsets in 0..len(smap) - 1 are at most len(smap))
    try:
        if len(offsets) != n:
            return None
    except OverflowError:  # a range longer than sys.maxsize
        return None
    with memoryview(smap) as view:
        offs = list(offsets)
        nr = len(view)
        if len(offs) != n or any(o.__class__ is not int or not 0 <= o < nr for o in offs):
            return None
        if len(set(offs)) != len(offs):
            return None
        before = bytes([view[off] for off in offs])
        for off in offs:
            view[off] = 1
    return offs, before


class ZswapTreePy:
    """One swap type's index and LRU: offset -> entry, oldest stored first (``ZswapTree``).

    An ``OrderedDict`` inside, behind exactly the API of the compiled ``ZswapTree`` (what the
    engine uses, no more): ``t[k]``, ``t[k] = v``, ``del t[k]``, ``k in t``, ``len``,
    iteration, ``get(k[, default])``, ``pop(k[, default])``, ``move_to_end(k)``, ``keys``,
    ``values``, ``items``, ``clear`` and the read-only ``type`` and ``nr_pages``; arguments
    are positional (the constructor's may be named), trees compare by identity.

    The keys are the type's offsets, ``0..nr_pages - 1``: any other key (out of range, not an
    integer) is simply absent, and storing at one raises ``KeyError``. An integer of another
    type (a numpy integer) names the same offset as the ``int``. A new entry goes to the end
    (newest); replacing an entry keeps its place; ``move_to_end`` that moves an entry is a
    change for iterators (they raise ``RuntimeError``, as any change). ``keys``, ``values`` and
    ``items`` are lists, oldest first, never partly filled.
    """

    __slots__ = ("_od", "_type", "_nr_pages")
    __reversed__ = None  # a mapping, not a sequence: reversed() refuses it, as ZswapTree
    _MISSING: Any = object()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("type 'ZswapTreePy' is not an acceptable base type (as ZswapTree)")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object (as ZswapTree)")

    def __init__(self, swap_type: Any, nr_pages: int) -> None:
        nr = operator.index(nr_pages)  # a TypeError for a float, as ZswapTree
        if not 1 <= nr <= MAX_NR_PAGES:
            raise ValueError(
                f"ZswapTree: nr_pages must be in 1..{MAX_NR_PAGES} (the most swap.nr_pages "
                f"allows), got {nr}"
            )
        self._od: OrderedDict[int, Any] = OrderedDict()
        self._type = swap_type
        self._nr_pages = nr

    @property
    def type(self) -> Any:
        """The swap type."""
        return self._type

    @property
    def nr_pages(self) -> int:
        """The offsets are 0..nr_pages - 1."""
        return self._nr_pages

    def _offset(self, key: Any) -> int | None:
        try:
            off = operator.index(key)
        except TypeError:
            return None
        return off if 0 <= off < self._nr_pages else None

    def __len__(self) -> int:
        return len(self._od)

    def __contains__(self, key: object) -> bool:
        off = self._offset(key)
        return off is not None and off in self._od

    def __getitem__(self, key: Any) -> Any:
        off = self._offset(key)
        if off is None:
            raise KeyError(key)
        try:
            return self._od[off]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: Any, value: Any) -> None:
        off = self._offset(key)
        if off is None:
            raise KeyError(
                f"ZswapTree of swap type {self._type!r}: {key!r} is not an offset in "
                f"0..{self._nr_pages - 1}"
            )
        self._od[off] = value

    def __delitem__(self, key: Any) -> None:
        off = self._offset(key)
        if off is None or off not in self._od:
            raise KeyError(key)
        del self._od[off]

    def __iter__(self) -> Iterator[int]:
        return iter(self._od)

    def get(self, key: Any, default: Any = None, /) -> Any:
        off = self._offset(key)
        return default if off is None else self._od.get(off, default)

    def pop(self, key: Any, default: Any = _MISSING, /) -> Any:
        off = self._offset(key)
        if off is None or off not in self._od:
            if default is ZswapTreePy._MISSING:
                raise KeyError(key)
            return default
        return self._od.pop(off)

    def move_to_end(self, key: Any, /) -> None:
        """Make the entry the newest (zswap's LRU on a load hit); ``KeyError`` if absent."""
        off = self._offset(key)
        if off is None or off not in self._od:
            raise KeyError(key)
        self._od.move_to_end(off)

    def clear(self) -> None:
        self._od.clear()

    def _snapshot(self, view: Callable[[], Any]) -> list[Any]:
        """``list(view())``, taken again if the tree changed while it was read: making the
        list may run the GC, whose finalisers may change the tree (``ZswapTree`` copies the
        entries before it makes any object, to the same end)."""
        while True:
            try:
                return list(view())
            except RuntimeError:
                continue

    def keys(self) -> list[int]:
        """The offsets, oldest first (a list)."""
        return self._snapshot(self._od.keys)

    def values(self) -> list[Any]:
        """The entries, oldest first (a list)."""
        return self._snapshot(self._od.values)

    def items(self) -> list[tuple[int, Any]]:
        """``(offset, entry)`` pairs, oldest first (a list)."""
        return self._snapshot(self._od.items)

    def __repr__(self) -> str:
        return (f"<ZswapTree of swap type {self._type!r}: {len(self._od)} of "
                f"{self._nr_pages} offsets>")
