"""``hwzswap capture`` ends what it started and fails loudly when the capture is incomplete, on
real programs: a descendant that left the process group (``setsid``) is resumed and ended (it
was left stopped for ever); the target dying while its pages are read, and a page file or
report that cannot be written (a file size limit: a real write error), fail with a clear error,
exit 1, and leave no partial file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hwzswap.bench import capture as cap


def _gone_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone_or_zombie(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("children", [True, False])
def test_a_descendant_that_left_the_group_is_ended(tmp_path: Path, children: bool) -> None:
    pidfile = tmp_path / "escaped.pid"
    script = (f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 37' & "
              f"while [ ! -s {pidfile} ]; do sleep 0.01; done; echo ready; sleep 38")
    escaped = None
    try:
        rep = cap.capture(["sh", "-c", script], tmp_path / "t.pages", wait_line="ready",
                          include_children=children, timeout=20)
        escaped = int(pidfile.read_text())
        assert (escaped in rep.pids) == children  # stopped and read only with --children
        assert _wait_gone(escaped), f"pid {escaped} left behind: {cap._proc_state(escaped)!r}"
    finally:
        if escaped is None and pidfile.exists():
            escaped = int(pidfile.read_text())
        if escaped is not None and not _gone_or_zombie(escaped):
            os.kill(escaped, signal.SIGKILL)


def test_a_vfork_parent_of_a_stopped_child_counts_as_stopped() -> None:
    """SIGSTOP can land while a shell is in vfork (dash, posix_spawn): the child stops before
    its exec and the parent waits in state D for it, never reaching T; the capture gave up
    after 10 s ("did not stop"). Catch the shell in that state and stop its tree."""
    import subprocess

    p = subprocess.Popen(["sh", "-c", "while :; do /bin/true; done"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "never caught the shell inside vfork"
            os.killpg(p.pid, signal.SIGSTOP)
            time.sleep(0.002)
            if cap._proc_state(p.pid) == "D":
                break
            os.killpg(p.pid, signal.SIGCONT)
        t0 = time.monotonic()
        assert cap._stop_tree(p.pid, False, t0 + 5) == [p.pid]
        assert time.monotonic() - t0 < 2
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
