"""A ``swap off`` that stops waiting once it sent the server its SIGTERM (Ctrl-C, exit 130;
or past its --timeout, exit 1) leaves the server tearing the chain down on its own: that end
is still ``swap off``'s, so the server clears its exit record and log itself, and ``swap
status`` never says it "ended on its own". It left both, and status said just that."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serveutil import hwzswap_cli, small_config

from hwzswap.serve import chain


def _wait(what: str, cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.02)


def _sigterm_pending(pid: int) -> bool:
    """Whether a SIGTERM waits in process ``pid``'s pending set (/proc/PID/status ShdPnd for
    the process, SigPnd for its main thread): sent, not yet taken (the process is stopped)."""
    bit = 1 << (signal.SIGTERM - 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("ShdPnd", "SigPnd") and int(value.strip(), 16) & bit:
            return True
    return False


def _off_cut_short(name: str, state_dir: Path, args: tuple[str, ...], interrupt: bool
                   ) -> tuple[subprocess.CompletedProcess, dict]:
    """`swap off ARGS` of chain ``name`` while its server is stopped (SIGSTOP), so that it
    cannot end before `swap off` stops waiting; the server goes on (SIGCONT) after that."""
    st = chain.read_state(name)
    os.kill(st["pid"], signal.SIGSTOP)
    try:
        off = subprocess.Popen([sys.executable, "-m", "hwzswap", "swap", "off", "--name", name,
                                *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        try:
            _wait("swap off notes its end", chain.off_path(name).exists)
            # the SIGTERM is sent (pending in the stopped server): `swap off` is waiting for
            # the end now (a fixed sleep did not say it had got that far)
            _wait("swap off sends the SIGTERM", lambda: _sigterm_pending(st["pid"]))
            if interrupt:
                off.send_signal(signal.SIGINT)
            out, err = off.communicate(timeout=60)
        finally:
            if off.poll() is None:
                off.kill()
                off.wait()
        assert chain._server_alive(st)  # still stopped, the SIGTERM pending
    finally:
        os.kill(st["pid"], signal.SIGCONT)
    return subprocess.CompletedProcess(off.args, off.returncode, out, err), st


def _all_cleared(name: str, st: dict, state_dir: Path) -> None:
    _wait("the server ends", lambda: not chain._server_alive(st))
    left = sorted(p.name for p in state_dir.iterdir() if p.name.startswith(f"{name}."))
    assert left == [], left  # no .exit, .log, .off (nor state, socket, lock)
    text = hwzswap_cli("swap", "status", "--name", name)
    assert text.stdout == f"hwzswap swap {name}: off\n", text.stdout + text.stderr


def test_an_interrupted_swap_off_still_clears_up(state_dir: Path, tmp_path: Path) -> None:
    assert hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name",
                       "oi1").returncode == 0
    off, st = _off_cut_short("oi1", state_dir, (), interrupt=True)
    assert off.returncode == 130, off.stderr
    _all_cleared("oi1", st, state_dir)


def test_a_swap_off_past_its_timeout_still_clears_up(state_dir: Path, tmp_path: Path) -> None:
    assert hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name",
                       "oi2").returncode == 0
    off, st = _off_cut_short("oi2", state_dir, ("--timeout", "0.5"), interrupt=False)
    assert off.returncode == 1 and "did not finish tearing down within 0.5 s" in off.stderr
    _all_cleared("oi2", st, state_dir)


def test_a_failed_end_after_an_interrupted_swap_off_is_kept_and_said(
        state_dir: Path, tmp_path: Path) -> None:
    """Its teardown failed (the recording could not be written): the record and the log stay
    (they say what failed), and status says a `swap off` stopped it, not that it ended on
    its own; `swap off` then clears the record, keeping the log."""
    on = hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name", "oi3",
                     "--record", str(tmp_path / "new" / "r.hwzwl"))
    assert on.returncode == 0, on.stderr
    (tmp_path / "new").write_text("a file where the folder should be\n")
    off, st = _off_cut_short("oi3", state_dir, (), interrupt=True)
    assert off.returncode == 130, off.stderr
    _wait("the server ends", lambda: not chain._server_alive(st))
    _wait("its exit record", chain.exit_path("oi3").exists)
    text = hwzswap_cli("swap", "status", "--name", "oi3").stdout
    assert "stopped by a `swap off` of " in text and "that did not wait for its end" in text
    assert "ended on its own" not in text and "exit status 1; recording: " in text, text
    again = hwzswap_cli("swap", "off", "--name", "oi3")
    assert again.returncode == 0, again.stderr
    assert "stopped by an earlier `swap off` that did not wait for its end" in again.stdout
    assert f"server log kept: {chain.log_path('oi3')}" in again.stdout, again.stdout
    assert not chain.exit_path("oi3").exists() and not chain.off_path("oi3").exists()
    chain.log_path("oi3").unlink()
