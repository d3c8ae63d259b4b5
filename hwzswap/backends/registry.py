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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from hwzswap.backends.contract import Backend, Param
from hwzswap.errors import (
    BackendError,
    BackendLoadError,
    BackendUnavailableError,
    HwzswapError,
    UnknownBackendError,
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
    class attribute ``name``. Usable as a decorator: ``@register_backend``.

    ``name`` is deprecated and registers nothing: a backend is found by the name it reports (a
    config, a stats record and the bench all name it so; entry points are held to the same
    rule), so there is no other name to give. It is only checked, for drivers written when it
    was the key: the class's own name is accepted with a :class:`DeprecationWarning`, any other
    is refused (``ValueError``, naming both)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name; set the class attribute 'name'")
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


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _sources() -> dict[str, tuple[str, Any]]:
    """Every known name with where it comes from. Built-ins win over entry points."""
    out: dict[str, tuple[str, Any]] = {}
    for name, ep in _entry_points().items():
        out[name] = (f"entry-point {ep.value}", ep)
    for name, path in _BUILTINS.items():
        out[name] = ("builtin", path)
    for name, cls in _registered.items():
        out[name] = ("registered", cls)
    return out


def _load(name: str, how: Any) -> type[Backend]:
    if isinstance(how, type):
        return how
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
    return obj


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
    except Exception as exc:  # the package itself is broken: a bug, not this machine
        raise BackendLoadError(
            f"backend {name!r} ({source}) could not be loaded: {type(exc).__name__}: {exc} "
            f"(a bug in the driver's package, not a missing dependency)"
        ) from exc


def get_backend(name: str, **params: Any) -> Backend:
    """Build the backend ``name`` with ``params`` (a plain dict, e.g. from YAML)."""
    cls = get_backend_class(name)
    ok, reason = cls.availability()
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {reason}")
    try:
        return cls(**params)
    except HwzswapError:
        raise
    except Exception as exc:  # a driver's own bug or a device that would not open
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


def available_backends() -> list[BackendInfo]:
    """Every registered backend with whether it can run here and, if not, why."""
    rows = []
    for name, (source, how) in sorted(_sources().items()):
        try:
            cls = _load(name, how)
        except Exception as exc:
            rows.append(
                BackendInfo(name, False, f"{type(exc).__name__}: {exc}", source, None, None)
            )
            continue
        try:
            ok, reason = cls.availability()
        except Exception as exc:  # availability() must not take the listing down
            ok, reason = False, f"availability check failed: {type(exc).__name__}: {exc}"
        caps = in_use = None
        if ok:
            try:
                inst = cls()
                caps, in_use = inst.capabilities.to_dict(), inst.describe()
                inst.close()
            except Exception as exc:
                ok, reason = False, f"{type(exc).__name__}: {exc}"
        params = {k: p.default for k, p in cls.PARAMS.items()}
        specs = [param_spec(k, p) for k, p in cls.PARAMS.items()]
        rows.append(BackendInfo(name, ok, reason, source, caps, params, specs, in_use))
    return rows
