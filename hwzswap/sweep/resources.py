"""What a run asks a Ray cluster for, so it lands on a host that has its device.

A run takes one CPU, plus what its backend needs:

* a driver declares its needs with a class attribute ``resources`` on its backend class: a
  mapping ``{resource: amount}`` (e.g. ``resources = {"nx842": 1}`` for a driver of real NX-842
  hardware), or a classmethod ``resources(params)`` returning one when the need depends on the
  parameters. ``GPU`` and ``CPU`` are Ray's own resources; any other name is a custom resource,
  which the hosts that have the device declare when they join the cluster
  (``ray start --resources '{"nx842": 1}'``);
* the built-in ``lz4-opencl`` asks for one GPU when its ``device_type`` parameter is ``gpu``
  (with ``any`` it takes whatever OpenCL device the host has, so it needs none);
* the sweep file's ``resources:`` section, ``{backend: {resource: amount}}``, replaces what the
  backend declares, for drivers that declare nothing or for a site's own resource names.

The local executor runs everything on this machine and ignores resources; there a run whose
device is missing fails in its own process (lz4-opencl: a parameter error naming the device
parameter that matches no device here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwzswap.errors import ConfigError, excerpt


def _builtin(backend: str, params: Mapping[str, Any]) -> dict[str, float]:
    """Needs of the built-in backends, which declare none themselves."""
    if backend == "lz4-opencl" and params.get("device_type") == "gpu":
        return {"GPU": 1.0}
    return {}


#: The largest amount of one resource a run may ask for (Ray's ``memory`` counts bytes, so a
#: petabyte); a larger one is a typo, and an integer of hundreds of digits is no float.
MAX_AMOUNT = 1e15


def amount_problem(amount: Any) -> str | None:
    """Why ``amount`` is not an amount of a resource (``None`` when it is one): a finite number
    from 0 to :data:`MAX_AMOUNT` (``true`` is not a number here, ``.inf`` and ``.nan`` are
    refused, as is an integer too large to be a float)."""
    if type(amount) not in (int, float) or not 0 <= amount <= MAX_AMOUNT:
        return f"must be a number from 0 to {MAX_AMOUNT:g}, got {excerpt(amount)}"
    return None


def _checked(backend: str, declared: Any) -> dict[str, float]:
    if not isinstance(declared, Mapping):
        raise ConfigError(f"backend {backend!r}: its resources must be a mapping "
                          f"{{resource: amount}}, got {excerpt(declared)}")
    out: dict[str, float] = {}
    for name, amount in declared.items():
        why = amount_problem(amount)
        if type(name) is not str or not name or why:
            raise ConfigError(f"backend {backend!r}: resource {excerpt(name)}: the amount "
                              f"{why or 'must be a number'}")
        out[name] = float(amount)
    return out


#: ``cls`` when the caller has not looked the backend's class up (it is looked up here).
_LOOK_UP: Any = object()


def backend_class(backend: str) -> type | None:
    """The backend's class, or ``None`` when it cannot load here (the run then says why)."""
    from hwzswap.backends.registry import get_backend_class

    try:
        return get_backend_class(backend)
    except Exception:  # noqa: BLE001 -- unknown here: the run reports it where it runs
        return None


def declared_resources(backend: str, params: Mapping[str, Any],
                       cls: type | None = _LOOK_UP) -> dict[str, float]:
    """What the backend's class declares for these params (empty when it cannot load here).
    ``cls`` is the class when the caller has it (:func:`backend_class`): a plan of thousands
    of runs looks each backend up once, not once a run (a lookup reads every installed
    package's entry points)."""
    if cls is _LOOK_UP:
        cls = backend_class(backend)
    if cls is None:
        return {}
    declared = getattr(cls, "resources", None)
    if declared is None:
        return _builtin(backend, params)
    if callable(declared):
        declared = declared(dict(params))
    return _checked(backend, declared)


def run_resources(backend: str, params: Mapping[str, Any],
                  overrides: Mapping[str, Mapping[str, float]] | None = None,
                  cls: type | None = _LOOK_UP) -> dict[str, float]:
    """Everything a run asks for: ``CPU`` (1 unless said otherwise) plus its device's needs
    (``cls``: the backend's class, when the caller has looked it up)."""
    if overrides and backend in overrides:
        need = dict(overrides[backend])
    else:
        need = declared_resources(backend, params, cls)
    return {"CPU": 1.0, **need}


def ray_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray's ``.options()`` keywords for a resource mapping (CPU/GPU are keywords of their own)."""
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    opts: dict[str, Any] = {"num_cpus": resources.get("CPU", 1.0),
                            "num_gpus": resources.get("GPU", 0.0)}
    if custom:
        opts["resources"] = custom
    return opts


def fits(resources: Mapping[str, float], node: Mapping[str, float]) -> bool:
    """True when one node offers every resource in the amount asked for."""
    return all(node.get(name, 0.0) >= amount for name, amount in resources.items() if amount > 0)


__all__ = ["MAX_AMOUNT", "amount_problem", "backend_class", "declared_resources", "fits", "ray_options", "run_resources"]
