"""Presenting a results document: a rich table, a Markdown table and a one-figure PNG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from hwzswap.bench.marks import (
    ABOVE_RAW,
    HOST_DEVICE,
    MODELLED,
    POOL_SLACK,
    POOL_SLACK_SHARE,
    SWAP_FILE_LOADS,
    above_raw,
    cell_suffix,
    cpu_marks,
    density_marks,
    device_on_host,
    emulation_unseparated,
    figure_marks,
    no_writeback,
    pool_slack_dominates,
    pool_slack_pages,
    raw_marks,
    suffix,
    swap_file_loads,
    vs_raw_marks,
    vs_raw_na,
)
from hwzswap.bench.provenance import commit_words, figure_metadata, stamp_figure
from hwzswap.bench.results import UNLIKE_WORK_SHARE


def _rate(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def _us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _vs_raw(r: Mapping[str, Any], what: Literal["store", "load"]) -> str:
    """A "vs raw" cell: ``n/a`` when the stack and the codec alone did different work; else
    the ratio with its marks (``†`` a modelled device: emulation speed over emulation speed;
    ``?`` above 1: :func:`hwzswap.bench.marks.vs_raw_marks`)."""
    if vs_raw_na(r, what):
        return "n/a"
    return _x(r[f"{what}_vs_raw"]) + suffix(vs_raw_marks(r, what))


_REJECT_ABBREV = {"compress_poor": "poor", "compress_fail": "fail", "alloc_fail": "alloc",
                  "reclaim_fail": "reclaim", "pool_limit": "limit"}


def skipped_label(s: Mapping[str, Any]) -> str:
    """A skipped entry's name: the backend, and the mode when only that mode's row was
    skipped (an async design the device cannot take)."""
    mode = s.get("batching")
    return f"{s['backend']} ({mode})" if mode else str(s["backend"])


def engine_mode(r: Mapping[str, Any]) -> str:
    """The mode column: ``zswap.batching``, and for ``async`` how its batches reached the
    device (``async/queue``: ops on the device's own queue; ``async/worker``: the worker's
    batch calls)."""
    mode = r.get("batching", "-")
    how = r.get("async_submit")
    return f"{mode}/{how}" if mode == "async" and how else mode


def _rejects(r: Mapping[str, int]) -> str:
    parts = [f"{_REJECT_ABBREV.get(k, k)}:{v}" for k, v in r.items() if v]
    return " ".join(parts) or "0"


COLUMNS = (
    ("backend", "left"),
    ("mode", "left"),
    ("basis", "left"),
    ("ratio", "right"),
    ("pool\ndensity", "right"),
    ("store\npg/s", "right"),
    ("raw\npg/s", "right"),
    ("vs\nraw", "right"),
    ("load\npg/s", "right"),
    ("raw\npg/s", "right"),
    ("vs\nraw", "right"),
    ("store µs/pg\np50/p99", "right"),
    ("load µs/pg\np50/p99", "right"),
    ("CPU\nµs/pg", "right"),
    ("device\nµs/pg", "right"),
    ("wall\nµs/pg", "right"),
    ("written\nback", "right"),
    ("swap\nin/out", "right"),
    ("rejects", "left"),
    ("errors\nraw/st/ld", "right"),
    ("verified", "right"),
)


def _pct(v: float) -> str:
    if not v:
        return "0"
    return f"{v:.1%}" if v >= 0.001 else f"{v:.2%}"


def _errors(r: Mapping[str, Any]) -> str:
    """Device-error rates by phase: raw pass (compress and decompress together), stack stores,
    stack loads; "-" when no fault was seen (a driver fault counts); "DEV FAILED" after it when
    the device was marked failed during the run."""
    f = r.get("faults") or {}
    failed = " DEV FAILED" if r.get("device_failed") else ""
    if not f.get("any"):
        return "-" + failed
    raw = f["raw"]
    raw_rate = raw["store_error_rate"] + raw["load_error_rate"]
    return (f"{_pct(raw_rate)}/{_pct(f['store']['error_rate'])}/{_pct(f['load']['error_rate'])}"
            + failed)


def rows(doc: Mapping[str, Any]) -> list[list[str]]:
    """One row of strings per result, in :data:`COLUMNS` order, then one FAILED row per
    backend (and mode) that failed."""
    out = []
    machine = doc.get("machine") if isinstance(doc.get("machine"), Mapping) else None
    for r in doc["results"]:
        verified = f"{r['verified_pages']}/{r['pages']}"
        if r["mismatches"]:
            verified += f" ({r['mismatches']} BAD)"
        if r.get("load_failures"):
            verified += f" ({r['load_failures']} LOST)"
        # n/a: a realtime clock; *: emulation excluded; †: a modelled device's emulation that
        # could not be separated, so it is in the figure; +: an OpenCL device on the host's
        # cores, its threads in the figure (hwzswap.bench.marks.cpu_marks)
        mark = cpu_marks(r, machine)
        cpu = "n/a" if mark == "n/a" else _us(r["host_cpu_us_per_page"]) + mark
        written = str(r["written_back_pages"])
        if no_writeback(r):
            written += " !"
        out.append([
            r["backend"],
            engine_mode(r),
            "modelled" if r["time_basis"] == "modeled" else r["time_basis"],
            "n/a" if r.get("ratio") is None else f"{r['ratio']:.2f}",
            "-" if r.get("pool_density") is None
            else f"{r['pool_density']:.0%}" + suffix(density_marks(r)),
            # † a modelled device (host wall time, its emulation included; the codec alone's
            # figure too), ‡ async overlap, § loads from a page-cached swap file
            _rate(r["store_pages_per_s"]) + cell_suffix(figure_marks(r, "store")),
            _rate(r["raw_store_pages_per_s"]) + suffix(raw_marks(r)),
            _vs_raw(r, "store"),
            _rate(r["load_pages_per_s"]) + cell_suffix(figure_marks(r, "load")),
            _rate(r["raw_load_pages_per_s"])
            + (suffix(raw_marks(r)) if r["raw_load_pages_per_s"] is not None else ""),
            _vs_raw(r, "load"),
            f"{_us(r['store_us']['p50'])}/{_us(r['store_us']['p99'])}",
            f"{_us(r['load_us']['p50'])}/{_us(r['load_us']['p99'])}",
            cpu,
            "n/a" if r.get("device_figures_note") else _us(r.get("device_us_per_page")),
            _us(r.get("wall_us_per_page")),
            written,
            f"{r['swap_reads']}/{r['swap_writes']}",
            _rejects(r["rejects"]),
            _errors(r),
            verified,
        ])
    for f in doc.get("failed", []):
        if f.get("phase") in ("close", "device"):  # a device failure has its result row
            continue
        row = ["-"] * len(COLUMNS)
        row[0] = f["backend"]
        row[1] = f.get("batching", "-")
        row[2] = "FAILED"
        row[-1] = f"FAILED ({f.get('phase', 'run')})"
        out.append(row)
    return out


def _mix(mix: Any) -> str:
    """A folio mix as ``1:75% 16:25%`` (``-`` when empty)."""
    from hwzswap.bench.workload import mix_text

    return mix_text(mix) or "-"


def _title(doc: Mapping[str, Any]) -> str:
    w = doc["workload"]
    corpus = w.get("corpus", {})
    names = [f.split(".pages")[0] for f in corpus.get("files", [])]
    if corpus.get("source") == "bundled":
        src = f"bundled corpus ({', '.join(names)})"
    else:
        src = ", ".join(names) or "recorded pages"
    if w.get("file"):
        src = f"{Path(w['file']).name}: {src}"
    st = w.get("structure") or {}
    if st:
        mix = _mix(st.get("folio_mix", []))
        got = w.get("folio_mix_stored")
        if got is not None and _mix(got) != mix:  # what the stream's stores actually got
            mix = f"{mix} requested, {_mix(got)} stored" + (
                " (see note)" if w.get("folio_mix_note") else "")
        shape = (f" · reclaim {st.get('reclaim_batch')} folios · readahead "
                 f"{st.get('load_batch')} · folio pages {mix}")
    else:
        batch = (w.get("params") or {}).get("load_batch", 1)
        shape = f" · loads in readahead batches of {batch}" if batch and batch > 1 else ""
    head = "INTERRUPTED, partial run · " if doc.get("interrupted") else ""
    return f"{head}workload {w['name']} · {w['pages']} pages · seed {w['seed']}{shape} · {src}"


def _machine_line(doc: Mapping[str, Any]) -> str:
    m = doc["machine"]
    ocl = "; ".join(d["name"] for d in m.get("opencl_devices", [])) or "none"
    return (f"{m['cpu']} · {m['cores']} cores · {m['python']} · {m['os']} · "
            f"OpenCL: {ocl}")


#: What the µs/pg percentiles are, said under every table that has a row.
PER_PAGE_TIMES_NOTE = (
    "store/load µs/pg p50/p99: each call's time divided by the pages it moved, one value per "
    "page (a reclaim pass of 44 pages gives each of its pages the pass's time / 44), not the "
    "latency of a page; in async mode the store figures are submission times")


def _per_call(r: Mapping[str, Any]) -> str:
    """``store p50/p99 µs`` a call from a row's per-call percentiles (``store_call_us``,
    ``load_call_us``: the whole call's time, a reclaim pass or a readahead cluster, when the
    row has them; the bench stores a pass in one call in every mode, ``page`` mode cutting it
    inside the engine); empty otherwise."""
    parts = []
    for what in ("store", "load"):
        pct = r.get(f"{what}_call_us")
        if isinstance(pct, Mapping) and pct.get("p50") is not None:
            parts.append(f"{what} {_us(pct['p50'])}/{_us(pct.get('p99'))} µs p50/p99")
    return ", ".join(parts)


def _unlike_parts(r: Mapping[str, Any]) -> list[str]:
    """Why a row's ``vs raw`` cells are n/a: its store and load notes, once each (the same
    words for both are said once). When the codec alone has no load figure either (``-``: it
    decompressed nothing, every page incompressible), the load side says so rather than
    what the raw pass would have decompressed."""
    store, load = r.get("store_vs_raw_note"), r.get("load_vs_raw_note")
    if load and r.get("raw_load_pages_per_s") is None:
        load = ("loads: the codec alone decompressed nothing either (no page it compressed "
                "to decompress: raw load -), so neither side has a load figure to compare")
    return [n for n in (store, load if load != store else None) if n]


def _label(r: Mapping[str, Any]) -> str:
    return f"{r['backend']} ({r.get('batching', '-')})"


def _config_notes(doc: Mapping[str, Any]) -> list[str]:
    """Notes on what the rows ran under: a null ratio (``ratio_note``), the pool limit and
    where it came from (``pool_limit_note``: each distinct one, or what sets it when the rows
    have many), a ``swap.path`` not used (``swap_path_note``), and the modelled swap device's
    time (``*_with_swap_model``, ``swap_model_note``)."""
    res = list(doc["results"])
    notes = [f"ratio n/a: {_label(r)}: {r['ratio_note']}" for r in res
             if r.get("ratio") is None and r.get("ratio_note")]
    limits: dict[str, list[str]] = {}
    for r in res:
        if r.get("pool_limit_note"):
            limits.setdefault(r["pool_limit_note"], []).append(_label(r))
    if 0 < len(limits) <= 3:
        for text, who in limits.items():
            rows_ = "every row" if len(who) == len(res) else ", ".join(who)
            notes.append(f"{text} ({rows_})")
    elif limits:
        sources = sorted({str(r.get("pool_limit_source")) for r in res
                          if r.get("pool_limit_note")})
        notes.append(f"pool limit: {len(limits)} different limits ({', '.join(sources)}), "
                     "one per row: pool_limit_note in the JSON")
    path = (doc.get("config") or {}).get("swap_path_note") or next(
        (r["swap_path_note"] for r in res if r.get("swap_path_note")), None)
    if path:
        notes.append(f"swap.path: {path}")
    modelled = [r for r in res if r.get("swap_model") not in (None, "none")]
    if modelled:
        names = sorted({str(r["swap_model"]) for r in modelled})
        notes.append(
            f"with the modelled swap device ({', '.join(names)}; its time added to the "
            "host's, serially), store/load pages/s: " + "; ".join(
                f"{_label(r)} {_rate(r.get('store_pages_per_s_with_swap_model'))}/"
                f"{_rate(r.get('load_pages_per_s_with_swap_model'))}" for r in modelled)
            + "; the table's pg/s are the host's alone")
        notes += [f"{_label(r)}: {r['swap_model_note']}" for r in modelled
                  if r.get("swap_model_note")]
    return notes


def commit_text(doc: Mapping[str, Any]) -> str:
    """The commit the figures were measured at, ``(modified)`` after it when tracked files
    differed from it (``git_dirty``: the code measured is not that commit's); ``unknown (not a
    git checkout)`` when not run from one."""
    return commit_words((doc.get("machine") or {}).get("hwzswap"))


def _provenance(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document's command, time and commit, as :mod:`hwzswap.bench.provenance` words
    them (for the Markdown's head and the figure's foot and metadata)."""
    info = (doc.get("machine") or {}).get("hwzswap") or {}
    return {"command": doc.get("command"), "created": doc.get("created"),
            "git_commit": info.get("git_commit"), "git_dirty": info.get("git_dirty"),
            "machine": doc.get("machine") or {}}


