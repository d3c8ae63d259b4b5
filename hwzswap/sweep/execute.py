"""Running a planned sweep: resume, dispatch to an executor, record, merge, report.

:func:`run_sweep` is the whole of ``hwzswap sweep`` without the command line: it skips the runs
whose record is already in the output directory, hands the others to the local executor (or to
Ray), writes each record the moment it arrives (so a sweep killed half-way resumes where it
stopped), then writes the merged ``sweep.json``, ``table.md`` and the plots, each whole or not
at all (:mod:`hwzswap.fileio`: an interrupted sweep leaves the previous file, never half of one).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
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
    #: Runs whose stored record was measured with other input files: run again.
    changed: list[str] = field(default_factory=list)
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


class SweepSignalled(BaseException):
    """SIGTERM or SIGHUP reached the sweep: its runs in flight were killed (their process
    groups, their temporary directories removed) and the finished records kept. ``hwzswap
    sweep`` then exits with status 128 + the signal's number (143, 129); Ctrl-C (SIGINT) stays
    a :class:`KeyboardInterrupt` (status 130). A ``BaseException``, so that no ``except
    Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


#: The signals that stop a sweep cleanly besides SIGINT (Ctrl-C).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`SweepSignalled` while the sweep runs (their default
    action would end this process at once, leaving its runs, which sit in sessions of their
    own, running as orphans and their temporary directories behind). Only the main thread can
    set handlers: elsewhere (a sweep started from a thread) the process's handlers stay."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise SweepSignalled(signum)

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def _recorded_inputs(rec: dict[str, Any]) -> dict[str, Any]:
    spec = rec.get("runspec")
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def resumable(plan: Plan, records: dict[str, dict[str, Any]], retry_failed: bool = False
              ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The stored records a sweep keeps (resume), and the ids of those it runs again because
    an input file (the base ``config``, the ``corpus``, a ``workload`` file) changed since the
    record was measured: a record is kept only when its runspec's ``inputs`` (content hashes)
    are the run's. A record without them (an older hwzswap's) is kept only by a run that reads
    no input file. With ``retry_failed``, only ``ok`` records are kept."""
    kept: dict[str, dict[str, Any]] = {}
    changed: list[str] = []
    for run in plan.runs:
        rec = records.get(run.run_id)
        if rec is None:
            continue
        if _recorded_inputs(rec) != run.inputs:
            changed.append(run.run_id)
        elif not retry_failed or rec.get("status") == "ok":
            kept[run.run_id] = rec
    return kept, changed


def other_code_warning(kept: list[dict[str, Any]], checkout: tuple[Any, Any] | None = None
                       ) -> str | None:
    """What a resume says when records it keeps were measured with other code than this
    checkout's (``checkout``: ``(git_commit, git_dirty)``, default :func:`git_state`'s) or
    with a modified tree: which commits, which runs. The sweep still merges them (the table
    says so too, :func:`hwzswap.sweep.report.mixed_code_warning`); None when every kept record
    was measured at this checkout's clean commit."""
    from hwzswap.bench.provenance import commit_words
    from hwzswap.bench.results import git_state

    here = checkout if checkout is not None else git_state()
    groups = [g for g in merge.code_groups(kept)
              if (g["git_commit"], g["git_dirty"]) != tuple(here) or g["git_dirty"]]
    if not groups:
        return None
    here_words = commit_words({"git_commit": here[0], "git_dirty": here[1]})
    parts = [f"{commit_words(g)}: {len(g['runs'])} run{'s' * (len(g['runs']) != 1)} "
             f"({', '.join(g['runs'])})" for g in groups]
    return ("resume: WARNING: records kept from an earlier sweep were measured with other code "
            f"than this checkout ({here_words}) or with modified tracked files: "
            + "; ".join(parts) + ". They are merged as they are, and table.md says so; to "
            "measure them again, remove their records from runs/ and resume")


def run_sweep(spec: SweepSpec, plan: Plan, out_dir: str | Path, *, jobs: int = 1,
              timeout: float = DEFAULT_TIMEOUT_S, ray: str | None = None,
              retry_failed: bool = False, progress: bool = False, console: Any = None,
              command: str | None = None, group_by: str | None = None,
              plots: bool = True) -> SweepOutcome:
    """Run the runs of ``plan`` that ``out_dir`` lacks (or holds measured with other input
    files); merge and report all of them.

    With ``ray``, the address's form, Ray and the cluster's address are checked before the
    output directory is created (a cluster that cannot be reached leaves nothing behind).
    The output directory is locked for the whole sweep (:func:`hwzswap.sweep.store.locked`).
    SIGTERM and SIGHUP stop it as Ctrl-C does (:class:`SweepSignalled`)."""
    from hwzswap.cliargs import MAX_SECONDS
    from hwzswap.errors import HwzswapError

    if type(timeout) not in (int, float) or not 0 < timeout <= MAX_SECONDS:
        raise HwzswapError(f"timeout: must be a number of seconds > 0 and at most "
                           f"{MAX_SECONDS:g} (a week), got {timeout!r:.40}")
    if ray is not None:
        from hwzswap.sweep.ray_exec import check_address

        check_address(ray)  # its form, without Ray: before anything is imported or created
    ids = [r.run_id for r in plan.runs]
    records, _changed = resumable(plan, store.existing_records(out_dir, ids), retry_failed)
    todo = [r for r in plan.runs if r.run_id not in records]
    if todo and ray is not None:
        from hwzswap.sweep.ray_exec import preflight

        preflight(ray)
    store.check_writable(out_dir, [r.run_id for r in todo])
    out = store.prepare(out_dir)
    with store.locked(out), _stop_on_signals():
        # read again under the lock: a sweep that held it until now may have added records
        records, changed = resumable(plan, store.existing_records(out, ids), retry_failed)
        todo = [r for r in plan.runs if r.run_id not in records]
        return _run_locked(spec, plan, out, records, todo, changed, jobs=jobs, timeout=timeout,
                           ray=ray, progress=progress, console=console, command=command,
                           group_by=group_by, plots=plots)


def _run_locked(spec: SweepSpec, plan: Plan, out: Path, records: dict[str, dict[str, Any]],
                todo: list[Any], changed: list[str], *, jobs: int, timeout: float,
                ray: str | None, progress: bool, console: Any, command: str | None,
                group_by: str | None, plots: bool) -> SweepOutcome:
    ids = [r.run_id for r in plan.runs]
    outcome = SweepOutcome(doc={}, out_dir=out, ran=[r.run_id for r in todo],
                           resumed=[rid for rid in ids if rid in records], changed=changed)
    if console is not None and (outcome.resumed or changed):
        console.print(f"resume: {len(outcome.resumed)} of {len(ids)} runs already in {out}"
                      + (f"; {len(changed)} run again because an input file (config, corpus, "
                         "workload) changed since they ran" if changed else ""),
                      highlight=False, markup=False)
    if console is not None and outcome.resumed:
        warning = other_code_warning([records[rid] for rid in outcome.resumed])
        if warning:
            console.print(warning, style="bold red", highlight=False, markup=False)

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
                                ran=len(todo), resumed=len(outcome.resumed),
                                changed=len(changed))
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
           "STOP_SIGNALS", "SweepOutcome", "SweepSignalled", "other_code_warning", "resumable",
           "run_sweep"]
