"""Workloads: determinism from a seed, stream validity, the workload file format."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwzswap.bench.runner import backend_config, base_config
from hwzswap.bench.workload import (
    DEFAULT_FOLIO_MIX,
    FILE_MAGIC,
    INVALIDATE,
    LOAD,
    MAX_FOLIO_PAGES,
    STORE,
    SWAP_CLUSTER_MAX,
    WORKLOADS,
    Op,
    SplitMix64,
    Workload,
    _encode_ops,
    build_workload,
    folio_layout,
    is_workload_file,
    load_workload,
    parse_folio_mix,
    pool_limit_overrides,
    read_header,
    save_workload,
    select_pages,
)
from hwzswap.backends.registry import get_backend
from hwzswap.errors import WorkloadError
from hwzswap.testing import real_memory_mix


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return real_memory_mix(200, seed=7)


def test_splitmix64_matches_the_reference_sequence() -> None:
    # Published SplitMix64 outputs: the stream must never change, or recorded seeds would lie.
    r = SplitMix64(0)
    assert [r.next64() for _ in range(3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    r = SplitMix64(1234567)
    assert [r.next64() for _ in range(2)] == [6457827717110365317, 3203168211198807973]


@given(seed=st.integers(0, 2**64 - 1), n=st.integers(1, 500), k=st.integers(0, 50))
def test_splitmix64_below_and_sample_stay_in_range(seed: int, n: int, k: int) -> None:
    r = SplitMix64(seed)
    assert all(0 <= r.below(n) < n for _ in range(20))
    k = min(k, n)
    s = r.sample(n, k)
    assert len(s) == k == len(set(s)) and all(0 <= v < n for v in s)
    items = list(range(n))
    r.shuffle(items)
    assert sorted(items) == list(range(n))


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_same_seed_same_stream_and_pages(name: str, pages: np.ndarray) -> None:
    a = build_workload(name, pages, seed=11)
    b = build_workload(name, pages.copy(), seed=11)
    assert a.ops == b.ops
    assert np.array_equal(a.pages, b.pages)
    assert a.config_overrides == b.config_overrides
    assert a.page_hash() == b.page_hash()


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_different_seed_different_stream(name: str, pages: np.ndarray) -> None:
    a = build_workload(name, pages, seed=1)
    b = build_workload(name, pages, seed=2)
    assert a.ops != b.ops


#: The stream of the generators before folios and readahead clusters existed.
FLAT = {"load_batch": 1, "folio_mix": 1}


def test_roundtrip_shape(pages: np.ndarray) -> None:
    n = pages.shape[0]
    wl = build_workload("roundtrip", pages, seed=3, **FLAT)
    stores = [op for op in wl.ops if op.kind == STORE]
    loads = [op.offsets[0] for op in wl.ops if op.kind == LOAD]
    invals = [op.offsets[0] for op in wl.ops if op.kind == INVALIDATE]
    # reclaim batches of SWAP_CLUSTER_MAX, every page once, slot i <- page i
    assert [len(op.offsets) for op in stores] == [SWAP_CLUSTER_MAX] * (n // 32) + [n % 32]
    assert sorted(o for op in stores for o in op.offsets) == list(range(n))
    assert all(op.offsets == op.pages for op in stores)
    # every page loaded once, shuffled, after all the stores; then everything invalidated
    assert sorted(loads) == list(range(n)) and loads != list(range(n))
    kinds = [op.kind for op in wl.ops]
    assert kinds == [STORE] * len(stores) + [LOAD] * n + [INVALIDATE] * n
    assert sorted(invals) == list(range(n))


def _pool_limit_pages(wl: Workload) -> int:
    cfg = backend_config(base_config(), get_backend("lz4"), wl)
    return cfg.max_pool_pages


def test_pressure_pool_is_well_under_the_working_set() -> None:
    pages = real_memory_mix(2048, seed=1)
    wl = build_workload("pressure", pages, seed=0, **FLAT)
    assert wl.pool_sizing == {"held_fraction": 0.25}
    assert _pool_limit_pages(wl) <= pages.shape[0] // 3
    c = wl.counts()
    assert c["loads"] == pages.shape[0]
    # re-stores of loaded slots happen, some with new content
    restores = [op for op in wl.ops[pages.shape[0] // 32 + 1:] if op.kind == STORE]
    assert restores
    assert any(o != p for op in restores for o, p in zip(op.offsets, op.pages))
    # loads favour recently loaded slots: far fewer distinct slots than loads
    loads = [op.offsets[0] for op in wl.ops if op.kind == LOAD]
    assert len(set(loads)) < 0.8 * len(loads)


def test_roundtrip_pool_holds_the_whole_working_set(pages: np.ndarray) -> None:
    wl = build_workload("roundtrip", pages, seed=0)
    assert _pool_limit_pages(wl) >= pages.shape[0]


def test_mixed_interleaves_and_restores(pages: np.ndarray) -> None:
    wl = build_workload("mixed", pages, seed=5, **FLAT)
    kinds = [op.kind for op in wl.ops]
    # interleaved: a load comes after an invalidate and a store after a load somewhere
    pairs = set(zip(kinds, kinds[1:]))
    assert {(INVALIDATE, STORE), (LOAD, STORE), (STORE, LOAD), (INVALIDATE, LOAD)} <= pairs
    live: set[int] = set()
    restored = 0
    for op in wl.ops:
        if op.kind == STORE:
            restored += sum(o in live for o in op.offsets)
            live.update(op.offsets)
        elif op.kind == INVALIDATE:
            live.discard(op.offsets[0])
    assert restored > 0 and not live
    c = wl.counts()
    assert 0.2 < c["store_pages"] / (c["store_pages"] + c["loads"] + c["invalidates"]) < 0.6


@given(name=st.sampled_from(sorted(WORKLOADS)), n=st.integers(1, 80), seed=st.integers(0, 2**32))
def test_every_generated_stream_is_replayable(name: str, n: int, seed: int) -> None:
    pages = np.zeros((n, 4096), dtype=np.uint8)
    wl = build_workload(name, pages, seed=seed)  # build_workload validates
    live: set[int] = set()
    for op in wl.ops:
        if op.kind == STORE:
            live.update(op.offsets)
        else:
            assert set(op.offsets) <= live
            if op.kind == INVALIDATE:
                live.discard(op.offsets[0])
    assert not live  # every workload ends with all slots invalidated
    assert wl.nr_slots <= n


def test_validate_rejects_a_load_of_an_empty_slot(pages: np.ndarray) -> None:
    wl = Workload("x", 0, pages, [Op(STORE, 0, (1,), (1,)), Op(LOAD, 0, (2,))])
    with pytest.raises(WorkloadError, match="slot 0:2 holds nothing"):
        wl.validate()
    wl.ops = [Op(STORE, 0, (1, 1), (1, 2))]
    with pytest.raises(WorkloadError, match="twice"):
        wl.validate()
    wl.ops = [Op(STORE, 0, (1,), (len(pages),))]
    with pytest.raises(WorkloadError, match="out of range"):
        wl.validate()


def test_unknown_workload_name(pages: np.ndarray) -> None:
    with pytest.raises(WorkloadError, match="roundtrip"):
        build_workload("nope", pages)


def test_select_pages_spreads_and_refuses_too_many(pages: np.ndarray) -> None:
    sel = select_pages(pages, 10)
    assert sel.shape == (10, 4096)
    assert np.array_equal(sel[0], pages[0]) and np.array_equal(sel[-1], pages[-1])
    assert select_pages(pages, None) is not None and select_pages(pages, None).shape == pages.shape
    with pytest.raises(WorkloadError, match="holds 200 pages"):
        select_pages(pages, 201)


# -- the file -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_file_round_trip(name: str, pages: np.ndarray, tmp_path) -> None:
    corpus = {"source": "file", "files": ["x.pages"], "sha256": "ab" * 32}
    wl = build_workload(name, pages, seed=9, corpus=corpus)
    path = save_workload(wl, tmp_path / "w.hwzwl")
    assert is_workload_file(path)
    back = load_workload(path)
    assert back.ops == wl.ops
    assert np.array_equal(back.pages, wl.pages)
    assert (back.name, back.seed, back.corpus, back.config_overrides) == (
        wl.name, wl.seed, wl.corpus, wl.config_overrides)
    assert back.describe() == wl.describe()
    # the same workload always gives the same bytes (no timestamps): files can be compared
    again = save_workload(back, tmp_path / "again.hwzwl")
    assert again.read_bytes() == path.read_bytes()


def test_file_header_is_documented_json(pages: np.ndarray, tmp_path) -> None:
    wl = build_workload("pressure", pages, seed=4)
    path = save_workload(wl, tmp_path / "w.hwzwl")
    raw = path.read_bytes()
    assert raw[:8] == FILE_MAGIC
    version, head_len = struct.unpack("<II", raw[8:16])
    header = json.loads(raw[16 : 16 + head_len])
    assert version == header["version"] == 2
    assert header["format"] == "hwzswap-workload"
    assert header["pages"] == pages.shape[0] and header["seed"] == 4
    assert header["page_sha256"] == hashlib.sha256(pages.tobytes()).hexdigest()
    assert header["ops"]["count"] == len(wl.ops)
    data = raw[16 + head_len :]
    for sec in header["sections"].values():
        blob = data[sec["offset"] : sec["offset"] + sec["length"]]
        assert hashlib.sha256(blob).hexdigest() == sec["sha256"]
    assert read_header(path)[0] == header


def test_damaged_files_are_refused(pages: np.ndarray, tmp_path) -> None:
    path = save_workload(build_workload("roundtrip", pages, seed=1), tmp_path / "w.hwzwl")
    raw = bytearray(path.read_bytes())
    bad = tmp_path / "bad.hwzwl"

    flipped = bytearray(raw)
    flipped[-10] ^= 0xFF
    bad.write_bytes(flipped)
    with pytest.raises(WorkloadError, match="sha256"):
        load_workload(bad)

    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(WorkloadError, match="truncated"):
        load_workload(bad)

    bad.write_bytes(b"not a workload at all")
    with pytest.raises(WorkloadError, match="not a hwzswap workload file"):
        load_workload(bad)
    assert not is_workload_file(bad)

    newer = bytearray(raw)
    newer[8:12] = struct.pack("<I", 99)
    bad.write_bytes(newer)
    with pytest.raises(WorkloadError, match="version 99; this hwzswap reads versions 1, 2"):
        load_workload(bad)

    with pytest.raises(WorkloadError, match="cannot read"):
        load_workload(tmp_path / "missing.hwzwl")


def test_save_failure_leaves_no_partial_file(pages: np.ndarray, tmp_path) -> None:
    wl = build_workload("roundtrip", pages[:8], seed=1)
    target = tmp_path / "no-such-dir" / "w.hwzwl"
    with pytest.raises(WorkloadError, match="cannot write the workload file: No such file"):
        save_workload(wl, target)
    assert list(tmp_path.iterdir()) == []  # the directory is not made
    taken = tmp_path / "taken.hwzwl"
    (taken / "inside").mkdir(parents=True)  # written whole, but the rename cannot land
    with pytest.raises(WorkloadError, match=f"{taken}: cannot write the workload file"):
        save_workload(wl, taken)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.hwzwl"]  # no temporary file


def test_a_saved_workload_has_the_mode_open_gives(pages: np.ndarray, tmp_path) -> None:
    old = os.umask(0o027)
    try:
        path = save_workload(build_workload("roundtrip", pages[:8], seed=1), tmp_path / "w.hwzwl")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and list(tmp_path.iterdir()) == [path]
    assert load_workload(path).nr_pages == 8


# -- the kernel's structure: reclaim passes of folios, readahead clusters -------------------

# sha256 of the encoded op stream (n = 300, seed 5) as the generators wrote it before folios and
# readahead clusters existed, for their `batch` 32 (their default) and 1: with load_batch 1 and
# order-0 folios the streams must never change, or recorded results would stop comparing.
PINNED_OPS_SHA256 = {
    ("roundtrip", 32): "f210dae91d2c0ca92eeff7b197c8813856b06915caf7e55ae30d4cc9a1191b40",
    ("pressure", 32): "8efc165bf4b58ef358a665c56946a17570f804b72bb81907a2cef034ebdd9f29",
    ("mixed", 32): "e4685edcc3a73badaf24ae0f6a9de1b9dfd0250bb8a65fe5808f5d9af9ea8075",
    ("roundtrip", 1): "8e7ca437828c89f77f5aadfe69ace2fcdc54a3b4dd4b0b5a4368f72f5d336bee",
    ("pressure", 1): "fb2b798f40c10e66c8da834dfce7a227b57ccead78ea80cc0e05ad3bc58b48ee",
    ("mixed", 1): "7a4d3b4c047c7dcdfee01f3b67a804eff15d0bf4e40b19ad4b3e5f3a1fc90f5c",
}


@pytest.mark.parametrize(("name", "batch"), sorted(PINNED_OPS_SHA256))
def test_flat_structure_reproduces_the_old_streams(name: str, batch: int) -> None:
    wl = build_workload(name, np.zeros((300, 4096), np.uint8), seed=5, reclaim_batch=batch,
                        **FLAT)
    assert hashlib.sha256(_encode_ops(wl.ops)).hexdigest() == PINNED_OPS_SHA256[(name, batch)]
    assert all(not op.folios for op in wl.ops) and "load_ops" not in wl.counts()
    assert wl.structure == {"reclaim_batch": batch, "load_batch": 1, "folio_mix": [[1, 1.0]]}


def _folio_pages(wl: Workload) -> dict[int, int]:
    out: dict[int, int] = {}
    for op in wl.ops:
        if op.kind == STORE:
            for f in op.folios or (1,) * len(op.offsets):
                out[f] = out.get(f, 0) + f
    return out


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_default_structure_is_the_kernels(name: str) -> None:
    pages = np.zeros((2048, 4096), np.uint8)
    wl = build_workload(name, pages, seed=1)
    assert wl.structure == {"reclaim_batch": 32, "load_batch": 8,
                            "folio_mix": [[1, 0.75], [16, 0.25]]}
    assert DEFAULT_FOLIO_MIX == ((1, 0.75), (16, 0.25))
    for op in wl.ops:
        if op.kind == STORE:
            folios = op.folios or (1,) * len(op.offsets)
            assert len(folios) <= SWAP_CLUSTER_MAX and sum(folios) == len(op.offsets)
            pos = 0
            for f in folios:  # a folio sits on consecutive slots
                assert op.offsets[pos:pos + f] == tuple(range(op.offsets[pos],
                                                              op.offsets[pos] + f))
                assert f == 1 or op.offsets[pos] % f == 0  # and is aligned
                pos += f
        elif op.kind == LOAD:  # a readahead cluster: live slots of one aligned 8-slot window
            assert len({o // 8 for o in op.offsets}) == 1
            assert list(op.offsets) == sorted(op.offsets)
    share = _folio_pages(wl).get(16, 0) / wl.counts()["store_pages"]
    assert 0.1 < share < 0.45, share


def test_roundtrip_clusters_load_every_slot_once(pages: np.ndarray) -> None:
    n = pages.shape[0]
    wl = build_workload("roundtrip", pages, seed=3)
    loads = [op.offsets for op in wl.ops if op.kind == LOAD]
    assert sorted(o for c in loads for o in c) == list(range(n))
    # each fault reads in its whole window: every cluster is a full aligned window of 8
    assert all(c == tuple(range(c[0], min(c[0] + 8, n))) and c[0] % 8 == 0 for c in loads)
    # the faults come in the shuffled order of the flat stream (first fault of each window)
    flat = [op.offsets[0] for op in build_workload("roundtrip", pages, seed=3, **FLAT).ops
            if op.kind == LOAD]
    firsts = list(dict.fromkeys(o // 8 for o in flat))
    assert [c[0] // 8 for c in loads] == firsts


def test_folio_mix_does_not_move_the_rest_of_the_stream(pages: np.ndarray) -> None:
    a = build_workload("roundtrip", pages, seed=3, folio_mix=1)
    b = build_workload("roundtrip", pages, seed=3, folio_mix="1:1,16:1")
    assert [op for op in a.ops if op.kind != STORE] == [op for op in b.ops if op.kind != STORE]
    assert [o for op in a.ops if op.kind == STORE for o in op.offsets] == list(range(len(pages)))
    assert any(op.folios for op in b.ops) and not any(op.folios for op in a.ops)
    assert b.params == {"folio_mix": [[1, 0.5], [16, 0.5]]}


def test_pressure_restores_order0_folios_in_reclaim_passes() -> None:
    pages = np.zeros((512, 4096), np.uint8)
    wl = build_workload("pressure", pages, seed=2, reclaim_batch=16)
    first = 0
    while first < len(wl.ops) and wl.ops[first].kind == STORE:
        first += 1
    restores = [op for op in wl.ops[first:] if op.kind == STORE]
    assert restores and all(not op.folios and len(op.offsets) <= 16 for op in restores)
    assert any(op.folios for op in wl.ops[:first])  # the first fill has large folios
    assert wl.counts()["loads"] >= 512


def test_folio_layout_shares_and_alignment() -> None:
    mix = parse_folio_mix("1:1,16:1,64:2")
    sizes = folio_layout(10_000, mix, SplitMix64(4))
    assert sum(sizes) == 10_000
    pos = 0
    for s in sizes:
        assert pos % s == 0
        pos += s
    pages = {s: sum(x for x in sizes if x == s) for s in (1, 16, 64)}
    assert abs(pages[64] / 10_000 - 0.5) < 0.07 and abs(pages[16] / 10_000 - 0.25) < 0.07
    assert folio_layout(10_000, mix, SplitMix64(4)) == sizes


@pytest.mark.parametrize(("spec", "mix"), [
    ("1", ((1, 1.0),)), (16, ((16, 1.0),)), ("1:3,16:1", ((1, 0.75), (16, 0.25))),
    ({16: 1, 1: 1}, ((1, 0.5), (16, 0.5))), ([[1, 0.75], [16, 0.25]], ((1, 0.75), (16, 0.25))),
    ("16:1, 16:1, 1:0", ((16, 1.0),)),
])
def test_parse_folio_mix(spec, mix) -> None:  # type: ignore[no-untyped-def]
    assert parse_folio_mix(spec) == mix


@pytest.mark.parametrize("spec", ["", "3", "0", "1024", "x", "1:-1", "1:0", "16:nan", 2.0,
                                  "1:1e308,16:1e308",
                                  [[1]], True, "1:1,true:1", None])
def test_bad_folio_mix_is_a_clear_error(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkloadError, match="folio"):
        parse_folio_mix(spec)
    with pytest.raises(WorkloadError):
        build_workload("roundtrip", np.zeros((4, 4096), np.uint8), folio_mix=spec)


@given(limit=st.integers(1, 2_000_000))
def test_pool_limit_overrides_land_near_the_target(limit: int) -> None:
    o = pool_limit_overrides(limit)
    mb, pct = o["memory"]["total_ram_mb"], o["zswap"]["max_pool_percent"]
    assert 1 <= pct <= 100 and mb >= 1
    got = mb * 256 * pct // 100
    assert abs(got - limit) <= max(2, 0.02 * limit), (limit, got)


@given(name=st.sampled_from(sorted(WORKLOADS)), n=st.integers(1, 80), seed=st.integers(0, 2**32),
       load_batch=st.integers(1, 12), reclaim=st.integers(1, 40),
       mix=st.sampled_from(["1", "16", "1:3,16:1", "2:1,4:1,64:1", "512"]))
def test_structured_streams_are_replayable(name: str, n: int, seed: int, load_batch: int,
                                           reclaim: int, mix: str) -> None:
    wl = build_workload(name, np.zeros((n, 4096), np.uint8), seed=seed, load_batch=load_batch,
                        reclaim_batch=reclaim, folio_mix=mix)  # build_workload validates
    assert wl.nr_slots <= n
    stored = [op for op in wl.ops if op.kind == STORE]
    assert all(len(op.folios or op.offsets) <= reclaim for op in stored)
    assert all(len(op.offsets) <= load_batch for op in wl.ops if op.kind == LOAD)


def test_validate_checks_folios(pages: np.ndarray) -> None:
    for bad, msg in (
        (Op(STORE, 0, (1, 2, 3), (1, 2, 3), (2, 2)), "sum to its 3 pages"),
        (Op(STORE, 0, (1, 3), (1, 3), (2,)), "not on consecutive slots"),
        (Op(STORE, 0, (1,), (1,), (0, 1)), "must each be 1"),
        (Op(LOAD, 0, (1,), (), (1,)), "takes no page and no folio"),
    ):
        with pytest.raises(WorkloadError, match=msg):
            Workload("x", 0, pages, [Op(STORE, 0, (1,), (1,)), bad]).validate()
    big = MAX_FOLIO_PAGES + 1
    with pytest.raises(WorkloadError, match="must each be 1"):
        Workload("x", 0, np.zeros((big, 4096), np.uint8),
                 [Op(STORE, 0, tuple(range(big)), tuple(range(big)), (big,))]).validate()


def test_validate_checks_load_batches(pages: np.ndarray) -> None:
    store = Op(STORE, 0, (1, 2, 3), (1, 2, 3))
    for bad, msg in (
        (Op(LOAD, 0, (1, 2, 1)), "a load batch names one offset twice"),
        (Op(LOAD, 0, (1, 4)), "slot 0:4 holds nothing"),
        (Op(LOAD, 0, (1, 2), (1, 2)), "takes no page"),
        (Op(INVALIDATE, 0, (1, 2)), "takes exactly one offset"),
        (Op(LOAD, 0, ()), "needs a type >= 0 and offsets >= 0"),
    ):
        with pytest.raises(WorkloadError, match=msg):
            Workload("x", 0, pages, [store, bad]).validate()
    Workload("x", 0, pages, [store, Op(LOAD, 0, (3, 1, 2)), Op(LOAD, 0, (2,))]).validate()


def test_generator_parameters_are_checked(pages: np.ndarray) -> None:
    for what in ("load_batch", "reclaim_batch"):
        for value in (0, -3, 2.0, "4", True):
            with pytest.raises(WorkloadError, match=f"{what} must be a whole number 1.."):
                build_workload("roundtrip", pages, **{what: value})
    with pytest.raises(WorkloadError, match="'pressure' has no parameter 'batch'; its "
                                            "parameters: reclaim_batch, load_batch, folio_mix"):
        build_workload("pressure", pages, batch=4)
    with pytest.raises(WorkloadError, match="pool_fraction must be in"):
        build_workload("pressure", pages, pool_fraction=0)


@pytest.mark.parametrize("name", ["pressure", "mixed"])
def test_pool_fraction_is_checked_alike_by_both_generators(pages: np.ndarray, name: str) -> None:
    for value in (0, -0.25, 1.5, float("nan"), float("inf"), "0.5", None):
        with pytest.raises(WorkloadError, match=rf"^workload '{name}': pool_fraction must be "
                                                rf"in \(0, 1\], got {re.escape(repr(value))}$"):
            build_workload(name, pages[:16], pool_fraction=value)
    for value in (1, 0.5, 1e-3):
        build_workload(name, pages[:16], pool_fraction=value)


# -- the file: version 2 with folios, version 1 still read ----------------------------------


def test_file_round_trip_of_the_structure(pages: np.ndarray, tmp_path) -> None:
    wl = build_workload("pressure", pages, seed=9, load_batch=4, folio_mix="1:1,16:1")
    path = save_workload(wl, tmp_path / "s.hwzwl")
    header, _ = read_header(path)
    assert header["version"] == 2
    assert header["structure"] == {"reclaim_batch": 32, "load_batch": 4,
                                   "folio_mix": [[1, 0.5], [16, 0.5]]}
    assert header["pool_sizing"] == {"held_fraction": 0.25}
    assert header["ops"]["large_folio_pages"] == wl.counts()["large_folio_pages"] > 0
    back = load_workload(path)
    assert back.ops == wl.ops and any(op.folios for op in back.ops)
    assert back.describe() == wl.describe()
    assert save_workload(back, tmp_path / "again.hwzwl").read_bytes() == path.read_bytes()


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("name", "sha", "structure"), [
    ("v1_pressure", "b485f659c924035295ac921353fee361fd0261601a2feaa8305120f3369cb3bc",
     {"reclaim_batch": 8, "load_batch": 1, "folio_mix": [[1, 1.0]]}),
    ("v1_roundtrip_lb5", "b06b230b6fe9dbac8dda0406d83d4568b0266bc276258fbe2b802178e99a5c15",
     {"reclaim_batch": 32, "load_batch": 5, "folio_mix": [[1, 1.0]]}),
])
def test_version_1_files_still_load(name: str, sha: str, structure: dict, tmp_path) -> None:
    """Files written by the hwzswap before folios (tests/bench/data, written then)."""
    path = DATA / f"{name}.hwzwl"
    assert read_header(path)[0]["version"] == 1
    wl = load_workload(path)
    assert hashlib.sha256(_encode_ops(wl.ops)).hexdigest() == sha
    assert wl.structure == structure and wl.pool_sizing is None
    assert all(not op.folios for op in wl.ops)
    again = load_workload(save_workload(wl, tmp_path / "v2.hwzwl"))  # rewritten as version 2
    assert again.ops == wl.ops and again.structure == structure


def test_a_huge_header_number_is_a_clear_error(pages: np.ndarray, tmp_path) -> None:
    """Issue 16 row 12: "length": 99999999999999999999 -> WorkloadError, no OverflowError."""
    path = save_workload(build_workload("roundtrip", pages[:16], seed=1), tmp_path / "w.hwzwl")
    header, start = read_header(path)
    data = path.read_bytes()[start:]
    for mutate in (
        lambda h: h["sections"]["ops"].__setitem__("length", 99999999999999999999),
        lambda h: h["sections"]["pages"].__setitem__("offset", 99999999999999999999),
        lambda h: h.__setitem__("pages", 99999999999999999999),
        lambda h: h["ops"].__setitem__("count", 99999999999999999999),
        lambda h: h["ops"].__setitem__("entries", -1),
        lambda h: h["sections"]["ops"].__setitem__("length", 1e308),
        lambda h: h.__setitem__("seed", 2**70),
    ):
        h = json.loads(json.dumps(header))
        mutate(h)
        h.pop("header_sha256")  # as a file written before the header had its checksum
        head = json.dumps(h).encode()
        bad = tmp_path / "bad.hwzwl"
        bad.write_bytes(FILE_MAGIC + struct.pack("<II", 2, len(head)) + head + data)
        with pytest.raises(WorkloadError, match="expected a whole number|truncated"):
            load_workload(bad)
    bad.write_bytes(path.read_bytes()[:16] + b"{" * 10)  # header length beyond the file
    with pytest.raises(WorkloadError, match="header is truncated"):
        load_workload(bad)


def test_a_cut_short_workload_file_says_so_and_what_to_do(pages: np.ndarray, tmp_path) -> None:
    """Every truncation is named as one (not "no magic" while the magic is there) and ends with
    what to do: re-copy or re-record."""
    raw = save_workload(build_workload("roundtrip", pages[:24], seed=1),
                        tmp_path / "w.hwzwl").read_bytes()
    cut = tmp_path / "cut.hwzwl"
    for length, what in ((8, "shorter than a workload file's 16-byte fixed header"),
                         (12, "12 bytes, shorter than a workload file's 16-byte fixed header"),
                         (40, "the header is truncated"),
                         (len(raw) - 10, "section is truncated")):
        cut.write_bytes(raw[:length])
        with pytest.raises(WorkloadError) as exc:
            load_workload(cut)
        assert what in str(exc.value), (length, str(exc.value))
        assert str(exc.value).endswith("re-copy the file, or record it again with "
                                       "`hwzswap record`")
    cut.write_bytes(raw[:7])
    with pytest.raises(WorkloadError, match="not a hwzswap workload file"):
        load_workload(cut)


def test_mutated_workload_files_give_workload_error_or_load(pages: np.ndarray,
                                                           tmp_path) -> None:
    """A bounded fuzz (issue 16): byte flips, truncations, splices and header edits of real
    workload files either load (and then validate) or raise WorkloadError, nothing else."""
    import random

    originals = [
        save_workload(build_workload(name, pages[:24], seed=2), tmp_path / f"{name}.hwzwl")
        .read_bytes() for name in sorted(WORKLOADS)
    ] + [(DATA / "v1_pressure.hwzwl").read_bytes()]
    rng = random.Random(1234)
    bad = tmp_path / "m.hwzwl"
    loaded = refused = 0
    for _ in range(400):
        raw = bytearray(rng.choice(originals))
        head_len = struct.unpack("<I", raw[12:16])[0]
        kind = rng.randrange(5)
        if kind == 0:  # flip bytes anywhere
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # flip a byte of the header JSON (a digit becomes another...)
            raw[16 + rng.randrange(head_len)] = rng.choice(b'0123456789-.e"{}[],:x ')
        elif kind == 2:  # truncate
            del raw[rng.randrange(len(raw)):]
        elif kind == 3:  # a number in the header replaced by an extreme one
            text = raw[16:16 + head_len].decode()
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            i = rng.choice(digits)
            text = text[:i] + rng.choice(["99999999999999999999", "-1", "1e999", "0", "2.5",
                                          "null", "[]"]) + text[i + 1:]
            raw[16:16 + head_len] = text.encode()
            raw[12:16] = struct.pack("<I", len(text.encode()))
        else:  # the version or the header length
            raw[8 + 4 * rng.randrange(2):12 + 4 * rng.randrange(1)] = struct.pack(
                "<I", rng.choice([0, 1, 2, 3, 2**32 - 1, head_len - 1, head_len + 7]))
        bad.write_bytes(bytes(raw))
        try:
            load_workload(bad)
            loaded += 1
        except WorkloadError:
            refused += 1
    assert refused > 300 and loaded + refused == 400


def test_a_fifo_is_never_opened_as_a_workload(tmp_path) -> None:
    fifo = tmp_path / "w.fifo"
    os.mkfifo(fifo)
    assert not is_workload_file(fifo)  # would block forever if it opened the FIFO
    with pytest.raises(WorkloadError, match="not a regular file"):
        load_workload(fifo)


def test_a_seed_beyond_64_bits_is_refused_before_it_reaches_a_file(pages: np.ndarray,
                                                                   tmp_path) -> None:
    """build_workload took a seed of 2**64 and save_workload wrote it into a file that
    load_workload then refused as damaged; the library refuses it first, as the CLI does."""
    from hwzswap.bench.workload import MAX_SEED

    wl = build_workload("roundtrip", pages[:8], seed=MAX_SEED)
    assert load_workload(save_workload(wl, tmp_path / "w.hwzwl")).seed == MAX_SEED
    for bad in (MAX_SEED + 1, -1, 1.5):
        with pytest.raises(WorkloadError, match="the seed must be a whole number 0..18446744"):
            build_workload("roundtrip", pages[:8], seed=bad)