#: What a modelled row's codec-alone figures are, said under the † note.
MODELLED_RAW_NOTE = (
    f"{MODELLED.symbol} on raw pg/s and vs raw: the codec-alone pass calls the same emulated "
    "device (its compress and decompress run the emulation on the host too), so raw pg/s is emulation "
    "speed and vs raw compares emulation speed with emulation speed, not the stack's cost "
    "around the modelled device. The modelled device's own figures are in the JSON: for the "
    "stack device_us_per_page, device_overlap (busy_union_us_per_page, exposed_us_per_page, "
    "hidden_share, engine_parallelism, waited_us_per_page) and "
    "modeled_wall_us_per_page; for the codec alone backend_counters_raw (842-nx: device_us, "
    "device_waited_us, emulation_us over the raw pass)")


def _above_raw_notes(doc: Mapping[str, Any]) -> list[str]:
    """The ``?`` note: each ``vs raw`` above 1, with what else than noise can explain it in
    that row (an ``async`` store figure that leaves out compression done during timed loads,
    ``‡``; a batch backend whose ``async`` engine merged passes into larger device calls than
    the codec alone's one per pass; loads from staged copies, ``~``)."""
    parts = []
    for r in doc["results"]:
        for what in ("store", "load"):
            if not above_raw(r, what):
                continue
            part = f"{_label(r)} {what} {_x(r[f'{what}_vs_raw'])}"
            if what == "store" and r.get("store_overlaps_loads"):
                part += (" (‡: or its store figure left out the compression done while loads "
                         "were timed)")
            elif what == "store" and r.get("batching") == "async" and _batch(r):
                part += (" (or the engine merged passes into larger device calls than the "
                         "codec alone's one per pass)")
            elif what == "load" and r.get("load_figure_staged"):
                part += " (~: or its loads were staged copies, no decompression)"
            parts.append(part)
    if not parts:
        return []
    return [f"{ABOVE_RAW.symbol} vs raw above 1: " + ", ".join(parts) + ". The stack did the "
            "codec alone's work on the same pages and its own besides, so it cannot be faster "
            "for the same work: noise or cache effects in this run (the two are timed side by "
            "side, chunk by chunk, but a pass can still favour one); rerun with more --repeat "
            "on a quiet machine before reading it as a gain"]


