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
import math
import operator
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from hwzswap.errors import (
    BackendError,
    CorruptDataError,
    DeviceError,
    InvalidInputError,
    InvalidParameterError,
    excerpt,
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
    #: The compressed format, when a software backend of that name decodes it (``"lz4"`` for
    #: an LZ4 device): zswap then decodes an object the device failed on in software.
    format: str | None = None
    #: The deadline of one call or op on this device (ms), when the config leaves
    #: ``zswap.device_timeout_ms`` unset; ``None``: the framework's 10 s.
    timeout_ms: float | None = None
    #: True when the driver may be called from several threads at once (a stateless codec);
    #: otherwise the engine calls it from one thread at a time, as the kernel serialises a
    #: compression context.
    concurrent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "asynchronous": self.asynchronous,
            "batch": self.batch,
            "min_batch": self.min_batch,
            "max_batch": self.max_batch,
            "preferred_batch": self.preferred_batch,
            "time_basis": self.time_basis,
            "format": self.format,
            "timeout_ms": self.timeout_ms,
            "concurrent": self.concurrent,
        }


#: The longest deadline a driver may declare (``Capabilities.timeout_ms``), and the longest
#: ``zswap.device_timeout_ms``: a day; a later deadline is no deadline.
MAX_TIMEOUT_MS = 86_400_000


def as_count(value: Any) -> int | None:
    """``value`` as a plain int when it is an integer (a Python ``int`` or a numpy integer such
    as ``np.int64``; never a bool, a float or a string), else ``None``: the one rule for the
    counts a driver gives (``submit``'s return, ``preferred_batch``, ``max_batch``,
    ``min_batch``), applied alike by the engine and the conformance kit."""
    if value.__class__ is int:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return operator.index(value)


