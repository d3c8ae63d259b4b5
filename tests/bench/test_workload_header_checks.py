"""A workload file's header must say what its stream is: the structure it states (reclaim
pass, readahead cluster, folio sizes) matches the ops, the corpus note is sane, the sections'
encoding is one the reader knows, and a stream that does not replay names the file.

The files are real ones (``save_workload``), edited as a person would edit one: the header
changed and its ``header_sha256`` recomputed (``docs/bench.md``), so only these checks can
catch the edit."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.workload import (
    FILE_MAGIC,
    HEADER_SHA_KEY,
    INVALIDATE,
    Op,
    _encode_ops,
    _header_sha256,
    build_workload,
    load_workload,
    read_header,
    save_workload,
    structure_mismatch,
)
from hwzswap.cli import main
from hwzswap.errors import WorkloadError

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=96)


def rewrite(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None],
            sections: dict[str, bytes] | None = None) -> Path:
    """``src`` copied to ``dst`` with its header edited by ``edit`` and, optionally, sections
    replaced by new raw (uncompressed) contents; the offsets, lengths, section checksums and
    the header's own checksum are recomputed, as a careful editor would."""
    raw = src.read_bytes()
    header, start = read_header(src)
    data = raw[start:]
    new_data = b""
    for key, sec in sorted(header["sections"].items(), key=lambda kv: kv[1]["offset"]):
        blob = data[sec["offset"]:sec["offset"] + sec["length"]]
        if sections and key in sections:
            blob = zstandard.ZstdCompressor(write_content_size=True).compress(sections[key])
        header["sections"][key] = {**sec, "offset": len(new_data), "length": len(blob),
                                   "sha256": hashlib.sha256(blob).hexdigest()}
        new_data += blob
    edit(header)
    header.pop(HEADER_SHA_KEY, None)
    header[HEADER_SHA_KEY] = _header_sha256(header)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    dst.write_bytes(FILE_MAGIC + struct.pack("<II", header["version"], len(head)) + head
                    + new_data)
    return dst


def _set(*path_value: Any) -> Callable[[dict[str, Any]], None]:
    *path, value = path_value

    def edit(header: dict[str, Any]) -> None:
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


# -- the structure the header states ------------------------------------------------------


def test_unedited_rewrite_still_loads(pages: np.ndarray, tmp_path: Path) -> None:
    """The editing helper alone changes nothing the reader checks (so the refusals below are
    the edits' doing)."""
    wl = build_workload("mixed", pages, seed=3)
    src = save_workload(wl, tmp_path / "m.hwzwl")
    back = load_workload(rewrite(src, tmp_path / "same.hwzwl", lambda h: None))
    assert back.ops == wl.ops and back.structure == wl.structure


@pytest.mark.parametrize("name", ["roundtrip", "pressure", "mixed"])
@pytest.mark.parametrize("reclaim,load,mix", [
    (32, 8, "1:3,16:1"), (1, 1, "1"), (7, 3, "4"), (5, 16, "1:1,2:1,8:1"), (32, 8, "64"),
])
def test_every_generated_structure_agrees_with_its_stream(
        pages: np.ndarray, tmp_path: Path, name: str, reclaim: int, load: int,
        mix: str) -> None:
    """What the generators write always passes the check (no refusal of a good file)."""
    wl = build_workload(name, pages, seed=5, reclaim_batch=reclaim, load_batch=load,
                        folio_mix=mix)
    back = load_workload(save_workload(wl, tmp_path / "w.hwzwl"))
    assert back.ops == wl.ops and back.structure == wl.structure


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["roundtrip", "pressure", "mixed"]), n=st.integers(1, 80),
       seed=st.integers(0, 2**64 - 1), reclaim=st.integers(1, 40), load=st.integers(1, 20),
       mix=st.lists(st.tuples(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]),
                              st.integers(1, 4)), min_size=1, max_size=3))
def test_no_generated_stream_disagrees_with_its_structure(
        name: str, n: int, seed: int, reclaim: int, load: int,
        mix: list[tuple[int, int]]) -> None:
    """The rule never refuses what a generator makes, whatever its sizes and seed."""
    all_pages = load_bundled(max_pages=96)
    wl = build_workload(name, all_pages[:n], seed=seed, reclaim_batch=reclaim,
                        load_batch=load, folio_mix=mix)
    assert structure_mismatch(wl.structure, wl.ops, wl.nr_pages) is None


def test_version1_files_still_load() -> None:
    """A version-1 file states no structure (it is derived from its params): not refused."""
    for path in sorted(DATA.glob("v1_*.hwzwl")):
        assert load_workload(path).ops


