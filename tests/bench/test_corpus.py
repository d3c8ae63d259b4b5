"""Page files, the bundled corpus and its figures."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import zstandard

from hwzswap.bench import corpus
from hwzswap.bench.corpus import (
    bundled_corpus_paths,
    corpus_hash,
    describe,
    load_bundled,
    load_bundled_sources,
    load_pages,
    save_pages,
)
from hwzswap.errors import CorpusError, HwzswapError

PAGE = 4096


def _pages(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, PAGE), dtype=np.uint8)


@pytest.mark.parametrize("name", ["a.pages", "a.pages.zst"])
def test_roundtrip(tmp_path: Path, name: str) -> None:
    pages = _pages(7)
    pages[3] = 0
    path = save_pages(tmp_path / name, pages)
    back = load_pages(path)
    assert back.dtype == np.uint8 and back.shape == (7, PAGE)
    assert np.array_equal(back, pages)
    raw = path.read_bytes()
    if name.endswith(".zst"):
        assert zstandard.ZstdDecompressor().decompress(raw) == pages.tobytes()
    else:
        assert raw == pages.tobytes()  # the format is just the pages
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_save_makes_the_directory_has_the_usual_mode_and_leaves_nothing_on_failure(
        tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = save_pages(tmp_path / "new" / "a.pages.zst", _pages(2))
    finally:
        os.umask(old)
    # as open() makes it (0666 less the umask), like capture's page files; not mkstemp's 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and list(path.parent.iterdir()) == [path]
    taken = tmp_path / "taken.pages"
    (taken / "inside").mkdir(parents=True)  # the rename cannot replace a directory
    with pytest.raises(OSError):
        save_pages(taken, _pages(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "taken.pages"]


def test_save_accepts_flat_bytes_and_rejects_bad_shapes(tmp_path: Path) -> None:
    flat = np.frombuffer(_pages(2).tobytes(), dtype=np.uint8)
    assert load_pages(save_pages(tmp_path / "f.pages", flat)).shape == (2, PAGE)
    with pytest.raises(CorpusError, match="not a whole number"):
        save_pages(tmp_path / "g.pages", np.zeros(PAGE + 1, dtype=np.uint8))
    with pytest.raises(CorpusError, match=r"\(N, 4096\)"):
        save_pages(tmp_path / "h.pages", np.zeros((2, 100), dtype=np.uint8))


def test_bad_size_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "bad.pages"
    p.write_bytes(b"x" * (2 * PAGE + 10))
    with pytest.raises(CorpusError, match=r"8202 bytes.*2 pages and 10 bytes over"):
        load_pages(p)
    z = tmp_path / "bad.pages.zst"
    z.write_bytes(zstandard.ZstdCompressor().compress(b"y" * 100))
    with pytest.raises(CorpusError, match="100 bytes is not a whole number"):
        load_pages(z)


def test_bad_zstd_and_missing_file(tmp_path: Path) -> None:
    z = tmp_path / "junk.pages.zst"
    z.write_bytes(b"this is not zstd" * 300)
    with pytest.raises(CorpusError, match="not valid zstd"):
        load_pages(z)
    good = zstandard.ZstdCompressor().compress(_pages(3).tobytes())
    for cut in (len(good) // 2, len(good) - 1):  # truncated: never a silently shorter corpus
        z.write_bytes(good[:cut])
        with pytest.raises(CorpusError, match="truncated"):
            load_pages(z)
    z.write_bytes(good + good)  # concatenated frames (zstd a b > c) are one page file
    assert load_pages(z).shape == (6, PAGE)
    with pytest.raises(CorpusError, match="no such page file"):
        load_pages(tmp_path / "missing.pages")
    assert issubclass(CorpusError, HwzswapError)


def test_non_regular_files_are_refused_at_once(tmp_path: Path) -> None:
    """Issue 16 row 16: a FIFO as --corpus blocked forever; now a clear CorpusError at once
    (the FIFO has no writer: opening it for reading would block)."""
    import os
    import threading

    fifo = tmp_path / "pages.fifo"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def load() -> None:
        try:
            load_pages(fifo)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 -- inspected below
            result.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test process can end, then fail
        with open(fifo, "wb"):
            pass
        t.join(5)
        raise AssertionError("load_pages blocked on a FIFO")
    assert isinstance(result[0], CorpusError), result
    assert "not a regular file (a FIFO)" in str(result[0])
    with pytest.raises(CorpusError, match="not a regular file \\(a directory\\)"):
        load_pages(tmp_path)
    with pytest.raises(CorpusError, match="a character device"):
        load_pages("/dev/null")


def test_empty_file_is_zero_pages(tmp_path: Path) -> None:
    (tmp_path / "e.pages").write_bytes(b"")
    assert load_pages(tmp_path / "e.pages").shape == (0, PAGE)
    assert describe(load_pages(tmp_path / "e.pages"))["zero_share"] == 0.0


def test_describe_on_constructed_pages() -> None:
    pages = _pages(10, seed=1)
    pages[0] = 0  # zero
    pages[1] = 0
    pages[2] = 0x5A  # same-filled (one byte value)
    pages[3] = np.tile(np.arange(1, 9, dtype=np.uint8), PAGE // 8)  # same 8-byte word
    pages[4] = np.tile(np.arange(1, 5, dtype=np.uint8), PAGE // 4)  # same word, period 4
    pages[5] = 0
    pages[5, PAGE - 1] = 1  # almost zero: neither
    pages[6] = np.tile(np.arange(16, dtype=np.uint8), PAGE // 16)  # period 16: not same-filled
    d = describe(pages)
    assert d["pages"] == 10 and d["bytes"] == 10 * PAGE
    assert d["zero_pages"] == 2 and d["zero_share"] == pytest.approx(0.2)
    assert d["same_filled_pages"] == 5 and d["same_filled_share"] == pytest.approx(0.5)

    per = describe({"a": pages[:4], "b": pages[4:]})
    assert per["pages"] == 10 and per["zero_pages"] == 2 and per["same_filled_pages"] == 5
    assert per["sources"]["a"]["same_filled_pages"] == 4
    assert per["sources"]["b"]["same_filled_pages"] == 1
    assert per["sources"]["b"]["zero_share"] == 0.0


def test_describe_chunks_agree_with_a_plain_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = _pages(50, seed=2)
    pages[::3] = 0
    pages[1::7] = 0xFF
    monkeypatch.setattr(corpus, "_CHUNK", 8)  # force several chunks
    words = pages.view(np.uint64)
    same = sum(bool((w == w[0]).all()) for w in words)
    zero = sum(not w.any() for w in words)
    d = describe(pages)
    assert (d["same_filled_pages"], d["zero_pages"]) == (same, zero)


def test_hash_is_sha256_of_the_bytes_and_stable() -> None:
    pages = _pages(4, seed=3)
    assert corpus_hash(pages) == hashlib.sha256(pages.tobytes()).hexdigest()
    assert corpus_hash(pages) == corpus_hash(pages.copy())
    # a view that is not contiguous hashes its content, not its memory
    assert corpus_hash(pages[::2]) == hashlib.sha256(pages[::2].tobytes()).hexdigest()
    changed = pages.copy()
    changed[2, 100] ^= 1
    assert corpus_hash(changed) != corpus_hash(pages)


def test_lz4_ratio_matches_the_definition() -> None:
    import lz4.block

    pages = _pages(6, seed=4)
    pages[0] = 0  # same-filled: excluded
    pages[1, :2048] = 0  # compresses
    pages[2] = np.tile(np.arange(64, dtype=np.uint8), PAGE // 64)  # compresses well
    comp = [min(len(lz4.block.compress(p.tobytes(), store_size=False)), PAGE) for p in pages[1:]]
    assert corpus.lz4_ratio(pages) == pytest.approx(5 * PAGE / sum(comp))


def test_bundled_corpus_loads() -> None:
    paths = bundled_corpus_paths()
    names = [corpus.source_name(p) for p in paths]
    assert len(paths) >= 2 and names == sorted(names)
    by_source = load_bundled_sources()
    assert list(by_source) == names
    pages = load_bundled()
    total_pages = sum(a.shape[0] for a in by_source.values())
    assert pages.dtype == np.uint8 and pages.shape == (total_pages, PAGE)
    assert np.array_equal(pages[: by_source[names[0]].shape[0]], by_source[names[0]])
    d = describe(by_source)
    for name, f in d["sources"].items():
        assert f["pages"] >= 1000
        assert f["zero_share"] < 0.5, f"{name} is mostly zero pages"
    total = sum(p.stat().st_size for p in paths)
    assert total < 8 * 2**20  # a few MB in the repo


def test_bundled_subset_and_max_pages_are_deterministic() -> None:
    names = [corpus.source_name(p) for p in bundled_corpus_paths()]
    one = load_bundled([names[-1]])
    assert np.array_equal(one, load_bundled_sources([names[-1]])[names[-1]])
    a = load_bundled(max_pages=1001)
    b = load_bundled(max_pages=1001)
    assert a.shape == (1001, PAGE) and corpus_hash(a) == corpus_hash(b)
    # every source contributes in proportion to its size
    sizes = [x.shape[0] for x in load_bundled_sources().values()]
    quotas = corpus._quotas(sizes, 1001)
    assert sum(quotas) == 1001
    assert all(abs(q - s * 1001 / sum(sizes)) < 1 for q, s in zip(quotas, sizes))
    first = load_bundled_sources([names[0]])[names[0]]
    assert np.array_equal(a[0], first[0]) and np.array_equal(a[quotas[0] - 1], first[-1])
    assert load_bundled(max_pages=10**9).shape[0] == sum(sizes)


def test_bundled_errors() -> None:
    with pytest.raises(CorpusError, match="unknown corpus source"):
        load_bundled(["no-such-source"])
    with pytest.raises(CorpusError, match="max_pages must be at least 1"):
        load_bundled(max_pages=0)


def test_readme_table_matches_the_files() -> None:
    """The committed README was generated from the committed files (same figures and hashes)."""
    readme = (corpus.corpus_dir() / "README.md").read_text()
    for name, pages in load_bundled_sources().items():
        assert f"| {name} | {pages.shape[0]} |" in readme
        assert f"`{corpus_hash(pages)[:12]}`" in readme
    assert readme == corpus.readme_text() + "\n"  # what ``--readme`` would write: up to date


def test_cli_describe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    p = save_pages(tmp_path / "x.pages", np.zeros((3, PAGE), dtype=np.uint8))
    assert corpus.main(["--describe", str(p)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["pages"] == 3 and d["zero_share"] == 1.0
    assert d["sources"][str(p)]["sha256"] == corpus_hash(np.zeros((3, PAGE), dtype=np.uint8))
    # only same-filled pages: no ratio to give (the bench's null), not a made-up 1.0
    assert d["sources"][str(p)]["lz4_ratio"] is None
    (tmp_path / "bad.pages").write_bytes(b"12")
    assert corpus.main([str(tmp_path / "bad.pages")]) == 2
    assert "not a whole number" in capsys.readouterr().err
