"""Reading a sweep's merged result: a table grouped by an axis, and two plots.

* the table: one row per run, in sections by the value of one axis (``--group-by``; default
  ``backend``), with the other axes as columns, then ratio, throughputs, the share of the raw
  codec's speed the stack keeps, verified pages and the host;
* ``throughput_vs_ratio.png``: every successful run as a point of compression ratio against
  store and load throughput, one colour per backend, one marker per engine mode, each point
  labelled with its mode and settings (the mode as the bench labels it: ``async/queue``);
* ``speedup_vs_lz4.png``: each backend's store and load throughput over lz4's in the run that
  differs from it only in the backend (same engine mode, workload, seed, pool settings …),
  grouped by engine mode (``batching``, and async mode's design as the bench labels it); the
  geometric mean when several runs match; linear bars labelled with their value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwzswap.bench.marks import (
    ABOVE_RAW,
    ALL_MARKS,
    MODELLED,
    UNLIKE,
    Mark,
    cell_suffix,
    figure_marks,
    no_writeback,
    suffix,
    vs_raw_marks,
    vs_raw_na,
)
from hwzswap.bench.provenance import commit_words, figure_metadata, stamp_figure
from hwzswap.bench.report import engine_mode as bench_engine_mode
from hwzswap.errors import HwzswapError
from hwzswap.fileio import write_figure
from hwzswap.sweep.store import PLOT_SPEEDUP

#: The backend every other one is compared with in the speed-up plot.
BASELINE = "lz4"


def _batching(rec: dict[str, Any]) -> str | None:
    """The run's ``zswap.batching``: the sweep's setting, else its effective config's."""
    mode = (rec.get("settings") or {}).get("batching")
    if mode is None:
        mode = ((rec.get("config") or {}).get("zswap") or {}).get("batching")
    return None if mode is None else str(mode)


def engine_mode(rec: dict[str, Any]) -> str:
    """The run's engine mode as the bench labels its row (:func:`hwzswap.bench.report.
    engine_mode`: ``async/queue`` or ``async/worker``, the design async mode took, from the
    record's ``async_submit``), so a sweep and a bench of the same run name it alike; bare
    ``async`` for a run that measured nothing (an async design the device cannot take is
    ``not_applicable``, as the bench's skipped row names no design either); ``(config)`` when
    neither the sweep nor a result says the mode."""
    mode = _batching(rec)
    if mode is None:
        return "(config)"
    return bench_engine_mode({"batching": mode, "async_submit": rec.get("async_submit")})


def check_group_by(doc: dict[str, Any], group_by: str | None) -> str | None:
    """The axis to group by (default: ``backend`` if it is an axis, else the first axis)."""
    axes = list(doc.get("axes") or [])
    if group_by is None:
        return "backend" if "backend" in axes else (axes[0] if axes else None)
    if group_by not in axes:
        raise HwzswapError(f"--group-by {group_by}: not an axis of this sweep "
                           f"(axes: {', '.join(axes) or 'none'})")
    return group_by


