"""``hwzswap bench`` and ``hwzswap record`` (``hwzswap capture`` lives in :mod:`capture`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hwzswap.cliargs import (
    check_outputs,
    file_name,
    output_file,
    positive_int,
    seed,
)
from hwzswap.errors import OutputError, WorkloadError

#: Pages a built-in workload takes from the corpus unless ``--pages`` says otherwise.
DEFAULT_PAGES = 4096
#: Passes per backend: the median of three shrugs off one preempted pass on a busy machine.
DEFAULT_REPEAT = 3


def load_corpus(corpus: str | None, pages: int | None) -> tuple[Any, dict[str, Any]]:
    """The workload's pages from a page file (or the bundled corpus) and a note of the source.

    ``pages`` (default: :data:`DEFAULT_PAGES` or the whole corpus if smaller) are spread evenly
    over the corpus; the bundled corpus shares them among its sources by size.
    """
    from hwzswap.bench import corpus as corpus_mod
    from hwzswap.bench.workload import select_pages

    if corpus is None:
        full = corpus_mod.load_bundled()
        n = min(DEFAULT_PAGES, full.shape[0]) if pages is None else pages
        if n > full.shape[0]:
            raise WorkloadError(
                f"the bundled corpus holds {full.shape[0]} pages, fewer than the {n} asked "
                f"for; pass --pages {full.shape[0]} or less, or a larger page file with --corpus"
            )
        chosen = full if n == full.shape[0] else corpus_mod.load_bundled(max_pages=n)
        files = [p.name for p in corpus_mod.bundled_corpus_paths()]
        source = "bundled"
    else:
        full = corpus_mod.load_pages(corpus)
        n = min(DEFAULT_PAGES, full.shape[0]) if pages is None else pages
        chosen = select_pages(full, n, source=str(corpus))
        files = [Path(corpus).name]
        source = "file"
    if full.shape[0] == 0:
        raise WorkloadError(f"{files[0] if files else 'the corpus'} holds no pages")
    info = {
        "source": source,
        "files": files,
        "sha256": corpus_mod.corpus_hash(full),
        "pages": int(full.shape[0]),
        "selected": int(chosen.shape[0]),
        **{k: v for k, v in corpus_mod.describe(chosen).items() if k.endswith("_share")},
    }
    return chosen, info


def make_workload(workload: str, corpus: str | None, pages: int | None, seed: int | None,
                  load_batch: int | None = None, reclaim_batch: int | None = None,
                  folio_pages: str | None = None) -> tuple[Any, dict[str, Any]]:
    """A built-in workload by name over the corpus, or a recorded workload file.

    ``reclaim_batch`` (``--reclaim-batch``: folios per reclaim pass), ``load_batch``
    (``--load-batch``: the readahead cluster) and ``folio_pages`` (``--folio-pages``: the
    folio-size mix) shape a built-in workload's stream; None leaves the workload's default
    (32, 8, and :data:`~hwzswap.bench.workload.DEFAULT_FOLIO_MIX`). Returns the workload and
    extra fields for the results' ``workload`` object.
    """
    from hwzswap.bench.workload import (
        WORKLOAD_FILE_FIXES,
        WORKLOADS,
        build_workload,
        is_workload_file,
        read_header,
        load_workload,
        parse_folio_mix,
    )

    if workload in WORKLOADS:
        params: dict[str, Any] = {}
        if reclaim_batch is not None:
            params["reclaim_batch"] = reclaim_batch
        if load_batch is not None:
            params["load_batch"] = load_batch
        if folio_pages is not None:
            params["folio_mix"] = parse_folio_mix(folio_pages, "--folio-pages")
        chosen, info = load_corpus(corpus, pages)
        return build_workload(workload, chosen, seed=0 if seed is None else seed,
                              corpus=info, **params), {}
    path = Path(workload)
    if path.exists():
        if not path.is_file():  # a FIFO or a device: refused by what it is, without blocking
            read_header(path)
        if not is_workload_file(path):
            raise WorkloadError(
                f"{path}: not a workload file; built-in workloads are {', '.join(WORKLOADS)} "
                "(a page file goes with --corpus)"
            )
        given = {"corpus": corpus, "pages": pages, "seed": seed, "load_batch": load_batch,
                 "reclaim_batch": reclaim_batch, "folio_pages": folio_pages}
        fixed = ["--" + name.replace("_", "-") for name in WORKLOAD_FILE_FIXES
                 if given[name] is not None]
        if fixed:
            raise WorkloadError(
                f"{path} is a recorded workload: its pages, page count, seed, reclaim passes, "
                f"folios and readahead clusters are fixed; drop {', '.join(fixed)}"
            )
        return load_workload(path), {"file": str(path)}
    from hwzswap.yamlfile import did_you_mean

    raise WorkloadError(
        f"--workload {workload!r} is neither a built-in workload ({', '.join(WORKLOADS)}) "
        f"nor an existing workload file{did_you_mean(workload, WORKLOADS)}"
    )


def describe_structure(structure: dict[str, Any]) -> str:
    """``reclaim 32 · readahead 8 · folios 1:75% 16:25%`` (what a stream was cut into)."""
    if not structure:
        return ""
    from hwzswap.bench.workload import mix_text

    try:
        mix = mix_text(structure.get("folio_mix", []))
    except (TypeError, ValueError):  # not pairs of numbers: shown as given, never a traceback
        mix = str(structure.get("folio_mix"))[:60]
    return (f"reclaim {structure.get('reclaim_batch')} · readahead "
            f"{structure.get('load_batch')} · folios {mix}")


#: The formats ``--plot`` writes, chosen by the file name's suffix.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before the run, an output option that could not be written at its end (or that
    names one of the run's input files, or another output's file)."""
    check_outputs([("--json", args.json, ()), ("--markdown", args.markdown, ()),
                   ("--plot", args.plot, PLOT_SUFFIXES)],
                  inputs=[("--config", args.config), ("--corpus", args.corpus),
                          ("--workload", args.workload)])


