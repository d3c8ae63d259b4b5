"""``hwzswap run -- CMD``: a command that cannot be started is refused (exit 2, before any
chain is set up) saying what is wrong with it, not "no such executable" about a file that
exists, nor execve's bare "No such file or directory" about a script whose #! interpreter is
missing."""

from __future__ import annotations

import errno
from pathlib import Path

from serveutil import hwzswap_cli

from hwzswap.serve import run


def _script(path: Path, text: str, mode: int = 0o755) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_what_is_wrong_with_the_command_is_said(tmp_path: Path) -> None:
    plain = _script(tmp_path / "plain.txt", "data\n", 0o644)
    assert run.command_problem(plain).startswith("it is not executable")
    assert run.command_problem(str(tmp_path)) == "it is a directory, not a program"
    assert run.command_problem(str(tmp_path / "nope")) == "no such file"
    bad = _script(tmp_path / "bad.sh", "#!/nonexistent/interp -x\necho hi\n")
    assert run.command_problem(bad) == ("its interpreter line (#!/nonexistent/interp -x) names "
                                    "/nonexistent/interp, which does not exist")
    notprog = _script(tmp_path / "dirinterp.sh", f"#! {tmp_path}\n")
    assert run.command_problem(notprog).endswith(f"names {tmp_path}, which is not an executable "
                                             "program")
    assert run.command_problem(_script(tmp_path / "empty.sh", "#!\n")) == (
        "its interpreter line (#!) names no program")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert run.command_problem(str(tmp_path / "dangling")).startswith("it is a dangling")
    bare = _script(tmp_path / "bare.sh", "echo hi\n")
    assert run.command_problem(bare) is None  # it may be a format binfmt_misc knows
    assert run.command_problem(bare, errno.ENOEXEC).startswith("Exec format error: the "
                                                               "kernel cannot start it")
    good = _script(tmp_path / "good.sh", "#!/bin/sh\necho hi\n")
    assert run.command_problem(good) is None and run.command_problem("sh") is None
    assert run.command_problem("no-such-command-hwz") == "no such executable on PATH"


def test_the_cli_says_it_and_refuses_with_exit_2(tmp_path: Path) -> None:
    bad = _script(tmp_path / "bad.sh", "#!/nonexistent/interp\necho hi\n")
    for cmd, words in ((["/etc/passwd"], "it is not executable"),
                       ([str(tmp_path)], "it is a directory"),
                       ([bad], "names /nonexistent/interp, which does not exist")):
        p = hwzswap_cli("run", "--memory-limit", "32M", "--", *cmd, timeout=60)
        assert p.returncode == 2, p.stderr
        assert f"error: cannot run {cmd[0]}: " in p.stderr and words in p.stderr
        assert "(memory limit" not in p.stderr  # refused before any run began
