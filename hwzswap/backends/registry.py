"""Backend registry: a name -> class map filled by built-ins and by entry points.

Works like numcodecs' registry. Built-in backends are listed here by import path and loaded on
first use, so a missing optional library (pyopencl, numba...) only makes *that* backend
unavailable. Third-party drivers declare themselves in the ``hwzswap.backends`` entry-point group::

    [project.entry-points."hwzswap.backends"]
    "mycodec-myaccel" = "mypkg.driver:MyBackend"

and then ``hwzswap.get_backend("mycodec-myaccel")`` and config files can select them by name.
"""

from __future__ import annotations

import importlib
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import numpy as np

from hwzswap.backends.contract import Backend, Capabilities, Param, capabilities_problem
from hwzswap.errors import (
    BackendError,
    BackendLoadError,
    BackendUnavailableError,
    DriverError,
    HwzswapError,
    UnknownBackendError,
    excerpt,
)

ENTRY_POINT_GROUP = "hwzswap.backends"

# Kernel-style names: the algorithm, then "-device" for offload.
_BUILTINS: dict[str, str] = {
    "lzo": "hwzswap.backends.lzo:LzoBackend",
    "lz4": "hwzswap.backends.lz4:Lz4Backend",
    "lz4hc": "hwzswap.backends.lz4:Lz4hcBackend",
    "zstd": "hwzswap.backends.zstd:ZstdBackend",
    "deflate": "hwzswap.backends.deflate:DeflateBackend",
    "842": "hwzswap.backends.sw842.backend:Sw842Backend",
    "lz4-opencl": "hwzswap.backends.opencl.backend:Lz4OpenCLBackend",
}

_registered: dict[str, type[Backend]] = {}
_load_errors: dict[str, str] = {}
#: Entry points already warned about (shadowed by a built-in, or a name declared twice).
_warned: set[tuple[str, ...]] = set()

#: What a backend name may be: it is written in configs, file names, tables and JSON keys.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@dataclass(frozen=True)
class BackendInfo:
    """One row of :func:`available_backends`."""

    name: str
    available: bool
    reason: str | None
    source: str  # "builtin", "entry-point <module:attr>" or "registered"
    capabilities: dict[str, Any] | None
    params: dict[str, Any] | None  # parameter -> default
    parameters: list[dict[str, Any]] | None = None  # one param_spec() per declared parameter
    in_use: str | None = None  # describe() of a default instance: what it would run here

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "reason": self.reason,
            "source": self.source,
            "capabilities": self.capabilities,
            "time_basis": (self.capabilities or {}).get("time_basis"),
            "params": self.params,
            "parameters": self.parameters,
            "in_use": self.in_use,
        }


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a parameter's default or choice."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def param_spec(name: str, param: Param) -> dict[str, Any]:
    """One declared parameter as plain data: name, type, default, range (min/max) or choices,
    whether null is allowed, and its doc line -- what `hwzswap backends --json` lists."""
    return {
        "name": name,
        "type": getattr(param.type, "__name__", str(param.type)),
        "default": _plain(param.default),
        "min": param.min,
        "max": param.max,
        "choices": None if param.choices is None else _plain(param.choices),
        "nullable": param.nullable,
        "doc": param.doc,
    }


