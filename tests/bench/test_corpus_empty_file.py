"""An empty page file given as --corpus: the error names the file and gives a remedy that
works (it said "pass --pages 0 or a larger --corpus", and --pages 0 is refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwzswap.bench.workload import select_pages
from hwzswap.cli import main
from hwzswap.errors import WorkloadError


@pytest.mark.parametrize("pages", [["--pages", "64"], []], ids=["pages-64", "default-pages"])
def test_empty_corpus_names_the_file(tmp_path: Path, pages: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "no pages.pages"
    empty.write_bytes(b"")
    assert main(["bench", "--corpus", str(empty), "--quiet", *pages]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "holds no pages" in err
    assert "--pages 0" not in err
    assert "hwzswap capture" in err and "leave out --corpus" in err
    assert main(["record", "--corpus", str(empty), "-o", str(tmp_path / "w.hwzwl")]) == 2
    assert str(empty) in capsys.readouterr().err


def test_select_pages_too_many_names_the_file_and_a_valid_count() -> None:
    pages = np.zeros((5, 4096), dtype=np.uint8)
    with pytest.raises(WorkloadError, match=r"the page file f\.pages holds 5 pages.*"
                                            r"pass --pages 5 or less"):
        select_pages(pages, 9, source="f.pages")
    with pytest.raises(WorkloadError, match="holds no pages"):
        select_pages(pages[:0], None)
