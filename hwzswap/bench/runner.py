"""The cross-backend runner: one workload, every backend, the whole stack, verified and timed.

For each backend the runner builds a swap system (backend -> zswap cache -> pool -> writeback ->
swap file) with :func:`hwzswap.frontswap.system.open_zswap`, replays the workload's op stream
through it and checks every loaded page byte for byte against what was last stored at that slot.
In the same run it times the raw codec alone on the same pages (``compress`` per page, or
``compress_batch`` on the same batches for batch backends; ``decompress`` for the loads, or
``decompress_batch`` on the same readahead batches for batch backends), so the framework's own
cost shows as ``store_vs_raw`` / ``load_vs_raw``.

Measurement rules (see ``docs/bench.md``):

* only the call itself is inside a ``perf_counter_ns`` pair; the page arrays are built before,
  each loaded page is compared (then dropped) after its call's timing stops;
* the stream is cut into chunks of about :data:`CHUNK_PAGE_OPS` page operations and the raw
  codec runs on each chunk's pages right beside the stack (alternating which goes first), so
  background load on a shared machine hits both figures alike;
* host CPU is ``time.process_time_ns`` over the stack's chunks only (the whole process: a
  background writeback thread or an OpenCL runtime's threads count too). When a backend's
  ``counters()`` expose ``emulation_us`` (an emulated device doing its work on the host), that
  time (wall clock, converted to CPU at the chunk's CPU/wall ratio) is subtracted and reported
  apart as ``emulation_us_per_page``;
* before timing, each backend is warmed up (JIT compiles, OpenCL kernel builds, first-call
  imports) on a throwaway swap system and a few pages, and the whole codec-alone pass runs
  once, untimed, on the thread the timed raw chunks run on (so its malloc arena has grown
  before pass 1: :func:`_warm_up_raw_pass`);
* with ``zswap.background_writeback`` the writeback the bench finishes at the end of each
  stack chunk (:func:`quiesce_writeback`) is timed into the store figure;
* the harness's own objects are frozen out of Python's cyclic GC while measuring
  (``gc.freeze``), so a collection costs what the stack's own objects cost;
* with ``repeat`` > 1 the whole stream runs that many times on fresh swap systems; timings are
  the median over the passes (their min/max in ``spread``), every pass is verified, and what
  must be zero in a clean run (mismatches, lost pages, faults) is summed over the passes;
* a run whose device was marked failed (``device_fail_after`` timeouts in a row) is reported,
  not hidden: its stores refused without compressing count as work the stack did not do, and
  it makes the exit status 1 (a ``failed`` entry, phase ``device``).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    CompressedBatch,
    DecompressedBatch,
    ItemStatus,
    declared_gauges,
)
from hwzswap.backends.registry import close_backend, read_capabilities
from hwzswap.bench.corpus import same_filled_mask as corpus_masks
from hwzswap.bench.raw_guard import RawGuard
from hwzswap.bench.results import REJECT_REASONS, UNLIKE_WORK_SHARE, new_document
from hwzswap.bench.workload import INVALIDATE, LOAD, STORE, Workload, mix_text
from hwzswap.config import parameter_error
from hwzswap.errors import (
    BackendError,
    BackendLoadError,
    BackendUnavailableError,
    ConfigError,
    DeviceTimeoutError,
    DriverError,
    HwzswapError,
    InvalidParameterError,
    SwapBatchError,
    UnknownBackendError,
)

#: Page operations per chunk: the unit of raw/stack interleaving and of progress updates.
CHUNK_PAGE_OPS = 512
#: Pages run through a throwaway swap system before timing.
WARMUP_PAGES = 64
#: Share of a run's loads served from staged copies (``async``: pages still in flight,
#: uncompressed) from which its load figures are flagged: they then measure mostly copies, not
#: decompression, and the run is never named best for loads.
STAGED_LOAD_FLAG = 0.25
#: ``host_cpu_us_per_stored_page`` needs at least this many pages in chunks that only store,
#: and at least :data:`STORE_CPU_MIN_SHARE` of the stored pages: below that one-time costs
#: (an async drain of ~2.5 ms, the pipeline worker's lazy start) dominate a small sample
#: (``mixed`` at 256 pages: 24 of 351 stored pages, lz4 async 35 vs reclaim 15 µs).
STORE_CPU_MIN_PAGES = 512
STORE_CPU_MIN_SHARE = 0.25

# compiled op codes
_STORE1, _STOREN, _LOAD, _INVAL, _LOADN = 0, 1, 2, 3, 4

#: Counters that are wall-clock measurements and so differ between identical runs.
MEASURED_COUNTERS = frozenset({"swap_io_us"})


# -- compiling the stream --------------------------------------------------------------------


@dataclass
class _Chunk:
    ops: list[tuple]  # compiled stack ops: (code, type, offset(s), page(s), folios | None)
    load_expect: list[int]  # page index each loaded page of this chunk must be, in order
    raw_stores: list[tuple[int, Any, tuple[int, ...]]]  # (code, page bytes | batch array, idxs)
    raw_loads: list[tuple[int, ...]]  # page indices of each load op (one, or a readahead batch)
    page_ops: int
    store_pages: int = 0  # pages stored by this chunk's ops


@dataclass
class CompiledWorkload:
    """The op stream turned into ready-to-call arguments, built once and shared by backends."""

    workload: Workload
    page_bytes: list[bytes]
    same_filled: np.ndarray
    chunks: list[_Chunk]
    store_pages: int
    loads: int
    invalidates: int
    types: list[int]
    nr_slots: int
    max_batch: int
    max_load_batch: int = 1

    @property
    def page_ops(self) -> int:
        return self.store_pages + self.loads + self.invalidates


def same_filled_mask(pages: np.ndarray) -> np.ndarray:
    """zswap's same-filled test, vectorised: every 8-byte word of the page equal."""
    return corpus_masks(pages)[0]


def compile_workload(workload: Workload, chunk_page_ops: int = CHUNK_PAGE_OPS) -> CompiledWorkload:
    """Pre-build every argument the measured loop passes, and the expected page of every load.

    The stream is cut into chunks of about ``chunk_page_ops`` page operations; the stream's
    leading stores (the fill: every store before the first load or invalidate) always end a
    chunk, so in ``async`` mode the fill has been drained before the first fault. A stream
    that fits one chunk (``roundtrip`` at a few hundred pages) would otherwise load every page
    from its staged copy, still in flight, and its load figure would measure no decompression.
    Faults that come while later stores are in flight (``mixed``, ``pressure``'s re-stores)
    stay as they are: in the kernel a page under writeback is in the swap cache and a fault
    on it is a swap-cache hit (``loads_staged``, flagged in the results when a large share)."""
    pages = np.ascontiguousarray(workload.pages)
    page_bytes = [pages[i].tobytes() for i in range(pages.shape[0])]
    content: dict[tuple[int, int], int] = {}
    chunks: list[_Chunk] = []
    cur = _Chunk([], [], [], [], 0)
    store_pages = loads = invalidates = 0
    max_batch = max_load_batch = 1
    filling = True  # still in the stream's leading stores (the fill)
    for op in workload.ops:
        if filling and op.kind != STORE:
            filling = False
            if cur.ops:  # the fill ends its chunk (drained in async mode): see the docstring
                chunks.append(cur)
                cur = _Chunk([], [], [], [], 0)
        if op.kind == STORE:
            k = len(op.offsets)
            max_batch = max(max_batch, k)
            if k == 1:
                item: Any = page_bytes[op.pages[0]]
                cur.ops.append((_STORE1, op.type, op.offsets[0], item, None))
            else:
                item = pages[np.asarray(op.pages, dtype=np.intp)]
                item.flags.writeable = False  # a backend must not write into its input
                cur.ops.append((_STOREN, op.type, list(op.offsets), item,
                                list(op.folios) if op.folios else None))
            cur.raw_stores.append((_STORE1 if k == 1 else _STOREN, item, op.pages))
            for off, idx in zip(op.offsets, op.pages):
                content[(op.type, off)] = idx
            store_pages += k
            cur.page_ops += k
            cur.store_pages += k
        elif op.kind == LOAD:
            k = len(op.offsets)
            if k == 1:
                idx = content[(op.type, op.offsets[0])]
                cur.ops.append((_LOAD, op.type, op.offsets[0], page_bytes[idx], None))
                cur.load_expect.append(idx)
                cur.raw_loads.append((idx,))
            else:
                idxs = tuple(content[(op.type, off)] for off in op.offsets)
                cur.ops.append((_LOADN, op.type, list(op.offsets),
                                [page_bytes[i] for i in idxs], None))
                cur.load_expect.extend(idxs)
                cur.raw_loads.append(idxs)
                max_load_batch = max(max_load_batch, k)
            loads += k
            cur.page_ops += k
        elif op.kind == INVALIDATE:
            cur.ops.append((_INVAL, op.type, op.offsets[0], None, None))
            content.pop((op.type, op.offsets[0]), None)
            invalidates += 1
            cur.page_ops += 1
        if cur.page_ops >= chunk_page_ops:
            chunks.append(cur)
            cur = _Chunk([], [], [], [], 0)
    if cur.ops:
        chunks.append(cur)
    return CompiledWorkload(
        workload=workload,
        page_bytes=page_bytes,
        same_filled=same_filled_mask(pages),
        chunks=chunks,
        store_pages=store_pages,
        loads=loads,
        invalidates=invalidates,
        types=workload.types,
        nr_slots=workload.nr_slots,
        max_batch=max_batch,
        max_load_batch=max_load_batch,
    )


# -- the folio mix the stream got ------------------------------------------------------------

#: How far the folio mix a stream's stores got may stray from the requested one (total
#: variation: half the summed differences of the page shares, 0..1) before the results say so.
FOLIO_MIX_TOLERANCE = 0.1


def _pages_by_folio(ops: Iterable[Any]) -> dict[int, int]:
    """Pages stored in folios of each size by the store ops among ``ops``."""
    out: dict[int, int] = {}
    for op in ops:
        if op.kind != STORE:
            continue
        for size in (op.folios or (1,) * len(op.offsets)):
            out[size] = out.get(size, 0) + size
    return out


def _shares(pages: Mapping[int, int]) -> list[list[Any]]:
    total = sum(pages.values())
    return [[size, round(n / total, 6)] for size, n in sorted(pages.items())] if total else []


def _mix_distance(a: Iterable[Sequence[Any]], b: Iterable[Sequence[Any]]) -> float:
    da = {int(s): float(v) for s, v in a}
    db = {int(s): float(v) for s, v in b}
    return 0.5 * sum(abs(da.get(k, 0.0) - db.get(k, 0.0)) for k in set(da) | set(db))


def stream_folio_mix(workload: Workload) -> dict[str, Any]:
    """The folio-size mix the stream's stores actually have, beside the requested one.

    ``folio_mix_stored``: ``[[pages, share], ...]``, the share of the stored pages in folios
    of each size, over every store of the stream (what the engine and the device are handed).
    ``folio_mix_note``: null, or why it strays more than :data:`FOLIO_MIX_TOLERANCE` from the
    requested ``structure.folio_mix``: facts about the stream (a requested folio larger than
    the stream; too few aligned blocks of the largest size for the shares to come out; stores
    after the fill cut into other folios). Only reports what was generated."""
    stored = _pages_by_folio(workload.ops)
    got = _shares(stored)
    asked = (workload.structure or {}).get("folio_mix") or []
    out: dict[str, Any] = {"folio_mix_stored": got, "folio_mix_note": None}
    if not asked or not got:
        return out
    off = _mix_distance(asked, got)
    if off <= FOLIO_MIX_TOLERANCE:
        return out
    n = workload.nr_pages
    total = sum(stored.values())
    why: list[str] = []
    too_big = [int(size) for size, share in asked if int(size) > n and share > 0]
    if too_big:
        why.append(f"a {too_big[0]}-page folio cannot fit a {n}-page stream, so "
                   f"{'its' if len(too_big) == 1 else 'their'} pages were stored in smaller "
                   "folios")
    big = max(int(size) for size, _ in asked)
    if big > 1 and not too_big and n // big < 8:
        blocks = n // big
        why.append(f"the stream holds only {blocks} aligned {big}-page "
                   f"block{'s' if blocks != 1 else ''} (a large folio sits on one), so a few "
                   "draws decide its share and one seed gets what another does not (more "
                   "--pages evens it out)")
    fill: list[Any] = []
    for op in workload.ops:
        if op.kind != STORE:
            break
        fill.append(op)
    later = _pages_by_folio(workload.ops[len(fill):])
    if fill and later and not too_big:
        fill_mix = _shares(_pages_by_folio(fill))
        later_n = sum(later.values())
        if _mix_distance(asked, fill_mix) <= FOLIO_MIX_TOLERANCE:
            why.append(f"the fill (the stores before the first load) got {mix_text(fill_mix)}"
                       f", near the request; the {later_n} pages stored after it "
                       f"({later_n / total:.0%} of the stores) got {mix_text(_shares(later))}")
    out["folio_mix_note"] = (
        f"the stream's stores got folio pages {mix_text(got)}, requested {mix_text(asked)} "
        f"({off:.0%} of the pages in other sizes)" + (": " + "; ".join(why) if why else ""))
    return out


