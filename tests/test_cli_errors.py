"""The ``hwzswap`` command line as a whole: every subcommand's help renders, ``python -m
hwzswap`` is the same program, and the output-file helpers every command shares."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hwzswap.cli import build_parser, main
from hwzswap.cliargs import distinct_outputs, output_file
from hwzswap.errors import HwzswapError, OutputError
from hwzswap.fileio import write_atomic


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_has_a_help_that_renders() -> None:
    commands = _subcommands()
    assert {"backends", "bench", "record", "stats", "sweep", "tune", "swap", "serve",
            "run"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()  # a stray % in a help string raised TypeError here
        assert text.startswith(f"usage: hwzswap {name}"), name


def test_help_is_plain_text_and_every_option_is_explained() -> None:
    for name, parser in _subcommands().items():
        assert "``" not in parser.format_help(), name  # reST markup from a module docstring
        for action in parser._actions:
            if action.option_strings:
                assert action.help, (name, action.option_strings)


def test_help_exits_0_for_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    for name in _subcommands():
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
    assert "Traceback" not in capsys.readouterr().err


def test_python_m_hwzswap_is_the_command() -> None:
    env = {**os.environ, "COLUMNS": "100"}
    ok = subprocess.run([sys.executable, "-m", "hwzswap", "bench", "--help"],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("usage: hwzswap bench")
    bad = subprocess.run([sys.executable, "-m", "hwzswap", "bench", "--pages", "0"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2
    assert "--pages: must be at least 1" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("argv", [["backends", "--json"], ["backends"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(argv: list[str]) -> None:
    """`hwzswap backends --json | head -1` used to end in a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write
    err = proc.stderr.read().decode()
    # 141 (killed by SIGPIPE, as a shell reports it); rich's console ends its own write
    # errors with status 1 the same quiet way
    assert proc.wait(timeout=60) in (141, 1), err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_output_file_refusals_name_the_option(tmp_path: Path) -> None:
    cases = {
        "": "give a file name",
        "-": "give a file name",
        str(tmp_path): "is a directory",
    }
    for path, why in cases.items():
        with pytest.raises(OutputError, match=why) as exc:
            output_file(path, "--out")
        assert str(exc.value).startswith("--out")
    with pytest.raises(OutputError, match=r"must end in \.png or \.svg"):
        output_file(str(tmp_path / "a.jpg"), "--plot", suffixes=(".png", ".svg"))
    assert issubclass(OutputError, HwzswapError)


def test_output_file_creates_nothing_and_the_write_makes_the_parent(tmp_path: Path) -> None:
    """Checked before a run that may still fail: no empty directory is left behind, and no
    probe file; the write creates the missing directories."""
    out = output_file(str(tmp_path / "a" / "b" / "r.json"), "--json")
    assert list(tmp_path.iterdir()) == []
    write_atomic(out, lambda tmp: tmp.write_text("{}"))
    assert out.read_text() == "{}" and list(out.parent.iterdir()) == [out]
    with pytest.raises(OutputError, match="r.json: cannot create its directory .*is not a "
                                          "directory"):
        output_file(str(out / "c" / "r.json"), "--json")