def _fmt_rate(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def _status(rec: dict[str, Any]) -> str:
    st = str(rec.get("status"))
    kind = rec.get("failure")
    return st if st == "ok" or not kind or kind == st else f"{st}: {kind}"


def _value(v: Any) -> str:
    if isinstance(v, str) and "/" in v:
        return v.rsplit("/", 1)[-1]
    return "null" if v is None else str(v)


def _vs_raw_cell(rec: dict[str, Any], what: str) -> str:
    """A ``vs raw`` cell as the bench prints it: ``n/a`` when the stack and the codec alone
    did different work (the record's ``<what>_vs_raw_note``), else the figure and its marks
    (``†`` emulation against emulation, ``?`` above 1: :func:`vs_raw_marks`)."""
    if vs_raw_na(rec, what):  # type: ignore[arg-type]
        return "n/a"
    marks = vs_raw_marks(rec, what)  # type: ignore[arg-type]
    return _fmt(rec.get(f"{what}_vs_raw"), ".2f") + suffix(marks)


def _run_name(rec: dict[str, Any]) -> str:
    return str(rec.get("run_id") or rec.get("backend") or "?")


def _unlike_shares(rec: dict[str, Any]) -> str:
    """Why a run's ``vs raw`` is ``n/a``, short: the share of its stores the stack never
    compressed and of its loads read from the swap file (the bench's note when a share is
    missing)."""
    parts = []
    for what, share, words in (("store", "store_refused_share", "stores never compressed"),
                               ("load", "load_swap_share", "loads from the swap file")):
        if not vs_raw_na(rec, what):  # type: ignore[arg-type]
            continue
        v = rec.get(share)
        parts.append(f"{words} {v:.0%}" if isinstance(v, (int, float))
                     else str(rec.get(f"{what}_vs_raw_note")))
    return "; ".join(parts)


def mark_notes(doc: dict[str, Any]) -> list[str]:
    """What the marks in the table mean, one line per mark some run shows, naming its runs
    (the bench's notes, :mod:`hwzswap.bench.marks`); a run whose ``vs raw`` is ``n/a`` with
    its reasons, as the bench says them."""
    lines = []
    for mark in ALL_MARKS:
        who = [rec for rec in _ok(doc)
               if mark in figure_marks(rec, "store") or mark in figure_marks(rec, "load")]
        if not who:
            continue
        if mark is UNLIKE:
            lines.append(f"{mark.meaning} (the records' store_vs_raw_note and "
                         "load_vs_raw_note say it in full): "
                         + "; ".join(f"{_run_name(rec)} ({_unlike_shares(rec)})" for rec in who))
        else:
            lines.append(f"{mark.meaning}: " + ", ".join(_run_name(rec) for rec in who))
    for mark in (MODELLED, ABOVE_RAW):  # the vs raw cells' own marks
        who = [rec for rec in _ok(doc) if any(
            mark in vs_raw_marks(rec, what) for what in ("store", "load"))]
        if who and not (mark is MODELLED and any(line.startswith(mark.meaning) for line in lines)):
            lines.append(f"{mark.meaning} (vs raw): " + ", ".join(_run_name(rec) for rec in who))
    if lines:
        lines.append("a marked figure does not compare with another run's: "
                     f"{PLOT_SPEEDUP} leaves it out (or, when no run of that "
                     "backend and mode compares, draws it hatched with its marks)")
    return lines


def _cell(rec: dict[str, Any], axis: str) -> str:
    """A run's value of ``axis`` in the table: the engine mode as the bench labels it
    (:func:`engine_mode`: ``async/queue``) for ``batching``, else the value as set."""
    coords = rec.get("coords") or {}
    if axis not in coords:
        return "n/a"
    return engine_mode(rec) if axis == "batching" else _value(coords[axis])


def table_rows(doc: dict[str, Any], group_by: str | None
               ) -> tuple[list[str], list[tuple[str, list[list[str]]]]]:
    """Column names and ``(group value, rows)`` sections, groups in the axis's order (grouped
    by ``batching``, async mode's designs are groups of their own, where ``async`` stands).
    When ``batching`` is not an axis, a ``mode`` column names each run's engine mode as the
    bench does (:func:`engine_mode`: a fixed ``async`` is ``async/queue`` for one backend and
    ``async/worker`` for another)."""
    group_by = check_group_by(doc, group_by)
    axes = [a for a in doc.get("axes") or [] if a != group_by]
    mode_col = "batching" not in (doc.get("axes") or [])
    cols = [*axes, *(["mode"] if mode_col else []), "status", "ratio", "store pg/s",
            "load pg/s", "store vs raw", "load vs raw", "written back", "verified", "host"]
    groups: dict[str, list[list[str]]] = defaultdict(list)
    order: list[str] = []
    if group_by is not None:
        order = [_value(v) for v in (doc.get("sweep", {}).get("axes", {}).get(group_by) or [])]
    for rec in doc.get("records") or []:
        coords = rec.get("coords") or {}
        if group_by is None:
            key = "all runs"
        elif group_by in coords:
            key = _cell(rec, group_by)
        else:
            key = _value(None)
        if key not in order:
            order.append(key)
        ok = rec.get("status") == "ok"
        verified = (f"{rec.get('verified_pages')}/{rec.get('pages')}"
                    if "verified_pages" in rec else "-")
        groups[key].append([
            *(_cell(rec, a) for a in axes),
            *([engine_mode(rec)] if mode_col else []),
            _status(rec),
            _fmt(rec.get("ratio"), ".2f") if ok else "-",
            # the bench's own marks (hwzswap.bench.marks): † modelled, ~ staged, ‡ overlap
            _fmt_rate(rec.get("store_pages_per_s"))
            + cell_suffix(figure_marks(rec, "store")) if ok else "-",
            _fmt_rate(rec.get("load_pages_per_s"))
            + cell_suffix(figure_marks(rec, "load")) if ok else "-",
            _vs_raw_cell(rec, "store") if ok else "-",
            _vs_raw_cell(rec, "load") if ok else "-",
            (_fmt(rec.get("written_back_pages"), "d") + (" !" if no_writeback(rec) else ""))
            if ok else "-",
            verified,
            str(rec.get("host") or "-"),
        ])
    if group_by == "batching":
        order = modes_in_order(doc, order)
    return cols, [(k, groups[k]) for k in order if groups.get(k)]


def _runs_text(runs: list[str], limit: int | None = None) -> str:
    n = len(runs)
    if limit is not None and n > limit:
        return f"{n} runs"
    return f"{n} run{'s' * (n != 1)}: {', '.join(runs)}"


def code_text(doc: dict[str, Any]) -> str:
    """The commit the runs were measured at (``abc123``, ``abc123 (modified)``), or each
    commit with its runs when they differ; ``unknown`` when no record names one."""
    code = doc.get("code") or []
    if not code:
        return "unknown (no run wrote results)"
    if len(code) == 1:
        return commit_words(code[0])
    return "several, see MIXED CODE below: " + "; ".join(
        f"{commit_words(g)} ({len(g['runs'])} run{'s' * (len(g['runs']) != 1)})" for g in code)


def mixed_code_warning(doc: dict[str, Any]) -> str | None:
    """A warning when the records were measured with different code (a sweep resumed after a
    commit or an edit of tracked files merges runs of each): which commits, which runs, and
    how to measure them again with one; None when every record names the same code."""
    code = doc.get("code") or []
    if len(code) < 2:
        return None
    return ("MIXED CODE: these runs were measured with different code (a commit or an edit "
            "of tracked files between them, as when a sweep is resumed after one), so their "
            "figures do not compare with each other: "
            + "; ".join(f"{commit_words(g)}: {_runs_text(g['runs'], 12 if i == 0 else None)}"
                        for i, g in enumerate(code))
            + ". Remove the records of the runs to measure again from the output directory's "
            "runs/ (or use a new output directory) and run the sweep again")


def provenance_lines(doc: dict[str, Any]) -> list[str]:
    """The head of ``table.md``: the command, the machine (each CPU with its hosts and runs
    when they differ) and the commit the runs were measured at."""
    cpus = doc.get("cpus") or []
    if not cpus:
        machine = "unknown (no run wrote results)"
    else:
        machine = "; ".join(
            f"{g.get('cpu') or '?'} · {g.get('cores') or '?'} cores"
            + (f" (hosts {', '.join(map(str, g['hosts']))}" if g.get("hosts") else " (")
            + (f"; {_runs_text(g['runs'], 12 if i == 0 else None)})" if len(cpus) > 1 else ")")
            for i, g in enumerate(cpus))
    lines = [f"Command: `{doc.get('command') or '?'}`  ", f"Machine: {machine}  ",
             f"Commit: {code_text(doc)}  "]
    checkout = doc.get("checkout") or {}
    code = doc.get("code") or []
    if checkout.get("git_commit") and code and any(
            (g.get("git_commit"), g.get("git_dirty"))
            != (checkout.get("git_commit"), checkout.get("git_dirty")) for g in code):
        lines.append(f"Merged by a checkout at {commit_words(checkout)}  ")
    return lines


def figure_provenance(doc: dict[str, Any]) -> dict[str, Any]:
    """The sweep's command, time and code for a figure's foot and metadata."""
    code = doc.get("code") or []
    text = (None if not code else commit_words(code[0]) if len(code) == 1 else
            "MIXED CODE: " + ", ".join(commit_words(g) for g in code))
    return {"command": doc.get("command"), "created": doc.get("created"),
            "git_commit": text, "git_dirty": False}


def print_table(doc: dict[str, Any], group_by: str | None, console: Any) -> None:
    """The grouped table on a rich console, and the reasons of the runs that did not succeed."""
    from rich.table import Table
    from rich.text import Text

    # every string here comes from the sweep file or the records: plain text, never markup, as
    # rich would read '[/b]' as markup and fail, or '[red]' and drop it
    gb = check_group_by(doc, group_by)
    cols, sections = table_rows(doc, gb)
    r = doc["runs"]
    title = (f"sweep {doc['sweep']['source']}: {r['planned']} runs, {r['ok']} ok, "
             f"{r['failed']} failed, {r['unschedulable']} unschedulable"
             + (f", {r['missing']} missing" if r["missing"] else ""))
    table = Table(title=Text(title))
    table.add_column(Text(gb or ""), overflow="fold")
    for c in cols:
        table.add_column(Text(c), overflow="fold",
                         justify="left" if c in ("status", "host") else "right")
    for i, (group, rows) in enumerate(sections):
        if i:
            table.add_section()
        for j, row in enumerate(rows):
            table.add_row(Text(group) if j == 0 else "", *map(Text, row))
    console.print(table)
    warning = mixed_code_warning(doc)
    if warning:
        console.print(Text(warning, style="bold red"), highlight=False)
    for rec in doc.get("records") or []:
        if rec.get("status") != "ok":
            console.print(Text.assemble((str(rec.get("run_id")), "red"),
                                        f": {rec.get('status')} ({rec.get('failure')}): "
                                        f"{rec.get('reason')}"), highlight=False)
    for line in mark_notes(doc):
        console.print(Text(line, style="dim"), highlight=False)
    for line in override_notes(doc):
        console.print(Text.assemble(("note", "yellow"), f": {line}"), highlight=False)


def override_notes(doc: dict[str, Any]) -> list[str]:
    """One line per run whose effective config did not take a setting of the sweep (the bench
    runs every backend on a fresh temporary swap file at least as large as the stream:
    ``swap.path`` is not used and a smaller ``swap.nr_pages`` is raised)."""
    lines = []
    for rec in doc.get("records") or []:
        over = rec.get("overridden") or {}
        if over:
            what = ", ".join(f"{k} (asked {v['asked']!r}, used {v['used']!r})"
                             for k, v in over.items())
            lines.append(f"{rec['run_id']}: the run's effective config did not take {what}")
    return lines


def markdown(doc: dict[str, Any], group_by: str | None) -> str:
    """The grouped table as Markdown: one table per group, with the failures' reasons."""
    gb = check_group_by(doc, group_by)
    cols, sections = table_rows(doc, gb)
    r = doc["runs"]
    lines = [f"# Sweep {doc['sweep']['source']}", "", *provenance_lines(doc), ""]
    warning = mixed_code_warning(doc)
    if warning:
        lines += [f"**{warning}**", ""]
    lines += [f"{r['planned']} runs: {r['ok']} ok, {r['failed']} failed, "
             f"{r['unschedulable']} unschedulable, {r['missing']} missing. "
             f"Hosts: {', '.join(doc.get('hosts') or []) or '-'}. Created {doc['created']} "
             f"({doc['generator']}).", ""]
    for group, rows in sections:
        lines += [f"## {gb} = {group}" if gb else "## all runs", "",
                  "| " + " | ".join(cols) + " |",
                  "|" + "|".join("---" if c in ("status", "host") else "---:" for c in cols) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    bad = [rec for rec in doc.get("records") or [] if rec.get("status") != "ok"]
    if bad:
        lines += ["## Runs that did not succeed", ""]
        lines += [f"- `{rec['run_id']}`: {rec.get('status')} ({rec.get('failure')}): "
                  f"{rec.get('reason')}" for rec in bad]
        lines.append("")
    marks = mark_notes(doc)
    if marks:
        lines += ["## Marks", ""] + [f"- {n}" for n in marks] + [""]
    notes = override_notes(doc)
    if notes:
        lines += ["## Settings not in effect", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _ok(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rec for rec in doc.get("records") or [] if rec.get("status") == "ok"]


def point_label(rec: dict[str, Any]) -> str:
    """What tells a run apart from the other runs of its backend in a plot: its axis values
    other than the backend (``reclaim, acceleration=8``; the engine mode bare, as the bench
    labels it (:func:`engine_mode`: ``async/queue``), other axes as ``name=value``), or the
    engine mode when the sweep varies nothing else."""
    coords = {k: v for k, v in (rec.get("coords") or {}).items() if k != "backend"}
    parts = []
    for name, value in coords.items():
        if name == "batching":
            parts.insert(0, engine_mode(rec))
        else:
            parts.append(f"{name.removeprefix('params.')}={_value(value)}")
    return ", ".join(parts) or engine_mode(rec)


#: Marker of each engine mode in ``throughput_vs_ratio.png``, by its label
#: (:func:`engine_mode`): async mode's two designs apart (bare ``async``: a record written
#: before records said the design).
MODE_MARKERS = {"page": "o", "folio": "s", "reclaim": "^", "async": "D", "async/queue": "D",
                "async/worker": "P"}


def throughput_vs_ratio_figure(doc: dict[str, Any]) -> Any:
    """Compression ratio against store and load throughput: one colour per backend, one
    marker per engine mode, each point labelled with what sets it apart from its backend's
    other runs (:func:`point_label`). None when no run succeeded."""
    recs = _ok(doc)
    if not recs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    backends = list(dict.fromkeys(rec["backend"] for rec in recs))
    cmap = plt.get_cmap("tab10")
    fig, axs = plt.subplots(1, 2, figsize=(13, 5.5), constrained_layout=True)
    modes_seen: list[str] = []
    shown: set[Mark] = set()
    for ax, key, what in ((axs[0], "store_pages_per_s", "store"),
                          (axs[1], "load_pages_per_s", "load")):
        for i, b in enumerate(backends):
            for rec in recs:
                if rec["backend"] != b or not isinstance(rec.get(key), (int, float)) \
                        or not isinstance(rec.get("ratio"), (int, float)):
                    continue
                mode = engine_mode(rec)
                if mode not in modes_seen:
                    modes_seen.append(mode)
                marks = figure_marks(rec, what)  # type: ignore[arg-type]
                if marks:  # not a valid comparison: hollow, its marks in its label
                    shown.update(marks)
                    ax.scatter(rec["ratio"], rec[key], s=36, alpha=0.8, facecolors="none",
                               edgecolors=cmap(i % 10), marker=MODE_MARKERS.get(mode, "o"))
                else:
                    ax.scatter(rec["ratio"], rec[key], color=cmap(i % 10), s=36, alpha=0.8,
                               marker=MODE_MARKERS.get(mode, "o"))
                label = point_label(rec) + "".join(f" {m.label}" for m in marks)
                ax.annotate(label, (rec["ratio"], rec[key]), fontsize=6,
                            xytext=(4, 3), textcoords="offset points", color=cmap(i % 10))
        ax.set_xlabel("compression ratio")
        ax.set_ylabel(f"{what} throughput (pages/s)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{what}: throughput against ratio (label: engine mode, settings)")
    handles = [Line2D([], [], ls="", marker="o", color=cmap(i % 10), label=b)
               for i, b in enumerate(backends)]
    handles += [Line2D([], [], ls="", marker=MODE_MARKERS.get(m, "o"), color="grey", label=m)
                for m in modes_seen]
    if shown:
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="none",
                              color="grey", label="hollow: not comparable (marks)"))
    axs[1].legend(handles=handles, loc="best", fontsize=8)
    fig.suptitle(f"sweep {Path(doc['sweep']['source']).name}: {len(recs)} runs")
    stamp_figure(fig, figure_provenance(doc))
    _mark_footnote(fig, [m for m in ALL_MARKS if m in shown])
    return fig


def _mark_footnote(fig: Any, marks: list[Mark]) -> None:
    """What each mark drawn in the figure means, in small print under it."""
    if not marks:
        return
    import textwrap

    text = "\n".join(textwrap.fill(f"{m.label}: {m.meaning.split(': ', 1)[-1]}", 140)
                     for m in marks)
    fig.get_layout_engine().set(h_pad=0.1)
    fig.supxlabel(text, fontsize=7, ha="left", x=0.01, color="#b22222")


def plot_throughput_vs_ratio(doc: dict[str, Any], path: str | Path) -> Path | None:
    """Write :func:`throughput_vs_ratio_figure` to ``path`` (None: no run succeeded)."""
    fig = throughput_vs_ratio_figure(doc)
    if fig is None:
        return None
    # whole or not at all, the figure closed; the commit and command in its metadata too
    return write_figure(fig, path, dpi=110,
                        metadata=figure_metadata(path, figure_provenance(doc)))


def _pair_key(rec: dict[str, Any]) -> str:
    import json

    s = {k: v for k, v in (rec.get("settings") or {}).items()
         if k != "backend" and not k.startswith("params.")}
    return json.dumps(s, sort_keys=True, default=str)


@dataclass(frozen=True)
class Speedup:
    """One bar of the speed-up plot: the geometric mean ``value`` of a backend's throughput
    over the baseline's, run for run; ``marks`` (empty when it compares): the marks of the
    figures it was made of, when no pair of runs had two comparable figures (its bar is then
    drawn hatched); ``runs`` the pairs in ``value``, ``left_out`` the pairs left out because a
    figure of theirs is marked (:func:`hwzswap.bench.marks.figure_marks`)."""

    value: float
    marks: tuple[str, ...] = ()
    runs: int = 1
    left_out: int = 0


def _geomean(vals: list[float]) -> float:
    return math.exp(sum(map(math.log, vals)) / len(vals))


def speedup_table(doc: dict[str, Any], baseline: str = BASELINE
                  ) -> dict[str, dict[str, dict[str, Speedup]]]:
    """``{mode: {backend: {"store"|"load": Speedup}}}``: each backend's throughput over the
    baseline's in the run with the same settings but the backend (and its params), ``mode``
    the backend's run's :func:`engine_mode` (``async/queue``: the design it took). A pair
    either of whose figures the bench marks (``†`` modelled, ``n/a`` vs raw, ``~`` staged,
    ``‡`` overlap, ``DEV FAILED``, ``!`` no writeback) is left out of the mean; when every pair
    is, the mean of those is kept, with their marks (``(both)`` when the baseline's figure has
    it too, ``lz4: …`` when only the baseline's has it)."""
    recs = _ok(doc)
    base: dict[str, dict[str, Any]] = {}
    for r in recs:
        if r["backend"] == baseline:
            base.setdefault(_pair_key(r), r)  # with a params axis: lz4's first value
    good: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    void: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    why: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for rec in recs:
        if rec["backend"] == baseline:
            continue
        ref = base.get(_pair_key(rec))
        if ref is None:
            continue
        for what, key in (("store", "store_pages_per_s"), ("load", "load_pages_per_s")):
            a, b = rec.get(key), ref.get(key)
            if not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                    and a > 0 and b > 0):
                continue
            k = (engine_mode(rec), rec["backend"], what)
            mine = [m.label for m in figure_marks(rec, what)]  # type: ignore[arg-type]
            theirs = [m.label for m in figure_marks(ref, what)]  # type: ignore[arg-type]
            marks = [f"{m} (both)" if m in theirs else m for m in mine]
            marks += [f"{baseline}: {m}" for m in theirs if m not in mine]
            if marks:
                void[k].append(a / b)
                why[k] += [m for m in marks if m not in why[k]]
            else:
                good[k].append(a / b)
    out: dict[str, dict[str, dict[str, Speedup]]] = defaultdict(lambda: defaultdict(dict))
    for k in list(dict.fromkeys([*good, *void])):
        mode, backend, what = k
        if good.get(k):
            sp = Speedup(_geomean(good[k]), (), len(good[k]), len(void.get(k, [])))
        else:
            sp = Speedup(_geomean(void[k]), tuple(why[k]), len(void[k]), 0)
        out[mode][backend][what] = sp
    return {m: dict(b) for m, b in out.items()}