def register_backend(cls: type[Backend], name: str | None = None) -> type[Backend]:
    """Register a backend class at run time (tests, notebooks) under the name it reports, its
    class attribute ``name``. Usable as a decorator: ``@register_backend``. A built-in's name
    is refused (``ValueError``), as an entry point named like a built-in is ignored: the name
    always means the built-in.

    ``name`` is deprecated and registers nothing: a backend is found by the name it reports (a
    config, a stats record and the bench all name it so; entry points are held to the same
    rule), so there is no other name to give. It is only checked, for drivers written when it
    was the key: the class's own name is accepted with a :class:`DeprecationWarning`, any other
    is refused (``ValueError``, naming both)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name; set the class attribute 'name'")
    if not (type(cls.name) is str and _NAME_RE.fullmatch(cls.name)):
        raise ValueError(f"cannot register {cls.__name__}: {cls.name!r} is not a backend name "
                         f"(1..64 letters, digits and ._+-, starting with a letter or digit)")
    if cls.name in _BUILTINS and _BUILTINS[cls.name] != f"{cls.__module__}:{cls.__qualname__}":
        raise ValueError(f"cannot register {cls.__name__} as {cls.name!r}: that is a built-in "
                         f"backend's name, and a config naming it always means the built-in; "
                         f"give the class another 'name'")
    if name is not None:
        if name != cls.name:
            raise ValueError(f"cannot register {cls.__name__} as {name!r}: its name is "
                             f"{cls.name!r} (a backend is found by the name it reports, so the "
                             f"two must be equal); call register_backend({cls.__name__}) alone")
        warnings.warn(f"register_backend({cls.__name__}, {name!r}): the name argument is "
                      f"deprecated (a backend is registered under its class attribute 'name'); "
                      f"call register_backend({cls.__name__}) alone", DeprecationWarning,
                      stacklevel=2)
    _registered[cls.name] = cls
    return cls


def unregister_backend(name: str) -> None:
    """Remove a backend registered with :func:`register_backend` (entry points and built-ins
    cannot be removed). Raises :class:`UnknownBackendError` when none is registered as ``name``."""
    try:
        del _registered[name]
    except KeyError:
        raise UnknownBackendError(f"no backend was registered at run time as {name!r}") from None


@contextmanager
def registered(*classes: type[Backend]) -> Iterator[None]:
    """Register backend classes for the duration of a ``with`` block (tests), then restore what
    was registered under those names before."""
    saved = {c.name: _registered.get(c.name) for c in classes}
    for cls in classes:
        register_backend(cls)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                _registered.pop(name, None)
            else:
                _registered[name] = old


@dataclass(frozen=True)
class _Conflict:
    """A name declared by more than one entry point: loading it is refused (which one a config
    meant cannot be known)."""

    values: tuple[str, ...]


def _warn_once(key: tuple[str, ...], message: str) -> None:
    """A :class:`RuntimeWarning` once a process, attributed to no source line (the cause is an
    installed package, not the code that happened to list the backends)."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn_explicit(message, RuntimeWarning, filename="hwzswap", lineno=0,
                               module=__name__)


def _entry_points() -> dict[str, EntryPoint | _Conflict]:
    out: dict[str, EntryPoint | _Conflict] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        old = out.get(ep.name)
        if old is None or (isinstance(old, EntryPoint) and old.value == ep.value):
            out[ep.name] = ep  # the same declaration seen twice (a path listed twice) is one
        else:
            values = old.values if isinstance(old, _Conflict) else (old.value,)
            out[ep.name] = _Conflict((*values, ep.value))
    return out


def _sources() -> dict[str, tuple[str, Any]]:
    """Every known name with where it comes from. Built-ins win over entry points: an entry
    point named like a built-in is ignored, with a :class:`RuntimeWarning` saying so (a config
    naming ``lz4`` always means the built-in lz4)."""
    out: dict[str, tuple[str, Any]] = {}
    for name, ep in _entry_points().items():
        if isinstance(ep, _Conflict):
            out[name] = (f"entry-points {', '.join(ep.values)}", ep)
        else:
            out[name] = (f"entry-point {ep.value}", ep)
    for name, path in _BUILTINS.items():
        if name in out:
            shadowed = out[name][0]
            _warn_once(("shadowed", name, shadowed),
                       f"hwzswap: {shadowed} is ignored: {name!r} is a built-in backend's name, "
                       f"and that name always means the built-in; rename the entry point (and "
                       f"its class's 'name') to select that driver")
        out[name] = ("builtin", path)
    for name, cls in _registered.items():
        out[name] = ("registered", cls)
    return out


def _load(name: str, how: Any) -> type[Backend]:
    if isinstance(how, _Conflict):
        raise TypeError(f"{len(how.values)} installed packages declare a backend named "
                        f"{name!r} ({', '.join(how.values)}); uninstall or rename all but one")
    if isinstance(how, type):  # registered at run time
        _check_params(how)
        return how
    if not (type(name) is str and _NAME_RE.fullmatch(name)):
        raise TypeError(f"{name!r} is not a backend name (1..64 letters, digits and ._+-, "
                        f"starting with a letter or digit); rename the entry point")
    if isinstance(how, EntryPoint):
        obj = how.load()
    else:
        module, _, attr = how.partition(":")
        obj = getattr(importlib.import_module(module), attr)
    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        raise TypeError(f"{obj!r} is not a subclass of hwzswap.backends.Backend")
    if obj.name != name:
        # a config, a stats record and the bench name a backend by what it reports: a class
        # found under another name would work here and fail later, far from the cause
        raise TypeError(f"{obj.__name__} is registered as {name!r} but its class attribute "
                        f"'name' is {obj.name!r}; make the entry point's name and the class's "
                        f"'name' the same")
    _check_params(obj)
    return obj