# -- configuration ---------------------------------------------------------------------------


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` in place (nested mappings key by key), on copies of its
    mappings, so ``base`` never shares (and a later merge never edits) the caller's dicts."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif isinstance(value, Mapping):
            base[key] = _merge({}, value)
        else:
            base[key] = value
    return base


def base_config(source: Any = None) -> Any:
    """The validated config the bench starts from (``None``: the built-in defaults, which are
    ``configs/default.yaml``'s). A path is read here; a caller that also needs the keys the
    config sets uses :func:`base_config_and_keys` (one read: a pipe is empty the second time)."""
    return base_config_and_keys(source)[0]


def base_config_and_keys(source: Any = None) -> tuple[Any, frozenset[str]]:
    """:func:`base_config` and :func:`config_keys_given` of ``source``, from one read of a file
    (``--config`` may be a pipe, which a second read finds empty)."""
    from hwzswap.config import load_config, load_config_and_keys

    if source is None:
        return load_config({}), frozenset()
    return load_config_and_keys(source)


#: The config keys that set the pool limit (``total_ram_pages * max_pool_percent // 100``):
#: the ones a workload's overrides and the runner's pool sizing set, and that a user's own
#: config wins over (see :func:`pool_limit_plan`).
POOL_LIMIT_KEYS = ("memory.total_ram_mb", "zswap.max_pool_percent")
#: Where a row's pool limit came from (``pool_limit_source``).
POOL_LIMIT_SOURCES = ("workload sizing", "workload", "your config", "defaults")


def config_keys_given(source: Any) -> frozenset[str]:
    """The dotted keys a user's config sets itself (``zswap.max_pool_percent``, ...): those
    written in its file or mapping; for a :class:`~hwzswap.config.ZswapConfig` (no text to
    read), those whose value differs from the built-in defaults; none for ``None``. The bench
    lets these keys win over a workload's overrides (:func:`backend_config`). A path is read
    (and checked) here: for the config too, use :func:`base_config_and_keys`."""
    return base_config_and_keys(source)[1]


def _without_keys(over: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``over`` (a two-level override mapping) less the dotted ``keys``."""
    drop = set(keys)
    out: dict[str, Any] = {}
    for section, body in over.items():
        if isinstance(body, Mapping):
            kept = {k: v for k, v in body.items() if f"{section}.{k}" not in drop}
            if kept:
                out[section] = kept
        elif section not in drop:
            out[section] = body
    return out


def backend_config(base: Any, backend: Backend, workload: Workload, batching: str | None = None,
                   overrides: Mapping[str, Any] | None = None,
                   keep: Iterable[str] = ()) -> Any:
    """``base`` with the compressor replaced by ``backend`` and the workload's overrides applied.

    The workload's overrides win over ``base`` except for the dotted keys in ``keep`` (the keys
    the user's own config sets: :func:`config_keys_given`), then ``overrides`` (the runner's:
    a pool limit sized for this backend); ``batching`` sets ``zswap.batching`` (None: the base
    config's). The swap file is always a fresh temporary one (``swap.path`` is not used; the
    row says so: ``swap_path_note``), sized for the stream's slots and pages.
    """
    from hwzswap.config import load_config

    from hwzswap.bench.workload import check_config_overrides

    d = base.to_dict()
    d["zswap"]["compressor"] = {"name": backend.name, "params": dict(backend.params)}
    # Checked here too, for a Workload built in code: only the keys a workload may set (never
    # the compressor the row names), each value valid, the swap no larger than the stream.
    wl_over = check_config_overrides(workload.config_overrides, f"workload {workload.name!r}",
                                     slots=max(workload.nr_slots, workload.nr_pages))
    _merge(d, _without_keys(wl_over, keep))
    if overrides:
        _merge(d, overrides)
    if batching is not None:
        d["zswap"]["batching"] = batching
    d["swap"]["path"] = None
    d["swap"]["nr_pages"] = max(int(d["swap"]["nr_pages"]), workload.nr_slots,
                                workload.nr_pages, 1)
    source = f"{base.source} + workload {workload.name!r} overrides"
    try:
        cfg = load_config(d)
    except ConfigError as exc:  # say which config this is, not "<dict>"
        raise ConfigError(str(exc).replace("<dict>: ", f"{source}: ")) from None
    cfg.source = source
    return cfg


def pool_limit_plan(workload: Workload, given: Iterable[str]
                    ) -> tuple[str, frozenset[str]]:
    """Where a row's pool limit comes from, and the config keys the user's config keeps.

    ``given``: the keys the user's config sets itself (:func:`config_keys_given`). When it sets
    either pool key (:data:`POOL_LIMIT_KEYS`), the limit is the user's config's, both keys as
    that config has them (one it does not set at its default), as every other command reads
    it: ``"your config"``; the workload's overrides of those keys and the runner's per-backend
    sizing (``pool_sizing``) are then off (a limit of the user's percent of a RAM sized per
    backend, or the reverse, would be a limit nobody chose). Else ``"workload sizing"`` for a
    workload that sizes its pool per backend (``pressure``, ``mixed``), ``"workload"`` for one
    whose overrides set the pool (``roundtrip``: room for every page), and ``"defaults"``
    (the built-in defaults) when neither sets it. A ``swap.nr_pages`` the user's config sets
    is kept too (raised to the stream's slots when smaller)."""
    given = frozenset(given)
    keep = given & {*POOL_LIMIT_KEYS, "swap.nr_pages"}
    if given & set(POOL_LIMIT_KEYS):
        return "your config", keep | set(POOL_LIMIT_KEYS)
    if workload.pool_sizing:
        return "workload sizing", keep
    over = workload.config_overrides or {}
    if any(k.split(".")[1] in (over.get(k.split(".")[0]) or {}) for k in POOL_LIMIT_KEYS):
        return "workload", keep
    return "defaults", keep


def pool_limit_note(source: str, cfg: Any, base: Any, workload: Workload,
                    sizing: Mapping[str, Any] | None, given: Iterable[str] = ()) -> str:
    """What the row's ``pool_limit_source`` means for its limit, in words."""
    limit = (f"{cfg.max_pool_pages} pages ({cfg.zswap.max_pool_percent} % of "
             f"memory.total_ram_mb {cfg.memory.total_ram_mb})")
    if source == "your config":
        off = (f"; workload {workload.name}'s own pool sizing (per backend, from what its pool "
               f"holds) is off" if workload.pool_sizing else
               f"; workload {workload.name}'s pool overrides are not applied"
               if workload.config_overrides else "")
        return (f"pool limit {limit} from {base.source}, which sets "
                f"{' and '.join(k for k in POOL_LIMIT_KEYS if k in set(given))}"
                f"{off}")
    if source == "workload sizing" and sizing:
        target = sizing.get("target_pages")
        off = ("" if target is None or target == cfg.max_pool_pages else
               f" ({target} pages, rounded: the config's whole MB and whole percent give "
               f"{cfg.max_pool_pages}, the nearest they can)")
        if "fraction_pages" in sizing:
            what = (f"the {sizing['fraction_pages']} pages its pool takes to hold "
                    f"{sizing['held_fraction']:g} of the workload's pages ("
                    f"{sizing['held_pages']} with every page stored)")
        else:
            what = (f"{sizing['held_fraction']:g} of the {sizing['held_pages']} pages its "
                    f"pool holds with every page stored")
        return (f"pool limit {limit}: workload {workload.name} sized it for this backend to "
                f"{what}{off}; set zswap.max_pool_percent or "
                f"memory.total_ram_mb in --config to run every backend at one limit")
    if source == "workload":
        return f"pool limit {limit}: set by workload {workload.name}"
    return f"pool limit {limit}: the built-in defaults"


def resolve_batching(spec: str | Sequence[str] | None, base: Any) -> list[str]:
    """``"page,reclaim,async"`` / a list / ``None`` (the config's ``zswap.batching``) -> modes;
    an unknown mode is a :class:`ConfigError` naming the choices."""
    from hwzswap.config import BATCHING_MODES

    if spec is None:
        return [base.zswap.batching]
    modes = [m.strip() for m in spec.split(",")] if isinstance(spec, str) else list(spec)
    modes = [m for m in modes if m]
    if not modes:
        raise ConfigError("--batching names no engine mode; choose from "
                          f"{', '.join(BATCHING_MODES)}")
    for m in modes:
        if m not in BATCHING_MODES:
            raise ConfigError(f"--batching: no engine mode {m!r}; choose from "
                              f"{', '.join(BATCHING_MODES)}")
    return list(dict.fromkeys(modes))


# -- one backend -----------------------------------------------------------------------------


def _percentiles(values_us: np.ndarray) -> dict[str, float | None]:
    if values_us.size == 0:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    p50, p99 = np.percentile(values_us, [50, 99])
    return {
        "p50": round(float(p50), 3),
        "p99": round(float(p99), 3),
        "mean": round(float(values_us.mean()), 3),
        "max": round(float(values_us.max()), 3),
    }


def _per_page_us(op_ns: list[int], op_k: list[int]) -> np.ndarray:
    """Per-page latency in µs: each batch's time split evenly over its pages."""
    if not op_ns:
        return np.zeros(0)
    ns = np.asarray(op_ns, dtype=np.float64)
    k = np.asarray(op_k, dtype=np.int64)
    return np.repeat(ns / k / 1000.0, k)


def _load_us(single_ns: list[int], batch_ns: list[int], batch_k: list[int]) -> np.ndarray:
    """Per-page load latency in µs: single loads as they are, each readahead batch's time split
    evenly over its pages (as batched stores are)."""
    single = np.asarray(single_ns, dtype=np.float64) / 1000.0
    if not batch_ns:
        return single
    return np.concatenate([single, _per_page_us(batch_ns, batch_k)])


def _emulation_us(counters: Mapping[str, Any]) -> float | None:
    """``emulation_us`` from a backend's ``counters()`` (read once per chunk edge)."""
    value = counters.get("emulation_us")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _jsonable(obj: Any) -> Any:
    """A JSON-ready copy of what a backend or the engine reports: text keys, plain numbers,
    and a number JSON has no word for (NaN, an infinity) as its text, so the document stays
    valid JSON that any reader parses."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else str(float(obj))
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


class _Meter:
    """Everything one backend's run accumulates."""

    def __init__(self, gauges: frozenset[str] = frozenset()) -> None:
        self.st_ns: list[int] = []
        self.st_k: list[int] = []
        self.ld_ns: list[int] = []  # single-page loads
        self.ldn_ns: list[int] = []  # readahead batches (swap_in_batch), of ldn_k pages
        self.ldn_k: list[int] = []
        self.inv_ns: list[int] = []
        self.drain_ns = 0  # async mode: waiting for in-flight compression (counted as stores)
        #: async mode: how the batches reached the device (``zswap.async_submit`` resolved)
        self.async_submit: str | None = None
        #: background writeback run by :func:`quiesce_writeback` at the end of the stack's
        #: chunks (counted as stores, like drain_ns), and the pages it wrote back
        self.quiesce_ns = 0
        self.quiesce_pages = 0
        self.raw_st_ns: list[int] = []
        self.raw_st_k: list[int] = []
        self.raw_ld_ns: list[int] = []
        self.raw_ldn_ns: list[int] = []
        self.raw_ldn_k: list[int] = []
        self.cpu_ns = 0
        self.dev_store_us = 0.0
        self.dev_load_us = 0.0
        self.emulation_us = 0.0  # wall time the host spent emulating a device
        self.emulation_cpu_us = 0.0  # the same, as CPU time (see run_backend)
        #: a stack chunk had ``emulation_us`` read on both sides (its rise, 0 or more, known)
        self.emulation_seen = False
        self.verified = 0
        self.mismatches: list[dict[str, Any]] = []
        self.n_mismatch = 0
        self.raw_mismatches = 0  # the codec alone failed to round-trip a page
        self.orig_bytes = 0
        self.comp_bytes = 0
        self.incompressible = 0
        # faults, by phase: the raw pass (pages whose compress / decompress failed), the
        # stack (calls that raised: pages of a store, pages of a load)
        self.raw_store_errors = 0
        self.raw_load_errors = 0
        self.stack_store_failures = 0
        self.stack_load_failures = 0
        # slots whose store failed and were left free (SwapBatchError.failed): the kernel keeps
        # those pages in memory, so a later load of one that raises is not a lost page
        self.resident: set[tuple[int, int]] = set()
        self.resident_loads = 0
        self.readahead_fallbacks = 0  # readahead calls that raised, then read page by page
        self.readahead_failed_items = 0  # pages a readahead returned as errors (partial)
        self.error_examples: list[str] = []
        # the backend's counters over the stack's chunks, over the raw pass's, and over the
        # whole pass (opening and closing the system included: faults.backend)
        self.stack_counters = CounterSpan(gauges)
        self.raw_counters = CounterSpan(gauges)
        self.pass_counters = CounterSpan(gauges)
        self.wall_ns = 0  # wall time of the stack's chunks
        #: wall and CPU time of the bench's own guarded reads of a watched driver's modelled
        #: time between the stack's ops (:meth:`DriverCalls.modeled_reader`): not the stack's
        self.side_wall_ns = 0
        self.side_cpu_ns = 0
        self.store_cpu_us = 0.0  # host CPU (emulation excluded) of the chunks of stores only
        self.store_cpu_pages = 0
        self.dev_waited_us = 0.0  # modelled time the host waited over the stack's chunks
        self.dev_busy_us = 0.0  # modelled engine-busy time over the stack's chunks
        #: the device's own overlap accounting over the stack's chunks: time at least one
        #: engine was busy, and the part of it the host was blocked on the device
        self.dev_union_us = 0.0
        self.dev_exposed_us = 0.0
        self.dev_parked_us = 0.0  # of which the host was parked waiting for another thread
        self.dev_union_known = True  # every chunk's counters reported both
        self.dev_clock = ""  # the device clock's kind (virtual, realtime)

    def note_error(self, phase: str, exc: BaseException) -> None:
        if len(self.error_examples) < 5:
            self.error_examples.append(f"{phase}: {type(exc).__name__}: {str(exc)[:160]}")


#: A page whose compression failed in the raw pass (distinct from None: incompressible).
_FAILED = object()


def _run_stack_chunk(system: Any, ops: list[tuple], m: _Meter, suspect: list[tuple[int, Any]],
                     device_us: Callable[[], float | None] | None, drain: bool) -> None:
    """The measured loop: one perf_counter_ns pair around each frontswap call, nothing else
    inside it (but the page-by-page reads that follow a readahead call that raised as a whole).

    Each loaded page is compared with the expected one right after its timed call and then
    dropped, as a kernel reuses the page frame; holding every page of the chunk would make
    each load fault in fresh memory and charge that to the stack. Loads that are not ``bytes``
    equal to the expected page go to ``suspect`` (load ordinal in the chunk, data; data
    :data:`_LOST`: the call raised, a readahead item failed, or a readahead call returned too
    few pages) for :func:`_check_suspects`. A call that raises a :class:`HwzswapError` (a
    device that failed for good) is counted as a failed store or load, not fatal. Readahead
    calls are ``partial``: an item that cannot be read comes back as its error, the rest of
    the cluster loaded (see :func:`_readahead_item_failed`).

    ``drain``: async mode; the chunk ends with ``system.drain()``, timed as store time, so
    compression still in flight is counted before the clock stops.
    """
    pc = time.perf_counter_ns
    swap_out = system.swap_out
    swap_out_batch = system.swap_out_batch
    swap_in = system.swap_in
    swap_in_batch = system.swap_in_batch
    swap_free = system.swap_free
    st_ns, st_k, ld_ns, inv_ns = m.st_ns, m.st_k, m.ld_ns, m.inv_ns
    nload = 0
    dev = device_us() if device_us is not None else None
    for code, typ, arg, page, folios in ops:
        if code == _LOAD:
            t0 = pc()
            try:
                data = swap_in(typ, arg)
            except HwzswapError as exc:
                data = _load_failed(m, typ, (arg,), exc)[0]
            t1 = pc()
            ld_ns.append(t1 - t0)
            if data.__class__ is not bytes or data != page:
                suspect.append((nload, data))
            nload += 1
            if dev is not None:
                now = device_us()
                m.dev_load_us += now - dev
                dev = now
        elif code == _STOREN:
            t0 = pc()
            try:
                if folios is None:
                    swap_out_batch(typ, arg, page)
                else:
                    swap_out_batch(typ, arg, page, folios=folios)
            except HwzswapError as exc:
                _store_failed(m, typ, arg, exc)
            t1 = pc()
            if m.resident:
                m.resident.difference_update((typ, o) for o in arg)
            st_ns.append(t1 - t0)
            st_k.append(len(arg))
            if dev is not None:
                now = device_us()
                m.dev_store_us += now - dev
                dev = now
        elif code == _STORE1:
            t0 = pc()
            try:
                swap_out(typ, arg, page)
            except HwzswapError as exc:
                _store_failed(m, typ, [arg], exc)
            t1 = pc()
            if m.resident:
                m.resident.discard((typ, arg))
            st_ns.append(t1 - t0)
            st_k.append(1)
            if dev is not None:
                now = device_us()
                m.dev_store_us += now - dev
                dev = now
        elif code == _INVAL:
            t0 = pc()
            swap_free(typ, arg)
            t1 = pc()
            inv_ns.append(t1 - t0)
        else:  # _LOADN: a readahead cluster, one call; each page checked as a single load is
            t0 = pc()
            try:
                datas = swap_in_batch(typ, arg, partial=True)
            except HwzswapError as exc:  # the call as a whole (nothing read)
                datas = _load_each(m, swap_in, typ, arg, exc)
            t1 = pc()
            m.ldn_ns.append(t1 - t0)
            m.ldn_k.append(len(arg))
            if len(datas) != len(arg):
                datas = _wrong_count(m, typ, arg, datas)
            for j, data in enumerate(datas):
                if data.__class__ is not bytes or data != page[j]:
                    if isinstance(data, HwzswapError):
                        data = _readahead_item_failed(m, typ, arg[j], data)
                    suspect.append((nload + j, data))
            nload += len(arg)
            del datas
            if dev is not None:
                now = device_us()
                m.dev_load_us += now - dev
                dev = now
    if drain:
        t0 = pc()
        system.drain()
        m.drain_ns += pc() - t0
        if dev is not None:
            m.dev_store_us += device_us() - dev


#: A load of a page the kernel kept in memory (its store failed): not verified, not lost.
_RESIDENT = object()
#: A page a load call did not bring back (it raised, or a readahead call returned too few
#: pages): counted in ``load_failures``, neither verified nor a mismatch.
_LOST = object()


def _store_failed(m: _Meter, typ: int, offsets: Sequence[int], exc: HwzswapError) -> None:
    """A store call raised: its failed pages (``SwapBatchError.failed``, else all) stay in
    memory, as the kernel keeps a page it could not swap out."""
    failed = exc.failed if isinstance(exc, SwapBatchError) else list(offsets)
    m.stack_store_failures += len(failed)
    m.resident.update((typ, o) for o in failed)
    for o in offsets:  # the slots the call did store or write are no longer resident
        if o not in failed:
            m.resident.discard((typ, o))
    m.note_error("stack store", exc)


def _load_failed(m: _Meter, typ: int, offsets: Sequence[int], exc: HwzswapError,
                 phase: str = "stack load") -> list[Any]:
    """A load call (or a readahead item) failed: :data:`_LOST` for each offset, or
    :data:`_RESIDENT` for one whose store had failed (the page never left memory)."""
    out: list[Any] = []
    for o in offsets:
        if (typ, o) in m.resident:
            m.resident_loads += 1
            out.append(_RESIDENT)
        else:
            m.stack_load_failures += 1
            out.append(_LOST)
    if any(x is _LOST for x in out):
        m.note_error(phase, exc)
    return out


def _readahead_item_failed(m: _Meter, typ: int, offset: int, exc: HwzswapError) -> Any:
    """One item of a ``partial`` readahead call came back as its error (a corrupt object, a
    device failure): the call loaded (and, with exclusive loads, freed) the rest of the
    cluster and kept this slot. Counted once (``faults.load.readahead_failed_items``, and
    lost or resident as a single load is), with an example naming the item."""
    m.readahead_failed_items += 1
    return _load_failed(m, typ, (offset,), exc,
                        f"stack readahead item (type {typ} offset {offset})")[0]


def _load_each(m: _Meter, swap_in: Callable[[int, int], bytes], typ: int,
               offsets: Sequence[int], exc: HwzswapError) -> list[Any]:
    """A readahead call raised ``exc`` as a whole (a slot of the cluster not in use, such as
    a page whose store failed and stayed in memory; a batch call that broke the contract as a
    whole): it read and freed nothing, so each page is read alone, as the kernel reads the
    faulting page when its readahead fails, and only the pages that cannot be read are
    counted lost. The call's error is kept (``faults.load.readahead_fallbacks``, an example),
    so a readahead path that always raises is not silently measured page by page."""
    m.readahead_fallbacks += 1
    m.note_error("stack readahead (read again page by page)", exc)
    out: list[Any] = []
    for o in offsets:
        try:
            out.append(swap_in(typ, o))
        except HwzswapError as exc:
            out.append(_load_failed(m, typ, (o,), exc)[0])
    return out


def _wrong_count(m: _Meter, typ: int, offsets: Sequence[int], datas: Sequence[Any]
                 ) -> list[Any]:
    """A readahead call returned a number of pages other than the slots it was asked for.

    Too few: the pages it did return are checked in order and each missing one is lost (a
    page that did not come back, never counted verified). Too many: no page can be matched to
    its slot, so every page of the cluster is lost. Either way the exit status is 1."""
    n = len(offsets)
    m.note_error("stack load", BackendError(
        f"swap_in_batch returned {len(datas)} pages for {n} slots "
        f"(swap type {typ}, offsets {list(offsets)[:4]}{' ...' if n > 4 else ''})"))
    keep = list(datas) if len(datas) < n else []
    lost = n - len(keep)
    m.stack_load_failures += lost
    return keep + [_LOST] * lost


def _compress_each(compress: Callable[[Any], Any], pages: list[bytes], m: _Meter) -> list[Any]:
    """``compress`` on each page, a failed page as :data:`_FAILED` (counted)."""
    outs: list[Any] = []
    for p in pages:
        try:
            outs.append(compress(p))
        except HwzswapError as exc:
            outs.append(_FAILED)
            m.raw_store_errors += 1
            m.note_error("raw compress", exc)
    return outs


def _batch_items(outs: Any, n: int, m: _Meter) -> list[Any]:
    """A ``compress_batch`` result (the old list or a :class:`CompressedBatch`) as one item per
    page: bytes-like, None (incompressible) or :data:`_FAILED` (counted)."""
    if isinstance(outs, CompressedBatch):
        items: list[Any] = []
        for i in range(len(outs)):
            st = outs.status[i]
            if st == ItemStatus.OK:
                items.append(outs.item_bytes(i))
            elif st == ItemStatus.INCOMPRESSIBLE:
                items.append(None)
            else:
                items.append(_FAILED)
                m.raw_store_errors += 1
                if len(m.error_examples) < 5:
                    m.error_examples.append(f"raw compress_batch item {i}: "
                                            f"{outs.errors.get(i, 'failed')[:160]}")
        outs = items
    else:
        outs = list(outs)
        for i, o in enumerate(outs):
            if isinstance(o, BaseException):
                outs[i] = _FAILED
                m.raw_store_errors += 1
                m.note_error("raw compress_batch item", o)
    if len(outs) != n:
        raise BackendError(f"compress_batch returned {len(outs)} items for {n} pages")
    return outs


def _at_most(call: Callable[[Any], Any], cap: int | None) -> Callable[[Any], Any]:
    """A batch call that hands the device at most ``cap`` items at a time (its
    ``max_batch``), split as the engine splits its calls (:func:`in_calls_of`), with the
    driver's own result shapes put back together in order (:func:`_joined`); ``call`` itself
    when there is no cap."""
    from hwzswap.frontswap.compressor import in_calls_of

    if cap is None:
        return call
    return lambda items: in_calls_of(call, items, cap, _joined)


def _joined(parts: list[Any]) -> Any:
    """The results of one batch's calls as one, in the contract's shapes: pages arrays or
    DecompressedBatch (decompress_batch), item lists or CompressedBatch (compress_batch)."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    if any(isinstance(p, DecompressedBatch) for p in parts):
        return DecompressedBatch.concat([p if isinstance(p, DecompressedBatch)
                                         else DecompressedBatch(p) for p in parts])
    if any(isinstance(p, CompressedBatch) for p in parts):
        return CompressedBatch.concat([p if isinstance(p, CompressedBatch)
                                       else CompressedBatch.from_items(list(p)) for p in parts])
    return [item for part in parts for item in part]


def _run_raw_chunk(backend: Backend, batch: bool, chunk: _Chunk, cw: CompiledWorkload,
                   comp: dict[int, Any], m: _Meter, skip_same: bool = True) -> None:
    """The codec alone on the chunk's pages, timed per store op / per load op like the stack.

    ``skip_same``: zswap keeps same-filled pages as their word, uncompressed
    (``zswap.same_filled_pages``, the default), so they are left out of the ratio; with that
    policy off zswap compresses them like any page, and they count.

    A device error (any :class:`HwzswapError`) is counted for its page, not fatal: a failed
    compression leaves the page out of the ratio and of the raw loads, a failed decompression
    is counted and not compared. An op that hits one is redone page by page (for its count),
    inside its timing."""
    pc = time.perf_counter_ns
    compress = backend.compress
    cap = backend.capabilities.max_batch
    compress_batch = _at_most(backend.compress_batch, cap)
    decompress = backend.decompress
    decompress_batch = _at_most(backend.decompress_batch, cap)
    page_bytes = cw.page_bytes
    raw_st_ns, raw_st_k, raw_ld_ns = m.raw_st_ns, m.raw_st_k, m.raw_ld_ns
    outs_all: list[tuple[tuple[int, ...], Sequence[Any], str]] = []
    for code, item, idxs in chunk.raw_stores:
        call = "compress"
        if code == _STORE1:
            t0 = pc()
            try:
                out = compress(item)
            except HwzswapError as exc:
                out = _FAILED
                m.raw_store_errors += 1
                m.note_error("raw compress", exc)
            t1 = pc()
            outs: Sequence[Any] = (out,)
        elif batch:
            call = "compress_batch"
            t0 = pc()
            try:
                res: Any = compress_batch(item)
            except HwzswapError as exc:  # the whole call failed: redo it page by page
                m.note_error("raw compress_batch", exc)
                res = None
                outs = _compress_each(compress, [page_bytes[i] for i in idxs], m)
            t1 = pc()
            if res is not None:
                outs = _batch_items(res, len(idxs), m)
        else:
            pages = [page_bytes[i] for i in idxs]
            t0 = pc()
            try:
                outs = [compress(p) for p in pages]
            except HwzswapError:
                outs = _compress_each(compress, pages, m)
            t1 = pc()
        raw_st_ns.append(t1 - t0)
        raw_st_k.append(len(idxs))
        outs_all.append((idxs, outs, call))
    same = cw.same_filled
    for idxs, outs, call in outs_all:
        for idx, out in zip(idxs, outs):
            comp[idx] = out
            if out is _FAILED:
                continue
            if out is not None and not isinstance(out, (bytes, bytearray, memoryview)):
                try:
                    memoryview(out)
                except TypeError:  # the engine refuses it too (a DriverError, result_type)
                    raise DriverError(
                        f"driver {backend.name!r}: {call} returned a {type(out).__name__} for a "
                        f"page; a compressed page is bytes-like (None: incompressible)") from None
            if skip_same and same[idx]:
                continue
            m.orig_bytes += PAGE_SIZE
            if out is None:
                m.comp_bytes += PAGE_SIZE
                m.incompressible += 1
            else:
                m.comp_bytes += min(memoryview(out).nbytes, PAGE_SIZE)
    # Each output is compared with its page right after its timed call, as the stack's loads
    # are (_run_stack_chunk): the same untimed 4 KiB read between calls, so both loops see the
    # same cache state, and a codec that does not round-trip on its own is caught here.
    # A readahead batch: one decompress_batch for a batch backend, else decompress per page,
    # timed as one op, as the stack's swap_in_batch does it; each page checked after the call.
    for idxs in chunk.raw_loads:
        if len(idxs) == 1:
            idx = idxs[0]
            data = comp[idx]
            if data is None or data is _FAILED:
                continue  # the codec alone has nothing to decompress for this page
            t0 = pc()
            try:
                out = decompress(data)
            except HwzswapError as exc:
                out = None
                m.raw_load_errors += 1
                m.note_error("raw decompress", exc)
            t1 = pc()
            raw_ld_ns.append(t1 - t0)
            if out is not None and out != page_bytes[idx]:
                m.raw_mismatches += 1
            continue
        todo = [i for i in idxs if comp[i] is not None and comp[i] is not _FAILED]
        if not todo:
            continue
        items = [comp[i] for i in todo]
        ok: list[bool] | None = None
        if batch:
            t0 = pc()
            try:
                arr = decompress_batch(items)
            except HwzswapError as exc:  # the whole call failed: redo it page by page
                m.note_error("raw decompress_batch", exc)
                arr = None
                outs = []
                for d in items:
                    try:
                        outs.append(decompress(d))
                    except HwzswapError as exc1:
                        outs.append(None)
                        m.note_error("raw decompress", exc1)
            t1 = pc()
            if arr is None:
                pass
            elif isinstance(arr, DecompressedBatch):
                bad = set(arr.failed())
                outs = [None if j in bad else row.tobytes() for j, row in enumerate(arr.pages)]
            else:
                outs = [row.tobytes() for row in arr]
            ok = [o is not None for o in outs]
        else:
            t0 = pc()
            try:
                outs = [decompress(d) for d in items]
            except HwzswapError:
                outs = []
                for d in items:
                    try:
                        outs.append(decompress(d))
                    except HwzswapError as exc:
                        outs.append(None)
                        m.note_error("raw decompress", exc)
            t1 = pc()
            ok = [o is not None for o in outs]
        m.raw_ldn_ns.append(t1 - t0)
        m.raw_ldn_k.append(len(todo))
        if len(outs) != len(todo):
            m.raw_mismatches += abs(len(todo) - len(outs))
        for idx, out, good in zip(todo, outs, ok):
            if not good:
                m.raw_load_errors += 1
            elif out != page_bytes[idx]:
                m.raw_mismatches += 1


def _check_suspects(chunk: _Chunk, suspect: list[tuple[int, Any]], cw: CompiledWorkload,
                    m: _Meter) -> None:
    """Count the chunk's verified loads; look closely at the ones the loop flagged. A page that
    did not come back (:data:`_LOST`) is already counted as a failed load, one the kernel kept
    in memory (:data:`_RESIDENT`) as a resident load: neither is verified nor a mismatch.
    Anything else that is not the expected page's bytes (``None`` returned, a short buffer) is
    a mismatch."""
    page_bytes = cw.page_bytes
    bad = failed = 0
    for nload, data in suspect:
        if data is _LOST or data is _RESIDENT:
            failed += 1
            continue
        idx = chunk.load_expect[nload]
        expect = page_bytes[idx]
        if type(data) is not bytes:  # another buffer type holding the right bytes is fine
            try:
                data = (np.asarray(data).tobytes() if isinstance(data, np.ndarray)
                        else bytes(data))
            except TypeError:  # None or another non-buffer: a page that came back wrong
                data = None
        if data == expect:
            continue
        bad += 1
        if len(m.mismatches) < 10:
            got = (np.frombuffer(data, dtype=np.uint8)
                   if data is not None and len(data) == PAGE_SIZE else None)
            first = (int(np.flatnonzero(got != np.frombuffer(expect, dtype=np.uint8))[0])
                     if got is not None else None)
            m.mismatches.append({
                "expected_page": int(idx),
                "length": None if data is None else len(data),
                "first_differing_byte": first,
            })
    m.n_mismatch += bad
    m.verified += len(chunk.load_expect) - bad - failed


def _unlimited_pool(workload: Workload) -> dict[str, Any]:
    """Overrides whose pool holds every page of ``workload`` uncompressed, with slack."""
    from hwzswap.bench.workload import ZS_SLACK_PAGES

    pool_pages = max(workload.nr_pages, workload.nr_slots) + ZS_SLACK_PAGES
    return {"memory": {"total_ram_mb": max(1, -(-2 * pool_pages * PAGE_SIZE // (1 << 20)))},
            "zswap": {"max_pool_percent": 50}}


def _store_all(system: Any, pages: np.ndarray, batch: int,
               slots: np.ndarray | None = None) -> None:
    """Every page once, slot i <- page i, in batches (device errors are not fatal here);
    ``slots``: only those (in order), each with its own page."""
    if slots is None:
        slots = np.arange(pages.shape[0])
    for lo in range(0, len(slots), batch):
        part = [int(i) for i in slots[lo:lo + batch]]
        try:
            if len(part) > 1:
                system.swap_out_batch(0, part, pages[part])
            else:
                system.swap_out(0, part[0], pages[part[0]].tobytes())
        except HwzswapError:
            pass


def held_pool_pages(backend: Backend, cw: CompiledWorkload, base: Any, batching: str) -> int:
    """Pool pages in use once every page of the workload is stored (slot i <- page i) with an
    unlimited pool: what the pool actually holds for this backend, zsmalloc's slack included."""
    return held_pool(backend, cw, base, batching)["held_pages"]


def held_pool(backend: Backend, cw: CompiledWorkload, base: Any, batching: str,
              fraction: float | None = None) -> dict[str, int]:
    """What the pool holds for this backend with an unlimited pool: ``held_pages``, its pool
    pages once every page of the workload is stored (slot i <- page i), and
    ``held_data_pages``, the compressed data in them (in pages); with ``fraction``, first
    ``fraction_pages``: the pool pages once that share of the workload's pages is stored
    (evenly spaced through the workload, so the mix is the workload's), zsmalloc's overhead
    at that size included.

    Why the last: a share of ``held_pages`` is not that share of the working set. zsmalloc
    keeps a partly filled zspage (1-4 pages) for each size class in use, a cost that shrinks
    far less than the data does, so the better a codec compresses, the less of the working
    set a quarter of its pool holds (4096 pages, a quarter of ``held_pages``: lz4 held 21.7 %
    of the working set at the peak, 842 15.4 %, zstd 5.0 %, and zstd read 54 % of its loads
    from the swap file against lz4's 47 %)."""
    from hwzswap.frontswap.system import open_zswap

    wl = cw.workload
    cfg = backend_config(base, backend, wl, batching, _unlimited_pool(wl))
    system = open_zswap(cfg, backend=backend)
    out: dict[str, int] = {}
    try:
        for t in [0, *cw.types]:
            if t not in system.devices:
                system.swapon(t, max(cw.nr_slots, wl.nr_pages))
        n = wl.pages.shape[0]
        first = np.zeros(n, dtype=bool)
        if fraction is not None and n:
            k = min(n, max(1, round(fraction * n)))
            first[np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))] = True
            _store_all(system, wl.pages, SIZING_BATCH, np.flatnonzero(first))
            if batching == "async":
                system.drain()
            out["fraction_pages"] = int(system.stats().get("pool_pages", 0))
        _store_all(system, wl.pages, SIZING_BATCH, np.flatnonzero(~first))
        if batching == "async":
            system.drain()
        stats = system.stats()
        out["held_pages"] = int(stats.get("pool_pages", 0))
        out["held_data_pages"] = round(int(stats.get("compressed_bytes", 0)) / PAGE_SIZE)
        return out
    finally:
        system.close()


#: Pages a call when measuring what the pool holds (pool_sizing).
SIZING_BATCH = 256


def _warm_up_measured(backend: Backend, cw: CompiledWorkload, cfg: Any,
                      guard: RawGuard | None = None) -> None:
    """JIT compiles, kernel builds and first-call costs happen here, not in the figures.

    It warms the very instance the run measures, on both paths the run times: the codec alone
    (its batch calls split by ``max_batch``, and single pages; then the whole raw pass once,
    :func:`_warm_up_raw_pass`) and a throwaway swap system, in
    the workload's batch and readahead sizes and swap types. Not ``hwzswap stats``' warm-up
    (``hwzswap.frontswap.cli._warm_up_twin``, which warms a second instance so that the
    measured one's counters stay the run's alone), on purpose: the raw path calls this instance
    directly, so a twin would leave its own first calls in the raw figures, and each pass reads
    the counters as differences from its start.

    Batches go through as read-only arrays, as the runner, the engine and the conformance kit
    all hand them to a driver (a JIT may specialise on that); single pages as ``bytes``.
    Device errors are ignored here; the codec
    calls run on ``guard``'s worker, as the raw pass's do (a hang or a driver's bug fails the
    run here, naming the call).
    """
    from hwzswap.frontswap.system import open_zswap

    pages = cw.workload.pages
    n = min(WARMUP_PAGES, pages.shape[0])
    k = max(1, min(cw.max_batch, n))
    kl = max(1, min(cw.max_load_batch, n))
    frozen = np.array(pages[:n])
    frozen.flags.writeable = False
    cap = read_capabilities(backend).max_batch  # a getter that hangs: DriverError, no hang
    compress_batch = _at_most(backend.compress_batch, cap)
    decompress_batch = _at_most(backend.decompress_batch, cap)

    def codec_alone(warm: np.ndarray) -> None:
        try:
            if k > 1 or kl > 1:
                outs = compress_batch(warm[: max(k, kl)])
                items = [outs[i] for i in range(len(outs))]
                items = [o for o in items if o is not None and not isinstance(o, BaseException)]
                if items:
                    decompress_batch(items[:kl] if kl > 1 else items)
            for i in range(min(4, n)):
                out = backend.compress(cw.page_bytes[i])
                if out is not None:
                    backend.decompress(out)
        except HwzswapError:
            pass

    if guard is None:
        codec_alone(frozen)
    else:
        guard.run(codec_alone, frozen)
    _warm_up_raw_pass(backend, cw, cfg, guard)
    system = open_zswap(cfg, backend=backend)
    try:
        for t in [0, *cw.types]:
            if t not in system.devices:
                system.swapon(t, max(cw.nr_slots, n))
        _store_all(system, frozen, k)
        if cfg.zswap.batching == "async":
            system.drain()
        try:
            if kl > 1:
                for lo in range(0, n, kl):
                    system.swap_in_batch(0, list(range(lo, min(n, lo + kl))))
            else:
                for o in range(n):
                    system.swap_in(0, o)
        except HwzswapError:
            pass
        for o in range(n):
            system.swap_free(0, o)
    finally:
        system.close()


def _warm_up_raw_pass(backend: Backend, cw: CompiledWorkload, cfg: Any,
                      guard: RawGuard | None = None) -> None:
    """One untimed run of the whole codec-alone pass, on the thread that runs the timed ones
    (``guard``'s worker), before the first timed pass.

    Why: glibc gives each thread its own malloc arena, and the raw pass keeps every
    compressed page of the stream (its loads need them), so the first pass on a fresh worker
    grows that arena page fault by page fault: measured 10-15 µs/page for lz4 in the first
    round against 4.5 later (422 minor faults, then none), which made pass 1's raw figure
    slow and its ``store_vs_raw`` flattering (``--repeat 1``: the first mode run got 0.84
    where later passes got 0.64). A warm-up of a few pages does not grow the arena to what a
    whole pass holds, so this runs the pass itself and drops what it made: the timed passes
    then reuse memory the arena already has, as the stack's thread (warm from the warm-up's
    swap system and the earlier chunks) does. Its figures are thrown away; a device that
    fails here is not warmed further (its errors are the timed passes' to count)."""
    batch = bool(read_capabilities(backend).batch)
    skip_same = bool(cfg.zswap.same_filled_pages)
    m = _Meter(declared_gauges(backend))
    comp: dict[int, Any] = {}
    for chunk in cw.chunks:
        if guard is None:
            _run_raw_chunk(backend, batch, chunk, cw, comp, m, skip_same)
        else:
            guard.run(_run_raw_chunk, backend, batch, chunk, cw, comp, m, skip_same,
                      progress=lambda: len(m.raw_st_ns) + len(m.raw_ld_ns) + len(m.raw_ldn_ns))
        if m.raw_store_errors or m.raw_load_errors:
            break


class _Progress:
    """A rich progress bar over page operations, or nothing when not wanted."""

    def __init__(self, enabled: bool, console: Any) -> None:
        self._bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("page ops"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def task(self, name: str, total: int) -> Callable[[int], None]:
        if self._bar is None:
            return lambda n: None
        tid = self._bar.add_task(name, total=total)
        bar = self._bar
        return lambda n: bar.advance(tid, n)


def _one_pass(backend: Backend, cw: CompiledWorkload, cfg: Any,
              advance: Callable[[int], None], guard: RawGuard | None = None,
              calls: DriverCalls | None = None) -> tuple[dict[str, Any], _Meter, float]:
    """One replay of the whole stream on a fresh swap system: (final stats, meter, seconds).
    ``guard``: runs the raw pass's chunks (None: on this thread, unguarded); ``calls``: the
    reads of the driver's counters and modelled time (None: direct, unguarded)."""
    from hwzswap.frontswap.system import open_zswap

    started = time.perf_counter()
    if calls is None:
        calls = DriverCalls(backend)
    caps = read_capabilities(backend)
    batch = bool(caps.batch)
    drain = cfg.zswap.batching == "async"
    skip_same = bool(cfg.zswap.same_filled_pages)
    background = bool(cfg.zswap.background_writeback)
    m = _Meter(declared_gauges(backend))
    device_us = calls.modeled_reader(m) if caps.time_basis == "modeled" else None
    if device_us is not None:
        first = device_us()
        if not isinstance(first, (int, float)):
            raise BackendError(
                f"backend {backend.name!r} declares time_basis 'modeled' but "
                f"modeled_device_us() returned {first!r}; a modelled backend must report its "
                f"device time")
    comp: dict[int, Any] = {}
    counters0 = calls.counters()
    system = open_zswap(cfg, backend=backend)
    m.async_submit = system.zswap.async_submit
    try:
        for t in cw.types:
            if t not in system.devices:
                system.swapon(t, cw.nr_slots)
        ptime = time.process_time_ns
        wtime = time.perf_counter_ns
        for i, chunk in enumerate(cw.chunks):
            if i % 2:  # the codec alone, with no writeback round of the stack's beside it
                with system.zswap.background_paused():
                    _raw_chunk_counted(backend, batch, chunk, cw, comp, m, skip_same, guard,
                                       calls)
            suspect: list[tuple[int, Any]] = []
            cnt0 = calls.counters()
            clk0 = _device_clock(cnt0) if device_us is not None else None
            emu0 = _emulation_us(cnt0)
            side_w, side_c = m.side_wall_ns, m.side_cpu_ns
            w0 = wtime()
            c0 = ptime()
            _run_stack_chunk(system, chunk.ops, m, suspect, device_us, drain)
            if background:  # the worker's work is the stack's: done before the raw chunk
                # store-side work (writeback to make room for stores), timed into the store
                # figure as async mode's drain is (store_pages_per_s), and reported apart
                q0 = wtime()
                m.quiesce_pages += quiesce_writeback(system.zswap)
                m.quiesce_ns += wtime() - q0
            # less the bench's own guarded reads of the modelled time (0 unless watched)
            cpu = max(0, ptime() - c0 - (m.side_cpu_ns - side_c))
            wall = max(0, wtime() - w0 - (m.side_wall_ns - side_w))
            m.cpu_ns += cpu
            m.wall_ns += wall
            cnt1 = calls.counters()
            m.stack_counters.add(cnt0, cnt1)
            emu1 = _emulation_us(cnt1)
            if emu0 is not None and emu1 is not None:
                m.emulation_seen = True
            if clk0 is not None:
                clk1 = _device_clock(cnt1)
                if clk1 is not None:
                    m.dev_waited_us += clk1[0] - clk0[0]
                    m.dev_busy_us += clk1[1] - clk0[1]
                    m.dev_clock = clk1[2]
                    if clk0[3] is not None and clk1[3] is not None:
                        m.dev_union_us += clk1[3] - clk0[3]
                        m.dev_exposed_us += clk1[4] - clk0[4]
                        m.dev_parked_us += clk1[5] - clk0[5]
                    else:
                        m.dev_union_known = False
            if emu0 is not None and emu1 is not None and emu1 > emu0:
                # emulation_us is wall time; count it as CPU at the chunk's CPU/wall ratio, so
                # preemption on a busy machine cannot push the host figure below zero
                emu = emu1 - emu0
                m.emulation_us += emu
                m.emulation_cpu_us += min(cpu / 1000.0, emu * cpu / wall) if wall > 0 else 0.0
            if chunk.store_pages and not chunk.load_expect:  # a chunk of stores only
                emu_cpu = (min(cpu / 1000.0, (emu1 - emu0) * cpu / wall)
                           if emu0 is not None and emu1 is not None and emu1 > emu0 and wall > 0
                           else 0.0)
                m.store_cpu_us += cpu / 1000.0 - emu_cpu
                m.store_cpu_pages += chunk.store_pages
            if not i % 2:
                _raw_chunk_counted(backend, batch, chunk, cw, comp, m, skip_same, guard, calls)
            _check_suspects(chunk, suspect, cw, m)
            advance(chunk.page_ops)
        stats = final_stats(system)
    finally:
        system.close()
    m.pass_counters.add(counters0, calls.counters())
    return stats, m, time.perf_counter() - started


def quiesce_writeback(cache: Any) -> int:
    """Bring the background writeback worker (``zswap.background_writeback``) to rest: wait
    for a round of its own to end (``ZswapCache.background_paused``), then run on this thread
    the round it would run next (down to the accept threshold). Returns the pages written back
    here.

    The bench calls it at the end of each of the stack's chunks, inside the chunk's timings,
    so the worker's writeback is in the stack's wall and CPU time and in its store figure
    (``store_pages_per_s``: its wall time is added to the store calls' as async mode's drain
    is; ``quiesce_writeback_us_per_page`` and ``quiesce_written_back_pages`` show it apart),
    and runs the raw codec's
    chunk that follows with the worker paused, so no round runs beside it (one did: on
    ``configs/pressure.yaml``, 176 of 1280 pages written back by the worker overlapped raw
    chunks)."""
    with cache.background_paused():
        return cache.shrink(cache.accept_pages)


def final_stats(system: Any) -> dict[str, Any]:
    """The swap system's ``stats()`` once nothing more moves: async work drained
    (``SwapSystem.drain``) and the background writeback thread stopped
    (``zswap.stop_background``; it raises what killed the thread, if anything did). Read while
    the thread was still writing back, the counters did not add up (``pswpout`` 5-11 pages
    above ``written_back_pages`` + the rejects + ``writeback_raced``, with
    ``outstanding_writebacks`` 16: a batch in flight), so every pass ends with this."""
    system.drain()
    system.zswap.stop_background()
    return dict(system.stats())


def _raw_chunk_counted(backend: Backend, batch: bool, chunk: _Chunk, cw: CompiledWorkload,
                       comp: dict[int, Any], m: _Meter, skip_same: bool = True,
                       guard: RawGuard | None = None, calls: DriverCalls | None = None
                       ) -> None:
    """:func:`_run_raw_chunk` on ``guard``'s worker (under the device deadline, a driver's
    bug a DriverError naming the call), with the backend's counters read around it (outside
    its timings, through ``calls``: None, directly) into ``m.raw_counters``."""
    read = calls.counters if calls is not None else lambda: _safe_counters(backend)
    before = read()
    if guard is None:
        _run_raw_chunk(backend, batch, chunk, cw, comp, m, skip_same)
    else:
        guard.run(_run_raw_chunk, backend, batch, chunk, cw, comp, m, skip_same,
                  progress=lambda: len(m.raw_st_ns) + len(m.raw_ld_ns) + len(m.raw_ldn_ns))
    m.raw_counters.add(before, read())


def raw_guard(backend: Backend) -> RawGuard:
    """The guard of the bench's direct calls into ``backend`` (see :mod:`hwzswap.bench.raw_guard`):
    the calls made from this module, past the ``max_batch`` splitter."""
    from hwzswap.frontswap.compressor import in_calls_of

    return RawGuard(backend.name, [__file__], [in_calls_of.__code__])


def _configure_guard(guard: RawGuard, backend: Backend, cfg: Any, cw: CompiledWorkload,
                     calls: DriverCalls | None = None) -> None:
    """The raw pass's deadline per driver call, as the engine bounds that driver's calls (read
    from the engine's own rule, a :class:`~hwzswap.frontswap.compressor.Compressor`, which
    also refuses capabilities the engine would refuse). A driver the engine watches
    (``zswap.driver_watchdog``: by default, one from outside the package) gets the engine's
    deadline per call (``zswap.device_timeout_ms``, else its ``Capabilities.timeout_ms``,
    else 10 s). One the engine calls directly, unbounded (a built-in, which keeps its own
    per-op deadlines, as 842-nx does), is not held to that per-call deadline either (20 ms
    failed a whole batch call of the emulated NX-842, its first one loading modules): it
    gets a safety net against a hang, the deadline times the most calls one op makes, and at
    least 60 s. ``slack``: that most (a batch that failed as a whole, redone page by page).
    ``calls`` (the bench's other calls into the driver, :class:`DriverCalls`) is configured
    by the same rule."""
    watched, timeout_s, source = (_engine_deadline(backend, cfg) if calls is None
                                  else calls.configure(cfg))
    slack = 2 * max(cw.max_batch, cw.max_load_batch, WARMUP_PAGES) + 2
    if watched:
        guard.configure(timeout_s, source, slack)
    else:
        net = max(timeout_s * slack, RAW_SAFETY_NET_S)
        guard.configure(net, f"a safety net: the engine does not bound this driver's calls "
                             f"(zswap.driver_watchdog), so neither does the bench; "
                             f"{timeout_s * 1000.0:g} ms ({source}) x "
                             f"{slack} calls, at least {RAW_SAFETY_NET_S:g} s", slack)


#: The least time the raw pass gives one call of a driver the engine does not watch before it
#: takes the call for hung (seconds).
RAW_SAFETY_NET_S = 60.0


def _engine_deadline(backend: Backend, cfg: Any) -> tuple[bool, float, str]:
    """Whether the engine watches ``backend``'s calls under ``cfg`` (``zswap.driver_watchdog``:
    by default a driver from outside the package), its deadline per call (seconds) and where
    that comes from: the engine's own rule, read from a
    :class:`~hwzswap.frontswap.compressor.Compressor` built and closed at once (it also
    refuses capabilities the engine would refuse)."""
    from hwzswap.frontswap.compressor import Compressor

    comp = Compressor(backend, cfg.zswap.device_timeout_ms, watchdog=cfg.zswap.driver_watchdog)
    watched = comp.watchdog is not None
    comp.close()
    return watched, comp.timeout_s, comp.deadline_source


def _driver_call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: the frame of this module right above a guarded driver call, so that
    :class:`RawGuard` can tell the driver's call (the frame below it) and name it."""
    return fn(*args)


class DriverCalls:
    """The bench's calls into a driver outside the measured engine path: ``counters()`` (read
    around each chunk and pass), ``modeled_device_us()`` (its check, and the reads between the
    stack's ops), ``describe()`` and ``close()``.

    A driver the engine watches (``zswap.driver_watchdog``: by default one from outside the
    package) gets each of them on the worker of a :class:`RawGuard` of their own, under the
    engine's device deadline (``zswap.device_timeout_ms``, else the driver's
    ``Capabilities.timeout_ms``, else 10 s): a wedged device's ``counters()`` or ``close()``
    hung ``hwzswap bench`` for ever, every row measured and the JSON never written. A call
    given up has its thread abandoned; while it is still in the driver, the later calls of
    this guard are not made (no second thread waits in a driver beside it) but fail at once.
    So a ``counters()`` that hangs gives the row ``{"error": ...}`` for the reads it spoils
    (:meth:`counters`; the row's counters show why) and the run goes on; a ``close()`` that
    hangs is a ``failed`` entry (phase ``close``, exit status 1) and the results are still
    written. A read of the modelled time that fails fails the row (phase ``run``): its device
    figures would be wrong. The guard is not the raw pass's: a ``counters()`` stuck in the
    driver must not fail the row's measurements (the engine's watchdog calls the driver beside
    it too). A
    driver the engine calls directly (a built-in, which bounds its own waits) is called
    directly here as well: no thread hand-off.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._guard = RawGuard(backend.name, [__file__],
                               task="the bench's calls outside the measured path (counters, "
                                    "modelled time, describe, close)")
        self.guard: RawGuard | None = None  # None: calls made directly

    def configure(self, cfg: Any) -> tuple[bool, float, str]:
        """Watch the calls or not, and their deadline, as the engine would under ``cfg``;
        returns :func:`_engine_deadline`'s answer."""
        watched, timeout_s, source = got = _engine_deadline(self.backend, cfg)
        if watched:
            self._guard.configure(timeout_s, source)
        self.guard = self._guard if watched else None
        return got

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, under the deadline when the driver is watched: its result, or
        :class:`~hwzswap.errors.DeviceTimeoutError` (given up, or not made while an earlier
        call is stuck), a driver's bug as a :class:`~hwzswap.errors.DriverError` naming it."""
        if self.guard is None:
            return fn(*args)
        held = self.guard.stuck()
        if held is not None:
            raise DeviceTimeoutError(
                f"{getattr(fn, '__name__', 'the call')}() not called: an earlier call given up "
                f"on is still in the driver ({held})", given_up=True)
        return self.guard.run(_driver_call, fn, *args)

    def counters(self) -> dict[str, Any]:
        """``backend.counters()``, or ``{"error": ...}`` (:data:`_READ_FAILED`) when it raised,
        overran the deadline or was not made (an earlier call still stuck)."""
        if self.guard is None:
            return _safe_counters(self.backend)
        try:
            return dict(self.call(self.backend.counters))
        except Exception as exc:  # noqa: BLE001 - a backend's counters are informative only
            return {_READ_FAILED: f"{type(exc).__name__}: {exc}"}

    def modeled_reader(self, m: _Meter) -> Callable[[], Any]:
        """``backend.modeled_device_us`` as the stack's chunks read it between ops; watched,
        each read's own wall and CPU time (the hand-off) go to ``m.side_wall_ns`` /
        ``m.side_cpu_ns``, which the chunk takes out of its figures."""
        read = self.backend.modeled_device_us
        if self.guard is None:
            return read
        pc, pt, call = time.perf_counter_ns, time.process_time_ns, self.call

        def watched() -> Any:
            w0, c0 = pc(), pt()
            try:
                return call(read)
            finally:
                m.side_cpu_ns += pt() - c0
                m.side_wall_ns += pc() - w0

        return watched

    def describe(self) -> str:
        """``backend.describe()``; what went wrong instead when it failed or hung."""
        try:
            return str(self.call(self.backend.describe))
        except HwzswapError as exc:
            return f"({self.backend.name}: describe() failed: {exc})"

    def close(self) -> str | None:
        """``backend.close()``; None when it returned, else what went wrong (it raised,
        overran the deadline, or was not made while an earlier call is stuck in the driver).
        The guard's worker is ended either way."""
        try:
            self.call(self.backend.close)
        except Exception as exc:  # noqa: BLE001 - reported as the backend's close failure
            return f"{type(exc).__name__}: {exc}"
        finally:
            self.end()
        return None

    def end(self) -> None:
        """End the guard's worker once it is idle (a stuck one ends if its call returns);
        a later call starts a new one."""
        self._guard.close()


def _device_clock(c: Mapping[str, Any]) -> tuple[
        float, float, str, float | None, float | None, float | None] | None:
    """(time the host waited for the device, device busy time summed over its engines, the
    clock's kind, busy time as a union over the engines, the part of that the host was
    blocked on the device) in µs so far, from a modelled backend's counters ``c`` when it
    reports them (the 842-nx emulation does): ``device_waited_us`` (its ``virtual`` and
    ``host`` clocks count the moves that were waits; without it, ``device_clock_us``, which a
    ``virtual`` clock moves only by waits), ``device_us``, ``clock`` (``realtime``: wall time,
    waits not counted), and ``device_busy_union_us`` / ``device_exposed_us`` /
    ``device_exposed_parked_us`` (None when not reported: the driver's own overlap
    accounting, see ``hwzswap.backends.nx842.queue``)."""
    waited = c.get("device_waited_us", c.get("device_clock_us"))
    busy = c.get("device_us")
    if isinstance(waited, (int, float)) and isinstance(busy, (int, float)):
        union, exposed = c.get("device_busy_union_us"), c.get("device_exposed_us")
        parked = c.get("device_exposed_parked_us", 0.0)
        known = all(isinstance(v, (int, float)) for v in (union, exposed, parked))
        return (float(waited), float(busy), str(c.get("clock", "virtual")),
                float(union) if known else None, float(exposed) if known else None,
                float(parked) if known else None)
    return None


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _countlike(v: Any) -> bool:
    """A number, a list of numbers (a histogram, one per engine) or a mapping of such."""
    if _num(v):
        return True
    if isinstance(v, (list, tuple)):
        return all(_num(x) for x in v)
    if isinstance(v, Mapping):
        return all(_countlike(x) for x in v.values())
    return False


class CounterSpan:
    """A backend's ``counters()`` over some stretches of a pass (the stack's chunks, the raw
    pass's, or the whole pass), each read just before and just after the stretch, outside its
    timings. The one place the bench differences backend counters.

    A backend object lives through every engine mode, warm-up and pool sizing of a bench, and
    its ``counters()`` are totals since it was built, so a row reports what changed over its
    own stretches: a number (or each number of a list, each value of a mapping of numbers) is
    a count of events and reported as the sum of its changes; a list of other things that only
    grows (an error log) as the entries added. Kept at its **end value** instead, and listed by
    :meth:`end_value_keys`: a key the backend declares a gauge (``gauges``, see
    :func:`declared_gauges`: a level or a setting, such as lz4-opencl's ``config``), anything
    else that is not a count (a string, a bool, a mapping holding strings), and a number that
    went down during a stretch (a level the backend did not declare)."""

    def __init__(self, gauges: Iterable[str] = ()) -> None:
        self._gauges = frozenset(gauges)
        self._sum: dict[str, Any] = {}
        self._end: dict[str, Any] = {}
        self._kept: set[str] = set()
        self._stretches = 0
        self._spoiled = 0  # stretches left out: a read on one side failed
        self._why: str | None = None  # the first failed read's message

    def add(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """One stretch: the counters read before it and after it. A read that failed
        (:func:`_safe_counters` gave ``{"error": ...}``: it raised, or overran the device
        deadline, :class:`DriverCalls`) leaves the stretch out: with one side missing, its
        change cannot be told from the totals since startup. The value then says so
        (:meth:`value`)."""
        self._stretches += 1
        for side in (before, after):
            if _read_failed(side):
                self._spoiled += 1
                self._why = self._why or str(side[_READ_FAILED])
                break
        if _read_failed(after):
            if not self._end:  # no read has worked yet: the row shows why it has no counters
                self._end = dict(after)
            return
        self._end = dict(after)
        if not _read_failed(before):
            self._step(before, after, self._sum, "")

    def _step(self, before: Mapping[str, Any], after: Mapping[str, Any],
              acc: dict[str, Any], prefix: str) -> None:
        # ``before`` is looked up by the backend's own keys (an int key stays an int); the
        # results are keyed by their text, as JSON keys are
        for key, a in after.items():
            name = str(key)
            path = prefix + name
            if path in self._kept:
                continue
            b = before.get(key) if isinstance(before, Mapping) else None
            if path in self._gauges:
                self._kept.add(path)
            elif _num(a):
                b = b if _num(b) else 0
                if a < b:
                    self._kept.add(path)
                else:
                    acc[name] = acc.get(name, 0) + (a - b)
            elif isinstance(a, (list, tuple)) and all(_num(x) for x in a) and (
                    not isinstance(b, (list, tuple)) or len(b) == len(a)):
                b = list(b) if isinstance(b, (list, tuple)) else [0] * len(a)
                old = acc.get(name, [0] * len(a))
                if not all(_num(y) for y in b) or any(x < y for x, y in zip(a, b)) \
                        or len(old) != len(a):
                    self._kept.add(path)
                else:
                    acc[name] = [o + x - y for o, x, y in zip(old, a, b)]
            elif isinstance(a, (list, tuple)) and (b is None or isinstance(b, (list, tuple))) \
                    and list(a[: len(b or ())]) == list(b or ()):
                # a log (one that first appears now started empty): the new entries
                acc[name] = list(acc.get(name, [])) + list(a[len(b or ()):])
            elif isinstance(a, Mapping) and _countlike(a):
                sub = acc.setdefault(name, {})
                self._step(b if isinstance(b, Mapping) else {}, a, sub, path + ".")
            else:
                self._kept.add(path)

    def _value(self, end: Mapping[str, Any], acc: Mapping[str, Any], prefix: str
               ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, e in end.items():
            name = str(key)
            path = prefix + name
            if path in self._kept or name not in acc:
                out[name] = e if path in self._kept or not _num(e) else 0
            elif isinstance(e, Mapping) and isinstance(acc[name], Mapping):
                out[name] = self._value(e, acc[name], path + ".")
            elif isinstance(acc[name], float):  # sums of float totals: no 259.0239999999
                out[name] = round(acc[name], 6)
            elif isinstance(acc[name], list):
                out[name] = [round(x, 6) if isinstance(x, float) else x for x in acc[name]]
            else:
                out[name] = acc[name]
        return out

    def value(self) -> dict[str, Any]:
        """The counters over the stretches: changes, and end values where listed. When a read
        failed (and another worked), the counts cover only the stretches read on both sides,
        and ``error`` (``counters_read_error`` if the backend counts an ``error`` of its own)
        says how many were left out and why: a ``counters()`` that hung mid-row gave counts
        of part of the row with nothing to tell."""
        out = self._value(self._end, self._sum, "")
        if self._spoiled and not _read_failed(self._end):
            key = _READ_FAILED if _READ_FAILED not in out else "counters_read_error"
            out[key] = (f"{self._spoiled} of {self._stretches} stretches left out, a "
                        f"counters() read failed: {self._why}")
        return out

    def end_value_keys(self) -> list[str]:
        """Dotted names of the counters reported at their end value, not as a change."""
        return sorted(self._kept)

    def counts(self) -> dict[str, int | float]:
        """The top-level counts that moved over the stretches: name -> change (no end values,
        no zeros; what ``faults.backend`` and the backend's own timeout count read)."""
        return {k: v for k, v in self.value().items() if k not in self._kept and _num(v) and v}


def run_backend(
    backend: Backend,
    cw: CompiledWorkload,
    base: Any,
    advance: Callable[[int], None] = lambda n: None,
    warm_up: bool = True,
    repeat: int = 1,
    batching: str | None = None,
    config_keys: Iterable[str] | None = None,
    guard: RawGuard | None = None,
    calls: DriverCalls | None = None,
) -> dict[str, Any]:
    """Replay the compiled stream ``repeat`` times through a fresh swap system on ``backend``
    in engine mode ``batching`` (None: the base config's); one result object (timings: the
    median over the passes).

    ``config_keys``: the dotted keys the user's config sets itself (:func:`config_keys_given`;
    None: those of ``base`` that differ from the built-in defaults). A pool key among them
    makes the pool limit the user's (:func:`pool_limit_plan`); otherwise a workload with
    ``pool_sizing`` first has every page stored once with an unlimited pool, and its pool
    limit set to the given share of the pool pages that took (for this backend).
    The harness's own objects (the compiled stream) are frozen out of the cyclic GC while
    measuring, so a collection's cost is that of the objects the stack creates, not ours.
    The codec-alone calls (raw pass, warm-up) run on ``guard``'s worker (one of this run's
    own when None; :mod:`hwzswap.bench.raw_guard`) under the device deadline: a driver call
    that overruns it raises DeviceTimeoutError, a driver's bug a DriverError, naming the call.
    The bench's other calls into the driver (``counters()``, ``modeled_device_us()``,
    ``describe()``) go through ``calls`` (:class:`DriverCalls`; one of this run's own when
    None), under the same deadline for a driver the engine watches: a ``counters()`` that hangs
    leaves ``{"error": ...}`` in the row's counters, not a bench that never ends.
    Raises whatever the stack raises (the caller records it as a failed backend).
    """
    from hwzswap.bench.workload import pool_limit_overrides

    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if guard is None or calls is None:  # made here: ended here, the calls' guard first
        with ExitStack() as own:
            if guard is None:
                guard = raw_guard(backend)
                own.callback(guard.close)
            if calls is None:
                calls = DriverCalls(backend)
                own.callback(calls.end)
            return run_backend(backend, cw, base, advance, warm_up, repeat, batching,
                               config_keys, guard, calls)
    held = guard.stuck()
    if held is not None:  # an earlier run gave up a call that is still inside the driver
        raise DeviceTimeoutError(f"{held}; not run while that call is still in the driver",
                                 given_up=True)
    mode = batching or base.zswap.batching
    wl = cw.workload
    given = config_keys_given(base) if config_keys is None else frozenset(config_keys)
    source, keep = pool_limit_plan(wl, given)
    sizing: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    if source == "workload sizing":
        # The limit: the pool pages this backend takes to hold held_fraction of the
        # workload's pages (held_pool: zsmalloc's per-class overhead included), so every
        # backend gets the same pressure. It was held_fraction of the pool pages with every
        # page stored, which left a high-ratio codec the smaller share of the working set
        # (held_pool's docstring).
        frac = float(wl.pool_sizing["held_fraction"])
        held = held_pool(backend, cw, base, mode, frac)
        target = max(1, held["fraction_pages"])
        extra = pool_limit_overrides(target)
        sizing = {"held_fraction": frac, **held, "target_pages": target}
    cfg = backend_config(base, backend, wl, mode, extra, keep)
    if sizing is not None:
        sizing["limit_pages"] = cfg.max_pool_pages
    row_notes = {
        "pool_limit_source": source,
        "pool_limit_note": pool_limit_note(source, cfg, base, wl, sizing, given),
        "swap_path_note": swap_path_note(base),
    }
    _configure_guard(guard, backend, cfg, cw, calls)
    if warm_up:
        _warm_up_measured(backend, cw, cfg, guard)
    results = []
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeat):
            stats, m, elapsed = _one_pass(backend, cw, cfg, advance, guard, calls)
            res = _result(backend, cw, cfg, stats, m, elapsed, sizing, calls)
            res.update(row_notes)
            results.append(res)
    finally:
        gc.unfreeze()
    return mark_device_figures(_combine(results))


def swap_path_note(base: Any) -> str | None:
    """Why a config's ``swap.path`` is not in the row's run (None when it names none): the
    bench runs many swap systems, one after another, each on a fresh temporary swap file
    (unlinked from the start), so no run meets another's pages, a file in use elsewhere or a
    file left behind; what the device costs is ``swap.model``'s, not that file's."""
    path = base.swap.path
    if not path:
        return None
    return (f"{base.source}: swap.path {str(path)!r} is not used by hwzswap bench: every run "
            f"gets a fresh temporary swap file (unlinked from the start), so runs never share "
            f"or leave a file; the swap device's cost in the figures is swap.model's "
            f"({base.swap.model})")


#: Result fields that are timings: with several passes, the median is reported.
TIMING_FIELDS = (
    "store_pages_per_s", "load_pages_per_s", "raw_store_pages_per_s", "raw_load_pages_per_s",
    "store_vs_raw", "load_vs_raw", "host_cpu_us_per_page", "emulation_us_per_page",
    "wall_us_per_page", "drain_us_per_page", "quiesce_writeback_us_per_page",
    "host_cpu_us_per_stored_page",
    "modeled_wall_us_per_page", "store_pages_per_s_with_swap_model",
    "load_pages_per_s_with_swap_model",
)
_PERCENTILE_FIELDS = ("store_us", "load_us", "store_call_us", "load_call_us", "invalidate_us",
                      "raw_store_us", "raw_load_us")


def _median(values: list[Any]) -> Any:
    nums = [v for v in values if v is not None]
    if not nums:
        return None
    return round(float(np.median(nums)), 4)


def _combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several passes -> one result: median timings, every pass's verification counted.

    Figures that describe one pass (the pool's: ``pool_peak_pages``, ``pool_overshoot*``,
    ``pool_bytes``, ``pool_density``, ``compressed_bytes_at_peak``; and ``counters``,
    ``rejects``, ``written_back_pages``, ``swap_reads``/``swap_writes``, ``backend_counters``,
    ``device_overlap`` ...) all come from **one** pass, so those that must agree do: the pass
    with the highest pool peak (the last of them on a tie, so identical passes give the last),
    named 1-based in ``reported_pass``. (Earlier builds took the peak from the highest pass and
    the rest from the last: a row with a peak of 560 pages showed ``pool_bytes`` of 546.)
    Not one pass's, on purpose: the shares that decide whether a vs-raw ratio is given
    (``store_refused_share``, ``load_swap_share``) and the staged-load figures
    (``loads_staged``, ``load_staged_share``, ``load_figure_staged``) are the **worst** pass's,
    so a ratio or a figure is marked when any pass was over the line (they can therefore differ
    from the reported pass's ``counters``); ``device_timeouts`` and the faults are **summed**
    over the passes.

    ``modeled_wall_us_per_page`` is **derived from the reported figures**, not the median of
    the passes' own: ``wall_us_per_page`` (median) − ``emulation_us_per_page`` (median) +
    ``device_overlap.waited_us_per_page`` (the reported pass's), so the identity the † note
    shows holds in the row (medians taken apart come from different passes and broke it)."""
    top = max(range(len(results)), key=lambda i: (results[i]["pool_peak_pages"], i))
    out = dict(results[top])
    out["reported_pass"] = top + 1
    out["repeat"] = len(results)
    if len(results) == 1:
        out["spread"] = {}
        return out
    for key in TIMING_FIELDS:
        out[key] = _median([r[key] for r in results])
    ov = out.get("device_overlap") or {}
    if (out["modeled_wall_us_per_page"] is not None and out["emulation_us_per_page"] is not None
            and ov.get("waited_us_per_page") is not None):
        out["modeled_wall_us_per_page"] = round(
            out["wall_us_per_page"] - out["emulation_us_per_page"] + ov["waited_us_per_page"], 3)
    for key in _PERCENTILE_FIELDS:
        out[key] = {k: _median([r[key][k] for r in results]) for k in results[0][key]}
    # a pass that compared different work makes the ratio null (the pass with the largest
    # share of such work says why)
    for key, share in (("store_vs_raw", "store_refused_share"),
                       ("load_vs_raw", "load_swap_share")):
        worst = max(results, key=lambda r: r[share] or 0.0)
        out[share] = worst[share]
        if worst[key + "_note"] is not None:
            out[key] = None
            out[key + "_note"] = worst[key + "_note"]
    out["spread"] = {key: [min(v), max(v)] for key in
                     ("store_pages_per_s", "load_pages_per_s", "store_vs_raw", "load_vs_raw")
                     if (v := [r[key] for r in results if r[key] is not None])}
    # every pass is verified: a page counts as verified only if it was in every pass
    out["verified_pages"] = min(r["verified_pages"] for r in results)
    out["mismatches"] = sum(r["mismatches"] for r in results)
    out["mismatch_examples"] = [e for r in results for e in r["mismatch_examples"]][:10]
    out["raw_mismatches"] = sum(r["raw_mismatches"] for r in results)
    out["load_failures"] = sum(r["load_failures"] for r in results)
    out["resident_loads"] = sum(r["resident_loads"] for r in results)
    # faults: summed over the passes (a fault in any pass shows), rates over all of them
    out["faults"] = _combine_faults([r["faults"] for r in results])
    out["device_failed"] = any(r["device_failed"] for r in results)
    out["device_timeouts"] = sum(r["device_timeouts"] for r in results)
    out["saw_writeback"] = all(r["saw_writeback"] for r in results)
    if out["host_cpu_us_per_stored_page"] is None:  # same sample every pass: same note
        out["host_cpu_us_per_stored_page_note"] = results[-1]["host_cpu_us_per_stored_page_note"]
    # the load figure is a median over passes: flagged when any pass was mostly staged hits
    worst = max(results, key=lambda r: r["load_staged_share"] or 0.0)
    for key in ("loads_staged", "load_staged_share", "load_figure_staged"):
        out[key] = worst[key]
    out["elapsed_s"] = round(sum(r["elapsed_s"] for r in results), 3)
    return out


def _combine_faults(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Several passes' ``faults`` -> one: every count summed (``driver.failed``: the passes
    that ended with the device marked failed; ``driver.watched``: whether it was), every rate
    the mean of the passes' (each pass moves the same pages, so that is the summed errors over
    the summed pages), ``any`` when any pass had a fault, ``passes_with_faults`` how many."""
    def summed(part: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in passes:
            for k, v in (f.get(part) or {}).items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                out[k] = max(out.get(k, 0), v) if k == "watched" else out.get(k, 0) + v
        return out

    out: dict[str, Any] = {}
    for part in ("raw", "store", "load"):
        merged = summed(part)
        for k in merged:
            if k.endswith("error_rate"):
                merged[k] = round(sum(f[part][k] for f in passes) / len(passes), 6)
        out[part] = merged
    out["driver"] = summed("driver")
    out["backend"] = summed("backend")
    out["examples"] = [e for f in passes for e in f["examples"]][:5]
    out["any"] = any(f["any"] for f in passes)
    out["passes_with_faults"] = sum(1 for f in passes if f["any"])
    return out


def _emulation_per_page(m: _Meter, page_moves: int) -> float | None:
    """``emulation_us_per_page``: the rise of the backend's ``emulation_us`` over the stack's
    chunks, per page moved. Known, and reported, whenever some chunk had it read on both
    sides, 0.0 included: a hung 842-nx row with the warm-up on did no emulation at all in its
    chunks (the warm-up's hung requests still hold the device's queue, so each of the stack's
    requests was refused busy until its deadline, then the device was marked failed), and its
    host CPU holds no emulation; it was null, read as "could not be separated". Null only when
    it cannot be known: the backend reports no ``emulation_us`` (a measured backend), or no
    chunk's ``counters()`` could be read on both sides (they raised or hung)."""
    if not m.emulation_seen or not page_moves:
        return None
    return round(m.emulation_us / page_moves, 3)


def _rate(pages: int, ns: Iterable[int]) -> float | None:
    total = sum(ns)
    if pages == 0 or total <= 0:
        return None
    return pages / (total / 1e9)


def _result(backend: Backend, cw: CompiledWorkload, cfg: Any, stats: Mapping[str, Any],
            m: _Meter, elapsed: float, sizing: Mapping[str, Any] | None = None,
            calls: DriverCalls | None = None) -> dict[str, Any]:
    caps = read_capabilities(backend)
    modeled = caps.time_basis == "modeled"
    page_moves = cw.store_pages + cw.loads
    store_pps = _rate(cw.store_pages, m.st_ns + [m.drain_ns, m.quiesce_ns])
    load_pps = _rate(cw.loads, m.ld_ns + m.ldn_ns)
    raw_store_pps = _rate(cw.store_pages, m.raw_st_ns)
    raw_load_pps = _rate(len(m.raw_ld_ns) + sum(m.raw_ldn_k), m.raw_ld_ns + m.raw_ldn_ns)
    cpu_us = m.cpu_ns / 1000.0 - m.emulation_cpu_us
    peak_pages = int(stats.get("pool_peak_pages", 0))
    limit_pages = int(stats.get("pool_limit_pages", 0)) or None
    pool_bytes = peak_pages * PAGE_SIZE
    at_peak = int(stats.get("compressed_bytes_at_peak", 0))

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a and b else None

    # work the stack did not do that the raw pass did: stores refused before compressing (at
    # the pool limit; or failed in the stack beyond the codec alone's failures on the same
    # pages: a device marked failed refuses every store without compressing it, as
    # reject_compress_fail), loads read back from the swap file (no decompression)
    at_limit = int(stats.get("reject_pool_limit", 0)) + int(stats.get("reject_reclaim_fail", 0))
    stack_failed = min(cw.store_pages,
                       int(stats.get("reject_compress_fail", 0)) + m.stack_store_failures)
    failed_beyond = max(0, stack_failed - m.raw_store_errors)
    disabled = stores_while_disabled(stats)
    refused = min(at_limit + failed_beyond + disabled, cw.store_pages)
    refused_share = round(refused / cw.store_pages, 4) if cw.store_pages else 0.0
    driver = driver_counters(stats)
    dev_failed = device_marked_failed(driver)
    swap_loads = min(int(stats.get("pswpin", 0)), cw.loads)
    swap_share = round(swap_loads / cw.loads, 4) if cw.loads else None
    store_vs_raw = ratio(store_pps, raw_store_pps) or 0.0
    load_vs_raw = ratio(load_pps, raw_load_pps)
    store_note = load_note = None
    zswpout = int(stats.get("zswpout", 0))
    # nothing was compressed by the stack: zswap took no store (disabled, every store refused
    # or failed), or only same-filled pages, kept as their word (the pool never held an object
    # and no store was compressed and then refused): the codec alone did all the work
    only_same = (zswpout > 0 and peak_pages == 0 and not int(stats.get("reject_compress_poor", 0))
                 and not int(stats.get("reject_compress_fail", 0)))
    if cw.store_pages and (zswpout == 0 or only_same):
        why_none = (f"zswap is disabled (zswap.enabled: false): {disabled} of "
                    f"{cw.store_pages} stores went straight to the swap file"
                    if disabled else
                    "every page zswap took was same-filled, kept as its word "
                    "(zswap.same_filled_pages), never compressed" if only_same else
                    "no store was taken by zswap (zswpout 0)")
        store_vs_raw = load_vs_raw = None
        raw_decompressed = bool(m.raw_ld_ns or m.raw_ldn_k)
        store_note = load_note = (
            f"the stack compressed nothing ({why_none}); the raw pass compressed every page"
            + (" and decompressed those that shrank" if raw_decompressed else
               " (none shrank: it decompressed nothing either)"))
    elif refused_share > UNLIKE_WORK_SHARE:
        store_vs_raw = None
        why = []
        if disabled:
            why.append(f"{disabled / cw.store_pages:.0%} offered while zswap was disabled "
                       f"(zswap.enabled: false)")
        if at_limit:
            why.append(f"{at_limit / cw.store_pages:.0%} refused at the pool limit")
        if failed_beyond:
            why.append(f"{failed_beyond / cw.store_pages:.0%} failed in the stack beyond the "
                       f"codec alone's failures on the same pages"
                       + (", refused without compressing once the device was marked failed"
                          if dev_failed else ""))
        store_note = (f"{refused_share:.0%} of the stores were never compressed by the stack "
                      f"({'; '.join(why)}); the raw pass compressed them")
    if swap_share is not None and swap_share > UNLIKE_WORK_SHARE and load_note is None:
        load_vs_raw = None
        load_note = (f"{swap_share:.0%} of the loads were read from the swap file, never "
                     f"decompressed by the stack (the raw pass decompressed them)")

    dev_total = m.dev_store_us + m.dev_load_us
    # the split by direction reads the device's time around each store call and each load
    # call; in async mode the worker's compression runs while later calls are timed, so where
    # a chunk holds loads after stores its device time lands on the loads: no split is given
    overlapped = cfg.zswap.batching == "async" and any(
        c.store_pages and c.load_expect for c in cw.chunks)
    split_note = None
    if modeled and overlapped:
        split_note = ("async: the worker's compressions run while later calls, loads "
                      "included, are timed, so device time read around each call cannot be "
                      "told apart by direction; device_us_per_page is the whole")
    written_back = int(stats.get("written_back_pages", 0))
    # async: loads served from staged copies (pages in flight) decompress nothing
    staged = int(stats.get("loads_staged", 0))
    staged_share = round(staged / cw.loads, 4) if cw.loads else None
    wl = cw.workload
    overlap = None
    # realtime clock: the emulated engines' threads pace wall time on the host, yield-spinning
    # (sleep(0)) near each deadline; that CPU is not in emulation_us, so host CPU holds device
    # pacing and wall - CPU is not the time the host waited: both are left null
    cpu_note = None
    if modeled and m.dev_clock == "realtime":
        cpu_note = ("clock realtime: the emulated engines' threads spin on the host while "
                    "pacing wall time (not counted as emulation), so host CPU would include "
                    "the device's pacing and waited = wall - CPU would mean nothing")
    if modeled and m.dev_busy_us > 0 and page_moves:
        # The device's own overlap accounting (hwzswap.backends.nx842.queue): time at least
        # one engine was busy (a union: engine parallelism is no overlap) and the part of it
        # the host was blocked on the device (its waits, and its own time inside a blocking
        # driver call); hidden = the rest, the device's time that overlapped the host's own
        # work. (It was 1 - waited / busy summed over the engines: 1 - 1/engines whenever
        # batches filled the engines, whatever the host did.) The runner only divides.
        waited: float | None
        hidden: float | None
        clock = m.dev_clock or "virtual"
        union = m.dev_union_us if m.dev_union_known and m.dev_union_us > 0 else None
        hidden_note = None
        if cpu_note is not None:
            waited = hidden = None
            hidden_note = cpu_note
        else:  # what the host waited for the device (virtual clock: all of its moves)
            waited = m.dev_waited_us
            if union is None:
                hidden = None
                hidden_note = ("the device reports no overlap accounting "
                               "(device_busy_union_us, device_exposed_us)")
            elif clock == "virtual":
                hidden = 0.0
                hidden_note = ("clock virtual: host work takes no model time, so no device "
                               "time can overlap it (0 by construction); the 842-nx clock "
                               "'host' measures it")
            else:
                hidden = 1.0 - m.dev_exposed_us / union
        overlap = {
            "clock": clock,
            "busy_us_per_page": round(m.dev_busy_us / page_moves, 3),
            "waited_us_per_page": None if waited is None else round(waited / page_moves, 3),
            "busy_union_us_per_page": (None if union is None
                                       else round(union / page_moves, 3)),
            "exposed_us_per_page": (None if union is None or hidden is None
                                    else round(m.dev_exposed_us / page_moves, 3)),
            # of the exposed time, the host parked waiting for another thread that fed the
            # device (async: the pipeline's drain or backpressure), not in the driver itself
            "exposed_parked_us_per_page": (None if union is None or hidden is None
                                           else round(m.dev_parked_us / page_moves, 3)),
            # engines busy at once, on average: busy summed over engines / their union
            "engine_parallelism": None if union is None else round(m.dev_busy_us / union, 3),
            "hidden_share": None if hidden is None else round(min(1.0, max(0.0, hidden)), 4),
            "hidden_note": hidden_note,
        }
    # a modelled device's wall figures include its software emulation on the host; with the
    # virtual clock in a synchronous mode the emulation runs inline, so the stack's wall time
    # with the emulation replaced by the modelled time the host waited is well defined
    modeled_wall = None
    if (modeled and m.dev_clock in ("virtual", "host") and m.emulation_us > 0 and page_moves
            and cfg.zswap.batching != "async"):
        modeled_wall = round((m.wall_ns / 1000.0 - m.emulation_us + m.dev_waited_us)
                             / page_moves, 3)
    store_cpu = store_cpu_note = None
    if cpu_note is not None:
        store_cpu_note = cpu_note
    elif m.store_cpu_pages >= STORE_CPU_MIN_PAGES and \
            m.store_cpu_pages >= STORE_CPU_MIN_SHARE * cw.store_pages:
        store_cpu = round(m.store_cpu_us / m.store_cpu_pages, 3)
    else:
        store_cpu_note = (f"only {m.store_cpu_pages} of {cw.store_pages} stored pages were in "
                          f"chunks that only store (needs {STORE_CPU_MIN_PAGES} and "
                          f"{STORE_CPU_MIN_SHARE:.0%}): one-time costs would dominate")
    return {
        "backend": backend.name,
        "batching": cfg.zswap.batching,
        "async_max_batches": cfg.zswap.async_max_batches,
        "async_submit": m.async_submit,
        "structure": _jsonable(wl.structure),
        "description": (calls or DriverCalls(backend)).describe(),
        "params": _jsonable(backend.params),
        "time_basis": caps.time_basis,
        "capabilities": caps.to_dict(),
        "pages": cw.loads,
        "verified_pages": m.verified,
        "mismatches": m.n_mismatch,
        "mismatch_examples": m.mismatches,
        "raw_mismatches": m.raw_mismatches,
        "load_failures": m.stack_load_failures,
        "resident_loads": m.resident_loads,
        "workload_pages": wl.nr_pages,
        "store_pages": cw.store_pages,
        "invalidates": cw.invalidates,
        "ratio": round(m.orig_bytes / m.comp_bytes, 4) if m.comp_bytes else None,
        "ratio_note": _ratio_note(cw, cfg, m),
        "ratio_bytes": {"original": m.orig_bytes, "compressed": m.comp_bytes,
                        "incompressible_pages": m.incompressible},
        "ratio_counts_same_filled": not cfg.zswap.same_filled_pages,
        "pool_density": round(at_peak / pool_bytes, 4) if pool_bytes else 0.0,
        "pool_bytes": pool_bytes,
        "compressed_bytes_at_peak": at_peak,
        "pool_sizing": dict(sizing) if sizing else None,
        # the pressure each backend got: the share of the workload's pages the pool held
        # (compressed bytes held x this row's ratio, in pages, over the workload's pages) at
        # the pool's peak and at the end of the pass
        **_held_shares(stats, m, wl.nr_pages),
        "pool_peak_pages": peak_pages,
        "pool_limit_pages": limit_pages,
        "pool_overshoot_pages": max(0, peak_pages - limit_pages) if limit_pages else 0,
        "pool_overshoot": bool(limit_pages and peak_pages > limit_pages),
        "store_pages_per_s": round(store_pps or 0.0, 1),
        "load_pages_per_s": round(load_pps, 1) if load_pps else None,
        "store_us": _percentiles(_per_page_us(m.st_ns, m.st_k)),
        "load_us": _percentiles(_load_us(m.ld_ns, m.ldn_ns, m.ldn_k)),
        # the whole call's time (a reclaim pass, a readahead cluster): what a caller waits
        "store_call_us": _percentiles(np.asarray(m.st_ns, dtype=np.float64) / 1000.0),
        "load_call_us": _percentiles(np.asarray(m.ld_ns + m.ldn_ns, dtype=np.float64) / 1000.0),
        "loads_staged": staged,
        "load_staged_share": staged_share,
        "load_figure_staged": staged_share is not None and staged_share >= STAGED_LOAD_FLAG,
        "invalidate_us": _percentiles(np.asarray(m.inv_ns, dtype=np.float64) / 1000.0),
        "store_overlaps_loads": overlapped,
        "drain_us_per_page": (round(m.drain_ns / 1000.0 / cw.store_pages, 3)
                              if cw.store_pages else 0.0),
        # zswap.background_writeback: the worker's writeback finished by the bench at the end
        # of each stack chunk (quiesce_writeback), inside store_pages_per_s
        "quiesce_writeback_us_per_page": (round(m.quiesce_ns / 1000.0 / cw.store_pages, 3)
                                          if cw.store_pages else 0.0),
        "quiesce_written_back_pages": m.quiesce_pages,
        "host_cpu_us_per_page": (None if cpu_note is not None else
                                 round(cpu_us / page_moves, 3) if page_moves else 0.0),
        "host_cpu_note": cpu_note,
        "host_cpu_us_per_stored_page": store_cpu,
        "host_cpu_us_per_stored_page_note": store_cpu_note,
        "wall_us_per_page": round(m.wall_ns / 1000.0 / page_moves, 3) if page_moves else 0.0,
        "modeled_wall_us_per_page": modeled_wall,
        "host_cpu_excludes_emulation": m.emulation_seen,
        "emulation_us_per_page": _emulation_per_page(m, page_moves),
        "raw_store_pages_per_s": round(raw_store_pps or 0.0, 1),
        "raw_load_pages_per_s": round(raw_load_pps, 1) if raw_load_pps else None,
        "raw_store_us": _percentiles(_per_page_us(m.raw_st_ns, m.raw_st_k)),
        "raw_load_us": _percentiles(_load_us(m.raw_ld_ns, m.raw_ldn_ns, m.raw_ldn_k)),
        "store_vs_raw": store_vs_raw,
        "load_vs_raw": load_vs_raw,
        "store_refused_share": refused_share,
        "load_swap_share": swap_share,
        "store_vs_raw_note": store_note,
        "load_vs_raw_note": load_note,
        "rejects": _rejects(stats),
        "pool_limit_hit": int(stats.get("pool_limit_hit", 0)),
        "same_filled_pages": int(np.count_nonzero(cw.same_filled)),
        "written_back_pages": written_back,
        "saw_writeback": written_back > 0,
        "writeback_expected": expects_writeback(wl),
        "swap_reads": int(stats.get("pswpin", 0)),
        "swap_writes": int(stats.get("pswpout", 0)),
        **_swap_model_figures(cw, cfg, stats, m),
        "device_us_per_page": round(dev_total / page_moves, 3) if modeled and page_moves else None,
        "device_store_us_per_page": (round(m.dev_store_us / cw.store_pages, 3)
                                     if modeled and cw.store_pages and not split_note else None),
        "device_load_us_per_page": (round(m.dev_load_us / cw.loads, 3)
                                    if modeled and cw.loads and not split_note else None),
        "device_split_note": split_note,
        "device_overlap": overlap,
        "device_timeouts": _stack_timeouts(stats, m) if modeled else 0,
        "device_figures_note": None,
        "faults": _faults(cw, stats, m),
        "device_failed": dev_failed,
        "counters": _jsonable(stats),
        "backend_counters": _jsonable(m.stack_counters.value()),
        "backend_counters_end_values": m.stack_counters.end_value_keys(),
        "backend_counters_raw": _jsonable(m.raw_counters.value()),
        "config": _jsonable(cfg.to_dict()),
        "elapsed_s": round(elapsed, 3),
    }


def _held_shares(stats: Mapping[str, Any], m: _Meter, workload_pages: int
                 ) -> dict[str, float | None]:
    """``pool_held_share_at_peak`` / ``_at_end``: the share of the workload's pages the pool
    held at its peak and at the end of the pass, estimated as the compressed bytes held times
    the row's ratio (original / compressed bytes of the pages that were compressed), in
    pages. Same-filled pages (held as a word, no pool space) and pages in flight are not
    counted. The same pool limit holds a different share of the working set for each codec
    (one run: lz4 21.7 %, 842 15.4 %, zstd 5.0 % at the peak), so this is the pressure a row
    got. None when nothing was compressed."""
    if not m.comp_bytes or not workload_pages:
        return {"pool_held_share_at_peak": None, "pool_held_share_at_end": None}
    ratio = m.orig_bytes / m.comp_bytes
    whole = workload_pages * PAGE_SIZE

    def share(key: str) -> float:
        return round(int(stats.get(key, 0)) * ratio / whole, 4)

    return {"pool_held_share_at_peak": share("compressed_bytes_at_peak"),
            "pool_held_share_at_end": share("compressed_bytes")}


def stores_while_disabled(stats: Mapping[str, Any]) -> int:
    """Stores zswap refused because it was disabled (``zswap.enabled: false``): offered
    (``stores``) but in none of ``zswpout``, the ``reject_*`` counters or ``staged_dropped``,
    as the kernel's ``zswap_store`` returns at once without counting them."""
    rejects = sum(int(v) for k, v in stats.items() if k.startswith("reject_"))
    return max(0, int(stats.get("stores", 0)) - int(stats.get("zswpout", 0)) - rejects
               - int(stats.get("staged_dropped", 0)))


def _ratio_note(cw: CompiledWorkload, cfg: Any, m: _Meter) -> str | None:
    """Why ``ratio`` is null: no page the ratio counts was compressed (0 / 0)."""
    if m.comp_bytes:
        return None
    same = int(np.count_nonzero(cw.same_filled))
    if cfg.zswap.same_filled_pages and same:
        return (f"no page to count: the stored pages are same-filled (zswap keeps such a page "
                f"as its word, uncompressed: zswap.same_filled_pages) or failed to compress "
                f"({m.raw_store_errors} failed); 0 / 0 has no ratio")
    return (f"no page was compressed by the codec alone ({m.raw_store_errors} failed to "
            f"compress); 0 / 0 has no ratio")


#: A row's note when the modelled swap device's time is this share or more of the host's own
#: time on the stores or on the loads: the figures with the model are then the device's.
SWAP_MODEL_DOMINATES = 1.0


def _swap_model_figures(cw: CompiledWorkload, cfg: Any, stats: Mapping[str, Any], m: _Meter
                        ) -> dict[str, Any]:
    """The modelled swap device (``swap.model``: ``hdd``, ``ssd``, ``custom``) in the row.

    The swap file's time is modelled, not slept (``counters.swap_model_us``), so the host's
    store and load figures leave it out. Each page written to the swap file (``pswpout``: a
    store zswap refused, a page written back, an async page rejected when its pass landed)
    costs the model's ``write_us``, a store-side cost (reclaim writes it); each page read
    (``pswpin``: a load from the swap file) its ``read_us``, a load-side cost. Only the stack
    touches the swap file, and each pass runs on a fresh one, read once nothing more moves
    (:func:`final_stats`), so the pass's totals are the stack's. The throughputs *with* the
    model add that time to the host's, serially (the host's work and the device's I/O not
    overlapped): ``store_pages_per_s_with_swap_model``, ``load_pages_per_s_with_swap_model``;
    null, as the per-page times, with ``swap.model: none``."""
    from hwzswap.frontswap.system import device_model_from_config

    model = device_model_from_config(cfg)
    name = cfg.swap.model
    out: dict[str, Any] = {
        "swap_model": name,
        "swap_model_us": round(float(stats.get("swap_model_us", 0.0)), 3),
        "swap_model_store_us_per_page": None,
        "swap_model_load_us_per_page": None,
        "store_pages_per_s_with_swap_model": None,
        "load_pages_per_s_with_swap_model": None,
        "swap_model_note": None,
    }
    if name == "none":
        return out
    writes = int(stats.get("pswpout", 0))
    reads = int(stats.get("pswpin", 0))
    store_model = writes * model.write_us()
    load_model = reads * model.read_us()
    store_host = (sum(m.st_ns) + m.drain_ns + m.quiesce_ns) / 1000.0
    load_host = (sum(m.ld_ns) + sum(m.ldn_ns)) / 1000.0
    if cw.store_pages:
        out["swap_model_store_us_per_page"] = round(store_model / cw.store_pages, 3)
        if store_host + store_model > 0:
            out["store_pages_per_s_with_swap_model"] = round(
                cw.store_pages / ((store_host + store_model) / 1e6), 1)
    if cw.loads:
        out["swap_model_load_us_per_page"] = round(load_model / cw.loads, 3)
        if load_host + load_model > 0:
            out["load_pages_per_s_with_swap_model"] = round(
                cw.loads / ((load_host + load_model) / 1e6), 1)
    big = []
    for what, dev, host, n in (("stores", store_model, store_host, writes),
                               ("loads", load_model, load_host, reads)):
        if dev > 0 and dev >= SWAP_MODEL_DOMINATES * host:
            big.append(f"the {what}' {n} swap-file pages take {dev / 1e6:.3g} s on it "
                       f"against the host's {host / 1e6:.3g} s")
    if big:
        out["swap_model_note"] = (
            f"the modelled swap device ({name}: {model.latency_us:g} µs a request, "
            f"{model.read_mb_s:g} MB/s read, {model.write_mb_s:g} MB/s write) dominates: "
            f"{'; '.join(big)}. store_pages_per_s and load_pages_per_s are the host's alone; "
            f"the *_with_swap_model figures add the device's time")
    return out


def _stack_timeouts(stats: Mapping[str, Any], m: _Meter) -> int:
    """Device requests of the stack's chunks that timed out in one pass: the engine's
    (``driver_timeouts``: ops past ``zswap.device_timeout_ms``, calls the watchdog gave up on)
    or the backend's own timeout counters over those chunks (842-nx's ``timeouts``: hung
    requests its driver gave up on after its ``timeout_ms``), whichever is larger (one hang
    may be counted by both)."""
    own = sum(int(v) for k, v in m.stack_counters.counts().items()  # levels: not timeouts
              if "timeout" in k and not k.endswith(("_us", "_ms", "_ns", "_s")))
    return max(int(stats.get("driver_timeouts", 0)), own)


def mark_device_figures(result: dict[str, Any]) -> dict[str, Any]:
    """A modelled row whose device timed out or was marked failed (in any pass) keeps no
    overlap or modelled-wall figure that would read as the device's: a request that timed
    out counts, in the model, the time until it was given up (842-nx holds a hung request
    until its driver's ``timeout_ms``, 5 s by default) as device time, and once the device is
    marked failed the stack refuses stores without asking it, so device time per page, the
    host's wait for it, the share hidden and the modelled wall time measure deadlines and
    refusals, not the device's work (a run showed 58594 µs/page waited against 19 µs/page
    wall, and "98 % hidden" on a row whose device was marked failed).

    ``device_figures_note`` says why; ``device_overlap.waited_us_per_page``, its
    ``hidden_share``, ``modeled_wall_us_per_page`` and the store/load split become null
    (``device_overlap.note`` repeats the reason); ``device_us_per_page`` and
    ``device_overlap.busy_us_per_page`` stay (the model's time, those deadlines included)
    and the table shows ``n/a`` for them."""
    if result.get("time_basis") != "modeled":
        return result
    timeouts = int(result.get("device_timeouts") or 0)
    failed = bool(result.get("device_failed"))
    if not timeouts and not failed:
        return result
    what = []
    if timeouts:
        what.append(f"{timeouts} of the stack's device requests timed out")
    if failed:
        what.append("the device was marked failed (stores then refused without asking it)")
    note = (" and ".join(what) + "; a timed-out request counts, in the model, the time until "
            "it was given up (842-nx: its driver's timeout_ms) as device time, so the device "
            "time, the host's wait for it, the share hidden and the modelled wall time measure "
            "deadlines and refusals, not the device's work")
    result["device_figures_note"] = note
    result["modeled_wall_us_per_page"] = None
    result["device_store_us_per_page"] = result["device_load_us_per_page"] = None
    ov = result.get("device_overlap")
    if ov:
        result["device_overlap"] = {**ov, "waited_us_per_page": None, "hidden_share": None,
                                    "exposed_us_per_page": None,
                                    "exposed_parked_us_per_page": None, "note": note}
    return result


def expects_writeback(workload: Workload) -> bool:
    """Whether the workload's pool is meant to fill (so a run without writeback measured less
    than the workload is about): a pool sized from what it holds, or a pool limit below the
    working set."""
    if workload.pool_sizing:
        return True
    return workload.name in ("pressure", "mixed")


#: Backend counters reported under ``faults.backend``: names that speak of failures.
_FAULT_WORDS = ("fail", "fault", "error", "timeout", "retr", "swdecomp", "late")
#: The engine's driver counters (``stats()``'s ``driver_*``, the guard's ``counters()``) that
#: are faults: a timeout, a device error, a failed item of a batch, a contract violation
#: (``bad_*``), the device marked failed (``failed``: marked at the end of the pass;
#: ``recoveries``: it was marked and answered again after ``device_retry_s``), a software
#: decode in its place. ``busy_retries`` (backpressure) and ``watched`` are not.
_DRIVER_FAULTS = ("timeouts", "device_errors", "item_failures", "failed", "recoveries",
                  "sw_fallbacks", "refused_stuck")


def driver_counters(stats: Mapping[str, Any]) -> dict[str, int]:
    """The engine's driver counters from a swap system's ``stats()`` (flattened there as
    ``driver_*``), without the prefix: ``timeouts``, ``device_errors``, ``bad_<kind>`` ..."""
    return {k[len("driver_"):]: int(v) for k, v in stats.items()
            if k.startswith("driver_") and isinstance(v, (int, float))}


def driver_faulted(driver: Mapping[str, Any]) -> bool:
    """Whether the driver counters show a fault (see :data:`_DRIVER_FAULTS`, and any contract
    violation)."""
    return any(driver.get(k) for k in _DRIVER_FAULTS) or any(
        v for k, v in driver.items() if k.startswith("bad_"))


def device_marked_failed(driver: Mapping[str, Any]) -> bool:
    """Whether the device was marked failed during the pass (``device_fail_after`` timeouts in
    a row): still marked at its end, or marked and back after ``device_retry_s``."""
    return bool(driver.get("failed") or driver.get("recoveries"))


def _faults(cw: CompiledWorkload, stats: Mapping[str, Any], m: _Meter) -> dict[str, Any]:
    """Device faults by phase: the raw pass (the codec alone), the stack's stores and loads.

    A stack store error is a page zswap rejected because its compression failed
    (``reject_compress_fail``) or a store call that raised; a stack load error is a failed
    decompression zswap counted (``decompress_fail``) or a load call that raised (a page that
    did not come back: ``load_failures``). Errors the engine recovered from inside one call
    (a retried item, a software fallback) show in ``driver`` (the engine's guard counters,
    ``stats()``'s ``driver_*``: timeouts, contract violations, the device marked failed) and
    ``backend`` (the driver's own counters over the pass), not as lost pages; a driver fault
    makes ``any`` true too. Readahead calls are ``partial``: an item that cannot be read comes
    back as its error and is counted once (``readahead_failed_items``; lost or resident as a
    single load); a call that raised as a whole (``readahead_fallbacks``) is read again page by
    page."""
    def rate(n: int, d: int) -> float:
        return round(n / d, 6) if d else 0.0

    raw_loads = len(m.raw_ld_ns) + sum(m.raw_ldn_k)
    st_rej = int(stats.get("reject_compress_fail", 0))
    ld_fail = int(stats.get("decompress_fail", 0))
    store_err = min(cw.store_pages, st_rej + m.stack_store_failures)
    # a decompression that failed for good is in both counts: take the larger
    load_err = min(cw.loads, max(ld_fail, m.stack_load_failures))
    driver = driver_counters(stats)
    any_fault = bool(m.raw_store_errors or m.raw_load_errors or store_err or load_err
                     or m.readahead_fallbacks or m.readahead_failed_items
                     or driver_faulted(driver))
    return {
        "raw": {"store_errors": m.raw_store_errors, "load_errors": m.raw_load_errors,
                "store_error_rate": rate(m.raw_store_errors, cw.store_pages),
                "load_error_rate": rate(m.raw_load_errors, max(raw_loads, 1))},
        "store": {"errors": store_err, "reject_compress_fail": st_rej,
                  "failed_call_pages": m.stack_store_failures,
                  "error_rate": rate(store_err, cw.store_pages)},
        "load": {"errors": load_err, "decompress_fail": ld_fail,
                 "failed_pages": m.stack_load_failures,
                 "readahead_fallbacks": m.readahead_fallbacks,
                 "readahead_failed_items": m.readahead_failed_items,
                 "error_rate": rate(load_err, cw.loads)},
        "driver": driver,
        "backend": {k: v for k, v in m.pass_counters.counts().items()
                    if any(w in k for w in _FAULT_WORDS)},
        "examples": list(m.error_examples),
        "any": any_fault,
        "passes_with_faults": int(any_fault),
    }


def _rejects(stats: Mapping[str, Any]) -> dict[str, int]:
    """Rejected stores by reason: every ``reject_*`` counter, the documented ones always."""
    out = {r: 0 for r in REJECT_REASONS}
    for key, value in stats.items():
        if key.startswith("reject_"):
            out[key[len("reject_"):]] = int(value)
    return out


def _safe_counters(backend: Backend) -> dict[str, Any]:
    """``backend.counters()``, or ``{"error": ...}`` (:data:`_READ_FAILED`) when it raised."""
    try:
        return dict(backend.counters())
    except Exception as exc:  # noqa: BLE001
        return {_READ_FAILED: f"{type(exc).__name__}: {exc}"}


#: The key of :func:`_safe_counters`'s answer when ``counters()`` raised.
_READ_FAILED = "error"


def _read_failed(counters: Mapping[str, Any]) -> bool:
    """Whether ``counters`` is :func:`_safe_counters`'s answer for a call that raised."""
    return len(counters) == 1 and isinstance(counters.get(_READ_FAILED), str)


# -- all backends ----------------------------------------------------------------------------


def default_backends() -> list[str]:
    """Every registered backend name (unavailable ones end up in ``skipped``)."""
    from hwzswap.backends.registry import backend_names

    return backend_names()


def resolve_backend_names(spec: str | Sequence[str] | None) -> list[str]:
    """``"lz4,zstd"`` / a list / ``None`` (all) -> names; an unknown name fails right away."""
    from hwzswap.backends.registry import backend_names

    if spec is None:
        return default_backends()
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise UnknownBackendError("--backends names no backend")
    known = backend_names()
    for n in names:
        if n not in known:
            raise UnknownBackendError(
                f"no backend named {n!r}; registered backends: {', '.join(known)}"
            )
    return list(dict.fromkeys(names))


@dataclass
class BenchRun:
    """What :func:`run_bench` needs besides the workload."""

    backends: list[str] | None = None
    #: A path, a mapping or a loaded :class:`~hwzswap.config.ZswapConfig` (None: defaults).
    #: A path is read once; a caller that read it already passes the loaded config and
    #: ``config_keys`` (a pipe is empty the second time).
    config: Any = None
    #: The dotted keys the user's config sets itself (:func:`config_keys_given` of what was
    #: read); None: found from ``config``.
    config_keys: Iterable[str] | None = None
    progress: bool = False
    console: Any = None
    warm_up: bool = True
    repeat: int = 1
    on_result: Callable[[dict[str, Any]], None] | None = None
    workload_extra: dict[str, Any] = field(default_factory=dict)
    #: Engine modes (``zswap.batching``) each backend runs in, on the identical stream;
    #: None: the config's.
    batching: str | Sequence[str] | None = None


def _make_backend(name: str, base: Any) -> Backend:
    """The backend under test, with the config's parameters when the config names it."""
    from hwzswap.backends.registry import get_backend

    comp = base.zswap.compressor
    params = dict(comp.params) if comp.name == name else {}
    return get_backend(name, **params)


def check_exclusive_loads(base: Any, workload: Workload, config_name: str | None,
                          built_in: bool = False) -> None:
    """Refuse (:class:`ConfigError`, exit 2) a stream that loads a slot again after a load,
    under a config with ``zswap.exclusive_loads: true``: such a load frees the slot, so the
    second load of it reads a free slot, and every such page would be counted lost although
    nothing was lost. ``built_in``: the stream is a built-in workload's, refused by its kind
    (:func:`~hwzswap.bench.workload.loads_slots_again`, the rule a sweep's plan applies) even
    when it is too short to load a slot twice. ``swap on`` and ``run`` refuse that setting
    outright (:func:`hwzswap.serve.chain.check_servable`); the bench runs it on the streams
    that load each page at most once (``roundtrip``, a recorded stream of that kind)."""
    from hwzswap.bench.workload import EXCLUSIVE_LOAD_WORKLOADS, loads_slots_again

    if not getattr(base.zswap, "exclusive_loads", False):
        return
    found = workload.reload_op()
    if found is not None:
        i, (type_, offset) = found
        what = f"op {i} reads slot {type_}:{offset} a second time"
    elif built_in and loads_slots_again(workload.name):
        what = "it is made to; this one is too short to, but is refused all the same"
    else:
        return
    raise ConfigError(
        f"{config_name or 'the config'}: zswap.exclusive_loads: true frees a slot when it is "
        f"loaded, but workload {workload.name} loads slots again after loading them ({what}), "
        f"so those loads would find a free slot and its pages would read as lost. Use a "
        f"workload that loads each page once ({', '.join(EXCLUSIVE_LOAD_WORKLOADS)}), or set "
        f"zswap.exclusive_loads: false (the default) for this workload"
    )


def run_bench(workload: Workload, run: BenchRun | None = None) -> dict[str, Any]:
    """Run ``workload`` through every requested backend in every requested engine mode; return
    the results document.

    One backend cannot end the bench: a constructor that raises anything is a ``failed`` entry
    (phase ``constructor``; a parameter error, phase ``parameters``, names the config file and
    the dotted key), as is a run that raises (phase ``run``) and a class the registry could
    not load for a driver bug (phase ``registration``, :class:`BackendLoadError`); a run whose
    device was marked failed keeps its result and adds a ``failed`` entry (phase ``device``);
    a backend that cannot run here is ``skipped``. The others still run."""
    run = run or BenchRun()
    if run.config_keys is None:
        base, given = base_config_and_keys(run.config)  # one read: it may be a pipe
    else:
        base, given = base_config(run.config), frozenset(run.config_keys)
    check_exclusive_loads(base, workload, base.source)
    names = resolve_backend_names(run.backends)
    modes = resolve_batching(run.batching, base)
    cw = compile_workload(workload)
    desc = workload.describe()
    desc.update(stream_folio_mix(workload))
    desc.update(run.workload_extra)
    cfg_doc = base.to_dict()
    cfg_doc["zswap"]["compressor"] = "(each backend under test)"
    source, keep = pool_limit_plan(workload, given)
    doc = new_document(desc, {"source": base.source, "base": cfg_doc,
                              "overrides": workload.config_overrides,
                              "keys_given": sorted(given),
                              "overrides_not_applied": sorted(
                                  k for k in keep if _has_key(workload.config_overrides, k)),
                              "pool_limit_source": source,
                              "swap_path_note": swap_path_note(base)})
    doc["batching"] = list(modes)
    try:
        _run_all(names, modes, base, cw, run, given, doc)
    except KeyboardInterrupt as exc:  # Ctrl-C: the rows finished so far go with it
        doc["measured_rows"] = len(doc["results"])
        raise BenchInterrupted(doc) from exc
    doc["measured_rows"] = len(doc["results"])
    return doc


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_bench`: ``document`` holds what it had finished (its results,
    skipped and failed entries), so a caller can still write the partial run."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__("interrupted")
        self.document = document


