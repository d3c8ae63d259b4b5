"""hwzswap capture on real processes the tests start: which pages it copies, errors, cleanup."""

from __future__ import annotations

import os
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hwzswap.bench import capture as cap
from hwzswap.bench.corpus import describe, load_pages
from hwzswap.cli import main
from hwzswap.errors import CaptureError, HwzswapError
from hwzswap.fileio import PARTIAL

PAGE = 4096
NPAT = 64


def _pattern(tag: str, i: int) -> bytes:
    unit = f"HWZSWAP-{tag}-{i:04d}|".encode()
    return (unit * (PAGE // len(unit) + 1))[:PAGE]


# The program under capture. It maps (all page aligned):
#  - NPAT private anonymous pages, each with a distinct pattern         -> must be captured
#  - 8 pages of one byte value and 8 of one repeated 8-byte word        -> captured, same-filled
#  - shared anonymous pages with a marker                               -> skipped (rw-s)
#  - a private writable file mapping: 4 pages written (COW, anonymous)  -> captured
#    and 4 pages only read (page cache)                                 -> skipped (file page)
# then writes its pid to PIDFILE, prints "ready" and sleeps.
CHILD = textwrap.dedent(
    """
    import mmap, os, sys, time
    PAGE = 4096
    def pat(tag, i):
        unit = f"HWZSWAP-{tag}-{i:04d}|".encode()
        return (unit * (PAGE // len(unit) + 1))[:PAGE]
    priv = mmap.mmap(-1, NPAT * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(NPAT):
        priv[i * PAGE:(i + 1) * PAGE] = pat("PRIV", i)
    same = mmap.mmap(-1, 16 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    same[:8 * PAGE] = b"\\x5a" * (8 * PAGE)
    same[8 * PAGE:] = b"\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08" * (PAGE)
    shared = mmap.mmap(-1, 8 * PAGE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    for i in range(8):
        shared[i * PAGE:(i + 1) * PAGE] = pat("SHARED", i)
    with open(FILE, "r+b") as f:
        fmap = mmap.mmap(f.fileno(), 8 * PAGE, flags=mmap.MAP_PRIVATE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE)
    for i in range(8):
        fmap[i * PAGE]  # fault every page in (page cache)
    for i in range(4):
        fmap[i * PAGE:(i + 1) * PAGE] = pat("COW", i)
    with open(PIDFILE, "w") as f:
        f.write(str(os.getpid()))
    print("ready", flush=True)
    time.sleep(60)
    """
)


def _child_program(tmp_path: Path) -> tuple[str, Path]:
    data = tmp_path / "mapped.bin"
    data.write_bytes(b"".join(_pattern("FILE", i) for i in range(8)))
    pidfile = tmp_path / "child.pid"
    prog = f"NPAT = {NPAT}\nFILE = {str(data)!r}\nPIDFILE = {str(pidfile)!r}\n" + CHILD
    return prog, pidfile


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # still in the table: only acceptable as a zombie awaiting a parent other than us
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return chr(stat[stat.rindex(b")") + 2]) == "Z"


def _page_set(pages: np.ndarray) -> set[bytes]:
    return {p.tobytes() for p in pages}


def test_capture_copies_present_private_anonymous_pages(tmp_path: Path) -> None:
    prog, pidfile = _child_program(tmp_path)
    out = tmp_path / "cap.pages"
    rep = cap.capture([sys.executable, "-c", prog], out, wait_line="ready", timeout=30)
    pages = load_pages(out)
    got = _page_set(pages)
    assert rep.pages == pages.shape[0] == rep.anon_pages  # no max_pages: nothing thinned
    assert rep.pids == [rep.pid] and rep.trigger == "line"
    assert all(_pattern("PRIV", i) in got for i in range(NPAT))
    assert all(_pattern("COW", i) in got for i in range(4))  # written private file pages
    assert not any(_pattern("FILE", i) in got for i in range(8))  # read-only page cache
    assert not any(_pattern("SHARED", i) in got for i in range(8))  # MAP_SHARED
    assert bytes([0x5A]) * PAGE in got
    # the report's counts are the file's counts
    d = describe(pages)
    assert rep.zero_pages == d["zero_pages"]
    assert rep.same_filled_pages == d["same_filled_pages"] >= 16
    assert rep.rss_kb > 0 and rep.mappings > 0 and rep.unreadable_pages == 0
    assert _gone(int(pidfile.read_text()))


def test_zst_output_and_max_pages_spread(tmp_path: Path) -> None:
    prog, _ = _child_program(tmp_path)
    out = tmp_path / "new" / "cap.pages.zst"  # the missing directory is made
    umask = os.umask(0o022)
    try:
        rep = cap.capture([sys.executable, "-c", prog], out, wait_line="ready", max_pages=40,
                          timeout=30, zstd_level=1)
    finally:
        os.umask(umask)
    pages = load_pages(out)
    assert pages.shape == (40, PAGE) and rep.pages == 40 < rep.anon_pages
    assert list(out.parent.iterdir()) == [out]  # no temporary file left
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # as open() makes it, not mkstemp's 0600


def test_a_writer_that_cannot_start_leaves_no_file(tmp_path: Path) -> None:
    """A zstd level the library refuses fails as the page file is opened: the temporary file
    goes with it, the previous output stays, and the paused program is ended."""
    prog, pidfile = _child_program(tmp_path)
    out = tmp_path / "cap.pages.zst"
    out.write_bytes(b"previous")
    with pytest.raises(ValueError, match="level"):
        cap.capture([sys.executable, "-c", prog], out, wait_line="ready", timeout=30,
                     zstd_level=99)
    assert out.read_bytes() == b"previous" and not list(tmp_path.glob(f"*{PARTIAL}*"))
    assert _gone(int(pidfile.read_text()))


def test_children_are_captured_only_when_asked(tmp_path: Path) -> None:
    prog, pidfile = _child_program(tmp_path)
    script = tmp_path / "child.py"
    script.write_text(prog)
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, {str(script)!r}])\n"
        "time.sleep(60)\n"
    )
    marker = _pattern("PRIV", 7)
    # the child inherits stdout, so its "ready" is the trigger
    rep = cap.capture([sys.executable, "-c", parent], tmp_path / "tree.pages",
                      wait_line="ready", include_children=True, timeout=30)
    assert marker in _page_set(load_pages(tmp_path / "tree.pages"))
    assert len(rep.pids) == 2 and rep.pids[0] == rep.pid
    assert _gone(int(pidfile.read_text())) and _gone(rep.pids[1])

    only = cap.capture([sys.executable, "-c", parent], tmp_path / "root.pages",
                       wait_line="ready", timeout=30)
    assert only.pids == [only.pid]
    assert marker not in _page_set(load_pages(tmp_path / "root.pages"))


