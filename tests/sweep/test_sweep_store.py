"""The sweep's output directory (hwzswap.sweep.store): ``prepare`` refuses a directory that is
not a sweep's output but holds a file the sweep would overwrite, for every caller of the store
(``run_sweep`` without the command line too), and resumes a sweep's own output."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.sweep import store
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import load_sweep


@pytest.mark.parametrize("name", store.OUTPUTS)
def test_a_foreign_directory_holding_an_output_name_is_refused(tmp_path: Path,
                                                               name: str) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / name).write_text("the user's own\n")
    with pytest.raises(store.SweepOutputError,
                       match=rf"^-o {mine}: not a sweep's output directory \(no runs/\), and "
                             rf"it holds {name}, which the sweep would overwrite; give a new "
                             "or empty directory$"):
        store.prepare(mine)
    assert [p.name for p in mine.iterdir()] == [name]  # no runs/ made
    assert (mine / name).read_text() == "the user's own\n"


def test_a_dangling_link_under_an_output_name_counts(tmp_path: Path) -> None:
    (tmp_path / "table.md").symlink_to(tmp_path / "nowhere")
    with pytest.raises(store.SweepOutputError, match="holds table.md"):
        store.prepare(tmp_path)


def test_new_unrelated_or_own_directories_are_prepared(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x\n")
    resumed = tmp_path / "resumed"
    (resumed / store.RUNS_DIR).mkdir(parents=True)
    (resumed / "table.md").write_text("a previous sweep's table\n")
    for d in (other, resumed, tmp_path / "missing" / "deeper"):
        assert store.prepare(d) == d and (d / store.RUNS_DIR).is_dir()
    assert (resumed / "table.md").read_text() == "a previous sweep's table\n"


def test_run_sweep_without_the_command_line_is_refused_before_any_run(
        small_sweep: Path, tmp_path: Path) -> None:
    spec = load_sweep(small_sweep)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sweep.json").write_text("{}\n")
    with pytest.raises(store.SweepOutputError, match="holds sweep.json"):
        run_sweep(spec, expand(spec), mine, timeout=300, plots=False)
    assert [p.name for p in mine.iterdir()] == ["sweep.json"]


def test_the_output_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    import os

    from hwzswap.sweep.store import LOCK_FILE, SweepOutputError, locked

    with locked(tmp_path) as path:
        assert path == tmp_path / LOCK_FILE
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(SweepOutputError, match=rf"^-o {tmp_path}: another sweep \(pid "
                                                    rf"{os.getpid()}\) is writing to this "
                                                    "directory; wait for it to end"):
            with locked(tmp_path):
                pass
    with locked(tmp_path):  # released
        pass
