"""Setups that run at once: two ``swap on`` of one name, and two chains without ``--coexist``.
The loser is refused (exit 2, naming who holds the name or the setup) and never touches the
winner's chain or log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hwzswap.serve import chain

from serveutil import hwzswap_cli, small_config


def _swap_on(cfg: str, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hwzswap", "swap", "on", "--config", cfg,
                             "--name", name, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _both(a: subprocess.Popen, b: subprocess.Popen) -> list[tuple[int, str]]:
    out = []
    for p in (a, b):
        so, se = p.communicate(timeout=120)
        out.append((p.returncode, so + se))
    return out


def test_two_swap_on_of_one_name_at_once(state_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    res = _both(_swap_on(cfg, "lk1"), _swap_on(cfg, "lk1", "--coexist"))
    codes = sorted(rc for rc, _ in res)
    assert codes == [0, 2], res
    loser = next(text for rc, text in res if rc == 2)
    # "in use by pid P", or "by another process" when it read the lock file in the moment
    # between the winner's flock and its writing its pid there (seen under load)
    assert "lk1" in loser and ("is in use by " in loser or "already on" in loser), loser
    assert "Traceback" not in loser
    # the winner's chain is on, and its log is its own
    st = chain.read_state("lk1")
    assert st is not None and chain._server_alive(st), res
    assert st["loop"] in chain.active_swaps()
    status = hwzswap_cli("swap", "status", "--name", "lk1").stdout
    assert status.startswith("hwzswap swap lk1: on,"), status
    assert sorted(p.name for p in state_dir.glob("lk1.*.log")) == []
    assert hwzswap_cli("swap", "off", "--name", "lk1").returncode == 0
    assert not any(state_dir.glob("lk1*")), list(state_dir.iterdir())


def test_a_held_name_is_refused_and_left_alone(state_dir: Path, tmp_path: Path) -> None:
    """While another process holds chain lk2's lock (setting it up), `swap on` and `swap off`
    of lk2 are refused, naming it, and its log stays where it is."""
    cfg = small_config(tmp_path)
    fd = chain.lock_name("lk2", "a test holding it")
    state_dir.joinpath("lk2.log").write_text("the holder's log\n")
    try:
        p = hwzswap_cli("swap", "on", "--config", cfg, "--name", "lk2", "--coexist")
        assert p.returncode == 2, p.stderr
        assert ("hwzswap swap 'lk2' is in use by pid " in p.stderr
                and "(a test holding it)" in p.stderr), p.stderr
        off = hwzswap_cli("swap", "off", "--name", "lk2", "--timeout", "1")  # waits that long
        assert off.returncode == 1 and "is in use by pid" in off.stderr, off.stderr
        assert state_dir.joinpath("lk2.log").read_text() == "the holder's log\n"
        assert list(state_dir.glob("lk2.*.log")) == []
        assert chain.read_state("lk2") is None
    finally:
        chain._unlock(fd, chain.name_lock_path("lk2"))
        state_dir.joinpath("lk2.log").unlink()
    assert not chain.name_lock_path("lk2").exists()


def test_two_chains_without_coexist_at_once(state_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    res = _both(_swap_on(cfg, "lk3"), _swap_on(cfg, "lk4"))
    try:
        codes = sorted(rc for rc, _ in res)
        assert codes == [0, 2], res
        loser = next(text for rc, text in res if rc == 2)
        assert ("another swap device is being set up right now" in loser
                or "another swap device is active" in loser), loser
        on = [n for n in ("lk3", "lk4") if chain.read_state(n) is not None]
        assert len(on) == 1, res
    finally:
        for n in ("lk3", "lk4"):
            chain.swap_off(n, timeout=60, force=True)
    assert not chain._setup_lock_path().exists()


def test_setup_lock_held_refuses_without_coexist(state_dir: Path, tmp_path: Path) -> None:
    fd = chain.lock_setup("other", coexist=False)
    try:
        p = hwzswap_cli("swap", "on", "--config", small_config(tmp_path), "--name", "lk5")
        assert p.returncode == 2, p.stderr
        assert "another swap device is being set up right now (pid " in p.stderr, p.stderr
        assert "setting up chain 'other'" in p.stderr, p.stderr
        assert chain.read_state("lk5") is None and not state_dir.joinpath("lk5.log").exists()
    finally:
        chain._unlock(fd, chain._setup_lock_path())
