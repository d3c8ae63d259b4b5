"""The engine's side of the compressor contract: every call zswap makes into a driver.

zswap never calls a backend directly. :class:`Compressor` stands between them, as the kernel's
crypto layer stands between zswap and a compression driver, and does six things a driver
cannot be trusted to do for itself:

* **hands it read-only input**: the pages of a batch (``compress_batch``, and each op's
  ``src`` in ``compress_ops``) are a read-only view, a single page is ``bytes``, a stored
  object a read-only view of the pool (or a copy). A driver that writes to its input gets
  numpy's ValueError, a DriverError naming it, where it used to change the caller's pages (or
  zswap's staged copies) under the page CRCs (``verify_pages``, taken before the call);
  ``capabilities`` is read once (kept as :attr:`Compressor.capabilities`), and every field
  the engine uses checked (a DriverError naming the driver and the field); a getter from
  outside the package that never returns is a DriverError at the registry's deadline
  (:func:`~hwzswap.backends.registry.read_capabilities`), not a hang;

* **checks every result** against the contract: ``compress`` gives bytes shorter than a page or
  ``None``; ``decompress`` gives exactly one 4096-byte page; a batch call gives one item per
  page (a list, a :class:`~hwzswap.backends.contract.CompressedBatch`, an ``(N, 4096)`` uint8
  array or a :class:`~hwzswap.backends.contract.DecompressedBatch`). A wrong result raises
  :class:`~hwzswap.errors.DriverError` naming the driver, the call and what was wrong, and is
  counted by kind (``counters()``); it is never handed on, so zswap neither stores it nor
  returns it. An exception that is not a :class:`~hwzswap.errors.HwzswapError` (a bug in the
  driver; ``SystemExit`` too, not ``KeyboardInterrupt``) becomes a DriverError too;
* **normalises batch results** to the per-item form: whatever shape a driver returns, the engine
  sees one ``CompressedBatch`` / ``DecompressedBatch``, so one failed page fails that page only;
* **decodes in software** (``software_decompress``, which zswap's load and writeback call) a
  page the device failed on (a device error, a timeout or a call refused behind a stuck one,
  not corrupt data) when the driver names its format (``Capabilities.format``) and a software
  backend of that name loads here (``sw_fallbacks``). That decoder is one instance, built on
  first use, and called from several threads at once (loads and reclaim under zswap's tree
  lock, the background writeback thread and async completions outside it): calls into it are
  serialised by a lock of its own unless its capabilities say ``concurrent`` (the built-in
  codecs do, and are: zstd keeps one context per thread), so a software format that keeps
  state in its instance cannot hand back another thread's page;
* **serialises** the calls into a driver that is not safe from several threads at once
  (``Capabilities.concurrent``: the stateless CPU codecs say they are), as the kernel keeps one
  compression context per CPU under a mutex. The lock (``_serial``, a
  :class:`~hwzswap.frontswap.devicehold.DeviceHold`) records the deadline of the call
  holding it (``zswap.device_timeout_ms``; k of them for a pipeline call merging k
  batches). A call waits for it as long as the holder is within that deadline (calls
  queued behind healthy ones are a busy device, not a stuck one), and once the holder is
  past it is refused as a call behind a stuck one is (``refused_stuck``, a given-up
  DeviceTimeoutError: the store is rejected, a load decodes in software or fails). The
  call holding the lock itself runs with no deadline when the driver is trusted (called
  directly), in the modes that do not give it one (async mode's pipeline does); so one hung
  call holds up a load, which waits for the device under zswap's tree lock, no longer than
  the rest of that call's deadline;
* **bounds device time**: asynchronous ops (``submit``/``poll``) get a deadline
  (``zswap.device_timeout_ms``; the driver's own when the config leaves it unset); an op still
  outstanding after it completes as DEVICE_ERROR ("timed out"), BUSY is backpressure (ops are
  resubmitted) and never an error; one submit/poll loop runs at a time (``_ops_lock``, a
  ``DeviceHold`` too: the loop's deadline is its entry time plus its k deadlines), and a
  caller waits for the one ahead of it as long as that loop is within its deadline (a
  ``poll`` that never returns must not hold up the loads behind it), then is refused as
  behind a stuck call; and after
  ``fail_after`` consecutive timeouts the device is marked failed: every later compress
  raises :class:`~hwzswap.errors.DeviceError` at once, so zswap rejects stores (the pages go
  to the swap device) instead of waiting on a dead device.
  With ``retry_s`` (``zswap.device_retry_s``) the device is tried again that long after it was
  marked failed, once no call given up on is still stuck in it: the next call goes to it, and
  it is back if it answers, failed again (for another ``retry_s``) at its first timeout.
  Decompression of a device marked failed is refused at once when software decodes the
  device's format (zswap then does); without a software decoder the device is still asked
  (under the deadline when its calls are watched or asynchronous), since the pages it
  compressed can come back no other way, but never while a call given up on is stuck in it
  (below): a load then fails at once.

A driver from outside this package (an entry point, a test's class) may also block in a
synchronous call. Its calls therefore run on a watchdog thread (:class:`Watchdog`) that the
caller waits on for at most the deadline: a call still running then raises DeviceTimeoutError
and is counted, and its late result, if it comes, is dropped. Until it has returned no other
call is made to the driver (whatever ``Capabilities.concurrent`` says, the watchdog serialises
the calls): each is refused at once with a DeviceTimeoutError ("not made: an earlier call ...
is still running"), since it would have waited behind the stuck one, and counted as refused
(``refused_stuck``), not as a timeout (the stuck call marks the device failed once it has been
in the driver for ``fail_after`` deadlines). A store is then rejected and a load decodes in
software or fails, at once; so at most one thread is ever stuck in a driver, a readahead pays
one deadline and not one a page, and a driver that serves one call at a time never gets two.
That costs a thread hand-off per call (tens of µs, once per batch in the batch modes); the
package's own drivers are trusted and called directly.
"""

from __future__ import annotations

import numbers
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from hwzswap.backends.contract import (
    MAX_TIMEOUT_MS,
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompOp,
    CompressedBatch,
    DecompressedBatch,
    ItemStatus,
    OpKind,
    OpStatus,
    as_count,
    read_only_view,
)
from hwzswap.backends.registry import read_capabilities
from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    DeviceTimeoutError,
    DriverError,
    HwzswapError,
)
from hwzswap.frontswap.devicehold import DeviceHold, Overdue
from hwzswap.frontswap.pipeline import merged_batches

#: Deadline of a device call or op when neither the config nor the driver sets one.
DEFAULT_TIMEOUT_MS = 10_000.0

#: Kinds of contract violation counted (``counters()["bad_<kind>"]``).
VIOLATIONS = ("result_type", "result_length", "item_count", "array_shape", "exception")

_PLAIN = frozenset((bytes, type(None)))
_OK = int(ItemStatus.OK)  # plain ints: numpy compares them without the enum's lookups
_INCOMPRESSIBLE = int(ItemStatus.INCOMPRESSIBLE)
_FAILED = int(ItemStatus.FAILED)

_R = TypeVar("_R")


