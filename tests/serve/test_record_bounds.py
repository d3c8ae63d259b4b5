"""``--record``'s recorder keeps its memory bounded: the pages of each WRITE are held
compressed and the file is saved streaming (it held every page raw in the server's locked
memory and joined and copied them all at the save: 4.4 GiB resident for a 1 GiB stream). The
file it writes is the workload format ``save_workload`` writes, and a recording cut at its cap
says so in the file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from hwzswap.bench.workload import (INVALIDATE, LOAD, STORE, Op, Workload, load_workload,
                                    read_header, save_workload)
from hwzswap.errors import HwzswapError
from hwzswap.serve import server
from hwzswap.serve.server import Recorder

PAGE = 4096


def _pages(n: int, seed: int) -> np.ndarray:
    """Pages a little like a program's: 600 random bytes, the rest zeros and an index."""
    rng = np.random.default_rng(seed)
    pages = np.zeros((n, PAGE), np.uint8)
    pages[:, :600] = rng.integers(0, 256, (n, 600), dtype=np.uint8)
    pages[:, 600:608] = np.arange(n, dtype="<u8").view(np.uint8).reshape(n, 8)
    return pages


def _feed(rec: Recorder, pages: np.ndarray, batch: int = 32, first_slot: int = 0) -> None:
    """WRITEs of ``batch`` pages on consecutive slots from ``first_slot`` (slot 0, the swap
    header, is left out of the recording as the server does)."""
    for b in range(0, len(pages), batch):
        offs = list(range(first_slot + b, first_slot + b + min(batch, len(pages) - b)))
        rec.store(offs, memoryview(pages[b:b + len(offs)].tobytes()))


def test_pages_are_held_compressed_and_saved_streaming(tmp_path: Path) -> None:
    pages = _pages(4096, 1)  # 16 MiB of pages
    raw = pages.nbytes
    rec = Recorder()
    tracemalloc.start()
    try:
        _feed(rec, pages, first_slot=1)
        _, peak_record = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        rec.load([5, 6, 7, 9999])  # 9999 was never written: not a load of the stream
        rec.invalidate([5, 6, 8000])
        path = rec.save(tmp_path / "r.hwzwl", {"name": "recorded-t", "command": "prog"})
        _, peak_save = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # held raw it was >= 16 MiB while recording and >= 3x that at the save (join + copy)
    assert peak_record < raw / 4, peak_record
    assert peak_save - base < raw / 4, peak_save - base
    assert rec.held_bytes < raw / 4
    assert [p.name for p in tmp_path.iterdir()] == ["r.hwzwl"]  # its temporary file is gone

    # the same stream through save_workload: the same workload comes back from both files
    ops = [Op(STORE, 0, tuple(range(1 + b, 33 + b)), tuple(range(b, b + 32)))
           for b in range(0, 4096, 32)]
    ops += [Op(LOAD, 0, (5, 6, 7)), Op(INVALIDATE, 0, (5,)), Op(INVALIDATE, 0, (6,))]
    want = Workload(name="recorded-t", seed=0, pages=pages, ops=ops,
                    structure={"reclaim_batch": 32, "load_batch": 3, "folio_mix": [[1, 1.0]]},
                    params={"source": "kernel swap requests via hwzswap serve",
                            "truncated": False, "recorded_pages": 4096, "command": "prog"},
                    corpus={"source": "recorded", "command": "prog"})
    ref = save_workload(want, tmp_path / "ref.hwzwl")
    got, exp = load_workload(path), load_workload(ref)
    assert got.describe() == exp.describe()
    assert got.ops == exp.ops and np.array_equal(got.pages, pages)
    head, ref_head = read_header(path)[0], read_header(ref)[0]
    assert set(head) == set(ref_head)
    assert {k: v for k, v in head.items() if k not in ("sections", "header_sha256")} == {
        k: v for k, v in ref_head.items() if k not in ("sections", "header_sha256")}


def test_a_recording_past_its_cap_is_saved_marked_truncated(tmp_path: Path) -> None:
    pages = _pages(160, 2)
    rec = Recorder(max_pages=100)
    _feed(rec, pages[:96], first_slot=1)  # three WRITEs: 96 pages, under the cap
    rec.load([1, 2])
    _feed(rec, pages[96:], first_slot=200)  # the fourth passes it: dropped, and all after
    rec.load([3])
    rec.invalidate([1])
    assert rec.truncated and rec.nr_pages == 96 and rec.dropped_pages == 64
    wl = load_workload(rec.save(tmp_path / "cut.hwzwl", {"name": "t"}))
    assert wl.params["truncated"] is True and wl.params["recorded_pages"] == 96
    assert wl.params["dropped_pages"] == 64 and "100 pages" in wl.params["truncated_why"]
    assert [op.kind for op in wl.ops] == [STORE] * 3 + [LOAD]  # the prefix, nothing after
    assert np.array_equal(wl.pages, pages[:96])

    # the compressed-bytes cap: incompressible pages stop it as soon as they would pass it
    noise = np.random.default_rng(3).integers(0, 256, (64, PAGE), dtype=np.uint8)
    rec = Recorder(max_bytes=40 * PAGE)
    _feed(rec, noise, first_slot=1)
    assert rec.truncated and rec.nr_pages == 32 and "compressed" in rec.truncated_why
    assert load_workload(rec.save(tmp_path / "b.hwzwl", {"name": "t"})).nr_pages == 32


def test_the_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(server.RECORD_MAX_PAGES_ENV, raising=False)
    assert Recorder().max_pages == server.RECORD_MAX_PAGES == 1 << 18
    monkeypatch.setenv(server.RECORD_MAX_PAGES_ENV, "500")
    assert Recorder().max_pages == 500
    for bad in ("0", "lots", "-3"):
        monkeypatch.setenv(server.RECORD_MAX_PAGES_ENV, bad)
        with pytest.raises(HwzswapError, match="HWZSWAP_RECORD_MAX_PAGES=.*at least 1"):
            Recorder()
