"""What a user's own ``--config`` does to a bench row: its pool limit wins over the workload's
sizing (and the row says where the limit came from), its swap model shows in the figures, its
swap path is named as unused, ``zswap.enabled: false`` and ``same_filled_pages: false`` give
honest ratios; and a run that measured nothing fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hwzswap.bench import runner
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, bench_failed, compile_workload, run_backend, run_bench
from hwzswap.bench.workload import build_workload
from hwzswap.config import load_config
from hwzswap.frontswap.swapdev import DeviceModel

from helpers import unavailable_backend


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=256)


def _rows(wl: Any, config: Any = None, backends: tuple[str, ...] = ("lz4",),
          **kw: Any) -> dict[str, Any]:
    return run_bench(wl, BenchRun(backends=list(backends), config=config, **kw))


# -- 2/3: the user's pool limit wins ---------------------------------------------------------


def test_a_pool_limit_in_the_users_config_wins_over_pressure_sizing(pages: np.ndarray,
                                                                    tmp_path: Path) -> None:
    """configs/pressure.yaml's kind of setting: a small pool in the user's file. Every backend
    runs at that one limit (not a limit sized per backend), and the row says where it came
    from, so 'which compressor writes back less in the same RAM?' has an answer."""
    wl = build_workload("pressure", pages, seed=0)
    path = tmp_path / "small.yaml"
    path.write_text("zswap:\n  max_pool_percent: 2\nmemory:\n  total_ram_mb: 4\n"
                    "swap:\n  nr_pages: 4096\n")
    doc = _rows(wl, str(path), ("lz4", "zstd"))
    assert doc["failed"] == []  # looping over no rows proves nothing
    assert sorted((r["backend"], r["batching"]) for r in doc["results"]) == [
        ("lz4", "reclaim"), ("zstd", "reclaim")]
    limit = 4 * 256 * 2 // 100  # total_ram_pages * percent // 100, as the kernel
    for r in doc["results"]:
        assert r["pool_limit_pages"] == r["counters"]["pool_limit_pages"] == limit
        assert r["config"]["zswap"]["max_pool_percent"] == 2
        assert r["config"]["memory"]["total_ram_mb"] == 4
        assert r["config"]["swap"]["nr_pages"] == 4096  # the file's, not the stream's 256
        assert r["pool_limit_source"] == "your config"
        assert r["pool_sizing"] is None  # no per-backend sizing ran
        assert f"pool limit {limit} pages" in r["pool_limit_note"]
        assert str(path) in r["pool_limit_note"] and "sizing" in r["pool_limit_note"]
        assert r["written_back_pages"] > 0
    assert doc["config"]["pool_limit_source"] == "your config"
    assert doc["config"]["overrides_not_applied"] == ["memory.total_ram_mb", "swap.nr_pages",
                                                      "zswap.max_pool_percent"]
    assert {"zswap.max_pool_percent", "memory.total_ram_mb"} <= set(doc["config"]["keys_given"])


def test_without_a_pool_key_the_workload_sizes_the_pool_and_says_so(pages: np.ndarray) -> None:
    wl = build_workload("pressure", pages, seed=0)
    (r,) = _rows(wl, {"zswap": {"accept_threshold_percent": 80}})["results"]
    assert r["pool_limit_source"] == "workload sizing"
    assert r["pool_sizing"]["limit_pages"] == r["pool_limit_pages"]
    assert "sized it for this backend" in r["pool_limit_note"]
    assert "zswap.max_pool_percent" in r["pool_limit_note"]  # how to set one limit for all
    (r,) = _rows(build_workload("roundtrip", pages[:64]))["results"]
    assert r["pool_limit_source"] == "workload" and r["pool_sizing"] is None


def test_one_pool_key_is_enough_and_a_value_equal_to_the_default_still_counts(
        pages: np.ndarray, tmp_path: Path) -> None:
    """A file that writes ``max_pool_percent: 20`` (the default, as configs/default.yaml does)
    asked for it: the limit is 20 % of its (default) 256 MB, not the workload's."""
    wl = build_workload("mixed", pages[:128], seed=1)
    path = tmp_path / "d.yaml"
    path.write_text("zswap:\n  max_pool_percent: 20\n")
    (r,) = _rows(wl, str(path), batching="page")["results"]
    assert r["pool_limit_source"] == "your config"
    assert r["pool_limit_pages"] == 256 * 256 * 20 // 100
    assert r["written_back_pages"] == 0 and r["saw_writeback"] is False  # said as "!" / note