def _batch(r: Mapping[str, Any]) -> bool:
    """Whether the row's backend takes batches (``capabilities.batch``): the codec-alone pass
    then makes one ``compress_batch`` per reclaim pass."""
    return bool((r.get("capabilities") or {}).get("batch"))


def _density_notes(doc: Mapping[str, Any]) -> list[str]:
    """What pool density depends on, under any table with a pool, and the rows whose pool is
    small enough that zsmalloc's fixed slack is :data:`POOL_SLACK_SHARE` of it or more (``°``)."""
    res = [r for r in doc["results"] if r.get("pool_peak_pages")]
    if not res:
        return []
    slack = {pool_slack_pages(r) for r in res} - {None}
    slack_words = ("/".join(f"{v:.0f}" for v in sorted(slack)) + " pages" if slack
                   else "no figure for this pool")
    note = ("pool density: compressed bytes over the pool's pages at its peak; it depends on "
            "the codec's ratio and on how many objects the pool holds: zsmalloc keeps a "
            "part-filled zspage in each size class in use, a fixed slack of about "
            f"{slack_words} once the objects spread over the classes (the layout's zspages, "
            "half their slots empty on average), so a small pool reads low (one run, zstd "
            "roundtrip: 0.22, 0.47, 0.77 at 256, 1024, 4096 pages); compare densities only "
            "between rows of like pool size")
    small = [r for r in res if pool_slack_dominates(r)]
    if small:
        peaks = sorted(int(r["pool_peak_pages"]) for r in small)
        span = f"{peaks[0]}" if peaks[0] == peaks[-1] else f"{peaks[0]}-{peaks[-1]}"
        who = (f"every row (pool peaks {span} pages)" if len(small) == len(res) else
               ", ".join(f"{_label(r)} {r['pool_peak_pages']} pages" for r in small))
        note += (f"; {POOL_SLACK.symbol}: that slack is a quarter or more of the pool's peak "
                 f"(a peak of at most {1 / POOL_SLACK_SHARE:.0f}x the slack): " + who
                 + ", whose density says more about the pool's size than the codec's (more "
                 "--pages, or under pressure a larger pool, shows the codec)")
    return [note]


def _batch_calls_notes(doc: Mapping[str, Any]) -> list[str]:
    """For batch backends, what their ``vs raw`` compares per engine mode: the codec alone
    makes one ``compress_batch`` per reclaim pass; ``page`` and ``folio`` mode call the device
    per page or per folio (their vs raw is the mode's cost), ``async`` may merge passes into
    larger device calls (``worker``) or submit them as ops to the device's queue (``queue``)
    (``counters.async_device_calls``; its vs raw includes either)."""
    res = [r for r in doc["results"] if _batch(r)
           and r.get("batching") in ("page", "folio", "async")]
    if not res:
        return []
    passes = ((doc.get("workload") or {}).get("counts") or {}).get("store_ops")
    parts = []
    for r in res:
        mode = r.get("batching")
        if mode == "page":
            parts.append(f"{_label(r)} calls the device per page")
        elif mode == "folio":
            parts.append(f"{_label(r)} per folio")
        else:
            calls = (r.get("counters") or {}).get("async_device_calls")
            counted = isinstance(calls, int) and not isinstance(calls, bool)
            if r.get("async_submit") == "queue":  # ops on the device's queue, no batch call
                part = f"{_label(r)} submits each pass's pages as ops to the device's queue"
                if counted:
                    part += f" ({calls} submit calls)"
            else:
                part = f"{_label(r)} merges queued passes"
                if counted:
                    part += f" (into {calls} device calls)"
            parts.append(part)
    return ["vs raw of a batch backend: the codec alone makes one compress_batch per reclaim "
            "pass" + (f" ({passes} for this stream)" if isinstance(passes, int) else "")
            + "; in the stack " + "; ".join(parts) + ". So page and folio mode's vs raw is "
            "what calling the device per page or folio costs, and async's includes the "
            "engine's merging of passes into larger device calls (async/worker) or its ops "
            "on the device's queue (async/queue; counters.async_device_calls)"]


