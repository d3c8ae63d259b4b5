"""Hostile workload and page files: every edit of a header field the stream does not prove,
and every decompression bomb, is a clear WorkloadError / CorpusError naming the file and the
field, before anything runs; nothing is trusted and nothing is written."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard

from hwzswap.backends.registry import get_backend
from hwzswap.bench import corpus
from hwzswap.bench.corpus import MAX_INFLATED_ENV, load_pages, save_pages
from hwzswap.bench.runner import backend_config, base_config
from hwzswap.bench.workload import (
    FILE_MAGIC,
    _header_sha256,
    build_workload,
    load_workload,
    read_header,
    save_workload,
)
from hwzswap.cli import main
from hwzswap.errors import CorpusError, WorkloadError
from hwzswap.testing import real_memory_mix


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return real_memory_mix(64, seed=3)


@pytest.fixture
def saved(pages: np.ndarray, tmp_path: Path) -> Path:
    return save_workload(build_workload("roundtrip", pages, seed=2), tmp_path / "w.hwzwl")


def _reseal(header: dict[str, Any]) -> None:
    """Recompute the header's checksum, as a deliberate editor would: the checks behind it
    must catch the edit on their own."""
    header["header_sha256"] = _header_sha256(header)


def _edit(path: Path, mutate: Callable[[dict[str, Any]], None], *, reseal: bool = True) -> Path:
    """A copy of ``path`` with its header changed by ``mutate`` (the data area kept)."""
    header, start = read_header(path)
    mutate(header)
    if reseal:
        _reseal(header)
    head = json.dumps(header).encode()
    out = path.with_name("edited.hwzwl")
    out.write_bytes(FILE_MAGIC + struct.pack("<II", 2, len(head)) + head
                    + path.read_bytes()[start:])
    return out


def _over(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda h: h["config_overrides"].setdefault(section, {}).__setitem__(key, value)


@pytest.mark.parametrize("mutate, says", [
    (_over("zswap", "compressor", "lzo"), "config_overrides.zswap.compressor: not a key"),
    (_over("swap", "allow_large", True), "config_overrides.swap.allow_large: not a key"),
    (_over("zswap", "device_timeout_ms", None), "config_overrides.zswap.device_timeout_ms"),
    (_over("bogus", "x", 1), "config_overrides.bogus: not a key"),
    (_over("zswap", "max_pool_percent", 500), "config_overrides.zswap.max_pool_percent: must"),
    (_over("memory", "total_ram_mb", "16"), "config_overrides.memory.total_ram_mb: must"),
    (_over("swap", "nr_pages", 2**30), "config_overrides.swap.nr_pages is 1073741824; a "
                                       "workload's swap may hold at most 65536 pages"),
    (lambda h: h.__setitem__("config_overrides", [1, 2]), "config_overrides must be a mapping"),
    (lambda h: h["config_overrides"].__setitem__("swap", 5), "config_overrides.swap must be"),
])
def test_config_overrides_are_checked_when_the_file_is_loaded(saved, mutate, says, tmp_path):
    bad = _edit(saved, mutate)
    with pytest.raises(WorkloadError) as err:
        load_workload(bad)
    assert str(err.value).startswith(f"{bad}: ") and says in str(err.value)
    out = tmp_path / "out.json"  # the bench refuses it before any backend runs
    assert main(["bench", "--workload", str(bad), "--backends", "lz4", "--json", str(out),
                 "--quiet"]) == 2
    assert not out.exists()


@pytest.mark.parametrize("mutate", [
    lambda h: h.__setitem__("seed", 3),
    lambda h: h.__setitem__("name", "pressure"),
    lambda h: h["config_overrides"]["zswap"].__setitem__("max_pool_percent", 12),
    lambda h: h.__setitem__("params", {"load_batch": 4}),
    lambda h: h.__setitem__("header_sha256", "0" * 64),
])
def test_an_edited_header_fails_its_checksum(saved, mutate):
    """Fields the stream cannot prove (seed, name, the pool size) loaded silently when
    edited; the header's own sha256 catches that."""
    with pytest.raises(WorkloadError, match="fails its header_sha256 check"):
        load_workload(_edit(saved, mutate, reseal=False))
    renamed = _edit(saved, lambda h: h.__setitem__("header_sha257", h.pop("header_sha256")),
                    reseal=False)  # a damaged key name must not turn the check off
    with pytest.raises(WorkloadError, match="unknown header field 'header_sha257'"):
        load_workload(renamed)
    old = _edit(saved, lambda h: h.pop("header_sha256"), reseal=False)
    assert load_workload(old).seed == 2  # a file from before the checksum still loads


