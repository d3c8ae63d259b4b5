#!/usr/bin/env python3
"""lz4-opencl against single-threaded python-lz4 on the same real pages, in one run.

For every batch size it measures, interleaving the two codecs repetition by repetition (so
background load hits both alike) and keeping the median:

* python-lz4 ``lz4.block.compress(page, store_size=False)`` page by page on one thread, and
  ``lz4.block.decompress`` of its output: pages/s and compression ratio;
* lz4-opencl ``compress_batch`` end to end (wall clock, transfers and Python objects included):
  - *pipelined*: one call with the whole workload, cut into ``batch_size`` chunks that are
    double-buffered (the upload of chunk N+1 overlaps the kernel of chunk N);
  - *per call*: one call per ``batch_size`` pages (what a caller with that batch size sees);
* lz4-opencl kernel-only time from OpenCL profiling events (the sum over launches);
* lz4-opencl ``decompress_batch`` of its own output, end to end and kernel-only.

Usage (from the repository root; PoCL wants its kernel cache directory)::

    POCL_CACHE_DIR=.pocl-cache .venv/bin/python benchmarks/bench_opencl.py
    ... --batch-sizes 256,1024,4096,16384,65536 --device-type gpu      # on a GPU
    ... --tune          # also compare layouts, work-group sizes and hash sizes at one batch size

Writes ``benchmarks/results/opencl_<device>.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4
import lz4.block
import numpy as np

from hwzswap import get_backend
from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.bench.corpus import bundled_corpus_paths, corpus_hash, load_bundled, source_name
from hwzswap.bench.results import cpu_model

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


CPU_S: list[float] = []  # process CPU seconds (every thread, PoCL's workers too) of each timed()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` and its result; its process CPU seconds go to ``CPU_S``."""
    gc.disable()
    try:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        CPU_S.append(time.process_time() - c0)
        return wall, out
    finally:
        gc.enable()