def overlap_note(r: Mapping[str, Any], said: dict[str, str] | None = None) -> str:
    """The note on a modelled row's ``device_overlap`` (842-nx's own accounting, see
    ``hwzswap.backends.nx842.queue``): its busy time as a union over the engines, the part of
    it the host was blocked on the device (``exposed_us_per_page``; of which parked waiting
    for another thread that fed it), ``hidden_share`` = 1 - exposed / union (the device's time
    that overlapped the host's own work), and apart from it the engine parallelism (busy summed
    over the engines / the union), so that engines working at once never read as overlap.

    A ``hidden_note`` (the ``virtual`` clock: 0 by construction; a ``realtime`` clock: no
    figure) is said with the first row that has it, and named after it for the others
    (``said``: note -> the row that said it, filled in here). A null ``hidden_share`` beside
    a ``waited_us_per_page`` gives the waited time and the reason, never a share. A document
    from before the union accounting (no ``busy_union_us_per_page``) says what its older
    ``hidden_share`` meant."""
    ov = r["device_overlap"]
    said = {} if said is None else said
    label = _label(r)
    busy, waited = ov.get("busy_us_per_page"), ov.get("waited_us_per_page")
    hidden, why = ov.get("hidden_share"), ov.get("hidden_note")
    text = f"{label}: modelled device ({ov.get('clock') or 'virtual'} clock)"
    if "busy_union_us_per_page" not in ov:  # an older document
        text += f" busy {_us(busy)} µs/page summed over its engines"
        if waited is not None:
            text += f", the host waited {_us(waited)} µs/page for it"
        if hidden is not None:
            text += (f"; hidden_share {hidden:.0%} is an older build's 1 − waited / busy "
                     "summed over the engines, which counts engines working at once as "
                     "hidden: no measure of overlap with the host's work")
        return text
    union, exposed = ov.get("busy_union_us_per_page"), ov.get("exposed_us_per_page")
    parked, par = ov.get("exposed_parked_us_per_page"), ov.get("engine_parallelism")
    if union is not None:
        text += f" busy {_us(union)} µs/page as a union over its engines"
    else:
        text += f" busy {_us(busy)} µs/page summed over its engines"
    if hidden is not None and exposed is not None and union is not None:
        text += f"; the host was blocked on it (exposed) for {_us(exposed)} µs/page of that"
        if parked:
            text += (f", {_us(parked)} of it parked waiting for another thread that fed the "
                     "device")
        if why:  # a share set by the clock, not by the accounting (the virtual clock: 0)
            text += ("; the rest, device time while the host was not blocked, is no overlap "
                     f"on this clock ({hidden:.0%} hidden)")
        else:
            text += (", the rest overlapped the host's own work (1 − exposed / union: "
                     f"{hidden:.0%} hidden)")
    else:
        if waited is not None:
            text += f"; the host waited {_us(waited)} µs/page for it"
        text += "; no overlap share"
    if why:
        if why in said:
            text += f" ({why.split(':')[0]}, as for {said[why]})"
        elif why == r.get("host_cpu_note"):
            text += " (see its CPU n/a note)"
        else:
            said[why] = label
            text += f": {why}"
    if par is not None:
        text += (f"; engine parallelism {par:.2f} (busy summed over the engines, "
                 f"{_us(busy)} µs/page, over the union: engines working at once, not overlap)")
    if hidden is not None and waited is not None:
        text += f"; the clock's moves that were waits: {_us(waited)} µs/page"
    return text


def _pressure_notes(doc: Mapping[str, Any]) -> list[str]:
    """Under pressure, the share of the workload's pages each row's pool held
    (``pool_held_share_at_peak``, and ``_at_end`` where not 0: the pressure the row got,
    which the same limit makes different per codec), for rows whose pool was sized, hit its
    limit or wrote back; and the background writeback the bench finished at chunk ends
    (``quiesce_writeback_us_per_page``, ``quiesce_written_back_pages``), which is in the
    store figure."""
    res = doc["results"]
    notes = []
    held = [r for r in res if r.get("pool_held_share_at_peak") is not None
            and (r.get("pool_sizing") or r.get("pool_limit_hit") or r.get("written_back_pages"))]
    if held:
        parts = []
        for r in held:
            part = f"{_label(r)} {r['pool_held_share_at_peak']:.0%} at its peak"
            if r.get("pool_held_share_at_end"):
                part += f", {r['pool_held_share_at_end']:.0%} at the end"
            parts.append(part)
        pages = (doc.get("workload") or {}).get("pages")
        whole = f"the workload's {pages} pages" if pages else "the workload's pages"
        fracs = sorted({float(r["pool_sizing"]["held_fraction"]) for r in held
                        if isinstance(r.get("pool_sizing"), Mapping)
                        and isinstance(r["pool_sizing"].get("held_fraction"), (int, float))})
        sized = ("; each sized limit was the pool pages its backend took to hold "
                 + "/".join(f"{f:.0%}" for f in fracs) + " of them (pool_sizing.fraction_pages)"
                 if fracs else "")
        notes.append(f"working set held in the pool (the pressure each row got): the share of "
                     f"{whole} the pool held, its compressed bytes × the row's ratio "
                     "(pool_held_share_at_peak): " + ", ".join(parts) + sized)
    bg = [r for r in res if r.get("quiesce_written_back_pages")
          or r.get("quiesce_writeback_us_per_page")]
    if bg:
        notes.append("background writeback finished at chunk ends (zswap.background_writeback: "
                     "the bench brings the worker to rest before each raw chunk), in the "
                     "store pg/s as async's drain is: " + ", ".join(
                         f"{_label(r)} {_us(r.get('quiesce_writeback_us_per_page'))} µs per "
                         f"page stored, {r.get('quiesce_written_back_pages', 0)} pages "
                         "written back" for r in bg))
    return notes


