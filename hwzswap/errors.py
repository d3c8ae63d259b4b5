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


class CaptureError(HwzswapError):
    """Capturing a process's memory failed."""


class WorkloadError(HwzswapError):
    """A workload file or workload name is invalid."""


class CorpusError(HwzswapError):
    """A page file (.pages / .pages.zst) is missing, truncated or not valid."""


def not_built(module: str, what: str) -> ImportError:
    """The error for a compiled part (``module``, ``what`` it is) missing from this checkout: a
    source tree whose extensions were never built, or were built for another Python."""
    return ImportError(
        f"{module}, {what}, is not built for this Python: run `make install` from the "
        "repository root (or `pip install -e .`, or `python setup.py build_ext --inplace`)"
    )
