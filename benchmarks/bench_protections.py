"""What the opt-in protections cost on the swap path: ``entry_checksum`` and ``verify_pages``.

    .venv/bin/python benchmarks/bench_protections.py [--backend lz4] [--pages 4096] [--rounds 11]

Three swap systems on the same pages (``real_memory_mix``), one without protections, one with
``entry_checksum: true``, one with ``verify_pages: true``. Every round times each system once,
interleaved (so a noisy neighbour slows them alike): ``swap_out_batch`` in reclaim passes of 32
pages, then ``swap_in_batch`` in readahead clusters of 8, then every slot freed. Reported: the
median µs per page over the rounds, and the median of the per-round ratios to the unprotected
system (a burst of load on a shared machine hardly moves those). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from hwzswap.frontswap.system import open_zswap
from hwzswap.testing import real_memory_mix

VARIANTS = {"none": {}, "entry_checksum": {"entry_checksum": True},
            "verify_pages": {"verify_pages": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="lz4")
    ap.add_argument("--pages", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=11)
    args = ap.parse_args()
    n = args.pages - args.pages % 32
    pages = np.ascontiguousarray(real_memory_mix(n, seed=1))
    times: dict[str, dict[str, list[float]]] = {v: {"store": [], "load": []} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as d:
        systems = {
            v: open_zswap({"zswap": {"compressor": args.backend, **z},
                           "swap": {"nr_pages": n, "path": str(Path(d) / f"{v}.swap")}})
            for v, z in VARIANTS.items()
        }
        try:
            for _ in range(args.rounds):
                for v, s in systems.items():
                    t0 = time.perf_counter()
                    for i in range(0, n, 32):
                        s.swap_out_batch(0, np.arange(i, i + 32), pages[i:i + 32])
                    t1 = time.perf_counter()
                    for i in range(0, n, 8):
                        got = s.swap_in_batch(0, list(range(i, i + 8)))
                        assert got[0] == pages[i].tobytes()
                    t2 = time.perf_counter()
                    for i in range(n):
                        s.swap_free(0, i)
                    times[v]["store"].append((t1 - t0) / n * 1e6)
                    times[v]["load"].append((t2 - t1) / n * 1e6)
        finally:
            for s in systems.values():
                s.close()
    cpu = platform.processor() or platform.machine()
    print(f"{args.backend}, {n} pages, {args.rounds} rounds; {cpu}, "
          f"Python {platform.python_version()}\n")
    print("| protection | store µs/page | × none | load µs/page | × none |")
    print("|---|---:|---:|---:|---:|")
    for v in VARIANTS:
        row = [v]
        for op in ("store", "load"):
            mine, base = np.array(times[v][op]), np.array(times["none"][op])
            row += [f"{np.median(mine):.2f}", f"{np.median(mine / base):.2f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
