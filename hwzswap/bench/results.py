"""The bench's results document: its schema (``schema_version`` 1) and the machine description.

The JSON layout is documented in ``docs/bench.md``; :data:`RESULT_FIELDS` and
:func:`schema_problems` are the machine-checkable form of that documentation (the tests run
every document the bench writes through them). New fields may be added within a schema
version; renaming or removing one, or changing its meaning, bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from hwzswap.errors import OutputError

SCHEMA_VERSION = 1

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))

#: Top-level keys and their JSON types.
TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "generator": (str,),
    "created": (str,),
    "machine": (dict,),
    "workload": (dict,),
    "config": (dict,),
    "results": (list,),
    "skipped": (list,),
    "failed": (list,),
}

MACHINE_FIELDS: dict[str, tuple[type, ...]] = {
    "cpu": (str,),
    "cores": (int,),
    "usable_cores": (int,),
    "arch": (str,),
    "os": (str,),
    "memory_mb": (int, type(None)),
    "python": (str,),
    "libraries": (dict,),
    "codec_libraries": (dict,),
    "opencl_devices": (list,),
    "hwzswap": (dict,),
}

WORKLOAD_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "structure": (dict,),
    "seed": (int,),
    "pages": (int,),
    "page_sha256": (str,),
    "corpus": (dict,),
    "config_overrides": (dict,),
    "counts": (dict,),
}

#: Top-level keys added within schema version 1: checked when present. ``interrupted``: the
#: run was cut short by Ctrl-C and holds the rows finished by then (``interrupted_note``).
OPTIONAL_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "batching": (list,),
    "interrupted": (bool,),
    "interrupted_note": (str,),
    "measured_rows": (int,),
}

#: Workload keys added within schema version 1: checked when present.
OPTIONAL_WORKLOAD_FIELDS: dict[str, tuple[type, ...]] = {
    "folio_mix_stored": (list,),
    "folio_mix_note": (str, type(None)),
}

#: One entry of ``results``: key -> accepted JSON types.
RESULT_FIELDS: dict[str, tuple[type, ...]] = {
    "backend": (str,),
    "batching": (str,),
    "structure": (dict,),
    "description": (str,),
    "params": (dict,),
    "time_basis": (str,),
    "capabilities": (dict,),
    "pages": (int,),
    "verified_pages": (int,),
    "mismatches": (int,),
    "load_failures": (int,),
    "store_pages": (int,),
    "ratio": _OPT_NUM,  # null when no page it counts was compressed (0 / 0: ratio_note)
    "pool_density": _NUM,
    "pool_bytes": (int,),
    "store_pages_per_s": _NUM,
    "load_pages_per_s": _OPT_NUM,
    "store_us": (dict,),
    "load_us": (dict,),
    "invalidate_us": (dict,),
    "host_cpu_us_per_page": _OPT_NUM,
    "raw_store_pages_per_s": _NUM,
    "raw_load_pages_per_s": _OPT_NUM,
    "raw_store_us": (dict,),
    "raw_load_us": (dict,),
    "store_vs_raw": _OPT_NUM,
    "load_vs_raw": _OPT_NUM,
    "rejects": (dict,),
    "pool_limit_hit": (int,),
    "same_filled_pages": (int,),
    "written_back_pages": (int,),
    "saw_writeback": (bool,),
    "writeback_expected": (bool,),
    "swap_reads": (int,),
    "swap_writes": (int,),
    "device_us_per_page": _OPT_NUM,
    "emulation_us_per_page": _OPT_NUM,
    "faults": (dict,),
    "counters": (dict,),
    "backend_counters": (dict,),
    "repeat": (int,),
    "spread": (dict,),
    "elapsed_s": _NUM,
}

#: Fields added within schema version 1: checked when present (older documents lack them).
OPTIONAL_RESULT_FIELDS: dict[str, tuple[type, ...]] = {
    "async_submit": (str, type(None)),  # async mode's design (queue, worker); null otherwise
    "loads_staged": (int,),
    "load_staged_share": _OPT_NUM,
    "load_figure_staged": (bool,),
    "store_refused_share": _NUM,
    "load_swap_share": _OPT_NUM,
    "store_vs_raw_note": (str, type(None)),
    "load_vs_raw_note": (str, type(None)),
    "pool_peak_pages": (int,),
    "pool_limit_pages": (int, type(None)),
    "pool_overshoot_pages": (int,),
    "pool_overshoot": (bool,),
    "host_cpu_us_per_stored_page": _OPT_NUM,
    "host_cpu_us_per_stored_page_note": (str, type(None)),
    "host_cpu_note": (str, type(None)),
    "modeled_wall_us_per_page": _OPT_NUM,
    "device_failed": (bool,),
    "store_overlaps_loads": (bool,),
    "device_split_note": (str, type(None)),
    "wall_us_per_page": _NUM,
    "backend_counters_end_values": (list,),
    "device_timeouts": (int,),
    "device_figures_note": (str, type(None)),
    "backend_counters_raw": (dict,),
    "ratio_note": (str, type(None)),
    "ratio_counts_same_filled": (bool,),
    "pool_limit_source": (str,),
    "pool_limit_note": (str, type(None)),
    "swap_path_note": (str, type(None)),
    "swap_model": (str,),
    "swap_model_us": _NUM,
    "swap_model_store_us_per_page": _OPT_NUM,
    "swap_model_load_us_per_page": _OPT_NUM,
    "store_pages_per_s_with_swap_model": _OPT_NUM,
    "load_pages_per_s_with_swap_model": _OPT_NUM,
    "swap_model_note": (str, type(None)),
    "store_call_us": (dict,),
    "load_call_us": (dict,),
    "reported_pass": (int,),
}

#: Share of a run's stores the stack never compressed (refused at the pool limit before
#: compressing: ``reject_pool_limit``, ``reject_reclaim_fail``; or failed in the stack beyond
#: the codec alone's failures on the same pages, as when the device is marked failed and
#: every store is refused as ``reject_compress_fail``), or of its loads it never
#: decompressed (read back from the swap file: ``pswpin``), above which ``store_vs_raw`` /
#: ``load_vs_raw`` are null (the raw pass compresses every stored page and decompresses every
#: loaded one, so the ratio would compare different work), and above which the engine modes
#: of a backend met different loads at the limit, so none is named best for stores.
UNLIKE_WORK_SHARE = 0.05

REJECT_REASONS = ("compress_poor", "compress_fail", "alloc_fail", "reclaim_fail")
PERCENTILES = ("p50", "p99")


def _check(obj: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], where: str,
           out: list[str]) -> None:
    for key, types in fields.items():
        if key not in obj:
            out.append(f"{where}: missing {key!r}")
        elif isinstance(obj[key], bool) and bool not in types:
            out.append(f"{where}.{key}: a bool where {types} expected")
        elif not isinstance(obj[key], types):
            out.append(f"{where}.{key}: {type(obj[key]).__name__} is not one of "
                       f"{[t.__name__ for t in types]}")


def schema_problems(doc: Any) -> list[str]:
    """Every way ``doc`` departs from schema version 1 (empty list: it conforms)."""
    out: list[str] = []
    if not isinstance(doc, dict):
        return ["document: not a JSON object"]
    _check(doc, TOP_FIELDS, "document", out)
    if out:
        return out
    _check(doc, {k: t for k, t in OPTIONAL_TOP_FIELDS.items() if k in doc}, "document", out)
    if doc["schema_version"] != SCHEMA_VERSION:
        out.append(f"schema_version: {doc['schema_version']} (expected {SCHEMA_VERSION})")
    _check(doc["machine"], MACHINE_FIELDS, "machine", out)
    _check(doc["workload"], WORKLOAD_FIELDS, "workload", out)
    _check(doc["workload"], {k: t for k, t in OPTIONAL_WORKLOAD_FIELDS.items()
                             if k in doc["workload"]}, "workload", out)
    for i, r in enumerate(doc["results"]):
        where = f"results[{i}]"
        if not isinstance(r, dict):
            out.append(f"{where}: not an object")
            continue
        _check(r, RESULT_FIELDS, where, out)
        _check(r, {k: t for k, t in OPTIONAL_RESULT_FIELDS.items() if k in r}, where, out)
        for key in ("store_us", "load_us", "invalidate_us", "raw_store_us", "raw_load_us"):
            pct = r.get(key)
            if isinstance(pct, dict):
                for p in PERCENTILES:
                    if p not in pct or not isinstance(pct[p], _OPT_NUM) or isinstance(pct[p], bool):
                        out.append(f"{where}.{key}.{p}: missing or not a number")
        rej = r.get("rejects")
        if isinstance(rej, dict):
            for reason in REJECT_REASONS:
                if not isinstance(rej.get(reason), int):
                    out.append(f"{where}.rejects.{reason}: missing or not an integer")
        if r.get("time_basis") not in ("measured", "modeled"):
            out.append(f"{where}.time_basis: {r.get('time_basis')!r}")
        if r.get("time_basis") == "modeled" and not isinstance(r.get("device_us_per_page"), _NUM):
            out.append(f"{where}.device_us_per_page: a modelled backend must report it")
        faults = r.get("faults")
        if isinstance(faults, dict):
            for phase, rate in (("raw", "store_error_rate"), ("raw", "load_error_rate"),
                                ("store", "error_rate"), ("load", "error_rate")):
                v = (faults.get(phase) or {}).get(rate)
                if not isinstance(v, _NUM) or isinstance(v, bool):
                    out.append(f"{where}.faults.{phase}.{rate}: missing or not a number")
    for i, s in enumerate(doc["skipped"]):
        if not (isinstance(s, dict) and isinstance(s.get("backend"), str)
                and isinstance(s.get("reason"), str)):
            out.append(f"skipped[{i}]: needs 'backend' and 'reason' strings")
    for i, s in enumerate(doc["failed"]):
        if not (isinstance(s, dict) and isinstance(s.get("backend"), str)
                and isinstance(s.get("error"), str)):
            out.append(f"failed[{i}]: needs 'backend' and 'error' strings")
    return out


# -- machine ---------------------------------------------------------------------------------

_DISTRIBUTIONS = (
    "numpy", "lz4", "python-lzo", "zstandard", "pyopencl", "pocl-binary-distribution",
    "numba", "llvmlite", "pyyaml", "rich", "matplotlib",
)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what ``platform`` knows elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_mb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _codec_libraries() -> dict[str, str | None]:
    """Versions of the C libraries behind the software codecs."""
    out: dict[str, str | None] = {}
    try:
        import lz4

        out["liblz4"] = lz4.library_version_string()
    except Exception:  # noqa: BLE001 -- a description must not fail the bench
        out["liblz4"] = None
    try:
        import lzo

        ver = getattr(lzo, "LZO_VERSION_STRING", None)
        out["liblzo2"] = ver.decode() if isinstance(ver, bytes) else ver
    except Exception:  # noqa: BLE001
        out["liblzo2"] = None
    try:
        import zstandard

        out["libzstd"] = ".".join(map(str, zstandard.ZSTD_VERSION))
    except Exception:  # noqa: BLE001
        out["libzstd"] = None
    import zlib

    out["zlib"] = zlib.ZLIB_RUNTIME_VERSION
    return out


def opencl_devices() -> list[dict[str, Any]]:
    """Every OpenCL device pyopencl sees (empty without pyopencl or a platform)."""
    try:
        import pyopencl as cl

        out = []
        for plat in cl.get_platforms():
            for dev in plat.get_devices():
                out.append({
                    "platform": plat.name.strip(),
                    "name": dev.name.strip(),
                    "type": cl.device_type.to_string(dev.type),
                    "version": dev.version.strip(),
                    "compute_units": int(dev.max_compute_units),
                })
        return out
    except Exception:  # noqa: BLE001 -- no ICD, no platform, no pyopencl: no devices
        return []


def git_state(root: str | Path | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout at ``root`` (default: the one this package is
    in): the short ``HEAD`` commit, and whether a tracked file the figures depend on differs
    from it (staged or not; ``git status --porcelain --untracked-files=no``). Untracked files,
    the results under ``benchmarks/results/`` and Markdown are left out: results, caches and
    notes lying in a checkout would mark every run modified (a ``run_all.py`` series wrote
    its own earlier results and called the later ones modified), while the figures depend on
    the code. ``(None, None)`` when ``root`` is not a git checkout or git cannot answer (an
    installed copy, no git)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None, None

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout if res.returncode == 0 else None

    commit = (git("rev-parse", "--short=12", "HEAD") or "").strip() or None
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":(exclude)benchmarks/results", ":(exclude,glob)**/*.md")
    return commit, None if status is None else bool(status.strip())


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, OS, Python, library and OpenCL devices."""
    from hwzswap import __version__

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    commit, dirty = git_state()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable,
        "arch": platform.machine(),
        "os": platform.platform(),
        "memory_mb": _memory_mb(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": _versions(),
        "codec_libraries": _codec_libraries(),
        "opencl_devices": opencl_devices(),
        "hwzswap": {"version": __version__, "git_commit": commit, "git_dirty": dirty,
                    "impl": _impl()},
    }


