#!/usr/bin/env python3
"""Pool benchmark: zsmalloc and zbud density on real pages, and the pool's cost per object.

Density
    Every non-same-filled corpus page is compressed (lz4, lzo, zstd at the kernel's default
    levels) and stored the way zswap stores it: the compressed bytes, or the raw page when the
    output is not smaller than a page. Density = stored bytes / pool bytes, measured

    * ``filled``: after storing everything,
    * ``after_free``: after freeing a random ``--free-fraction`` of the objects,
    * ``after_compact``: after ``compact()``,

    for zsmalloc (chain sizes from ``--chains``), for zsmalloc with zram's objects (a page whose
    compressed size reaches the huge class is stored raw and counts as 4096 stored bytes: the
    accounting behind the kernel's 0.974, which was measured with zram) and for zbud.
    ``--scales`` stores the corpus that many times over (shuffled), because a size-class pool
    wastes about one part-filled zspage per class whatever its size: that fixed cost weighs
    heavily on a few thousand pages and fades on a zram-sized pool. ``class_cost_density`` is
    the limit: stored bytes / the pool bytes each object's class costs
    (``pages_per_zspage * 4096 / objs_per_zspage``), i.e. the density of a very large pool.
    Every live object is read back and compared after filling and after compaction; a mismatch
    aborts the run, and so does a page left in use after everything is freed.

Cost
    The pool holds the corpus (lz4); each round then replaces every object (store a new one:
    malloc + write; load an old one: read + free), in batches, with the old objects taken in
    storing order ("fifo", as LRU writeback takes them) or in random order ("random", as faults
    come). lz4 compresses the same pages in the same run, alternating with the pool rounds.
    Reported: CPU ns per object for the pool and per page for lz4, their ratio (the issue's aim:
    pool < 25% of lz4), and a per-operation breakdown; also with the fused calls
    ``malloc_write`` / ``read_free``, and with zswap's calls: ``malloc_write`` on store, a
    zero-copy ``view`` on load (decompression reads the pool memory), ``free`` on invalidate.
    zsmalloc is measured twice in the same run: ``zsmalloc`` is the pool zswap uses
    (``ZsPool``, the compiled core) and ``zsmalloc-py`` its pure-Python reference model
    (``PyZsPool``, the same algorithm, what ``ZsPool`` was before the C core).

Usage::

    .venv/bin/python benchmarks/pool_bench.py [--corpus FILE ...] [--out JSON] [--md MD]
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import lz4.block
import lzo
import numpy as np
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwzswap.bench.provenance import commit_words, provenance, script_command  # noqa: E402
from hwzswap.pool import PageAllocator, ZbudPool, ZsPool  # noqa: E402
from hwzswap.pool.base import PAGE_SIZE  # noqa: E402
from hwzswap.pool.zsmalloc import PyZsPool, zs_layout  # noqa: E402

DEFAULT_CORPUS = "hwzswap/data/corpus/*.pages.zst"
KERNEL_DENSITY = 0.974  # zsmalloc, real anonymous memory, lz4 (zram measurement, issue 3)


# -- input -------------------------------------------------------------------------------------

def load_pages(path: Path) -> np.ndarray:
    """(N, 4096) uint8 pages from a .pages / .pages.zst file (the project's loader if present)."""
    try:
        from hwzswap.bench.corpus import load_pages as loader
    except ImportError:
        loader = None
    if loader is not None:
        return loader(path)
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)) as r:
            raw = r.read()
    if len(raw) % PAGE_SIZE:
        sys.exit(f"{path}: {len(raw)} bytes is not a whole number of pages")
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, PAGE_SIZE)


def corpus_paths(patterns: list[str] | None) -> list[Path]:
    pats = patterns or [str(ROOT / DEFAULT_CORPUS)]
    paths: list[Path] = []
    for pat in pats:
        hits = sorted(glob.glob(pat)) if any(c in pat for c in "*?[") else [pat]
        paths.extend(Path(h) for h in hits if Path(h).is_file())
    if not paths:
        sys.exit(
            f"no corpus page files found for {pats}: build the bundled corpus "
            f"(hwzswap/data/corpus/*.pages.zst) or pass --corpus FILE"
        )
    return paths


def same_filled(page: np.ndarray) -> bool:
    words = page.view(np.uint64)
    return bool((words == words[0]).all())