def _check_params(cls: type[Backend]) -> None:
    """``cls.PARAMS`` is a mapping of parameter names to :class:`Param` (``None`` or a list
    broke ``hwzswap backends`` for every backend, far from the driver at fault)."""
    params = cls.PARAMS
    if not isinstance(params, Mapping):
        raise TypeError(f"{cls.__name__}.PARAMS must be a mapping of parameter names to "
                        f"hwzswap.backends.Param, got {type(params).__name__}")
    for key, spec in params.items():
        if type(key) is not str or not isinstance(spec, Param):
            raise TypeError(f"{cls.__name__}.PARAMS[{key!r}] must be a hwzswap.backends.Param "
                            f"under a string name, got {type(spec).__name__}")


#: Seconds a driver from outside the package gets for ``availability()`` (and, in
#: :func:`available_backends`, for building an instance to describe): a probe of a device node
#: that never answers must not hang ``hwzswap backends`` or ``hwzswap bench``.
AVAILABILITY_TIMEOUT_S = 10.0
#: Seconds a driver from outside the package gets to build an instance in :func:`get_backend`
#: (longer: opening a device, loading firmware or compiling kernels may take a while), so a
#: constructor that never returns cannot hang ``open_zswap``, ``hwzswap bench`` or ``stats``.
CONSTRUCT_TIMEOUT_S = 60.0


def _foreign(cls: type[Backend]) -> bool:
    """A driver from outside the hwzswap package (the watchdog's rule: built-ins are trusted
    not to hang, and are called directly)."""
    return not cls.__module__.startswith("hwzswap.")


def _on_thread(name: str, fn: Any, wait: float) -> tuple[threading.Thread | None, Any]:
    """``fn()`` on a daemon thread, waited for at most ``wait`` seconds: ``(None, its
    value)`` when it returned (its exception is raised here as it is), else ``(the thread,
    None)``: the call given up, its thread still running and left behind. The one deadline
    mechanism of the calls the registry makes into a driver from outside the package."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["exc"] = exc

    worker = threading.Thread(target=run, daemon=True, name=f"hwzswap-probe-{name}")
    worker.start()
    worker.join(wait)
    if worker.is_alive():
        return worker, None
    if "exc" in box:
        raise box["exc"]
    return None, box.get("value")


def _bounded(name: str, cls: type[Backend], what: str, fn: Any,
             timeout_s: float | None = None) -> Any:
    """``fn()``; for a driver from outside the package, on a daemon thread waited for at most
    ``timeout_s`` (default :data:`AVAILABILITY_TIMEOUT_S`; a call still running then is left
    behind, and :class:`BackendUnavailableError` names the driver and the call). Its exception
    is raised here as it is."""
    if not _foreign(cls):
        return fn()
    wait = AVAILABILITY_TIMEOUT_S if timeout_s is None else timeout_s
    late, value = _on_thread(name, fn, wait)
    if late is not None:
        raise BackendUnavailableError(
            f"backend {name!r}: {what} did not return within {wait:g} s "
            f"(a device probe that never answers?); given up, the backend is taken as "
            f"unavailable here (a bug or a hung device in the driver "
            f"{cls.__module__}.{cls.__qualname__})")
    return value


#: Seconds a driver from outside the package gets, outside the engine's device calls, to
#: answer a read of its ``capabilities`` (when no device deadline is given) and a ``close()``:
#: a getter or a close that never returns must not hang ``open_zswap``, the engine or
#: ``hwzswap bench``.
DRIVER_CALL_TIMEOUT_S = 10.0

#: Driver instances (by id) with a call given up at its deadline and still running: what it
#: was and its thread. While one is, no other such call is made to that instance (a driver
#: that serves one call at a time would keep a second thread waiting behind the first).
_late: dict[int, tuple[str, threading.Thread]] = {}
_late_lock = threading.Lock()


def _driver_call(backend: Backend, what: str, fn: Any, timeout_s: float | None,
                 advice: str) -> Any:
    """``fn()``, a call into the driver instance ``backend`` outside the engine's device calls
    (reading its ``capabilities``, ``close()``): directly for a built-in, else on a thread
    waited for at most ``timeout_s`` (default :data:`DRIVER_CALL_TIMEOUT_S`). A call still
    running then (``advice``: what to do), or not made because an earlier one given up is
    still running, is a :class:`DriverError` naming the driver, the call and what to do;
    ``fn``'s own exception is raised as it is."""
    cls = type(backend)
    if not _foreign(cls):
        return fn()
    name = getattr(cls, "name", "") or cls.__name__
    where = f"{cls.__module__}.{cls.__qualname__}"
    key = id(backend)  # held while its call runs: the late thread references the instance
    with _late_lock:
        held = _late.get(key)
        if held is not None and not held[1].is_alive():
            del _late[key]
            held = None
    if held is not None:
        raise DriverError(
            f"driver {name!r}: {what} not made: {held[0]}, given up at its deadline, is still "
            f"running in the driver ({where}), which gets no second call beside it; the "
            f"driver is hung: restart the process to release what it holds, and report it to "
            f"the driver's authors")
    wait = DRIVER_CALL_TIMEOUT_S if timeout_s is None else timeout_s
    late, value = _on_thread(name, fn, wait)
    if late is not None:
        with _late_lock:
            for k in [k for k, (_, t) in _late.items() if not t.is_alive()]:
                del _late[k]  # calls that have returned since: their instances may be gone
            _late[key] = (what, late)
        raise DriverError(
            f"driver {name!r}: {what} did not return within {wait:g} s; given up, its "
            f"thread left behind (a bug or a hung device in the driver {where}); {advice}")
    return value