def _impl() -> str:
    """Which implementation of the compiled parts ran (``HWZSWAP_IMPL``: c or py)."""
    from hwzswap.impl import IMPL

    return IMPL


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran (``argv``, default ``sys.argv``) as one shell line that runs it
    again: each word quoted as the shell needs (``shlex.join``, as the sweep's), so a path
    with a space stays one word (earlier builds joined with spaces). ``python -m hwzswap``
    has the package's ``__main__.py`` as ``argv[0]``, which is no program: it is written as
    the interpreter and ``-m hwzswap``."""
    words = list(sys.argv if argv is None else argv)
    if words and Path(words[0]).name == "__main__.py" and Path(words[0]).parent.name == "hwzswap":
        words[:1] = [sys.executable, "-m", "hwzswap"]
    return shlex.join(words)


def new_document(workload: Mapping[str, Any], config: Mapping[str, Any],
                 machine: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An empty results document for ``workload`` (its ``describe()``) and base ``config``."""
    from hwzswap import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"hwzswap {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": dict(machine) if machine is not None else machine_info(),
        "workload": dict(workload),
        "config": dict(config),
        "results": [],
        "skipped": [],
        "failed": [],
    }


def output_failed(path: str | Path, what: str, exc: OSError) -> OutputError:
    """The error for an output file (``what``: the results, the table, the plot) that could
    not be written (a full disk, a read-only one, a folder that vanished), worded as
    ``record``'s for its workload file: the path, what it is, the system's reason."""
    return OutputError(f"{path}: cannot write the {what}: {exc.strerror or exc}")


