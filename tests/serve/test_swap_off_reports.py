"""``hwzswap swap off`` says at once what went wrong in the server's teardown, and exits 1:
a swapoff the kernel refused (the server keeps serving) and a recording that failed."""

from __future__ import annotations

import contextlib
import json
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


def _unkillable_in(cg: MemoryCgroup) -> None:
    """In a child before exec: join ``cg`` as a task the OOM killer never picks where the
    kernel lets this process say so (v1's cgroup is made with its OOM killer off; for v2 an
    oom_score_adj of -1000, which needs CAP_SYS_RESOURCE)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("-1000")
    cg.add(os.getpid())


def test_a_swapoff_the_kernel_refuses_is_reported_at_once(state_dir: Path,
                                                          tmp_path: Path) -> None:
    """The pages of a program at its cgroup's limit cannot come back in: the server's
    swapoff fails with ENOMEM within a second and it keeps serving. `swap off` waited its
    whole --timeout, then blamed a swapoff "still running". The program cannot be OOM-killed
    (:func:`_unkillable_in`), so the kernel fails swapoff's charge instead of killing it
    first (it did: "swapoff invoked oom-killer" in dmesg every run), and the program
    still has its pages afterwards; the message says that such a kill may have happened."""
    st = chain.swap_on(small_config(tmp_path), name="of1")
    cg = MemoryCgroup.create(f"hwzswap-test-off-{os.getpid()}", 16 << 20, oom_kill=False)
    prog = None
    try:
        prog = subprocess.Popen([sys.executable, "-c", HOLD, "48"], stdout=subprocess.PIPE,
                                text=True, preexec_fn=lambda: _unkillable_in(cg))
        assert prog.stdout.readline().strip() == "filled"
        unkillable = cg.kind == "v1" or Path(
            f"/proc/{prog.pid}/oom_score_adj").read_text().strip() == "-1000"
        assert chain.query("of1")["write_pages"] > 2000
        t0, started = time.monotonic(), time.time()
        p = hwzswap_cli("swap", "off", "--name", "of1", "--timeout", "100", timeout=150)
        took = time.monotonic() - t0
        assert p.returncode == 1, p.stdout + p.stderr
        assert "could not swap off" in p.stderr and "Cannot allocate memory" in p.stderr, \
            p.stderr
        assert "memory cgroup at its limit" in p.stderr and "still serving" in p.stderr
        assert "may have OOM-killed processes" in p.stderr, p.stderr
        assert "still running" not in p.stderr
        assert took < 60, took  # not the 100 s it was given
        assert chain._server_alive(st) and st["loop"] in chain.active_swaps()
        # status says the chain is stuck, why and what to do (it said "alive", nothing more)
        text = hwzswap_cli("swap", "status", "--name", "of1").stdout
        assert "(alive)" in text and "STUCK: the server's swapoff FAILED at " in text, text
        assert "Cannot allocate memory" in text and "raise their cgroup's memory limit" in text
        assert "then `hwzswap swap off --name of1` tries again (`--force` kills" in text, text
        js = json.loads(hwzswap_cli("swap", "status", "--name", "of1", "--json").stdout)
        failed = js["swapoff_failed"]
        assert "Cannot allocate memory" in failed["error"], failed
        assert started <= failed["at"] <= time.time() and "--force" in failed["advice"]
        # dealt with: room for the pages, and the same command now undoes it all
        limit_file = "memory.limit_in_bytes" if cg.kind == "v1" else "memory.max"
        (cg.path / limit_file).write_text(str(512 << 20))
        p = hwzswap_cli("swap", "off", "--name", "of1", timeout=150)
        assert p.returncode == 0, p.stdout + p.stderr
        assert st["loop"] not in chain.active_swaps()
        if unkillable:  # nothing killed it
            assert prog.poll() is None and cg.oom_kills() in (0, None)
    finally:
        if prog is not None:
            prog.kill()
            prog.wait(30)
            prog.stdout.close()
        cg.remove()


def _swap_some(tag: str) -> None:
    """Make the kernel swap out through the chain: a program fills 32 MiB in a 16 MiB
    cgroup, then exits."""
    cg = MemoryCgroup.create(f"hwzswap-test-{tag}-{os.getpid()}", 16 << 20)
    try:
        code = HOLD.replace("time.sleep(600)", "pass")
        p = subprocess.run([sys.executable, "-c", code, "32"], capture_output=True, text=True,
                           timeout=120, preexec_fn=lambda: cg.add(os.getpid()))
        assert p.stdout.strip() == "filled", p.stderr
    finally:
        cg.remove()


def test_a_recording_is_written_into_new_folders_and_a_failed_one_fails_off(
        state_dir: Path, tmp_path: Path) -> None:
    """`--record` into folders that do not exist yet: made at the write, as every output
    option's are. A recording that still cannot be written (a file where its folder should
    be) makes `swap off` exit 1 saying so, with the server log kept; it said "chain torn
    down", exit 0, and the error was only in the log."""
    from hwzswap.bench.workload import load_workload

    cfg = small_config(tmp_path)
    out = tmp_path / "new" / "deeper" / "r.json"
    on = hwzswap_cli("swap", "on", "--config", cfg, "--name", "rc1", "--record", str(out))
    assert on.returncode == 0, on.stderr
    _swap_some("rc1")
    off = hwzswap_cli("swap", "off", "--name", "rc1")
    assert off.returncode == 0, off.stdout + off.stderr
    assert load_workload(out).ops
    assert not chain.log_path("rc1").exists() and not chain.exit_path("rc1").exists()

    blocked = tmp_path / "blocked"
    on = hwzswap_cli("swap", "on", "--config", cfg, "--name", "rc2", "--record",
                     str(blocked / "r.json"))
    assert on.returncode == 0, on.stderr
    blocked.write_text("a file where the folder should be\n")
    _swap_some("rc2")
    off = hwzswap_cli("swap", "off", "--name", "rc2")
    assert off.returncode == 1, off.stdout + off.stderr
    assert "the chain is torn down, but" in off.stderr and "recording: " in off.stderr
    assert f"server log kept: {chain.log_path('rc2')}" in off.stderr
    assert "recording: " in chain.log_path("rc2").read_text()
    assert chain.read_state("rc2") is None and not chain.exit_path("rc2").exists()


