"""``hwzswap bench``'s outputs (``--json``, ``--markdown``, ``--plot``) on a disk that is full:
a clear error naming each file that could not be written (exit 2, as ``record``'s "cannot
write the workload file"), never a traceback, never a partial file; the outputs that could be
written are, and the old file under a failed name is kept.

The full disk is real: a 64 KiB tmpfs mounted for the test (CI runs as root) and filled up,
always unmounted afterwards."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled, save_pages
from hwzswap.bench.results import write_json, write_outputs
from hwzswap.cli import main
from hwzswap.errors import OutputError

NOSPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tmpfs of 64 KiB holding ``old.json`` (a small earlier file) and
    ``fill``, which takes every byte left: the next byte written anywhere there is ENOSPC."""
    d = tmp_path / "full"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "hwzswap-test-full",
                    str(d)], check=True)
    try:
        (d / "old.json").write_text('{"old": true}\n', encoding="utf-8")
        fd = os.open(d / "fill", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            with pytest.raises(OSError) as exc:
                while True:
                    os.write(fd, bytes(4096))
            assert exc.value.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield d
    finally:
        if subprocess.run(["umount", str(d)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], check=True)


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_write_json_to_a_full_disk_names_the_file(real: dict[str, Any],
                                                  full_dir: Path) -> None:
    out = full_dir / "r.json"
    with pytest.raises(OutputError) as exc:
        write_json(real, out)
    assert str(exc.value) == f"{out}: cannot write the results: {NOSPACE}"
    assert _listing(full_dir) == ["fill", "old.json"]  # no partial file, no temporary one
    # an earlier file of that name is left as it was, not truncated
    with pytest.raises(OutputError):
        write_json(real, full_dir / "old.json")
    assert json.loads((full_dir / "old.json").read_text()) == {"old": True}
    assert _listing(full_dir) == ["fill", "old.json"]


def test_every_output_that_fails_is_named(real: dict[str, Any], full_dir: Path) -> None:
    paths = {"json_path": full_dir / "r.json", "markdown_path": full_dir / "r.md",
             "plot_path": full_dir / "r.png"}
    with pytest.raises(OutputError) as exc:
        write_outputs(real, **paths)
    msg = str(exc.value)
    assert f"{paths['json_path']}: cannot write the results: {NOSPACE}" in msg
    assert f"{paths['markdown_path']}: cannot write the table: {NOSPACE}" in msg
    assert f"{paths['plot_path']}: cannot write the plot: {NOSPACE}" in msg
    assert "(no output was written)" in msg
    assert _listing(full_dir) == ["fill", "old.json"]


def test_bench_cli_on_a_full_disk(full_dir: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: the run is measured, the JSON and the plot find the disk full, the table
    on another disk is written; exit 2, the error names both files, no traceback."""
    corpus = tmp_path / "c.pages"
    save_pages(corpus, load_bundled(max_pages=16))
    table = tmp_path / "ok" / "table.md"
    rc = main(["bench", "--corpus", str(corpus), "--pages", "16", "--backends", "lz4",
               "--repeat", "1", "--json", str(full_dir / "r.json"), "--markdown", str(table),
               "--plot", str(full_dir / "r.png")])
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 2
    assert "Traceback" not in err
    # the run was measured: its table is still shown, and no output is said to be written
    assert "lz4" in captured.out and "wrote " not in err
    assert f"hwzswap bench: error: {full_dir / 'r.json'}: cannot write the results: " \
           f"{NOSPACE}" in err
    assert f"{full_dir / 'r.png'}: cannot write the plot: {NOSPACE}" in err
    assert f"(written: {table})" in err
    assert "lz4" in table.read_text()
    assert _listing(full_dir) == ["fill", "old.json"]


def test_outputs_on_a_disk_with_room_are_unchanged(real: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """The error path changes nothing when the writes succeed."""
    written = write_outputs(real, json_path=tmp_path / "a" / "r.json",
                            markdown_path=tmp_path / "r.md", plot_path=tmp_path / "r.png")
    assert written == [tmp_path / "a" / "r.json", tmp_path / "r.md", tmp_path / "r.png"]
    assert json.loads((tmp_path / "a" / "r.json").read_text())["results"] == real["results"]
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- python -m hwzswap.bench.corpus --readme ------------------------------------------------


def test_corpus_readme_prints_and_leaves_the_package_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    from hwzswap.bench.corpus import corpus_dir, main as corpus_main, readme_text

    readme = corpus_dir() / "README.md"
    before = (readme.stat().st_mtime_ns, readme.read_bytes())
    assert corpus_main(["--readme"]) == 0
    assert capsys.readouterr().out == readme_text() + "\n"
    assert (readme.stat().st_mtime_ns, readme.read_bytes()) == before


def test_corpus_readme_writes_only_the_file_named(tmp_path: Path, full_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from hwzswap.bench.corpus import corpus_dir, main as corpus_main

    readme = corpus_dir() / "README.md"
    before = readme.stat().st_mtime_ns
    out = tmp_path / "R.md"
    assert corpus_main(["--readme", "-o", str(out)]) == 0
    assert out.read_text() == readme.read_text()  # the committed one is up to date
    assert capsys.readouterr().out == ""
    assert readme.stat().st_mtime_ns == before
    # a full disk: the error names the file, nothing partial is left
    assert corpus_main(["--readme", "--output", str(full_dir / "R.md")]) == 2
    assert f"{full_dir / 'R.md'}: cannot write the README: {NOSPACE}" in capsys.readouterr().err
    assert _listing(full_dir) == ["fill", "old.json"]
    # -o is the README's: alone it is refused, not ignored
    with pytest.raises(SystemExit) as exc:
        corpus_main(["-o", str(tmp_path / "x.md")])
    assert exc.value.code == 2
    assert "goes with --readme" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()
