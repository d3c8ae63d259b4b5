#!/usr/bin/env python3
"""Re-run the benchmark suite and refresh ``benchmarks/results/`` and the README's tables.

1. ``hwzswap bench`` on the bundled corpus with every available backend, once per workload
   (roundtrip, pressure, mixed) with the kernel's default structure (reclaim passes of 32
   folios, readahead clusters of 8, the default folio mix), each backend in several engine
   modes (``--modes``; roundtrip: page, folio, reclaim, async):
   ``results/bench_<workload>.json``, ``.png`` and ``.md``; then roundtrip once more for
   ``lz4`` alone (``--target-repeat`` passes, the engine's default mode) for issue 11's
   framework-cost target (``results/bench_roundtrip_lz4.*``); the engine modes side by side
   (``results/engine_modes.md``) and the issue-11 target figures from these runs
   (``results/issue11_targets.md``); then ``stack_layers.py`` (lz4's
   store/load path, layer by layer);
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
#: Engine modes per workload (zswap.batching): every design on roundtrip, the main ones beside.
MODES = {"roundtrip": "page,folio,reclaim,async", "pressure": "page,reclaim,async",
         "mixed": "reclaim,async"}


#: Seconds one step may run before it is stopped (a hung engine must not stop the suite).
STEP_TIMEOUT = 1800.0


def _set_step_timeout(seconds: float) -> None:
    global STEP_TIMEOUT
    STEP_TIMEOUT = seconds


def _run(label: str, argv: list[str]) -> tuple[str, int, float]:
    print(f"\n=== {label}: {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT)
    try:
        rc = proc.wait(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print(f"=== {label}: stopped after {STEP_TIMEOUT:.0f} s", flush=True)
        rc = 124
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


def _pick(doc: dict, backend: str, mode: str) -> dict | None:
    for r in doc.get("results", []):
        if r["backend"] == backend and r.get("batching") == mode:
            return r
    return None


def write_targets(main_json: Path, lz4_json: Path, out: Path,
                  host_clock_json: Path | None = None) -> bool:
    """Issue 11's benchmark targets, each a ratio measured in one run, as a Markdown table.
    ``host_clock_json``: 842-nx on the host clock, for the overlap row (the main run's
    virtual clock cannot show overlap: host work takes no model time there)."""
    import json

    if not main_json.exists():
        return False
    doc = json.loads(main_json.read_text(encoding="utf-8"))
    lz4doc = json.loads(lz4_json.read_text(encoding="utf-8")) if lz4_json.exists() else None
    st = doc["workload"].get("structure", {})
    lines = [
        "**Issue 11 targets** (workload roundtrip, "
        f"{doc['workload']['pages']} pages, reclaim {st.get('reclaim_batch')} folios, "
        f"readahead {st.get('load_batch')}, folio mix {st.get('folio_mix')}; "
        f"measured {doc.get('created')}, commit {doc['machine']['hwzswap'].get('git_commit')}, "
        f"on {doc['machine']['cpu']}, {doc['machine']['cores']} cores)",
        "",
        "| target | measured | met | from |",
        "|---|---|---|---|",
    ]

    def row(target: str, measured: str, ok: bool | None, src: str) -> None:
        lines.append(f"| {target} | {measured} | "
                     f"{'yes' if ok else 'no' if ok is not None else 'see figures'} | {src} |")

    if lz4doc is not None and lz4doc["results"]:
        r = lz4doc["results"][0]
        sp = r.get("spread", {})
        row("lz4 stack store ≥ 0.90× raw codec (default structure, "
            f"{r.get('batching')} mode)",
            f"{r['store_vs_raw']:.3f}× (passes {sp.get('store_vs_raw')})",
            r["store_vs_raw"] >= 0.90, lz4_json.name)
        row("lz4 stack load ≥ 0.80× raw codec",
            f"{r['load_vs_raw']:.3f}× (passes {sp.get('load_vs_raw')})",
            (r["load_vs_raw"] or 0) >= 0.80, lz4_json.name)
    ocl, lz4p = _pick(doc, "lz4-opencl", "async"), _pick(doc, "lz4", "page")
    if ocl and lz4p:
        x = ocl["store_pages_per_s"] / lz4p["store_pages_per_s"]
        row("lz4-opencl async ≥ 1.0× lz4 page mode, store throughput",
            f"{x:.2f}× ({ocl['store_pages_per_s']:.0f} vs {lz4p['store_pages_per_s']:.0f} "
            "pages/s)", x >= 1.0, main_json.name)
    hdoc = (json.loads(host_clock_json.read_text(encoding="utf-8"))
            if host_clock_json is not None and host_clock_json.exists() else None)
    # Host CPU: on the host clock, where the device works beside the host as a real one does
    # (on the default virtual clock host work takes no model time, so the async engine waits
    # for every completion on its own: given too, from the main run)
    for cdoc, src, clock in ((hdoc, host_clock_json, "host"), (doc, main_json, "virtual")):
        if cdoc is None or src is None:
            continue
        nx, lz4a = _pick(cdoc, "842-nx", "async"), _pick(cdoc, "lz4", "async")
        lz4r = lz4a or _pick(cdoc, "lz4", "reclaim")
        if not (nx and lz4r):
            continue
        a, b = nx.get("host_cpu_us_per_stored_page"), lz4r.get("host_cpu_us_per_stored_page")
        if a is not None and b is not None:
            row(f"842-nx async host CPU per stored page < lz4's ({lz4r['batching']} mode), "
                f"842-nx on the {clock} clock (async/{nx.get('async_submit')})",
                f"{a:.2f} vs {b:.2f} µs (the emulated device's own work excluded: "
                f"{nx.get('emulation_us_per_page')} µs per page moved)", a < b, src.name)
    if hdoc is not None:
        words = []
        for mode in ("page", "reclaim", "async"):
            r = _pick(hdoc, "842-nx", mode)
            if r and r.get("device_overlap"):
                words.append(f"{mode}: {_hidden_words(r['device_overlap'])}")
        a = _pick(hdoc, "842-nx", "async")
        p = _pick(hdoc, "842-nx", "page")
        shares = [(r or {}).get("device_overlap", {}).get("hidden_share") for r in (a, p)]
        shown = None if None in shares else shares[0] >= shares[1] + 0.25
        row("842-nx async: modelled device time overlaps host work (host clock; hidden = "
            "1 − exposed / busy union; shown here when async hides ≥ 25 points more than "
            "page mode)", "; ".join(words) or "no overlap figure", shown, host_clock_json.name)
        wpath = host_clock_json.with_name(host_clock_json.stem + "_worker.json")
        w = (_pick(json.loads(wpath.read_text(encoding="utf-8")), "842-nx", "async")
             if wpath.exists() else None)
        if a and w:
            parts = [f"{r.get('async_submit')}: store {r['store_pages_per_s']:.0f} pages/s, "
                     f"host CPU {r.get('host_cpu_us_per_stored_page')} µs per stored page, "
                     f"{_share(r)} hidden" for r in (a, w)]
            row("842-nx async, its two designs on the host clock (queue: ops the storing "
                "thread submits to the device's queue; worker: batch calls on a thread)",
                "; ".join(parts), None, f"{host_clock_json.name}, {wpath.name}")
    vpath = main_json.with_name("nx842_async_worker.json")
    vdoc = json.loads(vpath.read_text(encoding="utf-8")) if vpath.exists() else None
    q = _pick(doc, "842-nx", "async")
    w = _pick(vdoc, "842-nx", "async") if vdoc else None
    lw = _pick(vdoc, "lz4", "async") if vdoc else None
    if q and w:
        parts = [f"{r.get('async_submit')}: store {r['store_pages_per_s']:.0f} pages/s "
                 f"({r['store_vs_raw']:.2f} of the codec alone), host CPU "
                 f"{r.get('host_cpu_us_per_stored_page')} µs per stored page" for r in (q, w)]
        if lw:
            parts.append(f"lz4 async beside the worker run: host CPU "
                         f"{lw.get('host_cpu_us_per_stored_page')} µs per stored page")
        row("842-nx async, its two designs on the default virtual clock (no host time: the "
            "queue design waits for the device completion by completion)",
            "; ".join(parts), None, f"{main_json.name}, {vpath.name}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


def _share(r: dict) -> str:
    """A row's hidden share as a percentage, or n/a."""
    share = (r.get("device_overlap") or {}).get("hidden_share")
    return "n/a" if share is None else f"{share:.0%}"