def _notes(doc: Mapping[str, Any]) -> list[str]:
    notes = []
    machine = doc.get("machine") if isinstance(doc.get("machine"), Mapping) else None
    if doc.get("interrupted"):
        notes.append("INTERRUPTED: " + str(doc.get("interrupted_note") or "partial run"))
    if doc["workload"].get("folio_mix_note"):
        notes.append("folio mix: " + doc["workload"]["folio_mix_note"])
    if doc["results"]:
        notes.append(PER_PAGE_TIMES_NOTE)
    calls = [_per_call(r) for r in doc["results"]]
    if any(calls):
        notes.append("per call (the whole store or load call, batched modes): " + "; ".join(
            f"{r['backend']} ({r.get('batching', '-')}): {c}"
            for r, c in zip(doc["results"], calls) if c))
    if any(r.get("emulation_us_per_page") is not None and not r.get("host_cpu_note")
           for r in doc["results"]):
        notes.append("* host CPU excludes the emulated device's own work (emulation_us), "
                     "which runs on the host")
    unseparated = [_label(r) for r in doc["results"] if emulation_unseparated(r)]
    if unseparated:
        notes.append("CPU †: host CPU includes the emulated device's own work for "
                     + ", ".join(unseparated) + ": the emulation's time could not be separated "
                     "(no emulation_us could be read from the backend around the row's work)")
    emulated = [r for r in doc["results"] if r["time_basis"] == "modeled"]
    if emulated:
        parts = []
        for r in emulated:
            part = f"{r['backend']} ({r.get('batching', '-')})"
            emu, wall = r.get("emulation_us_per_page"), r.get("wall_us_per_page")
            if emu and wall is not None and emu > wall:
                # several emulation threads at once (the realtime clock's engines): their
                # time adds up past the wall time, so it is not a part of it
                part += (f": {wall} µs/page wall; the emulation's threads ran "
                         f"{emu} µs/page in all, beside the host")
            elif emu is not None:
                part += f": {wall} µs/page wall, {emu} of it emulation"
            else:  # no emulation figure (e.g. its device marked failed): say so, with the wall
                part += (f": {wall} µs/page wall, the "
                         "emulation included: its time could not be separated (no "
                         "emulation_us read from the backend around this row's work"
                         + ("; the device was marked failed" if r.get("device_failed") else "")
                         + ")")
            if r.get("modeled_wall_us_per_page"):
                part += f", {r['modeled_wall_us_per_page']} µs/page with the modelled device"
            parts.append(part)
        notes.append("† modelled device: throughput and latency are host wall time, the "
                     "software emulation of the device included (not the modelled device's "
                     "speed); modeled_wall_us_per_page replaces the emulation by the time the "
                     "host waited for the modelled device: " + "; ".join(parts))
        notes.append(MODELLED_RAW_NOTE)
    quiet = [f"{r['backend']} ({r.get('batching', '-')})" for r in doc["results"]
             if no_writeback(r)]
    if quiet:
        notes.append("! no writeback: " + ", ".join(quiet) + " never wrote a page back; these "
                     "figures measure no pressure")
    staged = [f"{r['backend']} ({r.get('batching', '-')}) {r['load_staged_share']:.0%}"
              for r in doc["results"] if r.get("load_figure_staged")]
    if staged:
        notes.append("~ loads served from staged copies: " + ", ".join(staged) + " of the "
                     "loads found their page still in flight (async: in the swap cache, not "
                     "yet compressed), so those load figures measure copies, not "
                     "decompression, and are not compared; a longer stream (more --pages) "
                     "faults on fewer pages in flight")
    cached = [f"{_label(r)} {r['load_swap_share']:.0%}" for r in doc["results"]
              if swap_file_loads(r)]
    if cached:
        notes.append(f"{SWAP_FILE_LOADS.symbol} loads read from the swap file: "
                     + ", ".join(cached) + " of the loads; with swap.model: none the swap "
                     "file is an ordinary file in the page cache, so such a load is a RAM copy, "
                     "cheaper than decompressing, and the load pg/s rewards writing back (the "
                     "more a row wrote back, the faster its loads look); its vs raw is n/a. "
                     "Set swap.model (hdd, ssd or custom) for figures with a device's read "
                     "time: load_pages_per_s_with_swap_model, in a note and the JSON")
    notes += _above_raw_notes(doc)
    hosted = [r for r in doc["results"] if cpu_marks(r, machine).endswith(HOST_DEVICE.symbol)]
    if hosted:
        devices = sorted({str(device_on_host(r, machine)) for r in hosted})
        notes.append(f"{HOST_DEVICE.symbol} host CPU includes the OpenCL device's own "
                     f"threads: {', '.join(_label(r) for r in hosted)} ran on "
                     + ", ".join(f"opencl:{d}" for d in devices) + ", a CPU device (its type "
                     "in machine.opencl_devices; PoCL's pthread device), whose kernels run on "
                     "the host's cores as threads of this process: real host CPU on this "
                     "machine, but not what a discrete device (a GPU, an accelerator) would "
                     "cost the host, and not comparable with a CPU codec's CPU per page as the "
                     "cost of offloading")
    notes += _density_notes(doc)
    notes += _pressure_notes(doc)
    notes += _batch_calls_notes(doc)
    over = [f"{r['backend']} ({r.get('batching', '-')}) {r['pool_peak_pages']} pages "
            f"(+{r['pool_overshoot_pages'] / r['pool_limit_pages']:.0%})"
            for r in doc["results"] if r.get("pool_overshoot")]
    if over:
        limits = sorted({r["pool_limit_pages"] for r in doc["results"] if r.get("pool_overshoot")})
        notes.append("pool over its limit (" + "/".join(map(str, limits)) + " pages): "
                     + ", ".join(over) + " at its peak; at the limit zswap checks a pass "
                     "folio by folio before compressing (each refused folio reclaiming before "
                     "the next is checked) and stores the rest of the pass from the first "
                     "folio it has room for, so a pass can go past the limit by the folios "
                     "after that one; in async mode passes in flight add up until they land, "
                     "where the check is made again; so the modes overshoot by different "
                     "amounts")
    unlike = [f"{r['backend']} ({r.get('batching', '-')}): " + "; ".join(_unlike_parts(r))
              for r in doc["results"]
              if r.get("store_vs_raw_note") or r.get("load_vs_raw_note")]
    if unlike:
        notes.append("n/a vs raw: the stack skipped work the codec alone was timed on, so "
                     "the ratio would compare different work: " + "; ".join(unlike))
    if any((r.get("faults") or {}).get("any") for r in doc["results"]):
        notes.append("errors: device-error rates of the raw pass (compress + decompress), the "
                     "stack's stores and the stack's loads (driver faults, timeouts and "
                     "contract violations in faults.driver); every page is still verified")
    if any(r.get("store_overlaps_loads") for r in doc["results"]):
        notes.append("‡ async: store pg/s times the submissions and the drain that ends each "
                     "chunk; compression the worker does while a load call is timed is billed "
                     "to the load figure (and while the harness checks pages, to neither), so "
                     "async store and load figures share the overlapped compression and "
                     "neither compares alone with another mode's; wall µs/pg (all of a "
                     "chunk's time per page stored or loaded) does")
    said: dict[str, str] = {}  # hidden_note -> the first row that said it
    for r in doc["results"]:
        ov = r.get("device_overlap")
        if r.get("device_figures_note"):
            notes.append(f"{r['backend']} ({r.get('batching', '-')}): device µs/pg n/a, no "
                         f"overlap or modelled wall time: {r['device_figures_note']}")
        elif ov:
            notes.append(overlap_note(r, said))
        if r.get("host_cpu_note"):
            notes.append(f"{r['backend']} ({r.get('batching', '-')}): CPU n/a: "
                         f"{r['host_cpu_note']}")
    notes += _config_notes(doc)
    summary = mode_summary(doc)
    if summary:
        notes.append(MODES_COMPARED_NOTE)
    notes += summary
    for s in doc.get("skipped", []):
        notes.append(f"skipped {skipped_label(s)}: {s['reason']}")
    for f in doc.get("failed", []):
        mode = f" ({f['batching']})" if f.get("batching") else ""
        notes.append(f"FAILED {f['backend']}{mode} [{f.get('phase', 'run')}]: {f['error']}")
    return notes


