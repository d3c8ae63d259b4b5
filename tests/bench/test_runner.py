"""The runner: every page verified through the whole stack, honest ratio, replay determinism,
unavailable/broken backends reported rather than crashing the bench."""

from __future__ import annotations

import json
import zlib
from typing import Any, ClassVar

import lz4.block
import numpy as np
import pytest

from hwzswap.backends import registry
from hwzswap.backends.contract import PAGE_SIZE, Capabilities, Param
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import (
    BenchRun,
    bench_failed,
    comparable_counters,
    compile_workload,
    run_bench,
    same_filled_mask,
)
from hwzswap.bench.workload import build_workload, load_workload, save_workload
from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    InvalidParameterError,
    UnknownBackendError,
    WorkloadError,
)
from hwzswap.testing import real_memory_mix

SOFTWARE = ["lz4", "lzo", "zstd", "deflate"]


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    """Real anonymous memory from the bundled corpus plus same-filled and random pages."""
    real = load_bundled(max_pages=224)
    extra = real_memory_mix(32, seed=3)  # zero, same-filled, random (incompressible), text...
    return np.concatenate([real, extra])


def _run(wl: Any, backends: list[str], **kw: Any) -> dict[str, Any]:
    return run_bench(wl, BenchRun(backends=backends, **kw))


