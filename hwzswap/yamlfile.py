"""Small YAML files read safely: what a config file and a sweep file share.

A config or a sweep file is a few dozen settings, so anything much larger is refused before it
is looked at: only a regular file is opened (a FIFO would block the reader forever), a
SafeLoader (:func:`settings_loader`: ``1:4`` is a string, as in YAML 1.2, not a YAML 1.1
base-60 number) that stops at too many values, too many aliases or too deep a nesting while
composing (an alias bomb or a long flat list fails at once, and the composer's recursion never
reaches Python's limit), a
size check that counts values as if written out (each shared object measured once), and a
collector that reports every problem of a file in one error naming the file and each key.
The bounded read itself (:func:`read_bounded`) also serves the sweep worker's run records.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hwzswap.errors import HwzswapError, excerpt

#: The tags PyYAML (YAML 1.1) gives a plain scalar such as ``1:4`` or ``1:30.5``: base-60
#: ("sexagesimal") numbers, gone from YAML 1.2.
_SEXAGESIMAL_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


@functools.cache
def settings_loader() -> Any:
    """The ``yaml.SafeLoader`` class every YAML file of the project is read with (a config, a
    sweep, the bundled corpus's index): a SafeLoader that reads a plain scalar with a colon,
    such as ``1:4``, as the string it is written as (YAML 1.2), not as a YAML 1.1 base-60
    number: ``folio_pages: [1:4]`` is the mix ``"1:4"``, never the integer 64. Everything
    else reads as with ``yaml.safe_load`` (an unquoted ``842`` is still the integer 842)."""
    import yaml

    class SettingsLoader(yaml.SafeLoader):
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            tag = super().resolve(kind, value, implicit)
            if (tag in _SEXAGESIMAL_TAGS and kind is yaml.ScalarNode and implicit[0]
                    and ":" in value):
                return "tag:yaml.org,2002:str"
            return tag

    return SettingsLoader


@functools.cache
def bounded_loader(max_depth: int, max_aliases: int, slack: int = 0,
                   max_nodes: int | None = None) -> Any:
    """A :func:`settings_loader` class refusing more than ``max_aliases`` aliases, more than
    ``max_nodes`` values as written (keys, scalars, lists and mappings; no limit when
    ``None``) and nesting deeper than ``max_depth`` (plus ``slack`` levels of the file's own
    structure, such as its sections) while composing (``yaml.YAMLError``): a file of a million
    values stops at the limit, before it is built in memory. One class per set of limits."""
    import yaml

    class Loader(settings_loader()):  # type: ignore[misc]
        _depth = 0
        _aliases = 0
        _nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > max_aliases:
                    raise yaml.YAMLError(f"more than {max_aliases} aliases")
            self._nodes += 1
            if max_nodes is not None and self._nodes > max_nodes:
                too_many = yaml.YAMLError(f"more than {max_nodes} values")
                too_many.too_large = True  # type: ignore[attr-defined]
                raise too_many
            self._depth += 1
            try:
                if self._depth > max_depth + slack:
                    raise yaml.YAMLError(f"values nested more than {max_depth} levels deep")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                _refuse_duplicate_keys(self, node)
            return super().construct_mapping(node, deep=deep)

    return Loader


def yaml_error_text(exc: Exception, limit: int = 300) -> str:
    """A YAML parse error as one line: ``line 3, column 11: mapping values are not allowed
    here (while ...)``, without PyYAML's ``in "<unicode string>"`` and caret snippet; a tab
    gets the hint that YAML indents with spaces."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        if exc.context:
            ctx = exc.context_mark
            where = f" (line {ctx.line + 1})" if ctx is not None and ctx.line != mark.line else ""
            text += f" ({exc.context}{where})"
        if "'\\t'" in str(exc.problem):
            text += "; YAML indents with spaces, not tabs"
    else:
        text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def read_bounded(path: str | os.PathLike[str], max_bytes: int, error: type[HwzswapError], *,
                 unreadable: str, too_large: str, pipes: bool = False) -> bytes:
    """The bytes of a small input file (a config, a sweep, a run's record), read no further
    than one byte past ``max_bytes``, so a huge file costs nothing. A regular file (or a link
    to one) is read; with ``pipes`` (a file a user names: ``--config <(...)``, ``/dev/stdin``
    from a pipe) a pipe or FIFO too, to its end, waiting at most :data:`PIPE_WAIT_S` for each
    piece (a FIFO no one writes to would otherwise block for ever). Anything else (a device
    such as ``/dev/zero`` never ends) is refused. The file is opened with ``O_NONBLOCK`` and
    checked before a byte is read. Raises ``error`` naming the file: ``"{path}:
    {unreadable}: {why}"`` when it cannot be read or is not a file it reads, ``"{path}:
    {too_large}"`` when it holds more than ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{path}: {unreadable}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if stat.S_ISFIFO(mode) and pipes:
        try:
            data = _read_pipe(fd, max_bytes + 1)
        except TimeoutError:
            raise error(f"{path}: {unreadable}: the pipe sent nothing for {PIPE_WAIT_S:g} s "
                        f"(is its writer stuck?)") from None
        except OSError as exc:
            raise error(f"{path}: {unreadable}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(data) > max_bytes:
            raise error(f"{path}: {too_large}")
        return data
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{path}: {unreadable}: {file_kind(mode)}, not a regular file (give "
                    "the path of a file" + ("; or a pipe)" if pipes else
                                            "; standard input and pipes are not read here)"))
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"{path}: {unreadable}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: {too_large}")
    return data


#: How long a pipe may send nothing before its read gives up (seconds).
PIPE_WAIT_S = 30.0


def _read_pipe(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of a non-blocking pipe, to its end (no writer at all: at once,
    empty). TimeoutError when nothing comes for :data:`PIPE_WAIT_S`."""
    import select

    data = bytearray()
    watch = select.poll()  # not select(2): it cannot watch a descriptor numbered 1024 or above
    watch.register(fd, select.POLLIN)
    while len(data) < limit:
        if not watch.poll(PIPE_WAIT_S * 1000):
            raise TimeoutError
        try:
            piece = os.read(fd, min(65536, limit - len(data)))
        except BlockingIOError:
            continue
        if not piece:
            break
        data += piece
    return bytes(data)


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is (``a FIFO``, ``a directory``...), by its mode."""
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a plain file"


def read_yaml_file(path: str | Path, what: str, error: type[HwzswapError], *, max_bytes: int,
                   max_depth: int, max_values: int, slack: int = 0) -> Any:
    """The document in a small YAML file (a config, a sweep), read safely: at most
    ``max_bytes``, UTF-8, composed by :func:`bounded_loader` (``max_depth``, ``max_values``
    aliases and values as written, ``slack``). Every failure is one ``error`` that names the file (``what`` says
    what it should have been). The caller counts the values (:func:`size_problem`) and
    checks the content."""
    import yaml

    name = str(path)
    if not name.strip():
        raise error(f"an empty {what} name: give the path of a YAML {what}")
    if "\0" in name:
        raise error(f"{excerpt(name)}: a {what} path cannot contain a NUL byte")
    data = read_bounded(path, max_bytes, error, unreadable=f"cannot read the {what}",
                        too_large=f"larger than {max_bytes} bytes; not a {what}", pipes=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{name}: not a UTF-8 text file: {exc}") from None
    try:
        return yaml.load(text, Loader=bounded_loader(max_depth, max_values, slack, max_values))  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        if getattr(exc, "too_large", False):
            raise error(f"{name}: {exc}; not a {what}") from None
        raise error(f"{name}: invalid YAML: {yaml_error_text(exc, 400)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # A scalar the YAML library cannot build (a timestamp like 2020-13-45, an integer of
        # more digits than Python converts...).
        detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        detail = detail if len(detail) <= 300 else detail[:300] + "..."
        raise error(f"{name}: invalid YAML value: {detail}") from None


def _refuse_duplicate_keys(loader: Any, node: Any) -> None:
    """A key written twice in one mapping (``yaml.YAMLError``): PyYAML keeps the last one and
    drops the first without a word, so a second ``zswap:`` section would silently undo the
    first one's settings. Merge keys (``<<``) may be overridden, as YAML intends."""
    import yaml

    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # unhashable: the constructor reports it
            continue
        if first is not key_node:
            mark = key_node.start_mark
            raise yaml.YAMLError(
                f"line {mark.line + 1}, column {mark.column + 1}: the key {excerpt(key, 60)} is "
                f"given twice in one mapping (first on line {first.start_mark.line + 1}); YAML "
                "would keep only the last: keep one"
            )


def closest(key: Any, known: Iterable[str]) -> str | None:
    """The one of ``known`` that ``key`` is most likely a typo of, or ``None``."""
    import difflib

    if type(key) is not str or not key or len(key) > 80:
        return None
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(key: Any, known: Iterable[str]) -> str:
    """``"; did you mean 'compressor'?"`` for a key close to one of ``known`` (a typo), else
    ``""``: the known names follow in the message, but a long list hides the one meant."""
    meant = closest(key, known)
    return f"; did you mean {meant!r}?" if meant else ""


def size_problem(raw: Any, max_depth: int, max_values: int) -> str | None:
    """Why ``raw`` is too big to be a small settings file, or ``None``: more than
    ``max_values`` values counted as if written out (so YAML aliases count each time they are
    used; each object is measured once, memoised by identity, so a bomb of 8 levels of 9
    aliases costs a few dozen steps, not 9**8), deeper than ``max_depth``, or a value that
    contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    class _TooBig(Exception):
        pass

    def size(v: Any, depth: int) -> int:
        if not isinstance(v, (Mapping, list, tuple, set, frozenset)):
            return 1
        known = sizes.get(id(v))
        if known is not None:
            return known
        if depth > max_depth:
            raise _TooBig(f"values nested more than {max_depth} levels deep")
        if id(v) in on_path:
            raise _TooBig("a value contains itself (a recursive YAML alias)")
        on_path.add(id(v))
        total = 1
        children = (x for kv in v.items() for x in kv) if isinstance(v, Mapping) else v
        for child in children:
            total += size(child, depth + 1)
            if total > max_values:
                raise _TooBig(f"more than {max_values} values once aliases are expanded")
        on_path.discard(id(v))
        sizes[id(v)] = total
        return total

    try:
        size(raw, 0)
    except _TooBig as exc:
        return str(exc)
    return None


class Problems:
    """Collects ``(dotted key, message)`` pairs so one error reports every problem of a file
    (``error``: the HwzswapError subclass raised; it carries ``errors`` and ``source``)."""

    def __init__(self, source: str, error: type[HwzswapError]) -> None:
        self.source = source
        self.error = error
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        lines = [f"{self.source}: {key}: {msg}" if key else f"{self.source}: {msg}"
                 for key, msg in self.items]
        text = lines[0] if len(lines) == 1 else (
            f"{len(lines)} problems in {self.source}:\n  " + "\n  ".join(lines))
        err = self.error(text)
        err.errors = list(self.items)  # type: ignore[attr-defined]
        err.source = self.source  # type: ignore[attr-defined]
        raise err


__all__ = ["Problems", "bounded_loader", "closest", "did_you_mean", "file_kind", "read_bounded", "read_yaml_file",
           "settings_loader", "size_problem", "yaml_error_text"]
