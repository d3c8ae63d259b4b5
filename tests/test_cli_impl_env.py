"""A bad ``HWZSWAP_IMPL`` is input refused before anything ran: one line, exit status 2, no
traceback (it is read while the commands' modules load, before a command's own handling)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_bad_impl_switch_is_one_line_and_exit_2() -> None:
    env = dict(os.environ, HWZSWAP_IMPL="foo")
    done = subprocess.run([sys.executable, "-m", "hwzswap", "backends"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("hwzswap: error: environment variable HWZSWAP_IMPL: must be "
                                   "one of c, py; got 'foo'")
    assert done.stdout == ""
