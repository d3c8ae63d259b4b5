"""``hwzswap run --memory-limit M [--config F] [--compare base,lzo,lz4] [--record FILE] -- CMD``.

Runs a real command in a fresh memory cgroup (v1 or v2) with hwzswap as the kernel's swap device
(the chain of :mod:`hwzswap.serve.chain`, set up for the run and torn down after it) and prints
the seed's columns for it:

* ``pswpin`` / ``pswpout``: pages the kernel swapped in / out (``/proc/vmstat`` deltas; the
  chain is the only swap device, so they are this run's). The pages the server got are checked
  against them (:func:`count_warning`): a run warns when they differ by more than
  :data:`COUNT_TOLERANCE` (another swap device, allowed by ``--coexist``, took pages, or
  something else swapped meanwhile), since the columns are then not the command's alone;
* ``majflt``: the command's major faults (``wait4`` rusage, children included);
* ``I/O sum``: MiB read from and written to the *backing* swap file (the engine's ``pswpin`` +
  ``pswpout``): what reached the disk after zswap;
* runtime (wall clock) and CPU utilisation ((user + sys) / wall, as ``time`` prints it);

plus zswap's counters (its pool's peak size during the run: the engine's high-water mark,
which does not race with the discards that follow the command's exit as a count taken after
it did) and the server's CPU time per swapped page. ``--compare`` runs the command
once per configuration: ``base`` is every page to the backing device without compression (zswap
disabled), a compressor name (``lzo``, ``lz4``, ``zstd`` ...) is zswap with that compressor, and
``kernel-<comp>`` is the *kernel's own* zswap in front of the base chain (enabled for that run
only, restored after). It prints the seed-style table with % changes against the first entry
and can write JSON and a PNG.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hwzswap.errors import HwzswapError
from hwzswap.fileio import write_atomic, write_figure
from hwzswap.serve import chain, kernelzswap
from hwzswap.serve.cgroup import MemoryCgroup, cgroup_of, parse_size

MIB = 1 << 20

#: The config a run uses without ``--config``: v9 zswap (lzo) in front of a 256 MiB swap file
#: on the seed's disk bandwidth (58 MB/s), its time really waited out.
DEFAULT_CONFIG: dict[str, Any] = {
    "zswap": {"enabled": True, "compressor": "lzo", "max_pool_percent": 20},
    "memory": {"total_ram_mb": 512},
    "pool": {"type": "zsmalloc"},
    "swap": {"nr_pages": 65536, "model": "custom", "read_mb_s": 58.0, "write_mb_s": 58.0,
             "latency_us": 0.0},
}
#: The smallest --memory-limit taken. The cgroup is charged all the command has resident, and
#: not all of that can be swapped out: page tables, kernel stacks, the pages of a fault being
#: served, and the file-backed pages it executes from (a shell needs 1 to 2 MiB of those, Python
#: 6 to 10 MiB). Under a few MiB even ``true`` is OOM-killed before it does anything (1K was);
#: 8 MiB leaves a small program room and is well below what the swap tests use (16 to 32 MiB).
MIN_MEMORY_LIMIT = 8 * MIB
SEED_COLUMNS = ("pswpin", "pswpout", "majflt", "io_sum_mb", "runtime_s", "cpu_pct")


class RunError(HwzswapError):
    """``hwzswap run`` could not run or measure the command."""


class RunFailedError(RunError):
    """The run itself failed once it had started: the command would not exit even when killed
    (past ``--timeout``), or the teardown left something set up. Exit status 1 (a refusal
    before the run is 2)."""


def _vmstat() -> dict[str, int]:
    out = {}
    for line in Path("/proc/vmstat").read_text().splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v)
    return out


def format_size(n: int) -> str:
    """``n`` bytes in the largest unit it reaches (bytes, KiB, MiB, GiB, TiB), exactly:
    ``32 MiB``, ``1.5 MiB``, ``4 KiB``, ``1000 GiB``, else with the byte count too."""
    if n < 1024:
        return f"{n} bytes"
    unit, size = next((u, s) for u, s in (("TiB", MIB << 20), ("GiB", MIB << 10),
                                          ("MiB", MIB), ("KiB", 1024)) if n >= s)
    text = f"{n / size:.6g}"
    exact = float(text) * size == n
    return f"{text} {unit}" + ("" if exact else f" ({n} bytes)")


def check_memory_limit(text: str) -> int:
    """``--memory-limit`` in bytes (:func:`parse_size`), at least :data:`MIN_MEMORY_LIMIT`."""
    try:
        limit = parse_size(text)
    except HwzswapError as exc:  # the option is named: run takes more than one value
        raise RunError(f"--memory-limit {text}: {exc}") from None
    if limit < MIN_MEMORY_LIMIT:
        raise RunError(f"--memory-limit {text}: {format_size(limit)} is below the minimum of "
                       f"{format_size(MIN_MEMORY_LIMIT)}: the cgroup must also hold what the "
                       "command cannot swap out (page tables, kernel stacks, the code it runs), "
                       "so under that even `true` is OOM-killed; give e.g. 32M")
    return limit


def load_config_dict(path: str | None) -> dict[str, Any]:
    """The config as a plain dict (``path`` YAML, or :data:`DEFAULT_CONFIG`)."""
    if path is None:
        return copy.deepcopy(DEFAULT_CONFIG)
    from hwzswap.config import load_config

    cfg = load_config(path)  # read once (it may be a pipe): errors name the file and key
    chain.check_servable(cfg, path)
    return cfg.to_dict()


def config_for(label: str, base: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The engine config for a ``--compare`` label and the kernel zswap compressor (or None)."""
    cfg = copy.deepcopy(base)
    z = cfg.setdefault("zswap", {})
    if label == "base" or label.startswith("kernel-"):
        z["enabled"] = False
        return cfg, (label.removeprefix("kernel-") if label.startswith("kernel-") else None)
    if label == "config":
        return cfg, None
    z["enabled"] = True
    comp = z.get("compressor")
    if isinstance(comp, dict):
        comp = dict(comp, name=label)
        if comp["name"] != (z.get("compressor") or {}).get("name"):
            comp.pop("params", None)
        z["compressor"] = comp
    else:
        z["compressor"] = label
    return cfg, None


def _backend_problem(cfg: dict[str, Any]) -> str | None:
    """Why the engine's compressor of a loaded config cannot run here (its backend's
    ``availability()``: a device or library missing), None when it can or zswap is off."""
    from hwzswap.backends.registry import get_backend_class

    z = cfg.get("zswap", {})
    comp = z.get("compressor")
    name = comp.get("name") if isinstance(comp, dict) else comp
    if not z.get("enabled") or not isinstance(name, str):
        return None
    try:
        ok, reason = get_backend_class(name).availability()
    except HwzswapError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a driver's bug: said, not a traceback
        return f"backend {name!r}: availability() raised {type(exc).__name__}: {exc}"
    return None if ok else f"backend {name!r} cannot run here: {reason or 'no reason given'}"


