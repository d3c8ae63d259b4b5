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
        # a race to catch, a few ms wide: seconds on an idle machine, longer under load
        deadline = time.monotonic() + 60
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


BIG = ("import os, sys, time; x = bytearray(os.urandom(8 << 20)); "
       "open(sys.argv[1], 'w').write(str(os.getpid())); print('ready', flush=True); "
       "time.sleep(60)")


def test_the_target_killed_during_the_read_fails_and_leaves_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Only 0 pages used to fail: a target killed (OOM killer) mid-read gave a partial page
    file and exit 0. Here it is really SIGKILLed once the first chunk is written."""
    import sys

    from hwzswap.cli import main

    pidfile = tmp_path / "pid"
    real_write = cap._PageWriter.write

    def write_then_kill(self: cap._PageWriter, chunk) -> None:  # type: ignore[no-untyped-def]
        real_write(self, chunk)
        pid = int(pidfile.read_text())
        if not _gone_or_zombie(pid):
            os.kill(pid, signal.SIGKILL)
            assert _wait_gone(pid)  # a zombie: its memory is gone, later reads fail

    monkeypatch.setattr(cap._PageWriter, "write", write_then_kill)
    out = tmp_path / "k.pages"
    rc = main(["capture", "-o", str(out), "--wait-line", "ready", "--timeout", "20", "--",
               sys.executable, "-c", BIG, str(pidfile)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "ended while its pages were being read" in err and "OOM killer" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pid"]  # no page file, no partial


# The CLI in a process of its own with a file size limit (SIGXFSZ ignored, so a write past it
# fails with EFBIG, as on a full disk): from the start (argv[1] "pages") or only once the page
# file is written (argv[1] "report").
LIMITED = """
import resource, signal, sys
from hwzswap.bench import capture as cap
from hwzswap.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
def limit(size=16384):
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
if sys.argv[1] == "pages":
    limit()
else:
    real = cap.capture
    def capture_then_limit(*a, **k):
        rep = real(*a, **k)
        limit(100)  # the report is larger
        return rep
    cap.capture = capture_then_limit
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("when", ["pages", "report"])
def test_an_output_that_cannot_be_written_is_a_clear_error(tmp_path: Path, when: str) -> None:
    import subprocess
    import sys

    out, report = tmp_path / "o.pages", tmp_path / "r.json"
    pidfile = tmp_path / "pid"
    res = subprocess.run(
        [sys.executable, "-c", LIMITED, when, "capture", "-o", str(out), "--report",
         str(report), "--wait-line", "ready", "--timeout", "20", "--", sys.executable, "-c",
         BIG.replace("8 << 20", "1 << 20"), str(pidfile)],
        capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "File too large" in res.stderr
    if when == "pages":
        assert f"cannot write the page file {out}" in res.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pid"]
    else:
        assert f"cannot write the report {report}" in res.stderr and "kept" in res.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["o.pages", "pid"]
        assert out.stat().st_size >= 256 * 4096  # the whole megabyte at least
    assert _wait_gone(int(pidfile.read_text()))
