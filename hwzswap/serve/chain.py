"""``hwzswap swap on|off|status`` (and ``hwzswap serve``): the whole chain from the kernel's swap
to the engine, set up and torn down.

``on`` starts a server process (outside any memory-limited cgroup, its memory locked with
``mlockall``) that

1. opens the engine (``open_zswap(config)``),
2. mounts a FUSE file system holding one file, the swap device's contents (:mod:`.fuse`,
   :mod:`.server`), under ``/run/hwzswap/<name>/mnt``,
3. attaches a loop device to that file with ``losetup --direct-io=on`` (without direct I/O the
   page cache double-buffers swap and the server sees no reads),
4. runs ``mkswap`` and ``swapon --discard=pages --priority P`` on the loop device,

and records each step in a state file, ``/run/hwzswap/<name>.json``, as soon as it is done. The
server undoes the chain in reverse order on SIGTERM, SIGINT or SIGHUP, and on an error while
setting it up. ``off`` asks the server to do that; if the server is gone (crashed, killed) it
undoes whatever the state file says is left itself: ``swapoff`` (reads of a dead server fail,
so the kernel gives up those pages instead of hanging), ``losetup -d``, a lazy unmount plus an
abort of the FUSE connection, and the state file. The loop device is known as the chain's by
its backing file, and, once the mount was lazily unmounted (``umount -l``) under the live swap
and that path is gone, by the file's device and inode, recorded before ``losetup``.

``on`` refuses, with the reason, when not root, without ``/dev/fuse``, without loop devices,
from inside a memory-limited cgroup, while the kernel's own zswap is on (it would take the
pages first), while another swap device is active or being set up (``--coexist`` allows
that), or while another process sets up, serves or undoes a chain of that name (the locks:
see "locks" below).

The server of ``on`` writes its output to ``/run/hwzswap/<name>.log`` and, as it exits, its
exit status and what failed in its teardown to ``/run/hwzswap/<name>.exit`` (``off`` is not
its parent, so it cannot wait for it). ``off`` reads that: a teardown that failed (a
recording not written) fails ``off`` too, with the log kept; a clean one removes both. A
swapoff the server could not do (ENOMEM) is in the state file (``error``,
``swapoff_failed_at``), where ``off`` sees it at once. ``status`` shows both: a failed swapoff
(the chain is stuck on until that is dealt with), and the exit record of a server that ended
on its own (a signal ``off`` did not send, a failure while serving: the chain is off), which
``off`` then clears, with the log unless that server's end failed.

A chain that ``hwzswap run`` set up has an owner (see "owners" below): its server is tied to
that process and, when it dies without its teardown (SIGKILL, the OOM killer), kills what is
left in its cgroup and undoes the chain by the usual path; what it cannot undo, the next
``run`` or ``swap off --name`` of the chain does.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwzswap.errors import HwzswapError
from hwzswap.fileio import write_atomic
from hwzswap.serve import kernelzswap

STATE_DIR = Path(os.environ.get("HWZSWAP_STATE_DIR", "/run/hwzswap"))
DEFAULT_NAME = "hwzswap"
DEFAULT_PRIORITY = 100

#: Tests only: the server waits (up to 60 s) for a stop signal right after it recorded the
#: setup step this names ("mount", "serve", "loop", "swapon"), so that a test can stop
#: ``swap on`` at a known step whatever the machine's load (polling the state file for the
#: step could be late by more than the step takes).
PAUSE_AFTER_STEP_ENV = "HWZSWAP_TEST_PAUSE_AFTER_STEP"

#: Exit statuses of ``hwzswap serve`` (and the server of ``swap on``), as the rest of the CLI
#: uses them: refused or bad input 2 (nothing left set up), a failure of the work itself 1.
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


class ChainError(HwzswapError):
    """The swap chain could not be set up, used or torn down; the message says why."""


class ChainLeftError(ChainError):
    """Something of the chain is still set up (the message names it and says how to undo
    it): the work failed, it was not refused, so ``swap on`` exits 1, not 2."""


class ChainTeardownError(ChainError):
    """The chain is torn down (nothing is left set up), but something of the teardown failed
    (a recording that could not be written): :func:`swap_off` with ``strict=True``.
    ``problems``: what failed, one ``"KIND: what"`` each (``recording``, ``closing the
    engine``), as the server recorded them."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = [str(p) for p in problems]


# -- preflight -----------------------------------------------------------------------------------


def active_swaps() -> list[str]:
    """Devices and files in ``/proc/swaps``."""
    try:
        lines = Path("/proc/swaps").read_text().splitlines()[1:]
    except OSError:
        return []
    return [line.split()[0] for line in lines if line.strip()]


#: zswap's switch: while it is Y, the kernel compresses pages in front of every swap device
ZSWAP_ENABLED = kernelzswap.ZSWAP_SYS / "enabled"


def kernel_zswap_on() -> bool:
    """Whether the kernel's own zswap is enabled (False where it is not built in)."""
    return kernelzswap.is_enabled()


def check_kernel_zswap() -> None:
    """Refuse while the kernel's zswap is on: it would take the pages in front of hwzswap,
    which would then see almost none (pswpin/pswpout 0) and every figure would measure the
    kernel's zswap instead."""
    if kernel_zswap_on():
        raise ChainError(
            f"the kernel's own zswap is on ({ZSWAP_ENABLED} is Y): it would compress the pages "
            "in front of hwzswap, which would then see almost none, so every figure would "
            f"measure the kernel's zswap; turn it off with `echo N > {ZSWAP_ENABLED}` (and "
            "back on afterwards if you want it), or measure the kernel's own zswap with "
            "`hwzswap run --compare kernel-<comp>`")


def preflight(*, coexist: bool = False, check_cgroup: bool = True,
              allow_kernel_zswap: bool = False) -> None:
    """Raise :class:`ChainError` naming the first reason the chain cannot work here.
    ``allow_kernel_zswap``: the kernel's zswap may be on (a ``run --compare kernel-<comp>``
    run, which sets it itself); otherwise it is refused (:func:`check_kernel_zswap`)."""
    if os.geteuid() != 0:
        raise ChainError("hwzswap swap needs root (mount, losetup, swapon): run it as root")
    if not os.path.exists("/dev/fuse"):
        raise ChainError("/dev/fuse is missing: load the fuse module (modprobe fuse) or run "
                         "where FUSE is available")
    if not os.path.exists("/dev/loop-control") and not os.path.exists("/dev/loop0"):
        raise ChainError("no loop devices (/dev/loop-control): load the loop module "
                         "(modprobe loop)")
    for tool in ("losetup", "mkswap", "swapon", "swapoff"):
        if shutil.which(tool) is None:
            raise ChainError(f"{tool} is not installed (util-linux): apt-get install util-linux")
    if check_cgroup:
        from hwzswap.serve.cgroup import CgroupError, limited_ancestor

        try:
            lim = limited_ancestor("self")
        except CgroupError:
            lim = None
        if lim is not None:
            raise ChainError(
                f"this process is inside a memory-limited cgroup ({lim[0]}, limit {lim[1]} "
                "bytes): the swap server must never be, or reclaim in that cgroup would wait "
                "on the server itself; start it from an unlimited cgroup"
            )
    if not allow_kernel_zswap:
        check_kernel_zswap()
    if not coexist:
        check_no_other_swap()


def _chains_by_device() -> dict[str, dict[str, Any]]:
    """The loop device of every chain with a state file, and that state (its ``name``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in chain_names():
        try:
            st = read_state(name)
        except ChainError:
            continue
        if st and st.get("loop"):
            out[str(st["loop"])] = {**st, "name": name}
    return out


def check_no_other_swap() -> None:
    """Refuse while another swap device is active (``--coexist`` skips this). Checked after a
    dead chain of the same name was undone: its own device must not count. A device that is
    an hwzswap chain's is named as that chain, with how to remove it."""
    others = active_swaps()
    if others:
        chains = _chains_by_device()
        what, hints = [], []
        for dev in others:
            st = chains.get(dev)
            if st is None:
                what.append(dev)
                continue
            alive = "alive" if _server_alive(st) else "dead"
            what.append(f"{dev}: hwzswap chain {st['name']!r}, server pid {st.get('pid')} "
                        f"{alive}")
            hints.append(f"`hwzswap swap off --name {st['name']}`")
        how = (f"{' and '.join(hints)} remove{'s' if len(hints) == 1 else ''} "
               f"{'it' if len(hints) == 1 else 'them'}" if hints else "swapoff it")
        if len(hints) < len(others) and hints:
            how += "; swapoff the others"
        raise ChainError(
            f"another swap device is active ({', '.join(what)}): the figures would mix "
            f"both; {how}, or pass --coexist"
        )


#: The smallest swap area ``mkswap`` makes: 40 KiB ("swap area needs to be at least 40 KiB").
MIN_SWAP_PAGES = 10


def check_servable(config: Any, source: str) -> None:
    """Refuse a config the kernel's swap cannot be served with (``config`` a loaded
    :class:`~hwzswap.config.ZswapConfig`, ``source`` the file it came from).

    ``zswap.exclusive_loads: true`` frees a slot when it is loaded, but for a swap device the
    kernel, not hwzswap, decides when a slot is free: it reads slots again when it likes (blkid
    probing the device, a clean swap-cache page dropped and faulted back) and frees them only
    with a discard. The second read of such a slot would fail with EIO.

    ``swap.nr_pages`` below :data:`MIN_SWAP_PAGES` is refused here, before anything is set
    up, rather than by ``mkswap`` after the mount and the loop device (the bench, which sets
    up no swap area, takes smaller ones)."""
    from hwzswap.errors import ConfigError

    nr_pages = getattr(getattr(config, "swap", None), "nr_pages", None)
    if isinstance(nr_pages, int) and nr_pages < MIN_SWAP_PAGES:
        raise ConfigError(
            f"{source}: swap.nr_pages: {nr_pages} pages is too small for a swap area: mkswap "
            f"and the kernel need at least {MIN_SWAP_PAGES} pages "
            f"({MIN_SWAP_PAGES * 4} KiB, the header page included); give "
            f"swap.nr_pages: {MIN_SWAP_PAGES} or more")
    if getattr(config.zswap, "exclusive_loads", False):
        raise ChainError(
            f"{source}: zswap.exclusive_loads: true cannot serve the kernel's swap: a load "
            "would free the slot, but the kernel reads slots again (blkid, dropped swap-cache "
            "pages) and frees them itself with a discard, so the next read would fail with "
            "EIO; set zswap.exclusive_loads: false (or leave it out) to serve this config")


# -- state ------------------------------------------------------------------------------------


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: sun_path of a unix socket holds 108 bytes, the terminating NUL included
_SOCKET_PATH_MAX = 107


def check_name(name: str) -> str:
    """``name`` if it can name a chain: it becomes a file and folder name under the state
    directory (so no ``/``, no leading ``.``: ``--name ../x`` wrote state elsewhere as root)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ChainError(f"chain name {str(name)[:80]!r}: use 1-64 letters, digits, '_', '.' "
                         "or '-', starting with a letter or digit (e.g. hwzswap, lz4-test)")
    return name


def chain_name(text: str) -> str:
    """``--name``: a chain name (:func:`check_name`) or an argparse usage error."""
    try:
        return check_name(text)
    except ChainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def state_path(name: str) -> Path:
    return STATE_DIR / f"{check_name(name)}.json"


def socket_path(name: str) -> Path:
    """The server's control socket; refused (before anything is set up) when longer than a
    unix socket's path may be."""
    path = STATE_DIR / f"{check_name(name)}.sock"
    if len(os.fsencode(path)) > _SOCKET_PATH_MAX:
        raise ChainError(f"the control socket {path} would be {len(os.fsencode(path))} bytes, "
                         f"longer than the {_SOCKET_PATH_MAX} a unix socket's path takes: give a "
                         "shorter --name or HWZSWAP_STATE_DIR")
    return path