def _run_all(names: Sequence[str], modes: Sequence[str], base: Any, cw: CompiledWorkload,
             run: BenchRun, given: Any, doc: dict[str, Any]) -> None:
    """run_bench's loop: each backend in each engine mode, its row or failure into ``doc``."""
    with _Progress(run.progress, run.console) as progress:
        for name in names:
            try:
                backend = _make_backend(name, base)
            except BackendLoadError as exc:
                doc["failed"].append({"backend": name, "phase": "registration",
                                      "error": str(exc)})
                continue
            except (BackendUnavailableError, UnknownBackendError) as exc:
                doc["skipped"].append({"backend": name, "reason": str(exc)})
                continue
            except InvalidParameterError as exc:
                doc["failed"].append({"backend": name, "phase": "parameters",
                                      "error": f"{type(exc).__name__}: "
                                               f"{parameter_error(exc, name, base)}"})
                continue
            except Exception as exc:  # noqa: BLE001 -- a broken driver must not end the bench
                doc["failed"].append({"backend": name, "phase": "constructor",
                                      "error": f"{type(exc).__name__}: {exc}"})
                continue
            guard = raw_guard(backend)
            calls = DriverCalls(backend)
            try:
                for mode in modes:
                    label = name if len(modes) == 1 else f"{name} ({mode})"
                    refused = _design_refused(backend, base) if mode == "async" else None
                    if refused is not None:
                        # a design this device cannot take: not applicable, not a failure
                        doc["skipped"].append({"backend": name, "batching": mode,
                                               "reason": f"{base.source}: {refused}"})
                        continue
                    try:
                        res = run_backend(backend, cw, base,
                                          progress.task(label, cw.page_ops * run.repeat),
                                          warm_up=run.warm_up, repeat=run.repeat,
                                          batching=mode, config_keys=given, guard=guard,
                                          calls=calls)
                    except Exception as exc:  # noqa: BLE001 -- one broken run must not end it
                        doc["failed"].append({"backend": name, "batching": mode, "phase": "run",
                                              "error": f"{type(exc).__name__}: {exc}"})
                        continue
                    doc["results"].append(res)
                    if res["device_failed"]:
                        doc["failed"].append({"backend": name, "batching": mode,
                                              "phase": "device",
                                              "error": device_failed_message(res)})
                    if run.on_result is not None:
                        run.on_result(res)
            finally:
                guard.close()
                closed = _close_backend(calls, base)
                if closed is not None:
                    doc["failed"].append({"backend": name, "phase": "close", "error": closed})