def test_nonexistent_command(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="command not found: '/nonexistent/prog'"):
        cap.capture(["/nonexistent/prog"], tmp_path / "x.pages", wait_seconds=0.1)
    assert not list(tmp_path.iterdir())


def test_command_exiting_early_reports_status_and_stderr(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"(?s)exited \(status 1\).*boom-from-child"):
        cap.capture([sys.executable, "-c", "import sys; sys.exit('boom-from-child')"],
                    tmp_path / "x.pages", wait_seconds=30)
    assert not list(tmp_path.iterdir())


def test_timeout_ends_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = (
        "import os, subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{g.pid}}')\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(CaptureError, match=r"gave up after 1 s waiting for RSS 100000"):
        cap.capture([sys.executable, "-c", prog], tmp_path / "x.pages", wait_rss_mb=100000,
                    include_children=True, timeout=1)
    leader, grandchild = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5  # the grandchild's reaper (init) may take a moment
    while not (_gone(leader) and _gone(grandchild)):
        assert time.monotonic() < deadline, "capture left its child running"
        time.sleep(0.05)
    assert not (tmp_path / "x.pages").exists()


def test_wait_line_timeout(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="the line 'never printed' on stdout"):
        cap.capture([sys.executable, "-c", "import time; print('hello', flush=True); "
                     "time.sleep(60)"], tmp_path / "x.pages", wait_line="never printed",
                    timeout=0.5)


@pytest.mark.parametrize(
    ("command", "kwargs", "message"),
    [
        ([], {}, "no command given"),
        (["true"], {"max_pages": 0}, "max_pages must be at least 1"),
        (["true"], {"wait_seconds": -1.0}, "wait_seconds must not be negative"),
    ],
)
def test_bad_arguments(tmp_path: Path, command: list[str], kwargs: dict, message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        cap.capture(command, tmp_path / "x.pages", **kwargs)


def test_non_linux_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(CaptureError, match="capture needs Linux.*'darwin'"):
        cap.capture(["/nonexistent/prog"], tmp_path / "x.pages")  # not "command not found"
    assert issubclass(CaptureError, HwzswapError)


# Run in its own interpreter: as root it first gives up CAP_SYS_PTRACE (capset), so the reader
# is an ordinary process; the target makes itself non-dumpable (prctl PR_SET_DUMPABLE 0), which
# the kernel only lets a CAP_SYS_PTRACE holder read -- a real permission failure, root or not.
NO_PTRACE = textwrap.dedent(
    """
    import ctypes, os, sys
    from hwzswap.bench.capture import capture
    from hwzswap.errors import CaptureError
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        class Hdr(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class Data(ctypes.Structure):
            _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]
        hdr, data = Hdr(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
        assert libc.capget(ctypes.byref(hdr), data) == 0
        CAP_SYS_PTRACE = 19
        data[0].effective &= ~(1 << CAP_SYS_PTRACE)
        data[0].permitted &= ~(1 << CAP_SYS_PTRACE)
        assert libc.capset(ctypes.byref(hdr), data) == 0, os.strerror(ctypes.get_errno())
    PR_SET_DUMPABLE = 4
    child = (f"import ctypes, os, time; ctypes.CDLL(None).prctl({PR_SET_DUMPABLE}, 0, 0, 0, 0); "
             f"open({sys.argv[2]!r}, 'w').write(str(os.getpid())); "
             "print('ready', flush=True); time.sleep(60)")
    try:
        capture([sys.executable, "-c", child], sys.argv[1], wait_line="ready", timeout=30)
    except CaptureError as exc:
        print("CaptureError:", exc)
    """
)


def test_no_ptrace_permission_gives_an_actionable_error(tmp_path: Path) -> None:
    import subprocess

    out, pidfile = tmp_path / "x.pages", tmp_path / "pid"
    res = subprocess.run([sys.executable, "-c", NO_PTRACE, str(out), str(pidfile)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    msg = res.stdout
    assert msg.startswith("CaptureError: cannot read /proc/"), msg
    assert "Permission denied" in msg or "not permitted" in msg
    assert "CAP_SYS_PTRACE" in msg and "ptrace_scope" in msg
    assert not out.exists() and not list(tmp_path.glob(f"*{PARTIAL}*"))
    assert _gone(int(pidfile.read_text()))


def test_maps_selection_and_runs() -> None:
    maps = cap.read_maps(os.getpid())
    names = {m.path for m in maps if m.selected}
    assert "[heap]" in names or "" in names
    assert not names & {"[vdso]", "[vvar]", "[vsyscall]"}
    assert all(m.perms[3] == "p" for m in maps if m.selected)
    assert any(m.perms[1] != "w" for m in maps if m.selected)  # read-only private: RELRO, text
    addrs = np.array([0x1000, 0x2000, 0x3000, 0x9000, 0xA000], dtype=np.uint64)
    assert list(cap._runs(addrs)) == [(0x1000, 3), (0x9000, 2)]
    long = (np.arange(600, dtype=np.uint64) + 16) * np.uint64(PAGE)
    runs = list(cap._runs(long))
    assert [n for _, n in runs] == [256, 256, 88] and runs[1][0] == (16 + 256) * PAGE


def test_cli_capture_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog, pidfile = _child_program(tmp_path)
    out = tmp_path / "cli.pages.zst"
    report = tmp_path / "report.json"
    rc = main(["capture", "-o", str(out), "--wait-line", "ready", "--report", str(report),
               "--", sys.executable, "-c", prog])
    assert rc == 0
    text = capsys.readouterr().out
    assert "captured" in text and "same-filled" in text
    pages = load_pages(out)
    assert _pattern("PRIV", 0) in _page_set(pages)
    import json

    assert json.loads(report.read_text())["pages"] == pages.shape[0]
    assert _gone(int(pidfile.read_text()))

    rc = main(["capture", "-o", str(tmp_path / "y.pages"), "--", "/nonexistent/prog"])
    assert rc == 2
    assert "command not found" in capsys.readouterr().err


def test_sigstop_state_is_reached_before_reading(tmp_path: Path) -> None:
    """_stop_tree returns only once every thread is stopped (state T)."""
    import subprocess

    p = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                          "threading.Thread(target=time.sleep, args=(60,)).start()\n"
                          "time.sleep(60)"], start_new_session=True)
    try:
        time.sleep(0.2)
        pids = cap._stop_tree(p.pid, False, time.monotonic() + 5)
        assert pids == [p.pid]
        state = cap._proc_state(p.pid)
        assert state and set(state) <= {"T", "t"} and len(state) >= 2
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()