def speedups(doc: dict[str, Any], baseline: str = BASELINE
             ) -> dict[str, dict[str, dict[str, float]]]:
    """``{mode: {backend: {"store": x, "load": y}}}``: the speed-ups that compare (geometric
    means over the pairs of runs whose figures the bench marks as valid,
    :func:`speedup_table`); a figure no valid pair gives is absent."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode, by in speedup_table(doc, baseline).items():
        for backend, whats in by.items():
            vals = {w: sp.value for w, sp in whats.items() if not sp.marks}
            if vals:
                out.setdefault(mode, {})[backend] = vals
    return out


def modes_in_order(doc: dict[str, Any], labels: list[str]) -> list[str]:
    """Engine-mode ``labels`` (:func:`engine_mode`) in the order of the sweep's ``batching``
    axis (async mode's designs together, where ``async`` stands), the others after them, each
    group as ``labels`` has it."""
    axis = [str(m) for m in (doc.get("sweep", {}).get("axes", {}).get("batching") or [])]
    rank: dict[str, int] = {}
    for rec in doc.get("records") or []:
        mode = _batching(rec)
        rank.setdefault(engine_mode(rec), axis.index(mode) if mode in axis else len(axis))
    return sorted(labels, key=lambda m: rank.get(m, len(axis)))


def speedup_figure(doc: dict[str, Any], baseline: str = BASELINE) -> Any:
    """Bars of each backend's speed-up over ``baseline``, grouped by engine mode, on a linear
    axis (a 0.85x bar is 0.85 of the line at 1) and each labelled with its value; None when
    the sweep has no pair of runs to compare. A speed-up made of figures the bench marks as
    not comparable (:func:`speedup_table`) is drawn grey and hatched, labelled with its marks
    (``0.25× † modelled``), and the marks are explained under the plot."""
    table = speedup_table(doc, baseline)
    if not table:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from hwzswap.bench.report import VOID_BAR

    modes = modes_in_order(doc, list(table))
    backends = list(dict.fromkeys(b for m in modes for b in table[m]))
    cmap = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(backends))
    fig, axs = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(modes) + 4), 5.5),
                            constrained_layout=True)
    labels_seen: list[str] = []
    for ax, what in ((axs[0], "store"), (axs[1], "load")):
        for i, b in enumerate(backends):
            xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(modes))]
            cells = [table[m].get(b, {}).get(what) for m in modes]
            ys = [c.value if c else float("nan") for c in cells]
            bars = ax.bar(xs, ys, width=width, label=b, color=cmap(i % 10))
            texts = []
            for bar, c in zip(bars, cells):
                if c is None:
                    texts.append("")
                elif c.marks:  # no valid pair: hatched, its marks said
                    bar.set(**{**VOID_BAR, "edgecolor": cmap(i % 10)})
                    texts.append(f"{c.value:.2f}×\n" + "\n".join(c.marks))
                    labels_seen += [m for m in c.marks if m not in labels_seen]
                else:
                    texts.append(f"{c.value:.2f}×" + (
                        f"\n({c.left_out} marked run{'s' * (c.left_out > 1)} left out)"
                        if c.left_out else ""))
            ax.bar_label(bars, labels=texts, fontsize=7, padding=2)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(modes)), modes)
        ax.set_xlabel("engine mode (zswap.batching; async: the backend's design)")
        ax.set_ylabel(f"{what} throughput / {baseline}'s")
        ax.set_ylim(bottom=0)
        ax.margins(y=0.2)
        ax.set_title(what)
        ax.grid(True, axis="y", alpha=0.3)
    handles = [Patch(facecolor=cmap(i % 10), label=b) for i, b in enumerate(backends)]
    if labels_seen:
        handles.append(Patch(label="not comparable (its marks)", **VOID_BAR))
    axs[1].legend(handles=handles, loc="best", fontsize=8)
    fig.suptitle(f"speed-up over {baseline}, run for run (same engine mode and settings)")
    stamp_figure(fig, figure_provenance(doc))
    used = [m for m in ALL_MARKS if any(m.label in lab for lab in labels_seen)]
    _mark_footnote(fig, used)
    return fig


def plot_speedup(doc: dict[str, Any], path: str | Path, baseline: str = BASELINE) -> Path | None:
    """Write :func:`speedup_figure` to ``path`` (None: no pair of runs to compare)."""
    fig = speedup_figure(doc, baseline)
    if fig is None:
        return None
    # whole or not at all, the figure closed; the commit and command in its metadata too
    return write_figure(fig, path, dpi=110,
                        metadata=figure_metadata(path, figure_provenance(doc)))


__all__ = ["BASELINE", "MODE_MARKERS", "Speedup", "check_group_by", "code_text", "engine_mode",
           "figure_provenance", "mark_notes", "markdown", "mixed_code_warning", "modes_in_order",
           "override_notes", "plot_speedup", "plot_throughput_vs_ratio", "point_label",
           "print_table", "provenance_lines", "speedup_figure", "speedup_table", "speedups",
           "table_rows", "throughput_vs_ratio_figure"]
