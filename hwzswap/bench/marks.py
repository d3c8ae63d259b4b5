"""Which figures of a bench result row do not compare, and why: the marks of the bench's table.

One place decides them from a row of the results JSON (``results[i]``, or a sweep record,
which holds the same fields), so the bench's table and plot and the sweep's table and plots
mark the same figures the same way:

* ``†`` a modelled device (``time_basis`` ``modeled``): its throughput is host wall time, the
  software emulation of the device included, not the modelled device's speed;
* ``~`` loads mostly served from staged copies (``load_figure_staged``): copies, not
  decompression;
* ``‡`` an ``async`` store figure that shares its compression with timed loads
  (``store_overlaps_loads``);
* ``n/a vs raw`` the stack did different work from the codec alone (``store_vs_raw_note``,
  ``load_vs_raw_note``: stores refused or failed, loads read from the swap file);
* ``DEV FAILED`` the device was marked failed during the run (``device_failed``);
* ``!`` a workload meant to fill its pool wrote nothing back (``writeback_expected`` and not
  ``saw_writeback``): the figures measure no pressure.

A figure with any of these marks is not a valid comparison with another row's: the sweep
keeps it out of its speed-ups, or draws it hatched with its marks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["store", "load"]


@dataclass(frozen=True)
class Mark:
    """One reason a figure does not compare: ``symbol`` as a table cell shows it, ``cell``
    whether it is appended to the throughput cell (else it shows in its own column),
    ``label`` for a plot, ``meaning`` for the note under a table."""

    key: str
    symbol: str
    cell: bool
    label: str
    meaning: str


DEVICE_FAILED = Mark(
    "device_failed", "DEV FAILED", False, "DEV FAILED",
    "DEV FAILED: the device was marked failed during the run; the stack then refused its stores without "
    "compressing them, so the figures do not measure the device")
UNLIKE = Mark(
    "unlike", "n/a", False, "n/a vs raw",
    "n/a vs raw: the stack skipped work the codec alone was timed on (stores refused or "
    "failed, loads read from the swap file), so the figure is not the codec's work")
MODELLED = Mark(
    "modelled", "†", True, "† modelled",
    "† modelled device: throughput is host wall time, the software emulation of the device "
    "included (not the modelled device's speed)")
STAGED = Mark(
    "staged", "~", True, "~ staged",
    "~ loads served from staged copies (async: pages still in flight), so the load figure "
    "measures copies, not decompression")
OVERLAP = Mark(
    "overlap", "‡", True, "‡ overlaps loads",
    "‡ async: the store figure shares its compression with timed loads "
    "(store_overlaps_loads), so it does not compare alone with another mode's")
NO_WRITEBACK = Mark(
    "no_writeback", "!", False, "! no writeback",
    "! no writeback: a workload meant to fill its pool never wrote a page back, so the "
    "figures measure no pressure")

#: Every mark, in the order they are listed.
ALL_MARKS = (DEVICE_FAILED, UNLIKE, MODELLED, STAGED, OVERLAP, NO_WRITEBACK)


def vs_raw_na(r: Mapping[str, Any], what: Direction) -> bool:
    """Whether the row's ``<what>_vs_raw`` is ``n/a``: the stack and the codec alone did
    different work (its ``_note`` says why)."""
    return bool(r.get(f"{what}_vs_raw_note"))


def no_writeback(r: Mapping[str, Any]) -> bool:
    """A workload meant to fill its pool (``writeback_expected``) that wrote nothing back."""
    return bool(r.get("writeback_expected")) and not r.get("saw_writeback", True)


def figure_marks(r: Mapping[str, Any], what: Direction) -> tuple[Mark, ...]:
    """The marks of the row's ``what`` (``store`` or ``load``) throughput, in
    :data:`ALL_MARKS` order; empty when the figure compares."""
    out = []
    if r.get("device_failed"):
        out.append(DEVICE_FAILED)
    if vs_raw_na(r, what):
        out.append(UNLIKE)
    if r.get("time_basis") == "modeled":
        out.append(MODELLED)
    if what == "load" and r.get("load_figure_staged"):
        out.append(STAGED)
    if what == "store" and r.get("store_overlaps_loads"):
        out.append(OVERLAP)
    if no_writeback(r):
        out.append(NO_WRITEBACK)
    return tuple(out)


def cell_suffix(marks: tuple[Mark, ...]) -> str:
    """What a throughput cell shows after its figure: `` †``, `` † ~`` … (the marks that
    have no column of their own)."""
    return "".join(f" {m.symbol}" for m in marks if m.cell)


def comparable(r: Mapping[str, Any], what: Direction) -> bool:
    """Whether the row's ``what`` throughput is a valid comparison (no mark)."""
    return not figure_marks(r, what)


def emulation_unseparated(r: Mapping[str, Any]) -> bool:
    """A modelled row whose emulation time is unknown (``emulation_us_per_page`` null: the
    backend reports no ``emulation_us``, or its counters could not be read around the row's
    chunks): its host CPU and wall time hold the emulation, not taken out. A figure of 0.0 is
    known (the device did no emulated work, e.g. every request refused as busy)."""
    return (r.get("time_basis") == "modeled" and r.get("emulation_us_per_page") is None
            and not r.get("host_cpu_note"))


def cpu_mark(r: Mapping[str, Any]) -> str:
    """The mark of the row's host CPU cell: ``n/a`` (a ``realtime`` device clock,
    ``host_cpu_note``), ``*`` (the emulated device's own work excluded), ``†`` (a modelled
    device whose emulation could not be separated: it is included), or empty."""
    if r.get("host_cpu_note"):
        return "n/a"
    if r.get("emulation_us_per_page") is not None:
        return "*"
    if emulation_unseparated(r):
        return "†"
    return ""


__all__ = ["ALL_MARKS", "DEVICE_FAILED", "MODELLED", "Mark", "NO_WRITEBACK", "OVERLAP",
           "STAGED", "UNLIKE", "cell_suffix", "comparable", "cpu_mark", "emulation_unseparated",
           "figure_marks", "no_writeback", "vs_raw_na"]