def _all_rows(doc: dict[str, Any], backends: list[str],
              modes: tuple[str, ...] = ("reclaim",)) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows by (backend, mode), after asserting nothing failed and every backend in every
    mode gave its row (a loop over ``doc["results"]`` alone passes when every row failed)."""
    assert doc["failed"] == [] and doc["skipped"] == []
    rows = {(r["backend"], r["batching"]): r for r in doc["results"]}
    assert len(rows) == len(doc["results"])
    assert set(rows) == {(b, m) for b in backends for m in modes}
    return rows


@pytest.mark.parametrize("name", ["roundtrip", "pressure", "mixed"])
def test_every_load_verified_for_software_codecs(name: str, pages: np.ndarray) -> None:
    wl = build_workload(name, pages, seed=2)
    doc = _run(wl, SOFTWARE)
    assert not doc["failed"] and not doc["skipped"]
    assert [r["backend"] for r in doc["results"]] == SOFTWARE
    loads = wl.counts()["loads"]
    for r in doc["results"]:
        assert r["mismatches"] == 0, r["mismatch_examples"]
        assert r["raw_mismatches"] == 0
        assert r["verified_pages"] == r["pages"] == loads
        assert r["store_pages_per_s"] > 0 and r["raw_store_pages_per_s"] > 0
        assert r["load_pages_per_s"] > 0 and r["raw_load_pages_per_s"] > 0
        assert r["store_us"]["p50"] <= r["store_us"]["p99"]
        assert r["host_cpu_us_per_page"] > 0
        assert r["device_us_per_page"] is None  # measured backends have no modelled time
        assert r["counters"]["stored_pages"] == 0  # the stream ends with everything freed
        if name == "roundtrip":  # the pool holds everything: no limit, no writeback, and
            # only the pages zswap rejected come from the swap device: for poor compression,
            # and the rest of a large folio refused with such a page (reject_folio, where the
            # engine counts it), each page under one reason
            assert r["pool_limit_hit"] == r["written_back_pages"] == 0
            assert r["swap_reads"] == r["swap_writes"] == sum(r["rejects"].values())
        assert r["rejects"]["compress_poor"] >= 1  # the random page does not shrink by 20%
        assert r["swap_writes"] >= r["rejects"]["compress_poor"]


def test_pressure_writes_back_and_reads_the_swap_device(pages: np.ndarray) -> None:
    wl = build_workload("pressure", pages, seed=0)
    (r,) = _run(wl, ["lz4"])["results"]
    assert r["pool_limit_hit"] > 0
    assert r["written_back_pages"] > 0
    assert r["swap_reads"] > 0 and r["swap_writes"] >= r["written_back_pages"]
    assert r["mismatches"] == 0 and r["verified_pages"] == r["pages"]
    # the limit is what lz4's pool took to hold a quarter of the workload's pages
    sizing = r["pool_sizing"]
    assert sizing["held_fraction"] == 0.25 and sizing["held_pages"] > 0
    assert r["counters"]["pool_limit_pages"] == sizing["limit_pages"]
    assert abs(sizing["limit_pages"] - sizing["fraction_pages"]) <= 3
    assert 0 < sizing["fraction_pages"] < sizing["held_pages"]
    assert r["saw_writeback"] and r["writeback_expected"]
    assert 0 < r["pool_density"] <= 1


def test_pressure_puts_every_codec_under_pressure(pages: np.ndarray) -> None:
    """zstd (ratio ~4) never reached a limit sized from the working set; sized from what the
    pool holds, every backend writes back."""
    doc = _run(build_workload("pressure", pages, seed=0), SOFTWARE)
    held = {r["backend"]: r["pool_sizing"]["held_pages"] for r in doc["results"]}
    assert len(set(held.values())) > 1  # the limit follows each backend's own footprint
    for r in doc["results"]:
        assert r["written_back_pages"] > 0 and r["saw_writeback"], r["backend"]
        assert r["mismatches"] == 0 and r["verified_pages"] == r["pages"]


def test_mixed_puts_every_codec_under_pressure(pages: np.ndarray) -> None:
    """Sized from the working set (half of it), the mixed workload's pool never filled: its
    live slots are about half of all and compress 2-4x. Sized from what the pool holds, every
    backend writes back, and the limit is half of what the live half holds."""
    doc = _run(build_workload("mixed", pages, seed=3), SOFTWARE)
    for r in _all_rows(doc, SOFTWARE).values():
        sizing = r["pool_sizing"]
        assert sizing["held_fraction"] == 0.25 and sizing["held_pages"] > 0, r["backend"]
        assert r["counters"]["pool_limit_pages"] == sizing["limit_pages"]
        assert r["pool_limit_hit"] > 0, r["backend"]
        assert r["written_back_pages"] > 0 and r["saw_writeback"], r["backend"]
        assert r["mismatches"] == 0 and r["verified_pages"] == r["pages"]


def test_mixed_pool_fraction_is_checked(pages: np.ndarray) -> None:
    with pytest.raises(WorkloadError, match="'mixed': pool_fraction must be in"):
        build_workload("mixed", pages, seed=0, pool_fraction=0)


def test_mixed_restores_count_as_duplicates(pages: np.ndarray) -> None:
    (r,) = _run(build_workload("mixed", pages, seed=8), ["zstd"])["results"]
    assert r["counters"]["duplicate_entry"] > 0
    assert r["mismatches"] == 0


def test_lz4_ratio_equals_lz4_block_on_the_same_pages(pages: np.ndarray) -> None:
    wl = build_workload("roundtrip", pages, seed=0)
    (r,) = _run(wl, ["lz4"])["results"]
    same = same_filled_mask(pages)
    assert same.sum() >= 2  # the zero and same-filled pages are excluded
    orig = comp = 0
    for page in pages[~same]:
        orig += PAGE_SIZE
        comp += min(len(lz4.block.compress(page.tobytes(), store_size=False)), PAGE_SIZE)
    assert r["ratio_bytes"]["original"] == orig
    assert r["ratio_bytes"]["compressed"] == comp
    assert r["ratio"] == round(orig / comp, 4)


def test_pool_density_is_compressed_over_pool_bytes_at_peak(pages: np.ndarray) -> None:
    (r,) = _run(build_workload("roundtrip", pages, seed=0), ["lzo"])["results"]
    c = r["counters"]
    assert r["pool_bytes"] == c["pool_peak_pages"] * PAGE_SIZE
    assert r["pool_density"] == round(c["compressed_bytes_at_peak"] / r["pool_bytes"], 4)


def test_replaying_a_workload_file_gives_identical_counters(pages: np.ndarray, tmp_path) -> None:
    path = save_workload(build_workload("pressure", pages, seed=6), tmp_path / "p.hwzwl")
    runs = [_run(load_workload(path), ["lz4", "zstd"]) for _ in range(2)]
    for doc in runs:
        _all_rows(doc, ["lz4", "zstd"])
    for a, b in zip(runs[0]["results"], runs[1]["results"], strict=True):
        assert a["backend"] == b["backend"]
        assert a["ratio_bytes"] == b["ratio_bytes"]
        assert a["compressed_bytes_at_peak"] == b["compressed_bytes_at_peak"]
        assert comparable_counters(a) == comparable_counters(b)
        assert a["counters"]["written_back_pages"] > 0  # the comparison covers writeback


def test_compiled_stream_expects_the_last_stored_page() -> None:
    pages = real_memory_mix(40, seed=2)
    wl = build_workload("mixed", pages, seed=1)
    cw = compile_workload(wl, chunk_page_ops=16)
    assert len(cw.chunks) > 2
    content: dict[int, int] = {}
    expected = []
    for op in wl.ops:
        if op.kind == "store":
            content.update(zip(op.offsets, op.pages))
        elif op.kind == "load":
            expected += [content[o] for o in op.offsets]
        else:
            content.pop(op.offsets[0])
    assert [i for c in cw.chunks for i in c.load_expect] == expected
    assert sum(c.page_ops for c in cw.chunks) == cw.page_ops


# -- backends that cannot run or misbehave ---------------------------------------------------


class _Unavailable(Lz4Backend):
    name = "test-unavailable"

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        return False, "needs a device this machine does not have"


class _Corrupting(Lz4Backend):
    """Decompresses to the right length but flips a byte of every 7th page it returns."""

    name = "test-corrupting"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calls = 0

    def decompress(self, data: Any) -> bytes:
        out = super().decompress(data)
        self.calls += 1
        if self.calls % 7 == 0:
            out = bytes([out[0] ^ 1]) + out[1:]
        return out


class _CorruptSome(Lz4Backend):
    """Raises CorruptDataError for the same few pages every time it decompresses them."""

    name = "test-corrupt-some"

    def decompress(self, data: Any) -> bytes:
        out = super().decompress(data)
        if len(set(out)) > 1 and zlib.crc32(out) % 61 == 0:
            raise CorruptDataError("test-corrupt-some: this object no longer decompresses")
        return out


class _Failing(Lz4Backend):
    name = "test-failing"
    LIMIT: ClassVar[int] = 100

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calls = 0

    def decompress(self, data: Any) -> bytes:
        self.calls += 1
        if self.calls > self.LIMIT:
            raise DeviceError("test-failing: the device stopped answering")
        return super().decompress(data)


class _ModelledWithoutTime(Lz4Backend):
    """Claims a modelled device but reports no device time: a contract violation."""

    name = "test-modelled-no-time"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(time_basis="modeled")


@pytest.fixture
def test_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in (_Unavailable, _Corrupting, _CorruptSome, _Failing, _ModelledWithoutTime):
        monkeypatch.setitem(registry._registered, cls.name, cls)


class _BrokenConstructor(Lz4Backend):
    name = "test-broken-ctor"

    def __init__(self, **params: Any) -> None:
        raise RuntimeError("the vendor library is missing")


class _BadParameter(Lz4Backend):
    """Rejects a parameter in its constructor, as a driver's cross-field check does."""

    name = "test-bad-param"
    PARAMS = {**Lz4Backend.PARAMS, "queue": Param(int, 4, min=1, doc="queue depth")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["queue"] % 2:
            raise InvalidParameterError(
                f"backend {self.name!r}: parameter 'queue' must be even; got "
                f"{self.params['queue']}")


def test_unavailable_and_failing_backends_do_not_stop_the_bench(
    pages: np.ndarray, test_backends: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry._registered, _BrokenConstructor.name, _BrokenConstructor)
    wl = build_workload("roundtrip", pages, seed=0)
    doc = _run(wl, ["test-unavailable", "test-failing", "test-broken-ctor",
                    "test-modelled-no-time", "lz4"])
    assert [s["backend"] for s in doc["skipped"]] == ["test-unavailable"]
    assert "does not have" in doc["skipped"][0]["reason"]
    failed = {f["backend"]: f for f in doc["failed"]}
    assert list(failed) == ["test-broken-ctor", "test-modelled-no-time"]
    assert failed["test-broken-ctor"]["phase"] == "constructor"
    assert "RuntimeError" in failed["test-broken-ctor"]["error"]
    assert "the vendor library is missing" in failed["test-broken-ctor"]["error"]
    assert failed["test-modelled-no-time"]["phase"] == "run"
    assert "must report its device time" in failed["test-modelled-no-time"]["error"]
    # a device that stops answering is measured, its errors counted by phase, not fatal
    by = {r["backend"]: r for r in doc["results"]}
    assert list(by) == ["test-failing", "lz4"]
    f = by["test-failing"]["faults"]
    assert f["any"] and f["raw"]["load_errors"] > 0 and f["load"]["errors"] > 0
    assert 0 < f["load"]["error_rate"] <= 1 and f["store"]["errors"] == 0
    assert "stopped answering" in " ".join(f["examples"])
    r = by["test-failing"]
    assert r["load_failures"] > 0 and r["mismatches"] == 0
    assert r["verified_pages"] + r["load_failures"] == r["pages"]
    assert not by["lz4"]["faults"]["any"]
    assert bench_failed(doc)  # a lost page and failed backends: non-zero exit


def test_a_parameter_error_names_the_config_file_and_key(
    pages: np.ndarray, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry._registered, _BadParameter.name, _BadParameter)
    cfg = tmp_path / "vendor.yaml"
    cfg.write_text("zswap:\n  compressor: {name: test-bad-param, params: {queue: 3}}\n")
    doc = _run(build_workload("roundtrip", pages[:32], seed=0), ["test-bad-param", "lz4"],
               config=str(cfg))
    (f,) = doc["failed"]
    assert f["phase"] == "parameters"
    assert f"{cfg}: zswap.compressor.params.queue: " in f["error"]
    assert "must be even" in f["error"]
    assert [r["backend"] for r in doc["results"]] == ["lz4"]
    assert bench_failed(doc)


def test_corrupted_pages_are_caught_and_counted(pages: np.ndarray, test_backends: None) -> None:
    wl = build_workload("roundtrip", pages, seed=0)
    (r,) = _run(wl, ["test-corrupting"], warm_up=False)["results"]
    assert r["mismatches"] > 0
    assert r["verified_pages"] + r["mismatches"] == r["pages"]
    # the raw pass decompresses through the same codec: its bad pages are counted apart
    assert r["raw_mismatches"] > 0
    ex = r["mismatch_examples"][0]
    assert ex["first_differing_byte"] == 0 and ex["length"] == PAGE_SIZE


def test_unknown_backend_name_fails_before_running(pages: np.ndarray) -> None:
    with pytest.raises(UnknownBackendError, match="no backend named 'lz5'"):
        _run(build_workload("roundtrip", pages[:8], seed=0), ["lz4", "lz5"])


def test_config_compressor_params_apply_to_that_backend(pages: np.ndarray, tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("zswap:\n  compressor: {name: zstd, params: {level: 19}}\n")
    wl = build_workload("roundtrip", pages, seed=0)
    doc = _run(wl, ["zstd", "lz4"], config=str(cfg))
    by = {r["backend"]: r for r in doc["results"]}
    assert by["zstd"]["params"] == {"level": 19}
    assert by["zstd"]["config"]["zswap"]["compressor"] == {"name": "zstd",
                                                           "params": {"level": 19}}
    assert by["lz4"]["config"]["zswap"]["compressor"]["name"] == "lz4"
    # the workload's overrides win over the file
    assert by["lz4"]["config"]["zswap"]["max_pool_percent"] == 50


def test_modelled_backend_reports_device_time(pages: np.ndarray) -> None:
    ok, why = registry.get_backend_class("842-nx").availability()
    assert ok, why
    wl = build_workload("roundtrip", pages[:96], seed=0)
    (r,) = _run(wl, ["842-nx"])["results"]
    assert r["time_basis"] == "modeled"
    assert r["device_us_per_page"] > 0
    assert r["device_store_us_per_page"] > 0 and r["device_load_us_per_page"] > 0
    assert r["host_cpu_excludes_emulation"] is True
    assert r["emulation_us_per_page"] > 0
    assert r["host_cpu_us_per_page"] >= 0
    assert r["mismatches"] == 0 and r["verified_pages"] == r["pages"]


def test_skipped_backend_with_registered_but_broken_import(
    pages: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry._BUILTINS, "test-missing", "hwzswap.no_such_module:X")
    doc = _run(build_workload("roundtrip", pages[:16], seed=0), ["test-missing"])
    assert doc["results"] == []
    assert "could not be loaded" in doc["skipped"][0]["reason"]


def test_default_runs_every_registered_backend(pages: np.ndarray) -> None:
    wl = build_workload("roundtrip", pages[:48], seed=0)
    doc = run_bench(wl)
    seen = [r["backend"] for r in doc["results"]] + [s["backend"] for s in doc["skipped"]]
    assert sorted(seen + [f["backend"] for f in doc["failed"]]) == registry.backend_names()
    assert not doc["failed"], doc["failed"]
    assert all(r["mismatches"] == 0 for r in doc["results"])


def test_backend_must_not_write_into_its_input(pages: np.ndarray) -> None:
    cw = compile_workload(build_workload("roundtrip", pages, seed=0))
    batches = [op[3] for c in cw.chunks for op in c.ops if op[0] == 1]
    assert batches and all(not b.flags.writeable for b in batches)


# -- readahead: batched loads ---------------------------------------------------------------


def test_batched_loads_are_each_verified_and_count_as_single_loads(pages: np.ndarray) -> None:
    # 256 pages in batches of 24: ten full batches and a short one
    single = _run(build_workload("roundtrip", pages, seed=4), SOFTWARE + ["lz4-opencl"])
    batched = _run(build_workload("roundtrip", pages, seed=4, load_batch=24),
                   SOFTWARE + ["lz4-opencl"])
    assert not batched["failed"] and not batched["skipped"]
    assert batched["workload"]["params"] == {"load_batch": 24}
    assert batched["workload"]["counts"]["load_ops"] == 11
    for a, b in zip(single["results"], batched["results"]):
        assert a["backend"] == b["backend"]
        assert b["mismatches"] == b["raw_mismatches"] == 0, b["mismatch_examples"]
        assert b["verified_pages"] == b["pages"] == len(pages)
        assert b["load_pages_per_s"] > 0 and b["raw_load_pages_per_s"] > 0
        assert b["load_us"]["p50"] <= b["load_us"]["p99"]
        # the same pages, hits, misses and device reads, only fewer calls
        assert comparable_counters(a) == comparable_counters(b)
        assert b["swap_reads"] == sum(b["rejects"].values()) >= 1  # poor pages (and folios)
        assert b["rejects"]["compress_poor"] >= 1
    ocl = batched["results"][-1]["backend_counters"]
    # stack (11) + raw pass (11) + warm-up: far fewer device round trips than pages loaded
    assert ocl["decompress_launches"] < len(pages) // 4


def test_compiled_stream_with_load_batches() -> None:
    pages = real_memory_mix(70, seed=2)
    wl = build_workload("roundtrip", pages, seed=1, load_batch=8)
    cw = compile_workload(wl, chunk_page_ops=20)
    assert cw.max_load_batch == 8 and cw.loads == 70
    loads = [op for op in wl.ops if op.kind == "load"]
    groups = [g for c in cw.chunks for g in c.raw_loads]
    assert groups == [op.offsets for op in loads]  # slot i holds page i
    assert [i for c in cw.chunks for i in c.load_expect] == [o for op in loads for o in op.offsets]
    batched = [op for c in cw.chunks for op in c.ops if op[0] == 4]
    assert [b[2] for b in batched] == [list(op.offsets) for op in loads if len(op.offsets) > 1]
    assert all(b[3] == [cw.page_bytes[o] for o in b[2]] for b in batched)
    assert sum(c.page_ops for c in cw.chunks) == cw.page_ops


def test_corrupted_pages_in_batched_loads_are_caught(pages: np.ndarray,
                                                     test_backends: None) -> None:
    wl = build_workload("roundtrip", pages, seed=0, load_batch=16)
    (r,) = _run(wl, ["test-corrupting"], warm_up=False)["results"]
    assert r["mismatches"] > 0 and r["raw_mismatches"] > 0
    assert r["verified_pages"] + r["mismatches"] == r["pages"] == len(pages)
    ex = r["mismatch_examples"][0]
    assert ex["first_differing_byte"] == 0 and ex["length"] == PAGE_SIZE


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_readahead_cluster_loses_only_its_items_that_cannot_be_read_each_counted_once(
        pages: np.ndarray, test_backends: None, tmp_path, exclusive: bool) -> None:
    # the bench's readahead calls are partial: a corrupt object comes back as its error and
    # loses its own page, not its cluster's 16, and is counted once (an all-or-nothing call
    # read again page by page counted it twice in decompress_fail)
    wl = build_workload("roundtrip", pages, seed=0, load_batch=16)
    bad = sum(1 for p in pages if len(set(p.tobytes())) > 1 and zlib.crc32(p.tobytes()) % 61 == 0)
    assert 0 < bad < len(pages) // 16
    cfg = tmp_path / "x.yaml"
    cfg.write_text(f"zswap:\n  exclusive_loads: {str(exclusive).lower()}\n")
    (r,) = _run(wl, ["test-corrupt-some"], warm_up=False, config=str(cfg))["results"]
    assert r["config"]["zswap"]["exclusive_loads"] is exclusive
    assert r["load_failures"] == bad and r["mismatches"] == 0
    assert r["verified_pages"] == r["pages"] - bad
    f = r["faults"]
    assert f["load"]["readahead_failed_items"] == bad and f["any"]
    assert f["load"]["failed_pages"] == f["load"]["decompress_fail"] == bad
    assert f["load"]["errors"] == bad and f["load"]["readahead_fallbacks"] == 0
    # each item's error is on record, naming its slot
    assert any(e.startswith("stack readahead item (type 0 offset ") and "CorruptDataError" in e
               for e in f["examples"])


def test_a_readahead_call_that_raises_as_a_whole_is_read_page_by_page() -> None:
    """A cluster holding a slot whose store failed (left free, the page kept in memory) makes
    the call raise before reading anything: each page is then read alone, the kept page a
    resident load, the others loaded; the call is on record (``readahead_fallbacks``)."""
    from hwzswap.bench.runner import _LOST, _RESIDENT, _load_each, _Meter, _store_failed
    from hwzswap.errors import HwzswapError, SwapBatchError
    from hwzswap.frontswap.system import open_zswap

    system = open_zswap({}, backend=Lz4Backend())
    try:
        m = _Meter()
        page = bytes(range(256)) * 16
        system.swap_out(0, 1, page)
        _store_failed(m, 0, [2], SwapBatchError("ENOSPC", stored=[], written=[], failed=[2]))
        try:
            system.swap_in_batch(0, [1, 2], partial=True)
        except HwzswapError as exc:
            out = _load_each(m, system.swap_in, 0, [1, 2], exc)
        else:
            raise AssertionError("a slot not in use must make the whole call raise")
        assert out == [page, _RESIDENT] and _LOST not in out
        assert m.readahead_fallbacks == 1 and m.resident_loads == 1
        assert m.stack_load_failures == 0 and m.readahead_failed_items == 0
        assert m.error_examples[-1].startswith("stack readahead (read again page by page)")
    finally:
        system.close()


def test_a_workload_file_with_batched_loads_replays_identically(pages: np.ndarray,
                                                                tmp_path) -> None:
    path = save_workload(build_workload("roundtrip", pages, seed=6, load_batch=32),
                         tmp_path / "rb.hwzwl")
    runs = [_run(load_workload(path), ["lz4", "lz4-opencl"]) for _ in range(2)]
    for a, b in zip(runs[0]["results"], runs[1]["results"]):
        assert a["backend"] == b["backend"]
        assert a["ratio_bytes"] == b["ratio_bytes"]
        assert comparable_counters(a) == comparable_counters(b)
        assert a["mismatches"] == b["mismatches"] == 0
        assert a["verified_pages"] == len(pages)
    assert runs[0]["workload"]["params"] == {"load_batch": 32}


# -- engine modes: the identical stream through each design ---------------------------------


def test_every_engine_mode_verifies_every_page_on_the_identical_stream(pages: np.ndarray) -> None:
    wl = build_workload("pressure", pages[:128], seed=3)
    modes = ["page", "folio", "reclaim", "async"]
    doc = _run(wl, ["lz4", "lz4-opencl", "842-nx"], batching=",".join(modes))
    assert not doc["failed"] and not doc["skipped"], doc["failed"]
    assert doc["batching"] == modes
    got = [(r["backend"], r["batching"]) for r in doc["results"]]
    assert got == [(b, m) for b in ("lz4", "lz4-opencl", "842-nx") for m in modes]
    for backend in ("lz4", "lz4-opencl", "842-nx"):
        rs = [r for r in doc["results"] if r["backend"] == backend]
        for r in rs:
            assert r["mismatches"] == r["load_failures"] == r["raw_mismatches"] == 0
            assert r["verified_pages"] == r["pages"] == wl.counts()["loads"]
            assert r["structure"] == wl.structure and r["config"]["zswap"]["batching"] == \
                r["batching"]
            assert r["saw_writeback"], (backend, r["batching"])
        # the same pages in every mode: the raw pass, and what the pool held, agree
        assert len({json.dumps(r["ratio_bytes"]) for r in rs}) == 1
        assert len({r["pool_sizing"]["held_pages"] for r in rs}) == 1
    nx = [r for r in doc["results"] if r["backend"] == "842-nx"]
    assert all(r["device_overlap"]["busy_us_per_page"] > 0 for r in nx)


def test_default_mode_is_the_configs(pages: np.ndarray, tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("zswap:\n  batching: folio\n")
    doc = _run(build_workload("roundtrip", pages[:64], seed=0), ["lz4"], config=str(cfg))
    assert doc["batching"] == ["folio"] and doc["results"][0]["batching"] == "folio"


def test_a_faulty_device_is_measured_with_every_page_verified(pages: np.ndarray,
                                                              tmp_path) -> None:
    """Issue 13 item 4: faults counted by phase (the raw pass takes them too), error rates
    reported, every page still verified."""
    cfg = tmp_path / "faulty.yaml"
    cfg.write_text("zswap:\n  compressor:\n    name: 842-nx\n"
                   "    params: {fault_rate: 0.05, fault_seed: 7}\n")
    wl = build_workload("pressure", pages[:160], seed=1)
    doc = _run(wl, ["842-nx"], config=str(cfg), batching="reclaim,async")
    assert not doc["failed"], doc["failed"]
    for r in doc["results"]:
        f = r["faults"]
        assert f["any"]
        assert f["raw"]["store_errors"] > 0 and 0 < f["raw"]["store_error_rate"] < 0.2
        assert f["store"]["reject_compress_fail"] > 0 and 0 < f["store"]["error_rate"] < 0.2
        assert f["backend"].get("faults_injected", 0) > 0
        assert r["mismatches"] == r["load_failures"] == 0
        assert r["verified_pages"] == r["pages"] == wl.counts()["loads"]
    assert not bench_failed(doc)


def test_pages_whose_store_failed_stay_resident_not_lost() -> None:
    """A SwapBatchError's failed slots were left free, the pages kept in memory: a later load
    of one that raises is not a lost page; one of a stored slot is."""
    from hwzswap.bench.runner import _LOST, _RESIDENT, _Meter, _load_failed, _store_failed
    from hwzswap.errors import SwapBatchError, SwapDeviceError

    m = _Meter()
    _store_failed(m, 0, [1, 2, 3, 4], SwapBatchError("ENOSPC", stored=[1], written=[2],
                                                     failed=[3, 4]))
    assert m.stack_store_failures == 2 and m.resident == {(0, 3), (0, 4)}
    out = _load_failed(m, 0, [2, 3, 4], SwapDeviceError("no such slot"))
    assert out == [_LOST, _RESIDENT, _RESIDENT]
    assert m.stack_load_failures == 1 and m.resident_loads == 2
    _store_failed(m, 0, [3, 5], SwapDeviceError("device gone"))  # no detail: all failed
    assert m.resident == {(0, 3), (0, 4), (0, 5)} and m.stack_store_failures == 4


class _Capped(Lz4Backend):
    """A batch device taking at most 5 pages (or objects) a call, and saying so."""

    name = "test-capped-batch"
    sizes: ClassVar[list[int]] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True, max_batch=5, preferred_batch=5)

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        assert len(pages) <= 5, f"{len(pages)} pages in one call; max_batch is 5"
        self.sizes.append(len(pages))
        return [self.compress(row.tobytes()) for row in pages]

    def decompress_batch(self, items: Any) -> np.ndarray:
        assert len(items) <= 5, f"{len(items)} objects in one call; max_batch is 5"
        self.sizes.append(len(items))
        return np.stack([np.frombuffer(self.decompress(x), np.uint8) for x in items])


@pytest.mark.parametrize("batching", ["reclaim", "async"])
def test_the_raw_codec_and_the_stack_both_respect_max_batch(pages: np.ndarray, batching: str,
                                                           monkeypatch) -> None:
    """Reclaim passes of 32 and readahead clusters of 8, a device taking at most 5: the
    codec-alone path (the raw figures) splits its calls as the engine does, and every page is
    still verified."""
    monkeypatch.setitem(registry._registered, _Capped.name, _Capped)
    _Capped.sizes.clear()
    doc = _run(build_workload("roundtrip", pages[:96], seed=4), [_Capped.name],
               batching=[batching])
    assert not doc["failed"], doc["failed"]
    (r,) = doc["results"]
    assert r["mismatches"] == r["raw_mismatches"] == 0 and r["verified_pages"] == r["pages"]
    assert _Capped.sizes and max(_Capped.sizes) <= 5


def test_rows_give_per_call_percentiles_beside_the_per_page_ones():
    # The runner stores a reclaim pass in one swap_out_batch in every mode (page mode cuts it
    # inside the engine), so a call's time is several pages' time; loads are clusters of 8.
    from hwzswap.bench.corpus import load_bundled
    from hwzswap.bench.runner import BenchRun, run_bench
    from hwzswap.bench.workload import build_workload

    wl = build_workload("roundtrip", load_bundled(max_pages=256), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="page,reclaim", repeat=1))
    rows = {m: r for (_, m), r in _all_rows(doc, ["lz4"], ("page", "reclaim")).items()}
    for r in rows.values():
        for key in ("store_call_us", "load_call_us"):
            assert set(r[key]) == {"p50", "p99", "mean", "max"} and r[key]["p50"] > 0
    for r in rows.values():
        assert r["store_call_us"]["p50"] > 4 * r["store_us"]["p50"]
        assert r["load_call_us"]["p50"] > 4 * r["load_us"]["p50"]


def test_an_incompressible_corpus_says_the_codec_alone_decompressed_nothing_either():
    from hwzswap.bench.runner import BenchRun, run_bench
    from hwzswap.bench.workload import build_workload

    pages = np.random.default_rng(5).integers(0, 256, (64, 4096), dtype=np.uint8)
    doc = run_bench(build_workload("roundtrip", pages, seed=0),
                    BenchRun(backends=["lz4"], repeat=1, warm_up=False))
    (r,) = doc["results"]
    assert r["store_vs_raw"] is None and r["counters"]["zswpout"] == 0
    assert "the raw pass compressed every page (none shrank" in r["store_vs_raw_note"]
    assert "decompressed every page" not in r["store_vs_raw_note"]
