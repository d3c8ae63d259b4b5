#!/usr/bin/env python3
"""The best density any size-class pool can reach on the corpus: an upper bound for zsmalloc.

Issue 3 compares zsmalloc's density (compressed bytes / pool bytes) with the kernel's 0.974
(zram, lz4, real anonymous memory). ``pool_bench.py`` measures ours: 0.977 once the pool holds
~160k objects, 0.896 on the 10k-page corpus alone. This script shows that the shortfall at 1x
is the corpus's size, not the allocator: it computes, for the same objects, the density of the
best pool of the zsmalloc kind that could exist, with hindsight.

The model: objects go into size classes of ``delta``-byte steps (zsmalloc: 16) with the 8-byte
handle header (huge objects, 4096 bytes, take a page each); a class's zspages all hold
``floor(pages * 4096 / class_size)`` slots, and the pool pays whole zspages. For each class the
number of pages per zspage (1..``max_pages``) is chosen knowing how many objects the class will
hold, to minimise that class's pages: no real allocator (which must pick before it knows) does
better, and merging classes or changing the order of stores cannot either. So if this bound is
under 0.974 at a given pool population, no zsmalloc-style pool reaches 0.974 there.

Scales: the corpus's objects repeated ``k`` times (the object-size distribution of a bigger pool
of the same programs' memory).

Usage::

    .venv/bin/python benchmarks/density_bound.py [--md benchmarks/results/density_bound.md]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pool_bench import (  # noqa: E402  (the same objects as the density benchmark)
    KERNEL_DENSITY,
    compressors,
    corpus_paths,
    load_pages,
    same_filled,
    zswap_object,
)

from hwzswap.pool.base import PAGE_SIZE  # noqa: E402

HEADER = 8  # ZS_HANDLE_SIZE
MIN_ALLOC = 32  # ZS_MIN_ALLOC_SIZE


def slot_size(size: int, delta: int) -> int:
    """The slot an object of ``size`` bytes takes in a pool with ``delta``-byte classes."""
    if size >= PAGE_SIZE:
        return PAGE_SIZE
    need = size + HEADER
    if need <= MIN_ALLOC:
        return MIN_ALLOC
    return min(MIN_ALLOC + -(-(need - MIN_ALLOC) // delta) * delta, PAGE_SIZE)


def best_pool_bytes(count: int, slot: int, max_pages: int) -> int:
    """Fewest bytes that ``count`` objects in slots of ``slot`` bytes can take (whole zspages)."""
    best = None
    for pages in range(1, max_pages + 1):
        per = pages * PAGE_SIZE // slot
        if per == 0:
            continue
        cost = -(-count // per) * pages * PAGE_SIZE
        best = cost if best is None or cost < best else best
    assert best is not None
    return best


def bound(sizes: list[int], scale: int, delta: int, max_pages: int) -> float:
    counts = collections.Counter(slot_size(s, delta) for s in sizes)
    pool = sum(best_pool_bytes(n * scale, slot, max_pages) for slot, n in counts.items())
    return sum(sizes) * scale / pool


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", help="page file(s); default: bundled corpus")
    ap.add_argument("--scales", default="1,2,4,8,16,64")
    ap.add_argument("--deltas", default="16,32,64", help="class steps in bytes (zsmalloc: 16)")
    ap.add_argument("--max-pages", default="4,8,16", help="pages per zspage allowed, at most")
    ap.add_argument("--md", type=Path, help="write the Markdown report here")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    scales = [int(x) for x in args.scales.split(",")]
    deltas = [int(x) for x in args.deltas.split(",")]
    max_pages = [int(x) for x in args.max_pages.split(",")]

    paths = corpus_paths(args.corpus)
    pages = [p.tobytes() for path in paths for p in load_pages(path) if not same_filled(p)]
    rows = []
    for codec, compress in compressors().items():
        sizes = [len(zswap_object(p, compress(p))) for p in pages]
        for delta in deltas:
            for mp in max_pages:
                figs = {k: round(bound(sizes, k, delta, mp), 4) for k in scales}
                rows.append({"codec": codec, "objects": len(sizes), "delta": delta,
                             "max_pages": mp, "bound": figs})
                print(codec, delta, mp, figs, flush=True)

    machine = f"{platform.machine()}, Python {platform.python_version()}"
    cmd = "benchmarks/density_bound.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        args.json.write_text(json.dumps({"command": cmd, "machine": machine,
                                         "kernel_density": KERNEL_DENSITY, "rows": rows},
                                        indent=1) + "\n")
    if args.md:
        out = [
            "# Upper bound on the density of a size-class pool (zsmalloc kind)",
            "",
            f"Command: `.venv/bin/python {cmd.strip()}`  ",
            f"Machine: {machine} (the figures are arithmetic: any machine gives the same)  ",
            f"Corpus: {', '.join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths)}: "
            f"{len(pages)} pages that are not same-filled, stored as zswap stores them.",
            "",
            "Best density any pool of equal-slot zspages can reach, with the pages per zspage "
            "chosen per class knowing the final count (see the script's docstring). "
            f"The kernel's figure is {KERNEL_DENSITY}. Scale k = the corpus's objects k times "
            "over. zsmalloc itself has 16-byte classes and chain 8 (its default).",
            "",
            "| codec | class step | pages per zspage ≤ | "
            + " | ".join(f"{k}x" for k in scales) + " |",
            "|---|---|---|" + "---|" * len(scales),
        ]
        for r in rows:
            cells = " | ".join(
                f"**{v}**" if v >= KERNEL_DENSITY else f"{v}" for v in r["bound"].values()
            )
            out.append(f"| {r['codec']} | {r['delta']} B | {r['max_pages']} | {cells} |")
        out += [
            "",
            "Bold: at or above the kernel's 0.974. On the corpus alone (1x) no size-class pool "
            "reaches it with any class step or zspage size up to 16 pages: a few hundred "
            "classes each end in a part-filled zspage, and at ~10k objects that is several "
            "percent of the pool. The kernel's figure comes from a zram device holding far "
            "more objects; at that population (16x and up here) the bound, and the measured "
            "zsmalloc (`pool_density.md`), pass it.",
            "",
        ]
        args.md.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
