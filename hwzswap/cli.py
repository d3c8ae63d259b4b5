"""The ``hwzswap`` command line.

Each subcommand lives in the module that owns its feature and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (taking the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from hwzswap.errors import HwzswapError

# module -> provides register(subparsers); "backends" is defined below.
_COMMAND_MODULES = [
    "hwzswap.frontswap.cli",  # stats
    "hwzswap.bench.cli",  # bench, record
    "hwzswap.bench.capture",  # capture
    "hwzswap.backends.opencl.cli",  # tune
    "hwzswap.sweep.cli",  # sweep
    "hwzswap.serve.cli",  # swap, serve, run
]


def _cmd_backends(args: argparse.Namespace) -> int:
    from hwzswap.backends.registry import available_backends

    rows = available_backends()
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="hwzswap backends")
    for col in ("name", "available", "device", "time basis", "async", "batch", "params / reason"):
        table.add_column(col, overflow="fold")  # long OpenCL device names wrap, never cut
    for r in rows:
        caps = r.capabilities or {}
        batch = ""
        if caps:
            # what the engine honours: the most pages a call takes and the size it fills to
            batch = (f"≤{caps['max_batch'] or '∞'}, prefers {caps['preferred_batch']}"
                     if caps["batch"] else "loop")
        detail = (
            ", ".join(f"{k}={v}" for k, v in (r.params or {}).items())
            if r.available
            else (r.reason or "")
        )
        if r.in_use and r.in_use != f"{r.name} on {caps.get('device')}":
            detail += f"\nin use: {r.in_use}"  # e.g. a device backend's tuned configuration
        # names, devices, parameters and reasons come from drivers (third-party ones too):
        # plain Text, never parsed as rich markup
        table.add_row(
            Text(str(r.name)),
            Text("yes") if r.available else Text("no", style="red"),
            Text(str(caps.get("device", ""))),
            Text(str(caps.get("time_basis", ""))),
            "yes" if caps.get("asynchronous") else ("no" if caps else ""),
            Text(batch),
            Text(detail),
        )
    Console(width=max(100, Console().width)).print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwzswap",
        description="Evaluate compressors and accelerators for compressed swap (zswap).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("backends", help="list every compressor backend and whether it runs here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_backends)
    for module in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only a command module (or its package) that is not installed is skipped; an import
            # error inside one is a bug and propagates.
            if not exc.name or not (module == exc.name or module.startswith(exc.name + ".")):
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, ends_process: bool = False) -> int:
    """Run one command; its exit status. ``ends_process``: this process ends when the command
    returns (only :func:`entry` says so); a program that calls this and goes on (a test)
    leaves it False, and gets its process as it was (signal handlers included)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.ends_process = ends_process
    try:
        return int(args.func(args) or 0)
    except HwzswapError as exc:
        print(f"hwzswap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: no traceback; what a command writes is written whole or not at all.
        print(f"hwzswap {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # some other pipe or socket: a real error, with its traceback
        # The reader of stdout went away (`hwzswap backends --json | head -1`): stop quietly,
        # as a Unix filter does, with the status of a process killed by SIGPIPE; stdout now
        # goes nowhere, so the interpreter's final flush cannot fail a second time.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        return 128 + 13


def entry(argv: Sequence[str] | None = None) -> int:
    """The ``hwzswap`` program (the console script, ``python -m hwzswap``): :func:`main` in a
    process that ends when the command returns, so a command may leave the process set for
    its end (``swap on`` keeps stop signals ignored once swap is on)."""
    return main(argv, ends_process=True)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced (a test's capture) or closed
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
