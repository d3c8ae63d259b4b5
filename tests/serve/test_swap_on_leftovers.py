"""``hwzswap swap on`` after a dead chain, and when its undoing fails: what it prints and its
exit status match what is left, an earlier server's kept log survives, and the caller's
signal handlers come back. Called in-process (``cli.main``), as a program embedding the CLI
would; a failure of the undoing is injected by wrapping the real :func:`chain.swap_off`."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from hwzswap import cli
from hwzswap.serve import chain

from serveutil import small_config

STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _dead_state(name: str) -> None:
    """The state file of a dead server (this pid with another start time) that set nothing
    up yet."""
    chain.STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    chain.state_path(name).write_text(json.dumps(
        {"name": name, "pid": os.getpid(), "pid_start": "1", "steps": []}))


class _Off:
    """Replaces :func:`chain.swap_off` while in a ``with``: each call first sends this
    process ``signum`` (if any), then runs the real one, then (``fail``) raises as a
    teardown that left something would."""

    def __init__(self, signum: int | None = None, fail: bool = False) -> None:
        self.signum, self.fail, self.real, self.calls = signum, fail, chain.swap_off, 0

    def __call__(self, name: str, *args, **kw) -> list[str]:
        self.calls += 1
        if self.signum is not None:
            os.kill(os.getpid(), self.signum)
        done = self.real(name, *args, **kw)
        if self.fail:
            raise chain.ChainError(f"hwzswap swap off {name}: losetup -d /dev/loop99 failed "
                                   "(1): busy")
        return done

    def __enter__(self) -> _Off:
        chain.swap_off = self
        return self

    def __exit__(self, *exc: object) -> None:
        chain.swap_off = self.real


def _handlers() -> dict[int, object]:
    return {sig: signal.getsignal(sig) for sig in STOPS}


def test_ctrl_c_while_a_dead_chain_is_undone_is_held_until_it_is(
        state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It said "nothing is left set up" and exited 130 with the leftovers still there."""
    cfg = small_config(tmp_path)
    before = _handlers()
    _dead_state("lo1")
    with _Off(signal.SIGINT) as off:
        rc = cli.main(["swap", "on", "--config", cfg, "--name", "lo1", "--coexist"])
    err = capsys.readouterr().err
    assert off.calls == 1 and rc == 130 and "nothing is left set up" in err, err
    assert chain.read_state("lo1") is None
    assert _handlers() == before
    # when the leftovers cannot all be undone, it does not say nothing is left
    _dead_state("lo1")
    with _Off(signal.SIGINT, fail=True):
        rc = cli.main(["swap", "on", "--config", cfg, "--name", "lo1", "--coexist"])
    err = capsys.readouterr().err
    assert rc != 130 and "nothing is left" not in err and "losetup -d" in err, err
    assert _handlers() == before


def test_an_earlier_servers_kept_log_is_moved_aside_not_emptied(
        state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`swap off` named the dead server's log as kept; the next `swap on` opened it for its
    own server, emptying it."""
    _dead_state("lo2")
    chain.log_path("lo2").write_text("the dead server's last words\n")
    st = chain.swap_on(small_config(tmp_path), name="lo2", coexist=True)
    try:
        err = capsys.readouterr().err
        kept = [p for p in state_dir.glob("lo2.*.log")]
        assert len(kept) == 1 and f"is now {kept[0]}" in err, (kept, err)
        assert kept[0].read_text() == "the dead server's last words\n"
        assert "last words" not in Path(st["log"]).read_text()
    finally:
        chain.swap_off("lo2", timeout=60)
    assert kept[0].exists()


def test_a_failed_start_that_leaves_something_exits_1_naming_it(
        state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2 says "refused, nothing set up": it came also when the undoing after Ctrl-C or
    after a server that did not come up left something."""
    before = _handlers()
    # Ctrl-C while the server is held at "mount" (the tests' hook), then the undoing fails
    monkeypatch.setenv(chain.PAUSE_AFTER_STEP_ENV, "mount")

    def ctrl_c_at_mount() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = chain.read_state("lo3")
            if st is not None and "mount" in st["steps"]:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    t = threading.Thread(target=ctrl_c_at_mount)
    t.start()
    with _Off(fail=True) as off:
        rc = cli.main(["swap", "on", "--config", small_config(tmp_path), "--name", "lo3",
                       "--coexist"])
    t.join()
    err = capsys.readouterr().err
    assert off.calls == 1 and rc == 1, err
    assert "stopped by SIGINT before swap was on, but not all of it was undone" in err, err
    assert "losetup -d /dev/loop99" in err and "nothing is left" not in err, err
    assert _handlers() == before
    monkeypatch.delenv(chain.PAUSE_AFTER_STEP_ENV)
    # a server that refused (a swap file in a folder anyone may replace it in, checked by
    # the server), then the undoing fails
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    data = yaml.safe_load(Path(small_config(tmp_path)).read_text())
    data["swap"]["path"] = str(shared / "swapfile")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with _Off(fail=True) as off:
        rc = cli.main(["swap", "on", "--config", str(bad), "--name", "lo4", "--coexist"])
    err = capsys.readouterr().err
    assert off.calls == 1 and rc == 1, err
    assert "did not come up" in err and "not all of it was undone" in err, err
    assert _handlers() == before


def test_swap_on_gives_the_callers_signal_handlers_back(
        state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """They stayed ignored after a success, and `swap on`'s own after a refusal."""
    before = _handlers()
    bad = small_config(tmp_path, exclusive_loads=True)
    assert cli.main(["swap", "on", "--config", bad, "--name", "lo5", "--coexist"]) == 2
    assert "exclusive_loads" in capsys.readouterr().err
    assert _handlers() == before
    try:
        rc = cli.main(["swap", "on", "--config", small_config(tmp_path), "--name", "lo5",
                       "--coexist"])
        assert rc == 0 and "lo5: on: /dev/loop" in capsys.readouterr().out
        assert _handlers() == before
    finally:
        chain.swap_off("lo5", timeout=60)
