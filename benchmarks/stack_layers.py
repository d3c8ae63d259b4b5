#!/usr/bin/env python3
"""Where a page's time goes: the store and load paths peeled layer by layer.

For one backend (default lz4) on the bundled corpus it times, as thread CPU time (so other
processes on a shared machine do not inflate it), every layer once per round for ``--repeat``
rounds, keeping each layer's best round:

store: the C codec on ``bytes`` → the backend's ``compress`` (bytes, then a numpy row, which is
what ``compress_batch`` hands it) → ``compress_batch`` on 32-page batches → ``ZswapCache.
store_batch`` → ``SwapSystem.swap_out_batch`` (what the bench's store figure times);

load: the C codec → the backend's ``decompress`` → ``pool.read`` alone → ``ZswapCache.load``
→ ``SwapSystem.swap_in`` (one page a call) → ``ZswapCache.load_batch`` and
``SwapSystem.swap_in_batch`` on readahead clusters of 8 (what the bench's load figure times).

Each layer's extra cost over the one below it is what that layer adds. Usage::

    .venv/bin/python benchmarks/stack_layers.py [--backend lz4] [--pages 4096] [--repeat 9]

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
from hwzswap.bench.provenance import header_lines, provenance, script_command
from hwzswap.bench.runner import backend_config, base_config
from hwzswap.bench.workload import DEFAULT_LOAD_BATCH, SWAP_CLUSTER_MAX, build_workload
from hwzswap.frontswap.system import open_zswap

ROOT = Path(__file__).resolve().parent.parent


def one_us(fn: Callable[[Any], Any], n: int, setup: Callable[[], Any] | None = None,
           teardown: Callable[[Any], None] | None = None) -> float:
    """Per-item thread CPU time (µs) of one ``fn(setup())`` run."""
    clock = time.thread_time_ns
    state = setup() if setup else None
    gc.collect()
    t0 = clock()
    fn(state)
    dt = clock() - t0
    if teardown:
        teardown(state)
    return dt / n / 1000.0


def best_of_rounds(layers: list[tuple[str, Callable[[], float]]], rounds: int
                   ) -> list[tuple[str, float]]:
    """Run every layer once per round, interleaved, and keep each layer's best round: drift
    in the machine's speed then hits all layers alike instead of the ones timed last."""
    best = {name: float("inf") for name, _ in layers}
    for _ in range(rounds):
        for name, measure in layers:
            best[name] = min(best[name], measure())
    return [(name, best[name]) for name, _ in layers]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="lz4")
    ap.add_argument("--pages", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=9, help="interleaved rounds (best kept)")
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
    store_layers: list[tuple[str, Callable[[], float]]] = []
    if args.backend in ("lz4", "lz4hc"):
        import lz4.block

        c = lz4.block.compress
        mode = "fast" if args.backend == "lz4" else "high_compression"
        store_layers.append(("lz4.block.compress (C codec)", lambda: one_us(
            lambda _: [c(p, mode=mode, store_size=False) for p in as_bytes], n)))
    store_layers += [
        ("backend.compress(bytes)", lambda: one_us(lambda _: [compress(p) for p in as_bytes], n)),
        ("backend.compress(numpy row)", lambda: one_us(lambda _: [compress(p) for p in rows], n)),
        ("backend.compress_batch(32)",
         lambda: one_us(lambda _: [be.compress_batch(b) for _, b in batches], n)),
        ("ZswapCache.store_batch(32)",
         lambda: one_us(lambda s: [s.zswap.store_batch(0, o, b) for o, b in batches], n, fresh,
                        close)),
        ("SwapSystem.swap_out_batch(32)",
         lambda: one_us(lambda s: [s.swap_out_batch(0, o, b) for o, b in batches], n, fresh,
                        close)),
    ]
    store = best_of_rounds(store_layers, r)

    comp = [x for x in (compress(p) for p in as_bytes) if x is not None]
    system = fresh()
    for o, b in batches:
        system.swap_out_batch(0, o, b)
    order = list(range(n))
    random.Random(1).shuffle(order)
    # readahead clusters (aligned windows of the default page-cluster), in a shuffled order
    clusters = [list(range(lo, min(lo + DEFAULT_LOAD_BATCH, n)))
                for lo in range(0, n, DEFAULT_LOAD_BATCH)]
    random.Random(2).shuffle(clusters)
    handles = system.pool.handles()  # what is stored, to time pool.read alone
    load_layers: list[tuple[str, Callable[[], float]]] = []
    if args.backend in ("lz4", "lz4hc"):
        import lz4.block

        d = lz4.block.decompress
        load_layers.append(("lz4.block.decompress (C codec)", lambda: one_us(
            lambda _: [d(x, uncompressed_size=4096) for x in comp], len(comp))))
    load_layers += [
        ("backend.decompress", lambda: one_us(lambda _: [decompress(x) for x in comp],
                                              len(comp))),
        ("pool.read (copy out)", lambda: one_us(lambda _: [system.pool.read(h) for h in handles],
                                                len(handles))),
        ("ZswapCache.load", lambda: one_us(lambda _: [system.zswap.load(0, o) for o in order],
                                           n)),
        ("SwapSystem.swap_in", lambda: one_us(lambda _: [system.swap_in(0, o) for o in order],
                                              n)),
        (f"ZswapCache.load_batch({DEFAULT_LOAD_BATCH})",
         lambda: one_us(lambda _: [system.zswap.load_batch(0, c) for c in clusters], n)),
        (f"SwapSystem.swap_in_batch({DEFAULT_LOAD_BATCH})",
         lambda: one_us(lambda _: [system.swap_in_batch(0, c) for c in clusters], n)),
    ]
    load = best_of_rounds(load_layers, r)
    system.close()

    lines = [
        f"**Store/load path layers: {args.backend}, {n} bundled-corpus pages**",
        "",
        # the command, machine, commit and time, as every result file names them
        *header_lines(provenance(script_command(__file__, argv))),
        "",
        f"Thread CPU µs per page, best of {r} interleaved rounds (`benchmarks/stack_layers.py`). "
        "Same-filled pages are in the mix (the stack stores them without the codec).",
        "",
        "| store path | µs/page | time vs codec |", "|---|---:|---:|",
    ]
    base = store[0][1]
    lines += [f"| {k} | {v:.2f} | {v / base:.2f}x |" for k, v in store]
    lines += ["", "| load path | µs/page | time vs codec |", "|---|---:|---:|"]
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