def capabilities_problem(caps: Capabilities, timeout: bool = True) -> str | None:
    """What is wrong with a driver's :class:`Capabilities`, or None: the one rule the engine
    (``open_zswap`` refuses such a driver with a DriverError) and the conformance kit apply.
    ``batch``, ``asynchronous``, ``concurrent``: bools; ``preferred_batch``: an int >= 1;
    ``max_batch``: an int >= 1 or None (no limit); ``min_batch``: an int from 1 to
    ``max_batch`` (informational: the engine does not honour it); ``format``: None or a
    backend's name; ``time_basis``: ``measured`` or ``modeled``; ``device``: a string; and,
    with ``timeout``, ``timeout_ms`` None or a number of ms in (0, :data:`MAX_TIMEOUT_MS`]
    (the engine checks it only where it uses it: a config's ``zswap.device_timeout_ms``
    overrides it)."""

    def is_int(v: Any) -> bool:
        return as_count(v) is not None

    def got(v: Any) -> str:
        return f"got {v!r} ({type(v).__name__})"

    for name in ("batch", "asynchronous", "concurrent"):
        v = getattr(caps, name)
        if not isinstance(v, (bool, np.bool_)):
            return f"capabilities.{name} must be True or False, {got(v)}"
    if not is_int(caps.preferred_batch) or caps.preferred_batch < 1:
        return f"capabilities.preferred_batch must be an int >= 1, {got(caps.preferred_batch)}"
    most = caps.max_batch
    if most is not None and (not is_int(most) or most < 1):
        return f"capabilities.max_batch must be an int >= 1 or None (no limit), {got(most)}"
    if not is_int(caps.min_batch) or caps.min_batch < 1 or (most is not None
                                                              and caps.min_batch > most):
        return f"capabilities.min_batch must be an int from 1 to max_batch, {got(caps.min_batch)}"
    if caps.format is not None and (not isinstance(caps.format, str) or not caps.format):
        return ("capabilities.format must be None or the name of a software backend that "
                f"decodes the output, {got(caps.format)}")
    if caps.time_basis not in ("measured", "modeled"):
        return f"capabilities.time_basis must be 'measured' or 'modeled', {got(caps.time_basis)}"
    if not isinstance(caps.device, str):
        return f"capabilities.device must be a string, {got(caps.device)}"
    t = caps.timeout_ms
    if timeout and t is not None and (isinstance(t, (bool, np.bool_))
                                      or not isinstance(t, (int, float, np.number))
                                      or not 0 < t <= MAX_TIMEOUT_MS):
        return (f"capabilities.timeout_ms must be None or a number of milliseconds in "
                f"(0, {MAX_TIMEOUT_MS}] (a day), {got(t)}; open_zswap refuses it unless the "
                f"config sets zswap.device_timeout_ms")
    return None


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
    ``user_data`` is the submitter's and is never touched by the backend. ``caller_waits``:
    the submitter does nothing but wait for this op until a poll hands it back (a
    synchronous submit/poll loop, as the kernel's ``crypto_wait_req``); a modelled device
    counts that time as the host waiting for it, where an op submitted without it (async
    mode's batches) leaves the host free to work meanwhile. A device may ignore it.
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
    caller_waits: bool = False

    @classmethod
    def compress(cls, page: Any, user_data: Any = None) -> CompOp:
        return cls(OpKind.COMPRESS, page, user_data=user_data)

    @classmethod
    def decompress(cls, data: Any, user_data: Any = None) -> CompOp:
        return cls(OpKind.DECOMPRESS, data, user_data=user_data)

    @property
    def done(self) -> bool:
        return self.status not in (OpStatus.NOT_PROCESSED, OpStatus.BUSY)


class ItemStatus(enum.IntEnum):
    """Outcome of one item of a batch call (:class:`CompressedBatch`, :class:`DecompressedBatch`):
    the per-item status a batch carries, as a DPDK op carries its own."""

    OK = 0
    INCOMPRESSIBLE = 1  # compress only: the page would not shrink (not an error)
    FAILED = 2  # this item alone failed (device error, corrupt input); ``errors[i]`` says why


_PLAIN_ITEMS = frozenset((bytes, type(None)))
_FAILED_INT = int(ItemStatus.FAILED)


def _is_none(item: Any) -> int:
    """1 (INCOMPRESSIBLE) for ``None``, else 0 (OK)."""
    return 1 if item is None else 0


class CompressedBatch:
    """The result of compressing a batch of N pages: one flat buffer plus, per item, where its
    bytes start (``offsets``), how many there are (``sizes``) and its :class:`ItemStatus`
    (``status``), with a reason for each failed item (``errors``, index -> text).

    A batch backend builds one without a Python object per page (a GPU downloads one buffer and
    one array of sizes); the pool can then take the batch in one call
    (``malloc_write_batch``). ``batch[i]`` is item ``i``'s bytes (a read-only memoryview into
    ``data``) or ``None`` when it is not OK, so a ``CompressedBatch`` is also a sequence of items
    where the old contract expected a list. Only OK items own bytes; the others have size 0.
    """

    __slots__ = ("data", "offsets", "sizes", "status", "errors", "_view")

    def __init__(self, data: Any, offsets: Any, sizes: Any, status: Any = None,
                 errors: Mapping[int, str] | None = None) -> None:
        view = memoryview(data)
        if view.ndim != 1 or view.format not in ("B", "b", "c"):
            view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
        self._view = view.toreadonly() if not view.readonly else view
        self.data = data
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        n = len(self.sizes)
        if status is None:
            status = np.zeros(n, dtype=np.uint8)
        self.status = np.asarray(status, dtype=np.uint8)
        self.errors: dict[int, str] = dict(errors or {})
        if self.offsets.shape != (n,) or self.status.shape != (n,):
            raise InvalidInputError(
                f"a CompressedBatch needs one offset, size and status per item; got "
                f"{self.offsets.shape}, {self.sizes.shape}, {self.status.shape}"
            )

    @classmethod
    def from_items(cls, items: Sequence[Any]) -> CompressedBatch:
        """Pack a list of items (bytes-like; ``None`` for incompressible; an exception
        instance for a failed item) into one batch: the old contract's shape, converted."""
        n = len(items)
        kinds = set(map(type, items))
        if kinds <= _PLAIN_ITEMS:  # bytes and None only (a CPU codec's list): no loop here
            if type(None) in kinds:
                status = np.fromiter(map(_is_none, items), dtype=np.uint8, count=n)
                parts_ = [b"" if x is None else x for x in items]
            else:
                status, parts_ = np.zeros(n, dtype=np.uint8), items
            sizes = np.fromiter(map(len, parts_), dtype=np.int64, count=n)
            offsets = np.zeros(n, dtype=np.int64)
            if n:
                np.cumsum(sizes[:-1], out=offsets[1:])
            return cls(b"".join(parts_), offsets, sizes, status)
        sizes = np.zeros(n, dtype=np.int64)
        status = np.zeros(n, dtype=np.uint8)
        errors: dict[int, str] = {}
        parts: list[Any] = []
        for i, item in enumerate(items):
            if item is None:
                status[i] = ItemStatus.INCOMPRESSIBLE
            elif isinstance(item, BaseException):
                status[i] = ItemStatus.FAILED
                errors[i] = f"{type(item).__name__}: {item}"
            else:
                b = memoryview(item).cast("B") if not isinstance(item, bytes) else item
                sizes[i] = len(b)
                parts.append(b)
        offsets = np.zeros(n, dtype=np.int64)
        if n:
            np.cumsum(sizes[:-1], out=offsets[1:])
        return cls(b"".join(parts), offsets, sizes, status, errors)

    @classmethod
    def all_failed(cls, n: int, reason: str) -> CompressedBatch:
        """A result of ``n`` items that all FAILED for ``reason`` (a device call that raised,
        timed out or was refused as a whole): no bytes, every item's ``errors`` entry set."""
        return cls(b"", np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                   np.full(n, _FAILED_INT, dtype=np.uint8), dict.fromkeys(range(n), reason))

    @classmethod
    def concat(cls, parts: Sequence[CompressedBatch]) -> CompressedBatch:
        """The batches one after another, as one (the results of one batch sent in several
        calls): the buffers joined, offsets and error indices moved along. The inverse of
        :meth:`split`."""
        if len(parts) == 1:
            return parts[0]
        offsets, errors, base, at = [], {}, 0, 0
        for part in parts:
            offsets.append(part.offsets + base)
            errors.update({i + at: why for i, why in part.errors.items()})
            base += part.nbytes
            at += len(part)
        return cls(b"".join(part.buffer for part in parts), np.concatenate(offsets),
                   np.concatenate([part.sizes for part in parts]),
                   np.concatenate([part.status for part in parts]), errors)

    def split(self, sizes: Sequence[int]) -> list[CompressedBatch]:
        """This result cut back into one result per batch, ``sizes`` being the batches' item
        counts in order (the results of several batches compressed in one call): each part's
        error indices moved back to start at 0, the flat buffer shared, not copied. The
        inverse of :meth:`concat`, item for item (every part keeps the whole buffer, so
        concatenating the parts again gives the same items in a larger buffer); one size is
        this batch itself, as ``concat`` of one part is that part."""
        if sum(sizes) != len(self) or any(n < 0 for n in sizes):
            raise InvalidInputError(
                f"cannot split a CompressedBatch of {len(self)} items into parts of "
                f"{list(sizes)} items: the sizes must be >= 0 and add up to {len(self)}")
        if len(sizes) == 1:
            return [self]
        out, at = [], 0
        for n in sizes:
            errors = {i - at: why for i, why in self.errors.items() if at <= i < at + n}
            out.append(CompressedBatch(self.data, self.offsets[at:at + n],
                                       self.sizes[at:at + n], self.status[at:at + n], errors))
            at += n
        return out

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def nbytes(self) -> int:
        """Size of the flat buffer, in bytes (every OK item lies inside it)."""
        return self._view.nbytes

    @property
    def buffer(self) -> memoryview:
        """The flat buffer as a read-only, contiguous byte view (whatever ``data`` is)."""
        return self._view

    def __getitem__(self, i: int) -> memoryview | None:
        if self.status[i]:  # not OK (0): compared as a plain int, not through the enum
            return None
        start = int(self.offsets[i])
        return self._view[start:start + int(self.sizes[i])]

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def take(self, indices: Any) -> CompressedBatch:
        """The items at ``indices``, in that order, as a batch sharing this one's buffer."""
        sel = np.asarray(indices, dtype=np.int64)
        pos = {int(i): k for k, i in enumerate(sel)}
        return CompressedBatch(self.data, self.offsets[sel], self.sizes[sel], self.status[sel],
                               {pos[i]: why for i, why in self.errors.items() if i in pos})

    def item_bytes(self, i: int) -> bytes | None:
        """Item ``i`` as ``bytes`` (a copy), or ``None`` when it is not OK."""
        view = self[i]
        return None if view is None else view.tobytes()

    def failed(self) -> list[int]:
        """Indices of the FAILED items."""
        return np.flatnonzero(self.status == _FAILED_INT).tolist()

    def __repr__(self) -> str:
        counts = np.bincount(self.status, minlength=3)
        return (f"<CompressedBatch {len(self)} items: {counts[0]} ok, {counts[1]} "
                f"incompressible, {counts[2]} failed; {int(self.sizes.sum())} bytes>")


class DecompressedBatch:
    """The result of decompressing N items: an ``(N, 4096)`` uint8 array of pages and, per item,
    its :class:`ItemStatus` (OK or FAILED; a failed row's bytes mean nothing) with a reason for
    each failed item. A backend returns one when some items failed and others did not; a plain
    ``(N, 4096)`` array still means "all OK"."""

    __slots__ = ("pages", "status", "errors")

    def __init__(self, pages: np.ndarray, status: Any = None,
                 errors: Mapping[int, str] | None = None) -> None:
        self.pages = pages
        n = len(pages)
        self.status = (np.zeros(n, dtype=np.uint8) if status is None
                       else np.asarray(status, dtype=np.uint8))
        self.errors: dict[int, str] = dict(errors or {})

    @classmethod
    def all_failed(cls, n: int, reason: str) -> DecompressedBatch:
        """A result of ``n`` items that all FAILED for ``reason`` (a device call that raised
        or was refused as a whole): zeroed rows, every item's ``errors`` entry set."""
        return cls(np.zeros((n, PAGE_SIZE), dtype=np.uint8),
                   np.full(n, _FAILED_INT, dtype=np.uint8), dict.fromkeys(range(n), reason))

    @classmethod
    def concat(cls, parts: Sequence[DecompressedBatch]) -> DecompressedBatch:
        """The batches one after another, as one (error indices moved along)."""
        if len(parts) == 1:
            return parts[0]
        errors, at = {}, 0
        for part in parts:
            errors.update({i + at: why for i, why in part.errors.items()})
            at += len(part)
        return cls(np.concatenate([part.pages for part in parts]),
                   np.concatenate([part.status for part in parts]), errors)

    def __len__(self) -> int:
        return len(self.pages)

    def failed(self) -> list[int]:
        """Indices of the FAILED items."""
        return np.flatnonzero(self.status).tolist()

    def __repr__(self) -> str:
        return f"<DecompressedBatch {len(self)} pages, {len(self.failed())} failed>"


_MISSING = object()


def text_number_hint(value: Any, want: type = float) -> str:
    """For a string that reads as a number where a number was wanted: how to write it (YAML
    1.1 reads ``1e3`` as text, its floats need a dot and a signed exponent: the hint the core
    config keys give). ``""`` for anything else ('nan' and 'inf' too: no number is meant)."""
    if type(value) is not str or len(value) > 40 or not any(c.isdigit() for c in value):
        return ""
    if want is int:
        try:
            int(value)
        except ValueError:
            return ""
        return " (YAML read it as text: write the integer without quotes)"
    if want is not float:
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (YAML read it as text: write a number with a dot, e.g. 1.0e+3 for 1e3)"


#: Characters of a parameter's choices written in its error; the rest are counted, so the
#: whole message stays short enough for a config error (which clips a backend's message).
CHOICES_BUDGET = 200


def choices_text(choices: Sequence[Any]) -> str:
    """A parameter's choices for its error: every one that fits :data:`CHOICES_BUDGET`
    characters (each bounded), then how many more there are and where to see them all."""
    parts: list[str] = []
    used = 0
    for c in choices:
        text = excerpt(c, 40)
        if parts and used + len(text) + 2 > CHOICES_BUDGET:
            break
        parts.append(text)
        used += len(text) + 2
    shown = ", ".join(parts)
    more = len(choices) - len(parts)
    if more > 0:
        shown += f" and {more} more (`hwzswap backends --json` lists them all)"
    return shown


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
        """``value`` as this parameter holds it, or :class:`InvalidParameterError` naming
        ``backend`` and ``key``. A float must be finite (NaN passes every range comparison and
        an infinity every one-sided bound, and the models' arithmetic then yields nonsense).
        A YAML boolean given to a string parameter whose choices hold ``on``/``off`` is read
        as that word: YAML 1.1 reads an unquoted ``on``/``off`` (and ``yes``/``no``) as
        true/false."""
        where = f"backend {backend!r}: parameter {key!r}"
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) and self.type is str and self.choices is not None:
            word = "on" if value else "off"
            if word in self.choices:
                value = word
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise InvalidParameterError(
                    f"{where} must be a finite number; got an integer of {value.bit_length()} "
                    f"bits, too large for a float") from None
        if isinstance(value, bool) and self.type is not bool:
            hint = (" (YAML reads an unquoted on/off/yes/no as true/false: quote the value)"
                    if self.type is str else "")
            raise InvalidParameterError(
                f"{where} must be {self.type.__name__}, got a bool {value!r}{hint}")
        if not isinstance(value, self.type):
            raise InvalidParameterError(
                f"{where} must be {self.type.__name__}, got {type(value).__name__} "
                f"{excerpt(value)}{text_number_hint(value, self.type)}"
            )
        if self.type is float and not math.isfinite(value):
            raise InvalidParameterError(f"{where} must be a finite number; got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise InvalidParameterError(
                f"{where} must be one of {choices_text(self.choices)}; got {excerpt(value, 40)}"
            )
        if self.min is not None and value < self.min:
            raise InvalidParameterError(f"{where} must be >= {self.min}; got {excerpt(value)}")
        if self.max is not None and value > self.max:
            raise InvalidParameterError(f"{where} must be <= {self.max}; got {excerpt(value)}")
        return value


class Backend(ABC):
    """Base class of every compressor backend.

    Subclasses set ``name`` and ``PARAMS`` and implement :meth:`compress` and :meth:`decompress`.
    Offload backends override the batch and async methods. Construction validates parameters:
    an unknown key or an out-of-range value raises :class:`InvalidParameterError`.
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[Mapping[str, Param]] = {}
    #: Keys of :meth:`counters` that hold a level or a setting (a queue depth, bytes in
    #: flight, a peak, a config mapping), not a cumulative count: the bench reports them at
    #: their value at the end, not as a change (a dotted name picks a key inside a mapping).
    gauges: ClassVar[frozenset[str]] = frozenset()

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

    def compress_batch(self, pages: np.ndarray) -> list[Any] | CompressedBatch:
        """Compress an ``(N, 4096)`` uint8 array: one item per page, either as a list (each
        bytes-like, ``None`` when incompressible, or an exception instance when that page alone
        failed) or as one :class:`CompressedBatch` (flat buffer, sizes, per-item status)."""
        compress = self.compress
        return [compress(view) for view in page_views(pages)]

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray | DecompressedBatch:
        """Decompress N items (a sequence of bytes-like objects, or a :class:`CompressedBatch`)
        into an ``(N, 4096)`` uint8 array.

        Raises :class:`CorruptDataError` naming the first bad item's index. A backend may
        instead return a :class:`DecompressedBatch` that marks the failed items alone.
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
        """Backend-specific counters (hardware ops, fallbacks, busy retries...): cumulative
        counts, except the keys named in :attr:`gauges`."""
        return {}


def declared_gauges(backend: Backend) -> frozenset[str]:
    """The backend's :attr:`~hwzswap.backends.contract.Backend.gauges`: the ``counters()``
    keys it declares levels or settings (none by default). Anything but a collection of
    strings is the driver's mistake, named (a bare string would be read letter by letter)."""
    declared = getattr(backend, "gauges", frozenset())
    names = (() if isinstance(declared, (str, bytes)) or not isinstance(declared, Iterable)
             else tuple(declared))
    if not names and declared or not all(isinstance(g, str) for g in names):
        raise BackendError(
            f"backend {backend.name!r}: 'gauges' must be a set of counters() key names "
            f"(str), e.g. frozenset({{'queue_depth'}}); got {excerpt(declared)}")
    return frozenset(names)


def run_ops(backend: Backend, ops: Sequence[CompOp], max_rounds: int = 1_000_000) -> list[CompOp]:
    """Submit ``ops``, resubmitting BUSY ones, and poll until all have completed.

    A convenience for callers that want async semantics without managing the queue themselves.
    Returns the ops in their original order. The caller waits for them: each op says so
    (``caller_waits``), so a modelled device counts the time as the host waiting.
    """
    waiting = list(ops)
    for op in waiting:
        op.caller_waits = True
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
    """Return a flat, C-contiguous byte view of ``page`` or raise :class:`InvalidInputError`.

    A non-contiguous page (a strided or Fortran-ordered array) is valid input: it is copied,
    in C order, as :func:`check_pages` does for a batch, since the C codecs need one buffer."""
    try:
        view = memoryview(page)
    except TypeError:
        raise InvalidInputError(
            f"a page must be a bytes-like object, not {type(page).__name__}"
        ) from None
    if view.nbytes != PAGE_SIZE:
        raise InvalidInputError(f"a page must be {PAGE_SIZE} bytes, got {view.nbytes}")
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    if view.ndim != 1 or view.format not in ("B", "b", "c"):
        view = view.cast("B")
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


def read_only_view(pages: np.ndarray) -> np.ndarray:
    """``pages`` as an array over a read-only buffer (no copy: same shape, strides and memory),
    as a driver gets its input. Unlike a view with ``flags.writeable = False``, whose flag the
    driver could set back (numpy allows that on a view of a writable array), this one cannot be
    made writable: numpy refuses ``writeable = True`` when the base buffer is read-only. About
    0.3 us a call. An array with no buffer export (an object dtype) is copied into ``bytes``."""
    try:
        return np.asarray(memoryview(pages).toreadonly())
    except (TypeError, ValueError, BufferError):
        return np.frombuffer(np.ascontiguousarray(pages).tobytes(),
                             pages.dtype).reshape(pages.shape)


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
    "CompressedBatch",
    "DecompressedBatch",
    "ItemStatus",
    "OpKind",
    "OpStatus",
    "Param",
    "as_count",
    "check_page",
    "check_pages",
    "page_views",
    "read_only_view",
    "smaller_or_none",
    "run_ops",
]



def compressed_input(backend: str, data: Any) -> bytes | memoryview:
    """``data`` checked as a decompress entry point's input: ``bytes`` as they are, any other
    C-contiguous bytes-like object as a flat byte view (no copy). Anything else raises
    :class:`InvalidInputError` naming the backend (never a bare ``TypeError``/``BufferError``)."""
    if type(data) is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise InvalidInputError(
            f"{backend}: compressed data must be a bytes-like object (bytes, bytearray, "
            f"memoryview, a uint8 array), not {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise InvalidInputError(
            f"{backend}: compressed data must be one contiguous buffer; this "
            f"{type(data).__name__} is strided (pass bytes(data), a copy)"
        )
    if view.ndim == 1 and view.format == "B":
        return view
    try:
        return view.cast("B")
    except TypeError as exc:  # a zero-dimensional or otherwise uncastable buffer
        raise InvalidInputError(
            f"{backend}: compressed data must be a flat byte buffer ({exc})"
        ) from None