class _Timeout(Exception):
    """A watched call did not return within the deadline."""


class _Stuck(Exception):
    """A watched call was not made: a call given up at its deadline is still in the driver."""


def serve_jobs(jobs: queue.SimpleQueue[list[Any] | None]) -> None:
    """A worker thread's loop: each job ``[fn, args, done, result, error]`` is run and its
    result or exception (any BaseException: handed to the waiting caller) stored before
    ``done`` is set; ``None`` ends the loop. The watchdog's calls and the bench's raw pass
    run on it."""
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            job[3] = job[0](*job[1])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            job[4] = exc
        job[2].set()


class Watchdog:
    """Runs calls on a worker thread and waits at most ``timeout_s`` for each; a call still
    running then raises :class:`_Timeout` and the worker is abandoned. Calls are serialised,
    as a driver instance expects: while a call given up on is still running in the driver, a
    later call is not made at all (it raises :class:`_Stuck` at once). A new worker would
    enter the driver beside the stuck call (two threads in a driver that serves one), and each
    such call that hangs too would leave one more thread behind; so at most one thread is ever
    stuck in a driver, and no caller waits on it."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # one call at a time
        self._jobs: queue.SimpleQueue[list[Any]] | None = None
        self._abandoned: list[threading.Event] = []  # of calls given up: set once they return
        self._stuck_since = 0.0  # when the oldest call still stuck was made (monotonic)

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> Any:
        """``fn(*args)`` on the worker, waiting at most ``timeout_s`` (``None``: the
        watchdog's own)."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        job: list[Any] = [fn, args, threading.Event(), None, None]
        with self._lock:
            if self._abandoned:
                self._abandoned = [ev for ev in self._abandoned if not ev.is_set()]
                if self._abandoned:
                    raise _Stuck()
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=serve_jobs, args=(self._jobs,), daemon=True,
                                 name=f"hwzswap-watchdog-{self.name}").start()
            self._jobs.put(job)
            started = time.monotonic()
            if not job[2].wait(wait):
                self._jobs.put(None)  # the worker ends if the stuck call ever returns
                self._jobs = None
                if not self._abandoned:
                    self._stuck_since = started
                self._abandoned.append(job[2])
                raise _Timeout()
        if job[4] is not None:
            raise job[4]
        return job[3]

    def stuck(self) -> bool:
        """Whether a call given up at its deadline is still running in the driver."""
        return not all(ev.is_set() for ev in list(self._abandoned))

    def stuck_for(self) -> float:
        """Seconds since the call still stuck in the driver was made (0.0: none is)."""
        return time.monotonic() - self._stuck_since if self.stuck() else 0.0

    def close(self) -> None:
        """End the worker thread once its current call (if any) returns. Idempotent; a later
        call starts a new worker."""
        with self._lock:
            if self._jobs is not None:
                self._jobs.put(None)
                self._jobs = None



def _bytes_like(out: Any) -> bytes | None:
    """A driver's result as bytes when it is a bytes-like object (bytes, bytearray, a
    memoryview, a uint8 array: what the engine takes), else ``None``."""
    if out.__class__ is bytes:
        return out
    if isinstance(out, (str, int, float)) or out is None:
        return None
    try:
        return memoryview(out).tobytes()
    except TypeError:
        return None


def _detached(arg: Any) -> Any:
    """A call argument that shares no memory with the pool: views (and lists of them) copied;
    an array made read-only (a view: no copy)."""
    if isinstance(arg, memoryview):
        return arg.tobytes()
    if isinstance(arg, np.ndarray):
        return read_only_view(arg)
    if isinstance(arg, list) and arg and isinstance(arg[0], memoryview):
        return [a.tobytes() if isinstance(a, memoryview) else a for a in arg]
    return arg


def _describe(value: Any) -> str:
    """A short description of a bad result (its type and size, never its whole repr)."""
    kind = type(value).__name__
    try:
        return f"{kind} of {len(value)} items/bytes"
    except TypeError:
        return kind