def compressors() -> dict[str, Callable[[bytes], bytes]]:
    zc = zstandard.ZstdCompressor(level=3)  # kernel zstd default level
    return {
        "lz4": lambda p: lz4.block.compress(p, mode="fast", acceleration=1, store_size=False),
        "lzo": lambda p: lzo.compress(p, 1, False),  # LZO1X-1, no header
        "zstd": zc.compress,
    }


def zswap_object(page: bytes, comp: bytes) -> bytes:
    """What zswap stores: the compressed bytes, or the page itself if they are not smaller."""
    return comp if len(comp) < PAGE_SIZE else page


def zram_object(page: bytes, comp: bytes, huge_class_size: int) -> bytes:
    """What zram stores: the page itself once the compressed size reaches the huge class
    (``zs_huge_class_size``), since such an object takes a whole page anyway."""
    return comp if len(comp) < huge_class_size else page


# -- density -----------------------------------------------------------------------------------

def verify(pool: Any, live: dict[int, bytes]) -> None:
    for h, data in live.items():
        if pool.read(h) != data:
            sys.exit(f"{pool.name}: handle {h:#x} read back wrong data; aborting")


def density_run(make_pool: Callable[[PageAllocator], Any], objects: list[bytes], scale: int,
                free_fraction: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    order = list(range(len(objects))) * scale
    rng.shuffle(order)
    alloc = PageAllocator()
    pool = make_pool(alloc)
    live: dict[int, bytes] = {}
    for i in order:
        data = objects[i]
        h = pool.malloc(len(data))
        pool.write(h, data)
        live[h] = data
    verify(pool, live)
    st = pool.stats()
    out: dict[str, Any] = {
        "objects": st["objects"], "stored_bytes": st["stored_bytes"],
        "filled": {"density": st["density"], "pages": st["pages"]},
    }
    handles = list(live)
    rng.shuffle(handles)
    for h in handles[: int(len(handles) * free_fraction)]:
        pool.free(h)
        del live[h]
    st = pool.stats()
    out["after_free"] = {"density": st["density"], "pages": st["pages"],
                         "objects": st["objects"]}
    t0 = time.perf_counter()
    freed = pool.compact()
    t_compact = time.perf_counter() - t0
    verify(pool, live)
    st = pool.stats()
    out["after_compact"] = {"density": st["density"], "pages": st["pages"],
                            "pages_compacted": freed, "compact_ms": round(t_compact * 1e3, 2)}
    for h in list(live):
        pool.free(h)
    if alloc.pages_in_use != 0 or pool.total_pages() != 0:
        sys.exit(f"{pool.name}: {alloc.pages_in_use} pages still in use after freeing all")
    return out


def class_cost_density(sizes: list[int], chain: int) -> float:
    layout = zs_layout(chain)
    cost = 0.0
    for s in sizes:
        spec = layout.classes[layout.class_of_size[s]]
        cost += spec.pages_per_zspage * PAGE_SIZE / spec.objs_per_zspage
    return sum(sizes) / cost


# -- cost --------------------------------------------------------------------------------------

def cost_run(pages: list[bytes], objects: list[bytes], rounds: int,
             make_pool: Callable[[PageAllocator], Any], fused: bool = False, zswap: bool = False,
             order: str = "fifo", seed: int = 0, batch: int = 64) -> dict[str, Any]:
    """Pool work per object in a store/load cycle vs lz4 compression of the same pages.

    The pool first holds the corpus. A round then replaces every object: in batches of
    ``batch`` objects it stores the new ones (``malloc`` + ``write``, or ``malloc_write`` when
    ``fused`` or ``zswap``), loads the old ones and frees them (``read`` + ``free``, or
    ``read_free`` when ``fused``, or ``view`` + ``free`` when ``zswap``), so the pool stays at its
    size (as under steady swapping) and each phase is timed on its own without
    a timer call per object. The stored data is fresh (hot in cache, as a compressor's output
    is); the objects loaded were stored a round earlier (cold, as in zswap). lz4 then
    compresses all the (cold) pages; rounds alternate.

    ``order``: "fifo" loads objects in the order they were stored (LRU writeback; zspages empty
    out whole, the most zspage churn), "random" in a random order (faults).
    """
    compress = compressors()["lz4"]
    pool = make_pool(PageAllocator())
    malloc, write, read, free = pool.malloc, pool.write, pool.read, pool.free
    malloc_write, read_free = pool.malloc_write, pool.read_free
    n = len(objects)
    old = [malloc_write(data) for data in objects]
    clock = time.process_time  # CPU time: robust to other processes on a shared machine
    spans = [(lo, min(lo + batch, n)) for lo in range(0, n, batch)]
    names = (("malloc_write", "read_free") if fused else
             ("malloc_write", "view", "free") if zswap else ("malloc", "write", "read", "free"))
    view = getattr(pool, "view", None)
    pool_ns, lz4_ns = [], []
    phases: dict[str, list[float]] = {k: [] for k in names}
    rng = random.Random(seed)
    for _ in range(rounds):
        if order == "random":
            rng.shuffle(old)
        acc = [0.0] * len(names)
        new: list[int] = []
        for lo, hi in spans:
            # The data to store comes hot from the compressor in zswap; copy the batch (outside
            # the timed spans) so the pool copies from cache, not from the cold corpus list.
            chunk = [bytes(bytearray(data)) for data in objects[lo:hi]]
            gone = old[lo:hi]
            if fused:
                t0 = clock()
                hs = [malloc_write(data) for data in chunk]
                t1 = clock()
                for h in gone:
                    read_free(h)
                t2 = clock()
                acc[0] += t1 - t0
                acc[1] += t2 - t1
            elif zswap:
                t0 = clock()
                hs = [malloc_write(data) for data in chunk]
                t1 = clock()
                for h in gone:
                    view(h)
                t2 = clock()
                for h in gone:
                    free(h)
                t3 = clock()
                acc[0] += t1 - t0
                acc[1] += t2 - t1
                acc[2] += t3 - t2
            else:
                t0 = clock()
                hs = [malloc(len(data)) for data in chunk]
                t1 = clock()
                for h, data in zip(hs, chunk):
                    write(h, data)
                t2 = clock()
                for h in gone:
                    read(h)
                t3 = clock()
                for h in gone:
                    free(h)
                t4 = clock()
                acc[0] += t1 - t0
                acc[1] += t2 - t1
                acc[2] += t3 - t2
                acc[3] += t4 - t3
            new.extend(hs)
        old = new
        t0 = clock()
        for p in pages:
            compress(p)
        lz4_ns.append((clock() - t0) / n * 1e9)
        for k, v in zip(names, acc):
            phases[k].append(v / n * 1e9)
        pool_ns.append(sum(acc) / n * 1e9)
    if sorted(pool.read(h) for h in old) != sorted(objects):
        sys.exit("cost run: the pool does not hold exactly the stored objects")
    pool.destroy()
    best_pool, best_lz4 = min(pool_ns), min(lz4_ns)
    ratios = [p / z for p, z in zip(pool_ns, lz4_ns)]
    return {
        "calls": "+".join(names),
        "order": order,
        "objects": n,
        "rounds": rounds,
        "pool_ns_per_object": round(best_pool, 1),
        "lz4_compress_ns_per_page": round(best_lz4, 1),
        "ratio": round(best_pool / best_lz4, 4),
        "ratio_median_of_rounds": round(statistics.median(ratios), 4),
        "breakdown_ns": {k: round(min(v), 1) for k, v in phases.items()},
        "time_basis": "CPU time (time.process_time) in one process; per round, the pool "
                      "work over all objects, then lz4 over all pages; best of rounds, and the "
                      "median of per-round ratios",
    }


# -- report ------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "os": platform.platform(), "lz4": lz4.library_version_string(),
            "zstd": ".".join(map(str, zstandard.ZSTD_VERSION))}


