"""Files written whole or not at all: the new content goes to a temporary file beside the
target, which is renamed onto it (``rename(2)`` replaces a file in one step) only when the
write finished. A reader, or a run resumed after an interrupted one, sees the old file (or
none) or the new one, never half a file; a failed or interrupted write (an exception,
``KeyboardInterrupt``) removes its temporary file. Nothing is synced to the disk: this is
about readers and failures of the writing process, not about a machine losing power.

Only the standard library here: the CLI, the benchmark, the backends and ``serve`` all use it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: How a temporary file's name ends: not in the target's suffix, so a ``*.json`` or
#: ``*.pages.zst`` glob of the directory never takes one for a finished file, and a file left by
#: a killed writer (``SIGKILL`` runs no cleanup) says what it is.
PARTIAL = ".partial"

_TRIES = 100  # names taken by someone else before giving up (tempfile's TMP_MAX is 10000)


def _create_beside(path: Path, mode: int, made: list[Path]) -> Path:
    """Create a new, empty file with an unused name in ``path``'s directory; its name is put
    in ``made`` *before* it is created, so a caller's cleanup finds it even when an exception
    (a signal's, raised between two bytecodes) comes between the creation and the return."""
    for _ in range(_TRIES):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{PARTIAL}")
        made.append(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except FileExistsError:
            made.remove(tmp)  # someone else's file: never ours to remove
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after "
                          f"{_TRIES} tries")


#: Where paths name streams and devices, not files (``/dev/stdout``, ``/proc/self/fd/1``):
#: even when one leads to a regular file (standard output redirected to a log), replacing
#: that file by a rename would throw away what else was written to it.
_STREAM_DIRS = ("/dev/", "/proc/")


def replace_target(path: str | Path) -> Path:
    """The file a whole-file write of ``path`` replaces: ``path`` itself, or the file a
    symbolic link names (the link is kept). Raises :class:`OSError` for a target that exists
    and is not a regular file (a directory, FIFO or device) and for a path that goes through
    ``/dev`` or ``/proc`` (standard output, a file descriptor): a rename would replace those,
    not write to them."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    if str(path.absolute()).startswith(_STREAM_DIRS) or str(real).startswith(_STREAM_DIRS):
        raise OSError(errno.EINVAL, f"{path} is a stream or device path, not a file: a file "
                                    f"written whole is put in place by a rename, which would "
                                    f"replace what it names; give a file name")
    try:
        st = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):  # a new file (its folder's problems are
        return real  # the write's to report)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EEXIST,
                      f"{path} exists and is not a regular file (a directory, FIFO or device): "
                      f"a file written whole is put in place by a rename, which would replace "
                      f"it; give a file name")
    return real


@contextmanager
def replacing(path: str | Path, *, mode: int = 0o666, parents: bool = True) -> Iterator[Path]:
    """Yield the path of a new, empty temporary file beside ``path``; when the ``with`` body
    ends without an exception, rename it onto ``path``; otherwise remove it.

    ``mode`` is the new file's mode less the umask, as :func:`os.open` takes it (the default
    makes it as a plain ``open(path, "w")`` would). ``parents`` creates ``path``'s missing
    directories first (as ``mkdir -p``); without it a missing directory is the
    :class:`FileNotFoundError` of creating the temporary file. The temporary name is
    ``.NAME.RANDOM.partial``: a writer that picks a format by the suffix must be told it.

    The file replaced is :func:`replace_target`'s: a symbolic link is followed (the file it
    names is replaced and the link kept); a directory, FIFO, device, or a path through ``/dev``
    or ``/proc`` (``/dev/stdout``) is refused with an :class:`OSError`.
    """
    path = replace_target(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    try:  # from the temporary file's creation on: an interruption anywhere removes it
        tmp = _create_beside(path, mode, made)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        for name in made:
            name.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[Path], object], *, mode: int = 0o666,
                 parents: bool = True) -> Path:
    """Write ``path`` through ``write(temporary path)``, whole or not at all (see
    :func:`replacing`, which takes the same ``mode`` and ``parents``); returns ``path``."""
    path = Path(path)
    with replacing(path, mode=mode, parents=parents) as tmp:
        write(tmp)
    return path


def write_figure(fig: Any, path: str | Path, **savefig: Any) -> Path:
    """Save a matplotlib figure to ``path`` whole or not at all (``fig.savefig``; the figure is
    closed either way, like the process's other figures once written). The format follows
    ``path``'s suffix, PNG without one: the temporary file's name has none to go by."""
    fmt = Path(path).suffix[1:].lower() or "png"
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, **savefig))
    finally:
        import matplotlib.pyplot as plt  # only a caller that has a figure gets here

        plt.close(fig)


__all__ = ["PARTIAL", "replace_target", "replacing", "write_atomic", "write_figure"]
