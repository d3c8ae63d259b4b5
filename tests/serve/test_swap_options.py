"""``hwzswap swap``'s options are checked before anything starts: a priority swapon would not
take as given, a thread count that only costs memory, and an option of another action."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.serve import chain

from serveutil import hwzswap_cli, small_config


@pytest.mark.parametrize("args, says", [
    # -5 became the kernel's automatic -2; 40000 was refused by swapon after the server started
    (["--priority", "-5"], "a swap priority is 0 to 32767"),
    (["--priority", "40000"], "a swap priority is 0 to 32767"),
    # 2000 held 2.2 GB locked; 100000 hung swap on
    (["--threads", "65"], "at most 64"),
    (["--threads", "0"], "at least 1"),
    # they did nothing for `on`
    (["--timeout", "3"], "--timeout does nothing for `swap on`"),
    (["--force", "--json"], "--force, --json do nothing for `swap on`"),
])
def test_swap_on_refuses_before_a_server_starts(state_dir: Path, tmp_path: Path, args,
                                                says) -> None:
    p = hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name", "op1",
                    "--coexist", *args)
    assert p.returncode == 2 and says in p.stderr, p.stderr
    assert not state_dir.exists() or not any(state_dir.iterdir())  # not even a log


@pytest.mark.parametrize("action, args, says", [
    ("off", ["--priority", "0"], "--priority does nothing for `swap off`"),
    ("off", ["--json"], "--json does nothing for `swap off`"),
    ("status", ["--force"], "--force does nothing for `swap status`"),
    ("status", ["--record", "x.json"], "--record does nothing for `swap status`"),
])
def test_off_and_status_refuse_options_of_other_actions(state_dir: Path, action, args,
                                                        says) -> None:
    p = hwzswap_cli("swap", action, "--name", "op2", *args)
    assert p.returncode == 2 and says in p.stderr, p.stderr


def test_the_edges_are_taken_and_the_library_checks_too(state_dir: Path,
                                                        tmp_path: Path) -> None:
    # state_dir: were the checks gone, the chain would start under it and be torn down
    assert chain.swap_priority("0") == 0 and chain.swap_priority("32767") == 32767
    assert chain.fuse_threads("64") == 64
    with pytest.raises(chain.ChainError, match="priority: a swap priority is 0 to 32767"):
        chain.swap_on(small_config(tmp_path), name="op3", priority=-1)
    with pytest.raises(chain.ChainError, match="threads: at most 64"):
        chain.swap_on(small_config(tmp_path), name="op3", threads=2000)
    assert not state_dir.exists() or not any(state_dir.iterdir())