def workload(pages_wanted: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    """The bundled corpus (every page), repeated whole when more pages are asked for.

    Whole copies keep the mix of sources, and so the compression ratio, of the corpus.
    """
    pages = load_bundled()
    info: dict[str, Any] = {
        "source": "bundled corpus",
        "sources": [source_name(p) for p in bundled_corpus_paths()],
        "corpus_pages": int(len(pages)),
        "corpus_sha256": corpus_hash(pages),
    }
    if pages_wanted and pages_wanted > len(pages):
        reps = -(-pages_wanted // len(pages))
        pages = np.ascontiguousarray(np.tile(pages, (reps, 1)))
        info["corpus_copies"] = reps
    info["pages"] = int(len(pages))
    return pages, info


def stored_bytes(items: list[Any]) -> int:
    """Bytes kept: the compressed size, or a whole page for an incompressible one."""
    return sum(PAGE_SIZE if it is None or len(it) >= PAGE_SIZE else len(it) for it in items)


class Lz4Baseline:
    """python-lz4 on one thread, page by page, on bytes objects (no framework overhead)."""

    def __init__(self, pages: np.ndarray) -> None:
        self.rows = [p.tobytes() for p in pages]
        self.items = [lz4.block.compress(r, store_size=False) for r in self.rows]
        self.ratio = len(self.rows) * PAGE_SIZE / stored_bytes(self.items)
        self.comp: list[float] = []
        self.decomp: list[float] = []

    def run_compress(self) -> float:
        compress = lz4.block.compress
        dt, _ = timed(lambda: [compress(r, store_size=False) for r in self.rows])
        self.comp.append(dt)
        return dt

    def run_decompress(self, items: list[bytes]) -> float:
        decompress = lz4.block.decompress
        dt, _ = timed(lambda: [decompress(c, uncompressed_size=PAGE_SIZE) for c in items])
        self.decomp.append(dt)
        return dt


def measure_config(
    pages: np.ndarray, base: Lz4Baseline, params: dict[str, Any], repeat: int, per_call: bool
) -> dict[str, Any]:
    """One lz4-opencl configuration, interleaved with the python-lz4 baseline."""
    n = len(pages)
    B = params["batch_size"]
    backend = get_backend("lz4-opencl", **params)
    try:
        items = backend.compress_batch(pages)  # warm-up: builds kernels, sizes the buffers
        kept = [it for it in items if it is not None]
        backend.decompress_batch(kept[: min(len(kept), B)])
        identical = sum(a == b for a, b in zip(items, base.items))
        out = backend.decompress_batch(kept)
        ok = bool(np.array_equal(out, pages[[i for i, it in enumerate(items) if it is not None]]))
        lz4_items = [c for c in base.items if len(c) < PAGE_SIZE]

        rows: dict[str, list[float]] = {
            k: []
            for k in (
                "lz4_c", "e2e", "kernel", "call", "call_kernel", "lz4_d", "d_e2e", "d_kernel",
                "lz4_c_cpu", "e2e_cpu", "lz4_d_cpu", "d_e2e_cpu",
            )
        }
        for _ in range(repeat):
            rows["lz4_c"].append(base.run_compress())
            rows["lz4_c_cpu"].append(CPU_S[-1])
            c0 = backend.counters()
            dt, _ = timed(lambda: backend.compress_batch(pages))
            rows["e2e_cpu"].append(CPU_S[-1])
            c1 = backend.counters()
            rows["e2e"].append(dt)
            rows["kernel"].append((c1["compress_kernel_ns"] - c0["compress_kernel_ns"]) / 1e9)
            if per_call and B < n:
                chunks = [pages[a : a + B] for a in range(0, n, B)]
                dt, _ = timed(lambda: [backend.compress_batch(c) for c in chunks])
                c2 = backend.counters()
                rows["call"].append(dt)
                rows["call_kernel"].append((c2["compress_kernel_ns"] - c1["compress_kernel_ns"]) / 1e9)
            rows["lz4_d"].append(base.run_decompress(lz4_items))
            rows["lz4_d_cpu"].append(CPU_S[-1])
            c0 = backend.counters()
            dt, _ = timed(lambda: backend.decompress_batch(kept))
            rows["d_e2e_cpu"].append(CPU_S[-1])
            c1 = backend.counters()
            rows["d_e2e"].append(dt)
            rows["d_kernel"].append((c1["decompress_kernel_ns"] - c0["decompress_kernel_ns"]) / 1e9)
        med = {k: statistics.median(v) for k, v in rows.items() if v}

        def paired(a: str, b: str) -> float:
            """Median over repetitions of time(a)/time(b), each pair measured back to back."""
            return statistics.median(x / y for x, y in zip(rows[a], rows[b], strict=True))

        gb = n * PAGE_SIZE / 1e9
        nd = len(kept)
        res: dict[str, Any] = {
            "params": params,
            "describe": backend.describe(),
            "pages": n,
            "repeat": repeat,
            "decodes_ok": ok,
            "identical_to_lz4": identical,
            "ratio": n * PAGE_SIZE / stored_bytes(items),
            "lz4_ratio": base.ratio,
            "lz4_compress_pages_s": n / med["lz4_c"],
            "compress_e2e_pages_s": n / med["e2e"],
            "compress_e2e_gbps": gb / med["e2e"],
            "compress_kernel_pages_s": n / med["kernel"],
            "compress_kernel_gbps": gb / med["kernel"],
            "speedup_e2e_vs_lz4": paired("lz4_c", "e2e"),
            "speedup_kernel_vs_lz4": paired("lz4_c", "kernel"),
            "lz4_decompress_pages_s": len(lz4_items) / med["lz4_d"],
            "decompress_pages": nd,
            "decompress_e2e_pages_s": nd / med["d_e2e"],
            "decompress_e2e_gbps": nd * PAGE_SIZE / 1e9 / med["d_e2e"],
            "decompress_kernel_pages_s": nd / med["d_kernel"],
            "decompress_kernel_gbps": nd * PAGE_SIZE / 1e9 / med["d_kernel"],
            "speedup_decompress_e2e_vs_lz4": paired("lz4_d", "d_e2e") * nd / len(lz4_items),
            # CPU time per page, all threads: what the codec costs the machine, whatever the load
            "lz4_compress_cpu_us_per_page": med["lz4_c_cpu"] / n * 1e6,
            "compress_cpu_us_per_page": med["e2e_cpu"] / n * 1e6,
            "lz4_decompress_cpu_us_per_page": med["lz4_d_cpu"] / len(lz4_items) * 1e6,
            "decompress_cpu_us_per_page": med["d_e2e_cpu"] / nd * 1e6,
            "samples_s": rows,
        }
        if "call" in med:
            res["compress_per_call_pages_s"] = n / med["call"]
            res["compress_per_call_gbps"] = gb / med["call"]
            res["speedup_per_call_vs_lz4"] = paired("lz4_c", "call")
        return res
    finally:
        backend.close()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    d = report["device"]
    env = report["environment"]
    lines = [
        f"# lz4-opencl vs python-lz4 on {d['name']}",
        "",
        f"- device: `{d['name']}` ({d['type']}, {d['compute_units']} compute units), platform "
        f"`{d['platform']}` {d['platform_version']}",
        f"- host CPU: {env['cpu_model']}, {env['cpus']} CPUs usable; load average before/after "
        f"{env['loadavg_before']} / {env['loadavg_after']}",
        f"- workload: {report['workload']['pages']} pages: the bundled corpus "
        f"({', '.join(report['workload']['sources'])}; {report['workload']['corpus_pages']} "
        f"pages, sha256 {report['workload']['corpus_sha256'][:12]}…) × "
        f"{report['workload'].get('corpus_copies', 1)}",
        f"- command: `{report['command']}`",
        f"- python-lz4 {env['python_lz4']} (LZ4 {env['lz4_library']}), pyopencl "
        f"{env['pyopencl']}, commit {report.get('commit')}",
        "- rates are medians of interleaved repetitions; a speed-up (× lz4) is the median of "
        "back-to-back pairs (python-lz4 run, then lz4-opencl run); *e2e* = wall clock of the "
        "call (transfers and Python objects included); *kernel* = OpenCL profiling events only",
        "",
        "## Batch sizes (default kernel configuration)",
        "",
        "| batch | lz4 comp p/s | ocl e2e p/s (GB/s) | × lz4 | per-call p/s (× lz4) | kernel p/s (GB/s) "
        "| CPU µs/page ocl / lz4 | ratio ocl / lz4 | identical | lz4 decomp p/s "
        "| ocl decomp e2e p/s (GB/s) | decomp kernel GB/s | decomp CPU µs/page ocl / lz4 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["batch_sizes"]:
        per_call = (
            f"{r['compress_per_call_pages_s']:,.0f} ({r['speedup_per_call_vs_lz4']:.2f}×)"
            if "compress_per_call_pages_s" in r
            else "= e2e"
        )
        lines.append(
            f"| {r['params']['batch_size']} | {r['lz4_compress_pages_s']:,.0f} "
            f"| {r['compress_e2e_pages_s']:,.0f} ({r['compress_e2e_gbps']:.2f}) "
            f"| **{r['speedup_e2e_vs_lz4']:.2f}×** | {per_call} "
            f"| {r['compress_kernel_pages_s']:,.0f} ({r['compress_kernel_gbps']:.2f}) "
            f"| {r['compress_cpu_us_per_page']:.2f} / {r['lz4_compress_cpu_us_per_page']:.2f} "
            f"| {r['ratio']:.3f} / {r['lz4_ratio']:.3f} | {r['identical_to_lz4']}/{r['pages']} "
            f"| {r['lz4_decompress_pages_s']:,.0f} "
            f"| {r['decompress_e2e_pages_s']:,.0f} ({r['decompress_e2e_gbps']:.2f}) "
            f"| {r['decompress_kernel_gbps']:.2f} "
            f"| {r['decompress_cpu_us_per_page']:.2f} / {r['lz4_decompress_cpu_us_per_page']:.2f} |"
        )
    if report.get("tuning"):
        lines += [
            "",
            "## Kernel configurations (one batch size)",
            "",
            "| layout | local size | hash_log | batch | kernel p/s | e2e p/s | × lz4 (e2e) | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["tuning"]:
            p = r["params"]
            lines.append(
                f"| {p['layout']} | {r['local_size_used']} | {p['hash_log']} | {p['batch_size']} "
                f"| {r['compress_kernel_pages_s']:,.0f} | {r['compress_e2e_pages_s']:,.0f} "
                f"| {r['speedup_e2e_vs_lz4']:.2f}× | {r['ratio']:.3f} |"
            )
    s = report["summary"]
    lines += [
        "",
        "## Summary",
        "",
        f"- target batch size {s['batch_size']}: lz4-opencl compress end to end "
        f"**{s['speedup_e2e_vs_lz4']:.2f}×** single-threaded python-lz4 (kernel only "
        f"{s['speedup_kernel_vs_lz4']:.2f}×); ratio {s['ratio']:.3f} vs {s['lz4_ratio']:.3f} "
        f"({s['ratio_vs_lz4_percent']:+.2f}%)",
        f"- meets the issue's CPU targets (≥ 1.0× and ratio within 10%): **{s['meets_target']}**",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="256,1024,4096,16384",
                    help="comma-separated device batch sizes (default %(default)s)")
    ap.add_argument("--target-batch", type=int, default=4096,
                    help="batch size the summary is taken at (default %(default)s)")
    ap.add_argument("--pages", type=int, default=None,
                    help="at least this many pages (whole copies of the corpus; default: the "
                         "corpus, repeated until it holds the largest batch size)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved repetitions (median kept)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--device-type", default="any")
    ap.add_argument("--platform", default="")
    ap.add_argument("--layout", default="item", choices=("item", "group"))
    ap.add_argument("--local-size", type=int, default=0)
    ap.add_argument("--no-per-call", action="store_true", help="skip the one-call-per-batch runs")
    ap.add_argument("--tune", action="store_true",
                    help="also compare layouts / work-group sizes / hash sizes at --target-batch")
    ap.add_argument("--out", type=Path, default=None, help="output path without extension")
    args = ap.parse_args(argv)

    sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    pages, winfo = workload(max(sizes) if args.pages is None else args.pages)
    common = {"device": args.device, "device_type": args.device_type, "platform": args.platform}
    probe = get_backend("lz4-opencl", **common, layout=args.layout, local_size=args.local_size)
    dinfo = probe.device_info
    probe.close()

    load_before = os.getloadavg()
    print(f"device: {dinfo['name']} ({dinfo['type']}); {winfo['pages']} pages", file=sys.stderr)
    base = Lz4Baseline(pages)
    results = []
    for B in sizes:
        params = {**common, "batch_size": B, "layout": args.layout, "local_size": args.local_size}
        r = measure_config(pages, base, params, args.repeat, per_call=not args.no_per_call)
        results.append(r)
        print(
            f"batch {B:6d}: lz4 {r['lz4_compress_pages_s']:9,.0f} p/s | ocl e2e "
            f"{r['compress_e2e_pages_s']:9,.0f} p/s ({r['speedup_e2e_vs_lz4']:.2f}x) kernel "
            f"{r['compress_kernel_pages_s']:9,.0f} p/s | ratio {r['ratio']:.3f} vs "
            f"{r['lz4_ratio']:.3f} | decomp e2e {r['decompress_e2e_pages_s']:9,.0f} p/s | CPU "
            f"us/page {r['compress_cpu_us_per_page']:.2f} vs {r['lz4_compress_cpu_us_per_page']:.2f}",
            file=sys.stderr,
        )

    tuning = []
    if args.tune:
        configs = [("item", ls, 12) for ls in (1, 8, 64)] + [("item", 1, h) for h in (10, 11, 13)]
        configs += [("group", w, 12) for w in (2, 4, 8, 16)]
        for layout, ls, h in configs:
            params = {**common, "batch_size": args.target_batch, "layout": layout,
                      "local_size": ls, "hash_log": h}
            r = measure_config(pages, base, params, max(3, args.repeat // 2), per_call=False)
            r["local_size_used"] = ls
            tuning.append(r)
            print(
                f"tune {layout:5s} ls={ls:3d} hash_log={h}: kernel "
                f"{r['compress_kernel_pages_s']:9,.0f} p/s e2e {r['compress_e2e_pages_s']:9,.0f} "
                f"({r['speedup_e2e_vs_lz4']:.2f}x) ratio {r['ratio']:.3f}",
                file=sys.stderr,
            )
    load_after = os.getloadavg()

    target = next((r for r in results if r["params"]["batch_size"] == args.target_batch), results[-1])
    ratio_delta = (target["ratio"] / target["lz4_ratio"] - 1) * 100
    import pyopencl

    report = {
        "benchmark": "bench_opencl",
        "command": " ".join(
            ["python", "benchmarks/bench_opencl.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "commit": git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": dinfo,
        "environment": {
            "cpu_model": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "python": platform.python_version(),
            "python_lz4": lz4.__version__,
            "lz4_library": lz4.library_version_string(),
            "pyopencl": pyopencl.VERSION_TEXT,
            "numpy": np.__version__,
            "pocl_env": {k: v for k, v in os.environ.items() if k.startswith(("POCL_", "PYOPENCL_"))},
        },
        "workload": winfo,
        "batch_sizes": results,
        "tuning": tuning,
        "summary": {
            "batch_size": target["params"]["batch_size"],
            "speedup_e2e_vs_lz4": target["speedup_e2e_vs_lz4"],
            "speedup_kernel_vs_lz4": target["speedup_kernel_vs_lz4"],
            "ratio": target["ratio"],
            "lz4_ratio": target["lz4_ratio"],
            "ratio_vs_lz4_percent": ratio_delta,
            "meets_target": bool(target["speedup_e2e_vs_lz4"] >= 1.0 and abs(ratio_delta) <= 10),
        },
    }
    tag = "pocl_cpu" if "Portable Computing" in dinfo["platform"] else f"{dinfo['type']}_{slug(dinfo['name'])}"
    out = args.out or ROOT / "benchmarks" / "results" / f"opencl_{tag}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(out.with_suffix(".md"), report)
    print(f"wrote {out.with_suffix('.json')} and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
