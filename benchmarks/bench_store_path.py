"""Cost of the zswap store/load path against the raw codec, page by page (lz4 by default).

    .venv/bin/python benchmarks/bench_store_path.py [--backend lz4] [--pages 4096] [--rounds 15]
        [--compare REV] [--profile]

On the same pages (the bundled corpus), in one process, every round times each measurement once
(interleaved, so a noisy neighbour slows them all alike); the figures are the median over the
rounds, in ns per page (min in brackets). A ratio is taken within each round (raw and stack
timed moments apart) and the median of those per-round ratios is reported (with the ratio of
the minima in brackets), which a burst of load on a shared machine hardly moves:

* ``raw compress`` / ``raw decompress`` / ``raw compress_batch``: the backend alone;
* ``... shuffled``: loads in a random order, as the bench runner's roundtrip workload does (the
  pool's objects and the index entries are then cold in the caches, as are the raw codec's
  inputs);
* ``zswap.store`` / ``zswap.load``: the cache (no pool limit, so no writeback);
* ``swap_out`` / ``swap_in`` / ``swap_out_batch``: the swap system around it (batches of 32,
  ``SWAP_CLUSTER_MAX``, as the bench runner's roundtrip workload; its ratio is to
  ``compress_batch`` for a batch backend, else to ``compress`` page by page, as the runner's);
* ``... checksum``: the same with ``entry_checksum: true``;
* ``floor store`` / ``floor load``: the least any zswap over this pool and index must do per
  page, written out inline in Python (no method call, no checks, no counters): compress, lock,
  ``malloc_write``, index insert (the engine's ``ZswapTree``), unlock; lock, index lookup,
  ``view``, decompress, unlock. The engine is Python (only the pool and the index are
  compiled), so it cannot come out above this floor: the floor is the most a Python engine can
  reach on this machine;
* ``pool ...``: the pool calls alone, on fresh objects (``malloc_write``) and on the stored
  ones (``view``, ``read``).

The ratios are throughputs (raw time / stack time); issue 11's targets are store >= 0.90 and
load >= 0.80 of the raw codec (with reclaim batches of 32 and readahead clusters of 8). ``--compare REV`` also measures the package as it was at git
revision ``REV`` (extracted to a temporary directory and imported under another name), in the
same rounds, so before/after figures come from one run. ``--profile`` adds a cProfile of the
store and load loops. Findings: ``benchmarks/store_path_profile.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import io
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32


def _pages(n: int) -> tuple[np.ndarray, str]:
    from hwzswap.bench.corpus import load_bundled

    try:
        arr = load_bundled(max_pages=n)
        if len(arr):
            return np.ascontiguousarray(arr), "bundled corpus"
    except Exception:  # noqa: BLE001 - fall back to synthetic pages
        pass
    from hwzswap.testing import real_memory_mix

    return real_memory_mix(n), "synthetic mix"


def import_revision(rev: str, tmp: str) -> str:
    """Extract ``hwzswap/`` at git revision ``rev`` into ``tmp`` as package ``hwzswap_<rev>``
    (imports rewritten), put it on ``sys.path`` and return its name."""
    name = "hwzswap_" + re.sub(r"\W", "_", rev)
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "hwzswap"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
    pkg = Path(tmp) / name
    (Path(tmp) / "hwzswap").rename(pkg)
    for path in pkg.rglob("*.py"):
        path.write_text(re.sub(r"\bhwzswap\b", name, path.read_text(encoding="utf-8")),
                        encoding="utf-8")
    for ext in _EXTENSIONS:
        if (pkg / f"{ext}.c").exists():
            _build_extension(pkg, name, tmp, ext)
    sys.path.insert(0, tmp)
    return name


#: The package's compiled parts, as paths inside it without the suffix.
_EXTENSIONS = ("pool/_zscore", "frontswap/_hotpath")


def _build_extension(pkg: Path, name: str, tmp: str, ext: str) -> None:
    """Give the extracted revision one compiled part (``ext``, e.g. ``pool/_zscore``): a copy of
    this tree's build when the revision's C source is the same, else a build of its source."""
    here = ROOT / "hwzswap" / f"{ext}.c"
    built = sorted(here.parent.glob(Path(ext).name + ".*.so"))
    if built and here.exists() and (pkg / f"{ext}.c").read_bytes() == here.read_bytes():
        shutil.copy(built[0], (pkg / ext).parent / built[0].name)
        return
    module = f"{name}." + ext.replace("/", ".")
    script = (
        "from setuptools import Extension, setup\n"
        f"setup(name='{name}', script_args=['-q', 'build_ext', '--inplace'], ext_modules=["
        f"Extension('{module}', ['{name}/{ext}.c'], extra_compile_args=['-O2'])])\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp, check=True)


class Stack:
    """One implementation of the stack (this tree's ``hwzswap`` or an older revision)."""

    def __init__(self, pkg: str, backend: str, n: int, checksum: bool = False) -> None:
        mod = importlib.import_module(pkg)
        system_mod = importlib.import_module(pkg + ".frontswap.system")
        self.name = pkg if not checksum else pkg + " checksum"
        self.backend = mod.get_backend(backend)
        zswap: dict[str, Any] = {"compressor": backend, "max_compression_ratio": 100,
                                 "max_pool_percent": 100}
        if checksum:
            zswap["entry_checksum"] = True
        cfg = {"zswap": zswap, "memory": {"total_ram_mb": max(1, 4 * n * 4096 >> 20)},
               "swap": {"nr_pages": n}}
        self.system = system_mod.open_zswap(cfg, backend=self.backend)
        self.zswap = self.system.zswap
        self.n = n

    def reset(self) -> None:
        z = self.zswap
        z.invalidate_area(0)
        z.init(0, self.n)

    def reset_system(self) -> None:
        free = self.system.swap_free
        for off in range(self.n):
            free(0, off)

    def close(self) -> None:
        self.system.close()


def plan_for(s: Stack, pages: list[bytes], arr: np.ndarray, checksum_only: bool,
             shuffled: list[int]) -> list[tuple[str, Callable[[], object], Any]]:
    n = len(pages)

    def store() -> None:
        st = s.zswap.store
        for off, p in enumerate(pages):
            st(0, off, p)

    def load() -> None:
        ld = s.zswap.load
        for off in range(n):
            ld(0, off)

    def swap_out() -> None:
        so = s.system.swap_out
        for off, p in enumerate(pages):
            so(0, off, p)

    def swap_in() -> None:
        si = s.system.swap_in
        for off in range(n):
            si(0, off)

    def swap_in_shuffled() -> None:
        si = s.system.swap_in
        for off in shuffled:
            si(0, off)

    def swap_out_batch() -> None:
        sb = s.system.swap_out_batch
        for i in range(0, n, BATCH):
            sb(0, range(i, min(i + BATCH, n)), arr[i : i + BATCH])

    if checksum_only:
        return [(f"{s.name}: zswap.store", store, s.reset), (f"{s.name}: zswap.load", load, None)]
    return [
        (f"{s.name}: zswap.store", store, s.reset),
        (f"{s.name}: zswap.load", load, None),
        (f"{s.name}: swap_out", swap_out, s.reset_system),
        (f"{s.name}: swap_in", swap_in, None),
        (f"{s.name}: swap_in shuffled", swap_in_shuffled, None),
        (f"{s.name}: swap_out_batch", swap_out_batch, s.reset_system),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="lz4")
    ap.add_argument("--pages", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--compare", metavar="REV", help="also measure hwzswap at this git revision")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    import hwzswap
    from hwzswap.frontswap._hotpath import ZswapTree
    from hwzswap.pool import PageAllocator, create_pool

    arr, source = _pages(args.pages)
    n = len(arr)
    pages = [bytes(p) for p in arr]
    shuffled = list(range(n))
    random.Random(0).shuffle(shuffled)
    tmp = tempfile.TemporaryDirectory() if args.compare else None
    stacks = [Stack("hwzswap", args.backend, n)]
    if args.compare and tmp is not None:
        stacks.insert(0, Stack(import_revision(args.compare, tmp.name), args.backend, n))
    checked = Stack("hwzswap", args.backend, n, checksum=True)
    backend = stacks[-1].backend
    compress, decompress = backend.compress, backend.decompress
    outs = [compress(p) for p in pages]
    kept = [c for c in outs if c is not None]
    kept_shuffled = [outs[i] for i in shuffled if outs[i] is not None]

    def raw_compress() -> None:
        for p in pages:
            compress(p)

    def raw_decompress() -> None:
        for c in kept:
            decompress(c)

    def raw_decompress_shuffled() -> None:
        for c in kept_shuffled:
            decompress(c)

    def raw_compress_batch() -> None:
        cb = backend.compress_batch
        for i in range(0, n, BATCH):
            cb(arr[i : i + BATCH])

    # The floor: the irreducible part of a store and a load, inline.
    floor_pool = create_pool("zsmalloc", PageAllocator())
    floor_lock = __import__("threading").Lock()
    floor_tree = ZswapTree(0, n)

    def floor_reset() -> None:
        for h in floor_tree.values():
            floor_pool.free(h)
        floor_tree.clear()

    def floor_store() -> None:
        acquire, release = floor_lock.acquire, floor_lock.release
        mw, tree = floor_pool.malloc_write, floor_tree
        for off, p in enumerate(pages):
            data = compress(p)
            if data is None:
                continue
            acquire()
            tree[off] = mw(data)
            release()

    def floor_load(order: Any = range(n)) -> None:
        acquire, release = floor_lock.acquire, floor_lock.release
        view, get = floor_pool.view, floor_tree.get
        for off in order:
            acquire()
            h = get(off)
            if h is not None:
                decompress(view(h))
            release()

    lone: dict[str, Any] = {}

    def pool_new() -> None:
        old = lone.get("pool")
        if old is not None:
            old.destroy()
        lone["pool"] = create_pool("zsmalloc", PageAllocator())
        lone["data"] = [bytes(bytearray(c)) for c in kept]

    def pool_malloc_write() -> None:
        mw = lone["pool"].malloc_write
        lone["handles"] = [mw(d) for d in lone["data"]]

    def pool_view() -> None:
        v = lone["pool"].view
        for h in lone["handles"]:
            v(h)

    def pool_read() -> None:
        r = lone["pool"].read
        for h in lone["handles"]:
            r(h)

    plan: list[tuple[str, Callable[[], object], Any]] = [
        ("raw compress", raw_compress, None),
        ("raw decompress", raw_decompress, None),
        ("raw decompress shuffled", raw_decompress_shuffled, None),
        ("raw compress_batch", raw_compress_batch, None),
        ("floor store", floor_store, floor_reset),
        ("floor load", floor_load, None),
        ("floor load shuffled", lambda: floor_load(shuffled), None),
        ("pool malloc_write", pool_malloc_write, pool_new),
        ("pool view", pool_view, None),
        ("pool read", pool_read, None),
    ]
    for s in stacks:
        plan += plan_for(s, pages, arr, False, shuffled)
    plan += plan_for(checked, pages, arr, True, shuffled)
    times: dict[str, list[float]] = {name: [] for name, _, _ in plan}
    per_kept = {"raw decompress", "raw decompress shuffled", "pool malloc_write", "pool view",
                "pool read"}
    for _ in range(args.rounds):
        for name, fn, setup in plan:
            if setup is not None:
                setup()
            gc.collect()
            gc.disable()
            t0 = time.perf_counter_ns()
            fn()
            t1 = time.perf_counter_ns()
            gc.enable()
            times[name].append((t1 - t0) / (len(kept) if name in per_kept else n))
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}

    st = stacks[-1].zswap.stats()
    print(f"{args.backend}: {n} pages ({source}); same-filled {st['same_filled_pages']}, "
          f"rejected {n - st['stored_pages']}; {args.rounds} interleaved rounds, median "
          f"(min) ns per page; python {sys.version.split()[0]}, hwzswap {hwzswap.__file__}")
    for k in times:
        print(f"  {k:44s} {med[k]:8.0f} ({low[k]:6.0f})")

    def ratio(raw: str, stack: str) -> str:
        per_round = statistics.median(r / s for r, s in zip(times[raw], times[stack]))
        return f"{per_round:.3f} ({low[raw] / low[stack]:.3f})"

    # swap_out_batch against what the bench runner compares it with: compress_batch for a
    # batch backend, compress page by page for the others
    raw_batch = "raw compress_batch" if backend.capabilities.batch else "raw compress"
    print("throughput vs the raw codec, median of per-round ratios (ratio of minima):")
    print(f"  floor: store {ratio('raw compress', 'floor store')}, "
          f"load {ratio('raw decompress', 'floor load')}, "
          f"load shuffled {ratio('raw decompress shuffled', 'floor load shuffled')}")
    for s in stacks + [checked]:
        p = s.name + ": "
        line = f"  {s.name}: store {ratio('raw compress', p + 'zswap.store')}, " \
               f"load {ratio('raw decompress', p + 'zswap.load')}"
        if p + "swap_out" in med:
            line += (f", swap_out {ratio('raw compress', p + 'swap_out')}, "
                     f"swap_in {ratio('raw decompress', p + 'swap_in')}, "
                     f"swap_in shuffled "
                     f"{ratio('raw decompress shuffled', p + 'swap_in shuffled')}, "
                     f"swap_out_batch {ratio(raw_batch, p + 'swap_out_batch')}")
        print(line)
    pool_share = statistics.median(
        (m + v) / c for m, v, c in zip(times["pool malloc_write"], times["pool view"],
                                       times["raw compress"]))
    print(f"  pool malloc_write + view: {pool_share:.3f} of a raw compress")

    if args.profile:
        s = stacks[-1]
        for name, fn, setup in plan_for(s, pages, arr, True, shuffled):
            prof = cProfile.Profile()
            for _ in range(3):
                if setup is not None:
                    setup()
                prof.enable()
                fn()
                prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
            print(f"--- cProfile: {name} ---")
            print(out.getvalue())
    for s in stacks + [checked]:
        s.close()
    floor_pool.destroy()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