def _hidden_words(ov: dict) -> str:
    """A row's ``device_overlap`` in words; its note when the share is not valid (a device
    that timed out, or a realtime clock: ``hidden_share`` is null then)."""
    if ov.get("hidden_share") is None:
        return f"no hidden share ({ov.get('note') or 'not measured'})"
    union = ov.get("busy_union_us_per_page", ov["busy_us_per_page"])
    return (f"{ov['hidden_share']:.0%} hidden of {union} µs/page device busy (union over "
            f"engines; exposed {ov.get('exposed_us_per_page')}, of it parked "
            f"{ov.get('exposed_parked_us_per_page')}; engine parallelism "
            f"{ov.get('engine_parallelism')})")


def write_modes_summary(main_json: Path, out: Path) -> bool:
    """One row per backend: store throughput in each engine mode (and its share of the codec
    alone), the best mode against v9's page mode, loads, host CPU per stored page."""
    import json

    if not main_json.exists():
        return False
    doc = json.loads(main_json.read_text(encoding="utf-8"))
    modes = doc.get("batching") or []
    if len(modes) < 2:
        return False

    def rate(v: float | None) -> str:
        if not v:
            return "-"
        return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.0f}"

    by: dict[str, dict[str, dict]] = {}
    for r in doc["results"]:
        by.setdefault(r["backend"], {})[r["batching"]] = r
    head = (["backend"] + [f"store pg/s, {m}" for m in modes]
            + ["best ÷ page (by the share of the codec)", "load pg/s (best mode, by the share)",
               "CPU µs / stored page, page → best"])
    lines = [
        f"Store throughput through the whole stack in each engine mode (in brackets: the share "
        f"of the codec alone on the same pages, same run). Measured {doc.get('created')}, "
        f"commit {doc['machine']['hwzswap'].get('git_commit')}, {doc['machine']['cpu']}, "
        f"{doc['machine']['cores']} cores; from `{main_json.name}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for backend, rs in by.items():
        cells = [backend]
        for m in modes:
            r = rs.get(m)
            cells.append(f"{rate(r['store_pages_per_s'])} ({r['store_vs_raw']:.2f})" if r else "-")
        # modes compared by their same-run share of the codec alone, as the report does:
        # pages/s drift between modes run one after another
        best_m, best = max(rs.items(), key=lambda kv: kv[1]["store_vs_raw"] or 0)
        page = rs.get("page")
        cells.append(f"{best['store_vs_raw'] / page['store_vs_raw']:.2f}× ({best_m})"
                     if page and page["store_vs_raw"] and best["store_vs_raw"] else "-")
        lm, lr = max(rs.items(), key=lambda kv: kv[1]["load_vs_raw"] or 0)
        cells.append(f"{rate(lr['load_pages_per_s'])} ({lm})")
        a = page.get("host_cpu_us_per_stored_page") if page else None
        b = best.get("host_cpu_us_per_stored_page")
        cells.append(f"{a:.1f} → {b:.1f}" if a is not None and b is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("main", "extra", "all"), default="all",
                    help="main: the cross-backend bench (every workload), issue 11's lz4 run and "
                         "stack_layers.py; extra: the focused scripts only")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="workloads for the main bench (default: all three)")
    ap.add_argument("--backends", default=None, help="passed to hwzswap bench (default: all)")
    ap.add_argument("--pages", type=int, default=None, help="passed to hwzswap bench")
    ap.add_argument("--repeat", type=int, default=3, help="passed to hwzswap bench")
    ap.add_argument("--modes", default=None,
                    help="engine modes for every workload (default: per workload, see MODES)")
    ap.add_argument("--target-repeat", type=int, default=5,
                    help="passes of the lz4-only roundtrip run for issue 11's target")
    ap.add_argument("--no-readme", action="store_true", help="leave benchmarks/README.md alone")
    ap.add_argument("--step-timeout", type=float, default=STEP_TIMEOUT,
                    help="seconds a step may run before it is stopped (default %(default)s)")
    args = ap.parse_args(argv)
    _set_step_timeout(args.step_timeout)

    os.environ.setdefault("POCL_CACHE_DIR", str(ROOT / ".pocl-cache"))
    Path(os.environ["POCL_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    workloads = [w for w in args.workloads.split(",") if w]
    steps: list[tuple[str, int, float]] = []

    if args.only in ("main", "all"):
        def bench(out: Path, *extra: str, repeat: int = args.repeat,
                  backends: str | None = args.backends) -> list[str]:
            cmd = [py, "-m", "hwzswap", "bench", *extra, "--repeat", str(repeat),
                   "--json", f"{out}.json", "--plot", f"{out}.png", "--markdown", f"{out}.md"]
            if backends:
                cmd += ["--backends", backends]
            if args.pages:
                cmd += ["--pages", str(args.pages)]
            return cmd

        for w in workloads:
            modes = args.modes or MODES.get(w, "reclaim")
            steps.append(_run(f"bench {w}", bench(RESULTS / f"bench_{w}", "--workload", w,
                                                  "--batching", modes)))
        if "roundtrip" in workloads:
            # issue 11's framework-cost target: lz4 alone, more passes, the default mode
            steps.append(_run("bench roundtrip lz4",
                              bench(RESULTS / "bench_roundtrip_lz4", "--workload", "roundtrip",
                                    repeat=args.target_repeat, backends="lz4")))
            # issue 11's overlap target: 842-nx on the host clock (the virtual clock cannot
            # show overlap: host work takes no model time there)
            # (lz4 beside it: the host CPU target compares the two in one run)
            steps.append(_run("bench 842-nx host clock",
                              bench(RESULTS / "nx842_host_clock", "--workload", "roundtrip",
                                    "--config", str(BENCH / "842-nx-host-clock.yaml"),
                                    "--batching", "page,reclaim,async",
                                    backends="lz4,842-nx")))
            # 842-nx's other async design on the default clock (lz4 beside it, one run)
            steps.append(_run("bench 842-nx async worker",
                              bench(RESULTS / "nx842_async_worker", "--workload", "roundtrip",
                                    "--config", str(BENCH / "async-worker.yaml"),
                                    "--batching", "async", backends="lz4,842-nx")))
            # async mode's other design beside it (the worker's batch calls)
            steps.append(_run("bench 842-nx host clock, async worker",
                              bench(RESULTS / "nx842_host_clock_worker", "--workload",
                                    "roundtrip", "--config",
                                    str(BENCH / "842-nx-host-clock-worker.yaml"),
                                    "--batching", "async", backends="842-nx")))
            if write_modes_summary(RESULTS / "bench_roundtrip.json",
                                   RESULTS / "engine_modes.md"):
                print("\nwrote results/engine_modes.md")
            if write_targets(RESULTS / "bench_roundtrip.json",
                             RESULTS / "bench_roundtrip_lz4.json",
                             RESULTS / "issue11_targets.md",
                             RESULTS / "nx842_host_clock.json"):
                print("\nwrote results/issue11_targets.md")
        # where the lz4 store/load time goes, layer by layer
        steps.append(_run("stack_layers.py", [py, str(BENCH / "stack_layers.py")]))
        blocks = {w: RESULTS / f"bench_{w}.md" for w in workloads}
        blocks["issue11_targets"] = RESULTS / "issue11_targets.md"
        blocks["engine_modes"] = RESULTS / "engine_modes.md"
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
