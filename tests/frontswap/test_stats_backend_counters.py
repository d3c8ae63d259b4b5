"""``hwzswap stats`` shows the backend's own counters and a modelled device's time."""

from __future__ import annotations

import json
from pathlib import Path

from hwzswap.cli import main

from helpers import engine_config


def test_stats_json_has_backend_counters_and_modelled_time(capsys, tmp_path: Path) -> None:
    cfg = engine_config(tmp_path, {"name": "842-nx", "params": {"queue_depth": 2}}, batching="async")
    assert main(["stats", "--config", str(cfg), "--pages", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pages"] == 200 == report["verified_pages"]
    assert report["time_basis"] == "modeled" and report["batching"] == "async"
    own = report["backend_counters"]
    assert own["requests"] > 0 and own["device_us"] > 0
    assert report["modeled_device_us"] == own["device_us"]
    assert report["counters"]["driver_bad_result_type"] == 0


def test_stats_table_shows_them(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    cfg = engine_config(tmp_path, {"name": "842-nx", "params": {}})
    assert main(["stats", "--config", str(cfg), "--pages", "100"]) == 0
    out = capsys.readouterr().out
    assert "842-nx (nx842-emulated): its own counters" in out
    assert "host_driver_us" in out and "modelled device time" in out and "µs/page" in out
    cfg = engine_config(tmp_path, "lz4")
    assert main(["stats", "--config", str(cfg), "--pages", "100"]) == 0
    assert "modelled device time" not in capsys.readouterr().out  # measured: nothing modelled
