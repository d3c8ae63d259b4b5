"""Files written whole or not at all (hwzswap.fileio): the old file or the new one, never half
a file, and no temporary file left behind by a writer that failed or was interrupted."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwzswap.fileio import PARTIAL, replace_target, replacing, write_atomic, write_figure


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask for the modes below (the test runner's own may be anything)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    out.write_text("old\n")

    def half(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(out, half)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]
    assert write_atomic(out, lambda tmp: tmp.write_text("new\n")) == out
    assert out.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_an_exception_leaves_no_file_where_there_was_none(tmp_path: Path) -> None:
    out = tmp_path / "new.json"
    with pytest.raises(ValueError, match="not JSON"):
        with replacing(out) as tmp:
            tmp.write_text("{")
            raise ValueError("not JSON")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_is_beside_the_target_and_no_glob_takes_it_for_one(
        tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    out = tmp_path / "run.json"
    with replacing(out) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp.stat().st_size == 0
        assert tmp.name.startswith(".run.json.") and tmp.name.endswith(PARTIAL)
        assert not out.exists()  # nothing at the target until the write is whole
        assert [p.name for p in tmp_path.glob("*.json")] == ["old.json"]  # pathlib sees dotfiles
        tmp.write_text('{"a": 1}')
    assert out.read_text() == '{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json", "run.json"]


def test_two_writers_of_one_file_get_their_own_temporary_files(tmp_path: Path) -> None:
    out = tmp_path / "state.json"
    with replacing(out) as first, replacing(out) as second:
        assert first != second
        first.write_text("1")
        second.write_text("2")
    assert out.read_text() == "1"  # the outer write ends last
    assert list(tmp_path.iterdir()) == [out]


def test_missing_directories_are_made_unless_parents_is_off(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "r.txt"
    with pytest.raises(FileNotFoundError):
        write_atomic(out, lambda tmp: tmp.write_text("x"), parents=False)
    assert list(tmp_path.iterdir()) == []
    write_atomic(out, lambda tmp: tmp.write_text("x"))
    assert out.read_text() == "x"


def test_a_failed_rename_removes_the_temporary_file(tmp_path: Path) -> None:
    """A directory in the way: the write succeeds, the rename cannot replace it."""
    out = tmp_path / "taken"
    (out / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        write_atomic(out, lambda tmp: tmp.write_text("x"))
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and out.is_dir()


@pytest.mark.usefixtures("umask_022")
def test_modes_are_as_open_makes_them_or_as_asked(tmp_path: Path) -> None:
    plain = write_atomic(tmp_path / "plain", lambda tmp: tmp.write_text("x"))
    assert _mode(plain) == 0o644  # 0666 less the umask, as open(path, "w") makes it
    private = write_atomic(tmp_path / "private", lambda tmp: tmp.write_text("x"), mode=0o600)
    assert _mode(private) == 0o600
    # replacing an existing file takes the new file's mode, not the old one's
    plain.chmod(0o600)
    write_atomic(plain, lambda tmp: tmp.write_text("y"))
    assert _mode(plain) == 0o644


def test_a_killed_writer_leaves_a_temporary_file_that_says_what_it_is(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: what is left is hidden, names its target and says partial;
    the target itself is untouched."""
    out = tmp_path / "pages.zst"
    out.write_bytes(b"old")
    code = ("import os, signal, sys\n"
            "from hwzswap.fileio import replacing\n"
            "with replacing(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], timeout=60)
    assert proc.returncode == -9
    assert out.read_bytes() == b"old"
    left = [p.name for p in tmp_path.iterdir() if p != out]
    assert len(left) == 1 and left[0].startswith(".pages.zst.") and left[0].endswith(PARTIAL)


def test_write_figure_follows_the_suffix_and_closes_the_figure(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, magic in (("plot", b"\x89PNG"), ("plot.png", b"\x89PNG"), ("plot.svg", b"<?xml")):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        out = write_figure(fig, tmp_path / name)
        assert out.read_bytes().startswith(magic), name
        assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot", "plot.png", "plot.svg"]


def test_write_figure_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    fig, ax = plt.subplots()

    def half_then_full_disk(tmp, **kwargs):  # noqa: ANN001, ANN003
        Path(tmp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    fig.savefig = half_then_full_disk
    with pytest.raises(OSError):
        write_figure(fig, target, dpi=110)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    assert not plt.fignum_exists(fig.number)


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, lambda tmp: tmp.write_text("new"))
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_a_fifo_or_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        write_atomic(fifo, lambda tmp: tmp.write_text("new"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(OSError, match="not a regular file"):
        write_atomic(tmp_path, lambda tmp: tmp.write_text("new"))
    assert list(tmp_path.iterdir()) == [fifo]


def test_a_stream_path_is_refused_even_when_it_leads_to_a_file(tmp_path: Path) -> None:
    """``/dev/stdout`` redirected to a log is a regular file by stat; replacing it would throw
    the log away, so a path through /dev or /proc is refused whatever it leads to."""
    log = tmp_path / "log.txt"
    log.write_text("earlier output\n")
    with open(log, "a") as f:
        fd_path = f"/proc/self/fd/{f.fileno()}"
        with pytest.raises(OSError, match="stream or device path"):
            write_atomic(fd_path, lambda tmp: tmp.write_text("{}"))
    for path in ("/dev/stdout", "/dev/null"):
        with pytest.raises(OSError, match="stream or device path"):
            write_atomic(path, lambda tmp: tmp.write_text("{}"))
    assert log.read_text() == "earlier output\n"
    assert replace_target(tmp_path / "new.json") == (tmp_path / "new.json").resolve()


@pytest.mark.parametrize("after", ["open", "close"])
def test_an_interruption_just_after_the_temporary_file_is_made_removes_it(tmp_path: Path,
                                                                          after: str) -> None:
    """A signal's exception (Ctrl-C, a capture's SIGTERM) lands between two bytecodes: right
    after the temporary file was created, before its name reached the cleanup, it used to
    leave the .partial file behind. The profiler raises it at exactly that point."""
    target = tmp_path / "out.json"
    seen: list[list[str]] = []
    fn = os.open if after == "open" else os.close

    def interrupt(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "c_return" and arg is fn and frame.f_code.co_name == "_create_beside":
            sys.setprofile(None)
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
            raise KeyboardInterrupt

    sys.setprofile(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with replacing(target):
                pass
    finally:
        sys.setprofile(None)
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].endswith(PARTIAL)  # it existed
    assert list(tmp_path.iterdir()) == []