class Compressor:
    """A backend as zswap uses it: checked results, per-item batches, bounded device time.

    ``timeout_ms``: the deadline of one device call or op (``None``: the driver's
    ``capabilities`` or :data:`DEFAULT_TIMEOUT_MS`); ``fail_after``: consecutive timeouts after
    which the device is marked failed; ``retry_s``: how long after that it is tried again
    (``None``: never, until the swap system is rebuilt); ``watchdog``: which drivers' calls run
    on the :class:`Watchdog` (``auto``: drivers from outside the hwzswap package, ``on``: every
    driver, ``off``: none, each driver then called directly as a built-in is).
    """

    def __init__(self, backend: Backend, timeout_ms: float | None = None,
                 fail_after: int = 8, watchdog: str = "auto",
                 retry_s: float | None = None) -> None:
        self.backend = backend
        self.name = backend.name
        # read once, every field the engine uses checked; a driver from outside the package
        # under the registry's deadline (DRIVER_CALL_TIMEOUT_S), not the device's: this is
        # no device call, and a device deadline of a millisecond is no time to start a thread
        caps = read_capabilities(backend)
        #: the driver's checked capabilities, as read here: what the engine runs on (a
        #: caller reads them here, not from the driver again)
        self.capabilities: Capabilities = caps
        self.batch = bool(caps.batch)
        self.asynchronous = bool(caps.asynchronous)
        #: the codec runs on the host's own CPU (device "cpu", measured time): what it is
        #: handed costs only host time, not a device's requests or modelled time
        self.on_host = caps.device == "cpu" and caps.time_basis == "measured"
        self.preferred_batch = int(caps.preferred_batch)
        self.max_batch = None if caps.max_batch is None else as_count(caps.max_batch)
        #: where the deadline comes from, for the messages that name it
        self.deadline_source = "zswap.device_timeout_ms"
        if timeout_ms is None:
            own = caps.timeout_ms is not None
            timeout_ms = caps.timeout_ms if own else DEFAULT_TIMEOUT_MS
            self.deadline_source = ("the driver's own timeout; zswap.device_timeout_ms unset"
                                    if own else "the default; zswap.device_timeout_ms unset")
            if (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, numbers.Real)
                    or not 0 < timeout_ms <= MAX_TIMEOUT_MS):
                raise DriverError(
                    f"driver {self.name!r}: capabilities.timeout_ms must be a number of "
                    f"milliseconds in (0, {MAX_TIMEOUT_MS}] (a day), got {timeout_ms!r}; "
                    f"set zswap.device_timeout_ms to override it")
        self.timeout_s = float(timeout_ms) / 1000.0
        self.fail_after = fail_after
        self._failed = False  # marked failed after fail_after consecutive timeouts
        self._failed_at = 0.0  # when (monotonic), for retry_s
        self.retry_s = retry_s
        self._probation = False  # tried again after retry_s: one timeout fails it again
        self.recoveries = 0  # tries after retry_s that the device answered
        self._failed_by_retry = False  # the last mark came from a try on probation
        self._state = threading.Lock()  # the failed/probation transitions (several threads)
        #: callables saying whether a call given up on is still stuck in the driver (the
        #: watchdog's, the async pipeline's): no retry while one is, so a dead device does
        #: not collect one stuck thread per retry
        self.stuck_checks: list[Callable[[], bool]] = []
        self._consecutive_timeouts = 0
        #: timeouts counted so far, all calls: an answer to a call begun before the latest
        #: timeout (a given-up call's late answer, or a slow one beside it) proves nothing
        self._timeout_epoch = 0
        self._marks = 0  # times the device was marked failed (see failed_marks)
        self.watchdog: Watchdog | None = None
        #: run_ops: one submit/poll loop at a time, with the loop's deadline (see _enter_ops)
        self._ops_lock = DeviceHold()
        # a loop past its deadline is stuck in submit or poll (it ends at its deadline else)
        self.stuck_checks.append(self._ops_lock.overdue)
        self._op_broken: str | None = None  # an op of this loop broke the contract (why)
        #: where a submit/poll loop sends the completed ops its ``poll`` handed back that are not
        #: its own: ops of batches left in flight (async mode's
        #: :class:`~hwzswap.frontswap.opsinflight.OpsInFlight`, which sets it). Called in the
        #: loop, under its hold and maybe under zswap's tree lock: it only records them
        self.stray_ops: Callable[[list[CompOp]], None] | None = None
        #: one call at a time in a directly called driver that is not ``concurrent``, with
        #: the holder's deadline (see _watched); None: not needed
        self._serial: DeviceHold | None = None
        outside = not type(backend).__module__.startswith("hwzswap.")
        if watchdog == "on" or (watchdog == "auto" and outside):
            self.watchdog = Watchdog(self.name, self.timeout_s)  # serialises calls too
            self.stuck_checks.append(self.watchdog.stuck)
        elif not bool(caps.concurrent):
            self._serial = DeviceHold()  # one thread at a time in the driver
            self.stuck_checks.append(self._serial.overdue)
        self._compress = self._watched(backend.compress, "compress")
        self._decompress = self._watched(backend.decompress, "decompress")
        self._compress_batch = self._watched(backend.compress_batch, "compress_batch")
        self._decompress_batch = self._watched(backend.decompress_batch, "decompress_batch")
        self._submit = self._watched(backend.submit, "submit")
        self._poll = self._watched(backend.poll, "poll")
        self.format = caps.format
        self._software: Backend | None = None  # built on first use
        self._no_software = False  # the format has no software decoder here (found once)
        self._software_build = threading.Lock()  # the decoder is built once, by one thread
        #: serialises the calls into a software decoder whose capabilities do not say
        #: ``concurrent`` (None: it is, or there is none); loads, the writeback thread, reclaim
        #: and async completions all decode through the one instance
        self._software_lock: threading.Lock | None = None
        self.sw_fallbacks = 0
        self.timeouts = 0
        self.device_errors = 0
        self.item_failures = 0
        self.busy_retries = 0
        #: calls not made because one given up at its deadline was still in the driver
        #: (not timeouts: they do not count toward ``fail_after``)
        self.refused_stuck = 0
        self.bad = dict.fromkeys(VIOLATIONS, 0)
        #: the last contract violation or device error (diagnostics, shown by stats)
        self.last_error: str | None = None

    def _watched(self, fn: Callable[..., Any], call: str) -> Callable[..., Any]:
        """``fn`` itself for a trusted driver that may be called concurrently; under a lock for
        a trusted one that may not (``Capabilities.concurrent``); else ``fn`` run under the
        watchdog (which serialises calls too), a timeout becoming a counted DeviceError."""
        dog = self.watchdog
        if dog is None:
            hold = self._serial
            if hold is None:
                return fn
            take, release = hold.take, hold.release

            def serialised(*args: Any) -> Any:
                # A call waits for the device while the call holding it is within its own
                # deadline, and is refused once that one is past it (a hung call must not
                # hang a load, which waits under zswap's tree lock, nor the completions and
                # stats behind that lock); the call itself then runs directly, as a trusted
                # driver's does, with this call's deadline recorded for the callers behind.
                refused = take(self.timeout_s * merged_batches())
                if refused is not None:
                    raise self._refuse_overdue(
                        call, refused, "the call holding the device (which gets one call at a "
                        "time)") from None
                try:
                    return fn(*args)
                finally:
                    release()

            return serialised

        def watched(*args: Any) -> Any:
            # an abandoned call may outlive the pool's object: hand it copies, not views
            args = tuple(_detached(a) for a in args)
            merged = merged_batches()  # an async call merging k batches: k deadlines
            marks = self._marks
            try:
                return dog.call(fn, *args, timeout_s=self.timeout_s * merged)
            except _Timeout:
                self.note_timeouts(1, marks)
                raise DeviceTimeoutError(
                    f"driver {self.name!r}: {call} did not return within "
                    f"{self._deadline_text(merged)}; given up",
                    given_up=True) from None  # counted here, not again
            except _Stuck:
                # A call given up before is still in the driver: this one would wait behind
                # it (or enter beside it). Not made (see _refuse_stuck).
                raise self._refuse_stuck(
                    call, dog.stuck_for(), "an earlier call is still stuck in the driver",
                    f"an earlier call that did not return within "
                    f"{self.timeout_s * 1000.0:g} ms ({self.deadline_source}) is still "
                    f"running in the driver, which gets one call at a time") from None

        return watched

    def _refuse_overdue(self, call: str, over: Overdue, holder: str) -> DeviceTimeoutError:
        """The refusal of ``call`` behind ``holder`` (the call holding the device, or its
        submit/poll loop), which is past its own deadline (``over``): what is true, and what
        to do (see :meth:`_refuse_stuck`)."""
        merged = max(1, round(over.allowed_s / self.timeout_s))
        held_ms = over.held_s * 1000.0
        return self._refuse_stuck(
            call, over.held_s, f"{holder} is past its own deadline ({held_ms:.0f} ms in the "
            f"driver)",
            f"{holder} has been in the driver {held_ms:.0f} ms, past its own deadline of "
            f"{self._deadline_text(merged)}; if the device is merely slow under this load, "
            f"raise zswap.device_timeout_ms, else the driver is stuck: see its counters in "
            f"zswap's stats (driver_timeouts, driver_refused_stuck) and fix the driver")

    def _refuse_stuck(self, call: str, stuck_for: float, short: str,
                      why: str) -> DeviceTimeoutError:
        """A call not made because the device is held by one past its deadline (``stuck_for``
        seconds in it so far): counted as refused (``refused_stuck``), not as a timeout -- it
        never ran, and "device_fail_after consecutive timeouts" means calls that ran past
        their deadline (one stall used to fail the device within microseconds, as the next
        calls were refused). Returned as a given-up timeout to raise (counted here, not
        again): the store goes to the swap device, a load to the software decoder where there
        is one. A call stuck for ``fail_after`` deadlines is the evidence of as many timeouts
        in a row: the device is marked failed (a driver stuck for good must not stay
        "working" with every call refused)."""
        with self._state:
            self.refused_stuck += 1
        if stuck_for >= self.fail_after * self.timeout_s:
            self._stuck_too_long()
        self.last_error = f"driver {self.name!r}: {call} not made: {short}"
        return DeviceTimeoutError(f"driver {self.name!r}: {call} not made: {why}",
                                  given_up=True)

    def _deadline_text(self, merged: int) -> str:
        """``300 ms (zswap.device_timeout_ms)``, or for a call merging ``merged`` batches
        ``4 x 300 ms (...)``: the deadline a call had, for its messages."""
        ms = f"{self.timeout_s * 1000.0:g} ms ({self.deadline_source})"
        return ms if merged == 1 else (f"{merged} x {ms}: a call of {merged} merged batches "
                                       f"gets one deadline each")

    # -- violations ---------------------------------------------------------------------------

    def _violation(self, kind: str, call: str, what: str) -> DriverError:
        self.bad[kind] += 1
        msg = f"driver {self.name!r}: {call}: {what} (the compressor contract is broken)"
        self.last_error = msg
        return DriverError(msg)

    def _foreign(self, call: str, exc: BaseException) -> DriverError:
        """A driver raised something outside the HwzswapError family: a bug, reported as one
        (``SystemExit`` from a sloppy library too: a driver does not end the process). A
        ``KeyboardInterrupt`` is the user's, not the driver's: it is raised on, here."""
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        what = f"raised {type(exc).__name__}: {str(exc)[:200]}"
        if isinstance(exc, ValueError) and ("read-only" in str(exc)
                                            or "WRITEABLE flag" in str(exc)):
            what += ("; the pages a driver is given are read-only: it must not write to its "
                     "input (copy a page first if it needs a writable buffer)")
        return self._violation("exception", call, what)

    @property
    def failed(self) -> bool:
        """Whether the device is marked failed now. Once ``retry_s`` has passed since it was
        marked, and no call given up on is still stuck in the driver (else the wait starts
        again: it has not come back), it is not: the next call is a try, on probation until
        it answers."""
        if not self._failed or self.retry_s is None:
            return self._failed
        # Lock nesting: _state, then AsyncPipeline._cv (its stuck(), one of stuck_checks; the
        # watchdog's and _serial's checks take no lock). Safe only because nothing takes
        # _state while holding the pipeline's _cv: AsyncPipeline._expire_locked releases _cv
        # before it calls note_timeouts (which takes _state); keep it so.
        with self._state:
            if self._failed and time.monotonic() - self._failed_at >= self.retry_s:
                if any(check() for check in self.stuck_checks):
                    self._failed_at = time.monotonic()
                else:
                    self._failed = False
                    self._probation = True
            return self._failed

    def _timeout_counted(self, marks: int | None = None) -> None:
        """One more consecutive timeout: the device is marked failed after ``fail_after`` of
        them, or at once while on probation. A device already failed keeps the time it was
        marked (a load that timed out then does not put its retry off). ``marks``: the
        :attr:`failed_marks` when the timed-out call or op was made; one made before the
        device was last marked failed is not counted."""
        with self._state:
            if marks is not None and marks != self._marks:
                return
            self._timeout_epoch += 1
            self._consecutive_timeouts += 1
            if self._failed:
                return
            if self._probation or self._consecutive_timeouts >= self.fail_after:
                self._mark_failed_locked()

    def _mark_failed_locked(self) -> None:
        """Mark the device failed now. ``_state`` held."""
        self._failed_by_retry = self._probation
        self._failed_at = time.monotonic()
        self._failed = True
        self._probation = False
        self._marks += 1

    def _stuck_too_long(self) -> None:
        """A call given up on has stayed in the driver for ``fail_after`` deadlines: mark the
        device failed (once; a device already failed keeps the time it was marked)."""
        with self._state:
            if not self._failed:
                self._mark_failed_locked()

    def answered(self, epoch: int) -> None:
        """The device answered a call begun at timeout ``epoch``: its timeouts are no longer
        consecutive, and a device on probation is back. An answer to a call begun before a
        timeout was counted (one given up that answers late) changes nothing: a device that
        always answers just past the deadline must still be marked failed."""
        with self._state:
            if epoch != self._timeout_epoch:
                return
            self._consecutive_timeouts = 0
            if self._probation:
                self._probation = False
                self.recoveries += 1

    def _check_alive(self, call: str) -> None:
        if self.failed:
            why = ("its retry timed out" if self._failed_by_retry
                   else f"{self.fail_after} consecutive timeouts")
            if self.retry_s is None:
                then = "until the swap system is rebuilt (or set zswap.device_retry_s)"
            else:
                left = max(0.0, self._failed_at + self.retry_s - time.monotonic())
                then = f"until it is tried again in {left:.1f} s (zswap.device_retry_s)"
            raise DeviceError(
                f"driver {self.name!r}: {call}: the device was marked failed after {why}; "
                f"zswap rejects stores {then}"
            )

    def _refuse_decompress(self) -> bool:
        """A device marked failed is not asked to decompress when software decodes its format
        (the caller falls back to it); without a software decoder it is still asked (watched
        or asynchronous calls under the deadline): refusing would make every page it holds
        unreadable."""
        return self.failed and self._software_decoder() is not None

    def _software_decoder(self) -> Backend | None:
        """The software backend of the driver's ``format``, built once; ``None`` when there is
        no format, or none of that name loads and runs here (a vendor format with no software
        decoder counts as none, so its pages are still asked of the device)."""
        if self._software is None and not self._no_software:
            with self._software_build:  # two threads' first fallbacks build one decoder
                if self._software is None and not self._no_software:
                    self._build_software_decoder()
        return self._software

    def _build_software_decoder(self) -> None:
        if self.format is None or self.format == self.name:
            self._no_software = True
            return
        from hwzswap.backends.registry import get_backend

        try:
            software = get_backend(self.format)
            concurrent = bool(read_capabilities(software).concurrent)
        except HwzswapError:
            self._no_software = True
            return
        # the lock first: a thread that sees the decoder must see its lock too
        self._software_lock = None if concurrent else threading.Lock()
        self._software = software

    def _count_device_error(self, exc: HwzswapError) -> None:
        """A device error raised by a call. A timeout counts in ``timeouts`` (toward
        ``device_fail_after``): here when the driver's own deadline passed, where the call
        was given up when the watchdog gave up on it (``given_up``)."""
        if isinstance(exc, DeviceTimeoutError):
            if not exc.given_up:
                self.note_timeouts(1)
            return
        if isinstance(exc, DeviceError):
            self.device_errors += 1
            self.last_error = f"driver {self.name!r}: {exc}"

    def note_error(self, exc: HwzswapError) -> None:
        """The engine gave up on a call with ``exc`` (a store rejected for it): keep it as
        :attr:`last_error`. A DriverError is kept already, where it was raised."""
        if not isinstance(exc, DriverError):
            self.last_error = f"{type(exc).__name__}: {exc}"

    # -- single page -------------------------------------------------------------------------

    def compress(self, page: bytes) -> bytes | None:
        """The compressed page (bytes shorter than a page), or ``None`` if it would not shrink.
        Raises DriverError for a result that breaks the contract, DeviceError as the driver
        does."""
        if self._failed and self.failed:
            self._check_alive("compress")
        # This call's guard (epoch, device error counted, foreign error, answered) is written
        # out again in decompress on purpose: one shared helper cost 3-5 % of an lz4 page call.
        epoch = self._timeout_epoch
        try:
            out = self._compress(page)
        except HwzswapError as exc:
            self._count_device_error(exc)
            raise
        except BaseException as exc:  # noqa: BLE001 - a driver bug, reported as a DriverError
            raise self._foreign("compress", exc) from exc
        if self._consecutive_timeouts or self._probation:
            self.answered(epoch)
        if out is None:
            return None
        if out.__class__ is not bytes:
            out = self._as_bytes(out, "compress")
        if not 0 < len(out) < PAGE_SIZE:
            raise self._violation(
                "result_length", "compress",
                f"returned {len(out)} bytes; a compressed page is 1..{PAGE_SIZE - 1} bytes "
                f"(None when it does not shrink)")
        return out

    def decompress(self, data: Any) -> bytes:
        """Exactly one 4096-byte page. CorruptDataError as the driver raises it; DriverError
        for a result of the wrong type or length."""
        if self._failed and self._refuse_decompress():
            self._check_alive("decompress")
        epoch = self._timeout_epoch
        try:
            page = self._decompress(data)
        except HwzswapError as exc:
            self._count_device_error(exc)
            raise
        except BaseException as exc:  # noqa: BLE001
            err = self._foreign("decompress", exc)
            err.__cause__ = exc
            return self._software_instead(err, data)
        if self._consecutive_timeouts or self._probation:
            self.answered(epoch)
        if page.__class__ is not bytes:
            try:
                page = self._as_bytes(page, "decompress")
            except DriverError as err:
                return self._software_instead(err, data)
        if len(page) != PAGE_SIZE:
            return self._software_instead(self._violation(
                "result_length", "decompress",
                f"returned {len(page)} bytes, not a {PAGE_SIZE}-byte page"), data)
        return page

    def _software_instead(self, err: DriverError, data: Any) -> bytes:
        """A decompression that broke the contract (``err``, counted already): the page from
        the software decoder of the driver's ``format`` instead (``sw_fallbacks``), as after a
        DeviceError; ``err`` raised when there is none (the data is then readable no other
        way, and the driver's bug is the error to see)."""
        if self._software_decoder() is None:
            raise err
        return self.software_decompress(data, err)

    def decompress_each(self, items: Sequence[Any]) -> list[bytes] | None:
        """The driver's ``decompress`` on each item, the results checked in bulk (the load
        path of a device without a batch call): the pages, or ``None`` when a call raised,
        a result is not a page, or the device is marked failed. A raised error is counted
        here as :meth:`decompress` counts it; the caller then redoes the items one by one
        through :meth:`decompress`, which names the bad one (a call that fails again counts
        again: each failed call counts once; a transient fault seen only here used to be
        counted nowhere)."""
        if self._failed:
            return None
        try:
            pages = list(map(self._decompress, items))
        except HwzswapError as exc:
            self._count_device_error(exc)
            return None
        except BaseException as exc:  # noqa: BLE001 - a driver bug: counted; the redo reports it
            self._foreign("decompress", exc)
            return None
        if set(map(type, pages)) == {bytes} and set(map(len, pages)) == {PAGE_SIZE}:
            return pages
        # Another bytes-like result (a bytearray, a memoryview: what decompress takes too) is
        # copied into bytes here, not asked of the driver again; anything else is redone.
        out: list[bytes] = []
        for page in pages:
            page = _bytes_like(page)
            if page is None or len(page) != PAGE_SIZE:
                return None
            out.append(page)
        return out

    def software_decompress(self, data: Any, cause: HwzswapError) -> bytes:
        """Decode ``data`` with the software backend of the driver's format, after the device
        failed with ``cause``; re-raise ``cause`` when there is none."""
        software = self._software_decoder()
        if software is None:
            raise cause
        lock = self._software_lock
        if lock is None:
            page = software.decompress(data)
        else:  # one instance, several threads (see _software_lock); our own code: no deadline
            with lock:
                page = software.decompress(data)
        with self._state:
            self.sw_fallbacks += 1
        return page

    def _as_bytes(self, out: Any, call: str) -> bytes:
        data = _bytes_like(out)
        if data is None:
            raise self._violation("result_type", call,
                                  f"returned a {type(out).__name__}, not a bytes-like object")
        return data

    # -- batches -----------------------------------------------------------------------------

    def compress_batch(self, pages: np.ndarray) -> CompressedBatch:
        """Compress an ``(N, 4096)`` batch into one per-item :class:`CompressedBatch`.
        A device error of the whole call fails every item (with the reason); a result of the
        wrong shape raises DriverError. More pages than the device's ``max_batch`` go in calls
        of at most that many (a reclaim pass of large folios can be thousands of pages).
        The driver gets the pages read-only, over a read-only buffer (it cannot set the flag
        back): it cannot change the caller's pages, or the staged copies, under the page CRCs
        taken before the call."""
        if self.failed:
            self._check_alive("compress_batch")
        return in_calls_of(self._compress_call, read_only_view(pages), self.max_batch,
                           CompressedBatch.concat)

    def _compress_call(self, pages: np.ndarray) -> CompressedBatch:
        """One ``compress_batch`` call of the driver, as one per-item result. Once a call of
        the same batch has had the device marked failed, the rest of it fails item by item
        (not a raise: the calls already answered keep their results)."""
        n = len(pages)
        if self._failed:
            return CompressedBatch.all_failed(n, f"DeviceError: driver {self.name!r}: the "
                                                 f"device was marked failed during this batch")
        epoch = self._timeout_epoch
        try:
            out = self._compress_batch(pages)
        except HwzswapError as exc:
            self._count_device_error(exc)
            return CompressedBatch.all_failed(n, f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # noqa: BLE001
            raise self._foreign("compress_batch", exc) from exc
        batch = self._checked_compressed(out, n, "compress_batch")
        if batch.errors and isinstance(out, (list, tuple)) and any(
                isinstance(x, DeviceTimeoutError) for x in out):
            self.note_timeouts(1)  # the driver's own deadline passed for items of this call
        elif self._consecutive_timeouts or self._probation:
            self.answered(epoch)
        return batch

    def _checked_compressed(self, out: Any, n: int, call: str) -> CompressedBatch:
        if isinstance(out, CompressedBatch):
            batch = out
        elif isinstance(out, (list, tuple)):
            if len(out) != n:
                raise self._violation("item_count", call,
                                      f"returned {len(out)} items for {n} pages")
            if set(map(type, out)) <= _PLAIN:  # a CPU codec's list: checked here, in Python
                lens = [len(x) for x in out if x is not None]
                if lens and (min(lens) <= 0 or max(lens) >= PAGE_SIZE):
                    i, bad = next((i, len(x)) for i, x in enumerate(out)
                                  if x is not None and not 0 < len(x) < PAGE_SIZE)
                    raise self._violation(
                        "result_length", call,
                        f"item {i} is {bad} bytes; a compressed page is 1..{PAGE_SIZE - 1} "
                        f"bytes (incompressible pages are None)")
                return CompressedBatch.from_items(out)
            try:
                batch = CompressedBatch.from_items(out)
            except (TypeError, ValueError):
                bad = next((i for i, x in enumerate(out) if not _item_ok(x)), 0)
                raise self._violation(
                    "result_type", call,
                    f"item {bad} is a {type(out[bad]).__name__}, not bytes-like, None or an "
                    f"exception") from None
        else:
            raise self._violation("result_type", call,
                                  f"returned {_describe(out)}; expected a list of items or a "
                                  f"CompressedBatch")
        if len(batch) != n:
            raise self._violation("item_count", call, f"returned {len(batch)} items for {n} pages")
        ok = batch.status == _OK
        sizes = batch.sizes
        if ok.any():
            s = sizes[ok]
            if int(s.min()) <= 0 or int(s.max()) >= PAGE_SIZE:
                i = int(np.flatnonzero(ok & ((sizes <= 0) | (sizes >= PAGE_SIZE)))[0])
                raise self._violation(
                    "result_length", call,
                    f"item {i} is {int(sizes[i])} bytes; a compressed page is "
                    f"1..{PAGE_SIZE - 1} bytes (incompressible pages are marked, not returned)")
            end = batch.offsets[ok] + s
            if int(batch.offsets[ok].min()) < 0 or int(end.max()) > batch.nbytes:
                raise self._violation("result_length", call,
                                      "an item lies outside the batch's buffer")
        if int(batch.status.max(initial=0)) > _FAILED:
            raise self._violation("result_type", call, "an item has an unknown status")
        failed = int(np.count_nonzero(batch.status == _FAILED))
        if failed:
            self.item_failures += failed
            self.last_error = f"driver {self.name!r}: {call}: {failed} of {n} items failed"
        return batch

    def decompress_batch(self, items: Sequence[Any]) -> DecompressedBatch:
        """Decompress N items into one :class:`DecompressedBatch` (per-item status). A device
        or corrupt-data error of the whole call fails every item with its reason (the caller
        retries them one by one to name the bad one); a wrong shape raises DriverError. More
        items than the device's ``max_batch`` go in calls of at most that many."""
        return in_calls_of(self._decompress_call, items, self.max_batch,
                           DecompressedBatch.concat)

    def _decompress_call(self, items: Sequence[Any]) -> DecompressedBatch:
        """One ``decompress_batch`` call of the driver, as one per-item result."""
        n = len(items)
        refused = self.failed and self._refuse_decompress()
        epoch = self._timeout_epoch
        try:
            if refused:  # every item failed, not a raise: the caller's retry decodes in software
                self._check_alive("decompress_batch")
            out = self._decompress_batch(items)
        except HwzswapError as exc:
            if not refused:
                self._count_device_error(exc)
            return DecompressedBatch.all_failed(n, f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # noqa: BLE001
            err = self._foreign("decompress_batch", exc)
            err.__cause__ = exc
            return self._items_failed(err, n)
        if self._consecutive_timeouts or self._probation:
            self.answered(epoch)
        if isinstance(out, DecompressedBatch):
            arr = out.pages
        elif isinstance(out, np.ndarray):
            arr, out = out, None
        else:
            return self._items_failed(self._violation(
                "result_type", "decompress_batch",
                f"returned {_describe(out)}; expected an (N, {PAGE_SIZE}) uint8 array or a "
                f"DecompressedBatch"), n)
        if not (isinstance(arr, np.ndarray) and arr.dtype == np.uint8
                and arr.shape == (n, PAGE_SIZE)):
            shape = getattr(arr, "shape", None)
            dtype = getattr(arr, "dtype", None)
            return self._items_failed(self._violation(
                "array_shape", "decompress_batch",
                f"returned shape {shape} dtype {dtype} for {n} items; expected ({n}, "
                f"{PAGE_SIZE}) uint8"), n)
        if out is None:
            return DecompressedBatch(arr)
        if out.status.shape != (n,):
            return self._items_failed(self._violation(
                "item_count", "decompress_batch",
                f"status has shape {out.status.shape} for {n} items"), n)
        failed = len(out.failed())
        if failed:
            self.item_failures += failed
        return out

    def _items_failed(self, err: DriverError, n: int) -> DecompressedBatch:
        """A ``decompress_batch`` call that broke the contract as a whole (``err``, counted
        already): every item failed with the reason when software decodes the driver's
        format, so the caller's per-item retry (the device, then software) still gives the
        pages back; ``err`` raised when nothing else decodes them."""
        if self._software_decoder() is None:
            raise err
        return DecompressedBatch.all_failed(n, f"{type(err).__name__}: {err}")

    # -- asynchronous ops --------------------------------------------------------------------

    def run_ops(self, ops: list[CompOp], refuse_if_failed: bool = True) -> list[CompOp]:
        """Submit ``ops`` and poll until every one has completed or its deadline has passed
        (then it completes as DEVICE_ERROR, "timed out"). BUSY ops are resubmitted. Returns
        the ops in their original order, each with a final status. ``refuse_if_failed``:
        complete them as DEVICE_ERROR at once when the device is marked failed.

        One caller at a time: ``poll`` hands back whoever's ops completed, so two threads
        polling one queue would take each other's completions. A caller waits for the loop
        ahead of it while that loop is within its own deadline (see :meth:`_enter_ops`);
        behind one past it, its ops complete as DEVICE_ERROR, not made."""
        refused = self._enter_ops("submit")
        if refused is not None:
            for op in ops:
                op.status, op.dst, op.error = OpStatus.DEVICE_ERROR, None, str(refused)
            return ops
        try:
            return self._run_ops(ops, refuse_if_failed)
        finally:
            self._leave_ops()

    def _enter_ops(self, call: str) -> DeviceTimeoutError | None:
        """Take ``_ops_lock`` for this caller's submit/poll loop, whose deadline is its entry
        time plus ``timeout_s`` times the batches a pipeline call merges: waiting as long as
        the loop ahead is within its own deadline, and not at all once it is past it (a loop
        whose ``poll`` never returns, a trusted driver called directly, must not hold up a
        load under zswap's tree lock, nor leave one pipeline worker behind per pass).
        ``None`` once taken; else the refusal (counted as :meth:`_refuse_stuck` counts it),
        not raised."""
        refused = self._ops_lock.take(self.timeout_s * merged_batches())
        if refused is None:
            return None
        return self._refuse_overdue(call, refused, "the submit/poll loop holding the device")

    def _leave_ops(self) -> None:
        self._ops_lock.release()

    def _submit_once(self, ops: list[CompOp]) -> int | HwzswapError:
        """One ``submit`` call: how many ops (a prefix) the device accepted, checked (a wrong
        answer raises DriverError), or the device error the driver raised, counted and
        returned (the caller fails the ops with it). Anything else it raises is a DriverError."""
        try:
            accepted = self._submit(ops)
        except HwzswapError as exc:
            self._count_device_error(exc)
            return exc
        except BaseException as exc:  # noqa: BLE001
            raise self._foreign("submit", exc) from exc
        count = accepted if accepted.__class__ is int else as_count(accepted)
        if count is None or not 0 <= count <= len(ops):
            raise self._violation("result_type", "submit",
                                  f"returned {accepted!r} for {len(ops)} ops; expected the "
                                  f"count accepted (an int, 0..{len(ops)})")
        if count < len(ops):
            self.busy_retries += 1
        return count

    def _poll_once(self) -> Sequence[CompOp]:
        """One ``poll`` call: the ops it handed back, checked to be a list or a tuple (else a
        DriverError). The driver's own errors are raised as they are, anything else as a
        DriverError."""
        try:
            done = self._poll()
        except HwzswapError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise self._foreign("poll", exc) from exc
        if done.__class__ is not list and not isinstance(done, (list, tuple)):
            raise self._violation("result_type", "poll",
                                  f"returned {_describe(done)}; expected a list (or a tuple) "
                                  f"of the completed ops (empty when none completed)")
        return done

    # -- ops left in flight (async mode's OpsInFlight: submit now, poll later) -----------------

    @property
    def timeout_epoch(self) -> int:
        """Timeouts counted so far: an op's answer proves the device alive only when none was
        counted since it was submitted (:meth:`answered` takes this value from then)."""
        return self._timeout_epoch

    @property
    def failed_marks(self) -> int:
        """How many times the device has been marked failed. A timeout of an op submitted
        before the latest mark is not the retried device's: it does not fail a device on
        probation again (:meth:`ops_timed_out`'s ``marks``)."""
        return self._marks

    def submit_ops(self, ops: list[CompOp]) -> int:
        """One ``submit`` of ops the caller leaves in flight (it polls them later with
        :meth:`poll_ops`), under the device's submit/poll hold: how many (a prefix) were
        accepted; the rest are BUSY, to submit again. Raises DeviceTimeoutError when refused
        behind a submit/poll loop past its deadline, the DeviceError the driver raised
        (counted), DriverError for an answer against the contract."""
        refused = self._enter_ops("submit")
        if refused is not None:
            raise refused
        try:
            got = self._submit_once(ops)
        finally:
            self._leave_ops()
        if got.__class__ is not int:
            raise got  # type: ignore[misc]  # the driver's error, counted
        return got  # type: ignore[return-value]

    def poll_ops(self) -> Sequence[CompOp]:
        """One ``poll``, under the device's submit/poll hold: the ops it handed back, whoever
        submitted them, unchecked (the owner checks its own with :meth:`check_op`). Raises as
        :meth:`submit_ops` does (the driver's errors counted)."""
        refused = self._enter_ops("poll")
        if refused is not None:
            raise refused
        try:
            return self._poll_once()
        except HwzswapError as exc:  # (a DriverError is counted where it was raised)
            self._count_device_error(exc)
            raise
        finally:
            self._leave_ops()

    def _run_ops(self, ops: list[CompOp], refuse_if_failed: bool) -> list[CompOp]:
        if self.failed and refuse_if_failed:
            for op in ops:
                op.status, op.error = OpStatus.DEVICE_ERROR, "the device was marked failed"
            return ops
        epoch, marks = self._timeout_epoch, self._marks
        merged = merged_batches()  # an async call merging k batches: k deadlines
        deadline = time.monotonic() + self.timeout_s * merged
        # The device gets ops of its own; a completed one is copied into the caller's. An op
        # given up at the deadline may still be written by the device later: only its copy is.
        mine = {id(op): CompOp(op.kind, op.src, caller_waits=True) for op in ops}
        waiting = [mine[id(op)] for op in ops]
        outstanding = {id(mine[id(op)]): op for op in ops}  # device op -> the caller's
        answered = False
        while outstanding:
            if waiting:
                for dev in waiting:
                    dev.status = OpStatus.NOT_PROCESSED
                accepted = self._submit_once(waiting)
                if accepted.__class__ is not int:  # the driver's error: the ops fail with it
                    for dev in waiting:
                        op = outstanding.pop(id(dev))
                        op.status, op.dst, op.error = OpStatus.DEVICE_ERROR, None, str(accepted)
                    waiting = []
                    continue
                waiting = waiting[accepted:]
            try:
                done = self._poll_once()
            except DeviceTimeoutError as exc:  # poll given up (by the watchdog: counted there)
                self.ops_timed_out(list(outstanding.values()), waiting,  # or timed out: the rest
                                count=not exc.given_up,  # time out (or were refused behind
                                why=str(exc) if exc.given_up else None,  # a stuck call)
                                marks=marks)
                break
            except DeviceError as exc:  # poll itself failed: the ops still out fail with it
                self._count_device_error(exc)
                for op in outstanding.values():
                    op.status, op.dst, op.error = OpStatus.DEVICE_ERROR, None, str(exc)
                break
            strays = None
            for dev in done:
                op = outstanding.pop(id(dev), None)
                if op is None:  # not ours: an op in flight's (or ours, already timed out)
                    if self.stray_ops is not None:
                        if strays is None:
                            strays = []
                        strays.append(dev)
                    continue
                answered = True
                op.status, op.dst, op.error = dev.status, dev.dst, dev.error
                op.produced, op.consumed, op.device_us = dev.produced, dev.consumed, dev.device_us
                broken = self.check_op(op)
                if broken is not None:
                    self._op_broken = broken  # this loop's own op (see decompress_op)
            if strays is not None and self.stray_ops is not None:
                self.stray_ops(strays)
            if outstanding and time.monotonic() > deadline:
                self.ops_timed_out(list(outstanding.values()), waiting, merged=merged,
                                   marks=marks)
                break
            if outstanding and not done:
                time.sleep(0)  # let a device thread run
        else:
            if answered:  # the device gave ops back (not: every submit refused, or no ops)
                self.answered(epoch)
        return ops

    def ops_timed_out(self, late: list[CompOp], waiting: list[CompOp], count: bool = True,
                      merged: int = 1, why: str | None = None, streak: bool = True,
                      marks: int | None = None) -> None:
        """The ops still out failed: timed out, or (``why``) their poll was given up or not
        made; ``count``: counted here as timeouts (not when the watchdog counted already);
        ``streak``: also one more consecutive timeout toward ``fail_after`` (a caller giving
        up on several batches in one stall counts that once), unless ``marks`` (the newest
        op's :attr:`failed_marks` at its submission) says every op was submitted before the
        device was last marked failed: the device retried since did not get them."""
        within = self._deadline_text(merged)
        for op in late:
            op.status = OpStatus.DEVICE_ERROR
            op.dst = None
            op.error = why or f"timed out after {within}"
        if not count:
            return
        self.timeouts += len(late)
        self.last_error = (f"driver {self.name!r}: {len(late)} ops timed out after {within} "
                           f"({len(waiting)} never accepted)")
        if streak:
            self._timeout_counted(marks)

    def check_op(self, op: CompOp) -> str | None:
        """A completed op's result must fit the contract; a wrong one becomes DEVICE_ERROR with
        the reason (and is counted), so it is never used. Returns that reason (None: the op
        fits): the caller's to keep, since several callers check ops at once."""
        st = op.status
        if st is OpStatus.SUCCESS:
            try:
                call = "compress op" if op.kind is OpKind.COMPRESS else "decompress op"
                if op.kind is OpKind.COMPRESS:
                    op.dst = self._checked_op_bytes(op.dst, call, 1, PAGE_SIZE - 1)
                else:
                    op.dst = self._checked_op_bytes(op.dst, call, PAGE_SIZE, PAGE_SIZE)
                if op.produced != len(op.dst):  # a short read-back: the rest is missing
                    raise self._violation(
                        "result_length", call,
                        f"completed SUCCESS with produced={op.produced!r} but dst holds "
                        f"{len(op.dst)} bytes; produced is len(dst)")
            except DriverError as exc:
                op.status, op.dst, op.error = OpStatus.DEVICE_ERROR, None, str(exc)
                return str(exc)
        elif st is OpStatus.DEVICE_ERROR:
            self.device_errors += 1
            self.last_error = f"driver {self.name!r}: op failed: {op.error}"
        elif st is OpStatus.INCOMPRESSIBLE and op.kind is not OpKind.COMPRESS:
            err = self._violation("result_type", "poll",
                                  "returned a decompress op completed INCOMPRESSIBLE; a "
                                  "decompress op completes SUCCESS (with the page), "
                                  "INVALID_INPUT (corrupt data) or DEVICE_ERROR")
            op.status, op.dst, op.error = OpStatus.DEVICE_ERROR, None, str(err)
            return str(err)
        elif st not in (OpStatus.INCOMPRESSIBLE, OpStatus.INVALID_INPUT):
            err = self._violation("result_type", "poll",
                                  f"returned an op with status {st.name}; a polled op is "
                                  f"completed (SUCCESS, INCOMPRESSIBLE, INVALID_INPUT or "
                                  f"DEVICE_ERROR)")
            op.status, op.dst, op.error = OpStatus.DEVICE_ERROR, None, str(err)
            return str(err)
        return None

    def _checked_op_bytes(self, dst: Any, call: str, lo: int, hi: int) -> bytes:
        if dst is None:
            raise self._violation("result_type", call, "completed SUCCESS without output")
        out = dst if dst.__class__ is bytes else self._as_bytes(dst, call)
        if not lo <= len(out) <= hi:
            raise self._violation("result_length", call,
                                  f"produced {len(out)} bytes; expected {lo}..{hi}")
        return out

    def compress_ops(self, pages: np.ndarray) -> CompressedBatch:
        """Compress a batch through the asynchronous interface (one op per page, under the
        deadline), as one per-item :class:`CompressedBatch`. Each op's ``src`` is a read-only
        row: a device that writes to it after completing the op gets an error, not the
        caller's page."""
        ops = [CompOp.compress(row) for row in read_only_view(pages)]
        self.run_ops(ops)
        return self.compressed_ops(ops)

    def compressed_ops(self, ops: Sequence[CompOp]) -> CompressedBatch:
        """Completed compress ops (checked) as one per-item :class:`CompressedBatch`, a failed
        op a failed item with its reason (counted in ``item_failures``)."""
        items: list[Any] = []
        for op in ops:
            st = op.status
            if st is OpStatus.SUCCESS:
                items.append(op.dst)
            elif st is OpStatus.INCOMPRESSIBLE:
                items.append(None)
            else:
                items.append(DeviceError(op.error or st.value))
        batch = CompressedBatch.from_items(items)
        failed = int(np.count_nonzero(batch.status == _FAILED))
        self.item_failures += failed
        return batch

    def decompress_op(self, data: Any) -> bytes:
        """Decompress one object through the asynchronous interface, under the deadline:
        the page, or CorruptDataError (INVALID_INPUT) / DeviceError (DEVICE_ERROR, timeout) /
        DriverError (an op completed against the contract: not a page, INCOMPRESSIBLE)."""
        op = CompOp.decompress(data)
        refuse = self._refuse_decompress()
        refused = self._enter_ops("decompress op")
        if refused is not None:
            raise refused  # a DeviceError: zswap decodes in software where it can
        try:
            self._op_broken = None
            self._run_ops([op], refuse)
            broken, self._op_broken = self._op_broken, None
        finally:
            self._leave_ops()
        if op.status is OpStatus.SUCCESS:
            return op.dst  # type: ignore[return-value]  # checked by check_op
        if op.status is OpStatus.INVALID_INPUT:
            raise CorruptDataError(f"{self.name}: {op.error or 'corrupt data'}")
        if broken is not None:  # counted in check_op
            return self._software_instead(DriverError(broken), data)
        raise DeviceError(f"driver {self.name!r}: decompress op failed: {op.error}")

    def note_timeouts(self, batches: int, marks: int | None = None) -> None:
        """A caller gave up on a device call (``batches`` batches) at its deadline: count it,
        and mark the device failed after ``fail_after`` consecutive timeouts (not for a call
        made before the device was last marked failed: ``marks``, :attr:`failed_marks` when
        it was made)."""
        self.timeouts += batches
        # a call merging k batches had k deadlines (the pipeline gives up on all k at once;
        # the watchdog's call runs on the pipeline's thread, which says k)
        merged = max(merged_batches(), batches)
        self.last_error = (f"driver {self.name!r}: a device call timed out after "
                           f"{self._deadline_text(merged)}")
        self._timeout_counted(marks)

    def close(self) -> None:
        """Stop the watchdog's worker thread (the driver itself is its owner's to close)."""
        if self.watchdog is not None:
            self.watchdog.close()

    # -- accounting --------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """What the guard saw: violations by kind, device errors, timeouts, failed items."""
        out: dict[str, Any] = {f"bad_{k}": v for k, v in self.bad.items()}
        out.update(timeouts=self.timeouts,
                   device_errors=self.device_errors, item_failures=self.item_failures,
                   busy_retries=self.busy_retries, sw_fallbacks=self.sw_fallbacks,
                   refused_stuck=self.refused_stuck,
                   failed=self.failed, recoveries=self.recoveries,
                   watched=self.watchdog is not None,
                   last_error=self.last_error)
        return out


def in_calls_of(call: Callable[[Any], _R], items: Any, max_batch: int | None,
                join: Callable[[list[_R]], _R]) -> _R:
    """``call`` on ``items`` in calls of at most ``max_batch`` items each (a device's
    ``Capabilities.max_batch``; None: no limit), the results put together in order by ``join``.
    One call, and ``join`` not called, when they fit: the engine's batches and the bench's
    codec-alone batches are split the same way."""
    if max_batch is None or len(items) <= max_batch:
        return call(items)
    return join([call(items[i:i + max_batch]) for i in range(0, len(items), max_batch)])


def _item_ok(x: Any) -> bool:
    if x is None or isinstance(x, BaseException):
        return True
    try:
        memoryview(x)
    except TypeError:
        return False
    return not isinstance(x, str)


__all__ = ["DEFAULT_TIMEOUT_MS", "Compressor", "VIOLATIONS"]