def mode_summary(doc: Mapping[str, Any]) -> list[str]:
    """With several engine modes, one line per backend: its best mode for stores by the
    same-run share of the codec alone (``store_vs_raw``, not pages/s, which drift between
    modes run one after another; :func:`_best_store_line`) beside v9's ``page`` mode (what the
    engine design is worth to that backend; none named when
    a mode's stack never compressed more than :data:`UNLIKE_WORK_SHARE` of its stores, refused
    at the pool limit or failed beyond the codec alone's failures, when more than that share of
    a mode's stores failed on the device, or when a mode's device was marked failed: the modes
    then did different work); its best mode for loads (by ``load_vs_raw`` where every
    candidate has one) among those whose loads were not mostly
    served from staged copies (``load_figure_staged``: such a figure measures copies of pages
    in flight, not decompression); and, when the modes did alike work, the mode with the least
    wall time per page moved (every mode's work however it overlaps: ``async`` bills
    compression that overlaps timed loads to the loads)."""
    if len(doc.get("batching") or []) < 2:
        return []
    out = []
    by: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in doc["results"]:
        by.setdefault(r["backend"], {})[r.get("batching", "-")] = r
    for backend, modes in by.items():
        refused = {m: r.get("store_refused_share") or 0.0 for m, r in modes.items()}
        errors = {m: ((r.get("faults") or {}).get("store") or {}).get("error_rate") or 0.0
                  for m, r in modes.items()}
        dead = sorted(m for m, r in modes.items() if r.get("device_failed"))
        alike = False  # the modes did the same work: their whole-stream figures compare too
        if dead:
            # its stores were refused without compressing: the figure is not the device's
            line = (f"{backend}: no best store mode named: the device was marked failed in "
                    f"{', '.join(dead)} (store errors: "
                    + ", ".join(f"{m} {v:.0%}" for m, v in errors.items()) + ")")
        elif max(refused.values()) > UNLIKE_WORK_SHARE:
            # a mode that refused or failed many stores did less work: not comparable
            line = (f"{backend}: no best store mode named: the modes met different loads "
                    "(stores never compressed by the stack: "
                    + ", ".join(f"{m} {v:.0%}" for m, v in refused.items()) + ")")
        elif max(errors.values()) > UNLIKE_WORK_SHARE:
            line = (f"{backend}: no best store mode named: stores failed on the device "
                    "(store errors: " + ", ".join(f"{m} {v:.0%}" for m, v in errors.items())
                    + ")")
        else:
            alike = True
            line = _best_store_line(backend, modes)
        # a mode whose loads were mostly staged copies measured no decompression: not a rival
        fair = {m: r for m, r in modes.items()
                if r["load_pages_per_s"] and not r.get("load_figure_staged")}
        swap = {m: r.get("load_swap_share") or 0.0 for m, r in modes.items()}
        if fair and max(swap.values()) > UNLIKE_WORK_SHARE:
            # loads read from the swap file decompress nothing, in different shares per mode
            line += ("; no best load mode named: loads read from the swap file, not "
                     "decompressed: " + ", ".join(f"{m} {v:.0%}" for m, v in swap.items()))
        elif fair:
            # by the same-run share of the codec alone, as for stores (pages/s drift); by
            # pages/s only when a mode has no such share
            by_ratio = all(isinstance(r.get("load_vs_raw"), (int, float)) for r in fair.values())
            key = "load_vs_raw" if by_ratio else "load_pages_per_s"
            best_m, best_r = max(fair.items(), key=lambda kv: kv[1][key])
            rate = _rate(best_r["load_pages_per_s"])
            line += (f"; loads best in {best_m} ({_vs_raw(best_r, 'load')} raw, {rate} pages/s"
                     if by_ratio else f"; loads best in {best_m} ({rate}")
            if by_ratio and above_raw(best_r, "load"):
                line += f", {ABOVE_RAW.symbol} above 1: see its note"
            if best_r.get("load_staged_share"):
                line += f", {best_r['load_staged_share']:.0%} of them from staged copies"
            line += ")"
            left = sorted(m for m, r in modes.items() if r.get("load_figure_staged"))
            if left:
                line += f" ({', '.join(left)} not compared: loads from staged copies)"
        elif any(r.get("load_figure_staged") for r in modes.values()):
            line += "; no mode's load figure measured decompression (loads from staged copies)"
        # the whole stream's wall time per page moved: every mode's work, however it overlaps
        walls = {m: r["wall_us_per_page"] for m, r in modes.items() if r.get("wall_us_per_page")}
        if walls and alike:
            best_w = min(walls, key=walls.__getitem__)
            line += (f"; least wall time per page stored or loaded: {best_w} "
                     f"({_us(walls[best_w])} µs)")
        out.append(line)
    return out


#: What the engine-mode lines compare, said once under the table.
MODES_COMPARED_NOTE = (
    "engine modes are compared by vs raw (the stack's throughput over the codec alone's, "
    "timed side by side in the same run), not by pages/s: the modes run one after another "
    "and the machine's speed drifts between them (the codec alone's own figure moves too); "
    "'N x page mode' is the best mode's vs raw over page mode's")


def _best_store_line(backend: str, modes: Mapping[str, Mapping[str, Any]]) -> str:
    """The best store mode of ``backend`` by its same-run share of the codec alone
    (``store_vs_raw``), with page mode's share beside it. A mode whose store figure the report
    says does not compare is not a candidate: ``n/a`` vs raw (different work), a device marked
    failed, an ``async`` figure that shares its compression with timed loads
    (``store_overlaps_loads``)."""
    left: dict[str, str] = {}
    cand: dict[str, Mapping[str, Any]] = {}
    for m, r in modes.items():
        vs = r.get("store_vs_raw")
        if r.get("device_failed"):
            left[m] = "device marked failed"
        elif r.get("store_vs_raw_note") or not isinstance(vs, (int, float)) or vs <= 0:
            left[m] = "n/a vs raw"
        elif r.get("store_overlaps_loads"):
            left[m] = "its figure shares compression with timed loads"
        else:
            cand[m] = r
    if not cand:
        return (f"{backend}: no best store mode named: no mode's store figure compares ("
                + "; ".join(f"{m}: {why}" for m, why in left.items()) + ")")
    best_mode, best = max(cand.items(), key=lambda kv: kv[1]["store_vs_raw"])
    line = (f"{backend}: best store mode {best_mode} by vs raw, {_vs_raw(best, 'store')} "
            f"({_rate(best['store_pages_per_s'])} pages/s)")
    page = cand.get("page")
    if page is not None:
        line += (f" = {best['store_vs_raw'] / page['store_vs_raw']:.2f}x page mode "
                 f"({_vs_raw(page, 'store')})")
    late = [m for m in cand if m != best_mode and m == "async"]
    if late:  # each chunk ends in a drain: the pipeline's fill and empty are in its figure
        line += f" (async {_vs_raw(cand[late[0]], 'store')}: a lower bound for long runs)"
    shown = [best] + [r for r in (page, cand[late[0]] if late else None) if r is not None]
    if any(above_raw(r, "store") for r in shown):
        line += (f" ({ABOVE_RAW.symbol} vs raw above 1: noise or cache effects unless the "
                 f"{ABOVE_RAW.symbol} note names a cause; rerun with more --repeat on a quiet "
                 "machine before reading it as a gain)")
    if left:
        line += " (not compared: " + "; ".join(f"{m}: {why}" for m, why in left.items()) + ")"
    return line


