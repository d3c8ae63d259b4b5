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
* ``§`` loads read from the swap file under ``swap.model: none`` (``load_swap_share`` over
  :data:`~hwzswap.bench.results.UNLIKE_WORK_SHARE`): the file sits in the page cache, so those
  loads are RAM copies and the load figure rewards writing back;
* ``!`` a workload meant to fill its pool wrote nothing back (``writeback_expected`` and not
  ``saw_writeback``): the figures measure no pressure.

A figure with any of these marks is not a valid comparison with another row's: the sweep
keeps it out of its speed-ups, or draws it hatched with its marks.

Other cells have marks of their own (:func:`vs_raw_marks`, :func:`cpu_marks`,
:func:`density_marks`); they say what a figure holds, not that the row's throughput does not
compare:

* ``†`` on ``raw pg/s`` and ``vs raw`` of a modelled device: the codec-alone pass runs the same
  emulation, so both sides are emulation speed;
* ``?`` a ``vs raw`` above 1: the stack beat the codec alone on the same pages (noise or
  cache effects, or a cause the note names);
* ``+`` host CPU that holds an OpenCL device's own threads: the device is a CPU device
  (PoCL), so its work runs on the host's cores;
* ``°`` a pool density read on a pool small enough that zsmalloc's fixed per-class slack is a
  quarter of it or more (:data:`POOL_SLACK_SHARE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hwzswap.bench.results import UNLIKE_WORK_SHARE

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
    "included (not the modelled device's speed); the codec-alone pass runs the same "
    "emulation, so its raw figure and vs raw compare emulation speed with emulation speed")
STAGED = Mark(
    "staged", "~", True, "~ staged",
    "~ loads served from staged copies (async: pages still in flight), so the load figure "
    "measures copies, not decompression")
OVERLAP = Mark(
    "overlap", "‡", True, "‡ overlaps loads",
    "‡ async: the store figure shares its compression with timed loads "
    "(store_overlaps_loads), so it does not compare alone with another mode's")
SWAP_FILE_LOADS = Mark(
    "swap_file_loads", "§", True, "§ swap-file loads",
    "§ loads read from the swap file with swap.model: none: the file is in the page cache, so "
    "those loads are RAM copies, cheaper than decompressing, and the load figure rewards "
    "writing back; a swap.model (hdd, ssd) adds a device's read time "
    "(load_pages_per_s_with_swap_model)")
NO_WRITEBACK = Mark(
    "no_writeback", "!", False, "! no writeback",
    "! no writeback: a workload meant to fill its pool never wrote a page back, so the "
    "figures measure no pressure")

#: Every mark of a throughput figure, in the order they are listed.
ALL_MARKS = (DEVICE_FAILED, UNLIKE, MODELLED, STAGED, SWAP_FILE_LOADS, OVERLAP, NO_WRITEBACK)

ABOVE_RAW = Mark(
    "above_raw", "?", False, "? vs raw above 1",
    "? vs raw above 1: the stack did the codec alone's work on the same pages and more, so it "
    "cannot be faster: noise or cache effects in this run (rerun with more --repeat on a "
    "quiet machine), unless the note names another cause")
HOST_DEVICE = Mark(
    "host_device", "+", False, "+ device on the host CPU",
    "+ host CPU includes the OpenCL device's own threads: a CPU device (PoCL) runs its "
    "kernels on the host's cores; real host CPU on this machine, not what a discrete device "
    "would cost the host")
POOL_SLACK = Mark(
    "pool_slack", "°", False, "° small pool",
    "° pool small enough that zsmalloc's fixed slack (a part-filled zspage per size class) is "
    "a quarter of it or more: the density measures the stream's size more than the codec")

#: The marks of other cells: ``raw pg/s`` and ``vs raw``, host CPU, pool density.
OTHER_MARKS = (MODELLED, ABOVE_RAW, HOST_DEVICE, POOL_SLACK)

#: A pool density is marked (``°``) when zsmalloc's expected fixed slack is at least this share
#: of the pool's peak (as a quarter of the loads marks a staged load figure).
POOL_SLACK_SHARE = 0.25


def vs_raw_na(r: Mapping[str, Any], what: Direction) -> bool:
    """Whether the row's ``<what>_vs_raw`` is ``n/a``: the stack and the codec alone did
    different work (its ``_note`` says why)."""
    return bool(r.get(f"{what}_vs_raw_note"))


def no_writeback(r: Mapping[str, Any]) -> bool:
    """A workload meant to fill its pool (``writeback_expected``) that wrote nothing back."""
    return bool(r.get("writeback_expected")) and not r.get("saw_writeback", True)


def swap_file_loads(r: Mapping[str, Any]) -> bool:
    """More than :data:`~hwzswap.bench.results.UNLIKE_WORK_SHARE` of the row's loads were read
    from the swap file (``load_swap_share``) with no modelled swap device (``swap_model``
    ``none``, or absent in an older document): those loads copied a page-cached file, so the
    load figure is faster the more the stack wrote back."""
    share = r.get("load_swap_share")
    return (r.get("swap_model") in (None, "none") and isinstance(share, (int, float))
            and share > UNLIKE_WORK_SHARE)


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
    if what == "load" and swap_file_loads(r):
        out.append(SWAP_FILE_LOADS)
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


def above_raw(r: Mapping[str, Any], what: Direction) -> bool:
    """The row's ``<what>_vs_raw`` is above 1 (and not ``n/a``): the stack beat the codec
    alone on the same pages."""
    v = r.get(f"{what}_vs_raw")
    return not vs_raw_na(r, what) and isinstance(v, (int, float)) and v > 1.0


def vs_raw_marks(r: Mapping[str, Any], what: Direction) -> tuple[Mark, ...]:
    """The marks of the row's ``vs raw`` cell (none when it is ``n/a``): :data:`MODELLED` (both
    sides are emulation speed) and :data:`ABOVE_RAW`."""
    if vs_raw_na(r, what):
        return ()
    out = []
    if r.get("time_basis") == "modeled":
        out.append(MODELLED)
    if above_raw(r, what):
        out.append(ABOVE_RAW)
    return tuple(out)


def raw_marks(r: Mapping[str, Any]) -> tuple[Mark, ...]:
    """The marks of the row's codec-alone (``raw pg/s``) cells: :data:`MODELLED` for a modelled
    device, whose codec-alone pass calls the same emulation."""
    return (MODELLED,) if r.get("time_basis") == "modeled" else ()


def suffix(marks: tuple[Mark, ...]) -> str:
    """Every mark's symbol after a cell's figure: `` † ?``."""
    return "".join(f" {m.symbol}" for m in marks)


def _device_types(text: str) -> set[str]:
    """``"ALL | CPU"`` (pyopencl's device type string) as ``{"ALL", "CPU"}``."""
    return {p.strip().upper() for p in text.split("|") if p.strip()}


def device_on_host(r: Mapping[str, Any], machine: Mapping[str, Any] | None = None) -> str | None:
    """The row's OpenCL device when it is a CPU device (PoCL's ``pthread`` device), whose
    kernels run on host threads that count as the process's CPU; None otherwise.

    The row's ``capabilities.device`` is ``opencl:<name>``; the device's type is looked up by
    name in ``machine.opencl_devices`` (the bench document's ``machine``, or a sweep record's
    own), its ``type`` a CPU and not a GPU or accelerator. Without that list the backend's
    ``description`` says it (``... on opencl:<name> (cpu, platform ...)``)."""
    label = str((r.get("capabilities") or {}).get("device") or "")
    if not label.startswith("opencl:"):
        return None
    name = label[len("opencl:"):]
    if machine is None:
        machine = r.get("machine") if isinstance(r.get("machine"), Mapping) else None
    for d in (machine or {}).get("opencl_devices") or []:
        if isinstance(d, Mapping) and d.get("name") == name:
            kinds = _device_types(str(d.get("type") or ""))
            return name if "CPU" in kinds and not kinds & {"GPU", "ACCELERATOR"} else None
    return name if f"{label} (cpu," in str(r.get("description") or "") else None


def cpu_marks(r: Mapping[str, Any], machine: Mapping[str, Any] | None = None) -> str:
    """What the row's host CPU cell shows after its figure: :func:`cpu_mark`'s mark and
    :data:`HOST_DEVICE`'s ``+`` when its OpenCL device runs on the host CPU
    (:func:`device_on_host`); ``n/a`` alone when the figure is n/a."""
    mark = cpu_mark(r)
    if mark == "n/a":
        return mark
    out = " †" if mark == "†" else mark
    if device_on_host(r, machine):
        out += f" {HOST_DEVICE.symbol}"
    return out


def pool_slack_pages(r: Mapping[str, Any]) -> float | None:
    """zsmalloc's expected fixed slack in pages for the row's pool: each size class of the
    layout keeps one part-filled zspage, which, its fill even over 1..n objects of its n,
    has (n - 1) / 2n of its pages empty on average (277 pages for the default 8-page chains:
    119 classes, 590 zspage pages). A stream of a few hundred pages fills fewer classes, so
    this is what a pool tends to once its objects spread over the classes (measured: 285-337
    pages of slack at 1024 and 4096 pages, lz4 and zstd). None for another pool (zbud) or a
    layout that cannot be built."""
    from hwzswap.errors import HwzswapError
    from hwzswap.pool.zsmalloc import ZSMALLOC_CHAIN_SIZE, zs_layout

    pool = (r.get("config") or {}).get("pool") or {}
    if pool.get("type", "zsmalloc") != "zsmalloc":
        return None
    try:
        layout = zs_layout(int(pool.get("max_pages_per_zspage") or ZSMALLOC_CHAIN_SIZE))
    except (HwzswapError, TypeError, ValueError):
        return None
    return sum(c.pages_per_zspage * (c.objs_per_zspage - 1) / (2 * c.objs_per_zspage)
               for c in layout.classes)


def pool_slack_dominates(r: Mapping[str, Any]) -> bool:
    """The row's pool peaked at few enough pages that zsmalloc's expected fixed slack
    (:func:`pool_slack_pages`) is :data:`POOL_SLACK_SHARE` of it or more."""
    peak = r.get("pool_peak_pages")
    if not isinstance(peak, (int, float)) or peak <= 0 or r.get("pool_density") is None:
        return False
    slack = pool_slack_pages(r)
    return slack is not None and slack >= POOL_SLACK_SHARE * peak


def density_marks(r: Mapping[str, Any]) -> tuple[Mark, ...]:
    """The marks of the row's pool density cell: :data:`POOL_SLACK`."""
    return (POOL_SLACK,) if pool_slack_dominates(r) else ()


__all__ = ["ABOVE_RAW", "ALL_MARKS", "DEVICE_FAILED", "HOST_DEVICE", "MODELLED", "Mark",
           "NO_WRITEBACK", "OTHER_MARKS", "OVERLAP", "POOL_SLACK", "POOL_SLACK_SHARE", "STAGED",
           "SWAP_FILE_LOADS", "UNLIKE", "above_raw", "cell_suffix", "comparable", "cpu_mark",
           "cpu_marks", "density_marks", "device_on_host", "emulation_unseparated",
           "figure_marks", "no_writeback", "pool_slack_dominates", "pool_slack_pages",
           "raw_marks", "suffix", "swap_file_loads", "vs_raw_marks", "vs_raw_na"]
