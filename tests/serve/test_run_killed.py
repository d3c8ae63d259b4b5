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

from hwzswap.serve import chain
from hwzswap.serve.cgroup import MemoryCgroup

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


ZSWAP = Path("/sys/module/zswap/parameters")


@pytest.fixture
def zswap_params() -> Iterator[dict[str, str]]:
    """The kernel's zswap parameters before the test; put back after it, whatever happened."""
    keys = ("enabled", "compressor", "max_pool_percent", "shrinker_enabled")
    before = {k: (ZSWAP / k).read_text().strip() for k in keys if (ZSWAP / k).exists()}
    try:
        yield before
    finally:
        from hwzswap.serve.run import restore_kernel_zswap

        restore_kernel_zswap(before)


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