def _design_refused(backend: Backend, base: Any) -> str | None:
    """Why the engine would refuse ``base``'s ``zswap.async_submit`` for this driver (the
    engine's own rule, :func:`~hwzswap.frontswap.zswap.async_design`), or None. None too
    when its capabilities cannot be read: the row runs and fails with the reason."""
    from hwzswap.frontswap.zswap import async_design

    try:
        caps = read_capabilities(backend)
    except Exception:  # noqa: BLE001 - the run itself reports a driver's broken capabilities
        return None
    try:
        async_design(backend.name, caps, base.zswap.async_submit)
    except ConfigError as exc:
        return str(exc)
    return None


def _close_backend(calls: DriverCalls, base: Any) -> str | None:
    """Close the backend through ``calls`` (None: it closed; else what went wrong). A
    backend none of whose rows got as far as configuring the calls (a run that failed first)
    is closed under the base config's deadline rule; one whose capabilities the engine refuses
    under the registry's (``close_backend``: a close that hangs must not hang the bench)."""
    if calls.guard is None:
        try:
            calls.configure(base)
        except Exception:  # noqa: BLE001 - the row's failure already names the capabilities
            try:
                close_backend(calls.backend)
            except Exception as exc:  # noqa: BLE001 - reported as the backend's close failure
                return f"{type(exc).__name__}: {exc}"
            finally:
                calls.end()
            return None
    return calls.close()


