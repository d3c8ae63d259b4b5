"""``hwzswap capture``'s handling of the command's output, on real programs: --wait-line reads
stdout through a bounded buffer (``-- yes`` ran 47 s at 11 GB and grew a file in /tmp),
--timeout bounds it, a line split across reads still matches, and a line held back in a
buffer gets a hint."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hwzswap.bench import capture as cap
from hwzswap.errors import CaptureError


def _peak_rss_kib(pid: int, done: threading.Event, out: list[int]) -> None:
    """The highest ``VmHWM`` of process ``pid`` seen until ``done`` or its exit (KiB). The
    high-water mark of its own address space since its exec: ``ru_maxrss`` from ``wait4``
    would also hold what the process had before its exec, a copy of this test process's."""
    while not done.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        out.append(int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.02)


def test_endless_output_is_read_in_bounded_memory_and_the_timeout_holds(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "capture", "-o", str(tmp_path / "y.pages"),
         "--wait-line", "never", "--timeout", "2", "--", "yes"],
        env=dict(os.environ, TMPDIR=str(tmpdir)), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done, rss = threading.Event(), []
    watch = threading.Thread(target=_peak_rss_kib, args=(p.pid, done, rss), daemon=True)
    watch.start()
    try:
        out, err = p.communicate(timeout=120)
    finally:
        done.set()
        if p.poll() is None:
            p.kill()
            p.wait()
    watch.join()
    elapsed = time.monotonic() - t0
    assert p.returncode == 2, err
    assert b"gave up after 2 s waiting for the line 'never'" in err and not out
    assert elapsed < 30  # 2 s of waiting, the interpreter's start and the cleanup (not 47 s)
    assert rss and max(rss) < 300 * 1024  # KiB: `yes` writes GB/s, none of it is kept
    assert list(tmpdir.iterdir()) == []  # and nothing went to /tmp


def test_a_line_split_across_reads_matches(tmp_path: Path) -> None:
    prog = ("import sys, time; sys.stdout.write('a' * 200000 + 'MID-'); sys.stdout.flush(); "
            "time.sleep(0.3); sys.stdout.write('WORK\\n'); sys.stdout.flush(); "
            "x = bytearray(1 << 20); time.sleep(30)")
    rep = cap.capture([sys.executable, "-c", prog], tmp_path / "s.pages",
                      wait_line="MID-WORK", timeout=20)
    assert rep.trigger == "line" and rep.waited_s >= 0.3


def test_output_pipes_numbered_past_1024_are_read(tmp_path: Path, fds_past_1024: None) -> None:
    """A process with many files open (RLIMIT_NOFILE raised) gets pipes numbered 1024 and up,
    which select(2) cannot watch: the line is still seen."""
    prog = "import time; print('ready', flush=True); x = bytearray(1 << 20); time.sleep(30)"
    rep = cap.capture([sys.executable, "-c", prog], tmp_path / "f.pages",
                      wait_line="ready", timeout=20)
    assert rep.trigger == "line"


def test_a_python_line_printed_without_flush_is_seen(tmp_path: Path) -> None:
    """stdout is a pipe (block-buffered); capture runs the command with PYTHONUNBUFFERED=1."""
    prog = "import time; print('ready'); x = bytearray(1 << 20); time.sleep(30)"
    rep = cap.capture([sys.executable, "-c", prog], tmp_path / "p.pages", wait_line="ready",
                      timeout=20)
    assert rep.trigger == "line"


def test_a_buffered_line_gives_up_with_a_hint(tmp_path: Path) -> None:
    # a stream of its own, block-buffered whatever PYTHONUNBUFFERED says (as C stdio is)
    prog = ("import time; f = open(1, 'w', buffering=8192, closefd=False); f.write('ready\\n');"
            " time.sleep(30)")
    with pytest.raises(CaptureError) as exc:
        cap.capture([sys.executable, "-c", prog], tmp_path / "b.pages", wait_line="ready",
                    timeout=1)
    msg = str(exc.value)
    assert "wrote 0 bytes to stdout" in msg and "stdbuf -oL" in msg and "flush" in msg
    assert not (tmp_path / "b.pages").exists()


def test_a_wait_line_written_a_few_bytes_at_a_time_matches() -> None:
    """The line in three or more writes shorter than it: the bytes kept between reads must be
    the whole window while it is shorter than the needle (only its last byte was kept, so
    ``R``, ``E``, ``A`` ... never made ``READY``)."""
    r, w = os.pipe()
    drain = cap._Drain(r, 0, b"READY\n")
    drain.start()
    try:
        for part in (b"R", b"E", b"A", b"D", b"Y", b"\n"):
            os.write(w, part)
            time.sleep(0.08)  # each part its own read
        assert drain.matched.wait(10)
    finally:
        os.close(w)
        drain.halt()
