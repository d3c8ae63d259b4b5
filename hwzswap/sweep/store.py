"""The output directory of a sweep: one JSON record per run, named by its run id.

Layout of ``DIR``::

    runs/<run_id>.json     one record per run, written (atomically) as soon as the run ends
    sweep.json             the merged result (hwzswap.sweep.merge)
    table.md               the table, grouped by an axis
    throughput_vs_ratio.png, speedup_vs_lz4.png
    .sweep.lock            flock'ed by the sweep writing DIR (its pid inside), for its whole run

Resume reads ``runs/``: a run whose record is there is not run again (with ``retry_failed``,
only runs whose record says ``ok`` are kept).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hwzswap.errors import HwzswapError
from hwzswap.fileio import write_atomic
from hwzswap.yamlfile import read_bounded, size_problem

RUNS_DIR = "runs"
MERGED_JSON = "sweep.json"
TABLE_MD = "table.md"
PLOT_RATIO = "throughput_vs_ratio.png"
PLOT_SPEEDUP = "speedup_vs_lz4.png"
#: The lock file of a sweep's output directory (:func:`locked`).
LOCK_FILE = ".sweep.lock"
#: A record is a few kilobytes (its bench result's counters included); a larger file in
#: ``runs/`` is not one.
MAX_RECORD_BYTES = 16 << 20
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


@contextlib.contextmanager
def locked(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``DIR/.sweep.lock`` (``flock``, exclusive) for the ``with`` block: two sweeps
    writing one directory would both run every run, disturb each other's timings and leave a
    ``sweep.json`` that disagrees with ``runs/``. A second sweep is refused at once with a
    :class:`SweepOutputError` naming the holder's pid (which the holder writes into the file).
    The lock goes with the process: a sweep killed by SIGKILL leaves no stale lock."""
    path = Path(out_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SweepOutputError(f"-o {out_dir}: cannot open the lock file {path}: "
                               f"{exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise SweepOutputError(
                f"-o {out_dir}: another sweep (pid {holder}) is writing to this directory; "
                "wait for it to end, or give another directory (-o)") from None
        except OSError as exc:
            raise SweepOutputError(f"-o {out_dir}: cannot lock {path}: "
                                   f"{exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write JSON so that a reader (or a resume after a kill) never sees half a file."""
    text = json.dumps(doc, indent=1, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_record(out_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write a run's record (whole or not at all); a :class:`SweepOutputError` naming the
    file when it cannot be written."""
    path = record_path(out_dir, record["run_id"])
    try:
        write_json_atomic(path, record)
    except OSError as exc:
        raise SweepOutputError(f"{path}: cannot write the run's record: "
                               f"{exc.strerror or exc}") from None
    return path


def read_record(out_dir: str | Path, run_id: str) -> dict[str, Any] | None:
    """The stored record of ``run_id``, or ``None``. An unreadable one counts as absent (a
    FIFO or device in its place is not opened for reading: it would block or never end)."""
    path = record_path(out_dir, run_id)
    try:
        data = read_bounded(path, MAX_RECORD_BYTES, SweepOutputError, unreadable="unreadable",
                            too_large="too large")
        rec = json.loads(data.decode("utf-8"))
    except (SweepOutputError, ValueError, RecursionError):
        return None  # a torn or foreign file: the run is done again and the file replaced
    if not isinstance(rec, dict) or rec.get("run_id") != run_id or record_problem(rec):
        return None
    return rec


#: The fields a record must hold for the merge, the table and the plots to read it, with the
#: types each may have (``None`` is JSON null).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "status": (str,), "backend": (str,), "coords": (dict,),
    "settings": (dict,), "failure": (str, type(None)), "reason": (str, type(None)),
    "host": (str, type(None)),
}


def record_problem(rec: dict[str, Any]) -> str | None:
    """Why ``rec`` is not a record this sweep can merge and report (``None`` when it is one):
    a field the report reads missing or of the wrong type, an unknown status, an ``ok`` record
    without its figures, or ``overridden`` not as the sweep writes it. Such a file (written by
    hand, or by a foreign tool) is treated as no record: the run is done again."""
    from hwzswap.sweep.worker import STATUSES

    for key, kinds in RECORD_FIELDS.items():
        if key not in rec:
            return f"no {key!r}"
        if not isinstance(rec[key], kinds) or isinstance(rec[key], bool):
            return f"{key!r} is {type(rec[key]).__name__}"
    if rec["status"] not in STATUSES:
        return f"unknown status {rec['status'][:40]!r}"
    if rec["status"] == "ok":
        for key in ("ratio", "store_pages_per_s", "pages", "verified_pages"):
            if type(rec.get(key)) not in (int, float):
                return f"an ok record without a number {key!r}"
        if type(rec.get("load_pages_per_s")) not in (int, float, type(None)):
            return "'load_pages_per_s' is not a number"
    too_big = size_problem(rec, 40, 200_000)  # merged, dumped and copied: must be bounded
    if too_big is not None:
        return too_big
    over = rec.get("overridden")
    if over is not None and not (isinstance(over, dict) and all(
            isinstance(v, dict) and "asked" in v and "used" in v for v in over.values())):
        return "'overridden' is not {setting: {asked, used}}"
    return None


def check_writable(out_dir: str | Path, run_ids: list[str]) -> None:
    """Refuse, before any run, a record path that exists but is not a file the record can
    replace (``runs/<id>.json`` a directory, a FIFO...): the run's record would be lost after
    the run."""
    import stat

    for rid in run_ids:
        path = record_path(out_dir, rid)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            from hwzswap.yamlfile import file_kind

            raise SweepOutputError(f"-o {out_dir}: {path} is {file_kind(st.st_mode)}, where the "
                                   "run's record goes; remove it, or give another directory")


def existing_records(out_dir: str | Path, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Records already in ``DIR`` for the given runs."""
    out: dict[str, dict[str, Any]] = {}
    for rid in run_ids:
        rec = read_record(out_dir, rid)
        if rec is not None:
            out[rid] = rec
    return out


__all__ = ["LOCK_FILE", "MERGED_JSON", "OUTPUTS", "PLOT_RATIO", "PLOT_SPEEDUP", "RUNS_DIR",
           "TABLE_MD", "RECORD_FIELDS", "SweepOutputError", "check_writable",
           "existing_records", "locked", "prepare", "read_record", "record_problem",
           "record_path", "write_json_atomic", "write_record"]
