"""``hwzswap capture`` told to stop by SIGTERM or SIGHUP ends as on Ctrl-C: a real capture
process, a real program under capture and real signals; afterwards the program is gone and no
partial page file or temporary directory is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hwzswap.fileio import PARTIAL

# A program with a few MB of compressible, not trivial data (zstd at a high level takes a few
# seconds over it: the window in which a capture is writing its page file). Writes its pid,
# prints READY, sleeps.
HOG = textwrap.dedent(
    """
    import os, random, sys, time
    n = int(sys.argv[2]) << 20
    rng = random.Random(1)
    words = [bytes(rng.getrandbits(8) for _ in range(rng.randint(3, 12))) for _ in range(4096)]
    buf = bytearray()
    while len(buf) < n:
        buf += b" ".join(rng.choices(words, k=4096))
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    print("READY", flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` is still the program under capture (not gone, not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline and state[state.rindex(b")") + 2:][:1] != b"Z"


def _wait_for(what, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _run_and_signal(tmp_path: Path, sig: int, args: list[str], out_name: str,
                    when_partial: bool) -> None:
    hog = tmp_path / "hog_under_capture.py"
    hog.write_text(HOG)
    pidfile = tmp_path / "pid"
    work = tmp_path / "out"
    work.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = work / out_name
    cap = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "capture", "-o", str(out), *args, "--",
         sys.executable, str(hog), str(pidfile), "4"],
        env=dict(os.environ, TMPDIR=str(tmpdir)), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child = None
    try:
        _wait_for(pidfile.exists)
        child = int(pidfile.read_text())
        assert _alive(child, hog.name)
        assert list(tmpdir.iterdir()) == []  # its output goes through pipes, nothing in /tmp
        if when_partial:
            _wait_for(lambda: any(p.name.endswith(PARTIAL) for p in work.iterdir()))
        cap.send_signal(sig)
        _, err = cap.communicate(timeout=30)
        assert cap.returncode == 128 + sig, err
        assert signal.Signals(sig).name.encode() in err
        _wait_for(lambda: not _alive(child, hog.name), timeout=10)
        assert list(work.iterdir()) == []  # neither the page file nor a partial one
        assert list(tmpdir.iterdir()) == []  # nor anything in TMPDIR
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
        if child is not None and _alive(child, hog.name):
            os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_while_waiting_ends_the_running_command(tmp_path: Path, sig: int) -> None:
    # the command runs (not stopped yet): before the fix SIGHUP left it running as an orphan
    _run_and_signal(tmp_path, sig, ["--wait-line", "NEVER PRINTED", "--timeout", "60"],
                    "e.pages", when_partial=False)


def test_sigterm_while_writing_ends_the_stopped_command_and_removes_the_partial_file(
        tmp_path: Path) -> None:
    # the command is stopped (SIGSTOP) and the page file half written: before the fix the
    # command stayed stopped for ever and the .partial file and temporary directory stayed
    _run_and_signal(tmp_path, signal.SIGTERM, ["--wait-line", "READY", "--zstd-level", "19"],
                    "e.pages.zst", when_partial=True)


def test_an_ignored_sighup_stays_ignored(tmp_path: Path) -> None:
    # `nohup hwzswap capture ...`: the hangup is ignored, so the capture goes on and writes
    hog = tmp_path / "hog_under_capture.py"
    hog.write_text(HOG)
    pidfile = tmp_path / "pid"
    out = tmp_path / "e.pages"
    cap = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "capture", "-o", str(out), "--wait-line", "NEVER",
         "--wait-seconds", "3", "--", sys.executable, str(hog), str(pidfile), "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        _wait_for(pidfile.exists)
        assert cap.poll() is None  # still waiting (3 s): the hangup comes mid-capture
        cap.send_signal(signal.SIGHUP)
        _, err = cap.communicate(timeout=30)
        assert cap.returncode == 0, err
        assert out.stat().st_size > 0
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()


def test_the_callers_signal_handlers_come_back(tmp_path: Path) -> None:
    from hwzswap.bench.capture import capture

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    def mine(signum, frame):  # a caller's own handler: not replaced, and there afterwards
        pass

    signal.signal(signal.SIGHUP, mine)
    try:
        report = capture([sys.executable, "-c", "import time; x = bytearray(1 << 20); "
                          "print('go', flush=True); time.sleep(30)"],
                         tmp_path / "c.pages", wait_line="go")
        assert report.pages > 0
        assert signal.getsignal(signal.SIGHUP) is mine
        assert signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_a_signal_during_the_cleanup_waits_for_its_end(tmp_path: Path) -> None:
    # the handler of a real SIGTERM, in this process: disarmed (the command's cleanup), it
    # only records; once the cleanup is done the capture ends with it, saying the file is whole
    from hwzswap.bench.capture import CaptureSignalled, _EndSignals

    before = signal.getsignal(signal.SIGTERM)
    assert before is signal.SIG_DFL  # pytest leaves SIGTERM at its default action
    with _EndSignals() as ends:
        ends.arm()
        ends.disarm()
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes run: the Python-level handler has its chance
            time.sleep(0)
        assert ends.signum == signal.SIGTERM  # recorded, nothing raised
        with pytest.raises(CaptureSignalled) as exc:
            ends.raise_pending(tmp_path / "done.pages")
        assert exc.value.signum == signal.SIGTERM and exc.value.written == tmp_path / "done.pages"
        os.kill(os.getpid(), signal.SIGTERM)  # a second one is only recorded
        time.sleep(0.01)
        ends.raise_pending(tmp_path / "done.pages")  # already raised once: nothing
    assert signal.getsignal(signal.SIGTERM) is before
