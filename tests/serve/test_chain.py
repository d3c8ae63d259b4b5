"""``hwzswap swap on|off|status``: the real chain (FUSE mount, loop device, swapon) is set up
and undone, refusals say why, and a killed server leaves nothing after ``swap off``."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwzswap.serve import chain
from hwzswap.serve.cgroup import MemoryCgroup, limited_ancestor

from serveutil import PROG, hwzswap_cli, small_config


def _in_child(fn) -> str:
    """Run ``fn()`` in a forked child; its return value (or the error) as a string."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            out = f"ok: {fn()}"
        except BaseException as exc:  # noqa: BLE001
            out = f"{type(exc).__name__}: {exc}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@contextlib.contextmanager
def _ended(proc: subprocess.Popen, sig: int = signal.SIGTERM):
    """``proc`` for the with-block; if it still runs when the block ends (an assertion failed),
    it is sent ``sig`` and waited for, so no server outlives its test."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(60)


def _gone(st: dict) -> None:
    assert st["loop"] not in chain.active_swaps()
    assert not Path(st["mountpoint"]).exists() or not chain._is_mounted(st["mountpoint"])
    backing = chain._loop_backing(st["loop"])
    assert backing is None or not backing.startswith(st["mountpoint"])
    assert not chain.state_path(st["name"]).exists()


def test_on_status_off(state_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    p = hwzswap_cli("swap", "on", "--config", cfg, "--name", "t1")
    assert p.returncode == 0, p.stderr + p.stdout
    st = chain.read_state("t1")
    assert st and st["loop"] in chain.active_swaps()
    assert Path(f"/sys/block/{Path(st['loop']).name}/loop/dio").read_text().strip() == "1"
    swaps = Path("/proc/swaps").read_text()
    assert st["loop"] in swaps
    # The server is in no limited cgroup, and its memory is locked.
    assert limited_ancestor(st["pid"]) is None
    assert st["mlockall"] == "ok"
    status = hwzswap_cli("swap", "status", "--name", "t1", "--json")
    info = json.loads(status.stdout)
    assert info["server_alive"] and info["in_proc_swaps"]
    assert info["stats"]["write_pages"] >= 1  # mkswap's header
    # a client that connects and says nothing holds the control socket up for 2 s at most
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(st["socket"])
        t0 = time.monotonic()
        assert chain.query("t1", timeout=30)["write_pages"] >= 1
        # let go after its 2 s, not held until the client goes (the query would time out at
        # 30 s): the bound is loose for a loaded CI box
        assert time.monotonic() - t0 < 15
    # A second chain while this one is active is refused without --coexist.
    p2 = hwzswap_cli("swap", "on", "--config", cfg, "--name", "t2")
    assert p2.returncode == 2 and "another swap device is active" in p2.stderr
    off = hwzswap_cli("swap", "off", "--name", "t1")
    assert off.returncode == 0, off.stderr
    _gone(st)
    assert hwzswap_cli("swap", "status", "--name", "t1").stdout.strip().endswith("off")


def test_refusals_say_why(state_dir: Path, tmp_path: Path) -> None:
    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)
        chain.preflight()

    assert "needs root" in _in_child(as_nobody)

    def status_as_nobody() -> str:
        os.setgid(65534)
        os.setuid(65534)
        chain.status("t0")
        return "read"

    chain._write_state("t0", {"name": "t0", "pid": 1})  # as root: its folder is 0700

    try:  # not "unreadable state file ... remove it": the file is fine
        out = _in_child(status_as_nobody)
        assert "t0.json: permission denied: hwzswap swap needs root" in out, out
    finally:
        chain.state_path("t0").unlink()

    def without_devices() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.unshare(0x00020000) == 0  # CLONE_NEWNS: only this child sees the mounts
        assert libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) == 0  # rec, private
        assert libc.mount(b"tmpfs", b"/dev", b"tmpfs", 0, None) == 0
        msgs = []
        try:
            chain.preflight()
        except chain.ChainError as exc:
            msgs.append(str(exc))
        Path("/dev/fuse").touch()
        try:
            chain.preflight()
        except chain.ChainError as exc:
            msgs.append(str(exc))
        return " | ".join(msgs)

    out = _in_child(without_devices)
    assert "/dev/fuse is missing" in out and "no loop devices" in out

    cg = MemoryCgroup.create(f"hwzswap-test-limited-{os.getpid()}", 256 << 20)
    try:
        def limited() -> None:
            cg.add(os.getpid())
            chain.preflight()

        assert "memory-limited cgroup" in _in_child(limited)
    finally:
        cg.remove()


def test_killed_server_leaves_nothing_after_off(state_dir: Path, tmp_path: Path) -> None:
    st = chain.swap_on(small_config(tmp_path), name="t3")
    cg = MemoryCgroup.create(f"hwzswap-test-kill-{os.getpid()}", 24 << 20)
    prog = None
    try:
        prog = subprocess.Popen([sys.executable, PROG, "48"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                preexec_fn=lambda: cg.add(os.getpid()))
        deadline = time.monotonic() + 60
        while chain.query("t3")["write_pages"] < 2000:  # it is swapping now
            assert time.monotonic() < deadline and prog.poll() is None
            time.sleep(0.05)
        os.kill(st["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30  # dead once the kernel has torn it down and reaped
        while chain._server_alive(st):
            assert time.monotonic() < deadline, "the SIGKILLed server is still alive after 30 s"
            time.sleep(0.05)
        assert chain.status("t3")["on"] and not chain.status("t3")["server_alive"]
        # swapoff must bring the program's pages in (or poison them), charged to its cgroup:
        # at the limit that failed with ENOMEM now and then, so there is room here
        limit_file = "memory.limit_in_bytes" if cg.kind == "v1" else "memory.max"
        (cg.path / limit_file).write_text(str(256 << 20))
        done = chain.swap_off("t3")
        assert any(d.startswith("swapoff") for d in done), done
        _gone(st)
    finally:
        if prog is not None and prog.poll() is None:
            prog.kill()
        if prog is not None:
            prog.wait(30)
        cg.remove()


def test_server_in_a_limited_cgroup_is_refused(state_dir: Path, tmp_path: Path) -> None:
    """`swap on` started from inside a memory-limited cgroup refuses before setting anything
    up (the rule that keeps the chain from deadlocking)."""
    cg = MemoryCgroup.create(f"hwzswap-test-on-{os.getpid()}", 512 << 20)
    try:
        p = subprocess.run([sys.executable, "-m", "hwzswap", "swap", "on", "--config",
                            small_config(tmp_path), "--name", "t4"],
                           capture_output=True, text=True, timeout=60,
                           preexec_fn=lambda: cg.add(os.getpid()))
        assert p.returncode == 2 and "memory-limited cgroup" in p.stderr
        assert chain.read_state("t4") is None
    finally:
        cg.remove()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_undoes_the_chain_on_signals(state_dir: Path, tmp_path: Path, sig) -> None:
    st = chain.swap_on(small_config(tmp_path), name="t5")
    os.kill(st["pid"], sig)
    deadline = time.monotonic() + 30
    while chain._server_alive(st):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _gone(st)


def test_serve_in_the_foreground_until_ctrl_c(state_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "serve", "--config",
                             small_config(tmp_path), "--name", "t6"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with _ended(proc):
        assert "on (" in proc.stdout.readline()
        st = chain.read_state("t6")
        assert st and st["loop"] in chain.active_swaps()
        # `python -m hwzswap serve` is a live server (its command line names no module).
        assert chain.status("t6")["server_alive"]
        assert "(alive)" in hwzswap_cli("swap", "status", "--name", "t6").stdout
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0 and out.strip().endswith("off"), out
        _gone(st)


def test_a_bad_config_is_refused_before_a_server_starts(state_dir: Path,
                                                        tmp_path: Path) -> None:
    from hwzswap.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("zswap:\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: zswap\.bogus: unknown key"):
        chain.swap_on(str(bad), name="t7")
    assert chain.read_state("t7") is None
    assert not (state_dir / "t7.log").exists()  # no server was started


def test_the_state_file_is_replaced_whole(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No chain here (a private STATE_DIR, not the state_dir fixture, whose teardown would
    take these states for chains): the directory is made 0700, the file replaced whole, and
    a failed write leaves the previous state and no temporary file."""
    d = tmp_path / "run" / "hwzswap"
    monkeypatch.setattr(chain, "STATE_DIR", d)
    old = os.umask(0o022)
    try:
        chain._write_state("s", {"pid": 1})
        chain._write_state("s", {"pid": 2, "loop": "/dev/loop9"})
    finally:
        os.umask(old)
    assert (d.stat().st_mode & 0o777) == 0o700
    assert (chain.state_path("s").stat().st_mode & 0o777) == 0o644
    assert chain.read_state("s") == {"pid": 2, "loop": "/dev/loop9"}
    with pytest.raises(TypeError):
        chain._write_state("s", {"pid": object()})  # not JSON: nothing is written
    (chain.state_path("t") / "inside").mkdir(parents=True)  # the rename cannot land
    with pytest.raises(OSError):
        chain._write_state("t", {"pid": 3})
    assert chain.read_state("s") == {"pid": 2, "loop": "/dev/loop9"}
    assert sorted(p.name for p in d.iterdir()) == ["s.json", "t.json"]
    # the first state of a chain is written only where there is none (two servers started
    # with one name at once: the second is refused, the first's state stays)
    chain._claim_state("v", {"pid": 4})
    with pytest.raises(chain.ChainError, match=r"'v' was just taken by another server \(pid 4"):
        chain._claim_state("v", {"pid": 5})
    assert chain.read_state("v") == {"pid": 4}
    assert sorted(p.name for p in d.iterdir()) == ["s.json", "t.json", "v.json"]
    chain.state_path("u").write_text("[1, 2]")  # JSON, but not a state
    with pytest.raises(chain.ChainError, match=r"u\.json: unreadable state file \(a JSON list"):
        chain.swap_off("u")


