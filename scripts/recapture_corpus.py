#!/usr/bin/env python3
"""Re-create the bundled page corpus (hwzswap/data/corpus/) with ``hwzswap capture``.

Each source is a real program run by ``hwzswap capture`` and paused mid-work; its present
private anonymous pages (thinned evenly to --pages) become ``<source>.pages.zst``. The capture
reports, program versions and commands go to ``sources.yaml``, and the README table is then
regenerated from the files (``python -m hwzswap.bench.corpus --readme -o
hwzswap/data/corpus/README.md``).

Needs Linux, gcc, node and sqlite3 on PATH, and numpy in this Python.

    .venv/bin/python scripts/recapture_corpus.py [--only gcc,node] [--pages 2048]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "scripts" / "corpus_programs"
CORPUS = REPO / "hwzswap" / "data" / "corpus"


@dataclass
class Source:
    name: str
    description: str
    argv: list[str]  # run in the work directory
    display: str  # the command as documented (paths shortened)
    capture: list[str]  # hwzswap capture options (besides -o, --max-pages, --report)
    version: list[str]  # command printing the program's version


def sources(work: Path) -> list[Source]:
    py = sys.executable
    return [
        Source(
            "python",
            "CPython building records (dicts of str/int/float, lists, sets, a word index, JSON "
            "strings) and numpy arrays (int counters, rounded float readings, a small-int matrix).",
            [py, str(PROGRAMS / "python_objects.py")],
            "python scripts/corpus_programs/python_objects.py",
            ["--wait-rss-mb", "150"],
            [py, "-c", "import sys, numpy; print('Python', sys.version.split()[0], "
             "'numpy', numpy.__version__)"],
        ),
        Source(
            "gcc",
            "gcc -O2 compiling a generated 1.7 MB C file of 1500 functions with loops and switches; "
            "the driver and cc1 are captured (--children), paused mid-compile at 330 MB RSS "
            "(the whole compile takes about 50 s and peaks near 410 MB on a 2-core VM).",
            ["gcc", "-O2", "-c", "big.c", "-o", "/dev/null"],
            "gcc -O2 -c big.c -o /dev/null  (big.c: scripts/corpus_programs/gen_big_c.py big.c 1500)",
            ["--children", "--wait-rss-mb", "330", "--timeout", "300"],
            ["gcc", "--version"],
        ),
        Source(
            "node",
            "Node.js building user objects with nested objects and arrays, Maps, event records, "
            "log strings and JSON, and Float64Array/Int32Array vectors.",
            ["node", str(PROGRAMS / "node_objects.js")],
            "node scripts/corpus_programs/node_objects.js",
            ["--wait-rss-mb", "250"],
            ["node", "--version"],
        ),
        Source(
            "sqlite",
            "sqlite3 filling an in-memory database (600k orders with text columns), building two "
            "indexes and a GROUP BY table; paused at 105 MB RSS (its peak is about 114 MB).",
            ["sqlite3", ":memory:", f".read {PROGRAMS / 'sqlite_build.sql'}"],
            "sqlite3 :memory: '.read scripts/corpus_programs/sqlite_build.sql'",
            ["--wait-rss-mb", "105"],
            ["sqlite3", "--version"],
        ),
        Source(
            "sort",
            "GNU sort reading a 67 MB web-server access log into its buffer "
            "(LC_ALL=C sort -S 400M -k 7).",
            ["env", "LC_ALL=C", "sort", "--parallel=1", "-S", "400M", "-k", "7", "access.log",
             "-o", "/dev/null"],
            "LC_ALL=C sort --parallel=1 -S 400M -k 7 access.log -o /dev/null  "
            "(access.log: scripts/corpus_programs/gen_log.py access.log 600000)",
            ["--wait-rss-mb", "60"],
            ["sort", "--version"],
        ),
    ]


def prepare(work: Path, names: set[str]) -> None:
    """Generate the input files the gcc and sort sources need."""
    if "gcc" in names:
        subprocess.run([sys.executable, PROGRAMS / "gen_big_c.py", work / "big.c", "1500"],
                       check=True)
    if "sort" in names:
        subprocess.run([sys.executable, PROGRAMS / "gen_log.py", work / "access.log", "600000"],
                       check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated sources to re-capture (default: all)")
    ap.add_argument("--pages", type=int, default=2048, help="pages kept per source (2048)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hwzswap-corpus-") as tmp:
        work = Path(tmp)
        all_sources = sources(work)
        wanted = {s.name for s in all_sources} if not args.only else set(args.only.split(","))
        unknown = wanted - {s.name for s in all_sources}
        if unknown:
            ap.error(f"unknown sources {sorted(unknown)}")
        for tool in ("gcc", "node", "sqlite3", "sort"):
            if shutil.which(tool) is None:
                ap.error(f"{tool} is not on PATH")
        prepare(work, wanted)

        index_path = CORPUS / "sources.yaml"
        index = yaml.safe_load(index_path.read_text()) if index_path.exists() else {}
        CORPUS.mkdir(parents=True, exist_ok=True)
        for src in all_sources:
            if src.name not in wanted:
                continue
            report_path = work / f"{src.name}.json"
            cmd = [sys.executable, "-m", "hwzswap", "capture", "-o",
                   str(CORPUS / f"{src.name}.pages.zst"), "--max-pages", str(args.pages),
                   "--zstd-level", "19", "--report", str(report_path), *src.capture,
                   "--", *src.argv]
            print(f"== {src.name}: {src.display}", flush=True)
            subprocess.run(cmd, cwd=work, check=True)
            report = json.loads(report_path.read_text())
            for key in ("output", "command"):
                report.pop(key, None)
            version = subprocess.run(src.version, capture_output=True, text=True, check=True)
            index[src.name] = {
                "description": src.description,
                "command": src.display,
                "capture": " ".join(["hwzswap capture", "--max-pages", str(args.pages),
                                     *src.capture]),
                "versions": version.stdout.strip().splitlines()[0],
                "report": report,
            }
        index_path.write_text(yaml.safe_dump(index, sort_keys=True, width=100))
    subprocess.run([sys.executable, "-m", "hwzswap.bench.corpus", "--readme", "-o",
                    "hwzswap/data/corpus/README.md"], cwd=REPO, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
