"""``hwzswap capture`` option mistakes: refused before the command is started, exit status 2,
no traceback, and no partial file (a zstd level out of range used to fail while the file was
being opened, leaving a .partial behind; -o naming a directory failed at the final rename)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.cli import main


@pytest.mark.parametrize("extra, words", [
    (["--zstd-level", "99"], "--zstd-level: a zstd level is at most 22"),
    (["--wait-seconds", "nan"], "--wait-seconds: must be a finite number >= 0"),
    (["--wait-rss-mb", "0"], "--wait-rss-mb: must be a finite number > 0"),
    (["--timeout", "-1"], "--timeout: must be a finite number > 0"),
    (["--max-pages", "0"], "--max-pages: must be at least 1"),
])
def test_bad_numbers_are_argument_errors(extra: list[str], words: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.pages.zst"
    with pytest.raises(SystemExit) as exc:
        main(["capture", "-o", str(out), *extra, "--", "sleep", "5"])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, words", [
    (".", "must end in .pages or .zst"),
    ("mine.yaml", "must end in .pages or .zst"),
])
def test_an_output_it_cannot_or_must_not_write_is_refused_first(
        name: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.yaml").write_text("zswap: {}\n")
    out = tmp_path / name
    assert main(["capture", "-o", str(out), "--wait-seconds", "0.2", "--", "sleep", "5"]) == 2
    err = capsys.readouterr().err
    assert f"-o {out}" in err and words in err and "Traceback" not in err
    assert (tmp_path / "mine.yaml").read_text() == "zswap: {}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


def test_report_and_output_on_one_file_are_refused(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.pages"
    assert main(["capture", "-o", str(out), "--report", str(out), "--wait-seconds", "0.2",
                 "--", "sleep", "5"]) == 2
    assert "same file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_wait_line_that_is_not_utf8_is_matched_as_its_bytes(tmp_path: Path) -> None:
    """``--wait-line $'\\xff'`` (Python surrogate-escapes it) raised UnicodeEncodeError; it is
    now matched as the byte the user typed."""
    import os
    import sys

    out = tmp_path / "c.pages"
    prog = ("import sys, time; x = bytearray(1 << 20); sys.stdout.buffer.write(b'mid \\xff\\n');"
            " sys.stdout.flush(); time.sleep(30)")
    line = os.fsdecode(b"\xff")
    assert main(["capture", "-o", str(out), "--wait-line", line, "--timeout", "20", "--",
                 sys.executable, "-c", prog]) == 0
    assert out.stat().st_size > 0


def test_an_empty_wait_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    out = tmp_path / "c.pages"
    assert main(["capture", "-o", str(out), "--wait-line", "", "--", "sleep", "5"]) == 2
    assert "--wait-line is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
