"""``hwzswap stats``: open a swap system from a config, run a short swap workload, show counters.

The run swaps out ``--pages`` pages (from the bundled corpus of real memory when it is installed,
else a synthetic real-memory-like mix) in reclaim passes of 32 pages, a quarter of them in
16-page folios (:data:`LARGE_FOLIO`), swaps every one back in and checks it byte for byte,
frees every other slot, and prints zswap's and the swap device's counters. The backend is
warmed up first on a throwaway swap system, so the per-page times hold no one-time setup.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from hwzswap.cliargs import file_name, positive_int, seed
from hwzswap.errors import ConfigError, HwzswapError, WorkloadError

if TYPE_CHECKING:
    from hwzswap.frontswap.compressor import Compressor

# Counters in the order the table shows them, grouped as the kernel's debugfs/vmstat do.
_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("pool", ("stored_pages", "same_filled_pages", "pool_pages", "pool_total_size",
              "pool_peak_pages", "pool_limit_pages", "compressed_bytes",
              "compressed_bytes_at_peak")),
    ("stores", ("stores", "zswpout", "duplicate_entry", "pool_limit_hit", "reject_pool_limit",
                "reject_compress_poor", "reject_compress_fail", "reject_alloc_fail",
                "reject_reclaim_fail", "reject_folio")),
    ("loads", ("loads_hit", "loads_miss", "decompress_fail", "invalidates")),
    ("writeback", ("written_back_pages", "writeback_fail", "writeback_raced",
                   "outstanding_writebacks")),
    ("swap device", ("pswpout", "pswpin", "swap_failed_writes", "swap_failed_reads",
                     "swap_io_us", "swap_model_us")),
]


def _pages(n: int) -> tuple[np.ndarray, str]:
    """``n`` pages of the bundled corpus, or of the synthetic mix when there is none."""
    try:
        from hwzswap.bench.corpus import load_bundled
    except ImportError:
        load_bundled = None
    if load_bundled is not None:
        try:
            pages = load_bundled(max_pages=n)
        except HwzswapError:
            pages = None
        if pages is not None and len(pages):
            return np.ascontiguousarray(pages[:n]), "bundled corpus"
    from hwzswap.testing import real_memory_mix

    return real_memory_mix(n, seed=1), "synthetic real-memory mix"


#: Pages per swap_out_batch call: one reclaim pass (the kernel's SWAP_CLUSTER_MAX).
RECLAIM_BATCH = 32
#: Pages of the large folios in the run: every second full reclaim pass holds one folio of
#: this many pages (a 64 KiB mTHP folio) and order-0 pages for the rest, so a quarter of the
#: pages sit in large folios, the share the bench's default folio mix assumes (see
#: ``hwzswap.bench.workload.DEFAULT_FOLIO_MIX`` for why). In ``folio`` mode each folio is one
#: batch; with order-0 pages alone that mode would run exactly as ``page`` does.
LARGE_FOLIO = 16


def pass_folios(index: int, n: int) -> list[int]:
    """The folio sizes of reclaim pass ``index`` of ``n`` pages (see :data:`LARGE_FOLIO`)."""
    if index % 2 and n == RECLAIM_BATCH:
        return [LARGE_FOLIO] + [1] * (n - LARGE_FOLIO)
    return [1] * n
#: Extra seconds a stalled run gets on top of its device deadline before it is abandoned.
STALL_SLACK_S = 5.0


class _Progress:
    """What the workload thread is doing, for the watchdog: the current step and when the last
    one finished."""

    def __init__(self) -> None:
        self.step = "opening the swap system"
        self.at = time.monotonic()
        #: the engine's device deadline once a swap system is open (a driver may set its own)
        self.deadline_s: float | None = None
        self._compressor: Compressor | None = None
        self._timeouts = 0
        #: the measured system is open and checked: a failure from here on is the run's
        #: (exit status 1), not input refused before anything ran (2)
        self.running = False

    def __call__(self, step: str) -> None:
        self.step, self.at = step, time.monotonic()

    def watch(self, compressor: Compressor) -> None:
        """A swap system is open: its deadline, and its given-up calls (:meth:`gave_up`)."""
        self.deadline_s = compressor.timeout_s
        self._compressor = compressor
        self._timeouts = compressor.timeouts

    def gave_up(self) -> bool:
        """Whether the engine gave up on a device call at its deadline since the last look.
        That is the engine at work, not a stall: a step of N pages on a hung device takes up
        to ``device_fail_after`` deadlines before the device is marked failed (N, for loads a
        device with no software decoder must still answer)."""
        comp = self._compressor
        if comp is None or comp.timeouts == self._timeouts:
            return False
        self._timeouts = comp.timeouts
        return True


#: The mark :func:`run_stats` sets on an error raised once the measured run had started (a
#: device or driver failing, a hung step, a failing close), as against input refused first.
DURING_RUN = "hwzswap_stats_during_run"


def _stall_limit_s(config: Any) -> float:
    """How long one step may take before the run is abandoned: a few device deadlines
    (``zswap.device_timeout_ms``, else the engine's default) plus slack."""
    from hwzswap.config import load_config
    from hwzswap.frontswap.compressor import DEFAULT_TIMEOUT_MS

    ms = load_config(config).zswap.device_timeout_ms
    return 3 * (ms if ms is not None else DEFAULT_TIMEOUT_MS) / 1000.0 + STALL_SLACK_S


#: Pages the backend is warmed up on before the timed run (a reclaim pass).
WARMUP_PAGES = 32


def _warm_up_twin(config: Any, data: np.ndarray, progress: _Progress) -> dict[str, Any]:
    """Run a twin of the configured backend (a second instance, same name and parameters) once,
    through a throwaway swap system, before anything is timed, so one-time setup (the 842
    codec's numba functions loaded on first call: ~0.1 s, seconds when they are compiled; an
    OpenCL program build) is not charged to the per-page figures.

    Not the bench's warm-up (``hwzswap.bench.runner._warm_up_measured``), on purpose: this
    report shows the measured instance's own counters and modelled device time as they stand,
    so the warm-up must not touch that instance, and there is no codec-alone path to warm; the
    bench warms the very instance it measures (its raw path calls it directly) and reads its
    counters as differences.

    The throwaway system has its own backend instance (same name and parameters) and a
    temporary swap file, and is closed before the measured system opens, so the measured
    instance's counters and modelled device time are the run's alone: what it warms is what a
    process shares (JIT code, compiled programs, imports). It goes through the engine (its
    deadlines: a hung device is given up on as in the run) in the configured engine mode: a
    reclaim pass (read-only and writable arrays), single pages, loads singly and in a batch.
    Returns ``{"backend", "seconds", "error"}``; a device error here is noted in ``error``,
    and a backend that cannot be built is left for the measured open to report."""
    from hwzswap.config import load_config
    from hwzswap.frontswap.system import open_zswap

    cfg = load_config(config)
    name = cfg.zswap.compressor.name
    out: dict[str, Any] = {"backend": name, "seconds": None, "error": None}
    n = min(WARMUP_PAGES, len(data))
    d = cfg.to_dict()
    d["swap"]["path"] = None  # a temporary swap file, never the config's
    d["swap"]["nr_pages"] = 2 * n + 8
    progress(f"warming up backend {name!r} (a throwaway swap system)")
    t0 = time.perf_counter()
    try:
        system = open_zswap(load_config(d))
        progress.watch(system.zswap.compressor)
    except Exception:  # noqa: BLE001 - the measured open reports it, naming the config
        return out
    try:
        frozen = np.array(data[:n])
        frozen.flags.writeable = False
        for base, arr in ((0, frozen), (n, np.array(data[:n]))):
            offs = list(range(base, base + n))
            try:
                progress(f"warm-up: swap_out_batch of {n} pages")
                system.swap_out_batch(0, offs, arr)
                system.swap_out(0, base, arr[0].tobytes())
                progress("warm-up: drain")
                system.drain()
                progress("warm-up: swap_in")
                system.swap_in(0, base)
                system.swap_in_batch(0, offs[1:9])
            except HwzswapError as exc:  # a failing device: the run will show it
                out["error"] = f"{type(exc).__name__}: {exc}"
            for o in offs:
                system.swap_free(0, o)
    finally:
        progress("warm-up: closing")
        try:
            system.close()
        except HwzswapError as exc:  # a driver whose close fails: the measured run shows it
            out["error"] = out["error"] or f"{type(exc).__name__}: {exc}"
    out["seconds"] = time.perf_counter() - t0
    return out


def _workload(config: Any, rows: list[bytes], data: np.ndarray, source: str, seed: int,
              progress: _Progress, warm_up: bool = True) -> dict[str, Any]:
    from hwzswap.frontswap.system import open_zswap

    warm = _warm_up_twin(config, data, progress) if warm_up else None
    progress("opening the swap system")
    with open_zswap(config) as system:
        progress.watch(system.zswap.compressor)
        backend = system.backend
        nr = system.devices[0].nr_pages
        n = len(rows)
        if n > nr:
            raise ConfigError(
                f"{system.config.source}: swap.nr_pages: the swap device holds {nr} pages, "
                f"fewer than the {n} --pages asks to swap; pass --pages {nr} or less, or raise "
                "swap.nr_pages"
            )
        progress.running = True
        order = np.random.default_rng(seed).permutation(n).tolist()
        large = 0
        t0 = time.perf_counter()
        for k in range(0, n, RECLAIM_BATCH):
            end = min(k + RECLAIM_BATCH, n)
            folios = pass_folios(k // RECLAIM_BATCH, end - k)
            large += end - k - folios.count(1)
            progress(f"swap_out_batch of offsets {k}..{end - 1}")
            system.swap_out_batch(0, list(range(k, end)), data[k:end], folios)
        progress("drain (compressions in flight)")
        system.drain()
        t1 = time.perf_counter()
        mismatches = 0
        for off in order:
            progress(f"swap_in of offset {off}")
            if system.swap_in(0, off) != rows[off]:
                mismatches += 1
        t2 = time.perf_counter()
        for off in range(0, n, 2):
            progress(f"swap_free of offset {off}")
            system.swap_free(0, off)
        progress("collecting counters")
        counters = system.stats()
        cfg = system.config
        caps = system.zswap.compressor.capabilities  # as the engine read them: no 2nd read
        try:
            own = dict(backend.counters())
        except Exception as exc:  # noqa: BLE001 - the backend's counters are informative only
            own = {"error": f"counters() raised {type(exc).__name__}: {exc}"}
        modeled = backend.modeled_device_us() if caps.time_basis == "modeled" else None
        report = {
            "config": cfg.source,
            "backend": backend.name,
            "device": caps.device,
            "time_basis": caps.time_basis,
            "batching": cfg.zswap.batching,
            "pool": cfg.pool.type,
            "swap_model": system.model.name,
            "page_source": source,
            "pages": n,
            "large_folio_pages": large,  # in folios of LARGE_FOLIO pages; the rest order-0
            "large_folio_size": LARGE_FOLIO,
            "verified_pages": n - mismatches,
            "mismatches": mismatches,
            "swap_out_s": t1 - t0,
            "swap_in_s": t2 - t1,
            "warm_up": warm,
            "counters": counters,
            "backend_counters": _plain(own),
            "modeled_device_us": modeled,
        }
        progress("closing")
    return report


def _plain(obj: Any) -> Any:
    """A JSON-ready copy of a backend's counters (numpy scalars and arrays become numbers/lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def run_stats(config: Any, pages: int, seed: int = 0,
              stall_s: float | None = None, warm_up: bool = True) -> dict[str, Any]:
    """Run the short workload; return a JSON-ready report (``counters`` holds zswap's and the
    swap devices' counters, ``backend_counters`` the backend's own, ``modeled_device_us`` a
    modelled device's time).

    ``config``: a path (read once: it may be a pipe), a mapping or a loaded config.

    ``warm_up`` (default): the backend runs once on a throwaway swap system before the
    measured one opens (:func:`_warm_up_twin`), so ``swap_out_s`` / ``swap_in_s`` do not include
    one-time setup such as a JIT's first call; ``warm_up`` in the report says what it took
    (None: not done).

    The workload runs in a worker thread under a watchdog: a step that goes longer than
    ``stall_s`` (default: three device deadlines plus 5 s: ``zswap.device_timeout_ms``, or the
    driver's own when it sets one and the config does not) with neither an end nor a device
    call given up at its deadline -- a driver call that never returns, which the engine cannot
    interrupt -- abandons the run with a :class:`~hwzswap.errors.DeviceError` naming the step,
    instead of hanging.
    """
    from hwzswap.config import load_config
    from hwzswap.errors import DeviceError

    # Read once: a path may be a pipe (``--config <(...)``, ``/dev/stdin``), empty when read
    # again; every step below gets the loaded config, which keeps the path for messages.
    config = load_config(config)
    limit = _stall_limit_s(config) if stall_s is None else stall_s
    data, source = _pages(pages)
    if len(data) < pages:
        raise WorkloadError(f"--pages {pages}: the {source} holds {len(data)} pages; pass "
                            f"--pages {len(data)} or less")
    rows = [bytes(p) for p in data]
    progress = _Progress()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["report"] = _workload(config, rows, data, source, seed, progress, warm_up)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            if progress.running:
                setattr(exc, DURING_RUN, True)
            box["exc"] = exc

    worker = threading.Thread(target=run, name="hwzswap-stats", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
        if stall_s is None and progress.deadline_s is not None:  # a driver's own deadline
            limit = max(limit, 3 * progress.deadline_s + STALL_SLACK_S)
        if progress.gave_up():  # a call given up at its deadline: the engine is not stuck
            progress.at = time.monotonic()
        if worker.is_alive() and time.monotonic() - progress.at > limit:
            stalled = DeviceError(
                f"{progress.step} did not return within {limit:g} s; the backend "
                "is not answering (a driver call that never returns cannot be interrupted; set "
                "zswap.device_timeout_ms for a driver's asynchronous ops). The run was abandoned."
            )
            setattr(stalled, DURING_RUN, True)  # a hung device, never input refused (the
            raise stalled  # warm-up's or the open's included): exit status 1
    if "exc" in box:
        raise box["exc"]
    return box["report"]


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Paths, backend names and a driver's counter names are the user's or the driver's
    # strings: shown as plain text (Text, markup=False), never parsed as rich markup.
    console = Console()
    c = report["counters"]
    title = (
        f"{report['config']}: {report['backend']} / {report['pool']} / swap model "
        f"{report['swap_model']} — {report['pages']} pages ({report['page_source']}), "
        f"{report['verified_pages']} verified"
        + (f"; {report['large_folio_pages']} of them in {report['large_folio_size']}-page "
           f"folios, the rest order-0" if report.get("large_folio_pages") else "")
    )
    # The header goes on its own line, unwrapped: a table title wraps at the
    # table's width, which splits a long config path across lines.
    console.print(title, soft_wrap=True, highlight=False, markup=False)
    table = Table(show_lines=False)
    table.add_column("group")
    table.add_column("counter")
    table.add_column("value", justify="right")
    shown = set()
    for group, keys in _GROUPS:
        for i, key in enumerate(keys):
            if key not in c:
                continue
            shown.add(key)
            v = c[key]
            text = f"{v:,.0f}" if isinstance(v, float) else f"{v:,}"
            table.add_row(group if i == 0 else "", Text(key), text)
    rest = [k for k in c if k not in shown]
    for i, key in enumerate(rest):
        table.add_row("other" if i == 0 else "", Text(str(key)), Text(str(c[key])))
    console.print(table)
    own = report.get("backend_counters") or {}
    if own:
        bt = Table(title=Text(f"{report['backend']} ({report.get('device', '')}): its own "
                              f"counters"),
                   show_lines=False)
        bt.add_column("counter")
        bt.add_column("value", justify="right")
        for key, v in own.items():
            bt.add_row(Text(str(key)), Text(_cell(v)))
        console.print(bt)
    n = max(report["pages"], 1)
    console.print(
        f"swap_out {report['swap_out_s'] * 1e6 / n:.1f} µs/page, "
        f"swap_in {report['swap_in_s'] * 1e6 / n:.1f} µs/page (host time; engine mode "
        f"{report.get('batching', '?')}; {_warm_up_words(report.get('warm_up'))})",
        highlight=False, soft_wrap=True, markup=False,
    )
    modeled = report.get("modeled_device_us")
    if modeled is not None:
        console.print(f"modelled device time {modeled:,.1f} µs in all, {modeled / n:.2f} µs/page "
                      f"({report['backend']} is {report['time_basis']})", markup=False)


def _warm_up_words(warm: dict[str, Any] | None) -> str:
    """What the per-page figures include, in words: one-time setup excluded or not."""
    if warm is None or warm.get("seconds") is None:
        return "no warm-up: the figures include the backend's one-time setup"
    if warm.get("error"):
        return (f"the warm-up failed ({warm['error'][:120]}): the figures may include the "
                "backend's one-time setup")
    return (f"one-time setup excluded: the backend was warmed up first on a throwaway swap "
            f"system, {warm['seconds'] * 1e3:.0f} ms")


def _cell(v: Any) -> str:
    """One backend counter as table text: numbers with separators, long lists summarised."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, list) and len(v) > 8:
        return f"[{len(v)} values, sum {sum(x for x in v if isinstance(x, (int, float))):,}]"
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def default_config() -> Any:
    """The built-in defaults (``configs/default.yaml``'s), named so in the report; used when
    ``--config`` is not given, wherever the command runs from."""
    from hwzswap.config import load_config

    cfg = load_config({})
    cfg.source = "built-in defaults"
    return cfg


def _cmd_stats(args: argparse.Namespace) -> int:
    config = args.config if args.config is not None else default_config()
    try:
        report = run_stats(config, args.pages, seed=args.seed)
    except HwzswapError as exc:
        if not getattr(exc, DURING_RUN, False):
            raise  # refused before anything ran (a bad config, an unusable swap file): 2
        print(f"hwzswap stats: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(report)
    rc = 0
    if report["mismatches"]:
        print(f"hwzswap stats: {report['mismatches']} pages came back wrong", file=sys.stderr)
        rc = 1
    c = report["counters"]
    if c.get("driver_failed") or c.get("driver_recoveries"):
        # as the bench's DEV FAILED: the stores it refused went to the swap device, so the
        # figures (and a modelled device time of given-up requests) do not measure the device
        print(f"hwzswap stats: the device was marked failed during the run "
              f"({c.get('driver_timeouts', 0)} timeouts, device_fail_after in a row): the "
              f"stores it refused went to the swap device, and the figures do not measure it",
              file=sys.stderr)
        rc = 1
    elif c.get("driver_refused_stuck"):
        print(f"hwzswap stats: {c['driver_refused_stuck']} driver calls were not made: an "
              f"earlier call was still stuck in the driver past its own deadline; those "
              f"pages went to the swap device (or the software decoder), and the figures do not "
              f"measure the device", file=sys.stderr)
        rc = 1
    return rc


def register(subparsers: Any) -> None:
    """Add ``hwzswap stats``."""
    p = subparsers.add_parser(
        "stats",
        help="run a short swap workload through zswap from a config and show the counters",
        description=(
            "Open a swap system from a config, swap out --pages pages (from the bundled corpus "
            "of real memory when it is installed, else a synthetic real-memory-like mix), swap "
            "every one back in and check it byte for byte, free every other slot, and print "
            "zswap's and the swap device's counters. The backend is first warmed up on a "
            "throwaway swap system, so the per-page times hold no one-time setup (a JIT's "
            "first call, a kernel build). Exit status 1 if a page came back wrong, the "
            "device was marked failed or calls were refused behind a stuck one, or the run "
            "failed (a device or driver error), 2 on a bad option or config."
        ),
    )
    p.add_argument("--config", metavar="FILE", type=file_name,
                   help="zswap config (YAML); default: the built-in defaults "
                        "(configs/default.yaml)")
    p.add_argument("--pages", type=positive_int, default=2048, metavar="N",
                   help="pages to swap (default 2048)")
    p.add_argument("--seed", type=seed, default=0, metavar="S",
                   help="seed of the swap-in order (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_stats)