def test_an_input_and_an_output_on_one_file_are_refused_even_by_another_name(
        tmp_path: Path) -> None:
    real = tmp_path / "c.yaml"
    real.write_text("zswap: {}\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    with pytest.raises(OutputError, match="--config"):
        output_file(str(link), "--json", inputs=[("--config", str(real))])
    with pytest.raises(OutputError, match="same file"):
        distinct_outputs([("--json", str(real)), ("--markdown", str(link))])
    distinct_outputs([("--json", str(real)), ("--markdown", None)])


def test_ctrl_c_in_a_bench_says_so_and_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "bench", "--backends", "lz4,zstd,deflate", "--pages",
         "10240", "--repeat", "5", "--json", str(out), "--markdown", str(tmp_path / "r.md")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "workload ...": the run is about to start
        assert first.startswith("workload roundtrip")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "hwzswap bench: interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["bench", "--config", ""], ["bench", "--corpus", ""], ["bench", "--workload", ""],
    ["bench", "--json", " "], ["record", "-o", ""], ["stats", "--config", ""],
    ["sweep", ""], ["sweep", "s.yaml", "-o", ""],
])
def test_an_empty_file_name_is_an_argument_error(argv: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # Path("") is ".": the errors named "." or ""
        main(argv)
    assert exc.value.code == 2
    assert "expected a file name, got an empty string" in capsys.readouterr().err


def test_a_seed_a_workload_file_cannot_keep_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.hwzw"
    big = str(1 << 64)  # recorded, then refused on replay as a damaged file
    with pytest.raises(SystemExit) as exc:
        main(["record", "--pages", "8", "--seed", big, "-o", str(out)])
    assert exc.value.code == 2 and "--seed: the seed must be at most" in capsys.readouterr().err
    assert not out.exists()
    assert main(["record", "--pages", "8", "--seed", str((1 << 64) - 1), "-o", str(out)]) == 0
    assert main(["bench", "--workload", str(out), "--backends", "lz4", "--repeat", "1",
                 "--quiet"]) == 0


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "0", "0.1"])
def test_a_memory_limit_that_is_not_a_size_is_refused(text: str) -> None:
    from hwzswap.serve.cgroup import parse_size

    with pytest.raises(HwzswapError, match="a size must be a finite number of at least one "
                                           "byte"):
        parse_size(text)  # nan and inf were a ValueError / OverflowError traceback
    assert parse_size("64M") == 64 << 20 and parse_size("1.5K") == 1536


@pytest.mark.parametrize("argv, words", [
    (["serve", "--threads", "0"], "--threads: must be at least 1"),
    (["swap", "on", "--threads", "-1"], "--threads: must be at least 1"),
    (["swap", "off", "--timeout", "nan"], "--timeout: must be a finite number > 0"),
    (["run", "--memory-limit", "64M", "--timeout", "-1", "--", "true"],
     "--timeout: must be a finite number > 0"),
])
def test_server_options_are_checked_by_the_parser(argv: list[str], words: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # parse only: a parser that let them through would start a server
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Only a closed stdout ends a command quietly; another pipe or socket breaking is a real
    error and keeps its traceback."""
    import hwzswap.cli as cli

    def broken(args: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe (a socket)")

    class Parser:
        def parse_args(self, argv: list[str]) -> argparse.Namespace:
            return argparse.Namespace(command="test", func=broken)

    monkeypatch.setattr(cli, "build_parser", lambda: Parser())
    with pytest.raises(BrokenPipeError, match="a socket"):
        cli.main([])


@pytest.mark.parametrize("option, bad, words", [
    ("--json", "fifo", "not a regular file"),
    ("--json", "dir", "is a directory"),
    ("--plot", "plot.gif", "must end in .png or .svg or .pdf"),
    ("--record", "config", "is the file given to --config"),
    ("--json", "/dev/stdout", "stream or device path"),
])
def test_run_checks_its_outputs_before_anything_runs(tmp_path: Path, option: str, bad: str,
                                                     words: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``hwzswap run`` refuses an output it could not write at its end before it touches the
    system (no swap, no cgroup, no program started): a long run's results are never lost to
    a bad path, and a FIFO or /dev/stdout is never replaced by the atomic write's rename."""
    config = tmp_path / "config"
    config.write_text("zswap: {compressor: lz4}\n")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    marker = tmp_path / "ran"
    code = main(["run", "--memory-limit", "64M", "--config", str(config), option,
                 str(tmp_path / bad), "--", "touch", str(marker)])  # an absolute bad stays so
    err = capsys.readouterr().err
    assert code == 2 and words in err and option in err, err
    assert not marker.exists()
