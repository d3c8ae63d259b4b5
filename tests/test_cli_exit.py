"""How the ``hwzswap`` program ends when its output cannot be written or Ctrl-C comes early:
one line on stderr and a documented exit status, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], stdout, code: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "hwzswap"]
    return subprocess.run(argv + args, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", [["backends", "--json"], ["backends"],
                                  ["stats", "--pages", "16", "--json"]])
def test_a_full_stdout_is_one_line_and_exit_1(args: list[str]) -> None:
    with open("/dev/full", "w") as full:  # every write fails: ENOSPC
        proc = _run(args, full)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err == "hwzswap: cannot write the output: No space left on device\n"


def test_a_working_stdout_is_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    with open(out, "w") as f:
        proc = _run(["backends", "--json"], f)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_text().lstrip().startswith("[") and proc.stderr == b""


# Delivers a real SIGINT to the process while the parser is being built (as Ctrl-C while
# `hwzswap.serve.cli`, one of the commands' modules, is imported), then runs the program.
_SIGINT_DURING_STARTUP = textwrap.dedent("""
    import os, signal, sys

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == "hwzswap.serve.cli":
                os.kill(os.getpid(), signal.SIGINT)
            return None

    from hwzswap.cli import entry

    sys.meta_path.insert(0, Finder())
    sys.exit(entry(sys.argv[1:]))
""")


def test_ctrl_c_while_the_commands_load_exits_130_quietly() -> None:
    proc = _run(["backends", "--json"], subprocess.PIPE, code=_SIGINT_DURING_STARTUP)
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert proc.returncode == 130, err
    assert err == "hwzswap: interrupted\n" and proc.stdout == b""


# The same while `python -m hwzswap` imports the CLI module itself.
_SIGINT_WHILE_MAIN_IMPORTS = textwrap.dedent("""
    import os, runpy, signal, sys

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == "hwzswap.cli":
                os.kill(os.getpid(), signal.SIGINT)
            return None

    import hwzswap  # the package (what `python -m` imports before its __main__)

    sys.meta_path.insert(0, Finder())
    sys.argv[1:] = ["backends"]
    runpy.run_module("hwzswap", run_name="__main__", alter_sys=True)
""")


def test_ctrl_c_while_python_m_hwzswap_imports_the_cli_exits_130_quietly() -> None:
    proc = _run([], subprocess.PIPE, code=_SIGINT_WHILE_MAIN_IMPORTS)
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert proc.returncode == 130, err
    assert err == "hwzswap: interrupted\n" and proc.stdout == b""


# Ctrl-C while numpy loads its C extensions (numpy turns that into an ImportError of its own),
# through the console script's path: `from hwzswap.cli import entry`, then entry().
_SIGINT_WHILE_NUMPY_LOADS = textwrap.dedent("""
    import os, signal, sys

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name.endswith("._multiarray_umath"):
                os.kill(os.getpid(), signal.SIGINT)
            return None

    from hwzswap.cli import entry
    assert "numpy" not in sys.modules, "the CLI module must load without numpy"

    sys.meta_path.insert(0, Finder())
    sys.exit(entry(sys.argv[1:]))
""")


def test_ctrl_c_while_numpy_loads_exits_130_quietly() -> None:
    proc = _run(["backends", "--json"], subprocess.PIPE, code=_SIGINT_WHILE_NUMPY_LOADS)
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert err == "hwzswap: interrupted\n" and proc.stdout == b""
