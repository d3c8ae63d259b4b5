"""Argument types the subcommands share: each turns a command-line word into a value or an
``argparse`` error that says what was expected; and the checks of an output file a command
will write (made before a long run, so a typo in ``--json`` does not cost the run)."""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from hwzswap.bench.workload import MAX_SEED  # the limit a workload file keeps
from hwzswap.errors import OutputError
from hwzswap.fileio import replace_target


def positive_int(text: str) -> int:
    """A whole number >= 1 (a count: pages, batch sizes, jobs, repeats)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text: str) -> int:
    """A workload seed: an integer 0..:data:`MAX_SEED` (``0x`` hex accepted); a larger one
    would be recorded in a workload file that replay then refuses as damaged."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the seed must be >= 0, got {value}")
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"the seed must be at most {MAX_SEED} (64 bits), got "
                                         f"{text[:40]}{'...' if len(text) > 40 else ''}")
    return value


#: The longest duration a command takes (a week): a larger one is a typo, and would overflow
#: the waits it reaches (``1e308`` s is past every clock's range).
MAX_SECONDS = 7 * 24 * 3600.0


def _finite(text: str, what: str, zero_ok: bool, limit: float | None = None,
            limit_text: str = "") -> float:
    """``text`` as a finite number > 0 (>= 0 with ``zero_ok``), at most ``limit`` when given;
    ``nan`` and ``inf`` refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    shown = text if len(text) <= 40 else text[:40] + "..."
    finite = f"must be a finite number {'>=' if zero_ok else '>'} 0, got {shown}"
    if not (0 <= value if zero_ok else 0 < value):  # nan too
        raise argparse.ArgumentTypeError(finite)
    if limit is not None and value > limit:  # inf too, and 400 digits (read as inf)
        raise argparse.ArgumentTypeError(f"must be at most {limit:g}{limit_text}, got {shown}")
    if not value < float("inf"):
        raise argparse.ArgumentTypeError(finite)
    return value


def seconds(text: str) -> float:
    """A duration: a finite number of seconds > 0, at most :data:`MAX_SECONDS` (a week)."""
    return _finite(text, "a number of seconds", zero_ok=False, limit=MAX_SECONDS,
                   limit_text=" (a week)")


def non_negative_seconds(text: str) -> float:
    """A wait: a finite number of seconds >= 0 (``nan`` would never compare as reached), at
    most :data:`MAX_SECONDS` (a week)."""
    return _finite(text, "a number of seconds", zero_ok=True, limit=MAX_SECONDS,
                   limit_text=" (a week)")


def positive_number(text: str) -> float:
    """A finite number > 0 (a size in MB, a rate)."""
    return _finite(text, "a number", zero_ok=False)


#: The zstd levels the library takes: negative ones are its fast levels, 22 the strongest.
ZSTD_LEVELS = (-(1 << 17), 22)


def zstd_level(text: str) -> int:
    """A zstd compression level (checked here: the library refuses others only when the file
    is being written)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    lo, hi = ZSTD_LEVELS
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"a zstd level is at most {hi} (and at least {lo}), "
                                         f"got {value}")
    return value


def file_name(text: str) -> str:
    """A file name on the command line: not empty (``Path("")`` is the current directory, so an
    empty ``--config ""`` from a script's unset variable would be read as ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name, got an empty string")
    return text


def output_file(path: str, option: str, *, suffixes: tuple[str, ...] = (),
                inputs: Iterable[tuple[str, str | None]] = ()) -> Path:
    """Check, before the work, that ``path`` (the value of ``option``) can be written.

    Refused, with an :class:`~hwzswap.errors.OutputError` saying what to give instead: an empty
    name or ``-`` (no standard output here), a suffix not in ``suffixes`` (when given), an
    existing directory or non-regular file (a FIFO or a device would be replaced by the rename
    of an atomic write), the same file as one of ``inputs`` (``(option, path)`` pairs: the run
    would overwrite what it reads), and a parent directory that cannot be created or does not
    accept a new file. Nothing is created here (a run that fails later leaves no empty
    directory behind): the nearest existing directory must take a new file, and the write
    creates the rest. An existing regular file is overwritten by the write (the option asks
    for it).
    """
    where = f"{option} {path}" if path else option
    if path in ("", "-"):
        raise OutputError(f"{where}: give a file name (standard output is not an output "
                          "file here)")
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputError(f"{where}: the file name must end in {' or '.join(suffixes)} (the "
                          "format is chosen by it)")
    try:
        st = os.stat(out)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        example = f" (e.g. {out / ('results' + suffixes[0])})" if suffixes else ""
        raise OutputError(f"{where}: is a directory; give a file name in it{example}")
    try:  # what the write will refuse: a FIFO, a device, a path through /dev or /proc
        replace_target(out)
    except OSError as exc:
        raise OutputError(f"{where}: {exc.strerror}") from None
    for in_option, in_path in inputs:
        if st is not None and in_path and _same_file(out, in_path):
            raise OutputError(f"{where}: is the file given to {in_option}, which this run reads; "
                              "writing it would destroy it: give another name")
    parent = out.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the nearest existing ancestor; the write makes the rest
    if not existing.is_dir():
        raise OutputError(f"{where}: cannot create its directory {parent}: {existing} is not "
                          "a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        what = (f"write a file in {parent}" if existing == parent
                else f"create its directory {parent}")
        raise OutputError(f"{where}: cannot {what}: {exc.strerror or exc}") from None
    return out


def _same_file(a: Path, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Iterable[tuple[str, str | None, tuple[str, ...]]],
                  inputs: Iterable[tuple[str, str | None]] = ()) -> None:
    """A command's outputs, ``(option, path or None, suffixes)``, each checked with
    :func:`output_file` against the command's ``inputs`` and all distinct: refused before the
    work, so a long run's results are never lost to a bad path."""
    outputs, inputs = list(outputs), list(inputs)
    for option, path, suffixes in outputs:
        if path is not None:
            output_file(path, option, suffixes=suffixes, inputs=inputs)
    distinct_outputs((option, path) for option, path, _ in outputs)


def distinct_outputs(outputs: Iterable[tuple[str, str | None]]) -> None:
    """Two output options naming one file: the second write would replace the first."""
    seen: dict[str, str] = {}
    for option, path in outputs:
        if not path:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise OutputError(f"{option} {path}: the same file as {seen[key]}; give each output "
                              "its own name")
        seen[key] = f"{option} {path}"


__all__ = ["MAX_SECONDS", "MAX_SEED", "ZSTD_LEVELS", "check_outputs", "distinct_outputs", "file_name", "non_negative_seconds",
           "output_file", "positive_number", "zstd_level", "positive_int", "seconds", "seed"]
