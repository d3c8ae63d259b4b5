#!/usr/bin/env python3
"""lz4-opencl against single-threaded python-lz4 (and nvCOMP LZ4 on an NVIDIA GPU) on the same
real pages, in one run.

For every batch size it measures, interleaving the codecs repetition by repetition (so
background load hits both alike) and keeping the median:

* python-lz4 ``lz4.block.compress(page, store_size=False)`` page by page on one thread, and
  ``lz4.block.decompress`` of its output: pages/s and compression ratio;
* lz4-opencl ``compress_batch`` end to end (wall clock from host pages in to one
  ``CompressedBatch`` in host memory out, transfers included):
  - *pipelined*: one call with the whole workload, cut into ``batch_size`` chunks spread over
    the command queues;
  - *per call*: one call per ``batch_size`` pages (what a caller with that batch size sees);
* lz4-opencl kernel-only time from OpenCL profiling events (the sum over launches);
* lz4-opencl ``decompress_batch`` of its own output (the ``CompressedBatch`` as is), end to end
  and kernel-only.

Every configuration but the batch size is the device's tuned choice (``hwzswap tune
lz4-opencl``; the report records it and its table). Where ``nvidia.nvcomp`` and cupy import
(``pip install 'hwzswap[nvcomp]'``), nvCOMP LZ4 (raw bitstream, batched, one page per chunk)
runs on the same pages: kernel-only (data already on the GPU) and end to end from host memory,
compress and decompress, with its ratio; where they do not, its rows say why. The copy
bandwidth between host and device (pinned and pageable, both directions) is reported beside,
so the distance to the bus is visible.

Usage (from the repository root; PoCL wants its kernel cache directory)::

    POCL_CACHE_DIR=.pocl-cache .venv/bin/python benchmarks/bench_opencl.py
    ... --batch-sizes 4096,16384,65536 --device-type gpu      # on a GPU (nvCOMP rows if installed)
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
from hwzswap.backends.contract import PAGE_SIZE, CompressedBatch, ItemStatus
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


def _ok_only(batch: CompressedBatch) -> tuple[CompressedBatch, np.ndarray]:
    """The OK items of a batch as a batch of their own (what a pool would hand back), and
    their indices."""
    kept = np.flatnonzero(batch.status == ItemStatus.OK)
    return (CompressedBatch(batch.data, batch.offsets[kept], batch.sizes[kept],
                            np.zeros(len(kept), np.uint8)), kept)


def batch_stored_bytes(batch: CompressedBatch) -> int:
    """Bytes kept: compressed sizes, a whole page for each item that is not OK."""
    return int(np.where(batch.status == ItemStatus.OK, batch.sizes, PAGE_SIZE).sum())


def measure_config(
    pages: np.ndarray, base: Lz4Baseline, params: dict[str, Any], repeat: int, per_call: bool
) -> dict[str, Any]:
    """One lz4-opencl configuration, interleaved with the python-lz4 baseline."""
    n = len(pages)
    backend = get_backend("lz4-opencl", **params)
    B = backend.config["batch_size"]
    try:
        batch = backend.compress_batch(pages)  # warm-up: builds kernels, sizes the buffers
        dbatch, kept = _ok_only(batch)
        backend.decompress_batch(dbatch)
        identical = sum(batch.item_bytes(i) == base.items[i] for i in range(n))
        out = backend.decompress_batch(dbatch)
        ok = bool(isinstance(out, np.ndarray) and np.array_equal(out, pages[kept]))
        ref_ok = all(
            lz4.block.decompress(batch[i], uncompressed_size=PAGE_SIZE) == base.rows[i]
            for i in kept[:: max(1, len(kept) // 512)]
        )
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
            dt, _ = timed(lambda: backend.decompress_batch(dbatch))
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
            "config": backend.counters()["config"],
            "config_source": backend.tuning["source"],
            "describe": backend.describe(),
            "pages": n,
            "repeat": repeat,
            "decodes_ok": ok,
            "lz4_decodes_device_output": ref_ok,
            "identical_to_lz4": identical,
            "ratio": n * PAGE_SIZE / batch_stored_bytes(batch),
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
            # cores the process obtained while each ran (CPU s / wall s): on a machine shared
            # with other jobs, what the device's threads actually got
            "compress_cores_obtained": statistics.median(
                c / w for c, w in zip(rows["e2e_cpu"], rows["e2e"], strict=True)),
            "lz4_compress_cores_obtained": statistics.median(
                c / w for c, w in zip(rows["lz4_c_cpu"], rows["lz4_c"], strict=True)),
            "samples_s": rows,
        }
        if "call" in med:
            res["compress_per_call_pages_s"] = n / med["call"]
            res["compress_per_call_gbps"] = gb / med["call"]
            res["speedup_per_call_vs_lz4"] = paired("lz4_c", "call")
        return res
    finally:
        backend.close()


# -- copy bandwidth ----------------------------------------------------------------------------


def _best_gbps(fn: Callable[[], Any], nbytes: int, repeat: int = 5) -> float:
    fn()
    best = min(timed(fn)[0] for _ in range(repeat))
    return nbytes / best / 1e9


def opencl_copy_bandwidth(params: dict[str, Any], mib: int) -> dict[str, Any]:
    """Host <-> device copy rate of the lz4-opencl device: pinned (a mapped
    CL_MEM_ALLOC_HOST_PTR buffer) and pageable (a plain numpy array), each direction."""
    import pyopencl as cl

    backend = get_backend("lz4-opencl", **params, tune="off")
    try:
        ctx = cl.Context([backend._device])  # noqa: SLF001 -- the benchmark's own device
        q = cl.CommandQueue(ctx)
        nbytes = mib << 20
        dev = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, nbytes)
        pin_buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR, nbytes)
        pinned, _ = cl.enqueue_map_buffer(q, pin_buf, cl.map_flags.READ | cl.map_flags.WRITE, 0,
                                          (nbytes,), np.uint8, is_blocking=True)
        pageable = np.ones(nbytes, np.uint8)
        pinned[:] = 1
        out = {
            "api": "OpenCL",
            "bytes": nbytes,
            "h2d_pinned_gbps": _best_gbps(lambda: cl.enqueue_copy(q, dev, pinned, is_blocking=True), nbytes),
            "d2h_pinned_gbps": _best_gbps(lambda: cl.enqueue_copy(q, pinned, dev, is_blocking=True), nbytes),
            "h2d_pageable_gbps": _best_gbps(lambda: cl.enqueue_copy(q, dev, pageable, is_blocking=True), nbytes),
            "d2h_pageable_gbps": _best_gbps(lambda: cl.enqueue_copy(q, pageable, dev, is_blocking=True), nbytes),
        }
        pinned.base.release(q)
        return out
    except Exception as exc:  # noqa: BLE001 -- a figure beside the benchmark, never its end
        return {"api": "OpenCL", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        backend.close()


# -- nvCOMP, the peer on NVIDIA GPUs -----------------------------------------------------------


def import_nvcomp() -> tuple[Any, Any, str | None]:
    """(nvcomp, cupy, None), or (None, None, why they cannot be used here)."""
    try:
        import cupy
        from nvidia import nvcomp
    except Exception as exc:  # noqa: BLE001 -- ImportError, or a CUDA library that fails to load
        return None, None, (f"nvidia.nvcomp / cupy do not import ({type(exc).__name__}: {exc}); "
                            "pip install 'hwzswap[nvcomp]' on a machine with an NVIDIA GPU")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, None, "cupy sees no CUDA device"
    except Exception as exc:  # noqa: BLE001
        return None, None, f"no CUDA device ({type(exc).__name__}: {exc})"
    return nvcomp, cupy, None


def cupy_copy_bandwidth(cupy: Any, mib: int) -> dict[str, Any]:
    """Host <-> GPU copy rate through CUDA: pinned (cupyx.empty_pinned) and pageable numpy."""
    import cupyx

    nbytes = mib << 20
    dev = cupy.empty(nbytes, cupy.uint8)
    pinned = cupyx.empty_pinned(nbytes, np.uint8)
    pageable = np.ones(nbytes, np.uint8)
    pinned[:] = 1

    def sync(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            fn()
            cupy.cuda.runtime.deviceSynchronize()
        return run

    return {
        "api": "CUDA (cupy)",
        "bytes": nbytes,
        "h2d_pinned_gbps": _best_gbps(sync(lambda: dev.set(pinned)), nbytes),
        "d2h_pinned_gbps": _best_gbps(sync(lambda: dev.get(out=pinned)), nbytes),
        "h2d_pageable_gbps": _best_gbps(sync(lambda: dev.set(pageable)), nbytes),
        "d2h_pageable_gbps": _best_gbps(sync(lambda: dev.get(out=pageable)), nbytes),
    }


def measure_nvcomp(nvcomp: Any, cupy: Any, pages: np.ndarray, base: Lz4Baseline,
                   repeat: int) -> dict[str, Any]:
    """nvCOMP LZ4 (raw bitstream: one LZ4 block per page, as lz4.block writes) on the pages.

    * kernel-only: ``encode``/``decode`` of a batch whose pages are already on the GPU;
    * end to end: host pages in (one upload), compressed bytes and sizes in host memory out
      (outputs gathered on the GPU, one download), and back: compressed bytes up, pages down;
    * upload + compress with the outputs left on the GPU (not end to end; for comparison).
    Uploads come from pageable memory as a caller's pages would (a pinned-source run too).
    Gathering nvCOMP's per-page output arrays goes through its Python API (one object per
    page), a cost a C caller would not pay; the kernel-only rows are free of it.
    """
    n = len(pages)
    sync = cupy.cuda.runtime.deviceSynchronize
    codec = nvcomp.Codec(algorithm="LZ4", bitstream_kind=nvcomp.BitstreamKind.RAW)
    d_pages = cupy.asarray(pages)
    views = [nvcomp.as_array(d_pages[i]) for i in range(n)]

    def encode() -> list[Any]:
        out = codec.encode(views)
        sync()
        return out

    enc = encode()
    sizes = np.array([int(e.buffer_size) for e in enc], np.int64)
    # check: lz4.block decodes nvCOMP's blocks, and nvCOMP decodes them back to the pages
    sample = range(0, n, max(1, n // 256))
    lz4_ok = all(
        lz4.block.decompress(cupy.asnumpy(cupy.asarray(enc[i]).view(cupy.uint8)).tobytes(),
                             uncompressed_size=PAGE_SIZE) == base.rows[i]
        for i in sample
    )

    def decode() -> list[Any]:
        out = codec.decode(enc, data_type="|u1")
        sync()
        return out

    dec = decode()
    dec_ok = all(np.array_equal(cupy.asnumpy(cupy.asarray(dec[i]).view(cupy.uint8)), pages[i])
                 for i in sample)

    def e2e_compress(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d_pages.set(src)
        out = codec.encode(views)
        lens = np.array([int(e.buffer_size) for e in out], np.int64)
        flat = cupy.concatenate([cupy.asarray(e).view(cupy.uint8).ravel() for e in out])
        host = cupy.asnumpy(flat)
        return host, lens

    def upload_compress(src: np.ndarray) -> None:
        """Upload and compress, outputs left on the GPU (the issue's 1.05-1.12M figure)."""
        d_pages.set(src)
        codec.encode(views)
        sync()

    flat_host, lens = e2e_compress(pages)
    offs = np.zeros(n, np.int64)
    np.cumsum(lens[:-1], out=offs[1:])

    def e2e_decompress() -> np.ndarray:
        d_flat = cupy.asarray(flat_host)
        items = [nvcomp.as_array(d_flat[int(o):int(o + s)]) for o, s in zip(offs, lens)]
        out = codec.decode(items, data_type="|u1")
        pages_out = cupy.concatenate([cupy.asarray(o).view(cupy.uint8).ravel() for o in out])
        return cupy.asnumpy(pages_out).reshape(n, PAGE_SIZE)

    e2e_ok = bool(np.array_equal(e2e_decompress(), pages))
    import cupyx

    pinned = cupyx.empty_pinned(pages.shape, np.uint8)
    pinned[:] = pages
    t = {k: [] for k in ("kc", "kd", "ec", "ec_pinned", "uc", "ed", "lz4_c")}
    for _ in range(repeat):
        t["lz4_c"].append(base.run_compress())
        t["kc"].append(timed(encode)[0])
        t["kd"].append(timed(decode)[0])
        t["ec"].append(timed(lambda: e2e_compress(pages))[0])
        t["ec_pinned"].append(timed(lambda: e2e_compress(pinned))[0])
        t["uc"].append(timed(lambda: upload_compress(pages))[0])
        t["ed"].append(timed(e2e_decompress)[0])
    med = {k: statistics.median(v) for k, v in t.items()}
    stored = int(np.where(sizes < PAGE_SIZE, sizes, PAGE_SIZE).sum())
    return {
        "available": True,
        "version": getattr(nvcomp, "__version__", "?"),
        "cuda_version": getattr(nvcomp, "__cuda_version__", "?"),
        "pages": n,
        "ratio": n * PAGE_SIZE / stored,
        "lz4_ratio": base.ratio,
        "lz4_decodes_nvcomp_output": lz4_ok,
        "decodes_ok": bool(dec_ok and e2e_ok),
        "compress_kernel_pages_s": n / med["kc"],
        "decompress_kernel_pages_s": n / med["kd"],
        "compress_e2e_pages_s": n / med["ec"],
        "compress_e2e_pinned_pages_s": n / med["ec_pinned"],
        "compress_upload_only_pages_s": n / med["uc"],
        "decompress_e2e_pages_s": n / med["ed"],
        "lz4_compress_pages_s": n / med["lz4_c"],
        "samples_s": t,
    }


def nvcomp_rows(pages: np.ndarray, base: Lz4Baseline, repeat: int, mode: str) -> dict[str, Any]:
    """nvCOMP's rows, or why there are none."""
    if mode == "off":
        return {"available": False, "reason": "--nvcomp off"}
    nvcomp, cupy, why = import_nvcomp()
    if why:
        return {"available": False, "reason": why}
    try:
        res = measure_nvcomp(nvcomp, cupy, pages, base, repeat)
        res["copy_bandwidth"] = cupy_copy_bandwidth(cupy, 256)
        return res
    except Exception as exc:  # noqa: BLE001 -- an API mismatch must not lose lz4-opencl's rows
        return {"available": False,
                "reason": f"nvCOMP imported but failed: {type(exc).__name__}: {exc}"}


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
        "call, host memory in and host memory out (transfers included); *kernel* = OpenCL "
        "profiling events only",
        "",
        "## Batch sizes (the tuned configuration, batch size varied)",
        "",
        "| batch | lz4 comp p/s | ocl e2e p/s (GB/s) | × lz4 | per-call p/s (× lz4) | kernel p/s (GB/s) "
        "| CPU µs/page ocl / lz4 | ratio ocl / lz4 | identical | lz4 decomp p/s "
        "| ocl decomp e2e p/s (× lz4) | decomp kernel p/s | decomp CPU µs/page ocl / lz4 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["batch_sizes"]:
        per_call = (
            f"{r['compress_per_call_pages_s']:,.0f} ({r['speedup_per_call_vs_lz4']:.2f}×)"
            if "compress_per_call_pages_s" in r
            else "= e2e"
        )
        lines.append(
            f"| {r['config']['batch_size']} | {r['lz4_compress_pages_s']:,.0f} "
            f"| {r['compress_e2e_pages_s']:,.0f} ({r['compress_e2e_gbps']:.2f}) "
            f"| **{r['speedup_e2e_vs_lz4']:.2f}×** | {per_call} "
            f"| {r['compress_kernel_pages_s']:,.0f} ({r['compress_kernel_gbps']:.2f}) "
            f"| {r['compress_cpu_us_per_page']:.2f} / {r['lz4_compress_cpu_us_per_page']:.2f} "
            f"| {r['ratio']:.3f} / {r['lz4_ratio']:.3f} | {r['identical_to_lz4']}/{r['pages']} "
            f"| {r['lz4_decompress_pages_s']:,.0f} "
            f"| {r['decompress_e2e_pages_s']:,.0f} (**{r['speedup_decompress_e2e_vs_lz4']:.2f}×**) "
            f"| {r['decompress_kernel_pages_s']:,.0f} "
            f"| {r['decompress_cpu_us_per_page']:.2f} / {r['lz4_decompress_cpu_us_per_page']:.2f} |"
        )
    t = report.get("tuner") or {}
    if t:
        lines += ["", "## The tuner's choice on this device", "",
                  f"`{t.get('describe', '')}`", ""]
        if t.get("table_md"):
            lines += [t["table_md"], ""]
    if report.get("tuning"):
        lines += [
            "",
            "## Kernel configurations (one batch size, --tune)",
            "",
            "| layout | local size | hash_log | batch | kernel p/s | e2e p/s | × lz4 (e2e) | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["tuning"]:
            c = r["config"]
            lines.append(
                f"| {c['layout']} | {c['local_size']} | {c['hash_log']} | {c['batch_size']} "
                f"| {r['compress_kernel_pages_s']:,.0f} | {r['compress_e2e_pages_s']:,.0f} "
                f"| {r['speedup_e2e_vs_lz4']:.2f}× | {r['ratio']:.3f} |"
            )
    nv = report.get("nvcomp") or {}
    lines += ["", "## nvCOMP LZ4 on the same pages", ""]
    if nv.get("available"):
        s = report["summary"]
        lines += [
            f"nvCOMP {nv['version']} (CUDA {nv['cuda_version']}), raw LZ4 blocks, one page per "
            f"chunk; decodes exactly: {nv['decodes_ok']}; lz4.block decodes its output: "
            f"{nv['lz4_decodes_nvcomp_output']}",
            "",
            "| | compress kernel p/s | compress e2e p/s (pageable / pinned) | upload + compress, "
            "outputs left on the GPU | decompress kernel p/s | decompress e2e p/s | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| nvCOMP | {nv['compress_kernel_pages_s']:,.0f} | {nv['compress_e2e_pages_s']:,.0f} / "
            f"{nv['compress_e2e_pinned_pages_s']:,.0f} | {nv['compress_upload_only_pages_s']:,.0f} "
            f"| {nv['decompress_kernel_pages_s']:,.0f} "
            f"| {nv['decompress_e2e_pages_s']:,.0f} | {nv['ratio']:.3f} |",
            f"| lz4-opencl (batch {s['batch_size']}) | {s['compress_kernel_pages_s']:,.0f} "
            f"| {s['compress_e2e_pages_s']:,.0f} | | {s['decompress_kernel_pages_s']:,.0f} "
            f"| {s['decompress_e2e_pages_s']:,.0f} | {s['ratio']:.3f} |",
            f"| lz4-opencl / nvCOMP | {s['vs_nvcomp']['compress_kernel']:.2f}× "
            f"| {s['vs_nvcomp']['compress_e2e']:.2f}× | | {s['vs_nvcomp']['decompress_kernel']:.2f}× "
            f"| {s['vs_nvcomp']['decompress_e2e']:.2f}× | |",
        ]
    else:
        lines.append(f"No nvCOMP rows: {nv.get('reason', 'not run')}.")
    bws = [b for b in (report.get("copy_bandwidth"), nv.get("copy_bandwidth")) if b]
    if bws:
        lines += ["", "## Copy bandwidth (GB/s)", "",
                  "| API | H2D pinned | D2H pinned | H2D pageable | D2H pageable |",
                  "|---|---:|---:|---:|---:|"]
        for b in bws:
            if "error" in b:
                lines.append(f"| {b['api']} | {b['error']} | | | |")
            else:
                lines.append(f"| {b['api']} | {b['h2d_pinned_gbps']:.1f} | {b['d2h_pinned_gbps']:.1f} "
                             f"| {b['h2d_pageable_gbps']:.1f} | {b['d2h_pageable_gbps']:.1f} |")
    s = report["summary"]
    lines += [
        "",
        "## Summary",
        "",
        f"- batch size {s['batch_size']} (config: {s['config_source']}): lz4-opencl compress end "
        f"to end **{s['speedup_e2e_vs_lz4']:.2f}×** single-threaded python-lz4 (kernel only "
        f"{s['speedup_kernel_vs_lz4']:.2f}×), decompress end to end "
        f"**{s['speedup_decompress_e2e_vs_lz4']:.2f}×**; ratio {s['ratio']:.3f} vs "
        f"{s['lz4_ratio']:.3f} ({s['ratio_vs_lz4_percent']:+.2f}%)",
        f"- CPU per page (all threads): compress {s['compress_cpu_us_per_page']:.2f} µs vs "
        f"python-lz4 {s['lz4_compress_cpu_us_per_page']:.2f}; decompress "
        f"{s['decompress_cpu_us_per_page']:.2f} vs {s['lz4_decompress_cpu_us_per_page']:.2f}. "
        f"Cores the process obtained while compressing (CPU s / wall s): lz4-opencl "
        f"{s['compress_cores_obtained']:.2f} of {report['environment']['cpus']}, python-lz4 "
        f"{s['lz4_compress_cores_obtained']:.2f} of 1",
        f"- issue 12's CPU targets (compress ≥ 1.3×, decompress ≥ 1.0×, ratio within 2%): "
        f"**{s['meets_cpu_targets']}**",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="1024,4096,16384",
                    help="comma-separated device batch sizes (default %(default)s)")
    ap.add_argument("--target-batch", type=int, default=0,
                    help="batch size the summary is taken at (default: the tuned one, when "
                         "measured, else the largest)")
    ap.add_argument("--pages", type=int, default=None,
                    help="at least this many pages (whole copies of the corpus; default: the "
                         "corpus, repeated until it holds the largest batch size)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved repetitions (median kept)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--device-type", default="any")
    ap.add_argument("--platform", default="")
    ap.add_argument("--no-per-call", action="store_true", help="skip the one-call-per-batch runs")
    ap.add_argument("--tune", action="store_true",
                    help="also compare layouts / work-group sizes / hash sizes at the target batch")
    ap.add_argument("--nvcomp", choices=("auto", "off"), default="auto",
                    help="nvCOMP LZ4 rows where nvidia.nvcomp and cupy import (default auto)")
    ap.add_argument("--copy-mib", type=int, default=0,
                    help="MiB per copy-bandwidth transfer (default 256 on a GPU, 64 elsewhere)")
    ap.add_argument("--out", type=Path, default=None, help="output path without extension")
    args = ap.parse_args(argv)

    sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    pages, winfo = workload(max(sizes) if args.pages is None else args.pages)
    common = {"device": args.device, "device_type": args.device_type, "platform": args.platform}
    probe = get_backend("lz4-opencl", **common)  # the tuned choice: measured now if not cached
    dinfo = probe.device_info
    tuned = probe.config
    from hwzswap.backends.opencl import tuning

    cached = tuning.load_cached(tuning.cache_key(probe._platform, probe._device))  # noqa: SLF001
    tuner = {
        "describe": probe.describe(),
        "config": tuned,
        "source": probe.tuning["source"],
        "table_md": tuning.format_table(cached) if cached else "",
        "result": cached.to_dict() if cached else None,
    }
    probe.close()
    target_b = args.target_batch or (tuned["batch_size"] if tuned["batch_size"] in sizes
                                     else max(sizes))
    if target_b not in sizes:
        sizes.append(target_b)

    load_before = os.getloadavg()
    print(f"device: {dinfo['name']} ({dinfo['type']}); {winfo['pages']} pages; tuned: {tuned}",
          file=sys.stderr)
    base = Lz4Baseline(pages)
    results = []
    for B in sizes:
        r = measure_config(pages, base, {**common, "batch_size": B}, args.repeat,
                           per_call=not args.no_per_call)
        results.append(r)
        print(
            f"batch {B:6d}: lz4 {r['lz4_compress_pages_s']:9,.0f} p/s | ocl e2e "
            f"{r['compress_e2e_pages_s']:9,.0f} p/s ({r['speedup_e2e_vs_lz4']:.2f}x) kernel "
            f"{r['compress_kernel_pages_s']:9,.0f} p/s | ratio {r['ratio']:.3f} vs "
            f"{r['lz4_ratio']:.3f} | decomp e2e {r['decompress_e2e_pages_s']:9,.0f} p/s "
            f"({r['speedup_decompress_e2e_vs_lz4']:.2f}x)",
            file=sys.stderr,
        )

    grid = []
    if args.tune:
        g = tuning.grid_for(dinfo["type"])
        for cfg in g.compress:
            r = measure_config(pages, base, {**common, **cfg, "batch_size": target_b},
                               max(3, args.repeat // 2), per_call=False)
            grid.append(r)
            print(f"tune {cfg}: kernel {r['compress_kernel_pages_s']:9,.0f} p/s e2e "
                  f"{r['compress_e2e_pages_s']:9,.0f} ({r['speedup_e2e_vs_lz4']:.2f}x) ratio "
                  f"{r['ratio']:.3f}", file=sys.stderr)
    nv = nvcomp_rows(pages, base, args.repeat, args.nvcomp)
    print(f"nvCOMP: {nv.get('reason') or 'measured'}", file=sys.stderr)
    copy_mib = args.copy_mib or (256 if dinfo["type"] == "gpu" else 64)
    bw = opencl_copy_bandwidth(common, copy_mib)
    load_after = os.getloadavg()

    target = next(r for r in results if r["config"]["batch_size"] == target_b)
    ratio_delta = (target["ratio"] / target["lz4_ratio"] - 1) * 100
    import pyopencl

    summary: dict[str, Any] = {
        "batch_size": target_b,
        "config": target["config"],
        "config_source": target["config_source"],
        "speedup_e2e_vs_lz4": target["speedup_e2e_vs_lz4"],
        "speedup_kernel_vs_lz4": target["speedup_kernel_vs_lz4"],
        "speedup_decompress_e2e_vs_lz4": target["speedup_decompress_e2e_vs_lz4"],
        "compress_e2e_pages_s": target["compress_e2e_pages_s"],
        "compress_kernel_pages_s": target["compress_kernel_pages_s"],
        "decompress_e2e_pages_s": target["decompress_e2e_pages_s"],
        "decompress_kernel_pages_s": target["decompress_kernel_pages_s"],
        "ratio": target["ratio"],
        "lz4_ratio": target["lz4_ratio"],
        "ratio_vs_lz4_percent": ratio_delta,
        "decodes_ok": target["decodes_ok"] and target["lz4_decodes_device_output"],
        "compress_cpu_us_per_page": target["compress_cpu_us_per_page"],
        "lz4_compress_cpu_us_per_page": target["lz4_compress_cpu_us_per_page"],
        "decompress_cpu_us_per_page": target["decompress_cpu_us_per_page"],
        "lz4_decompress_cpu_us_per_page": target["lz4_decompress_cpu_us_per_page"],
        "compress_cores_obtained": target["compress_cores_obtained"],
        "lz4_compress_cores_obtained": target["lz4_compress_cores_obtained"],
        "meets_cpu_targets": bool(target["speedup_e2e_vs_lz4"] >= 1.3
                                  and target["speedup_decompress_e2e_vs_lz4"] >= 1.0
                                  and abs(ratio_delta) <= 2),
    }
    if nv.get("available"):
        summary["vs_nvcomp"] = {
            "compress_kernel": target["compress_kernel_pages_s"] / nv["compress_kernel_pages_s"],
            "compress_e2e": target["compress_e2e_pages_s"] / nv["compress_e2e_pages_s"],
            "decompress_kernel": target["decompress_kernel_pages_s"] / nv["decompress_kernel_pages_s"],
            "decompress_e2e": target["decompress_e2e_pages_s"] / nv["decompress_e2e_pages_s"],
        }
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
            "pocl_env": {k: v for k, v in os.environ.items()
                         if k.startswith(("POCL_", "PYOPENCL_", "OCL_ICD", "HWZSWAP_"))},
        },
        "workload": winfo,
        "tuner": tuner,
        "batch_sizes": results,
        "tuning": grid,
        "nvcomp": nv,
        "copy_bandwidth": bw,
        "summary": summary,
    }
    pocl = "Portable Computing" in dinfo["platform"]
    tag = "pocl_cpu" if pocl else f"{dinfo['type']}_{slug(dinfo['name'])}"
    out = args.out or ROOT / "benchmarks" / "results" / f"opencl_{tag}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_markdown(out.with_suffix(".md"), report)
    print(f"wrote {out.with_suffix('.json')} and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