def write_json(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write the document (pretty, stable key order), atomically: a failed or interrupted
    write leaves the old file (or none) and no temporary file. A write that fails
    (``ENOSPC``, ``EROFS``...) raises :class:`~hwzswap.errors.OutputError` naming the file."""
    from hwzswap.fileio import write_atomic

    path = Path(path)
    text = json.dumps(doc, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise output_failed(path, "results", exc) from exc


def write_outputs(doc: Mapping[str, Any], *, json_path: str | Path | None = None,
                  markdown_path: str | Path | None = None,
                  plot_path: str | Path | None = None) -> list[Path]:
    """Write the bench's outputs asked for (``--json``, ``--markdown``, ``--plot``), each
    whole or not at all; returns those written. One that cannot be written does not stop the
    others (a full disk under the JSON need not cost the table on another): every failure is
    then raised together as one :class:`~hwzswap.errors.OutputError`, naming each file and
    the ones that were written."""
    from hwzswap.bench.report import markdown, plot
    from hwzswap.fileio import write_atomic

    def write_markdown(path: Path) -> Path:
        text = markdown(doc)
        try:
            return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except OSError as exc:
            raise output_failed(path, "table", exc) from exc

    def write_plot(path: Path) -> Path:
        try:
            return plot(doc, path)
        except OSError as exc:
            raise output_failed(path, "plot", exc) from exc

    steps = [(json_path, lambda p: write_json(doc, p)), (markdown_path, write_markdown),
             (plot_path, write_plot)]
    written: list[Path] = []
    failed: list[str] = []
    for path, step in steps:
        if path is None or path == "":
            continue
        try:
            written.append(step(Path(path)))
        except OutputError as exc:
            failed.append(str(exc))
    if failed:
        done = (f" (written: {', '.join(map(str, written))})" if written else
                " (no output was written)")
        raise OutputError("; ".join(failed) + done
                          + "; fix the cause named (free space, a directory that can be "
                          "written), or give another path, and run again")
    return written


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a results document back (for re-rendering tables and plots)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


__all__ = [
    "OPTIONAL_RESULT_FIELDS",
    "OPTIONAL_TOP_FIELDS",
    "OPTIONAL_WORKLOAD_FIELDS",
    "RESULT_FIELDS",
    "SCHEMA_VERSION",
    "UNLIKE_WORK_SHARE",
    "git_state",
    "machine_info",
    "new_document",
    "opencl_devices",
    "output_failed",
    "read_json",
    "schema_problems",
    "write_json",
    "write_outputs",
]
