"""Every error hwzswap raises is a subclass of :class:`HwzswapError`.

Messages are written for the person running the tool: they say what was wrong and, where it
helps, what to do about it.
"""

from __future__ import annotations


class HwzswapError(Exception):
    """Base class of all hwzswap errors."""


class ConfigError(HwzswapError, ValueError):
    """A configuration file or dict is invalid; the message names the file and the key."""


class InvalidParameterError(HwzswapError, ValueError):
    """A backend (or other component) was given an unknown or out-of-range parameter."""


class BackendError(HwzswapError):
    """A compressor backend failed."""


class BackendUnavailableError(BackendError):
    """The backend is registered but cannot run here (missing library, no device...)."""


class BackendLoadError(BackendError):
    """The backend's registration is broken (its entry point loads something that is not a
    backend class, a class reporting another name, or a module that fails for a reason other
    than a missing dependency): a bug in the driver's package, which no machine fixes."""


class UnknownBackendError(BackendError, KeyError):
    """No backend is registered under that name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(BackendError, ValueError):
    """The input handed to a backend is not acceptable (wrong size, wrong type...)."""


class CorruptDataError(BackendError):
    """Compressed data could not be decompressed to exactly one page."""


class DeviceError(BackendError):
    """An offload device (OpenCL, emulated accelerator) reported an error."""


class DeviceTimeoutError(DeviceError):
    """A device call did not return within its deadline (``zswap.device_timeout_ms``) and was
    given up (counted as a timeout, not as a device error). ``given_up``: the engine's
    watchdog gave up on the call and has counted it already: as a timeout, or, for a call not
    made because an earlier one was still stuck in the driver, as ``refused_stuck`` (a
    driver's own deadline leaves it False: the engine counts it when it sees the error)."""

    given_up: bool = False  # also for a driver's subclass whose __init__ does not set it

    def __init__(self, *args: object, given_up: bool = False) -> None:
        super().__init__(*args)
        self.given_up = given_up


class DriverError(BackendError):
    """A driver returned a result that breaks the contract; the message names the driver, the
    call and what was wrong."""


class PoolError(HwzswapError):
    """Misuse of a memory pool: bad size, stale/foreign handle, double free."""


class InvalidHandleError(PoolError, KeyError):
    """A handle that is not live in this pool (freed, never allocated, or from another pool)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PoolAllocError(PoolError):
    """The pool could not get memory for an object (limit reached or allocation failure).

    zswap counts this as ``reject_alloc_fail``; it is an expected outcome, not a bug.
    """


class SwapDeviceError(HwzswapError):
    """The backing swap device failed (I/O error, no space, bad offset)."""


class SwapBatchError(SwapDeviceError):
    """Part of a swap-out batch could not be written to the swap device. ``stored`` (offsets now
    in zswap), ``written`` (on the device) and ``failed`` (slots left free; the caller still has
    those pages) say where every page of the batch went."""

    def __init__(self, message: str, *, stored: list[int], written: list[int],
                 failed: list[int]) -> None:
        super().__init__(message)
        self.stored = stored
        self.written = written
        self.failed = failed


class CaptureError(HwzswapError):
    """Capturing a process's memory failed."""


class WorkloadError(HwzswapError):
    """A workload file or workload name is invalid."""


class CorpusError(HwzswapError):
    """A page file (.pages / .pages.zst) is missing, truncated or not valid."""


class OutputError(HwzswapError):
    """An output file a command was asked to write cannot be written there (a directory, a
    parent that cannot be created, an input of the same run, a format it cannot write)."""


def not_built(module: str, what: str) -> ImportError:
    """The error for a compiled part (``module``, ``what`` it is) missing from this checkout: a
    source tree whose extensions were never built, or were built for another Python."""
    return ImportError(
        f"{module}, {what}, is not built for this Python: run `make install` from the "
        "repository root (or `pip install -e .`, or `python setup.py build_ext --inplace`)"
    )


class _ExcerptBudget:
    """The characters an :func:`excerpt` still may write (internal)."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def excerpt(value: object, limit: int = 80) -> str:
    """A short, bounded rendering of ``value`` for an error message.

    Unlike ``repr()``, its cost is bounded by ``limit`` whatever ``value`` is: long strings and
    bytes are cut, containers show their first items and their length, nesting deeper than a
    few levels is elided, huge integers are shown by their size. A YAML alias bomb (a list of
    references to lists of references...) or a self-containing list costs ``limit`` characters,
    not its expanded size.
    """
    budget = _ExcerptBudget(max(8, limit))
    text = _excerpt(value, budget, 0)
    return text if len(text) <= limit + 24 else text[: limit + 20] + "..."


_SCALARS = (bool, float, complex, type(None))


def _excerpt(value: object, budget: _ExcerptBudget, depth: int) -> str:
    if budget.left <= 0:
        return "..."
    cls = type(value)
    if cls in _SCALARS:
        text = repr(value)
    elif isinstance(value, int):
        bits = int.bit_length(value)
        text = repr(int(value)) if bits <= 200 else f"<an integer of {bits} bits>"
    elif isinstance(value, (str, bytes, bytearray)):
        n = len(value)
        keep = max(4, budget.left - 2)
        unit = "characters" if isinstance(value, str) else "bytes"
        text = repr(value[:keep]) + (f"... ({n} {unit})" if n > keep else "")
    elif isinstance(value, (list, tuple, set, frozenset, dict)):
        text = _excerpt_container(value, budget, depth)
    else:
        name = cls.__name__
        try:
            text = object.__repr__(value) if cls.__repr__ is object.__repr__ else repr(value)
        except Exception:
            text = f"<{name}>"
        if len(text) > budget.left:
            text = text[: max(4, budget.left)] + f"... (a {name})"
    budget.left -= len(text)
    return text


def _excerpt_container(value: object, budget: _ExcerptBudget, depth: int) -> str:
    is_dict = isinstance(value, dict)
    opener, closer = ("{", "}") if is_dict or isinstance(value, (set, frozenset)) else (
        ("(", ")") if isinstance(value, tuple) else ("[", "]"))
    n = len(value)  # type: ignore[arg-type]
    if n == 0:
        if opener == "{" and not is_dict:
            return f"{type(value).__name__}()"
        return opener + closer
    if depth >= 3:
        return f"{opener}...{closer} ({n} items)"
    parts: list[str] = []
    budget.left -= 2
    items = iter(value.items()) if is_dict else iter(value)  # type: ignore[attr-defined]
    shown = 0
    for item in items:
        if budget.left <= 0:
            break
        if is_dict:
            key, val = item
            part = _excerpt(key, budget, depth + 1) + ": " + _excerpt(val, budget, depth + 1)
            budget.left -= 2
        else:
            part = _excerpt(item, budget, depth + 1)
        parts.append(part)
        budget.left -= 2
        shown += 1
    more = f", ... ({n} items)" if shown < n else ""
    return opener + ", ".join(parts) + more + closer
