"""Whether ``swap on`` leaves SIGINT, SIGTERM and SIGHUP ignored after a success (so that no
signal ends the process while Python finalises, with swap on and the exit status not yet
given) is the entry point's to say: the ``hwzswap`` program (:func:`hwzswap.cli.entry`, which
the console script and ``python -m hwzswap`` call) ends when the command returns; a program
calling :func:`hwzswap.cli.main` goes on and gets its handlers back. It was guessed from
``__main__``: a program named ``hwzswap`` that embeds the CLI lost its handlers, and the
``hwzswap`` program run through :mod:`runpy` had the signals back while it finalised."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from hwzswap.serve import chain

from serveutil import small_config

ROOT = Path(__file__).resolve().parents[2]

#: The handlers of the stop signals, as names, printed as JSON (``tag``: which print).
HANDLERS = """
import json, signal
def handlers(tag):
    def name(h):
        return h.name if isinstance(h, signal.Handlers) else getattr(h, "__name__", str(h))
    print(json.dumps({"tag": tag, **{s.name: name(signal.getsignal(s))
                      for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}}), flush=True)
"""

#: A program named ``hwzswap`` that embeds the CLI: `swap on`, then it goes on.
EMBEDDING = HANDLERS + """
import sys
from hwzswap import cli
handlers("before")
rc = cli.main(["swap", "on", "--config", sys.argv[1], "--name", sys.argv[2], "--coexist"])
handlers(f"after {rc}")
"""

#: The ``hwzswap`` program as ``python -m hwzswap`` runs it, here through runpy (so that
#: ``__main__`` is not hwzswap's); the handlers as the process ends.
PROGRAM = HANDLERS + """
import atexit, runpy, sys
atexit.register(handlers, "at exit")
sys.argv = ["hwzswap", "swap", "on", "--config", sys.argv[1], "--name", sys.argv[2],
            "--coexist"]
runpy.run_module("hwzswap", run_name="__main__")
"""


def _lines(p: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def test_the_entry_point_says_whether_swap_on_leaves_signals_ignored(
        state_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    prog = tmp_path / "hwzswap"  # the name the guess took for the hwzswap program
    prog.write_text(EMBEDDING)
    try:
        p = subprocess.run([sys.executable, str(prog), cfg, "en1"], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        before, after = _lines(p)
        assert after["tag"] == "after 0" and "en1: on: /dev/loop" in p.stdout, p.stdout
        assert {**after, "tag": ""} == {**before, "tag": ""}, (before, after)
        assert chain._server_alive(chain.read_state("en1"))

        program = tmp_path / "program.py"
        program.write_text(PROGRAM)
        p = subprocess.run([sys.executable, str(program), cfg, "en2"], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        (at_exit,) = _lines(p)
        assert at_exit == {"tag": "at exit", "SIGINT": "SIG_IGN", "SIGTERM": "SIG_IGN",
                           "SIGHUP": "SIG_IGN"}, at_exit
        assert chain._server_alive(chain.read_state("en2"))
    finally:
        for name in ("en1", "en2"):
            chain.swap_off(name, timeout=60)
    # the console script is that entry too
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hwzswap"] == "hwzswap.cli:entry"