def summary(doc: dict[str, Any]) -> list[str]:
    """The headline lines: lz4 density against the kernel's figure, and the cost ratio."""
    out = []
    lz4 = doc["density"].get("lz4")
    if lz4 and "zsmalloc-8" in lz4["pools"]:
        runs = lz4["pools"]["zsmalloc-8"]
        top = max(runs, key=int)
        r1, rt = runs[min(runs, key=int)], runs[top]
        verdict = "meets" if rt["filled"]["density"] >= KERNEL_DENSITY else "is below"
        out.append(
            f"- **lz4, zsmalloc (chain 8)**: density {rt['filled']['density']:.4f} filled and "
            f"{rt['after_compact']['density']:.4f} after free + compaction at {top}x the corpus "
            f"({rt['objects']} objects), which {verdict} the kernel's {KERNEL_DENSITY}; "
            f"{r1['filled']['density']:.4f} / {r1['after_compact']['density']:.4f} on the corpus "
            f"alone; limit for a large pool {lz4['class_cost_density']['8']:.4f}.")
        zb = lz4["pools"].get("zbud", {}).get(top)
        if zb:
            out.append(f"- **lz4, zbud**: {zb['filled']['density']:.4f} filled, "
                       f"{zb['after_compact']['density']:.4f} after the same frees (no "
                       "compaction).")
    for key, r in doc.get("cost", {}).items():
        if key.startswith("zsmalloc"):
            out.append(f"- **cost, {key}**: {r['pool_ns_per_object']:.0f} ns per object "
                       f"({r['calls']}) = {r['ratio']:.3f} x lz4 compression of a page "
                       f"({r['lz4_compress_ns_per_page']:.0f} ns); aim < 0.25.")
    return out


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    w = doc["workload"]
    lines = [
        "# Pool density and cost (zsmalloc vs zbud)",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['os']}  ",
        f"Commit: {commit_words(doc)} · measured {doc['created']}  ",
        f"Corpus: {', '.join(w['files'])}: {w['pages']} pages, {w['same_filled']} same-filled "
        f"(not stored: zswap/zram keep no pool object for them), {w['stored_pages']} stored. "
        f"Random free of {doc['config']['free_fraction']:.0%} before compaction, "
        f"seed {doc['config']['seed']}.",
        "",
        "Density = stored (compressed) bytes / pool bytes. Kernel figure for zsmalloc + lz4: "
        f"{KERNEL_DENSITY}.",
        "",
        *summary(doc),
        "",
        "| codec | mean object | pool | scale | objects | filled | after free | after compact | "
        "pages compacted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for codec, c in doc["density"].items():
        for pool, runs in c["pools"].items():
            for scale, r in runs.items():
                lines.append(
                    f"| {codec} | {c['mean_compressed_bytes']:.0f} B | {pool} | {scale}x | "
                    f"{r['objects']} | {r['filled']['density']:.4f} | "
                    f"{r['after_free']['density']:.4f} | {r['after_compact']['density']:.4f} | "
                    f"{r['after_compact']['pages_compacted']} |")
    lines += ["", "Class-cost density (the limit for a large pool: each object charged "
              "pages_per_zspage*4096/objs_per_zspage of its class):", "",
              "| codec | " + " | ".join(f"zsmalloc chain {k}" for k in doc["config"]["chains"])
              + " | chain 8, zram objects |", "|---|" + "---|" * len(doc["config"]["chains"])
              + "---|"]
    for codec, c in doc["density"].items():
        lines.append(f"| {codec} | " + " | ".join(
            f"{c['class_cost_density'][str(k)]:.4f}" for k in doc["config"]["chains"])
            + f" | {c['class_cost_density_zram_objects']:.4f} |")
    cost = doc["cost"]
    lines += [
        "", "## Cost per object (lz4 corpus, store/load cycle)", "",
        "| pool, load order | calls | per object | lz4 compress | pool / lz4 | median ratio | "
        "breakdown |",
        "|---|---|---|---|---|---|---|",
    ]
    for pool, r in cost.items():
        b = ", ".join(f"{k} {v:.0f}" for k, v in r["breakdown_ns"].items())
        lines.append(
            f"| {pool} | {r['calls']} | {r['pool_ns_per_object']:.0f} ns | "
            f"{r['lz4_compress_ns_per_page']:.0f} ns | {r['ratio']:.3f} | "
            f"{r['ratio_median_of_rounds']:.3f} | {b} ns |")
    lines += ["", "zsmalloc: the compiled pool (`ZsPool`, what zswap uses); zsmalloc-py: its "
              "pure-Python reference model (`PyZsPool`), measured in the same run.",
              "", "Times are CPU time (time.process_time), best round of "
              f"{doc['config']['rounds']}, on a machine shared with other jobs: absolute "
              "figures move with the load, the pool / lz4 ratio much less.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", metavar="PATH",
                    help=f"page file or glob (repeatable; default {DEFAULT_CORPUS})")
    ap.add_argument("--codecs", default="lz4,lzo,zstd")
    ap.add_argument("--chains", default="4,8,16", help="zsmalloc chain sizes to compare")
    ap.add_argument("--scales", default="1,16,64",
                    help="store the corpus this many times over")
    ap.add_argument("--free-fraction", type=float, default=0.4)
    ap.add_argument("--rounds", type=int, default=7, help="cost rounds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/pool_density.json"))
    ap.add_argument("--md", default=None, help="markdown table (default: --out with .md)")
    args = ap.parse_args(argv)

    paths = corpus_paths(args.corpus)
    arrays = [load_pages(p) for p in paths]
    all_pages = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    pages = [bytes(p) for p in all_pages if not same_filled(p)]
    chains = [int(c) for c in args.chains.split(",")]
    scales = [int(s) for s in args.scales.split(",")]
    codecs = compressors()
    prov = provenance(script_command(__file__, argv))  # command, commit, time
    doc: dict[str, Any] = {
        "generator": "benchmarks/pool_bench.py",
        "command": prov["command"],
        "created": prov["created"],
        "git_commit": prov["git_commit"],
        "git_dirty": prov["git_dirty"],
        "machine": machine(),
        "workload": {"files": [os.path.relpath(p, ROOT) for p in paths],
                     "pages": int(all_pages.shape[0]),
                     "same_filled": int(all_pages.shape[0]) - len(pages),
                     "stored_pages": len(pages)},
        "config": {"chains": chains, "scales": scales, "free_fraction": args.free_fraction,
                   "seed": args.seed, "rounds": args.rounds,
                   "kernel_density_lz4": KERNEL_DENSITY},
        "density": {},
    }
    lz4_objects: list[bytes] = []
    for name in args.codecs.split(","):
        if name not in codecs:
            sys.exit(f"unknown codec {name!r}; choose from {sorted(codecs)}")
        compressed = [codecs[name](p) for p in pages]
        objects = [zswap_object(p, c) for p, c in zip(pages, compressed)]
        # zram's accounting, as where the kernel's 0.974 comes from (default chain size)
        huge = ZsPool().huge_class_size
        zram_objects = [zram_object(p, c, huge) for p, c in zip(pages, compressed)]
        if name == "lz4":
            lz4_objects = objects
        sizes = [len(o) for o in objects]
        entry: dict[str, Any] = {
            "mean_compressed_bytes": sum(sizes) / len(sizes),
            "stored_raw": sum(s == PAGE_SIZE for s in sizes),
            "class_cost_density": {str(k): class_cost_density(sizes, k) for k in chains},
            "class_cost_density_zram_objects": class_cost_density(
                [len(o) for o in zram_objects], 8),
            "pools": {},
        }
        runs: dict[str, tuple[Callable[[PageAllocator], Any], list[bytes]]] = {
            f"zsmalloc-{k}": ((lambda a, k=k: ZsPool(a, max_pages_per_zspage=k)), objects)
            for k in chains}
        runs["zsmalloc-8, zram objects"] = (lambda a: ZsPool(a), zram_objects)
        runs["zbud"] = (lambda a: ZbudPool(a), objects)
        for pool_name, (make, objs) in runs.items():
            entry["pools"][pool_name] = {}
            for scale in scales:
                r = density_run(make, objs, scale, args.free_fraction, args.seed)
                entry["pools"][pool_name][str(scale)] = r
                print(f"{name:5s} {pool_name:25s} x{scale:<3d} filled {r['filled']['density']:.4f}"
                      f"  after free {r['after_free']['density']:.4f}"
                      f"  after compact {r['after_compact']['density']:.4f}", flush=True)
        doc["density"][name] = entry
    if not lz4_objects:
        lz4_objects = [zswap_object(p, codecs["lz4"](p)) for p in pages]
    doc["cost"] = {}
    cost_pools: tuple[tuple[str, Callable[[PageAllocator], Any]], ...] = (
        ("zsmalloc", lambda a: ZsPool(a)), ("zsmalloc-py", lambda a: PyZsPool(a)),
        ("zbud", lambda a: ZbudPool(a)))
    for pool_name, make in cost_pools:
        for order, fused, zswap in (("fifo", False, False), ("random", False, False),
                                    ("fifo", True, False), ("fifo", False, True),
                                    ("random", False, True)):
            r = cost_run(pages, lz4_objects, args.rounds, make, fused=fused, zswap=zswap,
                         order=order, seed=args.seed)
            key = f"{pool_name}, {order}" + (", fused calls" if fused else "") + (
                ", zswap's calls" if zswap else "")
            doc["cost"][key] = r
            print(f"cost {key}: {r['pool_ns_per_object']:.0f} ns/object vs lz4 "
                  f"{r['lz4_compress_ns_per_page']:.0f} ns/page: ratio {r['ratio']:.3f} "
                  f"(median {r['ratio_median_of_rounds']:.3f}) {r['breakdown_ns']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    md = Path(args.md) if args.md else out.with_suffix(".md")
    md.write_text(markdown(doc))
    print(f"wrote {out} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
