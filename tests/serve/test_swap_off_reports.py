"""``hwzswap swap off`` says at once what went wrong in the server's teardown, and exits 1:
a swapoff the kernel refused (the server keeps serving) and a recording that failed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hwzswap.serve import chain
from hwzswap.serve.cgroup import MemoryCgroup

from serveutil import hwzswap_cli, small_config

#: Fills MiB of memory (distinct, compressible pages), says so, then holds it.
HOLD = ("import sys, time\nn = int(sys.argv[1]) * 256\n"
        "m = [bytearray(b'%08d' % i * 512) for i in range(n)]\n"
        "print('filled', flush=True)\ntime.sleep(600)\n")


def test_a_swapoff_the_kernel_refuses_is_reported_at_once(state_dir: Path,
                                                          tmp_path: Path) -> None:
    """The pages of a program at its cgroup's limit cannot come back in: the server's
    swapoff fails with ENOMEM within a second and it keeps serving. `swap off` waited its
    whole --timeout, then blamed a swapoff "still running"."""
    st = chain.swap_on(small_config(tmp_path), name="of1")
    cg = MemoryCgroup.create(f"hwzswap-test-off-{os.getpid()}", 16 << 20)
    prog = None
    try:
        prog = subprocess.Popen([sys.executable, "-c", HOLD, "48"], stdout=subprocess.PIPE,
                                text=True, preexec_fn=lambda: cg.add(os.getpid()))
        assert prog.stdout.readline().strip() == "filled"
        assert chain.query("of1")["write_pages"] > 2000
        t0 = time.monotonic()
        p = hwzswap_cli("swap", "off", "--name", "of1", "--timeout", "100", timeout=150)
        took = time.monotonic() - t0
        assert p.returncode == 1, p.stdout + p.stderr
        assert "could not swap off" in p.stderr and "Cannot allocate memory" in p.stderr, \
            p.stderr
        assert "memory cgroup at its limit" in p.stderr and "still serving" in p.stderr
        assert "still running" not in p.stderr
        assert took < 60, took  # not the 100 s it was given
        assert chain._server_alive(st) and st["loop"] in chain.active_swaps()
        # dealt with: room for the pages, and the same command now undoes it all
        limit_file = "memory.limit_in_bytes" if cg.kind == "v1" else "memory.max"
        (cg.path / limit_file).write_text(str(512 << 20))
        p = hwzswap_cli("swap", "off", "--name", "of1", timeout=150)
        assert p.returncode == 0, p.stdout + p.stderr
        assert st["loop"] not in chain.active_swaps()
    finally:
        if prog is not None:
            prog.kill()
            prog.wait(30)
            prog.stdout.close()
        cg.remove()
