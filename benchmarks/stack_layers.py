#!/usr/bin/env python3
"""Where a page's time goes: the store and load paths peeled layer by layer.

For one backend (default lz4) on the bundled corpus it times, as thread CPU time (so other
processes on a shared machine do not inflate it) and keeping the best of ``--repeat`` runs:

store: the C codec on ``bytes`` → the backend's ``compress`` (bytes, then a numpy row, which is
what ``compress_batch`` hands it) → ``compress_batch`` on 32-page batches → ``ZswapCache.
store_batch`` → ``SwapSystem.swap_out_batch`` (what the bench's store figure times);

load: the C codec → the backend's ``decompress`` → ``pool.read`` alone → ``ZswapCache.load``
→ ``SwapSystem.swap_in`` (what the bench's load figure times).

Each layer's extra cost over the one below it is what that layer adds. Usage::

    .venv/bin/python benchmarks/stack_layers.py [--backend lz4] [--pages 4096] [--repeat 7]

Writes ``benchmarks/results/stack_layers_<backend>.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.backends.registry import get_backend
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import backend_config, base_config
from hwzswap.bench.workload import SWAP_CLUSTER_MAX, build_workload
from hwzswap.frontswap.system import open_zswap

ROOT = Path(__file__).resolve().parent.parent


def best_us(fn: Callable[[Any], Any], n: int, repeat: int,
            setup: Callable[[], Any] | None = None,
            teardown: Callable[[Any], None] | None = None) -> float:
    """Best per-item thread CPU time (µs) of ``fn(setup())`` over ``repeat`` runs."""
    clock = time.thread_time_ns
    best = float("inf")
    for _ in range(repeat):
        state = setup() if setup else None
        gc.collect()
        t0 = clock()
        fn(state)
        dt = clock() - t0
        if teardown:
            teardown(state)
        best = min(best, dt)
    return best / n / 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="lz4")
    ap.add_argument("--pages", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    pages = load_bundled(max_pages=args.pages)
    n = pages.shape[0]
    be = get_backend(args.backend)
    wl = build_workload("roundtrip", pages, seed=0)
    cfg = backend_config(base_config(), be, wl)
    as_bytes = [p.tobytes() for p in pages]
    batches = []
    for lo in range(0, n, SWAP_CLUSTER_MAX):
        b = np.array(pages[lo : lo + SWAP_CLUSTER_MAX])
        b.flags.writeable = False
        batches.append((list(range(lo, lo + b.shape[0])), b))
    rows = [r for _, b in batches for r in b]
    r = args.repeat

    def fresh() -> Any:
        return open_zswap(cfg, backend=be)

    def close(s: Any) -> None:
        s.close()

    compress, decompress = be.compress, be.decompress
    store: list[tuple[str, float]] = [
        ("backend.compress(bytes)", best_us(lambda _: [compress(p) for p in as_bytes], n, r)),
        ("backend.compress(numpy row)", best_us(lambda _: [compress(p) for p in rows], n, r)),
        ("backend.compress_batch(32)",
         best_us(lambda _: [be.compress_batch(b) for _, b in batches], n, r)),
        ("ZswapCache.store_batch(32)",
         best_us(lambda s: [s.zswap.store_batch(0, o, b) for o, b in batches], n, r, fresh,
                 close)),
        ("SwapSystem.swap_out_batch(32)",
         best_us(lambda s: [s.swap_out_batch(0, o, b) for o, b in batches], n, r, fresh, close)),
    ]
    if args.backend in ("lz4", "lz4hc"):
        import lz4.block

        c = lz4.block.compress
        mode = "fast" if args.backend == "lz4" else "high_compression"
        store.insert(0, ("lz4.block.compress (C codec)", best_us(
            lambda _: [c(p, mode=mode, store_size=False) for p in as_bytes], n, r)))

    comp = [x for x in (compress(p) for p in as_bytes) if x is not None]
    system = fresh()
    for o, b in batches:
        system.swap_out_batch(0, o, b)
    order = list(range(n))
    random.Random(1).shuffle(order)
    tree = system.zswap._trees[0]  # the pool handles of what is stored, to time pool.read alone
    handles = [e[0] for e in tree.values() if e[0] is not None]
    load: list[tuple[str, float]] = [
        ("backend.decompress", best_us(lambda _: [decompress(x) for x in comp], len(comp), r)),
        ("pool.read (copy out)", best_us(lambda _: [system.pool.read(h) for h in handles],
                                         len(handles), r)),
        ("ZswapCache.load", best_us(lambda _: [system.zswap.load(0, o) for o in order], n, r)),
        ("SwapSystem.swap_in", best_us(lambda _: [system.swap_in(0, o) for o in order], n, r)),
    ]
    system.close()
    if args.backend in ("lz4", "lz4hc"):
        import lz4.block

        d = lz4.block.decompress
        load.insert(0, ("lz4.block.decompress (C codec)", best_us(
            lambda _: [d(x, uncompressed_size=4096) for x in comp], len(comp), r)))

    lines = [
        f"**Store/load path layers: {args.backend}, {n} bundled-corpus pages**",
        "",
        f"Thread CPU µs per page, best of {r} (`benchmarks/stack_layers.py`). "
        "Same-filled pages are in the mix (the stack stores them without the codec).",
        "",
        "| store path | µs/page | vs codec |", "|---|---:|---:|",
    ]
    base = store[0][1]
    lines += [f"| {k} | {v:.2f} | {v / base:.2f}x |" for k, v in store]
    lines += ["", "| load path | µs/page | vs codec |", "|---|---:|---:|"]
    base = load[0][1]
    lines += [f"| {k} | {v:.2f} | {v / base:.2f}x |" for k, v in load]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or ROOT / "benchmarks" / "results" / f"stack_layers_{args.backend}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
