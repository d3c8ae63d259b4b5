"""``hwzswap swap status`` says what went wrong and what to do: a server that ended on its own
(a signal `swap off` did not send, a failure while serving) leaves the chain off but its exit
record and log behind, until `swap off` (or the next `swap on`) clears them; status said only
"off". A dead server's log is named too. (A failed swapoff: test_swap_off_reports.)"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from hwzswap.serve import chain

from serveutil import hwzswap_cli, small_config


def _status(name: str) -> tuple[str, dict]:
    text = hwzswap_cli("swap", "status", "--name", name)
    js = hwzswap_cli("swap", "status", "--name", name, "--json")
    assert text.returncode == 0 and js.returncode == 0, text.stderr + js.stderr
    return text.stdout, json.loads(js.stdout)


def _ends_on_its_own(name: str, sig: int = signal.SIGTERM) -> dict:
    """Send the server of chain ``name`` ``sig`` (not through `swap off`) and wait until it
    is gone; its state as it was."""
    st = chain.read_state(name)
    os.kill(st["pid"], sig)
    deadline = time.monotonic() + 60
    while chain._server_alive(st):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return st


def test_a_server_that_ended_on_its_own_is_reported_until_off_clears_it(
        state_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    # a clean end: the server undid the chain itself
    assert hwzswap_cli("swap", "on", "--config", cfg, "--name", "st1").returncode == 0
    st = _ends_on_its_own("st1")
    log = chain.log_path("st1")
    text, js = _status("st1")
    assert text.startswith("hwzswap swap st1: off\n"), text
    assert f"its last server (pid {st['pid']}) ended on its own" in text, text
    assert "exit status 0" in text and f"server log: {log}" in text, text
    assert "`hwzswap swap off --name st1` clears this record (and the log)" in text, text
    assert not js["on"] and js["ended"]["rc"] == 0 and js["ended"]["pid"] == st["pid"], js
    assert js["log"] == str(log)
    off = hwzswap_cli("swap", "off", "--name", "st1")
    assert off.returncode == 0, off.stderr
    assert "was not on; the record of its last server" in off.stdout, off.stdout
    assert f"its log removed ({log})" in off.stdout, off.stdout
    assert not log.exists() and not chain.exit_path("st1").exists()
    assert hwzswap_cli("swap", "status", "--name", "st1").stdout == "hwzswap swap st1: off\n"
    # or the next `swap on` clears them: the log of a clean end is not kept aside
    assert hwzswap_cli("swap", "on", "--config", cfg, "--name", "st1").returncode == 0
    _ends_on_its_own("st1")
    on = hwzswap_cli("swap", "on", "--config", cfg, "--name", "st1")
    assert on.returncode == 0 and "is now" not in on.stderr, on.stderr
    assert not list(state_dir.glob("st1.*.log")) and "ended" not in _status("st1")[1]
    assert hwzswap_cli("swap", "off", "--name", "st1").returncode == 0

    # an end that failed (its recording could not be written): what failed is said, and
    # the log, which says it too, is kept
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be\n")
    on = hwzswap_cli("swap", "on", "--config", cfg, "--name", "st2", "--record",
                     str(tmp_path / "new" / "r.json"))
    assert on.returncode == 0, on.stderr
    (tmp_path / "new").write_text("now a file where the folder should be\n")
    _ends_on_its_own("st2", signal.SIGHUP)
    log = chain.log_path("st2")
    text, js = _status("st2")
    assert "ended on its own" in text and "exit status 1; recording: " in text, text
    assert "(the log is kept: it says what failed)" in text, text
    assert js["ended"]["rc"] == 1 and js["ended"]["problems"][0].startswith("recording: ")
    off = hwzswap_cli("swap", "off", "--name", "st2")
    assert off.returncode == 0 and f"server log kept: {log}" in off.stdout, off.stdout
    assert log.exists() and not chain.exit_path("st2").exists()
    text, js = _status("st2")
    assert f"the log of an earlier server is kept: {log}" in text and js["log"] == str(log)


def test_a_dead_servers_status_names_its_log(state_dir: Path, tmp_path: Path) -> None:
    assert hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name",
                       "st3").returncode == 0
    _ends_on_its_own("st3", signal.SIGKILL)
    text, js = _status("st3")
    assert "DEAD: run `hwzswap swap off --name st3`" in text, text
    assert f"server log: {chain.log_path('st3')}" in text, text
    assert js["on"] and not js["server_alive"] and js["log"] == str(chain.log_path("st3"))
    assert "ended" not in js  # a killed server wrote no exit record
    off = hwzswap_cli("swap", "off", "--name", "st3")
    assert off.returncode == 0, off.stderr
