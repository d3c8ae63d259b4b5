#!/usr/bin/env python3
"""Re-run the benchmark suite and refresh ``benchmarks/results/`` and the README's tables.

1. ``hwzswap bench`` on the bundled corpus with every available backend, once per workload
   (roundtrip, pressure, mixed): ``results/bench_<workload>.json``, ``.png`` and ``.md``, and
   roundtrip once more with its loads in readahead batches of 32
   (``results/bench_roundtrip_readahead32.*``);
   then ``stack_layers.py`` (lz4's store/load path, layer by layer);
2. the focused benchmarks beside this script, when present: ``pool_bench.py`` (pool density
   and cost), ``bench_842.py`` (842 codec and NX-842 emulation), ``bench_opencl.py``
   (lz4-opencl against python-lz4), ``bench_store_path.py`` (zswap's store/load path step by
   step), each with its own defaults and outputs;
3. the tables between the ``<!-- bench:NAME -->`` markers of ``benchmarks/README.md``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run_all.py                 # everything (a few minutes)
    .venv/bin/python benchmarks/run_all.py --only main     # just the cross-backend bench
    .venv/bin/python benchmarks/run_all.py --workloads roundtrip --backends lz4,zstd

Each step runs in its own process (a crash in one does not stop the others); the exit status
is non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
EXTRA_SCRIPTS = ("pool_bench.py", "bench_842.py", "bench_opencl.py", "bench_store_path.py")
WORKLOADS = ("roundtrip", "pressure", "mixed")
READAHEAD = 32  # load batch of the extra roundtrip run (swap-in readahead)


def _run(label: str, argv: list[str]) -> tuple[str, int, float]:
    print(f"\n=== {label}: {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(argv, cwd=ROOT)
    return label, rc, time.perf_counter() - t0


def update_readme(readme: Path, blocks: dict[str, Path]) -> bool:
    """Replace each ``<!-- bench:NAME -->...<!-- /bench:NAME -->`` block with its Markdown."""
    if not readme.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    changed = False
    for w, md in blocks.items():
        if not md.exists():
            continue
        block = f"<!-- bench:{w} -->\n{md.read_text(encoding='utf-8').strip()}\n<!-- /bench:{w} -->"
        pattern = re.compile(rf"<!-- bench:{w} -->.*?<!-- /bench:{w} -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
            changed = True
    if changed:
        readme.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("main", "extra", "all"), default="all",
                    help="main: the cross-backend bench only; extra: the focused scripts only")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="workloads for the main bench (default: all three)")
    ap.add_argument("--backends", default=None, help="passed to hwzswap bench (default: all)")
    ap.add_argument("--pages", type=int, default=None, help="passed to hwzswap bench")
    ap.add_argument("--repeat", type=int, default=3, help="passed to hwzswap bench")
    ap.add_argument("--no-readme", action="store_true", help="leave benchmarks/README.md alone")
    args = ap.parse_args(argv)

    os.environ.setdefault("POCL_CACHE_DIR", str(ROOT / ".pocl-cache"))
    Path(os.environ["POCL_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    workloads = [w for w in args.workloads.split(",") if w]
    steps: list[tuple[str, int, float]] = []

    if args.only in ("main", "all"):
        def bench(out: Path, *extra: str) -> list[str]:
            cmd = [py, "-m", "hwzswap", "bench", *extra, "--repeat", str(args.repeat),
                   "--json", f"{out}.json", "--plot", f"{out}.png", "--markdown", f"{out}.md"]
            if args.backends:
                cmd += ["--backends", args.backends]
            if args.pages:
                cmd += ["--pages", str(args.pages)]
            return cmd

        for w in workloads:
            steps.append(_run(f"bench {w}", bench(RESULTS / f"bench_{w}", "--workload", w)))
        if "roundtrip" in workloads:
            # the same stream with swap-in readahead: loads 32 pages a call (swap_in_batch)
            out = RESULTS / f"bench_roundtrip_readahead{READAHEAD}"
            steps.append(_run(f"bench roundtrip, readahead {READAHEAD}",
                              bench(out, "--workload", "roundtrip", "--load-batch", str(READAHEAD))))
        # where the lz4 store/load time goes, layer by layer
        steps.append(_run("stack_layers.py", [py, str(BENCH / "stack_layers.py")]))
        blocks = {w: RESULTS / f"bench_{w}.md" for w in workloads}
        blocks["stack_layers"] = RESULTS / "stack_layers_lz4.md"
        if not args.no_readme and update_readme(BENCH / "README.md", blocks):
            print("\nupdated benchmarks/README.md")

    if args.only in ("extra", "all"):
        for script in EXTRA_SCRIPTS:
            path = BENCH / script
            if path.exists():
                steps.append(_run(script, [py, str(path)]))
            else:
                print(f"\n=== {script}: not present, skipped")

    print("\nsummary:")
    for label, rc, secs in steps:
        print(f"  {'ok  ' if rc == 0 else f'FAIL ({rc})'} {label:<22} {secs:6.1f} s")
    return 0 if all(rc == 0 for _, rc, _ in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
