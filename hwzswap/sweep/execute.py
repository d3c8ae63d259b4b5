"""Running a planned sweep: resume, dispatch to an executor, record, merge, report.

:func:`run_sweep` is the whole of ``hwzswap sweep`` without the command line: it skips the runs
whose record is already in the output directory, hands the others to the local executor (or to
Ray), writes each record the moment it arrives (so a sweep killed half-way resumes where it
stopped), then writes the merged ``sweep.json``, ``table.md`` and the plots, each whole or not
at all (:mod:`hwzswap.fileio`: an interrupted sweep leaves the previous file, never half of one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwzswap.fileio import write_atomic
from hwzswap.sweep import merge, report, store
from hwzswap.sweep.plan import Plan
from hwzswap.sweep.spec import SweepSpec
from hwzswap.sweep.store import MERGED_JSON, PLOT_RATIO, PLOT_SPEEDUP, TABLE_MD

#: Per-run time limit unless ``--timeout`` says otherwise (a run of the shipped sweep takes
#: seconds; a 4096-page run of every mode well under a minute).
DEFAULT_TIMEOUT_S = 1800.0



@dataclass
class SweepOutcome:
    """What a sweep did: the merged document and where its files are."""

    doc: dict[str, Any]
    out_dir: Path
    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def all_ok(self) -> bool:
        r = self.doc["runs"]
        return r["ok"] == r["planned"]


class _Progress:
    """A rich progress bar over runs (or nothing), with a line for each run that failed."""

    def __init__(self, enabled: bool, console: Any, total: int) -> None:
        self.enabled = enabled and console is not None
        self.console = console
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)

            self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"),
                                 console=self.console, transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def done(self, rec: dict[str, Any]) -> None:
        from rich.markup import escape
        from rich.text import Text

        if self.console is not None and rec.get("status") != "ok":
            self.console.print(Text.assemble((str(rec.get("status")).upper(), "red"),
                                             f" {rec.get('run_id')}: {rec.get('reason')}"),
                               highlight=False)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=escape(str(rec.get("run_id"))))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def run_sweep(spec: SweepSpec, plan: Plan, out_dir: str | Path, *, jobs: int = 1,
              timeout: float = DEFAULT_TIMEOUT_S, ray: str | None = None,
              retry_failed: bool = False, progress: bool = False, console: Any = None,
              command: str | None = None, group_by: str | None = None,
              plots: bool = True) -> SweepOutcome:
    """Run the runs of ``plan`` that ``out_dir`` lacks; merge and report all of them.

    With ``ray``, Ray and the cluster's address are checked before the output directory is
    created (a cluster that cannot be reached leaves nothing behind)."""
    from hwzswap.cliargs import MAX_SECONDS
    from hwzswap.errors import HwzswapError

    if type(timeout) not in (int, float) or not 0 < timeout <= MAX_SECONDS:
        raise HwzswapError(f"timeout: must be a number of seconds > 0 and at most "
                           f"{MAX_SECONDS:g} (a week), got {timeout!r:.40}")
    ids = [r.run_id for r in plan.runs]
    records = store.existing_records(out_dir, ids)
    if retry_failed:
        records = {k: v for k, v in records.items() if v.get("status") == "ok"}
    todo = [r for r in plan.runs if r.run_id not in records]
    if todo and ray is not None:
        from hwzswap.sweep.ray_exec import preflight

        preflight(ray)
    store.check_writable(out_dir, [r.run_id for r in todo])
    out = store.prepare(out_dir)
    outcome = SweepOutcome(doc={}, out_dir=out, ran=[r.run_id for r in todo],
                           resumed=[rid for rid in ids if rid in records])
    if console is not None and outcome.resumed:
        console.print(f"resume: {len(outcome.resumed)} of {len(ids)} runs already in {out}",
                      highlight=False, markup=False)

    def on_record(rec: dict[str, Any]) -> None:
        store.write_record(out, rec)
        records[rec["run_id"]] = rec
        bar.done(rec)

    runspecs = [r.runspec() for r in todo]
    executor: dict[str, Any] = {"executor": "local", "jobs": jobs}
    with _Progress(progress, console, len(todo)) as bar:
        if todo and ray is not None:
            from hwzswap.sweep.ray_exec import run_ray

            executor = run_ray(runspecs, address=ray, timeout=timeout, on_record=on_record)
        elif todo:
            from hwzswap.sweep.local import run_local

            run_local(runspecs, jobs=jobs, timeout=timeout, on_record=on_record)
    executor["timeout_s"] = timeout

    doc = merge.merged_document(spec, plan, records, executor=executor, command=command,
                                ran=len(todo), resumed=len(outcome.resumed))
    outcome.doc = doc
    store.write_json_atomic(out / MERGED_JSON, doc)
    outcome.files["json"] = out / MERGED_JSON
    table = report.markdown(doc, group_by)
    write_atomic(out / TABLE_MD, lambda tmp: tmp.write_text(table, encoding="utf-8"))
    outcome.files["table"] = out / TABLE_MD
    if plots:
        for key, name, fn in (("plot_ratio", PLOT_RATIO, report.plot_throughput_vs_ratio),
                              ("plot_speedup", PLOT_SPEEDUP, report.plot_speedup)):
            written = fn(doc, out / name)
            if written is not None:
                outcome.files[key] = written
            else:
                (out / name).unlink(missing_ok=True)  # an earlier sweep's, no longer true
    return outcome


__all__ = ["DEFAULT_TIMEOUT_S", "MERGED_JSON", "PLOT_RATIO", "PLOT_SPEEDUP", "TABLE_MD",
           "SweepOutcome", "run_sweep"]
