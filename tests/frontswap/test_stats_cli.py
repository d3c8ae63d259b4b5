"""``hwzswap stats --config FILE``: end to end through ``hwzswap.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hwzswap.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_stats_table_for_the_default_config(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    rc = main(["stats", "--config", str(ROOT / "configs" / "default.yaml"), "--pages", "300"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "lzo / zsmalloc" in out and "300 verified" in out
    for key in ("stored_pages", "pool_limit_hit", "reject_compress_poor", "written_back_pages",
                "same_filled_pages", "pswpin", "pswpout", "loads_hit"):
        assert key in out


def test_stats_json_under_pressure(capsys, tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "pressure.yaml").read_text())
    cfg["swap"]["path"] = str(tmp_path / "swap.img")
    cfg["memory"]["total_ram_mb"] = 8  # a pool of 41 pages: writeback for sure
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main(["stats", "--config", str(path), "--pages", "600", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert report["config"] == str(path) and report["backend"] == "lzo"
    assert report["pages"] == 600 == report["verified_pages"] and report["mismatches"] == 0
    c = report["counters"]
    assert c["written_back_pages"] > 0 and c["pool_limit_hit"] > 0
    # both clocks ran (comparing them was a timing assertion: a loaded machine's real I/O
    # once took longer than the modelled disk)
    assert c["pswpin"] > 0 and c["swap_model_us"] > 0 and c["swap_io_us"] > 0
    assert c["stores"] == 600 and c["invalidates"] > 0
    assert (tmp_path / "swap.img").exists()


def test_stats_reports_config_errors(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("zswap:\n  max_pool_percent: 250\n")
    assert main(["stats", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: zswap.max_pool_percent: must be an integer 1..100, got 250" in err


def test_stats_folio_mode_stores_folios_as_batches(capsys, tmp_path):
    """The run's reclaim passes hold 16-page folios, so ``folio`` mode makes one batch per
    folio and differs from ``page`` mode (with order-0 pages alone the two ran the same)."""
    calls = {}
    for mode in ("page", "folio"):
        path = tmp_path / f"{mode}.yaml"
        path.write_text(yaml.safe_dump({
            "zswap": {"compressor": "842-nx", "batching": mode},
            "swap": {"path": str(tmp_path / f"{mode}.img")}}))
        assert main(["stats", "--config", str(path), "--pages", "128", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["verified_pages"] == 128
        assert report["large_folio_pages"] == 32 and report["large_folio_size"] == 16
        calls[mode] = report["backend_counters"]
    # The emulated NX-842's virtual clock (deterministic): page mode gives its two engines
    # one request at a time; a 16-page folio's batch keeps both busy, so less device time
    # passes for the same requests.
    page, folio = calls["page"], calls["folio"]
    assert page["requests"] == folio["requests"] == 256
    assert page["device_clock_us"] == pytest.approx(page["device_us"])
    assert folio["device_clock_us"] < page["device_clock_us"]