def check_compare(text: str | None) -> list[str]:
    """The labels of ``--compare`` (``["config"]`` without it): an empty entry (``,lz4``,
    ``lz4,,lzo``) is refused, not dropped, since it is a typo of a name that was meant."""
    if text is None:
        return ["config"]
    labels = [s.strip() for s in text.split(",")]
    if not any(labels):
        return []  # "", ",": check_labels refuses it: names no configuration
    empty = [str(i + 1) for i, label in enumerate(labels) if not label]
    if empty:
        which = (f"entry {empty[0]} of {len(labels)} is" if len(empty) == 1 else
                 f"entries {', '.join(empty)} of {len(labels)} are")
        raise RunError(f"--compare {text}: {which} empty; give comma-separated names with "
                       "none left out, e.g. base,lzo,lz4")
    return labels


def command_problem(prog: str, errno_: int | None = None) -> str | None:
    """Why ``prog`` (a path, or a name looked up on PATH) cannot be started, said as what is
    wrong with the file (execve's ENOENT is also what a missing ``#!`` interpreter gives, and
    EACCES what a directory gives); None when nothing is seen. ``errno_``: the error a start
    failed with, for what can only be known then (ENOEXEC)."""
    import errno

    if os.sep not in prog:
        found = shutil.which(prog)
        if found is None:
            return "no such executable on PATH"
        prog = found
    if not os.path.lexists(prog):
        return "no such file"
    if not os.path.exists(prog):
        return f"it is a dangling symbolic link (to {os.readlink(prog)})"
    if os.path.isdir(prog):
        return "it is a directory, not a program"
    if not os.access(prog, os.X_OK):
        return ("it is not executable (no execute permission): chmod +x it, or give its "
                "interpreter first, e.g. -- sh FILE")
    try:
        with open(prog, "rb") as f:
            head = f.read(256)  # the kernel's BINPRM_BUF_SIZE: all of #! it reads
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip(b" \t")
        interp = line.split(None, 1)[0].decode(errors="replace") if line.split() else ""
        if not interp:
            return "its interpreter line (#!) names no program"
        if not os.path.exists(interp):
            return (f"its interpreter line (#!{line.decode(errors='replace')}) names "
                    f"{interp}, which does not exist")
        if os.path.isdir(interp) or not os.access(interp, os.X_OK):
            return (f"its interpreter line (#!{line.decode(errors='replace')}) names "
                    f"{interp}, which is not an executable program")
    if errno_ == errno.ENOEXEC:
        return ("Exec format error: the kernel cannot start it (not a binary it knows, and "
                "no #! interpreter line): add one, or give its interpreter first, e.g. -- sh "
                "FILE")
    return None


def check_labels(labels: list[str], base: dict[str, Any], source: str | None = None
                 ) -> list[tuple[dict[str, Any], str | None]]:
    """Each ``--compare`` label's config (:func:`config_for`), every one checked before the
    first run: a typo in the last label was found only when its server failed to start,
    after the runs before it (minutes each) were done. ``source``: the config file ``base``
    came from, named (with the key) where the ``config`` entry (no ``--compare``) fails."""
    if not labels:
        raise RunError("--compare names no configuration: give e.g. base,lzo,lz4")
    from hwzswap.config import load_config

    out = []
    for label in labels:
        cfg, kernel = config_for(label, base)
        if kernel is not None:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", kernel):
                raise RunError(f"--compare {label}: {kernel!r} is not a kernel compressor "
                               "name (e.g. kernel-lzo, kernel-lz4)")
            if not kernelzswap.available():
                raise RunError(f"--compare {label}: kernel zswap is not built into this "
                               f"kernel ({kernelzswap.ZSWAP_SYS})")
            why = kernel_compressor_problem(kernel)
            if why is not None:
                raise RunError(f"--compare {label}: {why}")
        else:
            # the config as given (no --compare): its file and key, as config errors say
            mine = (source or "the built-in default config (no --config)") \
                if label == "config" else None
            try:
                loaded = load_config(cfg).to_dict()
            except HwzswapError as exc:
                text = str(exc).removeprefix("<dict>: ")
                raise RunError(f"{mine}: {text}" if mine else f"--compare {label}: {text}"
                               ) from None
            why = _backend_problem(loaded)
            if why is not None:
                raise RunError(f"{mine}: zswap.compressor: {why}" if mine
                               else f"--compare {label}: {why}")
        out.append((cfg, kernel))
    return out


def _crypto_compressors() -> list[tuple[str, str]]:
    """The compression algorithms the kernel's crypto API has now (``/proc/crypto``): each
    entry's ``(name, driver)``, of type ``compression``, ``scomp`` or ``acomp`` and not
    ``internal`` (the kernel hands internal ones only to those who ask for them)."""
    found: set[tuple[str, str]] = set()
    entry: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in [*Path("/proc/crypto").read_text().splitlines(), ""]:
            key, _, value = (x.strip() for x in line.partition(":"))
            if key:
                entry[key] = value
                continue
            if (entry.get("type") in ("compression", "scomp", "acomp")
                    and entry.get("internal") != "yes" and entry.get("name")):
                found.add((entry["name"], entry.get("driver", entry["name"])))
            entry = {}
    return sorted(found)


