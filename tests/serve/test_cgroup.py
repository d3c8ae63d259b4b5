"""Memory cgroups for the program under test: created under this process's own, limited,
optionally without the OOM killer, removed with whatever is left inside."""

from __future__ import annotations

import os
import subprocess

import pytest

from hwzswap.serve.cgroup import CgroupError, MemoryCgroup, cgroup_of, limited_ancestor, parse_size


def test_parse_size() -> None:
    assert parse_size("64M") == 64 << 20 and parse_size("1G") == 1 << 30
    assert parse_size("512KiB") == 512 << 10 and parse_size("4096") == 4096
    assert parse_size("1024T") == 1 << 50
    for bad in ("", "x", "-1M", "0", "nan", "inf", "1e308T", "1025T", "0.5"):
        with pytest.raises(CgroupError):
            parse_size(bad)


def test_cgroup_limit_oom_control_and_removal() -> None:
    cg = MemoryCgroup.create(f"hwzswap-test-cg-{os.getpid()}", 48 << 20, oom_kill=False)
    try:
        assert cg.path.parent == cgroup_of("self")[1]
        if cg.kind == "v1":
            assert cg.read("memory.limit_in_bytes") == 48 << 20
            oom = (cg.path / "memory.oom_control").read_text()
            assert "oom_kill_disable 1" in oom
        else:
            assert cg.read("memory.max") == 48 << 20
        sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: cg.add(os.getpid()))
        assert cg.pids() == [sleeper.pid]
        assert limited_ancestor(sleeper.pid) == (cg.path, 48 << 20)
        with pytest.raises(CgroupError, match="exists already"):
            MemoryCgroup.create(cg.path.name, 1 << 20)
    finally:
        cg.remove()
    assert sleeper.wait(10) == -9 and not cg.path.exists()


def test_an_interrupted_create_leaves_no_cgroup() -> None:
    """Ctrl-C (or `hwzswap run`'s SIGTERM, raised as KeyboardInterrupt) while the new cgroup's
    limit is being set: the caller never gets the cgroup to remove, so create removes it."""

    class InterruptedLimit(int):
        def __str__(self) -> str:  # the limit is written as str(limit)
            raise KeyboardInterrupt

    path = cgroup_of("self")[1] / f"hwzswap-test-interrupted-{os.getpid()}"
    try:
        with pytest.raises(KeyboardInterrupt):
            MemoryCgroup.create(path.name, InterruptedLimit(64 << 20))
        assert not path.exists()
    finally:
        if path.exists():  # this test failed: leave nothing
            path.rmdir()


def test_reclaim_all_empties_a_cgroup_whose_tasks_exited(tmp_path) -> None:
    """What exited tasks left charged (here: page cache of a file they wrote) is reclaimed."""
    cg = MemoryCgroup.create(f"hwzswap-test-reclaim-{os.getpid()}", 256 << 20)
    usage = "memory.usage_in_bytes" if cg.kind == "v1" else "memory.current"
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={tmp_path / 'f'}", "bs=1M", "count=16"],
                       check=True, capture_output=True, timeout=60,
                       preexec_fn=lambda: cg.add(os.getpid()))
        assert cg.read(usage) > 8 << 20  # its page cache is charged here
        cg.reclaim_all()
        assert cg.read(usage) < 2 << 20
    finally:
        cg.remove()
