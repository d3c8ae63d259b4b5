"""The compressor contract: what every backend (CPU codec, GPU batch kernel, hardware queue) offers.

Three ways in, one semantics:

* **single page** -- ``compress(page)`` / ``decompress(data)``: synchronous, one 4096-byte page;
* **batch** -- ``compress_batch(pages)`` / ``decompress_batch(items)`` on an ``(N, 4096)`` uint8
  array; the default loops over the single-page calls, a GPU backend overrides it;
* **asynchronous ops** -- ``submit(ops)`` / ``poll()``, modelled on DPDK compressdev's
  enqueue/dequeue bursts and the kernel's acomp requests: a :class:`CompOp` carries its input,
  output, status and byte counts. Synchronous backends complete every op at submit time;
  a queued device may refuse ops past its queue depth with :attr:`OpStatus.BUSY`.

A page that does not shrink is *incompressible*: ``compress`` returns ``None`` and an op completes
with :attr:`OpStatus.INCOMPRESSIBLE`; output is never larger than the page. Corrupt or truncated
compressed data raises :class:`~hwzswap.errors.CorruptDataError`, never returns wrong bytes.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    InvalidInputError,
    InvalidParameterError,
)

PAGE_SIZE = 4096

TimeBasis = Literal["measured", "modeled"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do and how its timings should be read.

    ``time_basis`` is ``"measured"`` when the figures a benchmark reports are this host's wall/CPU
    time, ``"modeled"`` when the work is done by an emulated device whose time comes from a model
    (then :meth:`Backend.modeled_device_us` reports it).
    """

    device: str = "cpu"
    asynchronous: bool = False
    batch: bool = False  # True when compress_batch is a real batch path, not a loop
    min_batch: int = 1
    max_batch: int | None = None
    preferred_batch: int = 1
    time_basis: TimeBasis = "measured"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "asynchronous": self.asynchronous,
            "batch": self.batch,
            "min_batch": self.min_batch,
            "max_batch": self.max_batch,
            "preferred_batch": self.preferred_batch,
            "time_basis": self.time_basis,
        }


class OpStatus(enum.Enum):
    """Outcome of an asynchronous op (cf. ``rte_comp_op_status``)."""

    NOT_PROCESSED = "not_processed"
    SUCCESS = "success"
    INCOMPRESSIBLE = "incompressible"  # output would not be smaller than the input
    INVALID_INPUT = "invalid_input"  # bad length/type, or corrupt compressed data
    DEVICE_ERROR = "device_error"
    BUSY = "busy"  # queue full: the op was not accepted, resubmit later


class OpKind(enum.Enum):
    COMPRESS = "compress"
    DECOMPRESS = "decompress"


@dataclass(slots=True, eq=False)
class CompOp:
    """One asynchronous request and, once completed, its result.

    ``src`` is the input (a page for COMPRESS, compressed bytes for DECOMPRESS); ``dst`` is the
    output once the op completed with SUCCESS; ``produced``/``consumed`` are byte counts.
    ``device_us`` is the device time of a modelled device (``None`` when measured on the host).
    ``user_data`` is the submitter's and is never touched by the backend.
    """

    kind: OpKind
    src: Any
    dst: bytes | None = None
    status: OpStatus = OpStatus.NOT_PROCESSED
    produced: int = 0
    consumed: int = 0
    error: str | None = None
    device_us: float | None = None
    user_data: Any = None

    @classmethod
    def compress(cls, page: Any, user_data: Any = None) -> CompOp:
        return cls(OpKind.COMPRESS, page, user_data=user_data)

    @classmethod
    def decompress(cls, data: Any, user_data: Any = None) -> CompOp:
        return cls(OpKind.DECOMPRESS, data, user_data=user_data)

    @property
    def done(self) -> bool:
        return self.status not in (OpStatus.NOT_PROCESSED, OpStatus.BUSY)


_MISSING = object()


@dataclass(frozen=True)
class Param:
    """Declaration of one constructor parameter: its type, default and allowed range."""

    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    nullable: bool = False

    def check(self, backend: str, key: str, value: Any) -> Any:
        where = f"backend {backend!r}: parameter {key!r}"
        if value is None and self.nullable:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and self.type is not bool:
            raise InvalidParameterError(f"{where} must be {self.type.__name__}, got a bool")
        if not isinstance(value, self.type):
            raise InvalidParameterError(
                f"{where} must be {self.type.__name__}, got {type(value).__name__} {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise InvalidParameterError(
                f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}"
            )
        if self.min is not None and value < self.min:
            raise InvalidParameterError(f"{where} must be >= {self.min}; got {value!r}")
        if self.max is not None and value > self.max:
            raise InvalidParameterError(f"{where} must be <= {self.max}; got {value!r}")
        return value


