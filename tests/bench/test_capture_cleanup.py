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
