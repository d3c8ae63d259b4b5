"""``hwzswap sweep`` with user mistakes on the command line: refused with exit status 2 and a
message naming the option, before any run; the user's files are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.cli import main
from sweep_helpers import SMALL_SWEEP, write_sweep


def test_output_into_a_directory_with_the_users_table_is_refused(
        small_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "table.md").write_text("my notes\n")
    assert main(["sweep", str(small_sweep), "-o", str(mine), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"-o {mine}" in err and "table.md" in err and "Traceback" not in err
    assert (mine / "table.md").read_text() == "my notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["table.md"]  # no runs/ made either


def test_output_that_is_a_file_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path, SMALL_SWEEP)
    assert main(["sweep", str(sweep), "-o", str(sweep), "--quiet"]) == 2
    assert "cannot create the output directory" in capsys.readouterr().err
    assert "axes" in sweep.read_text()


def test_a_misspelt_config_key_stops_the_dry_run(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                          "zswap.max_pool_percnt": [10, 20]}})
    out = tmp_path / "out"
    assert main(["sweep", str(bad), "--dry-run", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml: axes.zswap.max_pool_percnt: unknown config key; did you mean " \
           "'zswap.max_pool_percent'?" in err
    good = write_sweep(tmp_path, {"axes": {"backend": ["lz4"],
                                           "zswap.max_pool_percent": [10, 20]}}, "g.yaml")
    assert main(["sweep", str(good), "--dry-run", "-o", str(out)]) == 0
    assert "2 runs" in capsys.readouterr().out and not out.exists()