def kernel_compressor_problem(comp: str) -> str | None:
    """Why the kernel's zswap cannot take ``comp`` (None when it can): the kernel's crypto API
    must have it, by name or driver name, as zswap asks for it (``crypto_has_acomp``); its
    module, where there is one, is loaded first (``modprobe crypto-<comp>``, as the kernel's
    own request would). Read only, before any run, so that a comparison that would fail is
    found before those ahead of it ran. Writing zswap's ``compressor`` parameter instead is
    no test: until zswap is first enabled after boot the kernel stores any name unchecked
    (and falls back to its default compressor when enabled); :class:`KernelZswap` reads the
    parameter back for that reason."""
    if (modprobe := shutil.which("modprobe")) is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([modprobe, "-q", f"crypto-{comp}"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                           check=False)
    have = _crypto_compressors()
    if any(comp in pair for pair in have):
        return None
    names = ", ".join(sorted({name for name, _ in have})) or "none"
    return (f"the kernel's zswap cannot use {comp}: the kernel's crypto API has no such "
            f"compressor and no module for it (/proc/crypto lists: {names})")


class KernelZswap:
    """The kernel's zswap switched on with ``compressor`` (and its shrinker) for one run. These
    parameters are machine-wide: every one written is restored on exit, whatever the path, with
    stop signals held off meanwhile (a second Ctrl-C must not leave zswap on); one that cannot
    be restored fails the run (:class:`RunFailedError`) naming it and its old value.
    ``on_saved``: called with the parameters as they were, before any is written (``run``
    records them, so that a run killed outright has them put back: ``chain.claim_owner``)."""

    def __init__(self, compressor: str,
                 on_saved: Callable[[dict[str, str]], None] | None = None) -> None:
        self.compressor = compressor
        self.on_saved = on_saved
        self._saved: dict[str, str] = {}
        self._written: set[str] = set()

    def __enter__(self) -> KernelZswap:
        if not kernelzswap.available():
            raise RunError("kernel zswap is not built into this kernel "
                           f"({kernelzswap.ZSWAP_SYS})")
        self._saved = kernelzswap.save()
        if self.on_saved is not None:
            self.on_saved(dict(self._saved))
        try:
            with _teardown_shield():  # a stop signal is raised once all is set (undone below)
                why = self._enable()
        except BaseException:
            self.__exit__()
            raise
        if why is not None:
            self.__exit__()
            raise RunError(f"cannot enable kernel zswap with {self.compressor}: {why}")
        return self

    def _set(self, key: str, value: str) -> None:
        self._written.add(key)  # before the write: one that failed may still have done some
        kernelzswap.write(key, value)

    def _enable(self) -> str | None:
        """Set the parameters; why the kernel's zswap does not now use the compressor asked
        for (None when it does)."""
        try:
            self._set("compressor", self.compressor)
            # Memory-pressure writeback on: without it a memory cgroup whose zswap pool (charged
            # to the cgroup) fills up has nowhere to go but the OOM killer.
            if "shrinker_enabled" in self._saved:
                self._set("shrinker_enabled", "Y")
            self._set("enabled", "Y")
        except OSError as exc:
            return exc.strerror or str(exc)
        # zswap set up for the first time since boot took any name and, lacking it, fell
        # back to its default: that run would measure another compressor than the one asked
        try:
            got = kernelzswap.read("compressor")
        except OSError as exc:
            got = f"unreadable ({exc.strerror})"
        if got != self.compressor:
            return (f"the kernel uses {got or 'no compressor'} instead (it has no "
                    f"{self.compressor})")
        return None

    @property
    def not_restored(self) -> list[str]:
        """The parameters written (or tried) that are not back as they were, of those whose
        old value was read: while there is one, the owner record that holds those values
        must stay (the next ``run`` or ``swap off --name`` puts them back from it)."""
        return [key for key in kernelzswap.KEYS if key in self._written and key in self._saved]

    def restore(self) -> list[str]:
        """Put back every parameter written (``enabled`` first); what could not be."""
        back, _, failed = kernelzswap.restore(self._saved, self._written)
        self._written.difference_update(back)
        return failed

    def __exit__(self, *exc: object) -> None:
        with _teardown_shield():
            failed = self.restore()
        if failed:
            raise RunFailedError("the kernel's zswap parameters could not be restored: "
                                 + "; ".join(failed))


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP noted while a block of :func:`_stop_signals` runs.

    The handler only notes a signal (and, ``interrupt``, raises KeyboardInterrupt for the
    first): it runs in the main thread wherever that thread is, also inside a write to
    stderr, and a handler that printed there then wrote into the stream it had interrupted
    (the main flow's text was lost, or "RuntimeError: reentrant call" came instead of the
    message). The main flow says what came, with :meth:`say`: while it waits (the teardown's
    polls) and once the block is done."""

    def __init__(self, interrupt: bool) -> None:
        self.interrupt = interrupt
        self.got: list[int] = []
        self._said = 1 if interrupt else 0  # the interrupting one is Ctrl-C's path, not said

    def handler(self, signum: int, _frame: Any) -> None:
        self.got.append(signum)  # no I/O here: see the class
        if self.interrupt and len(self.got) == 1:
            raise KeyboardInterrupt

    def say(self) -> None:
        """Print, from the main flow, one line for each signal noted and not yet said."""
        while self._said < len(self.got):
            signum = self.got[self._said]
            self._said += 1
            with contextlib.suppress(OSError, ValueError):  # stderr gone: it only informs
                print(f"hwzswap run: {signal.Signals(signum).name}: still undoing the chain",
                      file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stop_signals(interrupt: bool) -> Iterator[StopSignals]:
    """SIGINT, SIGTERM and SIGHUP while the block runs (:class:`StopSignals`, yielded).
    ``interrupt``: the first one raises KeyboardInterrupt at once (Ctrl-C's path), later ones
    are only reported; else every one is reported, and KeyboardInterrupt is raised once the
    block is done if any came. Main thread only (elsewhere nothing changes)."""
    noted = StopSignals(interrupt)
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    old = {sig: signal.signal(sig, noted.handler) for sig in _STOP_SIGNALS}
    try:
        yield noted
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        noted.say()
    if noted.got and not interrupt:
        raise KeyboardInterrupt


def stop_signals_interrupt() -> contextlib.AbstractContextManager[StopSignals]:
    """SIGTERM and SIGHUP take Ctrl-C's path (KeyboardInterrupt: the command is killed, the
    chain undone); only the first of the three signals interrupts, later ones are reported and
    wait for the teardown."""
    return _stop_signals(interrupt=True)


def _teardown_shield() -> contextlib.AbstractContextManager[StopSignals]:
    """While the chain is undone, SIGINT, SIGTERM and SIGHUP are only noted (a second Ctrl-C
    must not skip the swapoff) and said by the main flow (:meth:`StopSignals.say`); one that
    came is raised as KeyboardInterrupt afterwards."""
    return _stop_signals(interrupt=False)


def swap_priority(coexist: bool) -> int:
    """The swapon priority of a run's chain: :data:`chain.DEFAULT_PRIORITY`, and with
    ``coexist`` above every swap device active now (at most :data:`chain.MAX_PRIORITY`). The
    kernel takes swap slots from the highest-priority device that has room, and spreads them
    round-robin over devices of equal priority: at an equal one the command's pages were
    shared with the other device (by pages, not by process), at a lower one the chain got
    none of them until the other was full; above them all, it gets every page it has room
    for, and only what it cannot hold goes elsewhere (:func:`count_warning` says so)."""
    prios = [chain.DEFAULT_PRIORITY - 1]
    if coexist:
        with contextlib.suppress(OSError):
            for line in Path("/proc/swaps").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 5 and fields[4].lstrip("-").isdigit():
                    prios.append(int(fields[4]))
    return min(chain.MAX_PRIORITY, max(prios) + 1)


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> float:
    return float(after.get(key, 0) or 0) - float(before.get(key, 0) or 0)


def run_once(cmd: list[str], memory_limit: int, config: dict[str, Any], *,
             label: str = "config", kernel_zswap: str | None = None,
             record: str | None = None, name: str | None = None, coexist: bool = False,
             settle_s: float = 10.0, quiet: bool = False, oom_kill: bool = True,
             timeout_s: float | None = None, source: str | None = None) -> dict[str, Any]:
    """Set the chain up with ``config``, run ``cmd`` in a fresh cgroup limited to
    ``memory_limit`` bytes, measure, tear everything down. Returns one result row.

    ``oom_kill=False``: the cgroup's tasks wait for memory instead of being OOM-killed (v1).
    ``timeout_s``: after that long the command's cgroup is killed and the row is a failed
    run (``failure`` and ``timed_out`` say so); :class:`RunFailedError` (after the teardown)
    only when the command still would not exit. ``source``: the user's config file
    ``config`` came from, named in errors (the server is handed the config itself).

    This process is recorded as the owner of the chain and the cgroup
    (:func:`chain.claim_owner`) and its server and command are tied to it: killed outright
    (SIGKILL, the OOM killer), it takes them with it, and the next run or ``swap off`` undoes
    what they could not."""
    name = name or f"run{os.getpid()}"
    # what the server's messages call the config (it gets the dict: no file of run's own
    # that a killed run would leave behind)
    mine = (f"{source}" if source else "the built-in default config (no --config)")
    if label != "config":
        mine += f" as run for --compare {label}"
    cg_name = f"hwzswap-{name}-{label}"
    # This process owns the chain and the cgroup (recorded before either exists; the kernel's
    # zswap parameters too, before a kernel-<comp> run writes them): killed without its
    # teardown, its server and command go with it, and what they cannot undo the next run
    # or `swap off --name` does (chain.clean_dead_owner)
    owned = [cgroup_of("self")[1] / cg_name]
    chain.claim_owner(name, owned)
    cg: MemoryCgroup | None = None
    kz: KernelZswap | None = None
    timed_out = keep_log = False
    row: dict[str, Any] = {"label": label, "command": cmd, "memory_limit": memory_limit,
                           "config": config, "kernel_zswap": kernel_zswap}
    try:
        try:
            chain.swap_on(config, source=mine, name=name, coexist=coexist, record=record,
                          record_command=" ".join(cmd), priority=swap_priority(coexist),
                          allow_kernel_zswap=kernel_zswap is not None, owner=True)
        except HwzswapError as exc:
            keep_log = True  # the server log the message cites
            # something left set up (its undoing failed) is a failed run (exit 1), not a
            # refusal with nothing set up (exit 2)
            kind = RunFailedError if isinstance(exc, chain.ChainLeftError) else RunError
            raise kind(str(exc)) from None
        if kernel_zswap:
            kz = KernelZswap(kernel_zswap, on_saved=lambda saved: chain.claim_owner(
                name, owned, zswap=saved))
        with kz if kz is not None else contextlib.nullcontext():
            cg = MemoryCgroup.create(cg_name, memory_limit, oom_kill=oom_kill)
            s0, died = query_or_death(name)
            if died is not None:
                keep_log = True
                raise RunFailedError(f"the swap server died before the command started: "
                                     f"{died['text']}")
            v0 = _vmstat()
            t0 = time.monotonic()
            # killed with this process (SIGKILL: chain.on_parent_death); what it started in
            # its cgroup then goes with its server's teardown
            tie = chain.on_parent_death(signal.SIGKILL)

            def start_in_cgroup() -> None:
                tie()
                cg.add(os.getpid())

            try:
                proc = subprocess.Popen(cmd, preexec_fn=start_in_cgroup,
                                        stdout=subprocess.DEVNULL if quiet else None)
            except OSError as exc:  # not found, not executable (the chain is undone below)
                why = command_problem(cmd[0], exc.errno) or exc.strerror
                raise RunError(f"cannot run {cmd[0]}: {why}") from None
            try:
                status, ru, timeout_why = _wait(proc.pid, cg, timeout_s, name)
            except RunFailedError:
                timed_out = True
                raise
            if timeout_why is not None:  # a failed run, reported as one (not an abort)
                timed_out = True
                row["timed_out"] = timeout_why
            wall = time.monotonic() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            oom_kills = cg.oom_kills()
            v1 = _vmstat()
            try:
                s1, died = query_or_death(name)
            except HwzswapError:
                if not timed_out:
                    raise
                # the command was killed, yet its server does not answer: it is hung (and
                # perhaps why the command ran past --timeout); killed, the run is reported
                # as one whose server died
                if chain.kill_server(name):
                    row["timed_out"] += ("; its swap server then did not answer and was "
                                         "killed")
                s1, died = query_or_death(name)
            if died is not None:
                # a dead server (killed, crashed): its pages were lost to the command, whose
                # run is reported failed with what is known; the chain is undone as after a
                # crash and the server's log kept
                keep_log = True
                row["server_died"] = died
            cstat = cg.stat()
            memsw = cg.read("memory.memsw.max_usage_in_bytes")
            # what the command left in the swap cache holds its slots until reclaimed (a
            # whole THP's 512 stayed live now and then): reclaim it, so they are freed too
            cg.reclaim_all()
        # After the exit the kernel frees the command's swap slots; discards follow.
        s2 = s1
        deadline = time.monotonic() + settle_s
        while s1 is not None and time.monotonic() < deadline:
            time.sleep(0.25)
            s3, died = query_or_death(name)
            if died is not None:
                keep_log = True
                row["teardown_error"] = (f"the swap server died after the command ended: "
                                         f"{died['text']}")
                break
            if s3["live_pages"] == s2["live_pages"] and s3["live_pages"] <= 1:
                s2 = s3
                break
            s2 = s3
    finally:
        with _teardown_shield() as noted:
            errors = []
            if cg is not None:
                try:
                    cg.remove()
                except HwzswapError as exc:
                    errors.append(str(exc))
            teardown: dict[str, str] = {}
            try:
                # the command is gone, so swapoff has little to read back: a server that
                # takes minutes is hung, and is killed. strict: a failure of the server's
                # teardown once the chain is gone (the recording, closing the engine) raises
                try:
                    chain.swap_off(name, timeout=5 if timed_out else 120, force=True,
                                   strict=True, tick=noted.say)
                except chain.ChainTeardownError as exc:
                    teardown = teardown_problems(exc.problems)
                # what it said about the recording is kept in the row (--record reports it)
                if record and "recording" in teardown:
                    row["record_error"] = teardown.pop("recording")
                # run's chains are its own: their server log goes with them unless teardown
                # failed, when it is kept and named
                log = chain.log_path(name)
                if teardown:
                    why = "; ".join(f"{k}: {v}" if k else v for k, v in teardown.items())
                    row["teardown_error"] = (f"the server's teardown failed: {why} (the chain "
                                             f"is undone; server log kept: {log})")
                elif not keep_log and not row.get("teardown_error"):
                    with contextlib.suppress(OSError):
                        log.unlink()
            except HwzswapError as exc:
                errors.append(str(exc))
            pending = sys.exc_info()[1]  # what ended the run early, if anything did
            if pending is not None and row.get("teardown_error"):
                if isinstance(pending, HwzswapError):
                    errors.append(row["teardown_error"])
                else:  # Ctrl-C's path: said, and it goes on
                    print(f"hwzswap run: error: {label}: {row['teardown_error']}",
                          file=sys.stderr, flush=True)
            # The record stays while anything it records is not undone (the chain or the
            # cgroup: errors; the kernel's zswap parameters, whose old values only it holds
            # now): the next run or `swap off --name` undoes it once this process is gone
            not_back = kz.not_restored if kz is not None else []
            if not_back:
                errors.append(f"the old values of {', '.join(not_back)} stay recorded in "
                              f"{chain.owner_path(name)}: the next `hwzswap run` or "
                              f"`hwzswap swap off --name {name}` puts them back")
            if not errors:
                chain.drop_owner(name)
            if errors:
                if isinstance(pending, HwzswapError):  # e.g. --timeout: said first
                    errors.insert(0, str(pending))
                raise RunFailedError("; ".join(errors))
    if s1 is None:
        return _dead_server_row(row, proc.returncode, oom_kills, ru, wall, v0, v1, cg)
    e0, e1, e2 = s0["engine"], s1["engine"], s2["engine"]
    pswpin = int(_delta(v1, v0, "pswpin"))
    pswpout = int(_delta(v1, v0, "pswpout"))
    io_pages = _delta(e1, e0, "pswpin") + _delta(e1, e0, "pswpout")
    cpu = ru.ru_utime + ru.ru_stime
    served = _delta(s1, s0, "write_pages") + _delta(s1, s0, "read_pages")
    row.update({
        "exit_code": proc.returncode,
        "oom_kills": oom_kills,
        "failure": row.get("timed_out") or describe_exit(proc.returncode, oom_kills),
        "pswpin": pswpin,
        "pswpout": pswpout,
        "majflt": ru.ru_majflt,
        "io_sum_pages": int(io_pages),
        "io_sum_mb": io_pages * 4096 / MIB,
        "runtime_s": wall,
        "cpu_pct": 100.0 * cpu / wall if wall > 0 else 0.0,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "server": {
            "write_pages": int(_delta(s1, s0, "write_pages")),
            "write_requests": int(_delta(s1, s0, "write_requests")),
            "read_pages": int(_delta(s1, s0, "read_pages")),
            "read_requests": int(_delta(s1, s0, "read_requests")),
            "read_unwritten_pages": int(_delta(s1, s0, "read_unwritten_pages")),
            "discarded_pages": int(_delta(s2, s0, "discarded_pages")),
            "punch_requests": int(_delta(s2, s0, "punch_requests")),
            "cpu_s": _delta(s1, s0, "cpu_s"),
            "cpu_us_per_page": (1e6 * _delta(s1, s0, "cpu_s") / served) if served else None,
            "device_wait_s": _delta(s1, s0, "device_wait_s"),
            "live_pages_at_exit": s1["live_pages"],
            "live_pages_after": s2["live_pages"],
            "write_sizes": s1.get("write_sizes"),
            "read_sizes": s1.get("read_sizes"),
        },
        "zswap": {
            # the pool's high-water mark over the run (the server is the run's own): well
            # defined, unlike the stored count after the exit, which races with the discards
            "pool_peak_pages": e1.get("pool_peak_pages"),
            "pool_peak_mb": (e1["pool_peak_pages"] * 4096 / MIB
                             if e1.get("pool_peak_pages") is not None else None),
            # kept for readers of older results: sampled after the exit, while the kernel is
            # still freeing the command's slots (noise; not in the table)
            "stored_pages_at_exit": e1.get("stored_pages"),
            "stored_pages_after": e2.get("stored_pages"),
            "pool_pages_at_exit": e1.get("pool_pages", e1.get("pool_total_size")),
            **{k: int(_delta(e1, e0, k)) for k in (
                "zswpout", "zswpin", "written_back_pages", "pool_limit_hit",
                "reject_compress_poor", "reject_pool_limit", "reject_alloc_fail",
                "reject_reclaim_fail", "reject_folio", "same_filled_pages") if k in e1},
        },
        "kernel": {k: int(_delta(v1, v0, k)) for k in ("zswpout", "zswpin", "zswpwb",
                                                       "pgmajfault", "swpout_zero",
                                                       "swpin_zero") if k in v1},
        "cgroup": {"kind": cg.kind if cg else None, "pgmajfault": cstat.get("pgmajfault"),
                   "memsw_max_usage": memsw},
    })
    warning = count_warning(row)
    if warning is not None:
        row["count_warning"] = warning
    return row


#: How far the pages the server got may be from the kernel's ``pswpout`` / ``pswpin`` deltas
#: (a share of the larger, and at least :data:`COUNT_SLACK` pages) before a run warns.
COUNT_TOLERANCE = 0.05
COUNT_SLACK = 64


def count_warning(row: dict[str, Any]) -> str | None:
    """Why a row's kernel counts are not (all) the server's, or None when they agree within
    :data:`COUNT_TOLERANCE`: the chain should be the only swap device, so every page the kernel
    swapped out (``pswpout``) reached the server as a WRITE and every page it swapped in from
    a device (``pswpin``) as a READ of a written slot."""
    s = row["server"]
    off = []
    for what, server, kernel, key in (
            ("swapped out", s["write_pages"], row["pswpout"], "pswpout"),
            ("swapped in", s["read_pages"] - s["read_unwritten_pages"], row["pswpin"],
             "pswpin")):
        if abs(server - kernel) > max(COUNT_SLACK, COUNT_TOLERANCE * max(server, kernel)):
            why = ("another swap device (--coexist) or another process swapping meanwhile "
                   "took the rest, so the kernel's figures are not the command's alone"
                   if kernel > server else "the server saw I/O the kernel did not count as "
                   "swap (something else read or wrote the chain's loop device)")
            off.append(f"the kernel {what} {kernel} pages (/proc/vmstat {key}), the server "
                       f"got {server}: {why}")
    return "; ".join(off) or None


def query_or_death(name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The counters of chain ``name``'s server (``chain.query``) and None; or None and how the
    server ended (:func:`server_death`) when it is no longer running. A query that fails while
    the server lives raises its error."""
    try:
        return chain.query(name), None
    except HwzswapError:
        died = server_death(name)
        if died is None:
            raise
        return None, died


def server_death(name: str) -> dict[str, Any] | None:
    """How the server of chain ``name`` ended, when it is no longer running (None while it
    is): its ``pid``, ``status`` (its exit status or signal, when known), ``log`` (kept) and a
    one-line ``text``. The server is this process's child (``swap_on`` started it), so a
    dead one is reaped here for its status; one that exited on its own left an exit record."""
    try:
        st = chain.status(name, timeout=1.0)
    except HwzswapError as exc:
        st = {"on": False, "state_error": str(exc)}
    if st.get("server_alive"):
        return None
    pid = (st.get("state") or {}).get("pid")
    how = None
    if pid:
        try:
            wpid, wstatus = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped already, or not ours
            wpid = 0
        if wpid == pid:
            code = os.waitstatus_to_exitcode(wstatus)
            how = (f"exited with status {code}" if code >= 0 else
                   f"killed by signal {-code} ({_signal_name(-code)})")
    if how is None and st.get("ended"):
        how = f"exited with status {st['ended'].get('rc')}"
    log = chain.log_path(name)
    text = (f"the swap server (pid {pid or 'unknown'}) "
            f"{how or 'is gone (its exit status is unknown)'}; its log is kept: {log}")
    return {"pid": pid, "status": how, "log": str(log), "text": text}


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown signal"


def _dead_server_row(row: dict[str, Any], code: int, oom_kills: int | None, ru: Any,
                     wall: float, v0: dict[str, int], v1: dict[str, int],
                     cg: MemoryCgroup | None) -> dict[str, Any]:
    """The row of a run whose swap server died while the command ran: what the kernel and
    the command's rusage say; the server's and the engine's figures are unknown (None). The
    run failed, whatever the command's exit status: its swapped pages were lost."""
    died = row["server_died"]
    cmd_end = row.get("timed_out") or describe_exit(code, oom_kills) or "exited 0"
    cpu = ru.ru_utime + ru.ru_stime
    row.update({
        "exit_code": code, "oom_kills": oom_kills,
        "failure": f"{cmd_end}, and its swap server died while it ran: {died['text']}",
        "pswpin": int(_delta(v1, v0, "pswpin")), "pswpout": int(_delta(v1, v0, "pswpout")),
        "majflt": ru.ru_majflt, "io_sum_pages": None, "io_sum_mb": None,
        "runtime_s": wall, "cpu_pct": 100.0 * cpu / wall if wall > 0 else 0.0,
        "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
        "server": {"cpu_us_per_page": None, "died": died["status"]},
        "zswap": {},
        "kernel": {k: int(_delta(v1, v0, k)) for k in ("zswpout", "zswpin", "zswpwb",
                                                       "pgmajfault", "swpout_zero",
                                                       "swpin_zero") if k in v1},
        "cgroup": {"kind": cg.kind if cg else None},
    })
    return row


#: The kinds of failure the server reports once the chain is gone (``chain.run_server``).
_PROBLEM_KINDS = ("recording", "closing the engine")


def teardown_problems(problems: Sequence[str]) -> dict[str, str]:
    """The failures of the server's teardown (:attr:`chain.ChainTeardownError.problems`, one
    ``"KIND: what"`` each) by kind (``""``: one of no kind known here)."""
    out: dict[str, str] = {}
    for problem in problems:
        kind, sep, what = problem.partition(": ")
        if not (sep and kind in _PROBLEM_KINDS):
            kind, what = "", problem
        out[kind] = f"{out[kind]}; {what}" if kind in out else what
    return out


def _wait(pid: int, cg: MemoryCgroup, timeout_s: float | None, name: str
          ) -> tuple[int, Any, str | None]:
    """``wait4`` the command: its wait status, rusage and, when it ran past ``timeout_s``,
    why it ended (None otherwise). Past ``timeout_s`` everything in its cgroup is killed;
    tasks that still cannot exit are waiting on the swap server, which is then hung: it is
    killed too, so their I/O fails and they go (the chain is then undone as after a crash).
    A command that still will not exit raises :class:`RunFailedError` (nothing to report)."""
    if timeout_s is None:
        _, status, ru = os.wait4(pid, 0)
        return status, ru, None
    deadline = time.monotonic() + timeout_s
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return status, ru, None
        if time.monotonic() > deadline:
            cg.kill()
            why = f"ran past --timeout {timeout_s:g} s and was killed"
            ended = _wait_until(pid, time.monotonic() + 15)
            if ended is None:
                if chain.kill_server(name):
                    why += "; its tasks were stuck on the swap server, which was killed"
                ended = _wait_until(pid, time.monotonic() + 60)
            if ended is not None:
                return ended[0], ended[1], why
            raise RunFailedError(f"the command {why}; pid {pid} still would not exit")
        time.sleep(0.02)


def _wait_until(pid: int, deadline: float) -> tuple[int, Any] | None:
    """The wait status and rusage of child ``pid`` once it exits, or None at ``deadline``."""
    while time.monotonic() < deadline:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return status, ru
        time.sleep(0.02)
    return None


def describe_exit(code: int, oom_kills: int | None = None) -> str | None:
    """How the command ended, when it failed (None for exit status 0): its exit status, or
    the signal that killed it, naming the OOM killer when the cgroup's ``oom_kill`` count
    says it struck."""
    oom = bool(oom_kills)
    if code == 0:
        # a task of it died (a child the command went on without): not the run measured
        return None if not oom else (
            f"exited 0, but the OOM killer killed {oom_kills} task(s) in its cgroup, so its "
            "work was not all done; give a larger --memory-limit or swap.nr_pages")
    if code > 0:
        return f"exited with status {code}" + (
            f" (the OOM killer killed {oom_kills} task(s) in its cgroup)" if oom else "")
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown signal"
    if oom:
        return (f"was killed by the OOM killer (signal {-code}, {name}): its memory limit "
                "could not hold what was not swapped out (the swap file full, or memory "
                "that cannot be swapped); give a larger --memory-limit or swap.nr_pages")
    return f"was killed by signal {-code} ({name})"


def _short_exit(r: dict[str, Any]) -> str:
    code = r.get("exit_code", 0)
    if r.get("timed_out"):
        return "timeout"
    if code == 0:
        return "0, OOM-kill" if r.get("oom_kills") else "0"
    if code > 0:
        return str(code)
    return "OOM-killed" if r.get("oom_kills") else f"signal {-code}"


def pct(new: float, old: float) -> float | None:
    return None if not old else 100.0 * (new - old) / old


def compare_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's % change against the first, for the seed's columns. A change for or against
    a run whose command failed compares nothing valid: its values are None and ``invalid``
    says why."""
    base = rows[0]
    out = []
    for r in rows:
        failed = [x for x in ((base, r) if r is not base else (r,)) if x.get("failure")]
        if failed:
            why = "; ".join(f"{x['label']}: the command {x['failure']}" for x in failed)
            out.append({"label": r["label"], **{c: None for c in SEED_COLUMNS},
                        "invalid": why})
        else:
            out.append({"label": r["label"],
                        **{c: pct(r[c], base[c]) for c in SEED_COLUMNS}})
    return out


def format_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """The seed-style table: one line per run, a ``vs <first>`` line of % changes under each
    later one, an ``exit`` column, and a note under the table for each run whose command
    failed (its figures, and the % changes for or against it, are no valid measurement)."""
    head = ["config", "pswpin", "pswpout", "majflt", "I/O sum MiB", "runtime s", "CPU %",
            "zswpout", "pool peak MiB", "written back", "server µs/page", "exit"]
    grid: list[list[str]] = [head]
    changes = compare_rows(rows) if len(rows) > 1 else None
    for i, r in enumerate(rows):
        z = r["zswap"]
        label = r["label"] + (" (FAILED)" if r.get("failure") else "")
        if r.get("kernel_zswap"):  # the kernel's own zswap did the work: its counters
            k = r.get("kernel", {})
            zcells = [k.get("zswpout", "n/a"), "n/a", k.get("zswpwb", "n/a")]
        elif r.get("server_died"):  # the engine's counters died with the server
            zcells = ["?", "?", "?"]
        else:
            peak = z.get("pool_peak_mb")
            zcells = [z.get("zswpout", ""), "" if peak is None else f"{peak:.1f}",
                      z.get("written_back_pages", "")]
        io = "?" if r["io_sum_mb"] is None else f"{r['io_sum_mb']:.1f}"
        cells = [label, r["pswpin"], r["pswpout"], r["majflt"], io,
                 f"{r['runtime_s']:.2f}", f"{r['cpu_pct']:.0f}", *zcells,
                 f"{r['server']['cpu_us_per_page']:.1f}"
                 if r["server"]["cpu_us_per_page"] else "-", _short_exit(r)]
        grid.append([str(c) for c in cells])
        if changes and i:
            ch = changes[i]
            if ch.get("invalid"):
                cells = [f"  vs {rows[0]['label']}"] + ["invalid"] * len(SEED_COLUMNS)
            else:
                cells = [f"  vs {rows[0]['label']}"] + [
                    "-" if ch[c] is None else f"{ch[c]:+.0f}%" for c in SEED_COLUMNS]
            grid.append([str(c) for c in cells])
    widths = [max(13, *(len(g[j]) for g in grid if j < len(g))) for j in range(len(head))]
    lines = [title] if title else []
    lines += [" | ".join(f"{c:>{w}}" for c, w in zip(g, widths)) for g in grid]
    for r in rows:
        if r.get("kernel_zswap"):
            lines.append(f"{r['label']}: zswpout and written back are the kernel's own zswap "
                         "(/proc/vmstat zswpout, zswpwb); pool peak is n/a (the kernel keeps "
                         "no high-water mark of its pool, and its current size only in "
                         "debugfs); pswpin/pswpout are the pages it passed on to the swap "
                         "device (the hwzswap chain, zswap off there)")
    for r in rows:
        if r.get("server_died"):
            lines.append(f"SERVER DIED: {r['label']}: {r['server_died']['text']}; the "
                         "engine's figures (?) died with it")
    for r in rows:
        if r.get("count_warning"):
            lines.append(f"WARNING: {r['label']}: {r['count_warning']}")
    for r in rows:
        if r.get("teardown_error"):
            lines.append(f"TEARDOWN FAILED: {r['label']}: {r['teardown_error']}")
    for r in rows:
        if r.get("failure"):
            lines.append(f"FAILED: {r['label']}: the command {r['failure']}; its figures are "
                         "no valid measurement" + (" and its % changes are marked invalid"
                                                   if len(rows) > 1 else ""))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "python":
            platform.python_version(), "host": platform.node()}


def plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    changes = compare_rows(rows)[1:]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(changes))
    for i, ch in enumerate(changes):
        xs = [j + i * width for j in range(len(SEED_COLUMNS))]
        if ch.get("invalid"):  # no bars: a failed run's changes are no measurement
            ax.bar(xs, [0] * len(SEED_COLUMNS), width, hatch="//", edgecolor="red",
                   label=f"{ch['label']} (invalid: a command failed)")
        else:
            ax.bar(xs, [ch[c] or 0 for c in SEED_COLUMNS], width, label=ch["label"])
    ax.set_xticks([j + width * (len(changes) - 1) / 2 for j in range(len(SEED_COLUMNS))])
    ax.set_xticklabels(SEED_COLUMNS)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(f"% change vs {rows[0]['label']}")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    write_figure(fig, path)  # whole or not at all


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before the programs run, an output that could not be written at the end (a
    directory, a FIFO or device, an unwritable folder, the config file, two options naming one
    file), so a long run's results are never lost to a bad path."""
    from hwzswap.bench.cli import PLOT_SUFFIXES
    from hwzswap.cliargs import check_outputs

    check_outputs([("--json", args.json, ()), ("--plot", args.plot, PLOT_SUFFIXES),
                   ("--record", args.record, ())], inputs=[("--config", args.config)])


def _file_id(path: str) -> tuple[int, int, int] | None:
    """What tells a file written now from the one there before (or None: no file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder`` (as ``--json``'s write does); the folders it created, deepest
    first, so a run that writes nothing there can remove them again."""
    made: list[Path] = []
    d = folder
    while not d.exists():
        made.append(d)
        d = d.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made


def _record_outcome(path: str, before: tuple[int, int, int] | None,
                    rows: list[dict[str, Any]]) -> str | None:
    """None when the server wrote the recording at ``path`` during the run; else why not."""
    if rows and _file_id(path) not in (None, before):
        return None
    if not rows:
        return "the run did not finish"
    r = rows[-1]
    if r.get("record_error"):
        return f"the server could not write it: {r['record_error']}"
    if not r["server"]["write_pages"]:
        return ("the command swapped nothing out, so there was nothing to record (a smaller "
                "--memory-limit makes it swap)")
    return "the server wrote no file (its log said nothing about it)"


def _record_truncation(path: str) -> str | None:
    """What a recording the server wrote at ``path`` left out (its header's ``params``:
    the recorder stops at its cap, :data:`hwzswap.serve.server.RECORD_MAX_PAGES`), or None
    when it holds the whole stream."""
    from hwzswap.bench.workload import read_header
    from hwzswap.serve.server import RECORD_MAX_PAGES_ENV

    try:
        params = read_header(path)[0].get("params") or {}
    except HwzswapError as exc:
        return f"its header cannot be read back ({exc})"
    if not isinstance(params, dict) or not params.get("truncated"):
        return None
    return (f"the recording stopped after {params.get('recorded_pages')} pages "
            f"({params.get('truncated_why')}); {params.get('dropped_pages')} page(s) swapped "
            "out after that, and every request from then on, are not in it. The file is a "
            "valid prefix of the stream (it replays), not the whole run: record a shorter run, "
            f"or raise the cap with {RECORD_MAX_PAGES_ENV}")


def _cmd_run(args: argparse.Namespace) -> int:
    args.record_failed = False
    with stop_signals_interrupt() as noted:
        args.stop_signals = noted
        try:
            rc = _run_cmd(args)
        except RunFailedError as exc:  # the run failed, it was not refused
            print(f"hwzswap run: error: {exc}", file=sys.stderr)
            return 1
        return 1 if args.record_failed and rc == 0 else rc


def _run_cmd(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise RunError("hwzswap run: give the command after --, e.g. "
                       "hwzswap run --memory-limit 64M -- python prog.py")
    limit = check_memory_limit(args.memory_limit)
    labels = check_compare(args.compare)
    _check_outputs(args)  # a path that cannot be written is named first, whatever else
    if args.plot and len(labels) < 2:
        raise RunError(f"--plot {args.plot}: the plot is of the % changes against the first "
                       "configuration, so it needs --compare with two or more (e.g. "
                       "--compare base,lzo)")
    why = command_problem(cmd[0])  # before the chain is set up for it
    if why is not None:
        raise RunError(f"cannot run {cmd[0]}: {why}")
    # what an earlier run killed without its teardown (SIGKILL, the OOM killer) left and its
    # server could not undo: gone first, or its swap device would be "another" one below
    for _name, note in chain.clean_dead_owners(timeout=120):
        print(f"hwzswap run: {note}", file=sys.stderr, flush=True)
    # the kernel's own zswap may be on only where every run sets it itself (kernel-<comp>):
    # in front of any other run it would take the pages hwzswap is there to measure
    chain.preflight(coexist=args.coexist, allow_kernel_zswap=bool(labels) and all(
        label.startswith("kernel-") for label in labels))
    base = load_config_dict(args.config)
    if args.record and len(labels) > 1:
        raise RunError("--record takes one configuration (leave out --compare)")
    configs = check_labels(labels, base, source=args.config)
    rows: list[dict[str, Any]] = []
    record = made = before = None
    if args.record:
        # the server writes it at teardown (it may run elsewhere than this process's cwd);
        # its folders are made now, as --json's write makes them
        record = os.path.abspath(args.record)
        before = _file_id(record)
        made = _make_parents(Path(record).parent)
    try:
        return _run_all(args, cmd, limit, labels, configs, rows, record)
    finally:
        if record is not None:
            why = _record_outcome(record, before, rows)
            cut = _record_truncation(record) if why is None else None
            if cut is not None:
                print(f"recorded request stream: {args.record} (TRUNCATED)")
                print(f"hwzswap run: error: --record {args.record}: TRUNCATED: {cut}",
                      file=sys.stderr)
                args.record_failed = True
            elif why is None:
                print(f"recorded request stream: {args.record}")
            else:
                for d in made or ():
                    with contextlib.suppress(OSError):
                        d.rmdir()
                print(f"hwzswap run: error: --record {args.record}: not written: {why}",
                      file=sys.stderr)
                args.record_failed = True


def _run_all(args: argparse.Namespace, cmd: list[str], limit: int, labels: list[str],
             configs: list[tuple[dict[str, Any], str | None]], rows: list[dict[str, Any]],
             record: str | None) -> int:
    """Run each configuration in turn (``rows`` collects the results), print the table and
    write the outputs; the exit status."""
    aborted: dict[str, str] | None = None
    interrupted: dict[str, str] | None = None
    noted: StopSignals | None = getattr(args, "stop_signals", None)
    for label, (cfg, kernel) in zip(labels, configs):
        cut: str | None = label  # the run a stop signal would cut short
        try:
            print(f"hwzswap run: {label}: {' '.join(cmd)} (memory limit "
                  f"{format_size(limit)})", file=sys.stderr, flush=True)
            try:
                row = run_once(cmd, limit, cfg, label=label, kernel_zswap=kernel,
                               record=record, coexist=args.coexist,
                               oom_kill=not args.no_oom_kill, timeout_s=args.timeout,
                               source=args.config)
            except HwzswapError as exc:
                if not rows:
                    raise  # nothing measured: as before (2 when refused, 1 when it failed)
                # what was measured is still reported and written
                aborted = {"label": label, "error": str(exc)}
                print(f"hwzswap run: error: {label}: {exc}; reporting the {len(rows)} run(s) "
                      "done before it", file=sys.stderr, flush=True)
                break
            rows.append(row)
            cut = None
            _say_row(row)
        except KeyboardInterrupt:
            # Ctrl-C, SIGTERM or SIGHUP (the chain of the run it cut short is undone): the
            # runs finished before it are still reported and written, marked partial
            if not rows:
                raise
            sig = _signal_name(noted.got[0]) if noted is not None and noted.got else "SIGINT"
            interrupted = {"signal": sig, "label": cut}
            print(f"hwzswap run: {sig}: "
                  + ("" if cut is None else f"{cut} was cut short; ")
                  + f"reporting the {len(rows)} run(s) finished before it (a partial "
                  "comparison)", file=sys.stderr, flush=True)
            break
    title = f"{' '.join(cmd)} -- memory limit {format_size(limit)}"
    table = format_table(rows, title)
    if aborted:
        table += (f"\nNOT MEASURED: {', '.join(labels[len(rows):])} ({aborted['label']} "
                  f"failed: {aborted['error']})")
    if interrupted:
        table += (f"\nINTERRUPTED ({interrupted['signal']}): a partial comparison, "
                  f"{len(rows)} of {len(labels)} run(s); not measured: "
                  f"{', '.join(labels[len(rows):]) or 'none'}")
    print(table, flush=True)
    stopped = aborted or interrupted
    out = {"machine": machine(), "command": cmd, "memory_limit": limit, "runs": rows,
           "changes": compare_rows(rows), "aborted": aborted,
           "interrupted": interrupted, "partial": bool(interrupted),
           "not_run": labels[len(rows) + (1 if aborted or (interrupted and interrupted[
               "label"]) else 0):] if stopped else []}
    if args.json:
        write_atomic(args.json, lambda tmp: tmp.write_text(json.dumps(out, indent=1,
                                                                     default=str)))
    if args.plot and len(rows) > 1:  # fewer: refused up front, or a later run failed
        plot(rows, args.plot, title)
    elif args.plot:
        print(f"hwzswap run: --plot {args.plot}: not written: only {len(rows)} run was "
              "measured, nothing to compare", file=sys.stderr)
    failed = [r for r in rows if r["failure"]]
    if failed:
        print(f"hwzswap run: error: the command failed in {len(failed)} of {len(rows)} "
              f"run(s): " + "; ".join(f"{r['label']}: {r['failure']}" for r in failed),
              file=sys.stderr)
    broken = [r for r in rows if r.get("teardown_error")]
    if broken:  # measured, but something of the teardown failed: a failed run all the same
        print(f"hwzswap run: error: the teardown failed in {len(broken)} of {len(rows)} "
              f"run(s): " + "; ".join(f"{r['label']}: {r['teardown_error']}" for r in broken),
              file=sys.stderr)
    if interrupted is not None:
        raise KeyboardInterrupt  # after what was measured is out: exit 130, as for Ctrl-C
    return 1 if failed or aborted or broken else 0


def _say_row(row: dict[str, Any]) -> None:
    """What went wrong in one finished run, on stderr as it finishes."""
    label = row["label"]
    if row["failure"]:
        print(f"hwzswap run: {label}: the command {row['failure']}", file=sys.stderr,
              flush=True)
    if row.get("teardown_error"):
        print(f"hwzswap run: error: {label}: {row['teardown_error']}", file=sys.stderr,
              flush=True)
    if row.get("count_warning"):
        print(f"hwzswap run: warning: {label}: {row['count_warning']}", file=sys.stderr,
              flush=True)


def register(sub: Any) -> None:
    from hwzswap.cliargs import seconds

    p = sub.add_parser(
        "run", help="run a command in a memory cgroup with hwzswap as its swap",
        description=(
            "Set the chain up (as `hwzswap swap on`), run the command in a fresh memory cgroup "
            "limited to --memory-limit, print the seed's columns and zswap's counters, and "
            "undo everything; with --compare once per configuration. Exit status 0 when "
            "every run's command exited 0; 1 when a command failed or ran past --timeout "
            "(an OOM kill in its cgroup is a failure, even when it exited 0), the swap "
            "server died while it ran (its log is kept and named, the run marked failed), "
            "a --record file was not written or was truncated at its cap, a later --compare "
            "entry could not run (what was measured is still reported), or the teardown "
            "left something set up or failed (the server's log is then kept and named); 2 "
            "when refused before running (bad arguments, config or output file, not root, "
            "no /dev/fuse, loop devices or memory cgroup, another swap device active without "
            "--coexist, a --compare entry that cannot run here) or when the first chain "
            "could not be set up; 130 on Ctrl-C, SIGTERM or SIGHUP (all undone; the runs "
            "of --compare finished before it are still printed and written, marked "
            "partial)."),
    )
    p.add_argument("--memory-limit", required=True,
                   help="cgroup memory limit (e.g. 64M; at least 8M: the cgroup also holds "
                        "what the command cannot swap out)")
    p.add_argument("--config", help="engine config (YAML); default: lzo, 58 MB/s swap file")
    p.add_argument("--compare", help="comma-separated: base, compressor names, kernel-<comp>")
    p.add_argument("--record", metavar="FILE",
                   help="write the request stream as a workload (missing folders are made); "
                        "exit 1 when it could not be written, the command swapped nothing, "
                        "or it was truncated at its cap (262144 pages; "
                        "HWZSWAP_RECORD_MAX_PAGES sets another)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--plot", metavar="OUT.png",
                   help="a PNG of the %% changes against the first configuration: needs "
                        "--compare with two or more (refused, exit 2, without)")
    p.add_argument("--coexist", action="store_true", help="allow other active swap devices")
    p.add_argument("--no-oom-kill", action="store_true",
                   help="cgroup v1: tasks wait for memory instead of being OOM-killed")
    p.add_argument("--timeout", type=seconds, help="kill the command after this many seconds")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    p.set_defaults(func=_cmd_run)


__all__ = ["DEFAULT_CONFIG", "RunError", "RunFailedError", "config_for", "format_table",
           "run_once"]