def _check_arguments(
        args: argparse.Namespace) -> tuple[list[str], list[str], Any, frozenset[str]]:
    """Everything checkable before the workload is built (which reads the corpus and prints its
    summary): the outputs, the config, the backend names and the engine modes. Returns the
    backends and modes to run, the base config and the keys it sets itself; a bad one is a
    usage error (exit 2) before anything runs. The config file is read here, once (it may be a
    pipe: ``<(...)``, ``/dev/stdin``, empty when read again): the run gets what was read."""
    from hwzswap.bench.runner import base_config_and_keys, resolve_backend_names, resolve_batching

    _check_outputs(args)
    base, given = base_config_and_keys(args.config)
    names = resolve_backend_names(args.backends)
    modes = resolve_batching(args.batching, base)
    if args.folio_pages is not None:
        from hwzswap.bench.workload import parse_folio_mix

        parse_folio_mix(args.folio_pages, "--folio-pages")
    return names, modes, base, given


def _cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hwzswap.bench.report import print_table, skipped_label
    from hwzswap.bench.runner import (
        BenchInterrupted,
        BenchRun,
        bench_failed,
        check_exclusive_loads,
        run_bench,
        stream_folio_mix,
    )
    from hwzswap.bench.workload import WORKLOADS

    console = Console(stderr=False)
    err = Console(stderr=True)
    names, modes, base, given = _check_arguments(args)
    wl, extra = make_workload(args.workload, args.corpus, args.pages, args.seed,
                              args.load_batch, args.reclaim_batch, args.folio_pages)
    check_exclusive_loads(base, wl, args.config, built_in=args.workload in WORKLOADS)
    show_progress = not args.quiet and err.is_terminal
    if not args.quiet:
        c = wl.counts()
        loads = (f"{c['loads']} loads in {c['load_ops']} clusters" if "load_ops" in c
                 else f"{c['loads']} loads")
        err.print(  # the name is the file's: plain text, never rich markup
            f"workload {wl.name}: {wl.nr_pages} pages, {c['ops']} ops "
            f"({c['store_pages']} stores in {c['store_ops']} reclaim passes, {loads}, "
            f"{c['invalidates']} invalidates), seed {wl.seed}; "
            f"{describe_structure(wl.structure)}",
            highlight=False, markup=False,
        )
        mix = stream_folio_mix(wl)
        if mix["folio_mix_note"]:  # the request is not what the stream got: say so first
            err.print(mix["folio_mix_note"], highlight=False, markup=False)
    planned = len(names) * len(modes)

    def finished(res: dict[str, Any]) -> None:
        # without a progress bar (stderr not a terminal: a log, a script), each row is said
        # as it finishes, so a long run shows how far it got
        if not args.quiet and not show_progress:
            print(f"hwzswap bench: done {res['backend']} ({res.get('batching', '-')}): "
                  f"verified {res['verified_pages']}/{res['pages']}", file=sys.stderr,
                  flush=True)

    interrupted = False
    try:
        doc = run_bench(wl, BenchRun(backends=names, config=base, config_keys=given,
                                     progress=show_progress, console=err, repeat=args.repeat,
                                     workload_extra=extra, batching=modes,
                                     on_result=finished))
    except KeyboardInterrupt as exc:
        partial = exc.document if isinstance(exc, BenchInterrupted) else None
        if partial is None or not (partial["results"] or partial["failed"]):
            print("hwzswap bench: interrupted before any backend finished; nothing written",
                  file=sys.stderr)
            return 130
        doc = mark_interrupted(partial, planned)
        interrupted = True
    output_error: OutputError | None = None
    with _signals_held(interrupted):  # a second Ctrl-C must not cut the partial outputs short
        try:
            _write_outputs(args, doc)
        except OutputError as exc:  # the run is done: its table is still shown, then this
            output_error = exc
    if not args.quiet:
        print_table(doc, console if console.is_terminal else Console(width=200))
        for what, where in (("results", args.json), ("table", args.markdown),
                            ("plot", args.plot)):
            if where and output_error is None:
                err.print(f"wrote {what} to {where}", highlight=False, markup=False)
    else:  # no table, but a backend that did not run is still said, on stderr
        for s in doc.get("skipped", []):
            print(f"hwzswap bench: skipped {skipped_label(s)}: {s['reason']}",
                  file=sys.stderr)
        for f in doc.get("failed", []):
            mode = f" ({f['batching']})" if f.get("batching") else ""
            print(f"hwzswap bench: FAILED {f['backend']}{mode} [{f.get('phase', 'run')}]: "
                  f"{f['error']}", file=sys.stderr)
    if output_error is not None:
        print(f"hwzswap bench: error: {output_error}", file=sys.stderr)
    if interrupted:
        print(f"hwzswap bench: interrupted, partial results: {doc['interrupted_note']}",
              file=sys.stderr)
        return 130
    if output_error is not None:
        return 2
    if not doc["results"]:
        # a script must be able to tell that nothing was measured
        if doc["skipped"] and not doc["failed"]:
            why = ("every requested row was skipped (its backend cannot run here, or cannot "
                   "take the engine design the config asks for)"
                   if any(s.get("batching") for s in doc["skipped"]) else
                   "every requested backend was skipped (it cannot run here)")
        else:
            why = "no requested backend produced a result"
        print(f"hwzswap bench: error: nothing was measured: {why}", file=sys.stderr)
        return 1
    return 1 if bench_failed(doc) else 0


