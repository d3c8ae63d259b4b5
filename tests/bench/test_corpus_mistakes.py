"""Page files given by mistake: a workload file, or zstd data under a .pages name, gets an error
that says what the file is and what to do, not 'not a whole number of pages'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zstandard

from hwzswap.bench.corpus import PAGE_SIZE, load_bundled, load_pages
from hwzswap.cli import main
from hwzswap.errors import CorpusError


def test_a_workload_file_given_as_a_corpus(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    wl = tmp_path / "w.hwzw"
    assert main(["record", "--pages", "8", "-o", str(wl)]) == 0
    capsys.readouterr()
    assert main(["bench", "--corpus", str(wl), "--backends", "lz4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{wl}: a workload file" in err and "--workload" in err


def test_zstd_data_under_a_pages_name(tmp_path: Path) -> None:
    pages = load_bundled(max_pages=3)
    path = tmp_path / "x.pages"
    path.write_bytes(zstandard.ZstdCompressor().compress(pages.tobytes()))
    with pytest.raises(CorpusError, match=r"x\.pages: zstd-compressed data .* rename it to "
                                          r"x\.pages\.zst"):
        load_pages(path)
    renamed = path.rename(tmp_path / "x.pages.zst")
    assert np.array_equal(load_pages(renamed), pages)


def test_raw_pages_that_start_like_zstd_are_still_pages(tmp_path: Path) -> None:
    page = np.zeros((2, PAGE_SIZE), np.uint8)
    page[0, :4] = (0x28, 0xB5, 0x2F, 0xFD)  # the zstd magic, by chance, in a whole page file
    path = tmp_path / "y.pages"
    path.write_bytes(page.tobytes())
    assert np.array_equal(load_pages(path), page)


def test_corpus_tool_refuses_files_with_readme(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from hwzswap.bench.corpus import corpus_dir, main as corpus_main

    readme = corpus_dir() / "README.md"
    before = readme.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exc:  # the files were ignored and the README rewritten
        corpus_main(["--readme", str(tmp_path / "x.pages")])
    assert exc.value.code == 2
    assert "--readme regenerates" in capsys.readouterr().err
    assert readme.stat().st_mtime_ns == before
