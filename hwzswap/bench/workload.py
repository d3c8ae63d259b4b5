"""Workloads: a deterministic stream of frontswap operations over a fixed array of pages.

A :class:`Workload` is the unit the bench replays through every backend: the pages (an
``(N, 4096)`` uint8 array), the op stream (``store`` / ``load`` / ``invalidate`` with a swap
type, swap offsets and, for stores, indices into the page array; a load of several offsets is
a readahead batch), the configuration overrides
the workload needs (a pressure workload sizes the pool relative to its page count) and metadata
(name, seed, where the pages came from).

Built-in generators (:data:`WORKLOADS`) build one from pages and a seed:

* ``roundtrip`` -- store every page in reclaim batches of ``SWAP_CLUSTER_MAX`` (32), load every
  page in a shuffled order (one page a load, or ``load_batch`` pages a load: readahead), then
  invalidate every slot. The pool is sized to hold everything.
* ``pressure`` -- a pool limit of about a quarter of the working set, so the pool fills,
  writeback runs and loads come from the swap device; loads prefer recently loaded slots, and
  every batch of loaded slots is reclaimed again (some with new content).
* ``mixed`` -- interleaved stores (some onto live slots: re-stores), loads and invalidates,
  with a pool of about half the working set.

The generators use their own fixed PRNG (SplitMix64), so a seed means the same stream on every
machine and Python/numpy version. A workload is saved as a self-contained *workload file*
(:func:`save_workload` / :func:`load_workload`, format in ``docs/bench.md``) so the identical
stream can be recorded on one machine and replayed on another.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zstandard

from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.errors import WorkloadError

STORE = "store"
LOAD = "load"
INVALIDATE = "invalidate"
OP_KINDS = (STORE, LOAD, INVALIDATE)
_KIND_CODE = {k: i for i, k in enumerate(OP_KINDS)}

# mm/vmscan: reclaim works on lists of up to SWAP_CLUSTER_MAX pages.
SWAP_CLUSTER_MAX = 32

FILE_MAGIC = b"HWZSWKLD"
FILE_VERSION = 1
FILE_FORMAT = "hwzswap-workload"
_MIB = 1 << 20
# zsmalloc keeps a partly filled zspage per size class: ~255 classes x up to 8 pages of slack.
_ZS_SLACK_PAGES = 255 * 8


class Op(NamedTuple):
    """One frontswap operation.

    ``offsets`` are swap slots of swap ``type``; for a store, ``pages[i]`` is the index (into
    :attr:`Workload.pages`) of the page stored at ``offsets[i]``. A load carries one offset, or
    several distinct ones (a readahead batch: one ``swap_in_batch``), and no page; an
    invalidate carries exactly one offset and no page.
    """

    kind: str
    type: int
    offsets: tuple[int, ...]
    pages: tuple[int, ...] = ()


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
        out = {"ops": len(self.ops), "store_pages": 0, "loads": 0, "invalidates": 0}
        load_ops = 0
        for op in self.ops:
            if op.kind == STORE:
                out["store_pages"] += len(op.offsets)
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
            "counts": self.counts(),
        }

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
                live.update((op.type, o) for o in op.offsets)
                continue
            if op.pages:
                raise WorkloadError(f"{where}: takes no page")
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


def _seed_rng(seed: int, salt: str) -> SplitMix64:
    """One independent stream per purpose (page selection, op stream) from the user's seed."""
    digest = hashlib.sha256(f"hwzswap:{salt}:{seed}".encode()).digest()
    return SplitMix64(int.from_bytes(digest[:8], "little"))