def test_a_workload_built_in_code_cannot_override_the_compressor(pages):
    wl = build_workload("roundtrip", pages[:8], seed=1)
    sneaky = replace(wl, config_overrides={**wl.config_overrides,
                                           "zswap": {"compressor": "lzo"}})
    with get_backend("lz4") as b, pytest.raises(WorkloadError,
                                                 match="config_overrides.zswap.compressor"):
        backend_config(base_config(), b, sneaky)
    with get_backend("lz4") as b:  # the generator's own overrides apply, on copies
        cfg = backend_config(base_config(), b, wl)
        assert cfg.zswap.compressor.name == "lz4"
        assert cfg.memory.total_ram_mb == wl.config_overrides["memory"]["total_ram_mb"]
        cfg.to_dict()["memory"]["total_ram_mb"] = 1
        assert wl.config_overrides["memory"]["total_ram_mb"] != 1


@pytest.mark.parametrize("mutate, says", [
    (lambda h: h.__setitem__("page_size", "4096"), 'page_size is "4096"'),
    (lambda h: h.__setitem__("page_size", 4096.7), "page_size is 4096.7"),
    (lambda h: h.__setitem__("version", "2"), 'header version "2" does not match'),
    (lambda h: h["structure"].__setitem__("folio_mix", [[1, "x"]]), "structure.folio_mix"),
    (lambda h: h["structure"].__setitem__("folio_mix", "[/b]"), "structure.folio_mix"),
    (lambda h: h["structure"].__setitem__("reclaim_batch", "[red]"), "structure.reclaim_batch"),
    (lambda h: h.__setitem__("structure", [1]), "structure must be a mapping"),
    (lambda h: h.__setitem__("name", ["a"]), "name must be a string"),
    (lambda h: h.__setitem__("params", "ab"), "params must be a mapping"),
    (lambda h: h.__setitem__("corpus", [1]), "corpus must be a mapping"),
    (lambda h: h["ops"].__setitem__("store_pages", 63), "ops.store_pages is 63, the stream"),
    (lambda h: h.__setitem__("nr_slots", 1), "nr_slots is 1, the stream's is 64"),
    (lambda h: h.__setitem__("types", [0, 1]), "types is [0, 1]"),
])
def test_malformed_header_fields_are_named(saved, mutate, says):
    with pytest.raises(WorkloadError, match="header") as err:
        load_workload(_edit(saved, mutate))
    assert says in str(err.value)


def test_a_markup_name_and_a_weird_mix_reach_the_terminal_as_text(saved, tmp_path, capsys):
    bad = _edit(saved, lambda h: h.update(name="[/bold]x", params={"[/b]": "[red]"}))
    assert main(["bench", "--workload", str(bad), "--backends", "lz4", "--batching", "page",
                 "--json", str(tmp_path / "[/b].json")]) == 0
    cap = capsys.readouterr()
    assert "workload [/bold]x" in cap.out and "workload [/bold]x:" in cap.err
    assert "[/b].json" in cap.err  # "wrote results to ..." after the results were written
    assert json.loads((tmp_path / "[/b].json").read_text())["workload"]["name"] == "[/bold]x"


def _pages_bomb(path: Path, n_bytes: int, pages_claimed: int) -> Path:
    """A workload file whose pages section is a tiny zstd frame of ``n_bytes`` zeros, padded so
    the header's page count passes the size bound, claiming ``pages_claimed`` pages."""
    header, start = read_header(path)
    data = path.read_bytes()[start:]
    secs = header["sections"]
    blobs = {k: data[s["offset"]:s["offset"] + s["length"]] for k, s in secs.items()}
    blobs["pages"] = zstandard.ZstdCompressor().compress(bytes(n_bytes))
    pos, area = 0, b""
    import hashlib
    for k, blob in blobs.items():
        secs[k] = {"offset": pos, "length": len(blob), "encoding": "zstd",
                   "sha256": hashlib.sha256(blob).hexdigest()}
        pos += len(blob)
        area += blob
    header["pages"] = pages_claimed
    _reseal(header)
    head = json.dumps(header).encode()
    out = path.with_name("bomb.hwzwl")
    out.write_bytes(FILE_MAGIC + struct.pack("<II", 2, len(head)) + head + area
                    + bytes(200_000))
    return out