def test_a_reused_pid_is_not_the_server(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A state whose server died and whose pid now names another process (another start
    time): the chain is dead, and `swap off` never signals that process."""
    monkeypatch.setattr(chain, "STATE_DIR", tmp_path / "st")
    other = subprocess.Popen(["sleep", "60"])
    try:
        start = chain._proc_start(other.pid)
        assert start is not None
        chain._write_state("r1", {"name": "r1", "pid": other.pid, "pid_start": start})
        assert chain._server_alive(chain.read_state("r1"))  # same pid and start: it
        chain._write_state("r1", {"name": "r1", "pid": other.pid,
                                  "pid_start": str(int(start) + 1)})
        assert not chain.status("r1")["server_alive"]
        # a state from before start times were recorded: known by its command line
        assert not chain._server_alive({"pid": other.pid})
        assert chain.swap_off("r1", timeout=2) == ["state removed"]
        assert other.poll() is None  # not signalled
    finally:
        other.kill()
        other.wait(10)


def test_serve_never_takes_another_chains_state(state_dir: Path, tmp_path: Path) -> None:
    """`serve --name N` while chain N runs is refused and leaves N's state and server alone
    (with --coexist too); over a dead server's leftovers it undoes them, then serves."""
    cfg = small_config(tmp_path)
    st = chain.swap_on(cfg, name="t8")
    for extra in ((), ("--coexist",)):
        p = hwzswap_cli("serve", "--config", cfg, "--name", "t8", *extra, timeout=60)
        assert p.returncode == 2 and "'t8' is already on" in p.stderr, p.stdout + p.stderr
        assert chain.read_state("t8") == {k: v for k, v in st.items() if k != "log"}
        assert chain.status("t8")["server_alive"] and st["loop"] in chain.active_swaps()
        assert chain._is_mounted(st["mountpoint"])
    os.kill(st["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while chain._server_alive(st):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "serve", "--config", cfg,
                             "--name", "t8"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    with _ended(proc):
        first = proc.stdout.readline()
        assert "undoing what a dead server left" in first and "swapoff" in first, first
        assert "on (" in proc.stdout.readline()
        new = chain.read_state("t8")
        assert new["pid"] == proc.pid and chain.status("t8")["server_alive"]
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0 and out.strip().endswith("off"), out
        _gone(new)


def test_a_server_whose_swap_was_turned_off_by_hand_exits(state_dir: Path,
                                                           tmp_path: Path) -> None:
    """`swapoff` of the loop device by hand, then SIGTERM: the swap is already off, so the
    server undoes the rest and exits (it retried swapoff, EINVAL taken for busy, forever)."""
    st = chain.swap_on(small_config(tmp_path), name="t9")
    subprocess.run(["swapoff", st["loop"]], check=True, timeout=60)
    os.kill(st["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 20
    while chain._server_alive(st):
        assert time.monotonic() < deadline, chain.read_state("t9")
        time.sleep(0.05)
    _gone(st)


def test_swap_off_leaves_a_reused_loop_number_alone(state_dir: Path, tmp_path: Path) -> None:
    """A dead chain's state names a loop device that now backs another chain: `swap off`
    of the dead one neither swaps it off nor detaches it."""
    cfg = small_config(tmp_path)
    st = chain.swap_on(cfg, name="t10")
    # its FUSE file had the device number t10's has now (freed, then taken) and inode 2
    dead = dict(st, name="t11", pid_start="1", socket=str(state_dir / "t11.sock"),
                mountpoint=str(state_dir / "t11" / "mnt"),
                file=str(state_dir / "t11" / "mnt" / "swap-0123456789abcdef"))
    chain._write_state("t11", dead)
    assert chain.status("t11")["on"] and not chain.status("t11")["server_alive"]
    chain.swap_off("t11", timeout=10)
    assert chain.read_state("t11") is None
    assert st["loop"] in chain.active_swaps() and chain._backs(st["loop"], st["file"])
    assert chain.status("t10")["server_alive"]


def test_exclusive_loads_is_refused_before_anything_is_set_up(state_dir: Path,
                                                              tmp_path: Path) -> None:
    """The kernel re-reads swap slots (blkid, dropped swap-cache pages) and frees them by
    discards: a config whose loads free the slot is refused by name, with nothing set up."""
    cfg = small_config(tmp_path, exclusive_loads=True)
    with pytest.raises(chain.ChainError,
                       match=r"engine\.yaml: zswap\.exclusive_loads: true cannot serve"):
        chain.swap_on(cfg, name="t12")
    assert chain.read_state("t12") is None
    p = hwzswap_cli("serve", "--config", cfg, "--name", "t12", timeout=60)
    assert p.returncode == 2 and "zswap.exclusive_loads: true cannot serve" in p.stderr
    assert chain.read_state("t12") is None and not (state_dir / "t12").exists()
    p = hwzswap_cli("run", "--memory-limit", "24M", "--config", cfg, "--", "true", timeout=60)
    assert p.returncode == 2 and f"{cfg}: zswap.exclusive_loads: true" in p.stderr


def test_a_failure_after_the_chain_is_undone_is_reported_not_left(state_dir: Path,
                                                                   tmp_path: Path) -> None:
    """The recording cannot be written at teardown (a file is where its folder was, so the
    folder cannot be made again): the server still
    finishes the teardown (engine closed, state removed), reports the failure on stderr and
    exits 1 (a failure, not a refusal)."""
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "serve", "--config",
                             small_config(tmp_path), "--name", "t13", "--record",
                             str(rec_dir / "k.hwzwl")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    cg = MemoryCgroup.create(f"hwzswap-test-rec-{os.getpid()}", 24 << 20)
    try:
        with _ended(proc):
            assert "on (" in proc.stdout.readline()
            st = chain.read_state("t13")
            p = subprocess.run([sys.executable, PROG, "32"], capture_output=True, timeout=120,
                               preexec_fn=lambda: cg.add(os.getpid()))
            assert p.returncode == 0 and chain.query("t13")["write_pages"] > 1000
            rec_dir.rmdir()
            rec_dir.write_text("not a folder\n")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 1, (out, err)
            assert "error at teardown: recording:" in err and out.strip().endswith("off"), out
            _gone(st)
    finally:
        cg.remove()


def test_a_loop_device_attached_by_a_failed_losetup_is_detached(
        state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`losetup --show -f` attaches the device but fails (or times out) before the server
    learns its name: the teardown finds it by its backing file and detaches it."""
    real = shutil.which("losetup")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "losetup").write_text(
        f'#!/bin/sh\ncase "$*" in *--show*) {real} "$@" >/dev/null; echo injected >&2; '
        f'exit 1;; esac\nexec {real} "$@"\n')
    (bindir / "losetup").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    left: list[str] = []
    try:
        with pytest.raises(chain.ChainError, match="did not come up: .*losetup.*injected"):
            chain.swap_on(small_config(tmp_path), name="t14")
        assert chain.read_state("t14") is None
    finally:
        # ours: backed by the chain's FUSE file ("/swap-<token>" once that is unmounted)
        left = [f"/dev/{d.name}" for d in Path("/sys/block").glob("loop*")
                if re.fullmatch(rf"({re.escape(str(state_dir))}/t14/mnt)?/swap-[0-9a-f]{{16}}",
                                chain._loop_backing(d.name) or "")]
        for loop in left:  # never leave one behind, even when this test fails
            subprocess.run([real, "-d", loop], check=False)
    assert not left


def test_serve_refusals_exit_2_as_the_rest_of_the_cli(state_dir: Path, tmp_path: Path) -> None:
    """Refused input exits 2 (as bench, sweep and stats do), saying why on stderr, with
    nothing set up; the help says what each exit status means."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("zswap:\n  bogus: 1\n")
    cases = [
        (("--config", str(bad)), "zswap.bogus: unknown key"),
        (("--config", str(tmp_path / "missing.yaml")), "missing.yaml"),
        ((), "--config F is required"),
        (("--config", small_config(tmp_path), "--threads", "0"), "must be at least 1"),
    ]
    (tmp_path / "rec").mkdir()
    cases += [  # refused before anything is set up, not found out at teardown
        (("--config", small_config(tmp_path), "--record", str(tmp_path / "rec")),
         "is a directory"),
    ]
    for args, why in cases:
        p = hwzswap_cli("serve", "--name", "t15", *args, timeout=60)
        assert p.returncode == 2 and why in p.stderr, (args, p.returncode, p.stderr, p.stdout)
        assert chain.read_state("t15") is None and not (state_dir / "t15").exists()
    # a name is a file name under the state directory: never a path out of it
    for bad_name, cmd in (("../t15", ("serve", "--config", small_config(tmp_path))),
                          ("a/b", ("swap", "on", "--config", small_config(tmp_path))),
                          (".hidden", ("swap", "off"))):
        p = hwzswap_cli(*cmd, "--name", bad_name, timeout=60)
        assert p.returncode == 2 and "chain name" in p.stderr, (cmd, bad_name, p.stderr)
    for bad_name in ("", "x" * 65, "a b", "-x"):
        with pytest.raises(chain.ChainError, match="chain name"):
            chain.check_name(bad_name)
    assert chain.check_name("lz4-test_1.a") == "lz4-test_1.a"
    assert not (state_dir.parent / "t15.json").exists() and not (state_dir / "a").exists()
    with pytest.raises(chain.ChainError, match="chain name"):
        chain.swap_on(small_config(tmp_path), name="../t15")
    # a state directory so deep that the control socket's path cannot be bound
    deep = tmp_path / ("d" * 100)
    p = subprocess.run([sys.executable, "-m", "hwzswap", "serve", "--config",
                        small_config(tmp_path), "--name", "t15"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "HWZSWAP_STATE_DIR": str(deep)})
    assert p.returncode == 2 and "longer than the 107 a unix socket" in p.stderr, p.stderr
    assert not deep.exists()
    # the server's own entry (`swap on` starts it so) answers the same
    p = subprocess.run([sys.executable, "-m", "hwzswap.serve.chain", "--config", str(bad),
                        "--name", "t15"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "zswap.bogus: unknown key" in p.stderr, p.stderr
    helptext = " ".join(hwzswap_cli("serve", "--help").stdout.split())
    assert "Exit status 0 after a complete teardown; 2 when refused" in helptext
    assert "1 when the teardown is incomplete" in helptext
    helptext = " ".join(hwzswap_cli("swap", "--help").stdout.split())
    assert "2 when refused" in helptext and "1 when on or off leaves something" in helptext


def test_swap_off_that_leaves_the_chain_exits_1(state_dir: Path, tmp_path: Path) -> None:
    """A server that does not tear down in time (stopped here) is a failure, not a refusal:
    `swap off` exits 1 and says how to end it; `--force` then undoes everything."""
    st = chain.swap_on(small_config(tmp_path), name="t16")
    os.kill(st["pid"], signal.SIGSTOP)
    try:
        p = hwzswap_cli("swap", "off", "--name", "t16", "--timeout", "0.5", timeout=60)
        assert p.returncode == 1 and "within 0.5 s" in p.stderr and "--force" in p.stderr
        assert chain._server_alive(st) and st["loop"] in chain.active_swaps()
        # status says so within its short wait (2 s; it waited 10 s, then showed no sign of
        # it): timed in-process, so a loaded box's interpreter start-up is not in the bound
        t0 = time.monotonic()
        out = chain.status("t16")
        assert time.monotonic() - t0 < 8 and out["server_alive"] and "stats_error" in out, out
        p = hwzswap_cli("swap", "status", "--name", "t16", timeout=60)
        assert p.returncode == 0
        assert "(alive)" in p.stdout and "does not answer" in p.stdout, p.stdout
        assert "swap off --force --name t16" in p.stdout
        p = hwzswap_cli("swap", "off", "--name", "t16", "--timeout", "0.5", "--force",
                        timeout=60)
        assert p.returncode == 0 and "killed" in p.stdout, p.stdout + p.stderr
        _gone(st)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(st["pid"], signal.SIGCONT)


def _undo_loops_of(st: dict) -> None:
    """Swap off and detach every loop device still holding chain ``st``'s FUSE file, found
    by its device and inode as losetup lists them (not by the code under test): a test that
    fails must not leave them behind."""
    out = subprocess.run(["losetup", "--list", "--json", "-O", "NAME,BACK-INO,BACK-MAJ:MIN"],
                         capture_output=True, text=True, timeout=60).stdout
    ident = st.get("identity") or {}
    for dev in json.loads(out or '{"loopdevices": []}')["loopdevices"]:
        if (str(dev["back-ino"]), dev["back-maj:min"].strip()) != (str(ident.get("ino")),
                                                             ident.get("dev")):
            continue
        loop = dev["name"]
        if loop in chain.active_swaps():
            subprocess.run(["swapoff", loop], check=False, timeout=120)
        subprocess.run(["losetup", "-d", loop], check=False, timeout=60)


def _lazy_unmount(st: dict) -> None:
    subprocess.run(["umount", "-l", st["mountpoint"]], check=True, timeout=30)
    assert not chain._is_mounted(st["mountpoint"])
    # the path the state names is gone
    assert chain._loop_backing(st["loop"]) == "/" + os.path.basename(st["file"])
    assert st["loop"] in chain.active_swaps()


def test_a_lazily_unmounted_chain_is_still_served_and_undone(state_dir: Path,
                                                             tmp_path: Path) -> None:
    """`umount -l` of the FUSE mount under the live swap: the chain keeps serving (a program
    swaps through it and gets every page back), and `swap off` recognises the loop device by
    the file's device and inode, swaps it off, detaches it and removes the state (it took the
    loop for someone else's and left a live swap on a dead server)."""
    st = chain.swap_on(small_config(tmp_path), name="t17")
    cg = MemoryCgroup.create(f"hwzswap-test-lazy-{os.getpid()}", 24 << 20)
    try:
        assert st["identity"]["dev"].startswith("0:") and st["identity"]["ino"] == 2
        _lazy_unmount(st)
        p = subprocess.run([sys.executable, PROG, "32"], capture_output=True, text=True,
                           timeout=120, preexec_fn=lambda: cg.add(os.getpid()))
        assert p.returncode == 0 and "verified" in p.stdout, p.stdout + p.stderr
        assert chain.query("t17")["write_pages"] > 1000
        t0 = time.monotonic()
        off = hwzswap_cli("swap", "off", "--name", "t17", timeout=60)
        assert off.returncode == 0 and "torn down by the server" in off.stdout, off.stderr
        assert time.monotonic() - t0 < 20  # the server's FUSE threads end with the detach
        assert not chain._server_alive(st)
        assert chain._loops_of(st["file"], st["identity"]) == []
        _gone(st)
        # a clean teardown takes the server log with it (one that failed keeps it)
        assert not Path(st["log"]).exists()
    finally:
        cg.remove()
        _undo_loops_of(st)


def test_a_dead_lazily_unmounted_chain_is_undone_by_the_leftover_check(
        state_dir: Path, tmp_path: Path) -> None:
    """`umount -l`, then the server is killed: the next `swap on` of that name takes the
    state for a dead run's leftovers and undoes them (swapoff, losetup -d) before it sets up
    its own chain, so exactly one swap device is left, the new one."""
    cfg = small_config(tmp_path)
    swaps_before = set(chain.active_swaps())
    st = chain.swap_on(cfg, name="t18")
    new = None
    try:
        _lazy_unmount(st)
        os.kill(st["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while chain._server_alive(st):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert chain._backs(st["loop"], st["file"], st["identity"])  # after its death too
        assert chain._loops_of(st["file"], st["identity"]) == [st["loop"]]
        new = chain.swap_on(cfg, name="t18")
        assert set(chain.active_swaps()) - swaps_before == {new["loop"]}
        assert chain._loops_of(st["file"], st["identity"]) == []
        assert chain.swap_off("t18") == ["server stopped; chain torn down by the server"]
        _gone(new)
    finally:
        _undo_loops_of(st)


def test_a_swapon_that_fails_after_activating_is_undone(state_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """`swapon` activates the device but then fails (or times out): the teardown swaps it
    off before detaching (it skipped the swapoff, and `losetup -d` of an active swap device
    only marks it to go later, so a swap on a dead server was left, its state removed)."""
    real = shutil.which("swapon")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "swapon").write_text(f'#!/bin/sh\n{real} "$@" || exit $?\necho injected >&2\n'
                                   'exit 1\n')
    (bindir / "swapon").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    swaps_before = set(chain.active_swaps())
    left: set[str] = set()
    try:
        with pytest.raises(chain.ChainError, match="did not come up: .*swapon.*injected"):
            chain.swap_on(small_config(tmp_path), name="t19")
        left = set(chain.active_swaps()) - swaps_before
        assert chain.read_state("t19") is None
    finally:
        for loop in set(chain.active_swaps()) - swaps_before:  # never leave one behind
            if re.fullmatch(rf"({re.escape(str(state_dir))}/t19/mnt)?/swap-[0-9a-f]{{16}}",
                            chain._loop_backing(loop) or ""):
                subprocess.run(["swapoff", loop], check=False, timeout=120)
                subprocess.run(["losetup", "-d", loop], check=False, timeout=60)
    assert not left


def test_a_stop_signal_during_the_setup_ends_it_at_the_next_step(
        state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while the chain is being set up (losetup slowed down here): the server stops
    at the next step, never turns swap on, undoes what it set up and exits 128+15 (it ran the
    setup to the end, swapon included, then tore it down and exited 0)."""
    real = shutil.which("losetup")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "losetup").write_text(f'#!/bin/sh\ncase "$*" in *--show*) sleep 1;; esac\n'
                                    f'exec {real} "$@"\n')
    (bindir / "losetup").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "serve", "--config",
                             small_config(tmp_path), "--name", "t20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _ended(proc, signal.SIGKILL):
        deadline = time.monotonic() + 60
        while "serve" not in ((chain.read_state("t20") or {}).get("steps") or []):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)  # losetup is running (sleeping) now
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, (out, err)
        assert "stopped by SIGTERM before the chain was up" in out and "on (" not in out
        assert "error" not in err, err
        assert chain.read_state("t20") is None and not (state_dir / "t20").exists()


def test_a_server_whose_swap_on_caller_is_gone_keeps_serving(state_dir: Path,
                                                             tmp_path: Path) -> None:
    """The `swap on` that started the server is gone before it hears "ready" (killed, its
    terminal hung up): the chain stays on, as `swap on` would have left it, and says how to
    end it (the failed write of "ready" tore the whole chain down)."""
    r, w = os.pipe()
    os.close(r)  # gone before the server starts: closed after it, a loaded machine could let
    # the server write "ready" into the pipe first, and it then (rightly) said nothing
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap.serve.chain", "--config",
                             small_config(tmp_path), "--name", "t21", "--ready-fd", str(w)],
                            pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    os.close(w)
    with _ended(proc):
        seen = []
        while not seen or "cannot tell `swap on` that swap is on" not in seen[-1]:
            seen.append(proc.stderr.readline())
            assert seen[-1], seen  # EOF: it exited instead
        st = chain.read_state("t21")
        assert st and chain.status("t21")["server_alive"] and st["loop"] in chain.active_swaps()
        assert chain.query("t21")["write_pages"] >= 1
        assert chain.swap_off("t21") == ["server stopped; chain torn down by the server"]
        assert proc.wait(30) == 0
        _gone(st)


def test_a_state_directory_with_a_space_is_undone_whole(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """HWZSWAP_STATE_DIR with a space in it: after a killed server `swap off` finds the mount
    (mountinfo writes the space as \\040, so it was taken for unmounted and left mounted,
    its state removed)."""
    d = tmp_path / "state dir"
    monkeypatch.setenv("HWZSWAP_STATE_DIR", str(d))
    monkeypatch.setattr(chain, "STATE_DIR", d)
    swaps_before = set(chain.active_swaps())
    st = chain.swap_on(small_config(tmp_path), name="t22")
    try:
        assert chain._is_mounted(st["mountpoint"])
        os.kill(st["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while chain._server_alive(st):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        done = chain.swap_off("t22")
        assert f"umount {st['mountpoint']}" in done, done
        _gone(st)
        assert "state\\040dir" not in Path("/proc/self/mountinfo").read_text()
    finally:
        with contextlib.suppress(Exception):
            chain.swap_off("t22", timeout=30, force=True)
        for loop in set(chain.active_swaps()) - swaps_before:
            if (chain._loop_backing(loop) or "").startswith(str(d)):
                subprocess.run(["swapoff", loop], check=False, timeout=120)
                subprocess.run(["losetup", "-d", loop], check=False, timeout=60)
        from hwzswap.serve.fuse import umount

        with contextlib.suppress(Exception):
            umount(st["mountpoint"])


def test_a_server_not_up_in_time_is_stopped_and_says_so(state_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """`swap on` gives the server `timeout` seconds (losetup slowed down here): past it the
    server is stopped, nothing is left, and the error says it was the time (it showed only
    the log's last lines)."""
    real = shutil.which("losetup")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "losetup").write_text(f'#!/bin/sh\ncase "$*" in *--show*) sleep 2;; esac\n'
                                    f'exec {real} "$@"\n')
    (bindir / "losetup").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    with pytest.raises(chain.ChainError, match=r"did not come up: not up within 1\.5 s, "
                                               r"stopped \("):
        chain.swap_on(small_config(tmp_path), name="t23", timeout=1.5)
    assert chain.read_state("t23") is None and not (state_dir / "t23").exists()


def test_a_loop_device_a_killed_server_had_not_named_is_detached_by_off(
        state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server is killed after `losetup` attached the device but before it learnt its
    name (its state has no loop yet): `swap off` finds the device by the chain's file and
    detaches it (it looked only at the state's loop, so the device was left attached)."""
    real = shutil.which("losetup")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "losetup").write_text(
        f'#!/bin/sh\ncase "$*" in *--show*) {real} "$@" || exit $?; touch {tmp_path}/attached; '
        f'sleep 2; exit 0;; esac\nexec {real} "$@"\n')
    (bindir / "losetup").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "serve", "--config",
                             small_config(tmp_path), "--name", "t24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    st: dict = {}
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "attached").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.kill()
        proc.wait(30)
        st = chain.read_state("t24")
        assert st.get("loop") is None and st["file"]
        attached = chain._loops_of(st["file"], st["identity"])
        assert len(attached) == 1
        done = chain.swap_off("t24")
        assert f"losetup -d {attached[0]}" in done, done
        assert chain._loops_of(st["file"], st["identity"]) == []
        assert chain.read_state("t24") is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if st.get("file"):
            for d in Path("/sys/block").glob("loop*"):
                if (chain._loop_backing(d.name) or "").endswith(os.path.basename(st["file"])):
                    subprocess.run([real, "-d", f"/dev/{d.name}"], check=False, timeout=60)
