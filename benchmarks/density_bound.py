#!/usr/bin/env python3
"""The best density any size-class pool can reach on the corpus: an upper bound for zsmalloc.

Issue 3 compares zsmalloc's density (compressed bytes / pool bytes) with the kernel's 0.974
(zram, lz4, real anonymous memory). ``pool_bench.py`` measures ours: 0.977 once the pool holds
~160k objects, 0.896 on the 10k-page corpus alone. This script shows that the shortfall at 1x
is the corpus's size, not the allocator: it computes, for the same objects, the density of the
best pool of the zsmalloc kind that could exist, with hindsight.

The model: objects go into 16-byte size classes (zsmalloc's step) with the 8-byte handle
header (huge objects, 4096 bytes, take a page each); neighbouring classes may be merged into
one (any contiguous run of classes, using the largest slot: zsmalloc merges classes too, and a
32- or 64-byte step is one such merging); a class's zspages all hold
``floor(pages * 4096 / slot)`` slots, and the pool pays whole zspages. The merging and, for each
merged class, the pages per zspage (1..``max_pages``) are chosen with hindsight, knowing how
many objects each class will hold, to minimise the pool's pages (dynamic programming over the
classes). A real allocator fixes both before it sees a store, so it can only do worse: if this
bound is under 0.974 at a given pool population, no pool of the zsmalloc kind reaches 0.974
there.

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

from hwzswap.bench.provenance import commit_words, provenance, script_command  # noqa: E402
from hwzswap.pool.base import PAGE_SIZE  # noqa: E402

HEADER = 8  # ZS_HANDLE_SIZE
MIN_ALLOC = 32  # ZS_MIN_ALLOC_SIZE
DELTA = 16  # ZS_SIZE_CLASS_DELTA


def class_slot(size: int) -> int:
    """The zsmalloc slot (16-byte class) an object of ``size`` bytes takes."""
    if size >= PAGE_SIZE:
        return PAGE_SIZE
    need = size + HEADER
    if need <= MIN_ALLOC:
        return MIN_ALLOC
    return min(MIN_ALLOC + -(-(need - MIN_ALLOC) // DELTA) * DELTA, PAGE_SIZE)


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


def bound(sizes: list[int], scale: int, max_pages: int, merge: bool = True) -> float:
    """Stored bytes / the fewest pool bytes (see the module docstring); ``merge=False`` keeps
    every 16-byte class apart (only the pages per zspage chosen with hindsight)."""
    counts = collections.Counter(class_slot(s) for s in sizes)
    slots = sorted(counts)
    if not merge:
        pool = sum(best_pool_bytes(counts[s] * scale, s, max_pages) for s in slots)
        return sum(sizes) * scale / pool
    # best[j]: fewest bytes for the classes slots[:j]; the last merged class is slots[i:j],
    # using slot slots[j - 1] (empty classes in between cost nothing).
    best = [0] + [0] * len(slots)
    for j in range(1, len(slots) + 1):
        slot = slots[j - 1]
        n = 0
        cand = None
        for i in range(j - 1, -1, -1):
            n += counts[slots[i]] * scale
            cost = best[i] + best_pool_bytes(n, slot, max_pages)
            cand = cost if cand is None or cost < cand else cand
        best[j] = cand
    return sum(sizes) * scale / best[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", help="page file(s); default: bundled corpus")
    ap.add_argument("--scales", default="1,2,4,8,16,64")
    ap.add_argument("--max-pages", default="4,8,16", help="pages per zspage allowed, at most")
    ap.add_argument("--md", type=Path, help="write the Markdown report here")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    scales = [int(x) for x in args.scales.split(",")]
    max_pages = [int(x) for x in args.max_pages.split(",")]

    paths = corpus_paths(args.corpus)
    pages = [p.tobytes() for path in paths for p in load_pages(path) if not same_filled(p)]
    rows = []
    for codec, compress in compressors().items():
        sizes = [len(zswap_object(p, compress(p))) for p in pages]
        for merge in (False, True):
            for mp in max_pages:
                figs = {k: round(bound(sizes, k, mp, merge), 4) for k in scales}
                rows.append({"codec": codec, "objects": len(sizes), "merged_classes": merge,
                             "max_pages": mp, "bound": figs})
                print(codec, "merged" if merge else "apart", mp, figs, flush=True)

    machine = f"{platform.machine()}, Python {platform.python_version()}"
    prov = provenance(script_command(__file__, argv))  # command, commit, time
    cmd = prov["command"]
    if args.json:
        args.json.write_text(json.dumps({"command": cmd, "machine": machine,
                                         "created": prov["created"],
                                         "git_commit": prov["git_commit"],
                                         "git_dirty": prov["git_dirty"],
                                         "kernel_density": KERNEL_DENSITY, "rows": rows},
                                        indent=1) + "\n")
    if args.md:
        out = [
            "# Upper bound on the density of a size-class pool (zsmalloc kind)",
            "",
            f"Command: `{cmd}`  ",
            f"Machine: {machine} (the figures are arithmetic: any machine gives the same)  ",
            f"Commit: {commit_words(prov)} · computed {prov['created']}  ",
            f"Corpus: {', '.join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths)}: "
            f"{len(pages)} pages that are not same-filled, stored as zswap stores them.",
            "",
            "Best density any pool of equal-slot zspages can reach, with the pages per zspage "
            "chosen per class knowing the final count (see the script's docstring). "
            f"The kernel's figure is {KERNEL_DENSITY}. Scale k = the corpus's objects k times "
            "over. zsmalloc itself has 16-byte classes and chain 8 (its default).",
            "",
            "| codec | classes | pages per zspage ≤ | "
            + " | ".join(f"{k}x" for k in scales) + " |",
            "|---|---|---|" + "---|" * len(scales),
        ]
        for r in rows:
            cells = " | ".join(
                f"**{v}**" if v >= KERNEL_DENSITY else f"{v}" for v in r["bound"].values()
            )
            how = "merged with hindsight" if r["merged_classes"] else "16 B, apart"
            out.append(f"| {r['codec']} | {how} | {r['max_pages']} | {cells} |")
        out += [
            "",
            "Bold: at or above the kernel's 0.974. On the corpus alone (1x) no pool of the "
            "zsmalloc kind reaches it, even with the merging and zspage sizes picked with "
            "hindsight: 0.966-0.973 at best for lz4 (chain 8-16), less for the other codecs, "
            "because every class ends in a part-filled zspage and at ~10k objects that is a "
            "few percent of the pool. The kernel's figure comes from a zram device holding far "
            "more objects; at 16x the corpus and up the bound, and the measured zsmalloc "
            "(`pool_density.md`: 0.9735 at 16x, 0.9766 at 64x), pass it.",
            "",
            "The measured zsmalloc (chain 8) reaches 0.896 at 1x against this bound's 0.966: "
            "it merges only classes with the same pages and objects per zspage (the kernel's "
            "rule, free in a large pool) and sizes zspages for the large-pool limit. A pool "
            "that merged classes by their population (e.g. a store whose class has no free slot "
            "taking one in a part-filled zspage of a slightly larger class) could close part of "
            "that gap on small pools; the kernel does not do this.",
            "",
        ]
        args.md.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