def exit_path(name: str) -> Path:
    """What the server of ``swap on`` left when it exited (its exit status and what failed in
    its teardown), for the ``swap off`` that stopped it: that is not its parent, so it cannot
    wait for it."""
    return STATE_DIR / f"{check_name(name)}.exit"


def log_path(name: str) -> Path:
    """The server log of ``swap on`` (the server's output)."""
    return STATE_DIR / f"{check_name(name)}.log"


def off_path(name: str) -> Path:
    """The note of a ``swap off`` that sent the server its SIGTERM (its ``pid``,
    ``pid_start``, ``at``; ``abandoned`` once that ``swap off`` stopped waiting for the end,
    interrupted or past its ``--timeout``): the server's end is then ``swap off``'s, not its
    own, and one whose ``swap off`` is gone clears its own exit record and log."""
    return STATE_DIR / f"{check_name(name)}.off"


def _write_off_note(name: str, st: dict[str, Any], abandoned: bool = False) -> None:
    """Note that ``swap off`` stops the server of state ``st`` (:func:`off_path`)."""
    note = {"pid": st.get("pid"), "pid_start": st.get("pid_start"), "at": time.time(),
            "abandoned": abandoned}
    with contextlib.suppress(OSError):  # without it, only the wording of `status` suffers
        write_atomic(off_path(name), lambda tmp: tmp.write_text(json.dumps(note)))