def test_the_server_log_goes_with_a_clean_off_and_stays_when_something_failed(
        state_dir: Path, tmp_path: Path) -> None:
    """`/run/hwzswap/<name>.log` was left after every on/off pair and every refused `swap
    on`: now a clean teardown and a refusal stated whole remove it; a crashed server's is
    kept, and `swap off` says where."""
    import signal

    import yaml

    cfg = small_config(tmp_path)
    assert hwzswap_cli("swap", "on", "--config", cfg, "--name", "lg1").returncode == 0
    assert chain.log_path("lg1").exists()
    off = hwzswap_cli("swap", "off", "--name", "lg1")
    assert off.returncode == 0 and "log" not in off.stdout, off.stdout + off.stderr
    assert sorted(p.name for p in state_dir.iterdir()) == []

    # refused by the server (its swap-file check), after the client's checks passed
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by others and not sticky
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(Path(cfg).read_text())
    data["swap"]["path"] = str(shared / "swapfile")
    bad.write_text(yaml.safe_dump(data))
    on = hwzswap_cli("swap", "on", "--config", str(bad), "--name", "lg2")
    assert on.returncode == 2 and "the swap file's directory" in on.stderr, on.stderr
    assert "(log:" not in on.stderr and sorted(p.name for p in state_dir.iterdir()) == []

    # a killed server: its log may say why; kept, and named
    st = chain.swap_on(cfg, name="lg3")
    os.kill(st["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while chain._server_alive(st):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    off = hwzswap_cli("swap", "off", "--name", "lg3")
    assert off.returncode == 0, off.stderr
    assert f"server log kept: {chain.log_path('lg3')}" in off.stdout, off.stdout
    assert chain.log_path("lg3").exists()