def _write_outputs(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The outputs asked for (``--json``, ``--markdown``, ``--plot``), each written whole; one
    that cannot be written (a full disk) is an OutputError naming it, not a traceback."""
    from hwzswap.bench.results import write_outputs

    write_outputs(doc, json_path=args.json, markdown_path=args.markdown, plot_path=args.plot)


def mark_interrupted(doc: dict[str, Any], planned: int) -> dict[str, Any]:
    """``doc`` marked as a partial run cut short by Ctrl-C: ``interrupted`` true and
    ``interrupted_note`` saying how many of the ``planned`` runs (backend × engine mode)
    finished; the tables' and the plot's headings say so. ``measured_rows`` is set as on a
    whole run (the rows that are here), so a script reads the same key either way."""
    done = len(doc["results"]) + sum(1 for f in doc["failed"]
                                     if f.get("phase") not in ("close", "device"))
    doc["interrupted"] = True
    doc["measured_rows"] = len(doc["results"])
    doc["interrupted_note"] = (
        f"Ctrl-C after {done} of {planned} runs (backend x engine mode) had finished: only "
        f"those are here; the run in progress was dropped and the rest were not measured")
    return doc


class _signals_held:
    """Ignore SIGINT while the partial outputs are written (``active``), then restore the
    handler; only in the main thread, where Python handles signals."""

    def __init__(self, active: bool) -> None:
        import threading

        self.active = active and threading.current_thread() is threading.main_thread()
        self.old: Any = None

    def __enter__(self) -> None:
        if self.active:
            import signal

            self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            import signal

            signal.signal(signal.SIGINT, self.old)


def _cmd_record(args: argparse.Namespace) -> int:
    from hwzswap.bench.workload import WORKLOADS, save_workload

    if args.workload not in WORKLOADS:
        raise WorkloadError(
            f"record takes a built-in workload name ({', '.join(WORKLOADS)}), got "
            f"{args.workload!r}"
        )
    from hwzswap.bench.workload import is_workload_file

    out = output_file(args.output, "-o", inputs=[("--corpus", args.corpus)])
    if out.exists() and not is_workload_file(out):
        raise OutputError(f"-o {args.output}: exists and is not a workload file; not "
                          "overwriting it: give a new name (or delete the file first)")
    wl, _ = make_workload(args.workload, args.corpus, args.pages, args.seed, args.load_batch,
                          args.reclaim_batch, args.folio_pages)
    out.parent.mkdir(parents=True, exist_ok=True)  # checked above; made once the run is done
    path = save_workload(wl, out)
    c = wl.counts()
    print(f"recorded workload {wl.name} (seed {wl.seed}): {wl.nr_pages} pages, {c['ops']} ops "
          f"-> {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return 0


LOAD_BATCH_HELP = (
    "pages a swap-in reads at once: a fault loads the live slots of its aligned window of N "
    "slots (readahead; one swap_in_batch, one decompress_batch for a batch backend). Default 8, "
    "the kernel's vm.page-cluster 3; 1 loads page by page; at most 1048576"
)
RECLAIM_BATCH_HELP = (
    "folios per reclaim pass (one swap_out_batch call). Default 32, the kernel's "
    "SWAP_CLUSTER_MAX; with --load-batch 1 --folio-pages 1 the stream is the one the "
    "generators made before folios existed with that batch size. At most 1048576 (what a "
    "workload file may record)"
)
FOLIO_PAGES_HELP = (
    "folio sizes in pages, optionally weighted by share of pages: 1 (order-0 only), 16, or "
    "1:3,16:1. Default 1:0.75,16:0.25 (an assumption, see docs/bench.md)"
)


def structure_int(text: str) -> int:
    """``--reclaim-batch`` / ``--load-batch``: a whole number 1..``MAX_STRUCTURE``, the rule a
    workload file's reader applies (:func:`~hwzswap.bench.workload.structure_problem`), so
    ``record`` never writes a file ``bench`` refuses to replay."""
    from hwzswap.bench.workload import structure_problem

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    why = structure_problem(value)
    if why is not None:
        raise argparse.ArgumentTypeError(why)
    return value


def _add_structure_options(p: Any) -> None:
    p.add_argument("--reclaim-batch", type=structure_int, metavar="N", help=RECLAIM_BATCH_HELP)
    p.add_argument("--load-batch", type=structure_int, metavar="N", help=LOAD_BATCH_HELP)
    p.add_argument("--folio-pages", metavar="SPEC", help=FOLIO_PAGES_HELP)


def register(subparsers: Any) -> None:
    """Add ``bench`` and ``record`` to the ``hwzswap`` command line."""
    p = subparsers.add_parser(
        "bench",
        help="run one workload through every backend and compare them",
        description=(
            "Replay the identical frontswap op stream through the whole stack (backend, pool, "
            "writeback, swap file) for each backend, verify every loaded page, and time the "
            "raw codec alone on the same pages in the same run. Prints a table; writes JSON, "
            "Markdown and a plot on request (each output checked before the run). Exit status "
            "1 if a page mismatched or did not come back (through the stack or through the "
            "codec alone) or a requested backend failed (a driver bug in its registration, "
            "constructor, bad parameter, run); a "
            "backend that cannot run here is skipped and does not change it, unless nothing "
            "was measured (every requested backend skipped): then 1. 2 on a usage or input "
            "error. 130 on Ctrl-C: the runs finished by then are written to the outputs, "
            "marked as an interrupted, partial run."
        ),
    )
    p.add_argument("--config", metavar="FILE", type=file_name,
                   help="zswap config (YAML); default: the built-in defaults "
                        "(configs/default.yaml). The compressor is replaced by each backend "
                        "under test and the workload's overrides apply on top")
    p.add_argument("--backends", metavar="A,B,...",
                   help="comma-separated backend names (default: every registered backend; "
                        "those that cannot run here are listed as skipped)")
    p.add_argument("--corpus", metavar="FILE", type=file_name,
                   help="page file (.pages or .pages.zst); default: the bundled corpus")
    p.add_argument("--workload", default="roundtrip", metavar="NAME|FILE", type=file_name,
                   help="built-in workload (roundtrip, pressure, mixed) or a file from "
                        "`hwzswap record` (default: roundtrip)")
    p.add_argument("--pages", type=positive_int, metavar="N",
                   help=f"pages taken from the corpus (default: {DEFAULT_PAGES} or the whole "
                        "corpus if smaller)")
    p.add_argument("--seed", type=seed, metavar="S", help="workload seed (default 0)")
    _add_structure_options(p)
    p.add_argument("--batching", metavar="MODE,...",
                   help="engine modes (zswap.batching) to run each backend in, on the identical "
                        "stream: page (v9), folio, reclaim, async; default: the config's")
    p.add_argument("--repeat", type=positive_int, default=DEFAULT_REPEAT, metavar="N",
                   help="passes per backend; timings are the median over them, every pass is "
                        f"verified (default {DEFAULT_REPEAT})")
    p.add_argument("--json", metavar="OUT", type=file_name,
                   help="write the results JSON here")
    p.add_argument("--plot", metavar="OUT.png", type=file_name,
                   help="write a comparison plot here (PNG; .svg or .pdf by the name)")
    p.add_argument("--markdown", metavar="OUT.md", type=file_name,
                   help="write the table as Markdown here")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no table (skipped and failed backends are still "
                   "named on stderr)")
    p.set_defaults(func=_cmd_bench)

    r = subparsers.add_parser(
        "record",
        help="write a workload file: the op stream and its pages, replayable anywhere",
        description=(
            "Build a built-in workload from a corpus and a seed and save it, pages included "
            "(zstd), as a self-contained workload file for `hwzswap bench --workload FILE`."
        ),
    )
    r.add_argument("--workload", default="roundtrip", metavar="NAME", type=file_name,
                   help="roundtrip, pressure or mixed (default: roundtrip)")
    r.add_argument("--corpus", metavar="FILE", type=file_name,
                   help="page file; default: the bundled corpus")
    r.add_argument("--pages", type=positive_int, metavar="N",
                   help=f"pages taken from the corpus (default: {DEFAULT_PAGES} or all)")
    r.add_argument("--seed", type=seed, metavar="S", help="workload seed (default 0)")
    _add_structure_options(r)
    r.add_argument("-o", "--output", required=True, metavar="FILE", type=file_name,
                   help="the workload file (an existing workload file is replaced; any other "
                        "existing file is refused)")
    r.set_defaults(func=_cmd_record)


__all__ = ["DEFAULT_PAGES", "describe_structure", "load_corpus",
           "make_workload", "register", "structure_int"]


if __name__ == "__main__":  # pragma: no cover
    from hwzswap.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
