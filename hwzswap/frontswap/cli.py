"""``hwzswap stats``: open a swap system from a config, run a short swap workload, show counters.

The run swaps out ``--pages`` pages (from the bundled corpus of real memory when it is installed,
else a synthetic real-memory-like mix), swaps every one back in and checks it byte for byte,
frees every other slot, and prints zswap's and the swap device's counters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from hwzswap.errors import HwzswapError

# Counters in the order the table shows them, grouped as the kernel's debugfs/vmstat do.
_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("pool", ("stored_pages", "same_filled_pages", "pool_pages", "pool_total_size",
              "pool_peak_pages", "pool_limit_pages", "compressed_bytes",
              "compressed_bytes_at_peak")),
    ("stores", ("stores", "zswpout", "duplicate_entry", "pool_limit_hit", "reject_pool_limit",
                "reject_compress_poor", "reject_compress_fail", "reject_alloc_fail",
                "reject_reclaim_fail")),
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


def run_stats(config: Any, pages: int, seed: int = 0) -> dict[str, Any]:
    """Run the short workload; return a JSON-ready report (``counters`` holds the stats)."""
    from hwzswap.frontswap.system import open_zswap

    data, source = _pages(pages)
    rows = [bytes(p) for p in data]
    with open_zswap(config) as system:
        nr = system.devices[0].nr_pages
        if len(rows) > nr:
            rows = rows[:nr]
        n = len(rows)
        order = np.random.default_rng(seed).permutation(n).tolist()
        t0 = time.perf_counter()
        for off, page in enumerate(rows):
            system.swap_out(0, off, page)
        t1 = time.perf_counter()
        mismatches = 0
        for off in order:
            if system.swap_in(0, off) != rows[off]:
                mismatches += 1
        t2 = time.perf_counter()
        for off in range(0, n, 2):
            system.swap_free(0, off)
        counters = system.stats()
        cfg = system.config
        report = {
            "config": cfg.source,
            "backend": system.backend.name,
            "pool": cfg.pool.type,
            "swap_model": system.model.name,
            "page_source": source,
            "pages": n,
            "verified_pages": n - mismatches,
            "mismatches": mismatches,
            "swap_out_s": t1 - t0,
            "swap_in_s": t2 - t1,
            "counters": counters,
        }
    return report


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    c = report["counters"]
    title = (
        f"{report['config']}: {report['backend']} / {report['pool']} / swap model "
        f"{report['swap_model']} — {report['pages']} pages ({report['page_source']}), "
        f"{report['verified_pages']} verified"
    )
    # The header goes on its own line, unwrapped: a table title wraps at the
    # table's width, which splits a long config path across lines.
    console.print(title, soft_wrap=True, highlight=False)
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
            table.add_row(group if i == 0 else "", key, text)
    rest = [k for k in c if k not in shown]
    for i, key in enumerate(rest):
        table.add_row("other" if i == 0 else "", key, str(c[key]))
    console.print(table)
    n = max(report["pages"], 1)
    console.print(
        f"swap_out {report['swap_out_s'] * 1e6 / n:.1f} µs/page, "
        f"swap_in {report['swap_in_s'] * 1e6 / n:.1f} µs/page (host time)"
    )


def _cmd_stats(args: argparse.Namespace) -> int:
    report = run_stats(args.config, args.pages, seed=args.seed)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(report)
    if report["mismatches"]:
        print(f"hwzswap stats: {report['mismatches']} pages came back wrong", file=sys.stderr)
        return 1
    return 0


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def register(subparsers: Any) -> None:
    """Add ``hwzswap stats``."""
    p = subparsers.add_parser(
        "stats",
        help="run a short swap workload through zswap from a config and show the counters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="configs/default.yaml",
                   help="YAML config (default: configs/default.yaml)")
    p.add_argument("--pages", type=_positive, default=2048, help="pages to swap (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="seed of the swap-in order")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_stats)
