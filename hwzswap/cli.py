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
from typing import Any

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


def interrupted_import(exc: BaseException) -> bool:
    """Whether an ImportError is a Ctrl-C in disguise: numpy, for one, turns any failure while
    its C extensions load, a KeyboardInterrupt included, into an ImportError of its own."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def main(argv: Sequence[str] | None = None, *, ends_process: bool = False) -> int:
    """Run one command; its exit status. ``ends_process``: this process ends when the command
    returns (only :func:`entry` says so); a program that calls this and goes on (a test)
    leaves it False, and gets its process as it was (signal handlers included).

    Ctrl-C anywhere (while the commands' modules are imported and the parser is built, while
    the arguments are parsed, or in the command) exits 130 with one line, no traceback. A
    failed write of the output to stdout (a full disk, ``> /dev/full``, an I/O error) exits 1
    with one line saying why; a reader of stdout that went away exits 141 quietly."""
    try:
        parser = build_parser()  # imports every command's module: seconds on a cold cache
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        _say("hwzswap: interrupted")
        return 130
    except ImportError as exc:
        if not interrupted_import(exc):
            raise
        _say("hwzswap: interrupted")
        return 130
    except HwzswapError as exc:  # refused while the modules load (HWZSWAP_IMPL=foo)
        _say(f"hwzswap: error: {exc}")
        return 2
    args.ends_process = ends_process
    out = sys.stdout = _Stdout(sys.stdout)
    pipe_rule = _RichBrokenPipe()
    try:
        with pipe_rule:
            rc = int(args.func(args) or 0)
        sys.stdout.flush()  # written now: a failure is reported here, not at the exit
        return rc
    except HwzswapError as exc:
        print(f"hwzswap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: no traceback; what a command writes is written whole or not at all.
        _say(f"hwzswap {args.command}: interrupted")
        return 130
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # some other pipe or socket: a real error, with its traceback
        # The reader of stdout went away (`hwzswap backends --json | head -1`): stop quietly,
        # as a Unix filter does, with the status of a process killed by SIGPIPE; stdout now
        # goes nowhere, so the interpreter's final flush cannot fail a second time.
        _stdout_to_devnull()
        return 128 + 13
    except OSError as exc:
        if not getattr(exc, _STDOUT_MARK, False):
            raise  # not stdout (a command's own file errors are HwzswapErrors): a bug
        _stdout_to_devnull()  # what is left in its buffer must not fail the exit's flush
        _say(f"hwzswap: cannot write the output: {exc.strerror or exc}")
        return 1
    finally:
        if sys.stdout is out:
            sys.stdout = out.real


class _RichBrokenPipe:
    """While a command runs, a closed pipe under a rich ``Console`` reaches :func:`main` as
    the ``BrokenPipeError`` it is, so every command ends by the one rule (141 quietly when
    stdout's reader went away). rich's own ``Console.on_broken_pipe`` points stdout at
    /dev/null and raises ``SystemExit(1)``: ``hwzswap bench ... | head -1`` exited 1, a
    failure, with no word, while ``backends --json | head`` exited 141. The commands build
    plain ``Console`` objects in their own modules, so the hook is replaced on the class for
    the command's run and put back after."""

    def __enter__(self) -> None:
        try:
            from rich.console import Console
        except ModuleNotFoundError:  # pragma: no cover - rich is a dependency
            self._cls = None
            return
        self._cls = Console
        self._old = Console.__dict__.get("on_broken_pipe")
        Console.on_broken_pipe = _reraise_broken_pipe  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        if self._cls is not None:
            if self._old is None:
                del self._cls.on_broken_pipe
            else:
                self._cls.on_broken_pipe = self._old  # type: ignore[method-assign]


def _reraise_broken_pipe(self: Any) -> None:
    """``Console.on_broken_pipe`` while a command runs: rich calls it while it handles the
    ``BrokenPipeError`` of its write, which this raises again, unchanged, for :func:`main`."""
    exc = sys.exc_info()[1]
    if isinstance(exc, BrokenPipeError):
        raise exc
    raise BrokenPipeError(32, "Broken pipe")


#: Set (True) on an OSError raised by a write to stdout, by :class:`_Stdout`.
_STDOUT_MARK = "hwzswap_stdout"


class _Stdout:
    """``sys.stdout`` while a command runs: the real one, whose write errors are marked
    (:data:`_STDOUT_MARK`) as they pass, so :func:`main` tells a failed write of the output
    (a full disk: one line, exit 1) from an error elsewhere (a bug: its traceback).
    Everything else is the real stream's (``fileno``, ``isatty``, ``buffer``, ...)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, text: str) -> int:
        try:
            return int(self.real.write(text))
        except OSError as exc:
            setattr(exc, _STDOUT_MARK, True)
            raise

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self.real.flush()
        except OSError as exc:
            setattr(exc, _STDOUT_MARK, True)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _say(line: str) -> None:
    """One line on stderr, if stderr can take it (it may be full or closed too)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _stdout_to_devnull() -> None:
    """Point stdout's file descriptor at /dev/null: the interpreter's final flush then has
    somewhere to go (it would print a traceback-like message and exit 120 otherwise)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced (a test's capture) or closed
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


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