class Backend(ABC):
    """Base class of every compressor backend.

    Subclasses set ``name`` and ``PARAMS`` and implement :meth:`compress` and :meth:`decompress`.
    Offload backends override the batch and async methods. Construction validates parameters:
    an unknown key or an out-of-range value raises :class:`InvalidParameterError`.
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[Mapping[str, Param]] = {}

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = self.validate_params(params)
        self._completed: deque[CompOp] = deque()

    # -- parameters and config -------------------------------------------------------------

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return the full parameter dict (defaults filled in), or raise naming the bad key."""
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            known = ", ".join(sorted(cls.PARAMS)) or "none"
            raise InvalidParameterError(
                f"backend {cls.name!r}: unknown parameter {unknown[0]!r} (known: {known})"
            )
        out = {}
        for key, spec in cls.PARAMS.items():
            value = params.get(key, _MISSING)
            out[key] = spec.default if value is _MISSING else spec.check(cls.name, key, value)
        return out

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        """Whether this backend can run here and, if not, why. Overridden by device backends."""
        return True, None

    def get_config(self) -> dict[str, Any]:
        """A plain dict that :func:`hwzswap.get_backend` turns back into an equal backend."""
        return {"name": self.name, **self.params}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def describe(self) -> str:
        """One line naming the backend and, for devices, the device it runs on."""
        return f"{self.name} on {self.capabilities.device}"

    def close(self) -> None:
        """Release device resources. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"<{type(self).__name__} {self.name!r} {args}>"

    # -- single page -----------------------------------------------------------------------

    @abstractmethod
    def compress(self, page: Any) -> bytes | None:
        """Compress one 4096-byte page; ``None`` when the output would not be smaller."""

    @abstractmethod
    def decompress(self, data: Any) -> bytes:
        """Decompress to exactly one 4096-byte page or raise :class:`CorruptDataError`."""

    # -- batch -----------------------------------------------------------------------------

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        """Compress an ``(N, 4096)`` uint8 array; one item (bytes-like or ``None``) per page."""
        compress = self.compress
        return [compress(view) for view in page_views(pages)]

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray:
        """Decompress N items into an ``(N, 4096)`` uint8 array.

        Raises :class:`CorruptDataError` naming the first bad item's index.
        """
        out = np.empty((len(items), PAGE_SIZE), dtype=np.uint8)
        decompress = self.decompress
        for i, item in enumerate(items):
            try:
                out[i] = np.frombuffer(decompress(item), dtype=np.uint8)
            except CorruptDataError as exc:
                raise CorruptDataError(f"item {i}: {exc}") from exc
        return out

    # -- asynchronous ops ------------------------------------------------------------------

    def submit(self, ops: Sequence[CompOp]) -> int:
        """Enqueue ops; return how many (a prefix of ``ops``) were accepted.

        Ops not accepted are marked BUSY and must be resubmitted. This default completes every op
        synchronously; a queued device overrides it.
        """
        for op in ops:
            self._execute(op)
            self._completed.append(op)
        return len(ops)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        """Return ops that have completed since the last poll (at most ``max_ops``)."""
        done = self._completed
        n = len(done) if max_ops is None else min(max_ops, len(done))
        return [done.popleft() for _ in range(n)]

    def pending(self) -> int:
        """Ops accepted but not yet returned by :meth:`poll`."""
        return len(self._completed)

    def _execute(self, op: CompOp) -> None:
        """Run one op with the synchronous calls and fill in its result."""
        try:
            if op.kind is OpKind.COMPRESS:
                out = self.compress(op.src)
                op.consumed = PAGE_SIZE
                if out is None:
                    op.status, op.dst, op.produced = OpStatus.INCOMPRESSIBLE, None, 0
                else:
                    op.status, op.dst, op.produced = OpStatus.SUCCESS, bytes(out), len(out)
            else:
                out = self.decompress(op.src)
                op.consumed = memoryview(op.src).nbytes
                op.status, op.dst, op.produced = OpStatus.SUCCESS, out, len(out)
        except (InvalidInputError, CorruptDataError) as exc:
            op.status, op.error, op.dst = OpStatus.INVALID_INPUT, str(exc), None
        except DeviceError as exc:
            op.status, op.error, op.dst = OpStatus.DEVICE_ERROR, str(exc), None

    # -- accounting ------------------------------------------------------------------------

    def modeled_device_us(self) -> float | None:
        """Total modelled device time so far (µs), for ``time_basis == "modeled"`` backends."""
        return None

    def counters(self) -> dict[str, Any]:
        """Backend-specific counters (hardware ops, fallbacks, busy retries...)."""
        return {}


def run_ops(backend: Backend, ops: Sequence[CompOp], max_rounds: int = 1_000_000) -> list[CompOp]:
    """Submit ``ops``, resubmitting BUSY ones, and poll until all have completed.

    A convenience for callers that want async semantics without managing the queue themselves.
    Returns the ops in their original order.
    """
    waiting = list(ops)
    outstanding = 0
    rounds = 0
    while waiting or outstanding:
        if waiting:
            for op in waiting:
                op.status = OpStatus.NOT_PROCESSED
            accepted = backend.submit(waiting)
            outstanding += accepted
            waiting = waiting[accepted:]
        outstanding -= len(backend.poll())
        rounds += 1
        if rounds > max_rounds:
            raise DeviceError(
                f"backend {backend.name!r}: {len(waiting) + outstanding} ops still not complete "
                f"after {max_rounds} submit/poll rounds"
            )
    return list(ops)


def check_page(page: Any) -> memoryview:
    """Return a flat byte view of ``page`` or raise :class:`InvalidInputError`."""
    try:
        view = memoryview(page)
    except TypeError:
        raise InvalidInputError(
            f"a page must be a bytes-like object, not {type(page).__name__}"
        ) from None
    if view.nbytes != PAGE_SIZE:
        raise InvalidInputError(f"a page must be {PAGE_SIZE} bytes, got {view.nbytes}")
    if view.ndim != 1 or view.format not in ("B", "b", "c"):
        view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    return view


def check_pages(pages: Any) -> np.ndarray:
    """Validate a batch: an ``(N, 4096)`` uint8 numpy array (C-contiguous copy if needed)."""
    if not isinstance(pages, np.ndarray):
        raise InvalidInputError(
            f"a batch must be an (N, {PAGE_SIZE}) uint8 numpy array, not {type(pages).__name__}"
        )
    if pages.dtype != np.uint8 or pages.ndim != 2 or pages.shape[1] != PAGE_SIZE:
        raise InvalidInputError(
            f"a batch must be an (N, {PAGE_SIZE}) uint8 array; got shape {pages.shape} "
            f"dtype {pages.dtype}"
        )
    return np.ascontiguousarray(pages)


def page_views(pages: Any) -> list[memoryview]:
    """A batch (validated as :func:`check_pages` does) as one flat, read-only 4096-byte view
    per page, sharing the array's memory: what a codec call takes. Cheaper per page than
    iterating the array's rows (each row is a new ndarray, and turning it into a buffer costs
    again), which matters on the batch store path of a fast codec."""
    flat = memoryview(check_pages(pages).reshape(-1))
    if not flat.readonly:
        flat = flat.toreadonly()
    n = flat.nbytes // PAGE_SIZE
    slices = _PAGE_SLICES.get(n)
    if slices is None:
        slices = [slice(i, i + PAGE_SIZE) for i in range(0, n * PAGE_SIZE, PAGE_SIZE)]
        if n <= _PAGE_SLICES_MAX:
            _PAGE_SLICES[n] = slices
    # map() slices in C: no bytecode per page (~2 us less on a 32-page batch)
    return list(map(flat.__getitem__, slices))


#: page_views' slice objects for batches of up to this many pages, by batch size.
_PAGE_SLICES_MAX = 256
_PAGE_SLICES: dict[int, list[slice]] = {}


def smaller_or_none(outs: list[Any]) -> list[Any]:
    """A codec's outputs for a batch, each ``None`` where it is not smaller than a page (the
    :meth:`Backend.compress` rule)."""
    return [out if len(out) < PAGE_SIZE else None for out in outs]


def corrupt(backend: str, detail: str) -> CorruptDataError:
    """Build the standard corrupt-data error."""
    return CorruptDataError(f"{backend}: compressed data is corrupt or truncated ({detail})")


def wrong_length(backend: str, got: int) -> CorruptDataError:
    return CorruptDataError(
        f"{backend}: decompressed to {got} bytes, expected {PAGE_SIZE}: the data is corrupt "
        "or is not a compressed page"
    )


__all__ = [
    "PAGE_SIZE",
    "Backend",
    "Capabilities",
    "CompOp",
    "OpKind",
    "OpStatus",
    "Param",
    "check_page",
    "check_pages",
    "page_views",
    "smaller_or_none",
    "run_ops",
]

