"""The example asynchronous driver (deflate-iaa) with faults on, under the whole engine in every
mode: every page comes back byte-exact, the faults show as rejected stores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hwzswap.backends.registry import registered
from hwzswap.frontswap.system import open_zswap
from hwzswap.testing import real_memory_mix

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "hwzswap-iaa-driver"))

from hwzswap_iaa_driver import IaaBackend  # noqa: E402


@pytest.mark.parametrize("batching", ["page", "reclaim", "async"])
def test_faulty_device_under_the_engine_loses_no_page(tmp_path: Path, batching: str) -> None:
    pages = real_memory_mix(256, seed=8)
    cfg = {
        "zswap": {"compressor": {"name": "deflate-iaa",
                                 "params": {"fault_rate": 0.05, "wq_depth": 4}},
                  "batching": batching},
        "memory": {"total_ram_mb": 256},
        "swap": {"nr_pages": 512, "path": str(tmp_path / "s.img")},
    }
    with registered(IaaBackend), open_zswap(cfg) as s:
        for k in range(0, 256, 32):
            s.swap_out_batch(0, list(range(k, k + 32)), pages[k:k + 32])
        s.drain()
        got = s.swap_in_batch(0, list(range(256)))
        assert got == [p.tobytes() for p in pages]
        st = s.stats()
        assert st["reject_compress_fail"] > 0 and st["stored_pages"] > 0
        assert s.backend.counters()["faults_injected"] > 0
