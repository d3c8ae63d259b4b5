"""``hwzswap run`` killed by SIGKILL (the OOM killer's signal, which no handler sees): what it
started does not outlive it. Its command dies with it (PR_SET_PDEATHSIG); its server kills what
the command started in the cgroup, swaps off, undoes the chain and removes the cgroup and its
records. What the server cannot undo (here: it was killed too) is undone by the next ``run``
or by ``swap off --name run<pid>``, each saying what it removed.

Real processes, cgroups, FUSE and loop devices; every test cleans up after itself even when it
fails (the finally blocks, then the state_dir fixture's check)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serveutil import hwzswap_cli, small_config

from hwzswap.serve import chain, kernelzswap
from hwzswap.serve.cgroup import MemoryCgroup
from hwzswap.serve.run import RunFailedError, run_once

#: The command: a child of its own (a grandchild of run, which PR_SET_PDEATHSIG does not
#: reach: only the server's kill of the cgroup does), 40 MiB touched in a 32 MiB cgroup (so
#: pages are on the chain when run is killed), its pids on stdout, then sleep.
COMMAND = """
import os, subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
buf = bytearray(40 << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
print("ready", os.getpid(), kid.pid, flush=True)
time.sleep(300)
"""

#: How long everything may take to go once run is killed (the server's teardown: a second
#: or two on an idle machine; the serve tests share 2 cores).
GONE_WITHIN_S = 30.0


def _alive(pid: int) -> bool:
    return chain._proc_start(pid) is not None  # a zombie is gone: its parent is dead


def _wait_until(what: str, check: object, timeout: float = GONE_WITHIN_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)


class KilledRun:
    """A ``hwzswap run`` of :data:`COMMAND`, up to the point where the command said ready."""

    def __init__(self, state_dir: Path, tmp_path: Path, *args: str) -> None:
        self.state_dir = state_dir
        self.err = (tmp_path / "run.err").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hwzswap", "run", "--memory-limit", "32M", "--config",
             small_config(tmp_path), *args, "--", sys.executable, "-c", COMMAND],
            stdout=subprocess.PIPE, stderr=self.err)
        self.name = f"run{self.proc.pid}"
        self.pids: list[int] = []
        ready, _, _ = select.select([self.proc.stdout], [], [], 90)
        line = self.proc.stdout.readline().decode() if ready else ""
        assert line.startswith("ready"), (line, self._stderr())
        self.pids = [int(x) for x in line.split()[1:]]
        self.state = chain.read_state(self.name) or {}
        owner = chain.read_owner(self.name) or {}
        self.cgroup = Path(owner["cgroups"][0])
        assert self.cgroup.is_dir() and self.state.get("loop"), (owner, self.state)
        assert set(self.pids) <= set(MemoryCgroup("", self.cgroup, 0).pids())

    def _stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def kill(self) -> None:
        """SIGKILL run, and reap it (the test is its parent)."""
        self.proc.kill()
        self.proc.wait(30)

    def assert_gone(self, log_kept: bool = False) -> None:
        """The command, its child, the server, the swap device, the loop device, the mount,
        the cgroup and every file in the state directory are gone (``log_kept``: but the
        log of a server that was killed, named by what removed the rest)."""
        pids = [*self.pids, self.state["pid"]]
        kept = [f"{self.name}.log"] if log_kept else []
        _wait_until(f"processes {pids} gone", lambda: not any(map(_alive, pids)))
        loop = self.state["loop"]
        _wait_until(f"{loop} swapped off", lambda: loop not in chain.active_swaps())
        _wait_until(f"{self.cgroup} removed", lambda: not self.cgroup.exists())
        _wait_until(f"{self.state_dir} holds only {kept}",
                    lambda: sorted(p.name for p in self.state_dir.iterdir()) == kept)
        assert not chain._loops_of(self.state["file"], self.state.get("identity"))
        assert not chain._is_mounted(self.state["mountpoint"])

    def cleanup(self) -> None:
        """Whatever the test left (it may have failed half-way): killed and undone."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(chain.ChainError):
            chain.clean_dead_owner(self.name, timeout=30, force=True)
        if getattr(self, "cgroup", None) is not None and self.cgroup.exists():
            MemoryCgroup("", self.cgroup, 0).remove()
        self.proc.stdout.close()
        self.err.close()


@pytest.fixture
def killed_run(state_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[KilledRun]:
    """A run to kill (indirect parametrisation: its extra options)."""
    run = None
    try:
        run = KilledRun(state_dir, tmp_path, *getattr(request, "param", ()))
        yield run
    finally:
        if run is not None:
            run.cleanup()


ZSWAP = kernelzswap.ZSWAP_SYS


@pytest.fixture
def zswap_params() -> Iterator[dict[str, str]]:
    """The kernel's zswap parameters before the test; put back after it, whatever happened."""
    before = kernelzswap.save()
    try:
        yield before
    finally:
        kernelzswap.restore(before)


@pytest.mark.parametrize("killed_run", [("--compare", "kernel-lzo")], indirect=True)
def test_a_killed_kernel_run_has_the_kernels_zswap_put_back(zswap_params: dict[str, str],
                                                             killed_run: KilledRun) -> None:
    """``--compare kernel-<comp>`` switches the kernel's own zswap on for the run, machine
    wide: the run's server puts it back as it was when the run is killed."""
    now = {k: (ZSWAP / k).read_text().strip() for k in zswap_params}
    assert now["enabled"] == "Y" and now["compressor"] == "lzo", now
    assert now != zswap_params  # (run refuses a base run while the kernel's zswap is on)
    killed_run.kill()
    killed_run.assert_gone()
    assert {k: (ZSWAP / k).read_text().strip() for k in zswap_params} == zswap_params


def test_the_server_undoes_everything_when_run_is_killed(killed_run: KilledRun) -> None:
    assert chain.query(killed_run.name)["write_pages"] > 0  # pages are on the chain
    killed_run.kill()
    # by its usual teardown, and nothing failed: no log, no exit record, nothing left
    killed_run.assert_gone()


def test_swap_off_undoes_what_a_killed_runs_killed_server_left(killed_run: KilledRun,
                                                               tmp_path: Path) -> None:
    """The server killed too (it could undo nothing): the command died with run, its child
    still runs in the cgroup; `swap off --name run<pid>` kills it and removes it all."""
    os.kill(killed_run.state["pid"], signal.SIGKILL)
    killed_run.kill()
    _wait_until("the command gone", lambda: not _alive(killed_run.pids[0]), 10)
    assert _alive(killed_run.pids[1]) and killed_run.cgroup.is_dir()
    assert killed_run.state["loop"] in chain.active_swaps()
    p = hwzswap_cli("swap", "status", "--name", killed_run.name, timeout=60)
    assert (f"  its run (pid {killed_run.proc.pid}) is no longer running: `hwzswap swap off "
            f"--name {killed_run.name}` removes what it left (cgroup {killed_run.cgroup}, "
            in p.stdout), p.stdout + p.stderr
    p = hwzswap_cli("swap", "off", "--name", killed_run.name, timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    note = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(note) == 1, p.stderr
    assert note[0].startswith(f"hwzswap swap: chain {killed_run.name!r}: its run (pid "
                              f"{killed_run.proc.pid}) is no longer running; removed what it "
                              "left: "), note
    for what in (f"swapoff {killed_run.state['loop']}", f"cgroup {killed_run.cgroup} removed",
                 f"its tasks {killed_run.pids[1]} killed", "owner record",
                 f"server log kept: {chain.log_path(killed_run.name)}"):
        assert what in note[0], (what, note)
    assert p.stdout.startswith(f"hwzswap swap {killed_run.name}: swapoff "), p.stdout
    killed_run.assert_gone(log_kept=True)


def test_the_next_run_undoes_what_a_killed_run_left(killed_run: KilledRun,
                                                    tmp_path: Path) -> None:
    os.kill(killed_run.state["pid"], signal.SIGKILL)
    killed_run.kill()
    p = hwzswap_cli("run", "--memory-limit", "16M", "--config", small_config(tmp_path),
                    "--", "true", timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    note = [ln for ln in p.stderr.splitlines() if "no longer running" in ln]
    assert len(note) == 1 and note[0].startswith(
        f"hwzswap run: chain {killed_run.name!r}: its run (pid {killed_run.proc.pid}) is no "
        "longer running; removed what it left: "), p.stderr
    assert f"cgroup {killed_run.cgroup} removed" in note[0]
    killed_run.assert_gone(log_kept=True)


def test_a_live_runs_chain_is_not_taken_for_a_dead_one(state_dir: Path) -> None:
    """Owner records name a process by pid *and* start time: this process's own record is
    left alone, and one with another start time (a reused pid) is a dead owner's."""
    chain.claim_owner("own1")
    chain.claim_owner("own2")
    try:
        assert chain.clean_dead_owners(timeout=5) == []
        rec = json.loads(chain.owner_path("own2").read_text())
        rec["pid_start"] = str(int(rec["pid_start"]) - 1)  # an earlier process of this pid
        chain.owner_path("own2").write_text(json.dumps(rec))
        assert chain.clean_dead_owners(timeout=5) == [
            ("own2", f"chain 'own2': its run (pid {os.getpid()}) is no longer running; "
                     f"removed what it left: owner record {chain.owner_path('own2')} removed")]
        assert chain.read_owner("own1") is not None
    finally:
        chain.drop_owner("own1")
        chain.drop_owner("own2")


def test_coexist_puts_the_runs_chain_above_the_other_devices(state_dir: Path,
                                                            tmp_path: Path) -> None:
    """The kernel fills the highest-priority swap device first and round-robins over equal
    ones: `run --coexist` takes a priority above every active device, so the command's
    pages go to the chain being measured."""
    cfg = small_config(tmp_path)
    other = chain.swap_on(cfg, name="prio-other", priority=200, coexist=True)
    try:
        p = hwzswap_cli("run", "--memory-limit", "16M", "--config", cfg, "--coexist", "--",
                        "cat", "/proc/swaps", timeout=120)
    finally:
        chain.swap_off("prio-other")
    assert p.returncode == 0, p.stderr + p.stdout
    prios = {f[0]: int(f[4]) for f in (ln.split() for ln in p.stdout.splitlines())
             if len(f) >= 5 and f[0].startswith("/dev/")}
    assert prios.pop(other["loop"]) == 200 and list(prios.values()) == [201], p.stdout


def _as_dead(name: str) -> None:
    """Make chain ``name``'s owner record (this process's) that of a dead process: the same
    pid with an earlier start time (as a reused pid's)."""
    rec = json.loads(chain.owner_path(name).read_text())
    rec["pid_start"] = str(int(rec["pid_start"]) - 1)
    chain.owner_path(name).write_text(json.dumps(rec))


def test_a_kernel_zswap_parameter_not_put_back_keeps_the_owner_record(
        state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``kernel-<comp>`` run whose zswap parameter cannot be put back fails, and its owner
    record, the only place that still holds the old value, stays although the chain and
    the cgroup are gone (it was removed, and the old value lost); once the run is gone, the
    next run (:func:`chain.clean_dead_owners`) puts the parameter back from it and removes
    it. Plain files stand in for the parameters (machine-wide ones must not be played with);
    the command itself makes one of them unwritable."""
    fake = tmp_path / "zswap"
    fake.mkdir()
    before = {"enabled": "N", "compressor": "zstd", "max_pool_percent": "20",
              "shrinker_enabled": "N"}
    for key, value in before.items():
        (fake / key).write_text(f"{value}\n")
    monkeypatch.setattr(kernelzswap, "ZSWAP_SYS", fake)
    shrinker = fake / "shrinker_enabled"
    cfg = {"zswap": {"enabled": False, "compressor": "lz4"}, "memory": {"total_ram_mb": 256},
           "swap": {"nr_pages": 16384, "model": "none"}}
    name = "kzleft"
    with pytest.raises(RunFailedError) as err:
        run_once(["sh", "-c", f"rm {shrinker} && mkdir {shrinker}"], 16 << 20, cfg,
                 label="kernel-lzo", kernel_zswap="lzo", name=name, quiet=True, settle_s=0)
    assert f"{shrinker} is not back to 'N'" in str(err.value), err.value
    assert f"stay recorded in {chain.owner_path(name)}" in str(err.value), err.value
    assert (fake / "enabled").read_text().strip() == "N"  # the others are back
    assert (fake / "compressor").read_text().strip() == "zstd"
    rec = chain.read_owner(name)
    assert rec is not None and rec["zswap"] == before, rec
    assert chain.read_state(name) is None and not Path(rec["cgroups"][0]).exists()
    assert chain.clean_dead_owners(timeout=30) == []  # its owner (this process) still runs
    shrinker.rmdir()
    shrinker.write_text("Y\n")  # as the run left it
    _as_dead(name)
    (cleaned,) = chain.clean_dead_owners(timeout=30)
    assert cleaned[0] == name and f"{shrinker} back to N" in cleaned[1], cleaned
    assert shrinker.read_text().strip() == "N" and chain.read_owner(name) is None


def test_swap_off_of_a_dead_runs_chain_fails_when_its_servers_teardown_failed(
        state_dir: Path, tmp_path: Path) -> None:
    """``swap off --name`` of a chain whose run is dead is as strict as of any other: the
    server's teardown failed (a recording it could not write), so it exits 1 saying so,
    with the log kept; the chain and the owner record are still gone (it exited 0)."""
    blocked = tmp_path / "blocked"
    chain.swap_on(small_config(tmp_path), name="deadrec", record=str(blocked / "r.json"))
    try:
        chain.claim_owner("deadrec")
        _as_dead("deadrec")
        blocked.write_text("a file where the folder should be\n")
        p = hwzswap_cli("swap", "off", "--name", "deadrec", timeout=120)
        owner_after = chain.read_owner("deadrec")
    finally:
        chain.drop_owner("deadrec")
        with contextlib.suppress(chain.ChainError):
            chain.swap_off("deadrec", timeout=30, force=True)
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.startswith(
        f"hwzswap swap: error: chain 'deadrec': its run (pid {os.getpid()}) is no longer "
        f"running; removed what it left (owner record {chain.owner_path('deadrec')} "
        "removed), but hwzswap swap off deadrec: the chain is torn down, but the server's "
        "teardown failed: recording: "), p.stderr
    assert f"server log kept: {chain.log_path('deadrec')}" in p.stderr
    assert chain.read_state("deadrec") is None and owner_after is None


@pytest.mark.parametrize("step", ["serve", "swapon"])
def test_a_run_killed_while_its_chain_is_set_up_leaves_nothing(state_dir: Path,
                                                               tmp_path: Path,
                                                               step: str) -> None:
    """Killed while its server sets the chain up (the server waits after ``step`` for a
    stop signal: chain.PAUSE_AFTER_STEP_ENV): the server stops there and undoes what it set
    up, as for Ctrl-C; no cgroup was made yet, and no record, log or lock is left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "run", "--memory-limit", "16M", "--config",
         small_config(tmp_path), "--", "true"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, chain.PAUSE_AFTER_STEP_ENV: step})
    name = f"run{proc.pid}"
    st: dict = {}
    try:
        _wait_until(f"{name} at step {step}", lambda: step in (
            (chain.read_state(name) or {}).get("steps") or ()), 90)
        st = chain.read_state(name) or {}
        proc.kill()
        proc.wait(30)
        _wait_until("the server gone", lambda: not _alive(st["pid"]))
        _wait_until(f"{state_dir} empty (holds {list(state_dir.iterdir())})",
                    lambda: not list(state_dir.iterdir()), 10)
        assert not chain._loops_of(st["file"], st.get("identity"))
        assert not chain._is_mounted(st["mountpoint"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(30)
        if st.get("pid") and _alive(st["pid"]):
            os.kill(st["pid"], signal.SIGKILL)
        with contextlib.suppress(chain.ChainError):
            chain.clean_dead_owner(name, timeout=30, force=True)


#: A parent that starts CHILD tied to it (chain.on_parent_death, the signal blocked) and
#: sleeps until it is killed.
PARENT = """
import os, signal, subprocess, sys, time
from hwzswap.serve import chain
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(os.getpid())],
                         preexec_fn=chain.on_parent_death(signal.SIGTERM, block=True))
print(child.pid, flush=True)
time.sleep(120)
"""
#: A child that installs its SIGTERM handler only once its parent is dead (the server's
#: Python may take longer to start than the run that started it lives): the signal must wait
#: for it, neither killing the child half-started nor getting lost.
CHILD = """
import os, signal, sys, time
while os.getppid() == int(sys.argv[2]):
    time.sleep(0.01)
got = []
signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
deadline = time.monotonic() + 2
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
with open(sys.argv[1], "w") as f:
    f.write(str(got))
"""


def test_the_parents_death_signal_waits_for_the_childs_handler(tmp_path: Path) -> None:
    out = tmp_path / "got"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(out)],
                              stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait(30)
        parent.stdout.close()
    try:
        _wait_until("the child wrote what it got", lambda: out.exists() and out.read_text(),
                    20)
    finally:
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
    assert out.read_text() == f"[{int(signal.SIGTERM)}]"


def test_the_state_dir_fixture_removes_what_a_failed_test_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test left behind (here made by hand: an active swap on a loop device backed by
    a file under its tmp_path, an hwzswap cgroup with a process in it, an owner record that
    holds zswap parameters, state files) is removed by the fixture before the test fails
    (:func:`leftovers.remove_leftovers`): left on the machine, it would be in the next test's
    "before" and hide there."""
    from leftovers import loops_backed_under, remove_leftovers

    fake = tmp_path / "zswap"
    fake.mkdir()
    (fake / "enabled").write_text("Y\n")
    monkeypatch.setattr(kernelzswap, "ZSWAP_SYS", fake)
    d = tmp_path / "state"
    d.mkdir()
    (d / "leak.owner").write_text(json.dumps({"pid": 1, "zswap": {"enabled": "N"}}))
    (d / "leak.json").write_text("{}")
    backing = tmp_path / "swapfile"
    backing.write_bytes(bytes(4 << 20))
    backing.chmod(0o600)
    loop = subprocess.run(["losetup", "--show", "-f", str(backing)], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()
    cg = sleeper = None
    try:
        subprocess.run(["mkswap", loop], capture_output=True, check=True, timeout=60)
        subprocess.run(["swapon", loop], capture_output=True, check=True, timeout=60)
        cg = MemoryCgroup.create("hwzswap-leaktest", 16 << 20)
        sleeper = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: cg.add(os.getpid()))
        _wait_until("the sleeper in its cgroup", lambda: sleeper.pid in cg.pids(), 10)
        assert remove_leftovers(d, tmp_path, {loop}, {str(cg.path)}) == []
        assert sleeper.wait(10) == -signal.SIGKILL
        assert not cg.path.exists() and loop not in chain.active_swaps()
        assert not loops_backed_under(tmp_path) and not d.exists()
        assert (fake / "enabled").read_text().strip() == "N"
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(10)
        if cg is not None:
            cg.remove()
        if loop in chain.active_swaps():
            subprocess.run(["swapoff", loop], capture_output=True, timeout=120)
        for entry in loops_backed_under(tmp_path):
            subprocess.run(["losetup", "-d", entry.split(" on ", 1)[0]], timeout=60)


def test_the_state_dir_fixture_needs_no_memory_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every serve test's setup looks for hwzswap cgroups: on a host without a memory
    cgroup there are none to find (a test that makes one fails there on its own), and the
    setup of the tests that make none does not fail."""
    import leftovers

    from hwzswap.serve.cgroup import CgroupError

    def no_memory_cgroup(pid: object = "self") -> tuple[str, Path]:
        raise CgroupError("no memory cgroup controller is mounted")

    monkeypatch.setattr(leftovers, "cgroup_of", no_memory_cgroup)
    assert leftovers.hwzswap_cgroups() == set()
