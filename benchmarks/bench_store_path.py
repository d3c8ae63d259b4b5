"""Cost of the zswap store/load path against the raw codec, page by page (lz4 by default).

    .venv/bin/python benchmarks/bench_store_path.py [--backend lz4] [--pages 4096] [--profile]

Measures, on the same pages (the bundled corpus, else the synthetic mix), best of ``--repeat``:

* ``raw compress`` / ``raw decompress``: ``backend.compress`` / ``backend.decompress`` alone;
* ``zswap.store`` / ``zswap.load``: the cache (same-filled check, policy, pool malloc + write,
  index, counters, lock) with no pool limit, so no writeback;
* ``swap_out`` / ``swap_in``: the swap system around it (slot map, offset checks);
* ``store_batch``: one ``compress_batch`` call per 64 pages.

The ratios are throughputs (raw time / stack time): the targets are store >= 0.85 and
load >= 0.70 of the raw codec. ``--profile`` adds a cProfile of the store and load loops.
Findings are in ``benchmarks/store_path_profile.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import time
from collections.abc import Callable

import numpy as np

import hwzswap
from hwzswap.frontswap import open_zswap


def _pages(n: int) -> tuple[list[bytes], str]:
    try:
        from hwzswap.bench.corpus import load_bundled

        arr = load_bundled(max_pages=n)
        if len(arr):
            return [bytes(p) for p in arr[:n]], "bundled corpus"
    except Exception:  # noqa: BLE001 - fall back to synthetic pages
        pass
    from hwzswap.testing import real_memory_mix

    return [bytes(p) for p in real_memory_mix(n)], "synthetic mix"


def best(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    """Best wall time of ``fn()`` over ``repeat`` runs (``setup()`` untimed before each), GC off
    while timing."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="lz4")
    ap.add_argument("--pages", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    pages, source = _pages(args.pages)
    n = len(pages)
    backend = hwzswap.get_backend(args.backend)
    cfg = {
        "zswap": {"compressor": args.backend, "max_compression_ratio": 100,
                  "max_pool_percent": 100},
        "memory": {"total_ram_mb": 4 * n * 4096 >> 20 or 1},
        "swap": {"nr_pages": n},
    }
    arr = np.frombuffer(b"".join(pages), np.uint8).reshape(n, 4096)
    comp = [backend.compress(p) for p in pages]
    kept = [c for c in comp if c is not None]
    system = open_zswap(cfg, backend=backend)
    z = system.zswap

    def raw_compress() -> None:
        c = backend.compress
        for p in pages:
            c(p)

    from hwzswap.pool import PageAllocator, create_pool

    lone: dict[str, object] = {}
    sizes = [len(c) for c in kept]

    def new_pool() -> None:
        old = lone.get("pool")
        if old is not None:
            old.destroy()  # type: ignore[attr-defined]
        lone["pool"] = create_pool(system.config.pool.type, PageAllocator(),
                                   max_pages_per_zspage=system.config.pool.max_pages_per_zspage)

    def pool_malloc_write() -> None:
        pool = lone["pool"]
        m, w = pool.malloc, pool.write  # type: ignore[attr-defined]
        handles = []
        for c, size in zip(kept, sizes):
            h = m(size)
            w(h, c)
            handles.append(h)
        lone["handles"] = handles

    def pool_read() -> None:
        r = lone["pool"].read  # type: ignore[attr-defined]
        for h in lone["handles"]:  # type: ignore[attr-defined]
            r(h)

    def raw_compress_batch() -> None:
        cb = backend.compress_batch
        for i in range(0, n, 64):
            cb(arr[i : i + 64])

    def raw_decompress() -> None:
        d = backend.decompress
        for c in kept:
            d(c)

    def store() -> None:
        s = z.store
        for off, p in enumerate(pages):
            s(0, off, p)

    def load() -> None:
        ld = z.load
        for off in range(n):
            ld(0, off)

    def swap_out() -> None:
        so = system.swap_out
        for off, p in enumerate(pages):
            so(0, off, p)

    def swap_in() -> None:
        si = system.swap_in
        for off in range(n):
            si(0, off)

    def store_batch() -> None:
        sb = z.store_batch
        for i in range(0, n, 64):
            sb(0, range(i, min(i + 64, n)), arr[i : i + 64])

    def reset() -> None:
        z.invalidate_area(0)
        z.init(0, n)

    def reset_system() -> None:
        for off in range(n):
            system.swap_free(0, off)

    # Interleaved: every round times each measurement once, so a noisy neighbour slows them
    # alike; the best round of each is kept.
    plan: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        ("raw compress", raw_compress, None),
        ("zswap.store", store, reset),
        ("zswap.load", load, None),
        ("raw decompress", raw_decompress, None),
        ("swap_out", swap_out, reset_system),
        ("swap_in", swap_in, None),
        ("raw compress_batch", raw_compress_batch, None),
        ("pool malloc+write", pool_malloc_write, new_pool),
        ("pool read", pool_read, None),
        ("store_batch", store_batch, reset),
    ]
    t: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, fn, setup in plan:
            v = best(fn, 1, setup)
            t[name] = min(t.get(name, v), v)
    for name in ("raw decompress", "pool malloc+write", "pool read"):
        t[name] *= n / max(len(kept), 1)  # per stored page, as the stack's figures
    st = z.stats()
    print(f"{args.backend}: {n} pages ({source}); same-filled {st['same_filled_pages']}, "
          f"rejected {n - st['stored_pages']}")
    for k, v in t.items():
        print(f"  {k:19s} {v / n * 1e6:7.2f} µs/page")
    print(f"  store / raw compress throughput: {t['raw compress'] / t['zswap.store']:.2f} "
          f"(swap_out {t['raw compress'] / t['swap_out']:.2f}, "
          f"store_batch / raw compress_batch {t['raw compress_batch'] / t['store_batch']:.2f})")
    print(f"  load / raw decompress throughput: {t['raw decompress'] / t['zswap.load']:.2f} "
          f"(swap_in {t['raw decompress'] / t['swap_in']:.2f})")
    own_store = t["zswap.store"] - t["raw compress"] - t["pool malloc+write"]
    own_load = t["zswap.load"] - t["raw decompress"] - t["pool read"]
    print(f"  zswap's own cost beyond codec + pool: store {own_store / n * 1e6:.2f} µs/page, "
          f"load {own_load / n * 1e6:.2f} µs/page")
    if args.profile:
        for name, fn in (("store", store), ("load", load)):
            prof = cProfile.Profile()
            for _ in range(3):
                if fn is store:
                    reset()
                prof.enable()
                fn()
                prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
            print(f"--- cProfile: {name} ---")
            print(out.getvalue())
    system.close()


if __name__ == "__main__":
    main()
