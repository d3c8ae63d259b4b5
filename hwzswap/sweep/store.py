"""The output directory of a sweep: one JSON record per run, named by its run id.

Layout of ``DIR``::

    runs/<run_id>.json     one record per run, written (atomically) as soon as the run ends
    sweep.json             the merged result (hwzswap.sweep.merge)
    table.md               the table, grouped by an axis
    throughput_vs_ratio.png, speedup_vs_lz4.png

Resume reads ``runs/``: a run whose record is there is not run again (with ``retry_failed``,
only runs whose record says ``ok`` are kept).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwzswap.errors import HwzswapError
from hwzswap.fileio import write_atomic

RUNS_DIR = "runs"
MERGED_JSON = "sweep.json"
TABLE_MD = "table.md"
PLOT_RATIO = "throughput_vs_ratio.png"
PLOT_SPEEDUP = "speedup_vs_lz4.png"
#: What a sweep writes at the top of ``DIR``, over whatever is there.
OUTPUTS = (MERGED_JSON, TABLE_MD, PLOT_RATIO, PLOT_SPEEDUP)


class SweepOutputError(HwzswapError):
    """The output directory cannot be used (not a directory, not writable, a corrupt record)."""


def record_path(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir) / RUNS_DIR / f"{run_id}.json"


def prepare(out_dir: str | Path) -> Path:
    """Create ``DIR/runs`` (and ``DIR``); a clear error when that is not possible, or when
    ``DIR`` is not a sweep's output but holds a file the sweep would overwrite."""
    out = Path(out_dir)
    _check_not_foreign(out)
    try:
        (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepOutputError(f"-o {out}: cannot create the output directory: "
                               f"{exc.strerror or exc}") from None
    return out


def _check_not_foreign(out: Path) -> None:
    """Refuse an existing directory that is not a sweep's output (no ``runs/``) but holds a file
    the sweep would overwrite (``table.md``, ``sweep.json``, the plots): ``-o .`` or a typo must
    not replace the user's own files. A sweep's output directory is resumed as before."""
    if not out.is_dir() or (out / RUNS_DIR).is_dir():
        return
    clash = [name for name in OUTPUTS if os.path.lexists(out / name)]
    if clash:
        raise SweepOutputError(
            f"-o {out}: not a sweep's output directory (no {RUNS_DIR}/), and it holds "
            f"{', '.join(clash)}, which the sweep would overwrite; give a new or empty directory"
        )


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write JSON so that a reader (or a resume after a kill) never sees half a file."""
    text = json.dumps(doc, indent=1, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_record(out_dir: str | Path, record: dict[str, Any]) -> Path:
    path = record_path(out_dir, record["run_id"])
    write_json_atomic(path, record)
    return path


def read_record(out_dir: str | Path, run_id: str) -> dict[str, Any] | None:
    """The stored record of ``run_id``, or ``None``. An unreadable one counts as absent."""
    path = record_path(out_dir, run_id)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a torn or foreign file: the run is done again and the file replaced
    if not isinstance(rec, dict) or rec.get("run_id") != run_id or "status" not in rec:
        return None
    return rec


def existing_records(out_dir: str | Path, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Records already in ``DIR`` for the given runs."""
    out: dict[str, dict[str, Any]] = {}
    for rid in run_ids:
        rec = read_record(out_dir, rid)
        if rec is not None:
            out[rid] = rec
    return out


__all__ = ["MERGED_JSON", "OUTPUTS", "PLOT_RATIO", "PLOT_SPEEDUP", "RUNS_DIR", "TABLE_MD",
           "SweepOutputError", "existing_records", "prepare", "read_record",
           "record_path", "write_json_atomic", "write_record"]
