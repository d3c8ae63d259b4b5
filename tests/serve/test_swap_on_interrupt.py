"""Ctrl-C (or SIGTERM) during ``hwzswap swap on``: what it prints and its exit status match
what is left. A signal before swap is on undoes the setup (exit 128+N, nothing left); one
after it is on leaves it on, and `swap on` reports it on (exit 0). It printed "on" and
exited 130 with the chain up (5 of 8 tries at 0.43 s)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hwzswap.serve import chain

from serveutil import small_config


def _swap_on(cfg: str, name: str, env: dict[str, str] | None = None
             ) -> subprocess.Popen[str]:
    """``hwzswap swap on`` started as the user starts it, its output captured."""
    return subprocess.Popen([sys.executable, "-m", "hwzswap", "swap", "on", "--config", cfg,
                             "--name", name, "--coexist"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@contextlib.contextmanager
def _ended(p: subprocess.Popen[str]) -> Iterator[None]:
    """``p`` is killed on the way out if it still runs (a failed check must not leave it)."""
    try:
        yield
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait_for_step(p: subprocess.Popen[str], name: str, step: str, poll_s: float
                   ) -> dict[str, Any]:
    """The chain's state once it records ``step`` (``claim``: once it exists at all), waiting
    at most 60 s and failing if ``swap on`` ends first."""
    deadline = time.monotonic() + 60
    while not ((st := chain.read_state(name)) is not None
               and (step == "claim" or step in st.get("steps", []))):
        assert time.monotonic() < deadline and p.poll() is None, p.poll()
        time.sleep(poll_s)
    return st


def test_every_interrupt_leaves_what_swap_on_says(state_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    # at points through the setup, and from the moment the state file says swap is on to
    # about when `swap on` has exited (where it had read "ready" or was about to)
    # (`swap on` exits 25-40 ms after the state file records swapon here)
    for delay in (0.05, "claim", "mount", *(f"swapon+{ms / 1000}" for ms in range(0, 48, 4))):
        p = _swap_on(cfg, "si1")
        with _ended(p):
            if isinstance(delay, float):
                time.sleep(delay)
            else:
                step, _, after = delay.partition("+")
                _wait_for_step(p, "si1", step, poll_s=0.002)
                time.sleep(float(after or 0))
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
        st = chain.read_state("si1")
        if p.returncode == 0:
            assert "si1: on: /dev/loop" in out, (out, err)
            assert st is not None and chain._server_alive(st), (out, err)
            assert st["loop"] in chain.active_swaps()
            assert chain.swap_off("si1", timeout=60) and chain.read_state("si1") is None
        elif p.returncode == -signal.SIGINT:  # still starting Python: killed by it
            assert st is None and "on:" not in out, (st, out, err)
        elif err == "hwzswap: interrupted\n":  # while the program loaded: before the command
            assert p.returncode == 128 + signal.SIGINT and not out and st is None, (out, err)
        else:
            assert p.returncode == 128 + signal.SIGINT, (p.returncode, out, err)
            assert "on:" not in out and "nothing is left set up" in err, (out, err)
            assert st is None, (st, out, err)
    # which of the outcomes comes at each point depends on the machine's load: each one
    # is checked above


@pytest.mark.parametrize("step", ["mount", "loop"])
def test_an_interrupt_while_the_server_sets_up_undoes_it(state_dir: Path, tmp_path: Path,
                                                         step: str) -> None:
    """A signal while the server is at a step of the setup (held there by the tests' hook
    until a stop signal comes, so that no load can make the test miss the step): exit 130,
    nothing left (the loop device of "loop" included)."""
    p = _swap_on(small_config(tmp_path), "si2", {chain.PAUSE_AFTER_STEP_ENV: step})
    with _ended(p):
        st = _wait_for_step(p, "si2", step, poll_s=0.01)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert "on:" not in out and "nothing is left set up" in err, (out, err)
    assert chain.read_state("si2") is None and not chain.log_path("si2").exists()
    assert not chain._loops_of(st["file"], st.get("identity"))