def test_a_section_announced_beyond_the_memory_limit_is_refused_up_front(saved):
    bomb = _pages_bomb(saved, 4096, 100_000_000)  # 381 GiB announced: a bare MemoryError before
    with pytest.raises(WorkloadError, match=r"announces a pages section of 390625 MiB.*"
                                            r"HWZSWAP_MAX_INFLATED_MB"):
        load_workload(bomb)
    short = _pages_bomb(saved, 4096, 100_000)  # within the limit: read in steps, found short
    with pytest.raises(WorkloadError, match="pages section holds 4096 bytes, the header says"):
        load_workload(short)


def test_the_limit_is_settable_and_a_bad_setting_is_named(saved, monkeypatch):
    monkeypatch.setenv(MAX_INFLATED_ENV, "1")
    assert load_workload(saved).nr_pages == 64  # 256 KiB of pages: under 1 MiB
    monkeypatch.setenv(MAX_INFLATED_ENV, "lots")
    with pytest.raises(WorkloadError, match="HWZSWAP_MAX_INFLATED_MB='lots'"):
        load_workload(saved)


def test_a_page_file_bomb_stops_at_the_limit(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.pages.zst"
    cctx = zstandard.ZstdCompressor(level=19)
    bomb.write_bytes(cctx.compress(bytes(8 << 20)) + cctx.compress(bytes(8 << 20)))
    assert bomb.stat().st_size < 4096
    monkeypatch.setenv(MAX_INFLATED_ENV, "12")
    with pytest.raises(CorpusError, match=r"decompress to more than 12 MiB.*"
                                          r"HWZSWAP_MAX_INFLATED_MB"):
        load_pages(bomb)
    monkeypatch.setenv(MAX_INFLATED_ENV, "16")  # exactly at the limit: both frames read
    assert load_pages(bomb).shape == (4096, 4096)
    assert main(["bench", "--corpus", str(bomb), "--pages", "8", "--backends", "lz4"]) == 0
    monkeypatch.setenv(MAX_INFLATED_ENV, "8")
    assert main(["bench", "--corpus", str(bomb), "--pages", "8", "--backends", "lz4"]) == 2


def test_a_streamed_multi_frame_page_file_still_loads_whole(tmp_path):
    data = real_memory_mix(40, seed=5)
    path = save_pages(tmp_path / "p.pages.zst", data)
    raw = path.read_bytes()
    two = tmp_path / "two.pages.zst"
    two.write_bytes(raw + raw)
    assert np.array_equal(load_pages(two), np.concatenate([data, data]))
    two.write_bytes(raw + raw[:-3])
    with pytest.raises(CorpusError, match="truncated"):
        load_pages(two)
    assert corpus.max_inflated_bytes() >= 64 << 20


def test_a_merged_config_error_names_the_config_and_workload(pages):
    """A workload whose slots no swap file may hold: the error says which config it is (it
    said ``<dict>``)."""
    from hwzswap.bench.workload import STORE, Op, Workload
    from hwzswap.errors import ConfigError

    wl = Workload(name="far", seed=0, pages=pages[:1], ops=[Op(STORE, 0, (2**31,), (0,))])
    with get_backend("lz4") as b, pytest.raises(ConfigError) as err:
        backend_config(base_config(), b, wl)
    assert str(err.value).startswith("<dict> + workload 'far' overrides: swap.nr_pages")


def test_a_workload_loading_would_refuse_is_never_written(pages, tmp_path):
    wl = build_workload("roundtrip", pages[:8], seed=1)
    for bad, says in ((replace(wl, name="x" * 201), "name must be a string"),
                      (replace(wl, config_overrides={"zswap": {"compressor": "lzo"}}),
                       "config_overrides.zswap.compressor")):
        with pytest.raises(WorkloadError, match=says):
            save_workload(bad, tmp_path / "w.hwzwl")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_structure_is_read_from_the_ops(saved):
    """Recordings by ``hwzswap serve`` before 502502b wrote ``structure: {}``: they still load
    (the structure is informative; the ops carry it)."""
    wl = load_workload(_edit(saved, lambda h: h.__setitem__("structure", {})))
    assert set(wl.structure) == {"reclaim_batch", "load_batch", "folio_mix"}


def test_a_swap_larger_than_the_stream_needs_within_bounds_still_loads(saved, tmp_path):
    """Older and hand-edited files give their swap some room (1024 pages for a stream of a
    few hundred slots): within four times the slots, or 65536 pages, that still loads."""
    ok = _edit(saved, _over("swap", "nr_pages", 1024))
    assert load_workload(ok).config_overrides["swap"]["nr_pages"] == 1024
