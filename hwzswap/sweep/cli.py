"""``hwzswap sweep``: run a sweep file, locally or on a Ray cluster, and merge the results."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from hwzswap.cliargs import file_name, positive_int, seconds
from hwzswap.errors import HwzswapError


def default_out_dir(sweep_file: str) -> Path:
    """``sweep-results/<name of the sweep file>`` under the current directory."""
    name = Path(sweep_file).name
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return Path("sweep-results") / name


def _dry_run(spec: Any, plan: Any, out_dir: Path, console: Any) -> int:
    """List the runs; exit status 1 when the config loader here refuses some run's config."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from hwzswap.sweep import store
    from hwzswap.sweep.plan import config_problem, settings_problem

    # every string from the user (values, paths, messages quoting them) is plain text, never
    # markup: rich would read '[/b]' as markup and fail, or '[red]' and drop it
    from hwzswap.sweep.execute import resumable

    done, changed = resumable(plan, store.existing_records(out_dir,
                                                           [r.run_id for r in plan.runs]))
    console.print(f"{spec.source}: {len(plan.runs)} runs ({plan.combinations} combinations, "
                  f"{plan.excluded} excluded, {plan.collapsed} merged: a params axis the "
                  "backend does not take)", highlight=False, soft_wrap=True, markup=False)
    table = Table()
    for col in ("#", "run id", *spec.axes, "resources", "in output", "config here"):
        table.add_column(Text(col), overflow="fold")
    refused: list[str] = []
    by_bench: list[int] = []
    checked: dict[str, str | None] = {}
    for i, run in enumerate(plan.runs, 1):
        res = ", ".join(f"{k}={v:g}" for k, v in run.resources.items()
                        if not (k == "CPU" and v == 1.0))
        prior = done.get(run.run_id)
        why = settings_problem(run)
        if why is not None:
            refused.append(f"run {i} ({run.run_id}): the bench would refuse it: {why}")
            by_bench.append(i)
        else:
            key = json.dumps(run.config, sort_keys=True, default=repr)
            if key not in checked:  # runs that differ in bench options share their config
                checked[key] = config_problem(run)
            why = checked[key]
            if why is not None:
                refused.append(f"run {i} ({run.run_id}): the config loader here refuses it: "
                               f"{why}")
        table.add_row(str(i), Text(run.run_id),
                      *(Text(str(run.coords.get(a, "n/a"))) for a in spec.axes),
                      Text(res or "-"), Text(str(prior["status"]) if prior else
                           "input changed" if run.run_id in changed else "-"),
                      "ok" if why is None else "[red]refused[/red]")
    console.print(table)
    for line in refused:
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    console.print(f"fixed: {spec.fixed or '-'}; output: {out_dir}", highlight=False,
                  soft_wrap=True, markup=False)
    if refused:  # these runs would fail: say so in the exit status, as the sweep itself would
        by = ("the config loader refuses their config" if not by_bench else
              "the bench would refuse their settings" if len(by_bench) == len(refused) else
              "the bench would refuse their settings, or the config loader their config")
        Console(stderr=True).print(
            f"hwzswap sweep: {len(refused)} of {len(plan.runs)} runs would fail: {by} (see "
            "above)", highlight=False, soft_wrap=True)
        return 1
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line, rebuilt from the parsed options (for the merged result)."""
    words = ["hwzswap", "sweep", args.sweep]
    for opt, value in (("-o", args.output), ("--jobs", args.jobs), ("--timeout", args.timeout),
                       ("--ray", args.ray), ("--group-by", args.group_by)):
        if value is not None:
            words += [opt, f"{value:g}" if isinstance(value, float) else str(value)]
    words += [flag for flag, on in (("--retry-failed", args.retry_failed),
                                    ("--quiet", args.quiet)) if on]
    return shlex.join(words)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hwzswap.sweep import report
    from hwzswap.sweep.execute import SweepSignalled, run_sweep
    from hwzswap.sweep.plan import expand
    from hwzswap.sweep.spec import load_sweep

    spec = load_sweep(args.sweep)
    plan = expand(spec)
    if args.group_by is not None and args.group_by not in spec.axes:
        raise HwzswapError(f"--group-by {args.group_by}: not an axis of {spec.source} "
                           f"(axes: {', '.join(spec.axes) or 'none'})")
    out_dir = Path(args.output) if args.output else default_out_dir(args.sweep)
    console = Console(width=max(120, Console().width))
    err = Console(stderr=True)
    if args.ray is not None and args.jobs is not None:
        raise HwzswapError("--jobs is for the local executor; on Ray the cluster's free CPUs "
                           "(one per run) decide how many runs go at once")
    if args.ray is not None:  # its form, without Ray; a dry run checks it too
        from hwzswap.sweep.ray_exec import check_address

        check_address(args.ray)
    if args.dry_run:
        return _dry_run(spec, plan, out_dir, console)
    command = _command(args)
    try:
        outcome = run_sweep(spec, plan, out_dir, jobs=args.jobs or 1, timeout=args.timeout,
                            ray=args.ray, retry_failed=args.retry_failed,
                            progress=not args.quiet and err.is_terminal,
                            console=None if args.quiet else err, command=command,
                            group_by=args.group_by)
    except SweepSignalled as stop:  # SIGTERM/SIGHUP: runs killed, finished records kept
        print(f"hwzswap sweep: {stop}: the runs in flight were killed; the finished records "
              f"stay in {out_dir}/runs (run the sweep again to resume)", file=sys.stderr)
        return 128 + stop.signum
    if not args.quiet:
        report.print_table(outcome.doc, args.group_by, console)
        for what, where in outcome.files.items():
            err.print(f"wrote {what.replace('_', ' ')} to {where}", highlight=False, markup=False)
    else:  # no table, but each run that did not succeed is still named, on stderr
        for line in failure_lines(outcome.doc):
            print(f"hwzswap sweep: {line}", file=sys.stderr)
    return 0 if outcome.all_ok else 1


def failure_lines(doc: dict[str, Any]) -> list[str]:
    """One line per record of the merged document that is not ok: its status, run id,
    failure kind and reason (``FAILED lz4-2a3eb216e3 [exit]: exit status 2: ...``)."""
    lines = []
    for rec in doc.get("records") or []:
        if rec.get("status") == "ok":
            continue
        kind = f" [{rec['failure']}]" if rec.get("failure") else ""
        reason = " ".join(str(rec.get("reason") or "no reason recorded").split())
        lines.append(f"{str(rec.get('status')).upper()} {rec.get('run_id')}{kind}: {reason}")
    return lines


def register(subparsers: Any) -> None:
    """Add ``sweep`` to the ``hwzswap`` command line."""
    from hwzswap.sweep.execute import DEFAULT_TIMEOUT_S

    p = subparsers.add_parser(
        "sweep",
        help="run every combination of a sweep file (locally or on Ray) and merge the results",
        description=(
            "Run every combination of the sweep file's axes (backends, params.<name>, "
            "batching, workload, pages, seed, corpus, dotted config keys) as an isolated "
            "`hwzswap bench` process, locally or on a Ray cluster; write one record per run "
            "under DIR/runs, then DIR/sweep.json, DIR/table.md and plots. Runs already in DIR "
            "are skipped (resume) unless an input file they read changed. Exit status 1 when a run "
            "did not succeed, 2 on a usage or sweep-file error or when another sweep is writing "
            "DIR, 128+N when stopped by signal N (SIGTERM 143, SIGHUP 129; Ctrl-C 130)."
        ),
    )
    p.add_argument("sweep", metavar="SWEEP.yaml", type=file_name,
                   help="the sweep file (axes, fixed, exclude)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs (ids, coordinates, resources, config check) and stop; "
                        "exit status 1 when some run's config is refused")
    p.add_argument("-o", "--output", metavar="DIR", type=file_name,
                   help="output directory (default: sweep-results/<sweep file name>)")
    p.add_argument("--jobs", type=positive_int, metavar="N",
                   help="local runs at once (default 1: runs in parallel share the cores and "
                        "disturb each other's timings)")
    p.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"per-run time limit in seconds (default {DEFAULT_TIMEOUT_S:g}); a run "
                        "past it is killed and recorded as FAILED")
    p.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run on a Ray cluster: 'auto' joins the cluster this machine belongs "
                        "to (or starts one here), or give its address (HOST:6379, "
                        "ray://HOST:10001). Needs the 'ray' extra")
    p.add_argument("--group-by", metavar="AXIS",
                   help="group the table by this axis (default: backend)")
    p.add_argument("--retry-failed", action="store_true",
                   help="on resume, run again the runs whose record is not ok")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no table (runs that did not succeed are still "
                        "named on stderr, one line each)")
    p.set_defaults(func=_cmd_sweep)


__all__ = ["default_out_dir", "failure_lines", "register"]