def test_config_keys_given_reads_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("zswap:\n  compressor: lz4\nmemory:\n  total_ram_mb: 256\n")
    assert runner.config_keys_given(str(path)) == {"zswap.compressor", "memory.total_ram_mb"}
    assert runner.config_keys_given({"swap": {"nr_pages": 99}}) == {"swap.nr_pages"}
    assert runner.config_keys_given(None) == frozenset()
    # a ZswapConfig has no text: the keys that differ from the built-in defaults
    assert runner.config_keys_given(load_config({"zswap": {"max_pool_percent": 3}})) == {
        "zswap.max_pool_percent"}


def test_run_backend_from_python_takes_the_pool_of_a_config_object(pages: np.ndarray) -> None:
    from hwzswap.backends.registry import get_backend

    wl = build_workload("pressure", pages[:128], seed=0)
    base = load_config({"zswap": {"max_pool_percent": 5}, "memory": {"total_ram_mb": 2}})
    backend = get_backend("lz4")
    try:
        r = run_backend(backend, compile_workload(wl), base, warm_up=False)
        assert r["pool_limit_source"] == "your config"
        assert r["pool_limit_pages"] == 2 * 256 * 5 // 100
        sized = run_backend(backend, compile_workload(wl), load_config({}), warm_up=False)
        assert sized["pool_limit_source"] == "workload sizing"
    finally:
        backend.close()


# -- 1: the swap model and the swap path -----------------------------------------------------


def test_the_swap_model_is_part_of_the_row(pages: np.ndarray) -> None:
    """Under pressure with the seed's disk modelled, reading from the swap file must not look
    faster than decompressing: the figures with the model hold the device's time, exactly
    ``pswpout x write_us`` for the stores and ``pswpin x read_us`` for the loads."""
    wl = build_workload("pressure", pages, seed=0)
    (none,) = _rows(wl)["results"]
    assert none["swap_model"] == "none" and none["swap_model_us"] == 0
    for key in ("store_pages_per_s_with_swap_model", "load_pages_per_s_with_swap_model",
                "swap_model_store_us_per_page", "swap_model_load_us_per_page",
                "swap_model_note"):
        assert none[key] is None
    (r,) = _rows(wl, {"swap": {"model": "hdd"}})["results"]
    hdd = DeviceModel.preset("hdd")
    writes, reads = r["swap_writes"], r["swap_reads"]
    assert writes > 0 and reads > 0
    assert r["swap_model"] == "hdd"
    assert r["swap_model_us"] == pytest.approx(writes * hdd.write_us() + reads * hdd.read_us(),
                                               rel=1e-6)
    assert r["swap_model_store_us_per_page"] == pytest.approx(
        writes * hdd.write_us() / r["store_pages"], abs=1e-3)
    assert r["swap_model_load_us_per_page"] == pytest.approx(
        reads * hdd.read_us() / r["pages"], abs=1e-3)
    # a page on the modelled disk costs ~8 ms: the device sets both figures
    assert r["store_pages_per_s_with_swap_model"] < r["store_pages_per_s"] / 10
    assert r["load_pages_per_s_with_swap_model"] < r["load_pages_per_s"] / 10
    host_store_s = r["store_pages"] / r["store_pages_per_s"]
    assert r["store_pages_per_s_with_swap_model"] == pytest.approx(
        r["store_pages"] / (host_store_s + writes * hdd.write_us() / 1e6), rel=1e-3)
    assert "dominates" in r["swap_model_note"] and "hdd" in r["swap_model_note"]