def _has_key(over: Mapping[str, Any] | None, dotted: str) -> bool:
    section, _, key = dotted.partition(".")
    body = (over or {}).get(section)
    return isinstance(body, Mapping) and key in body


def device_failed_message(result: Mapping[str, Any]) -> str:
    """What a result whose device was marked failed during the run means, for its ``failed``
    entry (phase ``device``)."""
    drv = (result.get("faults") or {}).get("driver") or {}
    store = (result.get("faults") or {}).get("store") or {}
    return (f"the device was marked failed during the run ({drv.get('timeouts', 0)} timeouts; "
            f"zswap.device_timeout_ms, device_fail_after): the stack then refused its stores "
            f"without compressing them (store errors {store.get('error_rate', 0.0):.1%}, "
            f"stores never compressed by the stack {result.get('store_refused_share', 0.0):.1%})"
            f", so this row's figures do not measure the device; every page that came back "
            f"was still verified")


def bench_failed(doc: Mapping[str, Any]) -> bool:
    """Whether the bench should exit non-zero: a requested backend failed (constructor,
    parameters, run), its device was marked failed during a run (its figures then do not
    measure it), it lost or corrupted a page, the codec alone did not round-trip, or nothing
    was measured at all (no result row: every requested backend was skipped, as cannot run
    here, or failed)."""
    return bool(doc["failed"]) or not doc["results"] or any(
        r["mismatches"] or r.get("raw_mismatches") or r.get("load_failures")
        or r.get("device_failed") for r in doc["results"])


def comparable_counters(result: Mapping[str, Any]) -> dict[str, Any]:
    """A result's counters minus the wall-clock ones: equal between replays of one workload."""
    return {k: v for k, v in result["counters"].items() if k not in MEASURED_COUNTERS}


__all__ = [
    "CHUNK_PAGE_OPS",
    "check_exclusive_loads",
    "STAGED_LOAD_FLAG",
    "STORE_CPU_MIN_PAGES",
    "STORE_CPU_MIN_SHARE",
    "UNLIKE_WORK_SHARE",
    "BenchRun",
    "bench_failed",
    "device_failed_message",
    "device_marked_failed",
    "driver_counters",
    "expects_writeback",
    "held_pool_pages",
    "mark_device_figures",
    "resolve_batching",
    "CompiledWorkload",
    "backend_config",
    "base_config",
    "base_config_and_keys",
    "comparable_counters",
    "compile_workload",
    "resolve_backend_names",
    "run_backend",
    "run_bench",
    "same_filled_mask",
    "stream_folio_mix",
]