def test_load_batch_smaller_than_the_clusters_is_refused(pages: np.ndarray,
                                                         tmp_path: Path) -> None:
    """The review's case: load_batch edited to 1 while the loads are clusters of up to 8."""
    wl = build_workload("mixed", pages, seed=1, load_batch=8)
    assert max(len(op.offsets) for op in wl.ops if op.kind == "load") > 1
    src = save_workload(wl, tmp_path / "m.hwzwl")
    bad = rewrite(src, tmp_path / "lb1.hwzwl", _set("structure", "load_batch", 1))
    with pytest.raises(WorkloadError) as exc:
        load_workload(bad)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: header field structure.load_batch does not match")
    assert "it is 1, but op" in msg and "(load) is a readahead cluster of" in msg
    # a larger load_batch than the clusters is no lie (a window the stream did not fill)
    assert load_workload(rewrite(src, tmp_path / "lb16.hwzwl",
                                 _set("structure", "load_batch", 16))).ops == wl.ops


def test_bench_refuses_the_edited_file_before_running(pages: np.ndarray, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """Through the CLI: exit 2 and the error, no "readahead 1" results written."""
    wl = build_workload("mixed", pages, seed=1, load_batch=8)
    src = save_workload(wl, tmp_path / "m.hwzwl")
    bad = rewrite(src, tmp_path / "lb1.hwzwl", _set("structure", "load_batch", 1))
    out = tmp_path / "out.json"
    rc = main(["bench", "--workload", str(bad), "--backends", "lz4", "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{bad}: header field structure.load_batch does not match" in err
    assert not out.exists()


def test_reclaim_batch_smaller_than_the_passes_is_refused(pages: np.ndarray,
                                                          tmp_path: Path) -> None:
    wl = build_workload("roundtrip", pages, seed=2, reclaim_batch=32, folio_mix="1")
    src = save_workload(wl, tmp_path / "r.hwzwl")
    bad = rewrite(src, tmp_path / "rb.hwzwl", _set("structure", "reclaim_batch", 8))
    with pytest.raises(WorkloadError, match=r"structure\.reclaim_batch does not match the "
                                            r"stream: it is 8, but op 0 \(store\) is a "
                                            r"reclaim pass of 32 folios"):
        load_workload(bad)


def test_reclaim_batch_counts_folios_not_pages(pages: np.ndarray, tmp_path: Path) -> None:
    """A pass of 4 folios of 16 pages is 64 pages, and within a reclaim_batch of 4."""
    wl = build_workload("roundtrip", pages, seed=2, reclaim_batch=4, folio_mix="16")
    assert max(len(op.offsets) for op in wl.ops if op.kind == "store") == 64
    assert load_workload(save_workload(wl, tmp_path / "f.hwzwl")).ops == wl.ops


@pytest.mark.parametrize("mix", [[[1, 1.0]], [[1, 0.5], [4, 0.5]], [[32, 1.0]]])
def test_folio_sizes_missing_from_folio_mix_are_refused(pages: np.ndarray, tmp_path: Path,
                                                        mix: list[list[Any]]) -> None:
    wl = build_workload("roundtrip", pages, seed=2, folio_mix="16")
    src = save_workload(wl, tmp_path / "f.hwzwl")
    bad = rewrite(src, tmp_path / "mix.hwzwl", _set("structure", "folio_mix", mix))
    with pytest.raises(WorkloadError, match=r"structure\.folio_mix does not match the stream"
                                            r".*holds a 16-page folio"):
        load_workload(bad)


@pytest.mark.parametrize("mix", [[[16, 1.0]], [[4, 0.5], [8, 0.5]]])
def test_large_folios_claimed_for_an_order0_stream_are_refused(
        pages: np.ndarray, tmp_path: Path, mix: list[list[Any]]) -> None:
    """A mix with no order-0 share, sizes within the pages, yet no store holds a large folio:
    every generator would have stored some, so the header is not the stream's."""
    wl = build_workload("mixed", pages, seed=2, folio_mix="1")
    src = save_workload(wl, tmp_path / "o.hwzwl")
    bad = rewrite(src, tmp_path / "mix.hwzwl", _set("structure", "folio_mix", mix))
    with pytest.raises(WorkloadError, match=r"structure\.folio_mix does not match the stream"
                                            r".*no order-0 share, but no store holds a large"):
        load_workload(bad)


def test_a_mix_larger_than_the_pages_may_store_order0_only(tmp_path: Path) -> None:
    """Fewer pages than the mix's folio: the generators store order-0 pages; not refused."""
    few = load_bundled(max_pages=12)
    for name in ("roundtrip", "pressure", "mixed"):
        wl = build_workload(name, few, seed=0, folio_mix="16")
        assert not any(op.folios for op in wl.ops)
        assert load_workload(save_workload(wl, tmp_path / f"{name}.hwzwl")).ops == wl.ops


def test_save_refuses_a_structure_its_stream_does_not_have(pages: np.ndarray,
                                                           tmp_path: Path) -> None:
    """What loading refuses is never written."""
    wl = build_workload("pressure", pages, seed=4, load_batch=8)
    wl.structure = {**wl.structure, "load_batch": 2}
    with pytest.raises(WorkloadError, match=r"workload 'pressure': structure\.load_batch does "
                                            r"not match the stream"):
        save_workload(wl, tmp_path / "p.hwzwl")
    assert list(tmp_path.iterdir()) == []


# -- the corpus note ------------------------------------------------------------------------


GOOD_CORPUS = {"source": "file", "files": ["x.pages"], "sha256": "ab" * 32, "pages": 500,
               "selected": 96, "zero_share": 0.1, "same_filled_share": 0.2}


def test_a_sane_corpus_note_round_trips(pages: np.ndarray, tmp_path: Path) -> None:
    wl = build_workload("roundtrip", pages, seed=0, corpus=GOOD_CORPUS)
    assert load_workload(save_workload(wl, tmp_path / "c.hwzwl")).corpus == GOOD_CORPUS


@pytest.mark.parametrize("key,value", [
    ("pages", -5), ("pages", 0), ("pages", 2.5), ("pages", True), ("pages", 50),
    ("selected", 95), ("selected", "96"), ("source", "bogus"), ("files", "x.pages"),
    ("files", [1]), ("sha256", "xyz"), ("sha256", "AB" * 32), ("zero_share", 2),
    ("same_filled_share", -0.1), ("zero_share", "0.1"), ("command", {"a": 1}),
])
def test_nonsense_corpus_notes_are_refused(pages: np.ndarray, tmp_path: Path, key: str,
                                           value: Any) -> None:
    wl = build_workload("roundtrip", pages, seed=0, corpus=GOOD_CORPUS)
    src = save_workload(wl, tmp_path / "c.hwzwl")
    bad = rewrite(src, tmp_path / "bad.hwzwl", _set("corpus", key, value))
    with pytest.raises(WorkloadError) as exc:
        load_workload(bad)
    assert str(exc.value).startswith(f"{bad}: corpus.{key} is ")
    # and save_workload does not write it in the first place
    wl.corpus = {**GOOD_CORPUS, key: value}
    with pytest.raises(WorkloadError, match=rf"workload 'roundtrip': corpus\.{key} is "):
        save_workload(wl, tmp_path / "never.hwzwl")
    assert not (tmp_path / "never.hwzwl").exists()


def test_corpus_that_is_not_a_mapping_is_refused(pages: np.ndarray, tmp_path: Path) -> None:
    wl = build_workload("roundtrip", pages, seed=0)
    src = save_workload(wl, tmp_path / "c.hwzwl")
    bad = rewrite(src, tmp_path / "bad.hwzwl", _set("corpus", [1, 2]))
    with pytest.raises(WorkloadError, match=r"header field corpus must be a mapping"):
        load_workload(bad)


# -- the sections' encoding -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["ops", "pages", "folios"])
@pytest.mark.parametrize("encoding", ["gzip", "", None, 7])
def test_unknown_section_encoding_is_refused(pages: np.ndarray, tmp_path: Path, key: str,
                                             encoding: Any) -> None:
    wl = build_workload("roundtrip", pages, seed=0)
    src = save_workload(wl, tmp_path / "e.hwzwl")
    bad = rewrite(src, tmp_path / "bad.hwzwl", _set("sections", key, "encoding", encoding))
    with pytest.raises(WorkloadError) as exc:
        load_workload(bad)
    assert str(exc.value).startswith(f"{bad}: header field sections.{key}.encoding is "
                                      f"{json.dumps(encoding)}; this hwzswap reads 'zstd'")


# -- a stream that does not replay names the file ---------------------------------------------


def test_replay_error_names_the_file(pages: np.ndarray, tmp_path: Path) -> None:
    """An op stream edited (counts kept) so that an invalidate names an empty slot: the
    stream check's error now starts with the file's path."""
    wl = build_workload("roundtrip", pages, seed=0, load_batch=1)
    src = save_workload(wl, tmp_path / "r.hwzwl")
    ops = list(wl.ops)
    first = next(i for i, op in enumerate(ops) if op.kind == INVALIDATE)
    ops[first] = Op(INVALIDATE, 0, (1,))  # slot 1 twice, slot 0 never
    bad = rewrite(src, tmp_path / "bad.hwzwl", lambda h: None,
                  sections={"ops": _encode_ops(ops)})
    with pytest.raises(WorkloadError) as exc:
        load_workload(bad)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: workload 'roundtrip': op {first + 1} (invalidate): slot "
                          f"0:1 holds nothing")
    assert "re-copy the file" in msg
