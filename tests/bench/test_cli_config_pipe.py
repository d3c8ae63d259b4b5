"""``hwzswap bench --config`` from a pipe: the run uses the config that was read (its pool
limit, its keys), read once; it ran with the built-in defaults, the pipe being empty when the
runner read it again, while ``config.source`` still named the pipe."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hwzswap.cli import main

TEXT = ("zswap:\n  max_pool_percent: 1\n  batching: page\nmemory:\n  total_ram_mb: 4\n")


def test_bench_runs_with_the_config_from_a_pipe(tmp_path: Path, capsys) -> None:
    out = tmp_path / "pipe.json"
    r, w = os.pipe()  # what `--config <(printf ...)` gives: /dev/fd/N
    try:
        os.write(w, TEXT.encode())
        os.close(w)
        w = -1
        path = f"/dev/fd/{r}"
        rc = main(["bench", "--config", path, "--backends", "lz4", "--pages", "256",
                   "--repeat", "1", "--quiet", "--json", str(out)])
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
    capsys.readouterr()
    assert rc == 0
    doc = json.loads(out.read_text())
    cfg = doc["config"]
    assert cfg["source"] == path
    assert cfg["base"]["memory"]["total_ram_mb"] == 4
    assert cfg["base"]["zswap"]["max_pool_percent"] == 1
    assert cfg["keys_given"] == ["memory.total_ram_mb", "zswap.batching",
                                 "zswap.max_pool_percent"]
    assert cfg["pool_limit_source"] == "your config"
    (row,) = doc["results"]
    assert row["batching"] == "page"
    assert row["pool_limit_source"] == "your config"
    assert row["pool_limit_pages"] == 4 * 256 * 1 // 100  # 10, not the workload's
    assert row["written_back_pages"] > 0