def test_a_swap_path_in_the_config_is_named_as_unused(pages: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "swapfile"
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"swap": {"path": str(path), "nr_pages": 1024}}))
    doc = _rows(build_workload("roundtrip", pages[:32]), str(cfg), batching="page")
    (r,) = doc["results"]
    assert not path.exists()  # the bench used a temporary file, as the note says
    assert r["swap_path_note"] == doc["config"]["swap_path_note"]
    assert str(path) in r["swap_path_note"] and "temporary swap file" in r["swap_path_note"]
    (r,) = _rows(build_workload("roundtrip", pages[:32]), batching="page")["results"]
    assert r["swap_path_note"] is None


# -- 4 and 12: ratios that compare no work ---------------------------------------------------


@pytest.mark.parametrize("mode", ["reclaim", "async"])
def test_zswap_disabled_compares_no_store_or_load(pages: np.ndarray, mode: str) -> None:
    wl = build_workload("roundtrip", pages[:128])
    (r,) = _rows(wl, {"zswap": {"enabled": False}}, batching=mode)["results"]
    assert r["counters"]["zswpout"] == 0 and r["swap_writes"] == r["store_pages"]
    assert r["store_vs_raw"] is None and r["load_vs_raw"] is None
    assert "zswap.enabled: false" in r["store_vs_raw_note"]
    assert "compressed nothing" in r["load_vs_raw_note"]
    assert r["store_refused_share"] == 1.0  # every store never reached zswap
    assert runner.stores_while_disabled(r["counters"]) == r["store_pages"]


def test_same_filled_pages_count_in_the_ratio_when_zswap_compresses_them() -> None:
    zero = np.zeros((64, 4096), np.uint8)
    mixed = np.concatenate([zero[:16], load_bundled(max_pages=48)])
    wl = build_workload("roundtrip", mixed)
    (on,) = _rows(wl, batching="page")["results"]
    (off,) = _rows(wl, {"zswap": {"same_filled_pages": False}}, batching="page")["results"]
    assert on["ratio_counts_same_filled"] is False and off["ratio_counts_same_filled"] is True
    assert on["ratio_bytes"]["original"] == (64 - on["same_filled_pages"]) * 4096
    assert off["ratio_bytes"]["original"] == 64 * 4096  # zswap compressed the zero pages too
    assert off["ratio"] > on["ratio"]  # zero pages compress very well
    # all zero: with the policy off the ratio is lz4's on zero pages, not 0 / 0
    wl = build_workload("roundtrip", zero)
    (off,) = _rows(wl, {"zswap": {"same_filled_pages": False}}, batching="page")["results"]
    assert off["ratio"] > 20 and off["ratio_note"] is None
    (on,) = _rows(wl, batching="page")["results"]
    assert on["ratio_bytes"] == {"original": 0, "compressed": 0, "incompressible_pages": 0}
    assert on["ratio"] is None and "0 / 0" in on["ratio_note"]  # n/a, not 1.00
    # and the stack compressed none of them (kept as their word): nothing to compare with
    assert on["store_vs_raw"] is None and on["load_vs_raw"] is None
    assert "same-filled" in on["store_vs_raw_note"]
    assert off["store_vs_raw"] is not None and off["load_vs_raw"] is not None


# -- 13: nothing measured --------------------------------------------------------------------


def test_a_run_that_measured_nothing_fails(pages: np.ndarray,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from hwzswap.backends.registry import registered
    from hwzswap.cli import main

    wl = build_workload("roundtrip", pages[:16])
    with registered(unavailable_backend("test-no-card", "no accelerator card found")):
        doc = _rows(wl, backends=("test-no-card",))
        assert doc["measured_rows"] == 0 and doc["results"] == [] and doc["skipped"]
        assert bench_failed(doc)
        code = main(["bench", "--pages", "16", "--repeat", "1", "--quiet",
                     "--backends", "test-no-card"])
    assert code == 1
    assert "skipped test-no-card" in capsys.readouterr().err
    doc = _rows(wl, batching="page")
    assert doc["measured_rows"] == 1 and not bench_failed(doc)