def _off_note(name: str, st: dict[str, Any]) -> dict[str, Any] | None:
    """The :func:`off_path` note about the server of state (or exit record) ``st``, or None
    when there is none about that server."""
    try:
        note = json.loads(off_path(name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or (note.get("pid"), note.get("pid_start")) != (
            st.get("pid"), st.get("pid_start")):
        return None
    return note


def _drop_off_note(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        off_path(name).unlink()


def _clear_abandoned(name: str, st: dict[str, Any]) -> bool:
    """Once the server of state ``st`` has exited: when a ``swap off`` that stopped it no
    longer waits (its note says ``abandoned``), do what it would have done: take its exit
    record, and its log when it ended cleanly. True when done. Both that server (at its
    exit) and that ``swap off`` (when it stopped waiting) call it: whichever comes last
    finds the other's part done, so the cleanup happens whatever the order."""
    note = _off_note(name, st)
    if note is None or not note.get("abandoned"):
        return False
    ended = _ended_record(name)
    if ended is None or (ended.get("pid"), ended.get("pid_start")) != (
            st.get("pid"), st.get("pid_start")):
        return False
    if _ended_cleanly(ended):
        for path in (exit_path(name), log_path(name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        _drop_off_note(name)
    # else the record and the log stay (they say what failed); the note too, so that
    # `swap status` says it was `swap off` that stopped it
    return True


#: a log an earlier server left, moved aside by the next ``swap on`` (:func:`_move_old_log`)
_MOVED_LOG_RE = re.compile(r".*\.\d{8}-\d{6}(-\d+)?")


def chain_names() -> list[str]:
    """The name of every chain the state directory knows: one with a state file (on, or left
    by a dead server), an exit record, an owner record or a log of its own (not one moved
    aside)."""
    names: set[str] = set()
    try:
        entries = list(STATE_DIR.iterdir())
    except OSError:
        return []
    for entry in entries:
        stem, dot, ext = entry.name.rpartition(".")
        if not dot or ext not in ("json", "exit", "log", "owner") or not _NAME_RE.fullmatch(
                stem):
            continue
        if ext == "log" and _MOVED_LOG_RE.fullmatch(stem):
            continue
        names.add(stem)
    return sorted(names)


# -- locks --------------------------------------------------------------------------------------
#
# Two flock(2) locks keep setups that run at once apart:
#
# * ``<name>.lock``: held for the whole life of chain ``name``'s setup, serving and teardown
#   (by ``swap on`` while it starts the server, then by the server, which inherits it), and by
#   whoever undoes a dead server's leftovers. A second ``swap on`` of that name is refused
#   while it is held, instead of tearing down (or moving the log of) the chain that holds it.
# * ``.setup.lock``: held from the "no other swap device" check until ``swapon`` returned, so
#   two setups without ``--coexist`` cannot both pass the check and both come up.
#
# A lock file is removed by its last holder, while holding it; a taker that finds its file
# gone after flock() tries again on a fresh one.

SETUP_LOCK = ".setup.lock"


def name_lock_path(name: str) -> Path:
    return STATE_DIR / f"{check_name(name)}.lock"


def _setup_lock_path() -> Path:
    return STATE_DIR / SETUP_LOCK


def _lock(path: Path, what: dict[str, Any], wait_s: float = 0.0) -> int | None:
    """flock ``path`` exclusively, waiting up to ``wait_s`` seconds: the open descriptor
    (close-on-exec) holding it, its holder (``what``, with this pid) written in it; None
    when another holds it."""
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        if _same_file(fd, path):
            _note_holder(fd, what)
            return fd
        os.close(fd)  # its last holder removed it meanwhile: take a fresh one


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _note_holder(fd: int, what: dict[str, Any]) -> None:
    """Write who holds a lock into its file (for the refusals of those who find it held)."""
    data = json.dumps({**what, "pid": os.getpid()}).encode()
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as its holder wrote it: "pid P (what it does)"."""
    try:
        h = json.loads(path.read_text())
        pid, doing = h.get("pid"), h.get("doing")
    except (OSError, ValueError, AttributeError):
        return "another process"
    what = [str(doing)] if doing else []
    if _proc_start(pid) is None:
        what.append("exiting")
    return f"pid {pid}" + (f" ({', '.join(what)})" if what else "")


def _unlock(fd: int | None, path: Path, remove: bool = True) -> None:
    """Release a lock from :func:`_lock` (``remove``: delete its file first, while still
    holding it, unless it is already another one)."""
    if fd is None:
        return
    if remove and _same_file(fd, path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    os.close(fd)


def _name_in_use(name: str) -> ChainError:
    """The refusal of a second setup (or undo) of ``name`` while another holds its lock."""
    st = None
    with contextlib.suppress(ChainError):
        st = read_state(name)
    if st is not None and _server_alive(st):
        return ChainError(f"hwzswap swap {name!r} is already on (server pid {st['pid']}, "
                          f"{st.get('loop') or 'still setting up'}): `hwzswap swap off --name "
                          f"{name}` first, or pick another --name")
    return ChainError(f"hwzswap swap {name!r} is in use by {_holder(name_lock_path(name))}, "
                      "which is setting it up or undoing it right now (see `hwzswap swap "
                      f"status --name {name}`): try again once it is done, or pick another "
                      "--name")


#: How long a lock whose holder has exited is waited for: a killed server's other threads
#: still hold its files for a moment after its main thread is a zombie (~50 ms measured).
EXITING_HOLDER_WAIT_S = 10.0


def _holder_gone(path: Path) -> bool:
    """Whether the process that wrote itself into lock ``path`` has exited (its last threads
    may still be letting go of the lock)."""
    try:
        pid = json.loads(path.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return False
    return _proc_start(pid) is None


def _lock_or_wait_exiting(path: Path, what: dict[str, Any], wait_s: float = 0.0
                          ) -> int | None:
    """:func:`_lock`, waiting up to :data:`EXITING_HOLDER_WAIT_S` more when its holder has
    exited (a killed server) and is only still letting go of it."""
    fd = _lock(path, what, wait_s)
    if fd is None and _holder_gone(path):
        fd = _lock(path, what, EXITING_HOLDER_WAIT_S)
    return fd


def lock_name(name: str, doing: str) -> int:
    """Take chain ``name``'s lock (:func:`_lock`) or raise :func:`_name_in_use`'s refusal."""
    fd = _lock_or_wait_exiting(name_lock_path(name), {"name": name, "doing": doing})
    if fd is None:
        raise _name_in_use(name)
    return fd


def lock_setup(name: str, coexist: bool, wait_s: float = 120.0) -> int:
    """Take the setup lock for chain ``name``: without ``coexist`` another setup going on
    is refused at once (its swap device is about to be active); with it, waited for."""
    fd = _lock_or_wait_exiting(_setup_lock_path(),
                               {"name": name, "doing": f"setting up chain {name!r}"},
                               wait_s if coexist else 0.0)
    if fd is None:
        holder = _holder(_setup_lock_path())
        if coexist:
            raise ChainError(f"hwzswap swap {name}: another chain's setup ({holder}) did not "
                             f"finish within {wait_s:g} s; try again")
        raise ChainError(f"another swap device is being set up right now ({holder}): the "
                         "figures would mix both; wait for it and swapoff it, or pass "
                         "--coexist")
    return fd


def read_state(name: str) -> dict[str, Any] | None:
    try:
        st = json.loads(state_path(name).read_text())
        if not isinstance(st, dict):
            raise ValueError(f"a JSON {type(st).__name__}, not an object")
        return st
    except FileNotFoundError:
        return None
    except PermissionError:  # not a damaged file: never tell anyone to remove it
        raise ChainError(f"{state_path(name)}: permission denied: hwzswap swap needs root "
                         "(run it as root)") from None
    except (OSError, ValueError) as exc:
        raise ChainError(f"{state_path(name)}: unreadable state file ({exc}); remove it after "
                         "checking /proc/swaps, losetup -l and mount") from None


def _write_state(name: str, state: dict[str, Any]) -> None:
    """Replace the state file whole: ``swap off`` after a crash must find a complete one."""
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps(state, indent=1)
    write_atomic(state_path(name), lambda tmp: tmp.write_text(text))


def _claim_state(name: str, state: dict[str, Any]) -> None:
    """Write the first state of chain ``name``, only if there is none: two servers started
    with one name at once both found no state, both set up a chain, and the second's state
    replaced the first's, whose chain then nothing undid. Raises :class:`ChainError` when
    another server holds the name."""
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = STATE_DIR / f".{name}.{os.getpid()}.claim"
    try:
        tmp.write_text(json.dumps(state, indent=1))
        os.link(tmp, state_path(name))  # whole, and only where no state file is
    except FileExistsError:
        other = read_state(name) or {}
        raise ChainError(
            f"hwzswap swap {name!r} was just taken by another server (pid {other.get('pid')}) "
            f"starting at the same time: see `hwzswap swap status --name {name}`, or pick "
            "another --name") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _proc_start(pid: int | str | None) -> str | None:
    """The start time of process ``pid`` (field 22 of ``/proc/PID/stat``, clock ticks after
    boot), or None when it is gone or a zombie. A pid and its start time name one process: a
    later process that reuses the pid has another start time."""
    if not pid:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _server_alive(st: dict[str, Any] | None) -> bool:
    """Whether the server that wrote state ``st`` still runs: its pid with the start time it
    recorded (however it was started: ``swap on``, ``hwzswap serve``, ``python -m``)."""
    if not st or not st.get("pid"):
        return False
    if not st.get("pid_start"):  # a state written before start times were recorded
        try:
            return b"hwzswap" in Path(f"/proc/{st['pid']}/cmdline").read_bytes()
        except OSError:
            return False
    return _proc_start(st["pid"]) == st["pid_start"]


# -- owners -------------------------------------------------------------------------------------
#
# A chain set up by a process for its own use (``hwzswap run``) has an owner record,
# ``<name>.owner``: the owner's pid and that pid's start time, and the memory cgroups it runs
# its command in, listed *before* it creates them (so none can exist unrecorded), and the
# kernel's zswap parameters as they were before it changed them (``kernel-<comp>`` runs). The
# owner removes the record once all of it is gone. Its server is tied to it
# (:func:`on_parent_death`): when the owner dies without undoing anything (SIGKILL, the OOM
# killer), the server kills what is left in those cgroups and removes them, puts the zswap
# parameters back (both: :func:`undo_owner`), tears the chain down by its usual path and
# removes the record (``serve_main``). What it cannot undo is undone by the next ``hwzswap
# run`` (:func:`clean_dead_owners`) or by ``swap off --name`` of the chain
# (:func:`clean_dead_owner`), with the same :func:`undo_owner`. The record stays as long as
# anything it records is not undone.
# An owner is dead when no process has its pid *and* start time: a reused pid is not it.

#: prctl(2) option: the signal the calling process gets when its parent dies
PR_SET_PDEATHSIG = 1


def on_parent_death(sig: int, block: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` (run in the child between fork and exec) after which the child gets
    ``sig`` when the process that starts it dies, however it dies: the kernel's
    ``PR_SET_PDEATHSIG``, which also fires on a SIGKILL that no handler of the parent sees,
    and survives the exec (not that of a set-user-ID or file-capability program: what such a
    command leaves in its cgroup is killed by the server, see "owners"). A pipe whose EOF the
    child watches would work too, but every process that inherits the write end (the command,
    anything it starts) would then hold the parent's death back. The signal is sent when the
    *thread* that forked ends: ``run`` starts the server and the command from its main thread,
    whose end is the process's. A parent that died before the prctl took effect sends nothing:
    the child then sends the signal to itself. ``block``: the signal is blocked across the exec,
    so that it waits (pending) until the program installed its handler and unblocks it (the
    server: :func:`serve_main`) instead of killing it half-started."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in it

    def tie() -> None:
        if block:
            signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return tie


def owner_path(name: str) -> Path:
    """The owner record of chain ``name`` (see "owners")."""
    return STATE_DIR / f"{check_name(name)}.owner"


def claim_owner(name: str, cgroups: Sequence[str | os.PathLike[str]] = (),
                zswap: dict[str, str] | None = None) -> None:
    """Record this process as the owner of chain ``name``, with the memory cgroups it will
    create (before it creates them) and ``zswap``, the kernel's zswap parameters as they
    were before it changes them (``run --compare kernel-<comp>``)."""
    rec: dict[str, Any] = {"pid": os.getpid(), "pid_start": _proc_start(os.getpid()),
                           "cgroups": [str(c) for c in cgroups]}
    if zswap is not None:
        rec["zswap"] = dict(zswap)
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(owner_path(name), lambda tmp: tmp.write_text(json.dumps(rec)))


def drop_owner(name: str) -> None:
    """Remove chain ``name``'s owner record (its owner's cgroups are gone)."""
    with contextlib.suppress(FileNotFoundError):
        owner_path(name).unlink()


def read_owner(name: str) -> dict[str, Any] | None:
    """Chain ``name``'s owner record, or None (none, or unreadable: then nothing is done)."""
    try:
        rec = json.loads(owner_path(name).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def owner_alive(rec: dict[str, Any]) -> bool:
    """Whether the owner of record ``rec`` still runs (its pid with its start time)."""
    start = rec.get("pid_start")
    return start is not None and _proc_start(rec.get("pid")) == start


def remove_owner_cgroups(rec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Kill every task left in the owner's memory cgroups (record ``rec``) and remove them:
    (what was done, what could not be). Only directories named ``hwzswap-*`` are touched."""
    from hwzswap.serve.cgroup import CgroupError, MemoryCgroup

    done: list[str] = []
    left: list[str] = []
    for entry in rec.get("cgroups") or ():
        path = Path(str(entry))
        if not path.name.startswith("hwzswap-") or not path.is_dir():
            continue
        cg = MemoryCgroup("", path, 0)
        tasks = cg.pids()
        try:
            cg.remove(timeout=10.0)
        except CgroupError as exc:
            left.append(str(exc))
            continue
        done.append(f"cgroup {path} removed" + (
            f" (its tasks {', '.join(map(str, tasks))} killed)" if tasks else ""))
    return done, left


def undo_owner(rec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Undo what the owner of record ``rec`` set up besides the chain: kill what is left in
    its cgroups and remove them (first: the swapoff would otherwise read their pages back
    into a limited cgroup, :func:`remove_owner_cgroups`), and put back the kernel's zswap
    parameters it changed, as they were before (its ``zswap``). (What was done, what could
    not be.) Both the server of a dead owner and :func:`clean_dead_owner` do it."""
    done, left = remove_owner_cgroups(rec)
    back, failed = kernelzswap.restore_recorded(rec.get("zswap"))
    return done + back, left + failed


def clean_dead_owner(name: str, timeout: float = 300.0, force: bool = False
                     ) -> tuple[dict[str, Any], list[str], list[str]] | None:
    """Undo what the dead owner of chain ``name`` left: its cgroups and the kernel's zswap
    parameters (:func:`undo_owner`), then the chain (:func:`swap_off`, with ``timeout`` and
    ``force``, and ``strict`` as ``swap off`` of any chain), then the record. Returns the
    record, what :func:`swap_off` did and what else was removed; None when there is no
    record or its owner still runs (nothing done). Raises :class:`ChainError` naming what is
    left (the record stays, so a later run or ``swap off`` tries again), or
    :class:`ChainTeardownError` when all is undone (the record too) but the server's own
    teardown failed (a recording not written: its log is kept)."""
    rec = read_owner(name)
    if rec is None or owner_alive(rec):
        return None
    removed, left = undo_owner(rec)
    done: list[str] = []
    teardown: ChainTeardownError | None = None
    try:
        done = swap_off(name, timeout=timeout, force=force, strict=True)
    except ChainTeardownError as exc:  # the chain is gone: the rest is still done below
        teardown = exc
    except ChainError as exc:
        left.append(str(exc))
    gone = f"chain {name!r}: its run (pid {rec.get('pid')}) is no longer running"
    if left:
        raise ChainError(f"{gone}, but not all it left could be removed: {'; '.join(left)}")
    drop_owner(name)
    removed.append(f"owner record {owner_path(name)} removed")
    if teardown is not None:
        raise ChainTeardownError(f"{gone}; removed what it left ({'; '.join(removed)}), but "
                                 f"{teardown}", teardown.problems)
    if log_path(name).exists() and not any("log" in d for d in done):
        removed.append(f"server log kept: {log_path(name)}")
    return rec, done, removed


def clean_dead_owners(timeout: float = 300.0) -> list[tuple[str, str]]:
    """:func:`clean_dead_owner` for every owner record in the state directory: for each one
    whose owner was dead, its name and one line saying what was removed (or what is left)."""
    try:
        names = sorted(p.name[:-len(".owner")] for p in STATE_DIR.glob("*.owner"))
    except OSError:
        return []
    out = []
    for name in names:
        if not _NAME_RE.fullmatch(name):
            continue
        try:
            cleaned = clean_dead_owner(name, timeout)
        except ChainError as exc:
            out.append((name, f"error: {exc}"))
            continue
        if cleaned is not None:
            out.append((name, dead_owner_note(name, *cleaned)))
    return out


def dead_owner_note(name: str, rec: dict[str, Any], done: Sequence[str],
                    removed: Sequence[str]) -> str:
    """One line: what :func:`clean_dead_owner` removed of chain ``name``."""
    return (f"chain {name!r}: its run (pid {rec.get('pid')}) is no longer running; removed "
            f"what it left: {'; '.join([*done, *removed])}")


def _run(cmd: list[str], timeout: float = 120.0) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ChainError(f"{' '.join(cmd)} did not finish within {timeout:g} s") from None
    if p.returncode != 0:
        raise ChainError(f"{' '.join(cmd)} failed ({p.returncode}): "
                         f"{(p.stderr or p.stdout).strip()}")
    return p.stdout.strip()


def _swapoff(loop: str, timeout: float) -> None:
    """``swapoff loop``; a failure says what to do about it where swapoff's own word does not
    (ENOMEM: the pages cannot be brought back in)."""
    try:
        _run(["swapoff", loop], timeout=timeout)
    except ChainError as exc:
        if "Cannot allocate memory" not in str(exc):
            raise
        raise ChainError(
            f"{exc}: the pages still on it cannot be brought back into memory, most likely "
            "because the processes they belong to are in a memory cgroup at its limit: end "
            "them or raise that limit, then run `hwzswap swap off` again") from None


def _loop_backing(loop: str) -> str | None:
    try:
        return Path(f"/sys/block/{Path(loop).name}/loop/backing_file").read_text().strip()
    except OSError:
        return None


LOOP_GET_STATUS64 = 0x4C05
#: struct loop_info64 (include/uapi/linux/loop.h): lo_device lo_inode lo_rdevice lo_offset
#: lo_sizelimit lo_number lo_encrypt_type lo_encrypt_key_size lo_flags lo_file_name[64]
#: lo_crypt_name[64] lo_encrypt_key[32] lo_init[2]
_LOOP_INFO64 = struct.Struct("<QQQQQIIII64s64s32s2Q")


def _loop_identity(loop: str) -> tuple[str, int] | None:
    """The device (``"major:minor"``) and inode of the file loop device ``loop`` is attached
    to, as the kernel holds it (``LOOP_GET_STATUS64``); None when it is attached to nothing or
    cannot be asked. The kernel stats the file for it: the server gives its attributes a
    validity of years, so a dead or hung server is never asked."""
    try:
        fd = os.open(loop, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(_LOOP_INFO64.size))
    except OSError:  # ENXIO: attached to nothing
        return None
    finally:
        os.close(fd)
    f = _LOOP_INFO64.unpack(raw)
    return f"{os.major(f[0])}:{os.minor(f[0])}", f[1]


def _file_identity(path: str) -> dict[str, Any]:
    """What :func:`_backs` recognises a chain's FUSE file by once its path is gone: its
    device and inode."""
    st = os.stat(path)
    return {"dev": f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", "ino": st.st_ino}


def _backs(loop: str | None, file: str | None, identity: dict[str, Any] | None = None
           ) -> bool:
    """Whether loop device ``loop`` is still attached to ``file`` (a chain's FUSE file): a
    loop number a chain recorded may since have been detached and reused by someone else,
    who must never be swapped off or detached.

    With ``identity`` (:func:`_file_identity`, recorded in the state before ``losetup``) the
    file is also recognised after its mount was lazily unmounted (``umount -l``) under the
    live swap: its path then reads ``/<file name>`` (the name holds a random token, one per
    chain), and the device and inode the loop device holds must be the recorded ones (a
    FUSE mount that took over a freed device number is another file system)."""
    if not (loop and file):
        return False
    path = _loop_backing(loop)
    if path in (file, f"{file} (deleted)"):
        return True
    detached = "/" + os.path.basename(file)
    if not identity or path not in (detached, f"{detached} (deleted)"):
        return False
    return _loop_identity(loop) == (identity.get("dev"), identity.get("ino"))


def _loops_of(file: str, identity: dict[str, Any] | None = None) -> list[str]:
    """Every loop device attached to ``file`` (see :func:`_backs`)."""
    out = []
    for d in sorted(Path("/sys/block").glob("loop*")):
        if _backs(f"/dev/{d.name}", file, identity):
            out.append(f"/dev/{d.name}")
    return out


def _mountinfo_path(field: str) -> str:
    """A path as ``/proc/self/mountinfo`` writes it: space, tab, newline and backslash are
    octal escapes (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _fuse_conn_of(mnt: str) -> str | None:
    """The ``/sys/fs/fuse/connections`` id (the minor device number) of a mount point."""
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            parts = line.split()
            if _mountinfo_path(parts[4]) == mnt:
                return parts[2].split(":")[1]
    except (OSError, IndexError):
        pass
    return None


def _is_mounted(mnt: str) -> bool:
    return _fuse_conn_of(mnt) is not None


# -- the server process -----------------------------------------------------------------------


def _mlockall() -> str | None:
    """Lock the server's memory (its pool included) so it can never be swapped out to the
    device it serves. MCL_ONFAULT locks pages as they are touched instead of populating every
    new mapping whole: Python maps and unmaps arenas all the time, and populating each one
    made a swap request cost ~10x more server CPU."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(1 | 2 | 4) == 0:  # MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT
        return None
    if libc.mlockall(1 | 2) != 0:  # kernels before 4.4 have no MCL_ONFAULT
        return os.strerror(ctypes.get_errno())
    return None


def _io_flusher() -> str | None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(57, 1, 0, 0, 0) != 0:  # PR_SET_IO_FLUSHER
        return os.strerror(ctypes.get_errno())
    return None


class Control(threading.Thread):
    """A unix socket answering ``stats`` with one JSON line (for ``status`` and ``run``)."""

    def __init__(self, path: Path, swapfile: Any, extra: dict[str, Any]) -> None:
        super().__init__(name="control", daemon=True)
        self.path = path
        self.swapfile = swapfile
        self.extra = extra
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock.listen(4)

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(2.0)  # a client that sends nothing holds no one up
                    cmd = conn.makefile().readline().strip()
                    if cmd == "stats":
                        out = {**self.swapfile.stats(), **self.extra}
                    else:
                        out = {"error": f"unknown command {cmd!r}"}
                    conn.sendall((json.dumps(out, default=str) + "\n").encode())
                except (OSError, HwzswapError, ValueError) as exc:
                    with contextlib.suppress(OSError):
                        conn.sendall((json.dumps({"error": str(exc)}) + "\n").encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def query(name: str, timeout: float = 10.0) -> dict[str, Any]:
    """The running server's ``stats`` (server counters, engine stats, CPU time)."""
    st = read_state(name)
    if st is None:
        raise ChainError(f"hwzswap swap {name!r} is not on")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(st["socket"])
        s.sendall(b"stats\n")
        data = s.makefile().readline()
    except OSError as exc:
        raise ChainError(f"cannot reach the server of {name!r} ({st['socket']}): {exc}") from None
    finally:
        s.close()
    try:
        out = json.loads(data)
    except ValueError:
        out = None
    if not isinstance(out, dict):  # closed without an answer: tearing down, or gone
        raise ChainError(f"the server of {name!r} gave no answer on {st['socket']} "
                         f"({data[:80]!r}): it may be tearing down")
    if "error" in out:
        raise ChainError(f"server of {name!r}: {out['error']}")
    return out


class _StopBeforeUp(Exception):
    """A stop signal came while the chain was being set up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: How often the server's main thread looks for a stop signal its handler noted.
STOP_POLL_S = 0.1


def serve_main(args: argparse.Namespace, ready_fd: int | None = None) -> int:
    """The server process: set the chain up, serve until a signal, undo everything."""
    from hwzswap import open_zswap
    from hwzswap.serve.fuse import FuseServer
    from hwzswap.serve.server import Recorder, SwapFile

    name = args.name
    # A handler (run by the main thread) instead of a blocked mask and sigwait: threads that
    # imports started before this point would not have the mask, and a signal they took
    # would surface as KeyboardInterrupt in the middle of the setup or the teardown. The
    # handler only appends (no lock): it runs in the main thread wherever that thread is,
    # and a threading.Event's set() there deadlocked the server when the signal came while
    # the main thread was inside the same Event's wait(), holding its lock (a stop signal was
    # then never acted on: `swap off` waited out its timeout). The main thread polls ``got``.
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        got.append(signum)

    def signalled_after(seen: int, timeout_s: float) -> bool:
        """Whether a stop signal beyond the first ``seen`` comes within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(got) <= seen:
            if time.monotonic() >= deadline:
                return False
            time.sleep(STOP_POLL_S)
        return True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # the server of a run came up with its parent's death signal blocked (on_parent_death):
    # one that came meanwhile is taken now, by the handler
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    # `run`'s server is tied to it (see "owners"): its death sends SIGTERM (the usual
    # teardown), and is told from a `swap off` by this process's parent no longer being it
    owner_pid: int | None = getattr(args, "owner_pid", None)
    reaped: list[str] = []  # what the owner left in its cgroups, killed: said once

    def orphaned() -> bool:
        return owner_pid is not None and os.getppid() != owner_pid

    def reap_owner() -> list[str]:
        """Once the owner is dead: kill what it left in its cgroups and remove them, before
        the swapoff (which would read their pages back into a limited cgroup); what is
        left."""
        if not orphaned():
            return []
        done, left = undo_owner(read_owner(name) or {})
        if not reaped:
            reaped.append("said")
            say(f"hwzswap swap {name}: its run (pid {owner_pid}) is gone; tearing down"
                + (f" ({'; '.join(done)})" if done else ""))
        for what in left:
            warn(f"hwzswap swap {name}: {what}")
        return left
    # `swap on` hands over the locks it took (see "locks") and a private copy of the config
    # it read (removed once read here; messages name the user's file, ``source``)
    name_fd: int | None = getattr(args, "name_lock_fd", None)
    setup_fd: int | None = getattr(args, "setup_lock_fd", None)
    own_name_lock = name_fd is None  # else `swap on` holds it too until swap is on
    source = getattr(args, "config_source", None) or args.config
    state: dict[str, Any] = {"name": name, "pid": os.getpid(),
                             "pid_start": _proc_start(os.getpid()), "config": source,
                             "priority": args.priority, "started": time.time(), "steps": []}
    base = STATE_DIR / name
    mnt = base / "mnt"
    state.update(mountpoint=str(mnt), socket=str(STATE_DIR / f"{name}.sock"))
    system = fuse = control = recorder = None
    loop: str | None = None
    identity: dict[str, Any] | None = None
    rc = 0

    def check_stop() -> None:
        """A stop signal during the setup ends it at the next step (it ran to the end,
        swapon included, before the teardown began)."""
        if got:
            raise _StopBeforeUp(got[0])

    def step(what: str, **kv: Any) -> None:
        state["steps"].append(what)
        state.update(kv)
        _write_state(name, state)
        if os.environ.get(PAUSE_AFTER_STEP_ENV) == what:  # tests only: see there
            signalled_after(0, 60)
        check_stop()

    def say(msg: str) -> None:
        print(msg, flush=True)

    def warn(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    leave_exit = ready_fd is not None  # started by `swap on`: tell `swap off` how it ended
    wrote_state = False  # the state file is this process's only once it has written it
    up = False  # the chain is set up and served (a failure from here on is not a refusal)
    try:
        # refusals, before anything is set up
        socket_path(name)
        # read once: it may be a pipe (`--config /dev/stdin`), which a second read finds empty
        cfg = _load_config_once(args.config, source,
                                private=getattr(args, "config_source", None) is not None)
        if getattr(args, "record", None):
            from hwzswap.cliargs import check_outputs

            check_outputs([("--record", args.record, ())], inputs=[("--config", source)])
        check_servable(cfg, source)
        preflight(coexist=True, allow_kernel_zswap=getattr(args, "allow_kernel_zswap", False))
        if name_fd is None:
            name_fd = lock_name(name, f"serving chain {name!r}")
        else:
            _note_holder(name_fd, {"name": name, "doing": f"serving chain {name!r}"})
        old = read_state(name)
        if old is not None:
            if _server_alive(old):
                raise ChainError(
                    f"hwzswap swap {name!r} is already on (server pid {old['pid']}, "
                    f"{old.get('loop')}): `hwzswap swap off --name {name}` first, or pick "
                    "another --name")
            say(f"hwzswap swap {name}: undoing what a dead server left: "
                f"{'; '.join(swap_off(name, name_locked=True)) or 'nothing'}")
        if setup_fd is None:
            setup_fd = lock_setup(name, args.coexist)
        else:
            _note_holder(setup_fd, {"name": name, "doing": f"setting up chain {name!r}"})
        if not args.coexist:
            check_no_other_swap()
        check_stop()
        _claim_state(name, state)
        wrote_state = True
        state["mlockall"] = _mlockall() or "ok"
        state["io_flusher"] = _io_flusher() or "ok"
        check_stop()
        system = open_zswap(cfg)
        recorder = Recorder() if args.record else None
        swapfile = SwapFile(system, device_time=args.device_time, recorder=recorder)
        base.mkdir(parents=True, exist_ok=True)
        mnt.mkdir(exist_ok=True)
        # a name of its own: a lazily unmounted chain's loop device shows "/<name>"
        fuse = FuseServer(swapfile, str(mnt), name=f"swap-{secrets.token_hex(8)}",
                          threads=args.threads)
        fuse.open()
        step("mount", file=fuse.path)
        fuse.start()
        # before losetup: a lazy unmount under the live swap hides the file's path, and a
        # killed server may leave a loop device attached that it had not named yet
        identity = _file_identity(fuse.path)
        step("serve", identity=identity)
        loop = _run(["losetup", "--direct-io=on", "--show", "-f", fuse.path])
        step("loop", loop=loop)
        dio = Path(f"/sys/block/{Path(loop).name}/loop/dio").read_text().strip()
        if dio != "1":
            raise ChainError(f"{loop}: direct I/O did not take (dio={dio}); without it the "
                             "page cache hides swap-ins from the server")
        _run(["mkswap", loop])
        check_stop()
        _run(["swapon", "--discard=pages", "-p", str(args.priority), loop])
        # active now: the next setup's "no other swap device" check sees it
        _unlock(setup_fd, _setup_lock_path())
        setup_fd = None
        step("swapon")
        control = Control(Path(state["socket"]), swapfile,
                          {"name": name, "loop": loop, "pid": os.getpid(),
                           "config": source})
        control.start()
        say(f"hwzswap swap {name}: on ({loop} <- {fuse.path}, engine "
            f"{system.backend.name}, zswap {'on' if system.config.zswap.enabled else 'off'}, "
            f"priority {args.priority}; mlockall {state['mlockall']})")
        up = True
        if ready_fd is not None:
            try:
                os.write(ready_fd, b"ready\n")
            except OSError as exc:  # the caller of `swap on` is gone (killed, hung up)
                warn(f"hwzswap swap {name}: cannot tell `swap on` that swap is on "
                     f"({exc.strerror}): serving on; `hwzswap swap off --name {name}` ends it")
            os.close(ready_fd)
            ready_fd = None
        seen = 0  # none yet: the setup's last check found none
        while True:
            while not signalled_after(seen, 3600.0):
                pass
            seen = len(got)  # a later one is a retry (after a swapoff that failed)
            say(f"hwzswap swap {name}: {signal.Signals(got[-1]).name}, tearing down")
            if loop not in active_swaps() or not _backs(loop, fuse.path, identity):
                # already swapped off (by hand): nothing holds pages
                break
            reap_owner()
            try:
                _swapoff(loop, 600)
                break
            except ChainError as exc:
                # The device still holds pages: never pull it away under them. The time
                # tells a waiting `swap off` that this attempt, its own, failed.
                state["error"] = str(exc)
                state["swapoff_failed_at"] = time.time()
                _write_state(name, state)
                warn(f"hwzswap swap {name}: {exc}; still serving (retry `hwzswap swap off "
                     f"--name {name}`)")
    except _StopBeforeUp as exc:
        rc = 128 + exc.signum  # as a process ended by that signal (130 for Ctrl-C)
        msg = f"stopped by {signal.Signals(exc.signum).name} before the chain was up"
        say(f"hwzswap swap {name}: {msg}; undoing what was set up")
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, f"error: {msg}\n".encode())
    except BaseException as exc:  # noqa: BLE001 - report, then undo
        # Refused or could not be set up (the CLI's exit status for refused input): 2, as
        # long as the teardown below leaves nothing; a failure once it served: 1.
        rc = EXIT_REFUSED if isinstance(exc, HwzswapError) and not up else EXIT_FAILED
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, HwzswapError) else str(exc)
        warn(f"hwzswap swap {name}: error: {msg}")
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, f"error: {msg}\n".encode())
    finally:
        # Each undo step runs even if one before it raised. ``errors``: what is still set up
        # (the state file keeps it for `swap off`); ``problems``: failures once the chain
        # itself is gone (reported, nothing left to undo).
        errors: list[str] = []
        problems: list[str] = []
        owner_left = reap_owner()  # its run died before the chain was up: also first
        if loop is None and fuse is not None:
            # a `losetup --show -f` that failed or timed out may have attached one anyway
            loop = next(iter(_loops_of(fuse.path, identity)), None)
        ours = fuse is not None and _backs(loop, fuse.path, identity)
        # Whether swapon returned or not: one that failed or timed out may have activated
        # the device, and `losetup -d` of an active swap device only marks it to go later.
        if ours and loop in active_swaps():
            try:
                _swapoff(loop, 600)
            except ChainError as exc:
                errors.append(str(exc))
        if ours and not errors:
            try:
                _run(["losetup", "-d", loop])
            except ChainError as exc:
                errors.append(str(exc))
        if control is not None:
            control.close()
        if fuse is not None and not errors:
            try:
                fuse.stop()
                if fuse.errors:
                    warn(f"hwzswap swap {name}: FUSE errors: {fuse.errors[:5]}")
            except Exception as exc:  # noqa: BLE001 - the rest still runs
                errors.append(f"unmount: {type(exc).__name__}: {exc}")
        if recorder is not None and args.record and not errors:
            try:
                # missing folders are made, as every output option does (checked at start)
                Path(args.record).parent.mkdir(parents=True, exist_ok=True)
                path = recorder.save(args.record, {"name": f"recorded-{name}",
                                                   "command": args.record_command})
                if path is not None:
                    say(f"hwzswap swap {name}: recorded stream -> {path}")
                elif args.record_command is None:
                    # (`run`, which passes the command, says itself why nothing was recorded)
                    problems.append(
                        f"recording: --record {args.record}: not written: nothing was swapped "
                        "out to this chain while it was on, so there was nothing to record "
                        "(put the program under memory pressure, e.g. `hwzswap run "
                        "--memory-limit M --record F -- CMD`)")
            except Exception as exc:  # noqa: BLE001 - the rest still runs
                problems.append(f"recording: {exc}")
        if system is not None and not errors:
            try:
                system.close()
            except Exception as exc:  # noqa: BLE001 - the rest still runs
                problems.append(f"closing the engine: {type(exc).__name__}: {exc}")
        if errors:
            rc = EXIT_FAILED
            state["error"] = "; ".join(errors)
            try:
                _write_state(name, state)
            except OSError as exc:
                warn(f"hwzswap swap {name}: cannot update {state_path(name)}: {exc}")
            warn(f"hwzswap swap {name}: teardown incomplete: {state['error']} (what is left "
                 f"is in {state_path(name)}: `hwzswap swap off --name {name}` undoes it)")
        elif wrote_state:
            with contextlib.suppress(OSError):
                mnt.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()
            with contextlib.suppress(FileNotFoundError):
                state_path(name).unlink()
            if problems:
                rc = EXIT_FAILED
                warn(f"hwzswap swap {name}: error at teardown: {'; '.join(problems)}")
            say(f"hwzswap swap {name}: off")
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.close(ready_fd)
        # a dead run's server that undid everything (or was stopped before the chain was up)
        # leaves nothing: no one would read an exit record or a log that says nothing failed.
        # A refusal's (2) or a failure's (1) stay, with the owner record, for the next `run`
        # or `swap off` (clean_dead_owner)
        orphan_clean = orphaned() and not owner_left and (rc == 0 or rc > 128)
        if orphan_clean:
            drop_owner(name)
            with contextlib.suppress(FileNotFoundError):
                log_path(name).unlink()
        if leave_exit and wrote_state and not orphan_clean:
            try:
                write_atomic(exit_path(name), lambda tmp: tmp.write_text(json.dumps(
                    {"pid": state["pid"], "pid_start": state["pid_start"], "rc": rc,
                     "problems": problems, "errors": errors})))
            except OSError as exc:
                warn(f"hwzswap swap {name}: cannot write {exit_path(name)}: {exc}")
            else:  # the `swap off` that stopped it may have stopped waiting: its cleanup
                _clear_abandoned(name, state)
        _unlock(setup_fd, _setup_lock_path())
        # the name's lock goes last; one `swap on` handed over stays its own until swap was
        # on (it undoes a server that did not come up, under that lock)
        _unlock(name_fd, name_lock_path(name), remove=own_name_lock or up or orphaned())
    return rc


def _load_config_once(path: str, source: str, private: bool = False) -> Any:
    """Load and check the config at ``path`` (read once); ``source``: the user's file, named
    in errors in place of ``path``. ``private``: ``path`` is a copy made for this process,
    removed once read."""
    from hwzswap.config import load_config
    from hwzswap.errors import ConfigError

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        if path == source:
            raise
        raise ConfigError(str(exc).replace(path, source)) from None
    finally:
        if private:
            with contextlib.suppress(OSError):
                os.unlink(path)
    cfg.source = source
    return cfg


# -- on / off / status ------------------------------------------------------------------------


def _server_argv(config: str, name: str, priority: int, coexist: bool, threads: int,
                 device_time: str, record: str | None, record_command: str | None,
                 allow_kernel_zswap: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "hwzswap.serve.chain", "--config", config, "--name", name,
            "--priority", str(priority), "--threads", str(threads),
            "--device-time", device_time]
    if coexist:
        argv.append("--coexist")
    if allow_kernel_zswap:
        argv.append("--allow-kernel-zswap")
    if record:
        argv += ["--record", record]
    if record_command:
        argv += ["--record-command", record_command]
    return argv


class Interrupted(BaseException):
    """``swap on`` was stopped by signal ``signum`` before swap was on (nothing is left)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class OnSignals:
    """The stop signals of ``swap on`` (``handler`` is installed for SIGINT, SIGTERM and
    SIGHUP by the caller): the first one before swap is on raises :class:`Interrupted` (the
    setup is undone), unless it comes while the server is being started (``hold``: it is
    raised once the server can be stopped); once swap is on (``up``), or while the setup is
    being undone, a signal is only noted (``got``): the chain is then on, and `swap on` says
    so and exits 0, so what it prints and its exit status match what is left."""

    def __init__(self) -> None:
        self.got: list[int] = []
        self.hold = False
        self.up = False

    def handler(self, signum: int, _frame: Any) -> None:
        self.got.append(signum)
        if len(self.got) == 1 and not (self.hold or self.up):
            raise Interrupted(signum)

    def check(self) -> None:
        """Raise for a signal held back while the server was being started."""
        self.hold = False
        if self.got and not self.up:
            raise Interrupted(self.got[0])


def swap_on(config: str | dict[str, Any], *, name: str = DEFAULT_NAME,
            priority: int = DEFAULT_PRIORITY, coexist: bool = False, threads: int = 4,
            device_time: str = "real", record: str | None = None,
            record_command: str | None = None, timeout: float = 120.0,
            signals: OnSignals | None = None, keep_refused_log: bool = True,
            allow_kernel_zswap: bool = False, source: str | None = None,
            owner: bool = False) -> dict[str, Any]:
    """Start a server process for ``config`` and wait until swap is on. Returns the state.
    ``signals``: the caller's :class:`OnSignals`, told when the server is being started and
    when swap is on. ``keep_refused_log=False``: when the server refuses, saying why, and
    nothing is left, its log is removed and not cited (``swap on``: the message is all it
    says); otherwise it is kept and cited (``run`` cites it).

    The config is read once (it may be a pipe: ``--config /dev/stdin``, ``<(...)``), loaded
    and checked first (:class:`~hwzswap.errors.ConfigError` naming the file and the key, or
    :func:`check_servable`'s refusal), before anything is started; the server reads a
    private copy of it (removed once read), and messages name ``config``.
    ``allow_kernel_zswap``: the kernel's own zswap may be on (``run``'s ``kernel-<comp>``
    runs); otherwise ``swap on`` is refused while it is (:func:`check_kernel_zswap`).
    ``config`` may also be the config as a dict (``run``: no file of its own to leave
    behind), with ``source`` what messages call it (default: ``config`` itself).
    ``owner``: the server is tied to this process (``run``, which records itself with
    :func:`claim_owner` first): it tears the chain down when this process dies, SIGKILL
    included (see "owners").

    Chain ``name``'s lock (:func:`lock_name`) is held from the first look at its state until
    swap is on (the server then holds it) or what was set up is undone: a second ``swap on``
    of the name meanwhile is refused, and never touches this one's chain or log."""
    from hwzswap.config import load_config

    for what, value, check in (("priority", priority, swap_priority),
                               ("threads", threads, fuse_threads)):
        try:
            check(str(value))
        except argparse.ArgumentTypeError as exc:
            raise ChainError(f"{what}: {exc}") from None
    cfg = load_config(config)
    source = source or str(config)
    check_servable(cfg, source)
    preflight(coexist=True, allow_kernel_zswap=allow_kernel_zswap)
    check_name(name)
    name_fd = lock_name(name, f"swap on: starting chain {name!r}")
    handed = False  # to the server, once swap is on: it then holds the name's lock
    try:
        st = _swap_on_locked(
            cfg, source, name, priority, coexist, threads, device_time, record,
            record_command, timeout, signals, keep_refused_log, allow_kernel_zswap, name_fd,
            owner=owner)
        handed = True
        return st
    finally:
        _unlock(name_fd, name_lock_path(name), remove=not handed)


def _swap_on_locked(cfg: Any, config: str, name: str, priority: int, coexist: bool,
                    threads: int, device_time: str, record: str | None,
                    record_command: str | None, timeout: float, signals: OnSignals | None,
                    keep_refused_log: bool, allow_kernel_zswap: bool, name_fd: int, *,
                    owner: bool = False) -> dict[str, Any]:
    """:func:`swap_on` once it holds chain ``name``'s lock (``name_fd``): the state once
    swap is on (the server then holds that lock); raises otherwise."""
    old = read_state(name)
    if old is not None:
        if _server_alive(old):
            raise ChainError(f"hwzswap swap {name!r} is already on (server pid {old['pid']}, "
                             f"{old.get('loop')}): `hwzswap swap off --name {name}` first, or "
                             "pick another --name")
        # a dead run's leftovers, undone whole: a stop signal now is held until they are
        # gone (or known not to be), so that what `swap on` then says matches what is left
        if signals is not None:
            signals.hold = True
        swap_off(name, name_locked=True)
        if signals is not None:
            signals.check()
    setup_fd: int | None = None
    try:
        setup_fd = lock_setup(name, coexist)
        if not coexist:
            check_no_other_swap()
        proc, rfd, log, private = _start_server(
            cfg, config, name, priority, coexist, threads, device_time, record,
            record_command, signals, allow_kernel_zswap, name_fd, setup_fd, owner=owner)
        setup_fd = None  # the server's now: it lets go of it once swapon returned
    finally:
        _unlock(setup_fd, _setup_lock_path())
    try:
        return _wait_server(proc, rfd, log, config, private, name, timeout, signals,
                            keep_refused_log)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(private)  # the server removes it once read; this one may not have


def _start_server(cfg: Any, config: str, name: str, priority: int, coexist: bool,
                  threads: int, device_time: str, record: str | None,
                  record_command: str | None, signals: OnSignals | None,
                  allow_kernel_zswap: bool, name_fd: int, setup_fd: int, *,
                  owner: bool = False) -> tuple[subprocess.Popen[bytes], int, Path, str]:
    """Start the server of chain ``name`` on a private copy of ``cfg``, handing it both
    locks: the process, the read end of its ready pipe, its log and the copy's path.
    ``owner``: tied to this process (its death is the server's SIGTERM)."""
    import tempfile

    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = log_path(name)
    # the record of a server that ended on its own goes, and its log with it unless that
    # server's end failed: that one is kept, as every log that says what failed
    _clear_ended(name)
    moved = _move_old_log(name)
    if moved is not None:
        print(f"hwzswap swap {name}: the log of an earlier server ({log}, kept because "
              f"something failed) is now {moved}", file=sys.stderr)
    # the server reads a private copy of what was read here (a pipe cannot be read twice)
    fd, private = tempfile.mkstemp(prefix=f"hwzswap-{name}-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        json.dump(cfg.to_dict(), f)
    rfd, wfd = os.pipe()
    argv = _server_argv(private, name, priority, coexist, threads, device_time,
                        record, record_command, allow_kernel_zswap) + [
        "--ready-fd", str(wfd), "--config-source", config,
        "--name-lock-fd", str(name_fd), "--setup-lock-fd", str(setup_fd)]
    if owner:
        argv += ["--owner-pid", str(os.getpid())]
    if signals is not None:
        signals.hold = True  # a signal now would leave a started server nobody stops
    try:
        with open(log, "wb") as logf:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    pass_fds=(wfd, name_fd, setup_fd), start_new_session=True,
                                    preexec_fn=on_parent_death(signal.SIGTERM, block=True)
                                    if owner else None)
    except BaseException:
        os.close(rfd)
        with contextlib.suppress(OSError):
            os.unlink(private)
        raise
    finally:
        os.close(wfd)
    return proc, rfd, log, private


def _wait_server(proc: subprocess.Popen[bytes], rfd: int, log: Path, config: str,
                 private: str, name: str, timeout: float, signals: OnSignals | None,
                 keep_refused_log: bool) -> dict[str, Any]:
    """Wait until the server says swap is on (the state), or undo what it set up and raise
    why not (messages name ``config``, not the server's ``private`` copy)."""
    msg = b""
    deadline = time.monotonic() + timeout
    try:
        if signals is not None:
            signals.check()
        with os.fdopen(rfd, "rb") as r:
            os.set_blocking(r.fileno(), False)
            while time.monotonic() < deadline:
                try:
                    chunk = r.read()
                except BlockingIOError:
                    chunk = None
                if chunk:
                    msg += chunk
                if b"\n" in msg:
                    if signals is not None:
                        signals.up = msg.startswith(b"ready")
                        signals.hold = not signals.up  # a failed start is undone below
                    break
                if proc.poll() is not None:  # what it wrote before it exited
                    if signals is not None:
                        signals.hold = True
                    with contextlib.suppress(BlockingIOError):
                        msg += r.read() or b""
                    break
                time.sleep(0.02)
            else:
                if signals is not None:
                    signals.hold = True
    except BaseException as exc:
        if signals is not None:
            signals.hold = True  # a second signal must not cut the undoing short
        _stop_server(proc.pid, 30)
        try:
            swap_off(name, name_locked=True)
        except ChainError as err:
            why = (f"stopped by {signal.Signals(exc.signum).name} before swap was on"
                   if isinstance(exc, Interrupted) else f"{type(exc).__name__}: {exc}")
            raise ChainLeftError(
                f"hwzswap swap on {name}: {why}, but not all of it was undone: {err} "
                f"(`hwzswap swap off --name {name}` undoes the rest)") from None
        for path in (log, exit_path(name)):  # nothing is left, nothing failed
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    if not msg.startswith(b"ready"):
        late = proc.poll() is None
        if late:
            _stop_server(proc.pid, 60)
        left = ""
        try:
            swap_off(name, name_locked=True)
        except HwzswapError as exc:
            left = f"; and not all of it was undone: {exc} (`hwzswap swap off --name {name}`)"
        error = ChainLeftError if left else ChainError  # exit 1: something is left set up
        try:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            tail = []
        why = msg.decode(errors="replace").strip() or "\n".join(tail) or "no output"
        why = why.replace(private, config)
        why = why.removeprefix("error: ")  # the server's ready line; the CLI says "error:"
        if late and not msg:
            why = f"not up within {timeout:g} s, stopped ({why})"
        with contextlib.suppress(FileNotFoundError):
            exit_path(name).unlink()
        where = f" (log: {log})"
        if msg.startswith(b"error: ") and not left and not keep_refused_log:
            # a refusal the server stated whole, with nothing left: the log has nothing more
            with contextlib.suppress(FileNotFoundError):
                log.unlink()
            where = ""
        raise error(f"the server of chain {name!r} did not come up: {why}{left}{where}")
    st = read_state(name) or {}
    st["log"] = str(log)
    return st


def _move_old_log(name: str) -> Path | None:
    """Move the log an earlier server of chain ``name`` left (kept and named because
    something failed: a killed server, a failed teardown) to ``<name>.<its time>.log``, so
    that the next server's log does not empty it; the new path, or None when there was none."""
    log = log_path(name)
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(log.stat().st_mtime))
    except FileNotFoundError:
        return None
    for n in range(1000):
        dest = STATE_DIR / f"{name}.{stamp}{f'-{n}' if n else ''}.log"
        try:
            os.link(log, dest)  # never over another kept log
        except FileExistsError:
            continue
        log.unlink()
        return dest
    raise ChainError(f"{log}: cannot keep it: {STATE_DIR} holds 1000 logs of that second "
                     "already; remove some")


def _stop_server(pid: int, timeout: float, start: str | None = None,
                 until: Any = None) -> bool:
    """SIGTERM the server and wait for it to exit; True if it did. ``start``: its recorded
    start time; a process with that pid and another start time is not it (never signalled).
    ``until``: a callable polled while waiting; once it returns true, stop waiting (False)."""
    if start is not None and _proc_start(pid) != start:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wpid, _ = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                return True
        except ChildProcessError:
            pass
        now = _proc_start(pid)
        if now is None or (start is not None and now != start):
            return True
        if until is not None and until():
            return False
        time.sleep(0.05)
    return False


def _failed_since(name: str, before: Any) -> str | None:
    """The server's own word that a swapoff failed after the one recorded as ``before`` (its
    state file's ``error`` and ``swapoff_failed_at``; it keeps serving then), or None."""
    try:
        st = read_state(name)
    except ChainError:
        return None
    if st and st.get("swapoff_failed_at") not in (None, before):
        return str(st.get("error") or "swapoff failed")
    return None


def kill_server(name: str) -> bool:
    """SIGKILL the server of chain ``name`` (a hung one): its FUSE connection dies with it,
    so every I/O waiting on it fails instead of waiting forever. True if one was killed."""
    st = read_state(name)
    if not _server_alive(st):
        return False
    pid = st["pid"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _server_alive(st) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    return True


def _server_exit(name: str, st: dict[str, Any]) -> dict[str, Any] | None:
    """The exit record (:func:`exit_path`) the server of state ``st`` left, taken (removed);
    None when there is none of that server."""
    try:
        out = json.loads(exit_path(name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(out, dict) or (out.get("pid"), out.get("pid_start")) != (
            st.get("pid"), st.get("pid_start")):
        return None
    with contextlib.suppress(FileNotFoundError):
        exit_path(name).unlink()
    return out


def swap_off(name: str = DEFAULT_NAME, timeout: float = 300.0, force: bool = False,
             strict: bool = False, tick: Callable[[], None] | None = None, *,
             name_locked: bool = False) -> list[str]:
    """Tear the chain ``name`` down: through its server if alive, else from the state file.
    ``force``: a server that has not finished within ``timeout`` is killed, and the rest is
    undone as after a crash (pages still on the device are lost to their owners). Returns
    what was done; raises :class:`ChainError` when something is left. ``strict``: also raise
    :class:`ChainTeardownError` when the chain is gone but the server's teardown reported a
    failure (a recording it could not write; its log is kept and named); without it, that
    failure is in the log only. The server log of ``swap on`` is removed after a clean
    teardown by the server. ``tick``: called in this thread each time it looks whether the
    server is done (every 50 ms; ``run`` says there what signals came meanwhile).

    A live server is asked to tear down (it holds the name's lock); anything else (a dead
    server's leftovers, an exit record) is undone under chain ``name``'s lock, so never
    while a ``swap on`` of that name sets it up: that is refused, saying who holds it.
    ``name_locked``: the caller holds that lock (``swap on``, the server)."""
    path = name_lock_path(name)
    # a setup of the name going on (or a killed server's last threads letting go of the
    # lock) is waited for a while: once its server is up, it is stopped as usual
    deadline = time.monotonic() + min(timeout, EXITING_HOLDER_WAIT_S)
    while not name_locked:
        st = read_state(name)
        if st is not None and _server_alive(st):
            break
        fd = _lock(path, {"name": name, "doing": "undoing what is left"})
        if fd is not None:
            try:
                return _swap_off(name, timeout, force, strict, tick)
            finally:
                _unlock(fd, path)
        if time.monotonic() >= deadline:
            st = read_state(name)
            if st is None or not _server_alive(st):
                raise ChainError(
                    f"hwzswap swap off {name}: chain {name!r} is in use by "
                    f"{_holder(name_lock_path(name))}, which is setting it up or undoing it "
                    f"right now; run `hwzswap swap off --name {name}` again once it is done")
            break
        if tick is not None:
            tick()
        time.sleep(0.05)
    return _swap_off(name, timeout, force, strict, tick)


def _swap_off(name: str, timeout: float, force: bool, strict: bool,
              tick: Callable[[], None] | None) -> list[str]:
    """:func:`swap_off`'s work."""
    st = read_state(name)
    if st is None:
        return _clear_ended(name)
    done: list[str] = []
    pid = st.get("pid")
    if _server_alive(st):
        asked = st.get("swapoff_failed_at")  # an earlier attempt's failure is not news

        def failed() -> str | None:
            if tick is not None:
                tick()
            return _failed_since(name, asked)

        # noted first: a `swap off` cut short (Ctrl-C) or giving up after its --timeout
        # leaves the server tearing down on its own, and its end is still this one's
        _write_off_note(name, st)
        try:
            stopped = _stop_server(pid, timeout, st.get("pid_start"), until=failed)
        except BaseException:  # Ctrl-C: the server goes on with the SIGTERM it was sent
            _abandon(name, st)
            raise
        if stopped:
            if read_state(name) is None:
                ended = _server_exit(name, st)
                _drop_off_note(name)
                problems = (ended or {}).get("problems") or []
                if problems:
                    if strict:
                        raise ChainTeardownError(
                            f"hwzswap swap off {name}: the chain is torn down, but the "
                            f"server's teardown failed: {'; '.join(map(str, problems))} "
                            f"(server log kept: {log_path(name)})", problems)
                elif ended is not None:
                    with contextlib.suppress(FileNotFoundError):
                        log_path(name).unlink()
                return ["server stopped; chain torn down by the server"]
            st = read_state(name) or st
            done.append("server stopped")
        elif (why := _failed_since(name, asked)) is not None and not force:
            _drop_off_note(name)  # it goes on serving: a later end is its own
            raise ChainError(
                f"the server (pid {pid}) could not swap off: {why}. It is still serving the "
                "chain, so the pages still on the device are kept (the kernel may have "
                "OOM-killed processes of that cgroup while swapoff tried to bring them in: "
                "see dmesg); once that is dealt with, run `hwzswap swap off "
                f"--name {name}` again (`--force` kills the server instead: the pages still on "
                "the device are then lost to their owners)")
        elif force:
            kill_server(name)
            _drop_off_note(name)  # killed: it leaves no exit record
            done.append(f"server (pid {pid}) killed after {timeout:g} s" if why is None else
                        f"server (pid {pid}) killed after its swapoff failed ({why})")
        else:
            _abandon(name, st)
            raise ChainError(f"the server (pid {pid}) did not finish tearing down within "
                             f"{timeout:g} s: {st.get('error') or 'swapoff still running'} "
                             "(`hwzswap swap off --force` kills it)")
    loop = st.get("loop")
    mnt = st.get("mountpoint")
    fuse_file = st.get("file")
    identity = st.get("identity") if isinstance(st.get("identity"), dict) else None
    if loop is None and fuse_file:
        # the server died between attaching a loop device and recording its name
        loop = next(iter(_loops_of(fuse_file, identity)), None)
    left: list[str] = []
    ours = _backs(loop, fuse_file, identity)  # else the loop number is someone else's now
    if ours and loop in active_swaps():
        try:
            _swapoff(loop, timeout)
            done.append(f"swapoff {loop}")
        except ChainError as exc:
            left.append(str(exc))
    if ours and not left:
        try:
            _run(["losetup", "-d", loop])
            done.append(f"losetup -d {loop}")
        except ChainError as exc:
            left.append(str(exc))
    if mnt and not left and _is_mounted(mnt):
        conn = _fuse_conn_of(mnt)
        if conn is not None:
            with contextlib.suppress(OSError):
                Path(f"/sys/fs/fuse/connections/{conn}/abort").write_text("1")
        from hwzswap.serve.fuse import umount

        umount(mnt)
        done.append(f"umount {mnt}")
    kept = f" (server log: {log_path(name)})" if log_path(name).exists() else ""
    if left:
        raise ChainError(f"hwzswap swap off {name}: {'; '.join(left)}{kept}")
    if mnt:
        with contextlib.suppress(OSError):
            Path(mnt).rmdir()
        with contextlib.suppress(OSError):
            Path(mnt).parent.rmdir()
    if st.get("socket"):
        with contextlib.suppress(FileNotFoundError):
            Path(st["socket"]).unlink()
    with contextlib.suppress(FileNotFoundError):
        state_path(name).unlink()
    _drop_off_note(name)
    done.append("state removed")
    if kept:  # the server did not tear the chain down itself: its log may say why
        done.append(f"server log kept: {log_path(name)}")
    return done


def _abandon(name: str, st: dict[str, Any]) -> None:
    """``swap off`` stops waiting for the server of state ``st`` it sent SIGTERM (Ctrl-C, or
    its --timeout): noted, so that the server clears its exit record and log at its end as
    that ``swap off`` would have (:func:`_clear_abandoned`); done here if it ended already."""
    _write_off_note(name, st, abandoned=True)
    if not _server_alive(st):
        _clear_abandoned(name, st)


def _ended_record(name: str) -> dict[str, Any] | None:
    """The exit record (:func:`exit_path`) a server of chain ``name`` left, read and left in
    place, with ``at`` (when it was written) and, when a ``swap off`` sent it its SIGTERM
    (:func:`off_path`), ``stopped_by_off`` (when); None when there is none."""
    path = exit_path(name)
    try:
        out = json.loads(path.read_text())
        at = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(out, dict):
        return None
    note = _off_note(name, out)
    return {**out, "at": at, **({"stopped_by_off": note.get("at")} if note else {})}


def _ended_cleanly(ended: dict[str, Any]) -> bool:
    """Whether the server of exit record ``ended`` ended with nothing failed (its log then
    says nothing that needs keeping)."""
    return ended.get("rc") == 0 and not ended.get("problems") and not ended.get("errors")


def _clear_ended(name: str) -> list[str]:
    """``swap off`` of a chain that is not on, whose server ended on its own (it was stopped
    by a signal ``swap off`` did not send, or failed while serving), or by a ``swap off`` that
    did not wait for its end, and left its exit record and log: the record goes, and the log
    too when that server ended cleanly (else it is kept and named: it says what failed).
    What was done."""
    ended = _ended_record(name)
    if ended is None:
        return []
    with contextlib.suppress(FileNotFoundError):
        exit_path(name).unlink()
    _drop_off_note(name)
    how = ("stopped by an earlier `swap off` that did not wait for its end"
           if ended.get("stopped_by_off") is not None else "which ended on its own")
    done = [f"was not on; the record of its last server (pid {ended.get('pid')}, {how}, "
            f"with exit status {ended.get('rc')}) removed"]
    if _ended_cleanly(ended):
        with contextlib.suppress(FileNotFoundError):
            log_path(name).unlink()
            done.append(f"its log removed ({log_path(name)})")
    elif log_path(name).exists():
        done.append(f"server log kept: {log_path(name)}")
    return done


def _when(t: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return str(t)


def status(name: str = DEFAULT_NAME, timeout: float = 2.0) -> dict[str, Any]:
    """What chain ``name`` has set up; a live server's stats, or ``stats_error`` when its
    control socket does not answer within ``timeout`` seconds (still setting up, or hung).

    Besides: ``swapoff_failed`` (``at``, ``error``, ``advice``) when the server's last
    swapoff failed (the chain is stuck on until that is dealt with), ``error`` when the
    state records one (a teardown that could not undo everything), ``ended`` (the exit
    record: ``pid``, ``rc``, ``problems``, ``errors``, ``at``) when the server has exited,
    on its own included (the chain is then off, but its record and log stay until ``swap
    off`` or the next ``swap on``), ``log`` (the server log's path) when there is one, and
    ``owner`` (the owner record, with ``alive``) when ``run`` set the chain up (see
    "owners"): one whose run is gone says what ``swap off`` will remove."""
    st = read_state(name)
    out: dict[str, Any] = {"name": name, "on": st is not None}
    if st is not None:
        out.update(state=st, server_alive=_server_alive(st),
                   in_proc_swaps=st.get("loop") in active_swaps())
        if out["server_alive"]:
            try:
                out["stats"] = query(name, timeout=timeout)
            except ChainError as exc:
                out["stats_error"] = str(exc)
        if st.get("swapoff_failed_at") is not None:
            out["swapoff_failed"] = {
                "at": st["swapoff_failed_at"], "error": str(st.get("error") or "swapoff failed"),
                "advice": (
                    "the chain stays on and the pages on it are kept until that is dealt with "
                    "(pages that cannot come back in: end their processes or raise their "
                    f"cgroup's memory limit); then `hwzswap swap off --name {name}` tries "
                    "again (`--force` kills the server instead: the pages still on the device "
                    "are then lost to their owners)")}
        elif st.get("error"):
            out["error"] = str(st["error"])
    ended = _ended_record(name)
    if ended is not None and (st is None or (ended.get("pid"), ended.get("pid_start")) == (
            st.get("pid"), st.get("pid_start"))):
        out["ended"] = ended
    if log_path(name).exists():
        out["log"] = str(log_path(name))
    rec = read_owner(name)
    if rec is not None:
        out["owner"] = {**rec, "alive": owner_alive(rec)}
    return out


def _print_owner(name: str, out: dict[str, Any]) -> None:
    """The line of ``swap status`` about a chain whose ``run`` is no longer running."""
    owner = out.get("owner")
    if owner is None or owner["alive"]:
        return
    cgroups = [c for c in owner.get("cgroups") or () if Path(str(c)).is_dir()]
    print(f"  its run (pid {owner.get('pid')}) is no longer running: `hwzswap swap off "
          f"--name {name}` removes what it left (" + (
              f"cgroup {', '.join(map(str, cgroups))}, " if cgroups else "") +
          f"{owner_path(name)})")


def _print_status(name: str, out: dict[str, Any]) -> None:
    """``swap status``'s text: what is set up, and what went wrong and what to do."""
    ended, log = out.get("ended"), out.get("log")
    if not out["on"]:
        print(f"hwzswap swap {name}: off")
        _print_owner(name, out)
        if ended is not None:
            what = [f"exit status {ended.get('rc')}"]
            what += [str(p) for p in ended.get("problems") or []]
            if ended.get("stopped_by_off") is not None:
                print(f"  its last server (pid {ended.get('pid')}) ended at "
                      f"{_when(ended.get('at'))}, stopped by a `swap off` of "
                      f"{_when(ended['stopped_by_off'])} that did not wait for its end "
                      f"(interrupted, or past its --timeout; nothing of the chain is left): "
                      f"{'; '.join(what)}")
            else:
                print(f"  its last server (pid {ended.get('pid')}) ended on its own at "
                      f"{_when(ended.get('at'))} (not by `swap off`; nothing of the chain "
                      f"is left): {'; '.join(what)}")
            print(f"  server log: {log or 'none'}; `hwzswap swap off --name {name}` clears "
                  "this record" + ("" if log is None else " (and the log)"
                                   if _ended_cleanly(ended) else
                                   " (the log is kept: it says what failed)"))
        elif log is not None:
            print(f"  the log of an earlier server is kept: {log} (remove it when done with "
                  "it; the next `swap on` of this name moves it aside)")
        return
    st = out["state"]
    alive = out["server_alive"]
    print(f"hwzswap swap {name}: on, server pid {st.get('pid')} "
          f"({'alive' if alive else f'DEAD: run `hwzswap swap off --name {name}`'}), "
          f"{st.get('loop')} {'in' if out['in_proc_swaps'] else 'not in'} /proc/swaps, "
          f"config {st.get('config')}")
    _print_owner(name, out)
    failed = out.get("swapoff_failed")
    if failed is not None:
        print(f"  STUCK: the server's swapoff FAILED at {_when(failed['at'])}: "
              f"{failed['error']}")
        print(f"  {failed['advice']}")
    elif out.get("error"):
        print(f"  FAILED: the server could not undo all of the chain: {out['error']}")
    if ended is not None:
        print(f"  the server exited at {_when(ended.get('at'))} with status {ended.get('rc')}")
    if out.get("stats_error"):
        print(f"  the server does not answer: {out['stats_error']} (still setting up, or "
              f"hung: `hwzswap swap off --force --name {name}` ends it)")
    s = out.get("stats")
    if s:
        e = s["engine"]
        print(f"  writes {s['write_pages']} pages in {s['write_requests']} requests, reads "
              f"{s['read_pages']} in {s['read_requests']}, discarded "
              f"{s['discarded_pages']}; zswap stored {e.get('stored_pages')}, "
              f"backing device in/out {e.get('pswpin')}/{e.get('pswpout')}, "
              f"server CPU {s['cpu_s']:.2f} s")
    if not alive and log is not None:
        print(f"  server log: {log} (kept by `swap off`: it may say what happened)")


# -- command line -----------------------------------------------------------------------------


def _cmd_swap(args: argparse.Namespace) -> int:
    _check_swap_options(args)
    if args.action == "on":
        if args.config is None:
            raise ChainError(
                "hwzswap swap on: --config F is required (e.g. configs/serve-lz4.yaml)")
        sigs = OnSignals()
        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        before = {sig: signal.getsignal(sig) for sig in stops}
        keep_ignored = False
        for sig in stops:
            signal.signal(sig, sigs.handler)
        try:
            try:
                st = swap_on(args.config, name=args.name, priority=args.priority,
                             coexist=args.coexist, threads=args.threads,
                             device_time=args.device_time, record=args.record, signals=sigs,
                             keep_refused_log=False)
            except Interrupted as exc:
                print(f"hwzswap swap {args.name}: stopped by "
                      f"{signal.Signals(exc.signum).name} before swap was on; nothing is "
                      "left set up", file=sys.stderr)
                return 128 + exc.signum
            except ChainLeftError as exc:  # not refused: the work failed, and left this
                print(f"hwzswap swap: error: {exc}", file=sys.stderr)
                return EXIT_FAILED
            for sig in stops:
                # the chain is on: no signal may end this process now, not even while
                # Python finalises (it puts back the default action of handlers it
                # installed); so in a process that ends with this command (its entry point
                # says so: `cli.entry`) they stay ignored
                signal.signal(sig, signal.SIG_IGN)
            keep_ignored = bool(getattr(args, "ends_process", False))
            print(f"hwzswap swap {args.name}: on: {st.get('loop')} (server pid "
                  f"{st.get('pid')}, log {st.get('log')})")
            if sigs.got:
                print(f"hwzswap swap {args.name}: {signal.Signals(sigs.got[0]).name} came "
                      f"once swap was on: it stays on (`hwzswap swap off --name {args.name}` "
                      "ends it)", file=sys.stderr)
            return 0
        finally:
            sigs.hold = True  # from here a signal is only noted, never raised
            if not keep_ignored:  # an in-process caller of the CLI gets its own back
                for sig, handler in before.items():
                    if handler is not None:  # None: set outside Python, cannot be put back
                        signal.signal(sig, handler)
    if args.action == "off":
        try:
            # a chain whose run was killed (SIGKILL, the OOM killer): its cgroups too
            cleaned = clean_dead_owner(args.name, timeout=args.timeout, force=args.force)
            if cleaned is not None:
                print(f"hwzswap swap: {dead_owner_note(args.name, *cleaned)}",
                      file=sys.stderr)
                done = cleaned[1]
            else:
                done = swap_off(args.name, timeout=args.timeout, force=args.force,
                                strict=True)
        except ChainError as exc:  # something is still set up: the work failed, not refused
            print(f"hwzswap swap: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"hwzswap swap {args.name}: " + ("; ".join(done) if done else "was not on"))
        return 0
    if args.name is None:
        outs = [status(n) for n in chain_names()]
        if args.json:
            print(json.dumps({"state_dir": str(STATE_DIR), "chains": outs}, indent=2,
                             default=str))
        elif not outs:
            print(f"hwzswap swap: no chains ({STATE_DIR} holds none)")
        for out in outs if not args.json else ():
            _print_status(out["name"], out)
        return 0
    out = status(args.name)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        _print_status(args.name, out)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.config is None:
        raise ChainError("hwzswap serve: --config F is required (e.g. configs/serve-lz4.yaml)")
    args.record_command = None
    return serve_main(args)


#: swapon's explicit priorities (``swapon -p``: the kernel takes 0..SWAP_FLAG_PRIO_MASK; a
#: negative one is only ever the kernel's own automatic priority, -2, -3, ...)
MAX_PRIORITY = 32767
#: ``--threads``: each FUSE thread holds a request buffer of a little over 1 MiB, locked in
#: memory with the rest of the server (mlockall), and the kernel keeps only about a dozen
#: requests in flight (FUSE's max_background, 12 by default): more threads only cost memory
#: (2000 held 2.2 GB; 100000 hung `swap on`)
MAX_THREADS = 64
#: the options of ``swap on`` only (those of ``off`` and ``status`` are in ``register``)
_ON_OPTIONS = {"config": "--config", "priority": "--priority", "coexist": "--coexist",
               "threads": "--threads", "device_time": "--device-time", "record": "--record"}
_ACTION_OPTIONS = {"on": set(_ON_OPTIONS), "off": {"force", "timeout"}, "status": {"json"}}
_SWAP_OPTIONS = {**_ON_OPTIONS, "force": "--force", "timeout": "--timeout", "json": "--json"}
_ON_DEFAULTS = {"priority": DEFAULT_PRIORITY, "coexist": False, "threads": 4,
                "device_time": "real"}


def swap_priority(text: str) -> int:
    """``--priority``: an explicit swapon priority, 0..:data:`MAX_PRIORITY`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_PRIORITY:
        raise argparse.ArgumentTypeError(
            f"a swap priority is 0 to {MAX_PRIORITY} (higher is used first), got {value}: "
            "swapon takes no other explicit priority (a negative one is the kernel's own "
            "automatic priority, which it gives no device asked for one)")
    return value


def fuse_threads(text: str) -> int:
    """``--threads``: 1..:data:`MAX_THREADS` (see there why)."""
    from hwzswap.cliargs import positive_int

    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_THREADS}, got {value}: each thread holds a locked request buffer of "
            "over 1 MiB, and the kernel keeps only about a dozen FUSE requests in flight")
    return value


def _add_server_args(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The server's options. ``defaults=False`` (``swap``): every default is None, so that
    ``_cmd_swap`` can tell an option given to an action it does not apply to."""
    d = _ON_DEFAULTS if defaults else dict.fromkeys(_ON_DEFAULTS)
    p.add_argument("--config", help="engine config (YAML), e.g. configs/serve-lz4.yaml")
    p.add_argument("--name", type=chain_name, default=DEFAULT_NAME if defaults else None,
                   help="chain name (state file and mount; letters, digits, '_', '.', '-'; "
                        f"default {DEFAULT_NAME}; `swap status` without it lists every chain)")
    p.add_argument("--priority", type=swap_priority, default=d["priority"],
                   help=f"swapon priority, 0 to {MAX_PRIORITY}, higher used first (default "
                        f"{DEFAULT_PRIORITY})")
    p.add_argument("--coexist", action="store_true", default=d["coexist"],
                   help="allow other swap devices to stay active")
    p.add_argument("--threads", type=fuse_threads, default=d["threads"],
                   help=f"threads reading /dev/fuse, 1 to {MAX_THREADS} (default 4): each "
                        "holds a locked buffer of over 1 MiB, and the kernel keeps only about "
                        "a dozen FUSE requests in flight, so more only cost memory")
    p.add_argument("--device-time", choices=("real", "modelled"), default=d["device_time"],
                   help="wait out the swap file's device model (real) or only count it")
    p.add_argument("--record", metavar="FILE",
                   help="write the kernel's request stream as a workload file at teardown")


def _check_swap_options(args: argparse.Namespace) -> None:
    """Refuse an option given to a ``swap`` action it does not apply to (it did nothing);
    then fill in the defaults of ``on``'s options."""
    given = [opt for dest, opt in _SWAP_OPTIONS.items()
             if getattr(args, dest, None) is not None and getattr(args, dest) is not False
             and dest not in _ACTION_OPTIONS[args.action]]
    if given:
        which = {a: ", ".join(_SWAP_OPTIONS[d] for d in sorted(ds))
                 for a, ds in _ACTION_OPTIONS.items()}
        raise ChainError(
            f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} nothing for `swap "
            f"{args.action}`; leave {'it' if len(given) == 1 else 'them'} out (on takes {which['on']}; off takes {which['off']}; "
            f"status takes {which['status']}; all take --name)")
    for dest, value in _ON_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    if args.name is None and args.action != "status":  # status without it lists them all
        args.name = DEFAULT_NAME
    if args.timeout is None:
        args.timeout = 300.0


def register(sub: Any) -> None:
    from hwzswap.cliargs import seconds

    p = sub.add_parser(
        "swap", help="set up / tear down hwzswap as the kernel's swap device",
        description=(
            "on: start a server that serves the kernel's swap (FUSE file, loop device with "
            "direct I/O, mkswap, swapon) and return once swap is on; off: undo it (through the "
            "server, or from the state file after a crashed or killed one); status: say what "
            "is set up, and what went wrong with what to do (a failed swapoff, a dead "
            "server, one that ended on its own: `off` clears its record). Exit status 0 "
            "when done; 2 when refused (bad arguments or config, "
            "not root, no /dev/fuse or loop devices, inside a memory-limited cgroup, the "
            "kernel's own zswap on, another swap device active or being set up without "
            "--coexist, a chain of that --name already on or being set up) or when "
            "the server could not set the chain up (undone); 1 when on or off leaves something "
            "set up (it says what, at once when the server's swapoff failed: run it again once "
            "that is dealt with, or with --force) or the server's teardown failed (a --record "
            "file not written; its log is kept); 128+N when signal N (130: Ctrl-C) stopped "
            "on before swap was on (undone: once swap is on, on finishes and exits 0)."),
    )
    p.add_argument("action", choices=("on", "off", "status"))
    _add_server_args(p, defaults=False)
    p.add_argument("--json", action="store_true", help="status: as JSON")
    p.add_argument("--force", action="store_true",
                   help="off: kill a server that does not finish tearing down in time")
    p.add_argument("--timeout", type=seconds, default=None,
                   help="off: seconds to wait for the server (default 300)")
    p.set_defaults(func=_cmd_swap)
    p = sub.add_parser(
        "serve", help="serve the kernel's swap in the foreground until Ctrl-C",
        description=(
            "Set the chain up as `hwzswap swap on` does, serve in the foreground, and undo it "
            "all on Ctrl-C, SIGTERM or SIGHUP. Exit status 0 after a complete teardown; 2 "
            "when refused or the chain could not be set up, with nothing left set up (bad "
            "arguments or config, zswap.exclusive_loads: true, not root, no /dev/fuse or "
            "loop devices, inside a memory-limited cgroup, another swap device active "
            "without --coexist, a chain of that --name already on, a dead chain's leftovers "
            "that cannot be undone); 1 when the teardown is incomplete (the state file keeps "
            "what is left: `hwzswap swap off --name N` undoes it), or something failed "
            "while serving or after the chain was undone (a recording that cannot be "
            "written); 128+N when signal N came before the chain was up (130 for Ctrl-C): "
            "it stops at the next step and undoes what was set up."),
    )
    _add_server_args(p)
    p.set_defaults(func=_cmd_serve)


def main(argv: list[str] | None = None) -> int:
    """The server process's entry (``python -m hwzswap.serve.chain``)."""
    p = argparse.ArgumentParser(prog="hwzswap.serve.chain")
    _add_server_args(p)
    p.add_argument("--ready-fd", type=int)
    p.add_argument("--record-command")
    # from `swap on`: the user's config file (--config is a private copy, removed once
    # read), the locks it hands over, and a run that measures the kernel's zswap
    p.add_argument("--config-source")
    p.add_argument("--name-lock-fd", type=int)
    p.add_argument("--setup-lock-fd", type=int)
    p.add_argument("--allow-kernel-zswap", action="store_true")
    # from `run`: the process the server is tied to (see "owners")
    p.add_argument("--owner-pid", type=int)
    args = p.parse_args(argv)
    if args.config is None:
        p.error("--config is required")
    return serve_main(args, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