def print_table(doc: Mapping[str, Any], console: Any = None) -> None:
    """The results as a rich table, with skipped/failed backends listed under it."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rich import box

    console = console or Console()
    all_rows = rows(doc)
    widths = [max([len(line) for line in name.split("\n")] + [len(r[i]) for r in all_rows])
              for i, (name, _) in enumerate(COLUMNS)]
    # one table when it fits, else two (speed; space and counters), else three
    space = [0, 1, 3, 4, *range(16, len(COLUMNS))]
    layouts = [
        [list(range(len(COLUMNS)))],
        [[0, 1, 2, *range(5, 16)], space],
        [[0, 1, 2, *range(5, 11)], [0, 1, *range(11, 16)], space],
    ]
    for groups in layouts:
        if all(sum(widths[i] + 3 for i in g) <= console.width for g in groups):
            break
    for n, cols in enumerate(groups):
        # every string is plain Text: names come from files and drivers, never rich markup
        table = Table(title=Text(f"hwzswap bench: {_title(doc)}") if n == 0 else None,
                      caption=Text(_machine_line(doc)) if n == len(groups) - 1 else None,
                      header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
        for i in cols:
            name, justify = COLUMNS[i]
            table.add_column(name, justify=justify, no_wrap=True)
        for j, row in enumerate(all_rows):
            r = doc["results"][j] if j < len(doc["results"]) else None
            bad = (r is None or r["mismatches"] or r.get("load_failures")
                   or r.get("device_failed"))
            table.add_row(*(Text(row[i]) for i in cols), style="red" if bad else None)
        console.print(table)
    for note in _notes(doc):
        loud = note.startswith(("FAILED", "INTERRUPTED"))
        console.print(note, style="red" if loud else "dim", markup=False, highlight=False)


def markdown(doc: Mapping[str, Any]) -> str:
    """The results as a Markdown section: title, machine, table, notes."""
    head = [name.replace("\n", " ") for name, _ in COLUMNS]
    align = ["---:" if j == "right" else "---" for _, j in COLUMNS]
    lines = [
        f"**{_title(doc)}**",
        "",
        f"Command: `{doc.get('command') or '?'}`",
        "",
        f"Machine: {_machine_line(doc)}. Measured {doc.get('created', '?')} "
        f"({doc.get('generator', '')}, commit {commit_text(doc)}).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(align) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(doc)]
    notes = _notes(doc)
    if notes:
        lines.append("")
        # a note that starts with a list marker would nest a list: "+" is escaped, kept
        lines += [f"- {n.lstrip('*! ')}" if n[:1] in "*!" else
                  f"- \\{n}" if n[:1] in "+-" else f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _tick(v: float, _pos: Any = None) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _store_mark(r: Mapping[str, Any]) -> str:
    """Why a row's store figures are not a valid comparison, as the table marks it (empty:
    they are): ``DEV FAILED`` (the device was marked failed), ``n/a vs raw`` (the stack did
    different work from the codec alone)."""
    keys = {m.key: m for m in figure_marks(r, "store")}
    return next((keys[k].label for k in ("device_failed", "unlike") if k in keys), "")


def _load_mark(r: Mapping[str, Any]) -> str:
    """As :func:`_store_mark` for the loads, plus ``~ staged`` (a quarter or more of the
    loads were staged copies, not decompression: ``load_figure_staged``)."""
    keys = {m.key: m for m in figure_marks(r, "load")}
    return next((keys[k].label for k in ("device_failed", "staged", "unlike") if k in keys), "")


#: How a bar the report does not count as a valid figure is drawn: grey, hatched, labelled.
VOID_BAR = {"facecolor": "#d9d9d9", "hatch": "//", "edgecolor": "#7f7f7f"}


def figure(doc: Mapping[str, Any]) -> Any:
    """The comparison figure (a matplotlib ``Figure``, for :func:`plot` to write): throughput
    through the stack and of the codec alone, the ratio, store and load time per page p50/p99
    (call time ÷ pages; an ``async`` row's store figures are submission times, marked so),
    and the time per page stored or loaded: wall time (``wall_us_per_page``, the figure that
    compares engine modes), host CPU and, for a modelled device, its modelled time.

    Bars are linear, so their heights compare. A figure the table marks as not valid is drawn
    grey and hatched (:data:`VOID_BAR`) with the table's mark over its group: ``DEV FAILED``,
    ``~ staged`` loads, ``n/a vs raw``; a null compression ratio has no bar, only ``n/a``."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    results = list(doc["results"])
    modes = {r.get("batching") for r in results}
    sep = " " if len(results) > 10 else "\n"
    names = [r["backend"] + (f"{sep}{r.get('batching')}" if len(modes) > 1 else "")
             + (f"{sep}(modelled)" if r["time_basis"] == "modeled" else "") for r in results]
    x = np.arange(len(results))
    stack_c, raw_c, p99_c, dev_c = "#1f77b4", "#aec7e8", "#ff7f0e", "#2ca02c"
    wall_c, cpu_c = "#17becf", "#8c564b"

    # many rows (backends x engine modes): wider panels and upright labels
    crowded = len(results) > 10
    width_in = max(16.0, 1.2 * len(results))
    fig, axes = plt.subplots(2, 3, figsize=(width_in, 10 if crowded else 9),
                             constrained_layout=True)
    tick_kw = {"fontsize": 7, "rotation": 90} if crowded else {"fontsize": 8}
    # a long title (a folio-mix note, a long corpus name) is wrapped, never cut at the edges
    chars = int(width_in * 72 / (11 * 0.62))
    head = textwrap.wrap(f"hwzswap bench — {_title(doc)}", chars) or [""]
    fig.suptitle("\n".join(head + textwrap.wrap(_machine_line(doc), chars)), fontsize=11)
    stamp_figure(fig, _provenance(doc))  # the commit and command, in small print
    void_legend = Patch(label="not comparable (see its label)", **VOID_BAR)

    def group(ax: Any, series: list[tuple[str, list[float | None], str]], title: str,
              ylabel: str, note: list[str] | None = None,
              void: list[str] | None = None) -> None:
        """Bars side by side per row, one per series (label, values, colour), on a linear
        axis; ``note`` over each group, at its tallest bar. ``void``: per row, the mark of a
        figure that is not valid (its bars drawn :data:`VOID_BAR`, the mark as its note)."""
        w = 0.76 / len(series)
        vals = [[v or 0.0 for v in vs] for _, vs, _ in series]
        void = void or [""] * len(results)
        handles = []
        for k, ((label, _, colour), vs) in enumerate(zip(series, vals)):
            bars = ax.bar(x + (k - (len(series) - 1) / 2) * w, vs, w, color=colour)
            handles.append(Patch(facecolor=colour, label=label))  # not a void bar's look
            for bar, mark in zip(bars, void):
                if mark:  # grey and hatched, its outline in the series' colour
                    bar.set(**{**VOID_BAR, "edgecolor": colour})
        labels = [m or (note[j] if note else "") for j, m in enumerate(void)]
        for j, text in enumerate(labels):  # centred over the group, at the tallest bar
            if text:
                ax.annotate(text, (x[j], max(vs[j] for vs in vals)), ha="center",
                            va="bottom", fontsize=7 if crowded else 8, xytext=(0, 2),
                            textcoords="offset points",
                            color="#b22222" if void[j] else "black")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xticks(x, names, **tick_kw)
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        ax.margins(y=0.12)
        ax.legend(handles=handles + ([void_legend] if any(void) else []), fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    def xnote(what: Literal["store", "load"]) -> list[str]:
        """Each row's vs raw as a label, with the table's marks on it (``†``, ``?``)."""
        key = f"{what}_vs_raw"
        return [f"{r[key]:.2f}×" + suffix(vs_raw_marks(r, what)) if r.get(key) else ""
                for r in results]

    store_void = [_store_mark(r) for r in results]
    load_void = [_load_mark(r) for r in results]
    failed_void = ["DEV FAILED" if r.get("device_failed") else "" for r in results]
    group(axes[0, 0], [("through the stack", [r["store_pages_per_s"] for r in results], stack_c),
                       ("codec alone", [r["raw_store_pages_per_s"] for r in results], raw_c)],
          "Store throughput (higher is better)\nlabel: stack ÷ codec alone", "pages/s",
          xnote("store"), store_void)
    group(axes[0, 1], [("through the stack", [r["load_pages_per_s"] for r in results], stack_c),
                       ("codec alone", [r["raw_load_pages_per_s"] for r in results], raw_c)],
          "Load throughput (higher is better)\nlabel: stack ÷ codec alone", "pages/s",
          xnote("load"), load_void)

    ax = axes[0, 2]
    ratios = [r.get("ratio") for r in results]
    dens = [r.get("pool_density") for r in results]
    rb = ax.bar(x, [v or 0.0 for v in ratios], 0.6, color="#9467bd")
    for rect, rt, d in zip(rb, ratios, dens):
        pool = "-" if d is None else f"{d:.0%}"
        text = ("n/a" if rt is None else
                f"{rt:.2f}\n{pool}" if crowded else f"{rt:.2f}\npool {pool}")
        ax.annotate(text, (rect.get_x() + rect.get_width() / 2, rect.get_height()), ha="center",
                    va="bottom", fontsize=6 if crowded else 8, xytext=(0, 2),
                    textcoords="offset points", color="#b22222" if rt is None else "black")
    counted = ("same-filled pages counted"
               if any(r.get("ratio_counts_same_filled") for r in results) else "not same-filled")
    ax.set_title(f"Compression ratio (Σ orig / Σ compressed, {counted})\n"
                 "label: pool density at peak; n/a: no page compressed", fontsize=10)
    ax.set_xticks(x, names, **tick_kw)
    ax.set_ylim(0, max([v for v in ratios if v is not None] + [1.0]) * 1.25)
    ax.grid(axis="y", alpha=0.3)

    # async: a store call returns once its pass is submitted, so its figure is no latency
    submitted = ["submit" if r.get("batching") == "async" else "" for r in results]
    group(axes[1, 0], [("p50", [r["store_us"]["p50"] for r in results], stack_c),
                       ("p99", [r["store_us"]["p99"] for r in results], p99_c)],
          "Store time per page (call ÷ pages; lower is better)"
          + ("\nasync (label submit): submission time, not latency" if any(submitted)
             else ""), "µs", submitted if any(submitted) else None, failed_void)
    group(axes[1, 1], [("p50", [r["load_us"]["p50"] for r in results], stack_c),
                       ("p99", [r["load_us"]["p99"] for r in results], p99_c)],
          "Load time per page (call ÷ pages; lower is better)", "µs", None,
          [m if m != "n/a vs raw" else "" for m in load_void])
    time_series = [
        ("wall (all of the stack's time)", [r.get("wall_us_per_page") for r in results], wall_c),
        ("host CPU", [r.get("host_cpu_us_per_page") for r in results], cpu_c),
    ]
    # a row whose device timed out or was marked failed: the model's time counts deadlines,
    # not the device's work (the table says n/a): no bar, labelled so
    no_dev = ["device n/a" if r.get("device_figures_note") else "" for r in results]
    if any(r.get("device_us_per_page") is not None for r in results):
        time_series.append(("modelled device",
                            [None if v else r.get("device_us_per_page")
                             for r, v in zip(results, no_dev)], dev_c))
    group(axes[1, 2], time_series,
          "Time per page stored or loaded (lower is better)\n"
          "wall time compares engine modes", "µs", no_dev if any(no_dev) else None,
          failed_void)
    if not results:
        for a in axes.flat:
            a.text(0.5, 0.5, "no backend ran", ha="center", va="center",
                   transform=a.transAxes)
    return fig


def plot(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write :func:`figure` to ``path``.

    The format follows ``path``'s suffix (a PNG without one), written under exactly ``path``,
    atomically (a failed or interrupted write leaves no partial image).
    """
    from hwzswap.fileio import write_figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_figure(figure(doc), path, dpi=110,
                        metadata=figure_metadata(path, _provenance(doc)))


__all__ = ["COLUMNS", "figure", "markdown", "mode_summary", "overlap_note", "plot", "print_table",
           "rows"]
