#!/usr/bin/env python3
"""Software 842 against python-lz4 and python-lzo on the same real pages, in one run.

For each codec it compresses every page of the bundled corpus one call per page (what zswap
does), and decompresses the stored output; 842 is also timed through its batch path (one
compiled call over the ``(N, 4096)`` array). Repetitions are interleaved codec by codec so
background load hits all alike; the median repetition is reported. Times are this thread's CPU
time (``time.thread_time``) -- on a shared machine that excludes time spent descheduled -- and
wall time is recorded beside it. The JIT compile (or cache load) happens before timing and is
reported separately.

Compression ratio = input bytes / stored bytes, where a page that does not shrink is stored
raw (4096 bytes), as zswap would keep it out of the pool.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_842.py [--repeats 5] [--max-pages N]

Writes ``benchmarks/results/842_bench.json`` and ``842_bench.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4
import lz4.block
import lzo
import numpy as np

from hwzswap import get_backend
from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.bench.corpus import corpus_hash, load_bundled_sources
from hwzswap.bench.provenance import commit_words, script_command
from hwzswap.bench.results import machine_info
from hwzswap.errors import CorpusError

ROOT = Path(__file__).resolve().parent.parent


def _codecs(pages: np.ndarray) -> dict[str, dict[str, Callable[..., Any]]]:
    """Name -> compress (all pages) and decompress (all stored items) callables."""
    raw = [p.tobytes() for p in pages]
    sw842 = get_backend("842")
    lz4c, lz4d = lz4.block.compress, lz4.block.decompress
    lzoc, lzod = lzo.compress, lzo.decompress

    def lz4_comp() -> list[bytes]:
        return [lz4c(r, store_size=False) for r in raw]

    def lzo_comp() -> list[bytes]:
        return [lzoc(r, 1, False) for r in raw]

    def sw842_comp() -> list[bytes | None]:
        comp = sw842.compress
        return [comp(r) for r in raw]

    def sw842_batch() -> list[bytes | None]:
        return sw842.compress_batch(pages)

    def lz4_decomp(items: list[bytes]) -> None:
        for it in items:
            lz4d(it, uncompressed_size=PAGE_SIZE)

    def lzo_decomp(items: list[bytes]) -> None:
        for it in items:
            lzod(it, False, PAGE_SIZE)

    def sw842_decomp(items: list[bytes]) -> None:
        dec = sw842.decompress
        for it in items:
            dec(it)

    def sw842_decomp_batch(items: list[bytes]) -> None:
        sw842.decompress_batch(items)

    return {
        "lz4": {"compress": lz4_comp, "decompress": lz4_decomp},
        "lzo": {"compress": lzo_comp, "decompress": lzo_decomp},
        "842": {"compress": sw842_comp, "decompress": sw842_decomp},
        "842-batch": {"compress": sw842_batch, "decompress": sw842_decomp_batch},
    }


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    w0, c0 = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return time.thread_time() - c0, time.perf_counter() - w0, out


def _stored(items: list[Any]) -> tuple[int, int]:
    """(stored bytes with raw pages for incompressible ones, number of incompressible pages)."""
    total = incompressible = 0
    for it in items:
        if it is None or len(it) >= PAGE_SIZE:
            total += PAGE_SIZE
            incompressible += 1
        else:
            total += len(it)
    return total, incompressible


def run(pages: np.ndarray, repeats: int) -> dict[str, Any]:
    codecs = _codecs(pages)
    n = pages.shape[0]
    t0 = time.perf_counter()
    sw842 = get_backend("842")  # compiles the codec, or loads it from numba's cache
    warm = sw842.compress_batch(pages[:8])
    sw842.decompress_batch([it for it in warm if it is not None])
    sw842.decompress(sw842.compress(np.zeros(PAGE_SIZE, np.uint8)))
    warmup_s = time.perf_counter() - t0

    outputs = {name: c["compress"]() for name, c in codecs.items()}
    assert outputs["842"] == outputs["842-batch"], "842 batch and per-page outputs differ"
    kept = {name: [it for it in items if it is not None and len(it) < PAGE_SIZE]
            for name, items in outputs.items()}
    # Correctness before speed: every stored page decodes to its input.
    back = sw842.decompress_batch(kept["842"])
    idx = [i for i, it in enumerate(outputs["842"]) if it is not None]
    assert np.array_equal(back, pages[idx]), "842 round trip failed"

    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {"compress": [], "decompress": []} for name in codecs
    }
    for _ in range(repeats):
        for name, c in codecs.items():
            cpu, wall, _out = _timed(c["compress"])
            samples[name]["compress"].append((cpu, wall))
        for name, c in codecs.items():
            cpu, wall, _out = _timed(c["decompress"], kept[name])
            samples[name]["decompress"].append((cpu, wall))

    result: dict[str, Any] = {}
    for name in codecs:
        stored, incompressible = _stored(outputs[name])
        entry: dict[str, Any] = {
            "stored_bytes": stored,
            "incompressible_pages": incompressible,
            "compression_ratio": n * PAGE_SIZE / stored,
        }
        for op in ("compress", "decompress"):
            cpu = statistics.median(s[0] for s in samples[name][op])
            wall = statistics.median(s[1] for s in samples[name][op])
            pages_done = n if op == "compress" else len(kept[name])
            entry[op] = {
                "cpu_s": cpu,
                "wall_s": wall,
                "pages": pages_done,
                "us_per_page": cpu / pages_done * 1e6,
                "mb_per_s": pages_done * PAGE_SIZE / cpu / 1e6,
                "wall_mb_per_s": pages_done * PAGE_SIZE / wall / 1e6,
            }
        result[name] = entry
    ratios = {}
    for name in ("842", "842-batch", "lzo"):
        ratios[name] = {
            "compress_speed_vs_lz4": result[name]["compress"]["mb_per_s"]
            / result["lz4"]["compress"]["mb_per_s"],
            "decompress_speed_vs_lz4": result[name]["decompress"]["mb_per_s"]
            / result["lz4"]["decompress"]["mb_per_s"],
            "compression_ratio_vs_lz4": result[name]["compression_ratio"]
            / result["lz4"]["compression_ratio"],
        }
    return {"codecs": result, "vs_lz4": ratios, "jit_warmup_s": warmup_s}


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    res, vs = doc["results"]["codecs"], doc["results"]["vs_lz4"]
    lines = [
        "# 842 vs lz4 and lzo on the bundled corpus",
        "",
        f"- command: `{doc['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['os']}",
        f"- commit: {commit_words(m.get('hwzswap'))}, measured {doc['created']}",
        f"- corpus: {doc['corpus']['pages']} pages from {', '.join(doc['corpus']['sources'])} "
        f"(sha256 {doc['corpus']['sha256'][:16]}...)",
        f"- {doc['repeats']} interleaved repetitions, median; times are thread CPU time; "
        f"JIT warm-up (excluded) {doc['results']['jit_warmup_s']:.2f} s",
        f"- libraries: lz4 {doc['versions']['lz4']}, python-lzo {doc['versions']['lzo']}, "
        f"numba {doc['versions']['numba']}",
        "",
        "| codec | compress MB/s | µs/page | decompress MB/s | µs/page | ratio | incompressible |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res.items():
        c, d = r["compress"], r["decompress"]
        lines.append(
            f"| {name} | {c['mb_per_s']:.0f} | {c['us_per_page']:.2f} | {d['mb_per_s']:.0f} | "
            f"{d['us_per_page']:.2f} | {r['compression_ratio']:.3f} | {r['incompressible_pages']} |"
        )
    lines += [
        "",
        "| vs lz4 (same run) | compress speed | decompress speed | compression ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, v in vs.items():
        lines.append(
            f"| {name} | {v['compress_speed_vs_lz4']:.3f}× | {v['decompress_speed_vs_lz4']:.3f}× "
            f"| {v['compression_ratio_vs_lz4']:.3f}× |"
        )
    lines += [
        "",
        "`842` is one call per page through the backend (what zswap does); `842-batch` is one "
        "compiled call over the whole array (`compress_batch` / `decompress_batch`). The 842 "
        "output is byte-identical to the Linux kernel's `sw842_compress`; the kernel's own C "
        "842 runs at about 0.09× lz4's compress speed (842.md / issue 7).",
        "",
    ]
    return "\n".join(lines)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (median)")
    ap.add_argument("--max-pages", type=int, default=None, help="use only this many pages")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "842_bench",
                    help="output path without extension (.json and .md are written)")
    args = ap.parse_args(argv)
    try:
        sources = load_bundled_sources()
    except CorpusError as exc:
        print(f"bench_842: {exc}", file=sys.stderr)
        return 2
    pages = np.ascontiguousarray(np.concatenate(list(sources.values())))
    if args.max_pages is not None:
        pages = pages[np.linspace(0, len(pages) - 1, args.max_pages).astype(np.int64)].copy()
    import numba

    doc = {
        "command": script_command(__file__, argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "corpus": {
            "sources": list(sources),
            "pages": int(pages.shape[0]),
            "sha256": corpus_hash(pages),
        },
        "repeats": args.repeats,
        "versions": {"lz4": lz4.library_version_string(), "lzo": _text(lzo.LZO_VERSION_STRING),
                     "numba": numba.__version__},
        "results": run(pages, args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    md = _markdown(doc)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
