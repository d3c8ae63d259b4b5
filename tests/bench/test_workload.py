"""Workloads: determinism from a seed, stream validity, the workload file format."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwzswap.bench.runner import backend_config, base_config
from hwzswap.bench.workload import (
    FILE_MAGIC,
    INVALIDATE,
    LOAD,
    STORE,
    SWAP_CLUSTER_MAX,
    WORKLOADS,
    Op,
    SplitMix64,
    Workload,
    _encode_ops,
    build_workload,
    is_workload_file,
    load_workload,
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


def test_roundtrip_shape(pages: np.ndarray) -> None:
    n = pages.shape[0]
    wl = build_workload("roundtrip", pages, seed=3)
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
    wl = build_workload("pressure", pages, seed=0)
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
    wl = build_workload("mixed", pages, seed=5)
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
            assert op.offsets[0] in live
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
    assert version == header["version"] == 1
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
    with pytest.raises(WorkloadError, match="version 99"):
        load_workload(bad)

    with pytest.raises(WorkloadError, match="cannot read"):
        load_workload(tmp_path / "missing.hwzwl")


def test_save_failure_leaves_no_partial_file(pages: np.ndarray, tmp_path) -> None:
    wl = build_workload("roundtrip", pages[:8], seed=1)
    target = tmp_path / "no-such-dir" / "w.hwzwl"
    with pytest.raises(WorkloadError, match="cannot write"):
        save_workload(wl, target)
    assert not list(tmp_path.rglob("*.tmp"))


# -- readahead: batched loads ---------------------------------------------------------------

# sha256 of the encoded op stream (n = 300, seed 5) as written before loads could be batched:
# the streams of single loads must never change, or recorded results would stop comparing.
PINNED_OPS_SHA256 = {
    "roundtrip": "f210dae91d2c0ca92eeff7b197c8813856b06915caf7e55ae30d4cc9a1191b40",
    "pressure": "8efc165bf4b58ef358a665c56946a17570f804b72bb81907a2cef034ebdd9f29",
    "mixed": "e4685edcc3a73badaf24ae0f6a9de1b9dfd0250bb8a65fe5808f5d9af9ea8075",
}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_single_load_streams_are_unchanged(name: str) -> None:
    wl = build_workload(name, np.zeros((300, 4096), np.uint8), seed=5)
    assert hashlib.sha256(_encode_ops(wl.ops)).hexdigest() == PINNED_OPS_SHA256[name]
    assert wl.params == {} and "load_ops" not in wl.counts()


@pytest.mark.parametrize("load_batch", [1, 8, 32, 500])
def test_roundtrip_load_batches_cut_the_same_shuffled_order(pages: np.ndarray,
                                                            load_batch: int) -> None:
    n = pages.shape[0]
    single = build_workload("roundtrip", pages, seed=3)
    wl = build_workload("roundtrip", pages, seed=3, load_batch=load_batch)
    assert wl.ops == build_workload("roundtrip", pages.copy(), seed=3, load_batch=load_batch).ops
    assert wl.params == {"load_batch": load_batch}
    loads = [op for op in wl.ops if op.kind == LOAD]
    assert [o for op in loads for o in op.offsets] == [
        op.offsets[0] for op in single.ops if op.kind == LOAD]
    sizes = [len(op.offsets) for op in loads]
    assert sizes == [load_batch] * (n // load_batch) + ([n % load_batch] if n % load_batch else [])
    assert all(not op.pages for op in loads)
    assert [op for op in wl.ops if op.kind != LOAD] == [op for op in single.ops if op.kind != LOAD]
    c = wl.counts()
    assert c["loads"] == n and c["ops"] == len(wl.ops)
    assert c.get("load_ops", len(loads)) == len(loads) == -(-n // load_batch)
    assert ("load_ops" in c) == (load_batch > 1)
    if load_batch == 1:
        assert wl.ops == single.ops


@given(n=st.integers(1, 80), seed=st.integers(0, 2**32), load_batch=st.integers(1, 40))
def test_batched_roundtrip_streams_are_replayable(n: int, seed: int, load_batch: int) -> None:
    wl = build_workload("roundtrip", np.zeros((n, 4096), np.uint8), seed=seed,
                        load_batch=load_batch)  # build_workload validates
    loaded = [o for op in wl.ops if op.kind == LOAD for o in op.offsets]
    assert sorted(loaded) == list(range(n))


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
    for value in (0, -3, 2.0, "4", True):
        with pytest.raises(WorkloadError, match="load_batch must be a whole number >= 1"):
            build_workload("roundtrip", pages, load_batch=value)
    with pytest.raises(WorkloadError, match="'pressure' has no parameter 'load_batch'; its "
                                            "parameters: batch, pool_fraction"):
        build_workload("pressure", pages, load_batch=4)


def test_file_round_trip_of_batched_loads(pages: np.ndarray, tmp_path) -> None:
    wl = build_workload("roundtrip", pages, seed=9, load_batch=16)
    path = save_workload(wl, tmp_path / "rb.hwzwl")
    header, _ = read_header(path)
    assert header["version"] == 1 and header["params"] == {"load_batch": 16}
    n = pages.shape[0]
    assert header["ops"]["loads"] == n and header["ops"]["load_ops"] == -(-n // 16)
    back = load_workload(path)
    assert back.ops == wl.ops and back.params == wl.params
    assert back.describe() == wl.describe()
    assert save_workload(back, tmp_path / "again.hwzwl").read_bytes() == path.read_bytes()