def select_pages(pages: np.ndarray, n: int | None) -> np.ndarray:
    """The workload's pages: all of ``pages``, or ``n`` of them spread evenly and kept in corpus
    order (so a sample still covers every region and neighbouring pages stay neighbours)."""
    total = int(pages.shape[0])
    if n is None or n == total:
        return np.ascontiguousarray(pages)
    if n < 1:
        raise WorkloadError(f"--pages must be at least 1, got {n}")
    if n > total:
        raise WorkloadError(
            f"the corpus holds {total} pages, fewer than the {n} asked for; pass --pages {total} "
            "or a larger --corpus"
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


def _batches(offsets: list[int], batch: int) -> Iterable[list[int]]:
    for i in range(0, len(offsets), batch):
        yield offsets[i : i + batch]


def _positive(name: str, what: str, value: Any) -> int:
    if value.__class__ is not int or value < 1:
        raise WorkloadError(f"workload {name!r}: {what} must be a whole number >= 1, got "
                            f"{value!r}")
    return value


def gen_roundtrip(
    n: int, seed: int, batch: int = SWAP_CLUSTER_MAX, load_batch: int = 1
) -> tuple[list[Op], dict]:
    """Store all ``n`` pages (slot i <- page i) in reclaim batches, load them all in a shuffled
    order, invalidate every slot. The pool can hold the whole working set uncompressed (plus
    zsmalloc's per-class slack), so nothing is written back: codec and framework cost only.

    ``load_batch`` > 1 cuts the shuffled load order into batches of that many slots, each one
    load op (a readahead batch, the kernel's ``vm.page-cluster``; the last may be shorter).
    The order itself does not depend on it, so ``load_batch`` 1 is the stream of single loads
    the workload always had."""
    _positive("roundtrip", "batch", batch)
    _positive("roundtrip", "load_batch", load_batch)
    rng = _seed_rng(seed, "roundtrip")
    ops = [Op(STORE, 0, tuple(b), tuple(b)) for b in _batches(list(range(n)), batch)]
    order = list(range(n))
    rng.shuffle(order)
    ops += [Op(LOAD, 0, tuple(b)) for b in _batches(order, load_batch)]
    ops += [Op(INVALIDATE, 0, (o,)) for o in range(n)]
    # The limit must never be reached: room for every page uncompressed plus a partly used
    # zspage (up to 8 pages) in each of zsmalloc's ~255 size classes, at 50% of total RAM.
    pool_pages = n + _ZS_SLACK_PAGES
    overrides = {
        "memory": {"total_ram_mb": max(1, math.ceil(2 * pool_pages * PAGE_SIZE / _MIB))},
        "zswap": {"max_pool_percent": 50},
        "swap": {"nr_pages": n},
    }
    return ops, overrides


def gen_pressure(
    n: int,
    seed: int,
    batch: int = SWAP_CLUSTER_MAX,
    pool_fraction: float = 0.25,
    window: int = 64,
    reuse: float = 0.5,
    dirty: float = 0.25,
) -> tuple[list[Op], dict]:
    """Fill a pool of ~``pool_fraction`` of the working set, then ``n`` loads where a share
    ``reuse`` goes to the ``window`` most recently loaded slots; after every ``batch`` loads
    the distinct slots just loaded are reclaimed again (invalidate + store, a share ``dirty``
    of them with new content). Everything is invalidated at the end."""
    rng = _seed_rng(seed, "pressure")
    ops = [Op(STORE, 0, tuple(b), tuple(b)) for b in _batches(list(range(n)), batch)]
    content = list(range(n))  # page index each slot holds
    recent: list[int] = []
    pending: dict[int, None] = {}  # loaded since the last re-store, in order, distinct
    for _ in range(n):
        if recent and rng.random() < reuse:
            off = recent[rng.below(len(recent))]
        else:
            off = rng.below(n)
        ops.append(Op(LOAD, 0, (off,)))
        recent.append(off)
        if len(recent) > window:
            del recent[0]
        pending[off] = None
        if len(pending) >= batch:
            offs = tuple(pending)
            pending.clear()
            ops += [Op(INVALIDATE, 0, (o,)) for o in offs]
            for o in offs:
                if rng.random() < dirty:
                    content[o] = rng.below(n)
            ops.append(Op(STORE, 0, offs, tuple(content[o] for o in offs)))
    ops += [Op(INVALIDATE, 0, (o,)) for o in range(n)]
    return ops, _pool_overrides(n, pool_fraction)


def gen_mixed(
    n: int,
    seed: int,
    batch: int = SWAP_CLUSTER_MAX,
    pool_fraction: float = 0.5,
    page_ops: int | None = None,
    store_share: float = 0.4,
    load_share: float = 0.4,
) -> tuple[list[Op], dict]:
    """Random interleaving over ``n`` slots: stores of 1..``batch`` random slots (live ones are
    re-stores) with random pages, loads and invalidates of random live slots, until about
    ``page_ops`` (default ``3 n``) page operations, of which about ``store_share`` are stored
    pages, ``load_share`` loads and the rest invalidates (so about half the slots are live).
    Every live slot is invalidated at the end."""
    rng = _seed_rng(seed, "mixed")
    budget = 3 * n if page_ops is None else page_ops
    max_k = min(batch, n)
    # per-op probability of a store so that stored *pages* make up store_share of page ops
    w_store = store_share / ((1 + max_k) / 2)
    w_total = w_store + load_share + (1.0 - store_share - load_share)
    p_store, p_load = w_store / w_total, load_share / w_total
    live: list[int] = []
    where: dict[int, int] = {}
    ops: list[Op] = []
    done = 0
    while done < budget:
        r = rng.random()
        if not live or r < p_store:
            k = 1 + rng.below(max_k)
            offs = tuple(rng.sample(n, k))
            ops.append(Op(STORE, 0, offs, tuple(rng.below(n) for _ in offs)))
            for o in offs:
                if o not in where:
                    where[o] = len(live)
                    live.append(o)
            done += k
        elif r < p_store + p_load:
            ops.append(Op(LOAD, 0, (live[rng.below(len(live))],)))
            done += 1
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
    return ops, _pool_overrides(n, pool_fraction)


Generator = Callable[..., tuple[list[Op], dict]]

WORKLOADS: dict[str, Generator] = {
    "roundtrip": gen_roundtrip,
    "pressure": gen_pressure,
    "mixed": gen_mixed,
}


def build_workload(
    name: str,
    pages: np.ndarray,
    seed: int = 0,
    corpus: Mapping[str, Any] | None = None,
    **params: Any,
) -> Workload:
    """Run the built-in generator ``name`` over ``pages`` (all of them) with ``seed``."""
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
    known = [p for p in inspect.signature(gen).parameters if p not in ("n", "seed")]
    unknown = [p for p in params if p not in known]
    if unknown:
        raise WorkloadError(
            f"workload {name!r} has no parameter {unknown[0]!r}; its parameters: "
            f"{', '.join(known)}"
        )
    ops, overrides = gen(n, seed, **params)
    wl = Workload(
        name=name,
        seed=seed,
        pages=np.ascontiguousarray(pages, dtype=np.uint8),
        ops=ops,
        config_overrides=overrides,
        params=dict(params),
        corpus=dict(corpus or {}),
    )
    wl.validate()
    return wl


# -- the workload file ----------------------------------------------------------------------


def _encode_ops(ops: list[Op]) -> bytes:
    table = np.empty((len(ops), 3), dtype="<i4")
    offsets: list[int] = []
    page_idx: list[int] = []
    for i, op in enumerate(ops):
        table[i] = (_KIND_CODE[op.kind], op.type, len(op.offsets))
        offsets.extend(op.offsets)
        page_idx.extend(op.pages if op.kind == STORE else (-1,) * len(op.offsets))
    return (
        table.tobytes()
        + np.asarray(offsets, dtype="<u4").tobytes()
        + np.asarray(page_idx, dtype="<i4").tobytes()
    )


def _decode_ops(raw: bytes, count: int, entries: int, src: str) -> list[Op]:
    want = count * 12 + entries * 8
    if len(raw) != want:
        raise WorkloadError(f"{src}: op section is {len(raw)} bytes, header says {want}")
    table = np.frombuffer(raw, dtype="<i4", count=count * 3).reshape(count, 3)
    offsets = np.frombuffer(raw, dtype="<u4", count=entries, offset=count * 12).tolist()
    page_idx = np.frombuffer(raw, dtype="<i4", count=entries, offset=count * 12 + entries * 4)
    page_idx = page_idx.tolist()
    if int(table[:, 2].sum()) != entries or (count and int(table[:, 2].min()) < 1):
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


def save_workload(workload: Workload, path: str | Path, level: int = 10) -> Path:
    """Write ``workload`` as a self-contained workload file (see ``docs/bench.md``).

    The file is written to a temporary name and renamed, so a failed write never leaves a
    truncated workload behind.
    """
    from hwzswap import __version__

    workload.validate()
    path = Path(path)
    cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)
    ops_raw = _encode_ops(workload.ops)
    sections = {
        "ops": cctx.compress(ops_raw),
        "pages": cctx.compress(np.ascontiguousarray(workload.pages).tobytes()),
    }
    layout = {}
    pos = 0
    for key, blob in sections.items():
        layout[key] = {
            "offset": pos,
            "length": len(blob),
            "encoding": "zstd",
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        pos += len(blob)
    counts = workload.counts()
    counts["count"] = counts.pop("ops")
    header = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "name": workload.name,
        "seed": workload.seed,
        "page_size": PAGE_SIZE,
        "pages": workload.nr_pages,
        "page_sha256": workload.page_hash(),
        "corpus": workload.corpus,
        "params": workload.params,
        "config_overrides": workload.config_overrides,
        "nr_slots": workload.nr_slots,
        "types": workload.types,
        "ops": {"entries": sum(len(op.offsets) for op in workload.ops), **counts},
        "sections": layout,
        "generator": f"hwzswap {__version__}",
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(FILE_MAGIC + struct.pack("<II", FILE_VERSION, len(head)) + head)
            for blob in sections.values():
                f.write(blob)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WorkloadError(f"{path}: cannot write the workload file: {exc.strerror}") from exc
    return path


def read_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """The parsed header of a workload file and where its data area starts."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            fixed = f.read(16)
            if len(fixed) < 16 or fixed[:8] != FILE_MAGIC:
                raise WorkloadError(
                    f"{path}: not a hwzswap workload file (no {FILE_MAGIC.decode()} magic); "
                    "record one with `hwzswap record`"
                )
            version, head_len = struct.unpack("<II", fixed[8:])
            if version != FILE_VERSION:
                raise WorkloadError(
                    f"{path}: workload file version {version}; this hwzswap reads version "
                    f"{FILE_VERSION}"
                )
            head = f.read(head_len)
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the workload file: {exc.strerror}") from exc
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise WorkloadError(f"{path}: the header is not valid JSON ({exc}); file damaged?") from exc
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise WorkloadError(f"{path}: header does not describe a {FILE_FORMAT}")
    return header, 16 + head_len


def load_workload(path: str | Path) -> Workload:
    """Read and verify a workload file (checksums, counts, replayability)."""
    path = Path(path)
    header, data_start = read_header(path)
    src = str(path)
    try:
        sections = header["sections"]
        n = int(header["pages"])
        blobs = {}
        with open(path, "rb") as f:
            for key in ("ops", "pages"):
                sec = sections[key]
                f.seek(data_start + int(sec["offset"]))
                blob = f.read(int(sec["length"]))
                if len(blob) != int(sec["length"]):
                    raise WorkloadError(f"{src}: the {key} section is truncated")
                if hashlib.sha256(blob).hexdigest() != sec["sha256"]:
                    raise WorkloadError(f"{src}: the {key} section fails its sha256 check")
                blobs[key] = zstandard.ZstdDecompressor().decompress(blob)
        ops = _decode_ops(
            blobs["ops"], int(header["ops"]["count"]), int(header["ops"]["entries"]), src
        )
        raw_pages = blobs["pages"]
        if len(raw_pages) != n * PAGE_SIZE or int(header.get("page_size", 0)) != PAGE_SIZE:
            raise WorkloadError(f"{src}: page section holds {len(raw_pages)} bytes, header "
                                f"says {n} pages of {PAGE_SIZE}")
        pages = np.frombuffer(raw_pages, dtype=np.uint8).reshape(n, PAGE_SIZE).copy()
        wl = Workload(
            name=str(header["name"]),
            seed=int(header["seed"]),
            pages=pages,
            ops=ops,
            config_overrides=dict(header.get("config_overrides") or {}),
            params=dict(header.get("params") or {}),
            corpus=dict(header.get("corpus") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkloadError(f"{src}: malformed workload header or data ({exc!r})") from exc
    except zstandard.ZstdError as exc:
        raise WorkloadError(f"{src}: a section does not decompress ({exc})") from exc
    except OSError as exc:
        raise WorkloadError(f"{src}: cannot read the workload file: {exc.strerror}") from exc
    if wl.page_hash() != header.get("page_sha256"):
        raise WorkloadError(f"{src}: pages do not match the header's sha256")
    wl.validate()
    return wl


def is_workload_file(path: str | Path) -> bool:
    """True when ``path`` is a file starting with the workload magic."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == FILE_MAGIC
    except OSError:
        return False


__all__ = [
    "INVALIDATE",
    "LOAD",
    "STORE",
    "SWAP_CLUSTER_MAX",
    "WORKLOADS",
    "Op",
    "SplitMix64",
    "Workload",
    "build_workload",
    "is_workload_file",
    "load_workload",
    "read_header",
    "save_workload",
    "select_pages",
]