def read_capabilities(backend: Backend, timeout_s: float | None = None) -> Capabilities:
    """The driver's ``capabilities``, checked: a :class:`Capabilities` whose every field the
    engine uses is valid (``batch``, ``asynchronous``, ``concurrent``: bools;
    ``preferred_batch``: an int >= 1; ``max_batch``: an int >= 1 or None; ``format``: a name or
    None; ``timeout_ms`` is checked where it is used). A getter from outside the package is
    read under a deadline (``timeout_s``, default :data:`DRIVER_CALL_TIMEOUT_S`): one that
    never returns is a :class:`DriverError` at the deadline, not a hang. One that raises (not a
    :class:`HwzswapError` nor ``KeyboardInterrupt``), or answers anything else, is a
    DriverError naming the driver and the field: a broken driver must not crash the swap
    system's construction, or the bench, with a bare Python error.

    Not cached here: the engine reads it once per :class:`~hwzswap.frontswap.compressor.
    Compressor` and keeps it (``Compressor.capabilities``), so its hot path never reads it."""
    name = getattr(type(backend), "name", "") or type(backend).__name__
    try:
        caps = _driver_call(backend, "reading its capabilities",
                            lambda: backend.capabilities, timeout_s,
                            "a driver that does not say what it can do cannot be used: fix or "
                            "update it, or choose another compressor")
    except (HwzswapError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - a driver bug (SystemExit too), reported
        raise DriverError(f"driver {name!r}: reading its capabilities raised "
                          f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(caps, Capabilities):
        raise DriverError(f"driver {name!r}: capabilities is a {type(caps).__name__}, not a "
                          f"hwzswap.backends.contract.Capabilities")
    problem = capabilities_problem(caps, timeout=False)  # timeout_ms: checked where used
    if problem is not None:
        raise DriverError(f"driver {name!r}: {problem}")
    return caps


def close_backend(backend: Backend, timeout_s: float | None = None) -> None:
    """``backend.close()``; for a driver from outside the package under a deadline
    (``timeout_s``, default :data:`DRIVER_CALL_TIMEOUT_S`): a close that never returns (or is
    not made, an earlier call given up being still in the driver) is a :class:`DriverError`
    naming the driver and saying what to do, not a hang of whoever closes it -- a swap
    system, ``open_zswap`` undoing an open that refused the driver, the bench. What ``close``
    raises is raised as it is (the caller names it)."""
    _driver_call(backend, "close()", backend.close, timeout_s,
                 "it may still hold its device or memory: restart the process to release "
                 "them, and report the hang to the driver's authors")


def _availability(name: str, cls: type[Backend]) -> tuple[bool, str | None]:
    """``cls.availability()``, checked: a driver whose check raises or answers something other
    than ``(bool, reason)`` is a :class:`BackendLoadError` naming it, not a traceback; one
    from outside the package that does not answer within :data:`AVAILABILITY_TIMEOUT_S` is a
    :class:`BackendUnavailableError` naming it, not a hang."""
    try:
        answer = _bounded(name, cls, "availability()", cls.availability)
    except BackendUnavailableError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit included: a driver must not end the process
        raise BackendLoadError(f"backend {name!r}: availability() raised {type(exc).__name__}: "
                               f"{exc} (a bug in the driver)") from exc
    # Read as loosely as it always was: a truth value (numpy's bool too) and a reason of any
    # kind (an exception, say), shown as text; only an answer that is not a pair is refused.
    if not (isinstance(answer, (tuple, list)) and len(answer) == 2
            and isinstance(answer[0], (bool, np.bool_))):
        raise BackendLoadError(f"backend {name!r}: availability() must return (bool, reason "
                               f"or None), got {excerpt(answer)} (a bug in the driver)")
    ok = bool(answer[0])
    reason = None if answer[1] is None else str(answer[1])
    if not ok and not reason:
        reason = "its availability() says it cannot run here and gives no reason"
    return ok, reason


def get_backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``. Raises :class:`UnknownBackendError` for a name no
    one registered, :class:`BackendUnavailableError` when its module or a library it needs is
    missing here, :class:`BackendLoadError` when the registration itself is broken."""
    sources = _sources()
    if name not in sources:
        known = ", ".join(sorted(sources))
        raise UnknownBackendError(f"no backend named {name!r}; registered backends: {known}")
    source, how = sources[name]
    try:
        return _load(name, how)
    except (ImportError, OSError) as exc:  # an optional dependency or library missing here
        raise BackendUnavailableError(
            f"backend {name!r} ({source}) could not be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the package is broken (sys.exit at import too): a bug
        raise BackendLoadError(
            f"backend {name!r} ({source}) could not be loaded: {type(exc).__name__}: {exc} "
            f"(a bug in the driver's package, not a missing dependency)"
        ) from exc


def get_backend(name: str, **params: Any) -> Backend:
    """Build the backend ``name`` with ``params`` (a plain dict, e.g. from YAML)."""
    cls = get_backend_class(name)
    ok, reason = _availability(name, cls)
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {reason}")
    try:
        return _bounded(name, cls, f"{cls.__name__}() (building the backend)",
                        lambda: cls(**params), CONSTRUCT_TIMEOUT_S)
    except (HwzswapError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # a driver's own bug (even sys.exit) or a device that failed
        raise BackendError(
            f"backend {name!r} failed to start: {cls.__name__}"
            f"() raised {type(exc).__name__}: {exc}"
        ) from exc


def backend_from_config(config: dict[str, Any]) -> Backend:
    """Inverse of :meth:`Backend.get_config`: ``{"name": ..., **params}`` -> backend."""
    config = dict(config)
    try:
        name = config.pop("name")
    except KeyError:
        raise UnknownBackendError("backend config has no 'name' key") from None
    return get_backend(name, **config)


def backend_names() -> list[str]:
    return sorted(_sources())


def _describe(cls: type[Backend]) -> tuple[dict[str, Any], Any]:
    """A default instance's capabilities and description (the instance closed)."""
    inst = cls()
    try:
        return inst.capabilities.to_dict(), inst.describe()
    finally:
        inst.close()


def available_backends() -> list[BackendInfo]:
    """Every registered backend with whether it can run here and, if not, why."""
    rows = []
    for name, (source, how) in sorted(_sources().items()):
        try:
            cls = _load(name, how)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # one broken driver (sys.exit at import too) is one row
            rows.append(
                BackendInfo(name, False, f"{type(exc).__name__}: {exc}", source, None, None)
            )
            continue
        try:
            ok, reason = _availability(name, cls)
        except (BackendLoadError, BackendUnavailableError) as exc:  # not the whole listing
            ok, reason = False, f"availability check failed: {exc}"
        caps = in_use = None
        if ok:
            try:
                caps, in_use = _bounded(name, cls, "building it to describe it",
                                        lambda cls=cls: _describe(cls))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                ok, reason = False, f"{type(exc).__name__}: {exc}"
        params = {k: p.default for k, p in cls.PARAMS.items()}
        specs = [param_spec(k, p) for k, p in cls.PARAMS.items()]
        rows.append(BackendInfo(name, ok, reason, source, caps, params, specs, in_use))
    return rows
