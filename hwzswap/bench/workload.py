"""Workloads: a deterministic stream of frontswap operations over a fixed array of pages.

A :class:`Workload` is the unit the bench replays through every backend: the pages (an
``(N, 4096)`` uint8 array), the op stream (``store`` / ``load`` / ``invalidate`` with a swap
type, swap offsets and, for stores, indices into the page array), the configuration overrides
the workload needs (a pressure workload sizes the pool relative to its pages) and metadata
(name, seed, where the pages came from, the kernel structure the stream was cut into).

The stream carries the kernel's structure (:data:`Workload.structure`):

* a **store op is one reclaim pass**: up to ``reclaim_batch`` folios (default 32, mm/vmscan's
  ``SWAP_CLUSTER_MAX``), one ``swap_out_batch`` call. A folio is one page or a large folio
  (mTHP) of 2^k pages on consecutive swap slots; :attr:`Op.folios` lists the folio sizes of a
  pass in order (empty: every page its own order-0 folio);
* a **load op is one readahead cluster**: the faulting slot and the other live slots of its
  aligned window of ``load_batch`` slots (default 8: ``vm.page-cluster`` 3), one
  ``swap_in_batch`` call;
* the **folio-size mix** (``folio_mix``) says which share of the pages sits in folios of each
  size. The default, :data:`DEFAULT_FOLIO_MIX`, is an assumption (see its comment).

``reclaim_batch=B, load_batch=1, folio_mix=1`` gives exactly the stream the generators made
before the structure existed with ``batch=B`` (B = 32 was their default), seed for seed.

Built-in generators (:data:`WORKLOADS`) build one from pages and a seed:

* ``roundtrip`` -- store every page (slot i <- page i) in reclaim passes, load every slot once
  (faults in a shuffled order, each bringing in its readahead cluster), then invalidate every
  slot. The pool is sized to hold everything.
* ``pressure`` -- the pool limit is the pool pages *the backend under test* takes to hold a
  share (``pool_fraction``, 1/4) of the workload's pages (:attr:`Workload.pool_sizing`; the
  runner measures it, zsmalloc's fixed per-class slack included), so every backend, zstd
  included, holds about the same share of the working set, fills its pool and writes back; loads
  prefer recently loaded slots, and loaded slots are reclaimed again (as order-0 folios: zswap
  cannot swap in a large folio) in passes of ``reclaim_batch``, some with new content.
* ``mixed`` -- interleaved stores (some onto live slots: re-stores), loads and invalidates,
  with a pool limit of about half of what the live slots (about half of all) hold compressed,
  sized per backend as in ``pressure``, so every backend writes back.

A pool key the bench's own ``--config`` sets (``zswap.max_pool_percent``,
``memory.total_ram_mb``) wins over a workload's overrides and its per-backend sizing: the
runner then runs every backend at that config's limit (``hwzswap.bench.runner.pool_limit_plan``).

The generators use their own fixed PRNG (SplitMix64), so a seed means the same stream on every
machine and Python/numpy version. A workload is saved as a self-contained *workload file*
(:func:`save_workload` / :func:`load_workload`, format in ``docs/bench.md``) so the identical
stream can be recorded on one machine and replayed on another.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import os
import stat
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import zstandard

from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.errors import WorkloadError
from hwzswap.fileio import write_atomic

STORE = "store"
LOAD = "load"
INVALIDATE = "invalidate"
OP_KINDS = (STORE, LOAD, INVALIDATE)
_KIND_CODE = {k: i for i, k in enumerate(OP_KINDS)}

# mm/vmscan: a reclaim pass isolates up to SWAP_CLUSTER_MAX folios.
SWAP_CLUSTER_MAX = 32
#: vm.page-cluster's default (mm/swap.c): swap readahead reads 2^3 = 8 slots around a fault.
PAGE_CLUSTER = 3
DEFAULT_LOAD_BATCH = 1 << PAGE_CLUSTER
#: The largest folio: a PMD-mapped THP, 2 MiB = 512 pages.
MAX_FOLIO_PAGES = 512
#: Share of *pages* in each folio size (pages per folio -> share). An assumption, not a
#: measurement: Documentation/admin-guide/mm/transhuge.rst gives every mTHP size but the PMD one
#: ``enabled=never`` by default, so a stock desktop kernel swaps mostly order-0 folios; where
#: 64 KiB anonymous mTHP is switched on (OPPO deployed it on millions of Android phones, Barry
#: Song, linux-mm, January 2024) a large share of anonymous memory is 16-page folios. No public
#: per-order share of swapped-out pages on a desktop was found, so the default takes a quarter
#: of the pages in 16-page folios: enough for a batch device to see folio-sized batches, most
#: pages still order-0. ``--folio-pages`` changes it.
DEFAULT_FOLIO_MIX: tuple[tuple[int, float], ...] = ((1, 0.75), (16, 0.25))

FILE_MAGIC = b"HWZSWKLD"
FILE_VERSION = 2
#: Versions this hwzswap reads: 1 (no folios, no recorded structure) and 2.
READ_VERSIONS = (1, 2)
FILE_FORMAT = "hwzswap-workload"
_MIB = 1 << 20
#: zsmalloc keeps a partly filled zspage per size class: ~255 classes x up to 8 pages of
#: slack (a pool sized to hold every page uncompressed adds this).
ZS_SLACK_PAGES = 255 * 8


class Op(NamedTuple):
    """One frontswap operation.

    ``offsets`` are swap slots of swap ``type``; for a store (a reclaim pass), ``pages[i]`` is
    the index (into :attr:`Workload.pages`) of the page stored at ``offsets[i]`` and ``folios``
    the sizes in pages of the pass's folios, in order, summing to ``len(offsets)``; a folio's
    pages are consecutive in the op and sit on consecutive slots (empty ``folios``: every page
    is its own order-0 folio). A load carries one offset, or several distinct ones (a
    readahead cluster: one ``swap_in_batch``), and no page; an invalidate carries exactly one
    offset and no page.
    """

    kind: str
    type: int
    offsets: tuple[int, ...]
    pages: tuple[int, ...] = ()
    folios: tuple[int, ...] = ()


@dataclass
class Workload:
    """Pages + op stream + the config overrides and metadata needed to replay them anywhere."""

    name: str
    seed: int
    pages: np.ndarray
    ops: list[Op]
    config_overrides: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    #: The kernel structure the stream was cut into: ``reclaim_batch``, ``load_batch`` and
    #: ``folio_mix`` (``[[pages, share], ...]``). The ops themselves carry it; a workload
    #: file's is checked against them (:func:`structure_mismatch`), as the reports print it.
    structure: dict[str, Any] = field(default_factory=dict)
    #: ``{"held_fraction": f}``: the runner sets the pool limit to the pool pages it takes to
    #: hold ``f`` of the workload's pages, measured for each backend (unless the bench's config
    #: sets a pool key itself); None: the overrides' limit.
    pool_sizing: dict[str, Any] | None = None

    @property
    def nr_pages(self) -> int:
        return int(self.pages.shape[0])

    @property
    def nr_slots(self) -> int:
        """Swap slots the stream uses (highest offset + 1)."""
        return max((max(op.offsets) for op in self.ops), default=-1) + 1

    @property
    def types(self) -> list[int]:
        return sorted({op.type for op in self.ops})

    def page_hash(self) -> str:
        """sha256 of the page array (what the op stream's page indices point into)."""
        return hashlib.sha256(np.ascontiguousarray(self.pages).tobytes()).hexdigest()

    def counts(self) -> dict[str, int]:
        """How many ops and page operations the stream holds. ``loads`` counts pages loaded;
        ``load_ops`` (the load calls) is there only when loads come in batches, so a stream of
        single loads describes itself as it always did."""
        out = {"ops": len(self.ops), "store_pages": 0, "loads": 0, "invalidates": 0,
               "folios": 0, "large_folio_pages": 0}
        load_ops = 0
        for op in self.ops:
            if op.kind == STORE:
                out["store_pages"] += len(op.offsets)
                if op.folios:
                    out["folios"] += len(op.folios)
                    out["large_folio_pages"] += sum(f for f in op.folios if f > 1)
                else:
                    out["folios"] += len(op.offsets)
            elif op.kind == LOAD:
                out["loads"] += len(op.offsets)
                load_ops += 1
            else:
                out["invalidates"] += 1
        out["store_ops"] = sum(1 for op in self.ops if op.kind == STORE)
        if load_ops != out["loads"]:
            out["load_ops"] = load_ops
        return out

    def describe(self) -> dict[str, Any]:
        """The ``workload`` object of the results JSON."""
        return {
            "name": self.name,
            "seed": self.seed,
            "pages": self.nr_pages,
            "page_sha256": self.page_hash(),
            "corpus": dict(self.corpus),
            "params": dict(self.params),
            "config_overrides": json.loads(json.dumps(self.config_overrides)),
            "structure": json.loads(json.dumps(self.structure)),
            "pool_sizing": self.pool_sizing,
            "counts": self.counts(),
        }

    def reload_op(self) -> tuple[int, tuple[int, int]] | None:
        """The first load op that reads a slot an earlier load already read, with no store to
        it in between: its index and that slot ``(type, offset)`` (``None``: every stored
        page is loaded at most once).

        Such a stream needs loads that keep the entry (``zswap.exclusive_loads: false``, v9):
        with exclusive loads (today's kernel: a load frees the slot, the page lives on in the
        swap cache) the second load would read a free slot. The kernel never does that; a
        stream that swaps a page in twice without swapping it out in between models a kernel
        that kept the slot (:data:`EXCLUSIVE_LOAD_WORKLOADS` lists the built-ins that do not)."""
        read: set[tuple[int, int]] = set()
        for i, op in enumerate(self.ops):
            slots = [(op.type, o) for o in op.offsets]
            if op.kind == LOAD:
                again = next((slot for slot in slots if slot in read), None)
                if again is not None:
                    return i, again
                read.update(slots)
            else:  # a store gives the slot new content; an invalidate frees it
                read.difference_update(slots)
        return None

    def validate(self) -> None:
        """Check the stream is replayable: indices in range, loads only of live slots.

        Raises :class:`WorkloadError` naming the first bad op.
        """
        pages = self.pages
        if not (isinstance(pages, np.ndarray) and pages.dtype == np.uint8 and pages.ndim == 2
                and pages.shape[1] == PAGE_SIZE):
            raise WorkloadError(
                f"workload {self.name!r}: pages must be an (N, {PAGE_SIZE}) uint8 array, got "
                f"{getattr(pages, 'shape', type(pages).__name__)}"
            )
        n = self.nr_pages
        live: set[tuple[int, int]] = set()
        for i, op in enumerate(self.ops):
            where = f"workload {self.name!r}: op {i} ({op.kind})"
            if op.kind not in _KIND_CODE:
                raise WorkloadError(f"{where}: unknown op kind; expected one of {OP_KINDS}")
            if op.type < 0 or not op.offsets or min(op.offsets) < 0:
                raise WorkloadError(f"{where}: needs a type >= 0 and offsets >= 0")
            if op.kind == STORE:
                if len(op.pages) != len(op.offsets):
                    raise WorkloadError(f"{where}: {len(op.offsets)} offsets but "
                                        f"{len(op.pages)} pages")
                if len(set(op.offsets)) != len(op.offsets):
                    raise WorkloadError(f"{where}: a store batch names one offset twice")
                if min(op.pages) < 0 or max(op.pages) >= n:
                    raise WorkloadError(f"{where}: page index out of range 0..{n - 1}")
                if op.folios:
                    _check_folios(op, where)
                live.update((op.type, o) for o in op.offsets)
                continue
            if op.pages or op.folios:
                raise WorkloadError(f"{where}: takes no page and no folio")
            if op.kind == LOAD:
                if len(set(op.offsets)) != len(op.offsets):
                    raise WorkloadError(f"{where}: a load batch names one offset twice")
                for off in op.offsets:
                    if (op.type, off) not in live:
                        raise WorkloadError(
                            f"{where}: slot {op.type}:{off} holds nothing (never stored, or "
                            "invalidated)"
                        )
                continue
            if len(op.offsets) != 1:
                raise WorkloadError(f"{where}: takes exactly one offset")
            key = (op.type, op.offsets[0])
            if key not in live:
                raise WorkloadError(
                    f"{where}: slot {op.type}:{op.offsets[0]} holds nothing (never stored, or "
                    "invalidated)"
                )
            live.discard(key)


def _check_folios(op: Op, where: str) -> None:
    """A store's folios: sizes 1..MAX_FOLIO_PAGES summing to its page count, each on
    consecutive slots."""
    if sum(op.folios) != len(op.offsets) or min(op.folios) < 1 or max(op.folios) > MAX_FOLIO_PAGES:
        raise WorkloadError(
            f"{where}: folio sizes {list(op.folios[:8])}{'...' if len(op.folios) > 8 else ''} "
            f"must each be 1..{MAX_FOLIO_PAGES} pages and sum to its {len(op.offsets)} pages"
        )
    pos = 0
    for size in op.folios:
        first = op.offsets[pos]
        if op.offsets[pos:pos + size] != tuple(range(first, first + size)):
            raise WorkloadError(f"{where}: the {size}-page folio at slot {first} is not on "
                                "consecutive slots")
        pos += size


# -- deterministic PRNG ---------------------------------------------------------------------


class SplitMix64:
    """A tiny fixed PRNG (SplitMix64) so a seed gives the same stream everywhere.

    numpy's Generator does not promise identical streams across versions; workloads must.
    """

    __slots__ = ("_state",)
    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self._state = seed & self._MASK

    def next64(self) -> int:
        self._state = s = (self._state + 0x9E3779B97F4A7C15) & self._MASK
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform integer in ``[0, n)`` (rejection sampling: no modulo bias)."""
        if n <= 0:
            raise ValueError("below(n) needs n > 0")
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            r = self.next64()
            if r < limit:
                return r % n

    def random(self) -> float:
        """Uniform float in ``[0, 1)`` with 53 random bits."""
        return (self.next64() >> 11) / float(1 << 53)

    def shuffle(self, items: list[Any]) -> None:
        """Fisher-Yates, in place."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, n: int, k: int) -> list[int]:
        """``k`` distinct integers from ``range(n)`` (partial Fisher-Yates), in draw order."""
        if not 0 <= k <= n:
            raise ValueError(f"cannot draw {k} distinct values from {n}")
        swapped: dict[int, int] = {}
        out = []
        for i in range(k):
            j = i + self.below(n - i)
            vi, vj = swapped.get(i, i), swapped.get(j, j)
            swapped[j] = vi
            out.append(vj)
        return out


#: The largest seed: a workload file keeps its seed as a 64-bit unsigned number.
MAX_SEED = (1 << 64) - 1


def _seed_rng(seed: int, salt: str) -> SplitMix64:
    """One independent stream per purpose (page selection, op stream) from the user's seed."""
    digest = hashlib.sha256(f"hwzswap:{salt}:{seed}".encode()).digest()
    return SplitMix64(int.from_bytes(digest[:8], "little"))


def select_pages(pages: np.ndarray, n: int | None, source: str | None = None) -> np.ndarray:
    """The workload's pages: all of ``pages``, or ``n`` of them spread evenly and kept in corpus
    order (so a sample still covers every region and neighbouring pages stay neighbours).
    ``source``: the page file they came from, named in the errors (None: "the corpus")."""
    total = int(pages.shape[0])
    where = f"the page file {source}" if source else "the corpus"
    if total == 0:  # no --pages can help: --pages is at least 1
        raise WorkloadError(
            f"{where} holds no pages; pass a page file that holds pages "
            "(`hwzswap capture -o F.pages.zst -- CMD` makes one), or leave out --corpus for "
            "the bundled corpus")
    if n is None or n == total:
        return np.ascontiguousarray(pages)
    if n < 1:
        raise WorkloadError(f"--pages must be at least 1, got {n}")
    if n > total:
        raise WorkloadError(
            f"{where} holds {total} pages, fewer than the {n} asked for; pass --pages {total} "
            "or less, or a larger --corpus"
        )
    idx = np.linspace(0, total - 1, n).round().astype(np.int64)
    return np.ascontiguousarray(pages[idx])


# -- generators -----------------------------------------------------------------------------


def _pool_overrides(n: int, pool_fraction: float) -> dict[str, Any]:
    """Config overrides giving a pool limit of about ``pool_fraction`` of ``n`` pages.

    zswap's limit is ``max_pool_percent`` of total RAM; RAM is set to the working set (at least
    1 MiB) and the percentage chosen to land on the wanted pool size.
    """
    working = n * PAGE_SIZE
    total_mb = max(1, math.ceil(working / _MIB))
    pct = round(100 * working * pool_fraction / (total_mb * _MIB))
    return {
        "memory": {"total_ram_mb": total_mb},
        "zswap": {"max_pool_percent": max(1, min(100, pct))},
        "swap": {"nr_pages": n},
    }


def pool_limit_overrides(limit_pages: int) -> dict[str, Any]:
    """``memory.total_ram_mb`` and ``zswap.max_pool_percent`` whose limit
    (``total_ram_pages * percent // 100``, as the kernel) is ``limit_pages`` exactly when the
    two whole numbers can express it, else the nearest they can: one page off at most (a
    limit is ⌊2.56 × MB × percent⌋ pages, so 103 pages, say, cannot be written), the lower on
    a tie, then the smallest RAM. Earlier builds searched only up to four times the smallest
    RAM that holds the limit and rounded the percent, up to 12 pages off (102 for 103)."""
    per_mb = _MIB // PAGE_SIZE
    target = max(1, int(limit_pages))
    best: tuple[tuple[int, bool, int], int, int] | None = None
    for pct in range(1, 101):
        exact = 100 * target / (per_mb * pct)  # the RAM in MB that would give it
        for mb in {math.floor(exact), math.ceil(exact)}:
            if not 1 <= mb <= MAX_TOTAL_RAM_MB:
                continue
            got = mb * per_mb * pct // 100
            key = (abs(got - target), got > target, mb)
            if best is None or key < best[0]:
                best = (key, mb, pct)
    assert best is not None
    return {"memory": {"total_ram_mb": best[1]}, "zswap": {"max_pool_percent": best[2]}}


#: The largest ``memory.total_ram_mb`` the config takes.
MAX_TOTAL_RAM_MB = 1 << 24


#: The config keys a workload may override: the ones the generators write (the pool limit and
#: the swap size the stream needs). Anything else (the compressor, the engine, the swap file's
#: limits) belongs to the bench's own config and options, never to a workload file.
OVERRIDE_KEYS: dict[str, tuple[str, ...]] = {
    "memory": ("total_ram_mb",),
    "zswap": ("max_pool_percent",),
    "swap": ("nr_pages",),
}


def check_config_overrides(over: Any, where: str, slots: int | None = None) -> dict[str, Any]:
    """``config_overrides`` of a workload, checked: only :data:`OVERRIDE_KEYS`, each value as
    the config loader checks it, and ``swap.nr_pages`` no more than the ``slots`` the stream
    needs (when given). Returns a plain copy; raises :class:`WorkloadError` starting with
    ``where`` (the file) and naming ``config_overrides.<key>``."""
    from hwzswap.config import load_config
    from hwzswap.errors import ConfigError

    if not isinstance(over, Mapping):
        raise WorkloadError(f"{where}: config_overrides must be a mapping, got "
                            f"{type(over).__name__}{_REDO}")
    out: dict[str, Any] = {}
    for section, body in over.items():
        allowed = OVERRIDE_KEYS.get(section) if isinstance(section, str) else None
        if allowed is None:
            raise WorkloadError(
                f"{where}: config_overrides.{str(section)[:40]}: not a key a workload may "
                f"override (it may set only {_override_names()}){_REDO}")
        if not isinstance(body, Mapping):
            raise WorkloadError(f"{where}: config_overrides.{section} must be a mapping, got "
                                f"{type(body).__name__}{_REDO}")
        for key in body:
            if key not in allowed:
                raise WorkloadError(
                    f"{where}: config_overrides.{section}.{str(key)[:40]}: not a key a workload "
                    f"may override (it may set only {_override_names()}); the compressor and "
                    f"the engine come from the bench's --config and options{_REDO}")
        out[section] = dict(body)
    nr = out.get("swap", {}).get("nr_pages")
    most = None if slots is None else max(4 * slots, MAX_SPARE_SWAP_PAGES)
    if most is not None and nr.__class__ is int and nr > most:
        raise WorkloadError(
            f"{where}: config_overrides.swap.nr_pages is {nr}; a workload's swap may hold at "
            f"most {most} pages (four times the {slots} slots its stream uses, or "
            f"{MAX_SPARE_SWAP_PAGES}): a larger swap file measures nothing more and costs its "
            f"swap map in RAM; lower it in the file, or drop the key to size the swap from "
            f"the stream")
    try:
        load_config(out)
    except ConfigError as exc:
        msg = str(exc).replace("<dict>: ", "config_overrides.")
        raise WorkloadError(f"{where}: {msg}{_REDO}") from None
    return out


def _override_names() -> str:
    return ", ".join(f"{s}.{k}" for s, keys in OVERRIDE_KEYS.items() for k in keys)


def _pool_fraction(name: str, value: Any) -> float:
    """``pool_fraction`` of workload ``name``: the pool limit's share, a number in (0, 1]."""
    if not (isinstance(value, (int, float)) and 0 < value <= 1):
        raise WorkloadError(f"workload {name!r}: pool_fraction must be in (0, 1], got {value!r}")
    return value


def mix_text(mix: Iterable[Sequence[Any]]) -> str:
    """A folio mix ``[[pages, share], ...]`` as ``1:75% 16:25%``: how tables, titles and notes
    print one."""
    return " ".join(f"{size}:{float(share):.0%}" for size, share in mix)


def parse_folio_mix(spec: Any, name: str = "folio_mix") -> tuple[tuple[int, float], ...]:
    """A folio-size mix -> ``((pages, share), ...)`` sorted by size, shares summing to 1.

    Accepts ``"16"`` (every folio 16 pages), ``"1:3,16:1"`` (weights by pages), an int, a
    mapping ``{pages: weight}`` or pairs ``[[pages, weight], ...]`` (as a workload file keeps
    it). Sizes are powers of two from 1 to :data:`MAX_FOLIO_PAGES`, as the kernel's folios.
    """
    def bad(why: str) -> WorkloadError:
        return WorkloadError(f"{name}: {why}; give sizes in pages, optionally weighted by pages, "
                             f"e.g. 1, 16 or 1:3,16:1")

    pairs: list[tuple[Any, Any]]
    if isinstance(spec, str):
        pairs = []
        for part in spec.split(","):
            size, _, weight = part.strip().partition(":")
            try:
                pairs.append((int(size), float(weight) if weight else 1.0))
            except ValueError:
                raise bad(f"cannot read {part.strip()!r}") from None
    elif spec.__class__ is int:
        pairs = [(spec, 1.0)]
    elif isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif isinstance(spec, (list, tuple)):
        try:
            pairs = [(a, b) for a, b in spec]
        except (TypeError, ValueError):
            raise bad(f"{spec!r:.80} is not a list of (pages, weight) pairs") from None
    else:
        raise bad(f"{type(spec).__name__} is not a folio mix")
    if not pairs:
        raise bad("no folio size given")
    mix: dict[int, float] = {}
    for size, weight in pairs:
        try:
            size_i = int(size) if not isinstance(size, bool) else -1
        except (TypeError, ValueError):
            raise bad(f"folio size {size!r:.40} is not a whole number") from None
        if str(size_i) != str(size).strip() or size_i < 1 or size_i > MAX_FOLIO_PAGES \
                or size_i & (size_i - 1):
            raise bad(f"folio size {size!r:.40} is not a power of two from 1 to "
                      f"{MAX_FOLIO_PAGES}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise bad(f"weight {weight!r:.40} of size {size_i} is not a finite number >= 0")
        mix[size_i] = mix.get(size_i, 0.0) + float(weight)
    total = sum(mix.values())
    if not math.isfinite(total):  # finite weights whose sum overflows
        raise bad("the weights add up past the largest float; use smaller weights")
    if total <= 0:
        raise bad("every weight is 0")
    return tuple((size, round(w / total, 6)) for size, w in sorted(mix.items()) if w > 0)


def _mix_json(mix: tuple[tuple[int, float], ...]) -> list[list[Any]]:
    return [[size, share] for size, share in mix]


def _pick_size(mix: tuple[tuple[int, float], ...], rng: SplitMix64) -> int:
    """One folio size drawn by page share (no draw when the mix has one size)."""
    if len(mix) == 1:
        return mix[0][0]
    r = rng.random()
    acc = 0.0
    for size, share in mix:
        acc += share
        if r < acc:
            return size
    return mix[-1][0]


def folio_layout(n: int, mix: tuple[tuple[int, float], ...], rng: SplitMix64) -> list[int]:
    """Folio sizes covering slots 0..n-1 in order: each aligned block of the mix's largest size
    L becomes folios of one size drawn by page share (so each size gets its share of the pages);
    the last ``n % L`` slots are order-0."""
    big = max(size for size, _ in mix)
    out: list[int] = []
    for _ in range(n // big):
        size = _pick_size(mix, rng)
        out += [size] * (big // size)
    out += [1] * (n - sum(out))
    return out


def _store_passes(offsets: list[int], content: list[int], sizes: list[int],
                  reclaim_batch: int) -> list[Op]:
    """Reclaim passes of up to ``reclaim_batch`` folios over ``offsets`` (folio sizes
    ``sizes``, in order); ``content[i]`` is the page stored at ``offsets[i]``."""
    ops = []
    pos = 0
    for i in range(0, len(sizes), reclaim_batch):
        group = sizes[i : i + reclaim_batch]
        k = sum(group)
        folios = tuple(group) if any(s != 1 for s in group) else ()
        ops.append(Op(STORE, 0, tuple(offsets[pos : pos + k]), tuple(content[pos : pos + k]),
                      folios))
        pos += k
    return ops


def _window(off: int, load_batch: int, limit: int) -> range:
    """The aligned readahead window of ``load_batch`` slots around ``off`` (within 0..limit-1),
    as swap_cluster_readahead reads it."""
    start = off - off % load_batch
    return range(start, min(start + load_batch, limit))


def _structure(reclaim_batch: int, load_batch: int,
               mix: tuple[tuple[int, float], ...]) -> dict[str, Any]:
    return {"reclaim_batch": reclaim_batch, "load_batch": load_batch,
            "folio_mix": _mix_json(mix)}


#: The largest reclaim pass (folios) or readahead window (slots) a stream may be cut into: a
#: larger one is no kernel's (SWAP_CLUSTER_MAX is 32; vm.page-cluster's largest window is
#: 2^10), and a workload file that records one is refused on replay.
MAX_STRUCTURE = 1 << 20


def structure_problem(value: Any) -> str | None:
    """Why ``value`` is no ``reclaim_batch`` or ``load_batch`` (``None``: it is one): a whole
    number 1..:data:`MAX_STRUCTURE`. The one rule for both, applied where a stream is built
    (:func:`build_workload`), where a file is read back, by ``--reclaim-batch`` and
    ``--load-batch`` of ``bench`` and ``record`` and by a sweep file, so what ``record``
    writes ``bench`` replays."""
    if value.__class__ is not int or not 1 <= value <= MAX_STRUCTURE:
        try:
            shown = str(json.dumps(value, default=repr))
        except (ValueError, RecursionError):  # an int past Python's digit limit, say
            shown = f"a {type(value).__name__} too large to show"
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        return f"must be a whole number 1..{MAX_STRUCTURE}, got {shown}"
    return None


def _check_structure(name: str, reclaim_batch: int, load_batch: int,
                     folio_mix: Any) -> tuple[tuple[int, float], ...]:
    for what, value in (("reclaim_batch", reclaim_batch), ("load_batch", load_batch)):
        why = structure_problem(value)
        if why is not None:
            raise WorkloadError(f"workload {name!r}: {what} {why}")
    return parse_folio_mix(folio_mix, f"workload {name!r}: folio_mix")


def _initial_stores(n: int, seed: int, reclaim_batch: int,
                    mix: tuple[tuple[int, float], ...]) -> list[Op]:
    """Slot i <- page i for every page, in reclaim passes of folios (the folio layout draws
    from its own stream, so the rest of a stream does not depend on the mix)."""
    sizes = folio_layout(n, mix, _seed_rng(seed, "folios"))
    return _store_passes(list(range(n)), list(range(n)), sizes, reclaim_batch)


GenResult = tuple[list[Op], dict[str, Any], dict[str, Any]]


def gen_roundtrip(
    n: int, seed: int, reclaim_batch: int = SWAP_CLUSTER_MAX,
    load_batch: int = DEFAULT_LOAD_BATCH, folio_mix: Any = DEFAULT_FOLIO_MIX,
) -> GenResult:
    """Store all ``n`` pages (slot i <- page i) in reclaim passes of folios, fault every slot in
    a shuffled order (a fault on a slot already read in by an earlier cluster is a swap-cache
    hit: no op), each fault loading its readahead cluster, then invalidate every slot. The pool
    can hold the whole working set uncompressed (plus zsmalloc's per-class slack), so nothing
    is written back: codec and framework cost only.

    Every slot is loaded exactly once; with ``load_batch`` 1 the loads are the shuffled order
    one slot at a time, the stream the workload always had."""
    mix = _check_structure("roundtrip", reclaim_batch, load_batch, folio_mix)
    rng = _seed_rng(seed, "roundtrip")
    ops = _initial_stores(n, seed, reclaim_batch, mix)
    order = list(range(n))
    rng.shuffle(order)
    if load_batch == 1:
        ops += [Op(LOAD, 0, (o,)) for o in order]
    else:
        loaded = bytearray(n)
        for o in order:
            if loaded[o]:
                continue
            win = tuple(s for s in _window(o, load_batch, n) if not loaded[s])
            for s in win:
                loaded[s] = 1
            ops.append(Op(LOAD, 0, win))
    ops += [Op(INVALIDATE, 0, (o,)) for o in range(n)]
    # The limit must never be reached: room for every page uncompressed plus a partly used
    # zspage (up to 8 pages) in each of zsmalloc's ~255 size classes, at 50% of total RAM.
    pool_pages = n + ZS_SLACK_PAGES
    overrides = {
        "memory": {"total_ram_mb": max(1, math.ceil(2 * pool_pages * PAGE_SIZE / _MIB))},
        "zswap": {"max_pool_percent": 50},
        "swap": {"nr_pages": n},
    }
    return ops, overrides, {"structure": _structure(reclaim_batch, load_batch, mix)}


def gen_pressure(
    n: int,
    seed: int,
    reclaim_batch: int = SWAP_CLUSTER_MAX,
    load_batch: int = DEFAULT_LOAD_BATCH,
    folio_mix: Any = DEFAULT_FOLIO_MIX,
    pool_fraction: float = 0.25,
    window: int = 64,
    reuse: float = 0.5,
    dirty: float = 0.25,
) -> GenResult:
    """Store every page in reclaim passes of folios; then faults until ``n`` pages are loaded,
    a share ``reuse`` of them on one of the ``window`` most recently faulted slots, each loading
    its readahead cluster; once ``reclaim_batch`` distinct slots have been loaded they are
    reclaimed again (invalidate + store, a share ``dirty`` with new content) as order-0 folios
    (pages swapped in from zswap come back order-0). Everything is invalidated at the end.

    The pool limit is what the pool takes to hold ``pool_fraction`` of the pages, measured for
    each backend by the runner (``pool_sizing``); the overrides' limit of ``pool_fraction`` of
    the working set is what a runner without that measurement uses."""
    mix = _check_structure("pressure", reclaim_batch, load_batch, folio_mix)
    _pool_fraction("pressure", pool_fraction)
    rng = _seed_rng(seed, "pressure")
    ops = _initial_stores(n, seed, reclaim_batch, mix)
    content = list(range(n))  # page index each slot holds
    recent: list[int] = []
    pending: dict[int, None] = {}  # loaded since the last re-store, in order, distinct
    loaded = 0
    while loaded < n:
        if recent and rng.random() < reuse:
            off = recent[rng.below(len(recent))]
        else:
            off = rng.below(n)
        slots = (off,) if load_batch == 1 else tuple(_window(off, load_batch, n))
        ops.append(Op(LOAD, 0, slots))
        loaded += len(slots)
        recent.append(off)
        if len(recent) > window:
            del recent[0]
        for s in slots:
            pending[s] = None
        if len(pending) >= reclaim_batch:
            offs_all = tuple(pending)
            pending.clear()
            for i in range(0, len(offs_all), reclaim_batch):
                offs = offs_all[i : i + reclaim_batch]
                ops += [Op(INVALIDATE, 0, (o,)) for o in offs]
                for o in offs:
                    if rng.random() < dirty:
                        content[o] = rng.below(n)
                ops.append(Op(STORE, 0, offs, tuple(content[o] for o in offs)))
    ops += [Op(INVALIDATE, 0, (o,)) for o in range(n)]
    return ops, _pool_overrides(n, pool_fraction), {
        "structure": _structure(reclaim_batch, load_batch, mix),
        "pool_sizing": {"held_fraction": float(pool_fraction)},
    }


def gen_mixed(
    n: int,
    seed: int,
    reclaim_batch: int = SWAP_CLUSTER_MAX,
    load_batch: int = DEFAULT_LOAD_BATCH,
    folio_mix: Any = DEFAULT_FOLIO_MIX,
    pool_fraction: float = 0.5,
    page_ops: int | None = None,
    store_share: float = 0.4,
    load_share: float = 0.4,
) -> GenResult:
    """Random interleaving over ``n`` slots: reclaim passes of 1..``reclaim_batch`` folios on
    random slots (a large folio on an aligned run of slots; live slots are re-stores) with
    random pages, faults on random live slots (each loading the live slots of its readahead
    cluster) and invalidates of random live slots, until about ``page_ops`` (default ``3 n``)
    page operations, of which about ``store_share`` are stored pages, ``load_share`` loads and
    the rest invalidates. Every live slot is invalidated at the end.

    Stores are ``store_share`` of page ops and invalidates ``1 - store_share - load_share``, so
    in the steady state about half the slots are live (0.4 (1 - live) = 0.2 by default). The
    pool limit is ``pool_fraction`` of what those live slots hold: ``pool_fraction / 2`` of what
    the pool holds with every page stored, measured for each backend by the runner
    (``pool_sizing``); the overrides' limit of ``pool_fraction / 2`` of the working set is what a
    runner without that measurement uses."""
    mix = _check_structure("mixed", reclaim_batch, load_batch, folio_mix)
    _pool_fraction("mixed", pool_fraction)
    rng = _seed_rng(seed, "mixed")
    budget = 3 * n if page_ops is None else page_ops
    max_k = min(reclaim_batch, n)
    order0 = all(size == 1 for size, _ in mix)
    # mean pages of a folio drawn by page share: 1 / sum(share / size)
    mean_folio = 1.0 / sum(share / size for size, share in mix)
    # a folio's size drawn per folio: size s with probability (share_s / s) * mean_folio
    per_folio = tuple((size, share / size * mean_folio) for size, share in mix)
    # per-op probability of a store so that stored *pages* make up store_share of page ops
    w_store = store_share / ((1 + max_k) / 2 * (1.0 if order0 else mean_folio))
    # and of a load, so that loaded pages make up load_share: a readahead cluster brings in
    # the live slots of its window, about half of them (about half the slots are live)
    w_load = load_share / (1.0 if load_batch == 1 else 1 + (load_batch - 1) / 2)
    w_total = w_store + w_load + (1.0 - store_share - load_share)
    p_store, p_load = w_store / w_total, w_load / w_total
    live: list[int] = []
    where: dict[int, int] = {}
    ops: list[Op] = []
    done = 0

    def make_live(o: int) -> None:
        if o not in where:
            where[o] = len(live)
            live.append(o)

    while done < budget:
        r = rng.random()
        if not live or r < p_store:
            k = 1 + rng.below(max_k)
            if order0:
                offs = tuple(rng.sample(n, k))
                ops.append(Op(STORE, 0, offs, tuple(rng.below(n) for _ in offs)))
            else:
                offs_l: list[int] = []
                sizes: list[int] = []
                taken: set[int] = set()
                for _ in range(k):
                    size = _pick_size(per_folio, rng)
                    if size > n:
                        size = 1
                    for _try in range(8):
                        start = rng.below(n // size) * size
                        if not taken.intersection(range(start, start + size)):
                            break
                    else:
                        continue  # no free aligned run for this folio: the pass has one fewer
                    taken.update(range(start, start + size))
                    offs_l += range(start, start + size)
                    sizes.append(size)
                offs = tuple(offs_l)
                folios = tuple(sizes) if any(s != 1 for s in sizes) else ()
                ops.append(Op(STORE, 0, offs, tuple(rng.below(n) for _ in offs), folios))
            for o in offs:
                make_live(o)
            done += len(offs)
        elif r < p_store + p_load:
            off = live[rng.below(len(live))]
            if load_batch == 1:
                slots: tuple[int, ...] = (off,)
            else:
                slots = tuple(s for s in _window(off, load_batch, n) if s in where)
            ops.append(Op(LOAD, 0, slots))
            done += len(slots)
        else:
            off = live[rng.below(len(live))]
            ops.append(Op(INVALIDATE, 0, (off,)))
            i = where.pop(off)  # O(1) removal: move the last live slot into the hole
            last = live.pop()
            if last != off:
                live[i] = last
                where[last] = i
            done += 1
    ops += [Op(INVALIDATE, 0, (o,)) for o in sorted(live)]
    held_fraction = pool_fraction / 2  # the live slots are about half of all
    return ops, _pool_overrides(n, held_fraction), {
        "structure": _structure(reclaim_batch, load_batch, mix),
        "pool_sizing": {"held_fraction": float(held_fraction)},
    }


Generator = Callable[..., GenResult]

#: The built-in workloads whose streams load each stored page at most once
#: (:meth:`Workload.reload_op` is None), so they run with ``zswap.exclusive_loads: true``;
#: ``pressure`` and ``mixed`` load recently loaded slots again (v9's non-exclusive loads).
EXCLUSIVE_LOAD_WORKLOADS = ("roundtrip",)

WORKLOADS: dict[str, Generator] = {
    "roundtrip": gen_roundtrip,
    "pressure": gen_pressure,
    "mixed": gen_mixed,
}


def loads_slots_again(name: Any) -> bool:
    """Whether ``name`` is a built-in workload made to load slots again (``pressure``,
    ``mixed``): under ``zswap.exclusive_loads: true`` it is refused whatever its size (a
    stream of a few pages may happen not to), so a sweep's plan and the bench agree."""
    return isinstance(name, str) and name in WORKLOADS and name not in EXCLUSIVE_LOAD_WORKLOADS


def build_workload(
    name: str,
    pages: np.ndarray,
    seed: int = 0,
    corpus: Mapping[str, Any] | None = None,
    **params: Any,
) -> Workload:
    """Run the built-in generator ``name`` over ``pages`` (all of them) with ``seed``.

    ``params`` are the generator's keyword parameters (``reclaim_batch``, ``load_batch``,
    ``folio_mix`` and the workload's own); they are recorded as given, and the structure the
    stream was cut into is recorded in full in :attr:`Workload.structure`."""
    try:
        gen = WORKLOADS[name]
    except KeyError:
        raise WorkloadError(
            f"no built-in workload named {name!r}; choose one of {', '.join(WORKLOADS)} or give "
            "a workload file recorded with `hwzswap record`"
        ) from None
    n = int(pages.shape[0])
    if n < 1:
        raise WorkloadError(f"workload {name!r} needs at least one page")
    if type(seed) is not int or not 0 <= seed <= MAX_SEED:
        # a larger seed would go into a workload file that loading it then refuses
        raise WorkloadError(f"workload {name!r}: the seed must be a whole number 0..{MAX_SEED} "
                            f"(64 bits), got {str(seed)[:40]}")
    known = [p for p in inspect.signature(gen).parameters if p not in ("n", "seed")]
    unknown = [p for p in params if p not in known]
    if unknown:
        raise WorkloadError(
            f"workload {name!r} has no parameter {unknown[0]!r}; its parameters: "
            f"{', '.join(known)}"
        )
    ops, overrides, meta = gen(n, seed, **params)
    recorded = dict(params)
    if "folio_mix" in recorded:  # JSON-able and canonical, as a workload file keeps it
        recorded["folio_mix"] = _mix_json(parse_folio_mix(recorded["folio_mix"]))
    wl = Workload(
        name=name,
        seed=seed,
        pages=np.ascontiguousarray(pages, dtype=np.uint8),
        ops=ops,
        config_overrides=overrides,
        params=recorded,
        corpus=dict(corpus or {}),
        structure=meta["structure"],
        pool_sizing=meta.get("pool_sizing"),
    )
    wl.validate()
    return wl


# -- the workload file ----------------------------------------------------------------------


def _encode_ops(ops: list[Op]) -> bytes:
    """The ops section (the same bytes in versions 1 and 2): kinds, types, offsets, pages."""
    table = np.empty((len(ops), 3), dtype="<i4")
    offsets: list[int] = []
    page_idx: list[int] = []
    for i, op in enumerate(ops):
        table[i] = (_KIND_CODE[op.kind], op.type, len(op.offsets))
        offsets.extend(op.offsets)
        page_idx.extend(op.pages if op.kind == STORE else (-1,) * len(op.offsets))
    return encode_ops_section(table, offsets, page_idx)


def encode_ops_section(table: Any, offsets: Any, page_idx: Any) -> bytes:
    """The ops section's bytes from its three arrays (anything numpy takes): per op its kind
    (the index in :data:`OP_KINDS`), swap type and number of offsets; every offset; every
    page index (-1 for a load's or an invalidate's)."""
    return (np.asarray(table, dtype="<i4").tobytes()
            + np.asarray(offsets, dtype="<u4").tobytes()
            + np.asarray(page_idx, dtype="<i4").tobytes())


def _encode_folios(ops: list[Op]) -> bytes:
    """The folios section (version 2): per op its number of folios (0: none recorded, every
    page order-0), then every recorded folio size in order."""
    counts = np.asarray([len(op.folios) for op in ops], dtype="<i4")
    sizes = np.asarray([f for op in ops for f in op.folios], dtype="<i4")
    return counts.tobytes() + sizes.tobytes()


def _decode_ops(raw: bytes, count: int, entries: int, src: str) -> list[Op]:
    want = count * 12 + entries * 8
    if len(raw) != want:
        raise WorkloadError(f"{src}: op section is {len(raw)} bytes, header says {want}")
    table = np.frombuffer(raw, dtype="<i4", count=count * 3).reshape(count, 3)
    offsets = np.frombuffer(raw, dtype="<u4", count=entries, offset=count * 12).tolist()
    page_idx = np.frombuffer(raw, dtype="<i4", count=entries, offset=count * 12 + entries * 4)
    page_idx = page_idx.tolist()
    if count and int(table[:, 2].min()) < 1:
        raise WorkloadError(f"{src}: op table entry counts do not add up to {entries}")
    if int(table[:, 2].astype(np.int64).sum()) != entries:
        raise WorkloadError(f"{src}: op table entry counts do not add up to {entries}")
    ops = []
    pos = 0
    for code, typ, k in table.tolist():
        if not 0 <= code < len(OP_KINDS):
            raise WorkloadError(f"{src}: unknown op code {code} (op {len(ops)})")
        kind = OP_KINDS[code]
        offs = tuple(offsets[pos : pos + k])
        pgs = tuple(page_idx[pos : pos + k]) if kind == STORE else ()
        ops.append(Op(kind, typ, offs, pgs))
        pos += k
    return ops


def _decode_folios(raw: bytes, ops: list[Op], src: str) -> list[Op]:
    count = len(ops)
    if len(raw) < count * 4 or len(raw) % 4:
        raise WorkloadError(f"{src}: the folios section is {len(raw)} bytes, too short for "
                            f"{count} ops")
    counts = np.frombuffer(raw, dtype="<i4", count=count)
    sizes = np.frombuffer(raw, dtype="<i4", offset=count * 4).tolist()
    if count and int(counts.min()) < 0 or int(counts.astype(np.int64).sum()) != len(sizes):
        raise WorkloadError(f"{src}: the folios section's counts do not add up to its "
                            f"{len(sizes)} folio sizes")
    out = []
    pos = 0
    for op, k in zip(ops, counts.tolist()):
        if k:
            op = op._replace(folios=tuple(sizes[pos : pos + k]))
            pos += k
        out.append(op)
    return out


def save_workload(workload: Workload, path: str | Path, level: int = 10) -> Path:
    """Write ``workload`` as a self-contained workload file (version 2, see ``docs/bench.md``).

    The file is written to a temporary name and renamed, so a failed or interrupted write never
    leaves a truncated workload (or a temporary file) behind. The directory must exist.
    """
    workload.validate()
    # never write a file that loading refuses
    if not isinstance(workload.name, str) or not 0 < len(workload.name) <= 200:
        raise WorkloadError(f"a workload's name must be a string of 1 to 200 characters, got "
                            f"{str(workload.name)[:40]!r}")
    check_config_overrides(workload.config_overrides, f"workload {workload.name!r}",
                           slots=max(workload.nr_slots, workload.nr_pages))
    check_corpus(workload.corpus, f"workload {workload.name!r}", workload.nr_pages, hint="")
    if workload.structure:  # the reader's rule (_check_structure_field): refused here first
        for key in ("reclaim_batch", "load_batch"):
            why = structure_problem(workload.structure.get(key))
            if why is not None:
                raise WorkloadError(f"workload {workload.name!r}: structure.{key} {why}")
        mix = parse_folio_mix(workload.structure.get("folio_mix"),
                              f"workload {workload.name!r}: structure.folio_mix")
        why2 = structure_mismatch({**workload.structure, "folio_mix": _mix_json(mix)},
                                  workload.ops, workload.nr_pages)
        if why2 is not None:
            raise WorkloadError(f"workload {workload.name!r}: structure.{why2[0]} does not "
                                f"match the stream: {why2[1]}")
    cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)
    sections = {
        "ops": FileSection.of(cctx.compress(_encode_ops(workload.ops))),
        "pages": FileSection.of(cctx.compress(np.ascontiguousarray(workload.pages).tobytes())),
        "folios": FileSection.of(cctx.compress(_encode_folios(workload.ops))),
    }
    counts = workload.counts()
    counts["count"] = counts.pop("ops")
    fields = {
        "name": workload.name,
        "seed": workload.seed,
        "pages": workload.nr_pages,
        "page_sha256": workload.page_hash(),
        "corpus": workload.corpus,
        "params": workload.params,
        "structure": workload.structure,
        "pool_sizing": workload.pool_sizing,
        "config_overrides": workload.config_overrides,
        "nr_slots": workload.nr_slots,
        "types": workload.types,
        "ops": {"entries": sum(len(op.offsets) for op in workload.ops),
                "folio_sizes": sum(len(op.folios) for op in workload.ops), **counts},
    }
    return write_workload_file(path, fields, sections)


@dataclass(frozen=True)
class FileSection:
    """One section of a workload file as it is written (zstd frames): its length, its sha256
    and how to copy it into the file (from memory, or from a file it was streamed into)."""

    length: int
    sha256: str
    write_to: Callable[[BinaryIO], None]

    @staticmethod
    def of(blob: bytes) -> FileSection:
        """A section held in memory."""
        return FileSection(len(blob), hashlib.sha256(blob).hexdigest(), lambda f: f.write(blob))


def write_workload_file(path: str | Path, fields: Mapping[str, Any],
                        sections: Mapping[str, FileSection]) -> Path:
    """The one writer of the file's layout (version 2, ``docs/bench.md``): the magic, the
    version, the header (``fields`` plus the format, version, page size, the sections' layout,
    the generator and the header's checksum), then ``sections`` (ops, pages, folios) in order.

    Written to a temporary name and renamed, so a failed or interrupted write never leaves a
    truncated workload (or a temporary file) behind. The directory must exist."""
    from hwzswap import __version__

    path = Path(path)
    layout = {}
    pos = 0
    for key in ("ops", "pages", "folios"):
        sec = sections[key]
        layout[key] = {"offset": pos, "length": sec.length, "encoding": "zstd",
                       "sha256": sec.sha256}
        pos += sec.length
    header = {"format": FILE_FORMAT, "version": FILE_VERSION, "page_size": PAGE_SIZE,
              **fields, "sections": layout, "generator": f"hwzswap {__version__}"}
    header[HEADER_SHA_KEY] = _header_sha256(header)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(FILE_MAGIC + struct.pack("<II", FILE_VERSION, len(head)) + head)
            for key in ("ops", "pages", "folios"):
                sections[key].write_to(f)

    try:  # no directory is made: a missing one is the error below
        return write_atomic(path, write, parents=False)
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot write the workload file: "
                            f"{exc.strerror or exc}") from exc


#: The header's own checksum: sha256 of the header without this key, as canonical JSON (keys
#: sorted, no spaces). Files written before it have none and are read as they were; with it,
#: an edited field the stream cannot prove (name, seed, params, the pool size) is caught.
HEADER_SHA_KEY = "header_sha256"


#: Every key a workload header may hold (versions 1 and 2).
HEADER_KEYS = frozenset({
    "format", "version", "name", "seed", "page_size", "pages", "page_sha256", "corpus", "params",
    "structure", "pool_sizing", "config_overrides", "nr_slots", "types", "ops", "sections",
    "generator", HEADER_SHA_KEY,
})


def _header_sha256(header: Mapping[str, Any]) -> str:
    body = {k: v for k, v in header.items() if k != HEADER_SHA_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


#: What to do about a damaged or cut-short workload file (the end of such errors).
_REDO = "; re-copy the file, or record it again with `hwzswap record`"
#: The settings a recorded workload file fixes itself (the bench refuses them with one).
WORKLOAD_FILE_FIXES = ("corpus", "pages", "seed", "load_batch", "reclaim_batch", "folio_pages")
#: The swap a workload's config_overrides may ask beyond its stream's needs (pages; 256 MiB):
#: room that older files and hand-edited ones use, far from a 2**30-page swap map.
MAX_SPARE_SWAP_PAGES = 1 << 16


def _open_regular(path: Path) -> Any:
    """Open ``path`` for reading if it is a regular file; a FIFO or device would block or
    never end, so it is refused without blocking (``O_NONBLOCK``, then ``fstat``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the workload file: {exc.strerror}") from exc
    f = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        from hwzswap.yamlfile import file_kind

        f.close()
        raise WorkloadError(f"{path}: not a regular file ({file_kind(mode)}); a workload file "
                            "is written by `hwzswap record`")
    return f


def _whole_number(value: Any, what: str, src: Path, limit: int) -> int:
    """A header number that must be a whole number in 0..limit (bounded, so a damaged header
    gives a clear error rather than an overflow or a huge allocation)."""
    if value.__class__ is not int or not 0 <= value <= limit:
        raise WorkloadError(f"{src}: header field {what} is {str(value)[:40]!r}; expected a whole "
                            f"number from 0 to {limit} (file damaged?)")
    return value


def read_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """The parsed header of a workload file and where its data area starts."""
    path = Path(path)
    try:
        with _open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            fixed = f.read(16)
            if 8 <= len(fixed) < 16 and fixed[:8] == FILE_MAGIC:
                raise WorkloadError(f"{path}: {len(fixed)} bytes, shorter than a workload file's "
                                    f"16-byte fixed header{_REDO}")
            if len(fixed) < 16 or fixed[:8] != FILE_MAGIC:
                raise WorkloadError(
                    f"{path}: not a hwzswap workload file (no {FILE_MAGIC.decode()} magic); "
                    "record one with `hwzswap record`"
                )
            version, head_len = struct.unpack("<II", fixed[8:])
            if version not in READ_VERSIONS:
                newer = version > max(READ_VERSIONS)
                raise WorkloadError(
                    f"{path}: workload file version {version}; this hwzswap reads versions "
                    f"{', '.join(map(str, READ_VERSIONS))}: "
                    + ("upgrade hwzswap to read it, or record the workload again with this "
                       "one (`hwzswap record`)" if newer else
                       "the file is damaged, or not from a released hwzswap; re-copy it, or "
                       "record the workload again (`hwzswap record`)")
                )
            if head_len > size - 16:
                raise WorkloadError(f"{path}: the header is truncated ({head_len} bytes "
                                    f"announced, {size - 16} in the file){_REDO}")
            head = f.read(head_len)
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the workload file: {exc.strerror}") from exc
    try:
        header = json.loads(head)
    except (ValueError, RecursionError) as exc:
        raise WorkloadError(f"{path}: the header is not valid JSON ({str(exc)[:80]}): the "
                            f"file is damaged{_REDO}") from None
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise WorkloadError(f"{path}: header does not describe a {FILE_FORMAT}")
    hv = header.get("version")
    if hv.__class__ is not int or hv != version:
        raise WorkloadError(f"{path}: header version {str(json.dumps(hv))[:20]} does not match "
                            f"the file's version {version} (a whole number){_REDO}")
    unknown = sorted(set(header) - HEADER_KEYS)
    if unknown:  # a damaged key name (one of header_sha256's included) must not pass unseen
        raise WorkloadError(f"{path}: unknown header field {unknown[0][:40]!r}: the file is "
                            f"damaged, or from a newer hwzswap{_REDO}")
    if HEADER_SHA_KEY in header and header[HEADER_SHA_KEY] != _header_sha256(header):
        raise WorkloadError(f"{path}: the header fails its {HEADER_SHA_KEY} check: it was "
                            f"edited or damaged (a workload's name, seed, parameters and pool "
                            f"size are part of what it is){_REDO}")
    return header, 16 + head_len


def _inflate(blob: bytes, expect: int, key: str, src: Path) -> bytes:
    """Decompress one section into at most ``expect`` + 1 bytes, read in steps (a damaged
    frame cannot make it allocate more than it really holds), refusing up front a section
    whose announced size is beyond the memory limit
    (:func:`~hwzswap.bench.corpus.max_inflated_bytes`)."""
    from hwzswap.bench.corpus import inflate_limit_hint, max_inflated_bytes
    from hwzswap.errors import CorpusError

    try:
        limit = max_inflated_bytes()
    except CorpusError as exc:
        raise WorkloadError(str(exc)) from None
    if expect > limit:
        raise WorkloadError(
            f"{src}: the header announces a {key} section of {expect >> 20} MiB, more than "
            f"this machine may take; {inflate_limit_hint(limit)}. A damaged header, or a "
            f"workload too large for this machine{_REDO}")
    parts: list[bytes] = []
    got = 0
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as r:
            while got <= expect:
                chunk = r.read(min(_READ_STEP, expect + 1 - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
    except zstandard.ZstdError as exc:
        raise WorkloadError(f"{src}: the {key} section does not decompress ({exc}){_REDO}"
                            ) from None
    if got != expect:
        raise WorkloadError(f"{src}: the {key} section holds {got}"
                            f"{'+' if got > expect else ''} bytes, the header says {expect}"
                            f"{_REDO}")
    return b"".join(parts)


_READ_STEP = 16 << 20  # bytes per read of a section (no allocation the data does not fill)


def load_workload(path: str | Path) -> Workload:
    """Read and verify a workload file, version 1 or 2 (checksums, counts, replayability)."""
    path = Path(path)
    header, data_start = read_header(path)
    src = path
    try:
        version = header["version"]
        sections = header["sections"]
        if not isinstance(sections, dict):
            raise WorkloadError(f"{src}: header field sections is not an object")
        with _open_regular(path) as f:
            data_size = os.fstat(f.fileno()).st_size - data_start
            n = _whole_number(header["pages"], "pages", src, data_size * 1024 + 1024)
            ops_hdr = header["ops"]
            if not isinstance(ops_hdr, dict):
                raise WorkloadError(f"{src}: header field ops is not an object")
            # a zstd frame expands at most ~ 32 KiB per byte here; bound every count by that
            bound = max(1 << 20, data_size << 15)
            count = _whole_number(ops_hdr["count"], "ops.count", src, bound)
            entries = _whole_number(ops_hdr["entries"], "ops.entries", src, bound)
            expect = {"ops": count * 12 + entries * 8, "pages": n * PAGE_SIZE}
            if version >= 2:
                nfol = _whole_number(ops_hdr["folio_sizes"], "ops.folio_sizes", src, bound)
                expect["folios"] = (count + nfol) * 4
            blobs = {}
            end = 0  # where the last section read ends, in the data area
            for key, want in expect.items():
                sec = sections[key]
                if not isinstance(sec, dict):
                    raise WorkloadError(f"{src}: header field sections.{key} is not an object")
                if sec.get("encoding") not in SECTION_ENCODINGS:
                    raise WorkloadError(
                        f"{src}: header field sections.{key}.encoding is "
                        f"{str(json.dumps(sec.get('encoding')))[:40]}; this hwzswap reads "
                        f"{', '.join(map(repr, SECTION_ENCODINGS))} sections only (the file "
                        f"is damaged, or from a newer hwzswap){_REDO}")
                off = _whole_number(sec["offset"], f"sections.{key}.offset", src, 1 << 62)
                length = _whole_number(sec["length"], f"sections.{key}.length", src, 1 << 62)
                if off + length > data_size:
                    raise WorkloadError(f"{src}: the {key} section is truncated ({length} bytes "
                                        f"announced, {max(0, data_size - off)} in the file)"
                                        f"{_REDO}")
                f.seek(data_start + off)
                blob = f.read(length)
                if len(blob) != length:
                    raise WorkloadError(f"{src}: the {key} section is truncated{_REDO}")
                if hashlib.sha256(blob).hexdigest() != sec["sha256"]:
                    raise WorkloadError(f"{src}: the {key} section fails its sha256 check: the "
                                        f"file is damaged{_REDO}")
                blobs[key] = _inflate(blob, want, key, src)
                end = max(end, off + length)
            if data_size > end:  # a writer puts nothing after its sections: appended bytes
                raise WorkloadError(  # are damage (a botched copy, two files concatenated)
                    f"{src}: {data_size - end} extra bytes after the last section (the file "
                    f"should end at byte {data_start + end}, it has {data_start + data_size}): "
                    f"the file is damaged{_REDO}")
        ops = _decode_ops(blobs["ops"], count, entries, str(src))
        if "folios" in blobs:
            ops = _decode_folios(blobs["folios"], ops, str(src))
        page_size = header.get("page_size")
        if page_size.__class__ is not int or page_size != PAGE_SIZE:
            raise WorkloadError(f"{src}: header field page_size is "
                                f"{str(json.dumps(page_size))[:20]}; this hwzswap works in "
                                f"{PAGE_SIZE}-byte pages (the whole number {PAGE_SIZE})")
        pages = np.frombuffer(blobs["pages"], dtype=np.uint8).reshape(n, PAGE_SIZE).copy()
        for field_name in ("name", "params", "corpus"):
            _check_header_type(header, field_name, src)
        params = dict(header.get("params") or {})
        corpus = check_corpus(header.get("corpus") or {}, str(src), n)
        structure = header.get("structure")
        stated = not (version < 2 or structure is None or structure == {})
        if not stated:
            # absent or empty (recordings by `hwzswap serve` before 502502b wrote {}): what
            # the ops show, as for a version-1 file
            structure = _v1_structure(ops, params)
        else:
            structure = _check_structure_field(structure, src)
        sizing = header.get("pool_sizing")
        if sizing is not None:
            frac = sizing.get("held_fraction") if isinstance(sizing, dict) else None
            if isinstance(frac, bool) or not isinstance(frac, (int, float)) \
                    or not 0 < frac <= 1:
                raise WorkloadError(f"{src}: header field pool_sizing.held_fraction must be a "
                                    f"number in (0, 1], got {str(frac)[:40]!r}")
            sizing = {"held_fraction": float(frac)}
        wl = Workload(
            name=str(header["name"]),
            seed=_whole_number(header["seed"], "seed", src, MAX_SEED),
            pages=pages,
            ops=ops,
            config_overrides=check_config_overrides(
                header.get("config_overrides", {}), str(src),
                slots=max(n, max((max(op.offsets) for op in ops), default=-1) + 1)),
            params=params,
            corpus=corpus,
            structure=dict(structure),
            pool_sizing=sizing,
        )
    except WorkloadError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise WorkloadError(f"{src}: malformed workload header or data "
                            f"({type(exc).__name__}: {str(exc)[:120]}){_REDO}") from None
    except OSError as exc:
        raise WorkloadError(f"{src}: cannot read the workload file: {exc.strerror}") from exc
    if wl.page_hash() != header.get("page_sha256"):
        raise WorkloadError(f"{src}: pages do not match the header's sha256: the file is "
                            f"damaged{_REDO}")
    try:
        wl.validate()
    except WorkloadError as exc:  # the stream's own error names the op; this names the file
        raise WorkloadError(f"{src}: {exc}: the file is damaged or was edited{_REDO}") from None
    _check_consistency(header, wl, src)
    if stated:
        why = structure_mismatch(wl.structure, wl.ops, wl.nr_pages)
        if why is not None:
            raise WorkloadError(f"{src}: header field structure.{why[0]} does not match the "
                                f"stream: {why[1]}; the header was edited or damaged{_REDO}")
    return wl


_HEADER_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"), "params": (dict, "a mapping"), "corpus": (dict, "a mapping"),
}


def _check_header_type(header: Mapping[str, Any], key: str, src: Path) -> None:
    """Header field ``key`` has its type (a name is a short string; params and corpus are
    mappings, or absent for the optional ones)."""
    want, what = _HEADER_TYPES[key]
    value = header[key] if key == "name" else header.get(key)
    if value is None and key != "name":
        return
    if not isinstance(value, want) or (key == "name" and not 0 < len(value) <= 200):
        raise WorkloadError(f"{src}: header field {key} must be {what}"
                            f"{' of 1 to 200 characters' if key == 'name' else ''}, got "
                            f"{str(json.dumps(value))[:40]}{_REDO}")


def _check_structure_field(structure: Any, src: Path) -> dict[str, Any]:
    """A version-2 header's ``structure``: ``reclaim_batch`` and ``load_batch`` whole numbers
    >= 1 and a valid ``folio_mix``, returned canonical."""
    if not isinstance(structure, dict):
        raise WorkloadError(f"{src}: header field structure must be a mapping, got "
                            f"{type(structure).__name__}{_REDO}")
    out = dict(structure)
    for key in ("reclaim_batch", "load_batch"):
        value = structure.get(key)
        if structure_problem(value) is not None:
            raise WorkloadError(f"{src}: header field structure.{key} is "
                                f"{str(json.dumps(value))[:40]}; expected a whole number 1.."
                                f"{MAX_STRUCTURE}{_REDO}")
    try:
        out["folio_mix"] = _mix_json(parse_folio_mix(structure.get("folio_mix"),
                                                     "structure.folio_mix"))
    except WorkloadError as exc:
        raise WorkloadError(f"{src}: header field {exc}{_REDO}") from None
    return out



def structure_mismatch(structure: Mapping[str, Any], ops: Sequence[Op],
                       pages: int) -> tuple[str, str] | None:
    """Where a stated ``structure`` (checked: whole-number batches, a parsed folio mix) and
    the stream ``ops`` over ``pages`` pages disagree, as ``(field, why)`` (``None``: they
    agree as far as the ops show). A reclaim pass holds at most ``reclaim_batch`` folios, a
    readahead cluster at most ``load_batch`` slots, and every folio's size is one in
    ``folio_mix``, or order-0 (the generators store a tail shorter than the mix's largest
    folio, and pages loaded back, order-0); a mix with no order-0 share whose sizes all fit
    in the pages puts at least one large folio in the stream's stores (every generator does).
    A larger batch than the stream fills is no lie (a pass may be short), so it passes. The
    reports print the stated structure, so one the stream does not have would label its
    figures with a kernel shape they were not measured with."""
    reclaim = structure["reclaim_batch"]
    load = structure["load_batch"]
    mix_sizes = {int(size) for size, _ in structure["folio_mix"]}
    sizes = {1} | mix_sizes
    large = False
    for i, op in enumerate(ops):
        if op.kind == STORE:
            large = large or any(f > 1 for f in op.folios)
            folios = len(op.folios) or len(op.offsets)
            if folios > reclaim:
                return "reclaim_batch", (f"it is {reclaim}, but op {i} (store) is a reclaim "
                                         f"pass of {folios} folios")
            odd = next((f for f in op.folios if f not in sizes), None)
            if odd is not None:
                return "folio_mix", (f"it has folios of {mix_text(structure['folio_mix'])} "
                                     f"pages, but op {i} (store) holds a {odd}-page folio")
        elif op.kind == LOAD and len(op.offsets) > load:
            return "load_batch", (f"it is {load}, but op {i} (load) is a readahead cluster of "
                                  f"{len(op.offsets)} slots")
    if (not large and 1 not in mix_sizes and max(mix_sizes) <= pages
            and any(op.kind == STORE for op in ops)):
        return "folio_mix", (f"it has folios of {mix_text(structure['folio_mix'])} pages and "
                             f"no order-0 share, but no store holds a large folio")
    return None


#: The values ``corpus.source`` takes: a page file, the bundled corpus, or pages recorded
#: from kernel swap requests (``hwzswap serve --record``).
CORPUS_SOURCES = ("bundled", "file", "recorded")
#: How a workload file's sections are encoded: zstd frames (``docs/bench.md``).
SECTION_ENCODINGS = ("zstd",)


def check_corpus(corpus: Any, where: str, pages: int, hint: str = _REDO) -> dict[str, Any]:
    """A workload's ``corpus`` note (where its ``pages`` came from), checked where it says
    something: ``source`` one of :data:`CORPUS_SOURCES`, ``files`` names, ``sha256`` a hex
    digest, ``pages`` (the corpus's) and ``selected`` (taken from it: the workload's own
    count) whole numbers, the ``*_share`` figures in [0, 1]. Returns a plain copy; raises
    :class:`WorkloadError` starting with ``where``, naming ``corpus.<key>`` and ending with
    ``hint``. The bench
    prints and records the note, so one that says nonsense (``pages: -5``) is refused."""
    if not isinstance(corpus, Mapping):
        raise WorkloadError(f"{where}: corpus must be a mapping, got "
                            f"{type(corpus).__name__}{hint}")

    def bad(key: str, want: str) -> WorkloadError:
        try:
            shown = str(json.dumps(corpus[key], default=repr))
        except (ValueError, RecursionError):
            shown = f"a {type(corpus[key]).__name__} too large to show"
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        return WorkloadError(f"{where}: corpus.{key} is {shown}; expected {want}{hint}")

    out = dict(corpus)
    if "source" in out and out["source"] not in CORPUS_SOURCES:
        raise bad("source", f"one of {', '.join(CORPUS_SOURCES)}")
    files = out.get("files")
    if "files" in out and not (isinstance(files, list) and all(
            isinstance(f, str) and 0 < len(f) <= 4096 for f in files)):
        raise bad("files", "a list of file names")
    digest = out.get("sha256")
    if "sha256" in out and not (isinstance(digest, str) and len(digest) == 64
                                and all(c in "0123456789abcdef" for c in digest)):
        raise bad("sha256", "a sha256 digest (64 hex digits)")
    for key in ("pages", "selected"):
        value = out.get(key)
        if key in out and (value.__class__ is not int or value < 1):
            raise bad(key, "a whole number of pages, at least 1")
    if "selected" in out and out["selected"] != pages:
        raise bad("selected", f"the workload's own {pages} pages (the pages taken from the "
                              "corpus)")
    if "pages" in out and out["pages"] < out.get("selected", 1):
        raise bad("pages", f"at least the {out['selected']} pages selected from it")
    for key, value in out.items():
        if isinstance(key, str) and key.endswith("_share") and (
                isinstance(value, bool) or not isinstance(value, (int, float))
                or not 0 <= value <= 1):
            raise bad(key, "a share from 0 to 1")
    command = out.get("command")
    if command is not None and not isinstance(command, str) and not (
            isinstance(command, list) and all(isinstance(w, str) for w in command)):
        raise bad("command", "the recorded command (a string)")
    return out


def _check_consistency(header: Mapping[str, Any], wl: Workload, src: Path) -> None:
    """The header's summary of the stream (``nr_slots``, ``types``, the ``ops`` counts) must
    be the stream's: the header has no checksum of its own, so an edit to it, or damage the
    section checksums cannot see, shows here."""
    counts = wl.counts()
    counts["count"] = counts.pop("ops")
    said = header.get("ops", {})
    for key, value in counts.items():
        if key in said and said[key] != value:
            raise WorkloadError(f"{src}: header field ops.{key} is "
                                f"{str(json.dumps(said[key]))[:40]}, the stream has {value}: "
                                f"the header was edited or damaged{_REDO}")
    for key, value in (("nr_slots", wl.nr_slots), ("types", wl.types)):
        if key in header and header[key] != value:
            raise WorkloadError(f"{src}: header field {key} is "
                                f"{str(json.dumps(header[key]))[:40]}, the stream's is {value}: "
                                f"the header was edited or damaged{_REDO}")


def _v1_structure(ops: list[Op], params: Mapping[str, Any]) -> dict[str, Any]:
    """What a version-1 file's stream was cut into: reclaim passes of ``batch`` order-0 pages
    (default 32), loads of ``load_batch`` slots (default 1; cut from the shuffled order, not
    readahead windows)."""
    batch = params.get("batch", SWAP_CLUSTER_MAX)
    load = params.get("load_batch", 1)
    return {"reclaim_batch": batch if batch.__class__ is int else SWAP_CLUSTER_MAX,
            "load_batch": load if load.__class__ is int else 1,
            "folio_mix": [[1, 1.0]]}


def is_workload_file(path: str | Path) -> bool:
    """True when ``path`` is a regular file starting with the workload magic (a FIFO or device
    is never opened for reading here, so this cannot block)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(8) == FILE_MAGIC
    except OSError:
        return False


__all__ = [
    "WORKLOAD_FILE_FIXES",
    "DEFAULT_FOLIO_MIX",
    "DEFAULT_LOAD_BATCH",
    "EXCLUSIVE_LOAD_WORKLOADS",
    "INVALIDATE",
    "LOAD",
    "MAX_FOLIO_PAGES",
    "MAX_STRUCTURE",
    "STORE",
    "SWAP_CLUSTER_MAX",
    "WORKLOADS",
    "Op",
    "SplitMix64",
    "Workload",
    "build_workload",
    "check_config_overrides",
    "check_corpus",
    "folio_layout",
    "is_workload_file",
    "load_workload",
    "parse_folio_mix",
    "pool_limit_overrides",
    "read_header",
    "save_workload",
    "select_pages",
    "structure_mismatch",
    "structure_problem",
]
