"""A modelled row whose emulation time could not be separated (``emulation_us_per_page`` null:
its ``counters()`` could not be read, here on a device marked failed) keeps its figures in the †
note and marks its host CPU: a review found the note printing "842-nx (page);" with no figures,
and the CPU cell without a mark although the emulation was silently in it. (A hung 842-nx whose
counters can be read is not such a row: its emulation time is known, 0.0 with the warm-up on,
see test_emulation_known.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.backends.registry import registered
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.marks import cpu_mark, emulation_unseparated
from hwzswap.bench.report import COLUMNS, markdown, rows
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


class Unread(Nx842Backend):
    """The emulated NX-842 whose ``counters()`` cannot be read: its emulation time is
    unknown."""

    name = "842-nx-unread"

    def counters(self) -> dict[str, Any]:
        raise RuntimeError("the device's counters are not readable")


#: Every device request hangs: the device is marked failed within the first pass.
HANG = {"zswap": {"compressor": {"name": Unread.name, "params": {"hang_rate": 1.0}},
                  "device_timeout_ms": 5}}
CPU_COL = [name for name, _ in COLUMNS].index("CPU\nµs/pg")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """842-nx in page mode (a hung device) and reclaim mode (a sound one), 32 pages."""
    with registered(Unread):
        hung = run_bench(build_workload("roundtrip", load_bundled(max_pages=32), seed=0),
                         BenchRun(backends=[Unread.name], config=HANG, batching="page",
                                  repeat=1))
    sound = run_bench(build_workload("roundtrip", load_bundled(max_pages=32), seed=0),
                      BenchRun(backends=["842-nx"], batching="reclaim", repeat=1,
                               warm_up=False))
    hung["results"] += sound["results"]
    return hung


def test_an_unseparated_emulation_is_said_and_marked(doc: dict[str, Any]) -> None:
    failed, sound = doc["results"]
    assert failed["device_failed"] and failed["emulation_us_per_page"] is None
    assert failed["time_basis"] == "modeled" and failed["host_cpu_note"] is None
    assert emulation_unseparated(failed) and cpu_mark(failed) == "†"
    assert sound["emulation_us_per_page"] and cpu_mark(sound) == "*"
    table = rows(doc)
    assert table[0][CPU_COL].endswith(" †") and table[1][CPU_COL].endswith("*")
    md = markdown(doc)
    dagger = next(line for line in md.splitlines() if line.startswith("- † modelled device"))
    # each modelled row with its figures: the failed one's wall time and why no emulation
    assert (f"842-nx-unread (page): {failed['wall_us_per_page']} µs/page wall, the emulation "
            "included: its time could not be separated") in dagger
    assert "the device was marked failed" in dagger
    assert "842-nx-unread (page);" not in dagger
    assert (f"842-nx (reclaim): {sound['wall_us_per_page']} µs/page wall, "
            f"{sound['emulation_us_per_page']} of it emulation") in dagger
    assert ("- CPU †: host CPU includes the emulated device's own work for 842-nx-unread (page)"
            in md)
