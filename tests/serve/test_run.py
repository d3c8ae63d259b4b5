"""``hwzswap run``: a real program with a working set larger than its memory limit finishes
with correct data through hwzswap; the counts match the kernel's; discards free pool entries;
``--compare`` and ``--record`` work end to end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from serveutil import PROG, hwzswap_cli, small_config

from hwzswap.bench.workload import LOAD, STORE, load_workload
from hwzswap.serve import chain
from hwzswap.serve.cgroup import cgroup_of


def test_program_swaps_through_hwzswap_with_correct_data(state_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    png = tmp_path / "run.png"
    p = hwzswap_cli("run", "--memory-limit", "24M", "--config", small_config(tmp_path),
                    "--compare", "base,lz4", "--json", str(out), "--plot", str(png),
                    "--", sys.executable, PROG, "40", timeout=240)
    assert p.returncode == 0, p.stderr + p.stdout
    assert p.stdout.count("verified 10240 pages") == 2  # the program checked every byte
    res = json.loads(out.read_text())
    base, lz4 = res["runs"]
    assert png.stat().st_size > 1000
    for r in (base, lz4):
        s = r["server"]
        assert r["exit_code"] == 0
        assert r["pswpout"] > 2000 and r["pswpin"] > 1000  # it really swapped
        # Every page the kernel swapped went through the server, and nothing else did.
        assert s["write_pages"] == r["pswpout"] and s["read_pages"] == r["pswpin"]
        assert s["read_unwritten_pages"] == 0
        assert r["majflt"] > 0 and r["cgroup"]["kind"] in ("v1", "v2")
        # The cgroup's own count agrees with the command's rusage (only it ran in there).
        assert abs(r["cgroup"]["pgmajfault"] - r["majflt"]) <= 50
        # After the exit the kernel frees the command's slots and discards the freed
        # clusters. Under load one cluster's worth (a THP's 512 slots; 289 once) was still
        # held when the run stopped waiting, freed later: at most that many may be live.
        assert s["discarded_pages"] > 0 and s["live_pages_after"] <= 512
    # base: every page to the backing file; lz4: zswap keeps them (freed by the discards).
    assert base["io_sum_pages"] == base["pswpin"] + base["pswpout"]
    assert base["zswap"]["stored_pages_at_exit"] <= 1
    assert lz4["zswap"]["zswpout"] > 1000
    # zswap's column is its pool's high-water mark over the run (base: zswap off, empty)
    assert base["zswap"]["pool_peak_pages"] == 0 and lz4["zswap"]["pool_peak_pages"] > 0
    assert "count_warning" not in base and "count_warning" not in lz4  # the kernel's agree
    assert lz4["zswap"]["stored_pages_after"] <= 1  # the discards emptied the pool
    assert lz4["io_sum_pages"] < base["io_sum_pages"] / 10
    assert res["changes"][1]["io_sum_mb"] < -90
    assert "vs base" in p.stdout


def test_record_writes_a_replayable_stream(state_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "kernel.hwzwl"
    p = hwzswap_cli("run", "--memory-limit", "20M", "--config", small_config(tmp_path),
                    "--record", str(rec), "--", sys.executable, PROG, "24", timeout=240)
    assert p.returncode == 0, p.stderr + p.stdout
    wl = load_workload(rec)  # validates: loads only of live slots, indices in range
    counts = wl.counts()
    assert counts["store_pages"] > 1000 and counts["loads"] > 500 and counts["invalidates"] > 0
    assert any(len(op.offsets) > 1 for op in wl.ops if op.kind == LOAD)  # readahead clusters
    assert any(len(op.offsets) > 1 for op in wl.ops if op.kind == STORE)  # reclaim batches
    assert all(0 not in op.offsets for op in wl.ops)  # the swap header is not recorded


def test_timeout_kills_the_command_and_undoes_everything(state_dir: Path,
                                                         tmp_path: Path) -> None:
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                    "--timeout", "1", "--no-oom-kill", "--", "sleep", "60", timeout=120)
    # a run that failed, not a refusal (2 is for those): 1, as bench and sweep use it
    assert p.returncode == 1 and "ran past --timeout 1 s and was killed" in p.stderr
    assert "FAILED: config: the command ran past --timeout 1 s" in p.stdout
    helptext = " ".join(hwzswap_cli("run", "--help").stdout.split())
    assert "1 when a command failed or ran past --timeout" in helptext
    # state_dir's check: no swap, loop device, mount or state left; and no cgroup:
    assert not [d for d in Path(cgroup_of("self")[1]).iterdir() if "hwzswap-run" in d.name]


def test_a_hung_server_is_killed_and_everything_undone(state_dir: Path,
                                                       tmp_path: Path) -> None:
    """The server stops answering mid-run (SIGSTOP): past the timeout the command's tasks
    are killed, and when they cannot exit (they wait on the server's I/O) the server is
    killed too, so nothing hangs and nothing is left."""
    import signal
    import threading

    import yaml

    from hwzswap.serve import chain, run

    cfg = yaml.safe_load(Path(small_config(tmp_path)).read_text())
    box: dict = {}

    def go() -> None:
        try:
            box["row"] = run.run_once([sys.executable, PROG, "48"], 24 << 20, cfg,
                                      name="hung", quiet=True, timeout_s=4)
        except run.RunError as exc:
            box["error"] = str(exc)

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 60
    while True:
        st = chain.read_state("hung")
        if st and "swapon" in st.get("steps", []):
            try:
                if chain.query("hung")["write_pages"] > 2000:
                    break
            except chain.ChainError:
                pass
        assert time.monotonic() < deadline and t.is_alive()
        time.sleep(0.05)
    os.kill(st["pid"], signal.SIGSTOP)
    t.join(120)
    assert not t.is_alive()
    assert "error" not in box, box["error"]  # a failed run, reported as one
    # its tasks were killed; stuck on the server, or not, the hung server was killed too
    assert box["row"]["failure"].startswith("ran past --timeout 4 s and was killed; its ")
    assert "which was killed" in box["row"]["failure"] or (
        "its swap server then did not answer and was killed" in box["row"]["failure"])
    assert box["row"]["server_died"]
    assert chain.read_state("hung") is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_undoes_everything(state_dir: Path, tmp_path: Path, sig) -> None:
    """SIGTERM or SIGHUP to `hwzswap run` take Ctrl-C's path, and Ctrl-Cs that follow while
    the chain is undone do not cut that short: no swap, loop device, mount, state, cgroup,
    command or temporary config is left."""
    tmpdir = Path(tempfile.gettempdir())
    configs_before = set(tmpdir.glob("hwzswap-config-*.yaml"))
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "run", "--memory-limit", "24M",
                             "--config", small_config(tmp_path), "--", "sleep", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cg_dir = Path(cgroup_of("self")[1]) / f"hwzswap-run{proc.pid}-config"
    try:
        deadline = time.monotonic() + 60
        while not (cg_dir / "cgroup.procs").exists() or not (cg_dir / "cgroup.procs"
                                                              ).read_text().split():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        child = int((cg_dir / "cgroup.procs").read_text().split()[0])
        proc.send_signal(sig)
        while proc.poll() is None:  # Ctrl-C after Ctrl-C while it tears down
            assert time.monotonic() < deadline
            proc.send_signal(signal.SIGINT)
            time.sleep(0.02)
        err = proc.communicate(timeout=10)[1]
        # "interrupted" is printed after the teardown; a SIGINT after that may end the
        # interpreter itself (-2)
        assert proc.returncode in (130, -signal.SIGINT) and "interrupted" in err, err
        assert "still undoing the chain" in err
        assert not cg_dir.exists()
        assert not Path(f"/proc/{child}").exists() or chain._proc_start(child) is None
        assert set(tmpdir.glob("hwzswap-config-*.yaml")) == configs_before
        assert chain.read_state(f"run{proc.pid}") is None  # and state_dir's checks
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for _ in range(100):  # whatever a failed run left (state_dir undoes the chain)
            if not cg_dir.exists():
                break
            for pid in (cg_dir / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(OSError):
                cg_dir.rmdir()
            time.sleep(0.05)
        for f in set(tmpdir.glob("hwzswap-config-*.yaml")) - configs_before:
            f.unlink()


def test_bad_input_is_refused_before_anything_runs(state_dir: Path, tmp_path: Path) -> None:
    """A bad --compare label is refused (2) before anything runs, wherever it is in the list
    (the last one was found when its server failed, after the runs before it); so is a
    command that cannot be run."""
    cfg = small_config(tmp_path)
    for compare, why in (("base,lz4,nope", "--compare nope: zswap.compressor.name: unknown "
                                           "compressor"),
                         ("base,kernel-a/b", "'a/b' is not a kernel compressor name"),
                         (",", "--compare names no configuration")):
        p = hwzswap_cli("run", "--memory-limit", "24M", "--config", cfg, "--compare", compare,
                        "--", "true", timeout=60)
        assert p.returncode == 2 and why in p.stderr, (compare, p.stderr)
        assert "hwzswap run: base:" not in p.stderr  # nothing ran
    # a command that cannot be run: refused before the chain is set up (it was a traceback)
    p = hwzswap_cli("run", "--memory-limit", "24M", "--config", cfg, "--",
                    str(tmp_path / "no-such-program"), timeout=60)
    assert p.returncode == 2 and "no-such-program: no such file" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    # found, but the kernel will not run it: the chain set up for it is undone, no traceback
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01\x02")
    junk.chmod(0o755)
    p = hwzswap_cli("run", "--memory-limit", "24M", "--config", cfg, "--", str(junk),
                    timeout=60)
    assert p.returncode == 2 and "junk: Exec format error" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr  # and state_dir checks that nothing is left
