"""``hwzswap bench --json/--markdown/--plot`` and ``hwzswap record -o``: an output that cannot be
written is refused before the run, with a message naming the option; nothing the user had is
overwritten by mistake; what is written is written whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hwzswap.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: A quick bench: a few pages, one backend, one pass.
QUICK = ["bench", "--pages", "16", "--repeat", "1", "--backends", "lz4", "--quiet"]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("option", ["--json", "--markdown", "--plot"])
def test_an_output_that_is_a_directory_is_refused_before_the_run(
        option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, [*QUICK, option, str(tmp_path)])
    assert f"{option} {tmp_path}" in err
    assert "is a directory" in err or "must end in" in err
    assert not list(tmp_path.parent.glob(tmp_path.name + ".*"))  # no DIR.png, no DIR.tmp


@pytest.mark.parametrize("option", ["--json", "--markdown", "--plot"])
def test_an_output_whose_directory_cannot_be_made_is_refused(
        option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("mine\n")
    err = _error(capsys, [*QUICK, option, str(blocker / "sub" / "out.png")])
    assert option in err and "cannot create its directory" in err
    assert blocker.read_text() == "mine\n"


def test_plot_format_comes_from_the_name_and_a_name_it_cannot_write_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, [*QUICK, "--plot", str(tmp_path / "plot.txt")])
    assert "--plot" in err and ".png" in err
    assert not (tmp_path / "plot.txt").exists()


def test_standard_output_and_a_fifo_are_not_output_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "give a file name" in _error(capsys, [*QUICK, "--json", "-"])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    err = _error(capsys, [*QUICK, "--markdown", str(fifo)])
    assert "not a regular file" in err
    assert fifo.is_fifo()  # not replaced by a rename


def test_an_output_that_is_an_input_of_the_run_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    text = "zswap:\n  max_pool_percent: 30\n"
    config.write_text(text)
    err = _error(capsys, [*QUICK, "--config", str(config), "--json", str(config)])
    assert "--json" in err and "--config" in err
    assert config.read_text() == text


def test_two_outputs_naming_one_file_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    err = _error(capsys, [*QUICK, "--json", str(out), "--markdown", str(out)])
    assert "--markdown" in err and "--json" in err and "same file" in err
    assert not out.exists()


def test_outputs_are_written_whole_under_their_names(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    assert main([*QUICK, "--json", str(out / "r.json"), "--markdown", str(out / "r.md"),
                 "--plot", str(out / "r.png")]) == 0
    assert json.loads((out / "r.json").read_text())["results"][0]["backend"] == "lz4"
    assert "lz4" in (out / "r.md").read_text()
    assert (out / "r.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.md", "r.png"]  # no temps
    assert (out / "r.md").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_record_does_not_overwrite_a_file_that_is_not_a_workload(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("zswap: {}\n")
    err = _error(capsys, ["record", "--pages", "8", "-o", str(config)])
    assert f"-o {config}" in err and "not a workload file" in err
    assert config.read_text() == "zswap: {}\n"
    # a workload file is replaced (re-recording is the normal case)
    wl = tmp_path / "w.hwzw"
    assert main(["record", "--pages", "8", "-o", str(wl)]) == 0
    assert main(["record", "--pages", "16", "-o", str(wl)]) == 0
    assert "16 pages" in capsys.readouterr().out


def test_record_into_a_directory_is_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["record", "--pages", "8", "-o", str(tmp_path)])
    assert "-o" in err and "is a directory" in err


def test_too_many_pages_of_the_bundled_corpus_says_what_to_pass(
        capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, [*QUICK[:1], "--pages", "100000000", "--backends", "lz4"])
    assert "--pages" in err and "--corpus" in err


def test_a_misspelt_workload_name_gets_the_name_it_is_close_to(
        capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, [*QUICK, "--workload", "roundtrp"])
    assert "neither a built-in workload" in err and "did you mean 'roundtrip'?" in err


def test_a_run_that_fails_after_the_check_leaves_no_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The output check used to create the output's directories; a run that then failed (a
    misspelt workload) left them behind, empty. A run that works creates them."""
    out = tmp_path / "o" / "new" / "r.json"
    err = _error(capsys, [*QUICK, "--workload", "roundtrp", "--json", str(out)])
    assert "roundtrip" in err
    assert list(tmp_path.iterdir()) == []
    assert main([*QUICK, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"]
    out = tmp_path / "rec" / "w.hwzwl"
    assert main(["record", "--workload", "roundtrip", "--pages", "16", "-o", str(out)]) == 0
    assert out.is_file()
