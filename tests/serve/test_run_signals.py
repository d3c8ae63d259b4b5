"""``hwzswap run``'s stop signals: the handler only notes a signal, and the main flow says it.
The handler runs in the main thread wherever that thread is; one that printed there wrote into
stderr from inside whatever the main flow was doing: inside its own write to stderr that gave
"RuntimeError: reentrant call" or lost the text, and with stderr not being read (a full pipe)
the handler blocked, and with it the whole run, teardown included."""

from __future__ import annotations

import select
import signal
import subprocess
import sys

#: ``run``'s two ways of taking stop signals, around reads of stdin (where the test sends the
#: signals), with stderr a pipe filled up first: any write to it blocks until the test reads.
CHILD = """
import os, sys
from hwzswap.serve import run

os.set_blocking(2, False)
for chunk in (b"x" * 65536, b"x"):
    try:
        while True:
            os.write(2, chunk)
    except BlockingIOError:
        pass
os.set_blocking(2, True)
try:
    with run.stop_signals_interrupt():
        try:
            print("ready", flush=True)  # the signal may come while this returns
            sys.stdin.readline()  # the first signal interrupts this: Ctrl-C's path
            print("not interrupted", flush=True)
        except KeyboardInterrupt:
            print("caught", flush=True)
            print("alive " + sys.stdin.readline().strip(), flush=True)  # a later one: noted
            with run._teardown_shield():  # as run_once's teardown: every one only noted
                print("shielded", flush=True)
                print("alive " + sys.stdin.readline().strip(), flush=True)
            print("not raised", flush=True)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr, flush=True)
    sys.exit(130)
"""


def _line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The child's next line of stdout; fails when none comes within ``timeout``."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no line from the child within {timeout:g} s (stuck in a signal handler?)"
    return proc.stdout.readline().decode().strip()


def test_the_handler_does_no_io_and_the_main_flow_says_each_signal() -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0)  # unbuffered: a line read is never one select missed
    try:
        assert _line(proc, 60) == "ready"
        proc.send_signal(signal.SIGTERM)
        assert _line(proc) == "caught"
        proc.send_signal(signal.SIGINT)  # stderr still full: a handler that wrote would hang
        proc.stdin.write(b"1\n")
        proc.stdin.flush()
        assert _line(proc) == "alive 1"
        assert _line(proc) == "shielded"
        proc.send_signal(signal.SIGHUP)  # two in quick succession
        proc.send_signal(signal.SIGTERM)
        proc.stdin.write(b"2\n")
        proc.stdin.flush()
        assert _line(proc) == "alive 2"
        proc.stdin.close()
        err = proc.stderr.read().decode()  # now the main flow's messages can go out
        proc.wait(30)
        rest = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if not f.closed:
                f.close()
    assert proc.returncode == 130 and rest == "", (proc.returncode, rest, err[-500:])
    lines = err.lstrip("x").splitlines()
    # the shield's two when it ends (the kernel delivers pending signals lowest number
    # first, so their order is its), then the one the outer block noted, then Ctrl-C's path
    assert sorted(lines[:2]) == ["hwzswap run: SIGHUP: still undoing the chain",
                                 "hwzswap run: SIGTERM: still undoing the chain"], lines
    assert lines[2:] == ["hwzswap run: SIGINT: still undoing the chain", "interrupted"], lines
    assert "reentrant" not in err and "Traceback" not in err
