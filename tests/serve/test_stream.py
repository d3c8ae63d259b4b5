"""The recorded kernel stream shipped in the package: valid, with the kernel's structure, and
replayed by ``hwzswap bench`` with every load verified."""

from __future__ import annotations

import json
from pathlib import Path

from serveutil import hwzswap_cli

import hwzswap
from hwzswap.bench.workload import LOAD, STORE, load_workload

STREAM = Path(hwzswap.__file__).resolve().parent / "data" / "streams" / "gcc-make-j1-14M.hwzwl"


def test_shipped_stream_is_a_valid_kernel_stream() -> None:
    wl = load_workload(STREAM)
    c = wl.counts()
    assert c["store_pages"] == 3326 and c["loads"] == 839 and c["invalidates"] == 3192
    stores = [op for op in wl.ops if op.kind == STORE]
    loads = [op for op in wl.ops if op.kind == LOAD]
    assert max(len(op.offsets) for op in stores) > 32  # merged reclaim writes
    assert max(len(op.offsets) for op in loads) == 8  # readahead clusters (page-cluster 3)


def test_bench_replays_the_shipped_stream(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    p = hwzswap_cli("bench", "--workload", str(STREAM), "--backends", "lz4",
                    "--json", str(out), timeout=300)
    assert p.returncode == 0, p.stderr
    (res,) = json.loads(out.read_text())["results"]
    assert res["verified_pages"] == 839 and res["mismatches"] == 0
