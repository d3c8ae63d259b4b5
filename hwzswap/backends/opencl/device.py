"""Choosing the OpenCL device ``lz4-opencl`` runs on.

A device is chosen by a :class:`DeviceQuery`, filled from the backend's parameters:

* ``platform`` -- a case-insensitive substring of the platform name (``""``: any platform);
* ``device`` -- a case-insensitive substring of the device name, or ``"auto"``;
* ``device_type`` -- ``"gpu"``, ``"cpu"``, ``"accelerator"`` or ``"any"``.

``auto`` prefers a GPU, then an accelerator, then a CPU device (PoCL's, typically). When every
parameter is at its default and the ``PYOPENCL_CTX`` environment variable is set, it chooses the
device as pyopencl's ``create_some_context`` does: ``"<platform>:<device>"``, each part an index
or a name substring (``PYOPENCL_CTX=0:1``, ``PYOPENCL_CTX=pocl``). Explicit parameters win.

When nothing matches, :func:`select_device` raises :class:`BackendUnavailableError`. The backend
keeps that for the default query (the backend cannot run here: ``hwzswap bench`` over every
backend lists it as skipped, exit 0; so does a ``PYOPENCL_CTX`` that names no device, and a
machine with no OpenCL platform at all, which the registry checks before any parameter is
seen). A query with ``device``, ``device_type`` or ``platform`` set explicitly is a request
for that device: the backend raises :class:`~hwzswap.errors.InvalidParameterError` naming the
parameter, so ``hwzswap bench`` fails that row (exit 1) and a config error names the file and
the key (``zswap.compressor.params.device_type``). A GPU check that asks for ``device_type:
gpu`` cannot pass on a machine without one.

Nothing here imports pyopencl at module import time, so a machine without it still lists the
backend (as unavailable, with the reason).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hwzswap.errors import BackendUnavailableError

DEVICE_TYPES = ("any", "gpu", "cpu", "accelerator")
ENV_VAR = "PYOPENCL_CTX"
_INSTALL_HINT = "pip install 'hwzswap[opencl]' (pyopencl plus PoCL's CPU device)"


@dataclass(frozen=True)
class DeviceQuery:
    """Which OpenCL device to use; see the module docstring for the rules."""

    device: str = "auto"
    device_type: str = "any"
    platform: str = ""

    @property
    def is_default(self) -> bool:
        return self.device == "auto" and self.device_type == "any" and not self.platform

    def describe(self) -> str:
        parts = [f"device={self.device!r}", f"device_type={self.device_type!r}"]
        if self.platform:
            parts.append(f"platform={self.platform!r}")
        return ", ".join(parts)


def import_pyopencl() -> Any:
    """Return the pyopencl module or raise :class:`BackendUnavailableError` saying how to get it."""
    try:
        import pyopencl
    except ImportError as exc:
        raise BackendUnavailableError(f"pyopencl is not installed ({exc}); {_INSTALL_HINT}") from None
    return pyopencl


def list_devices() -> list[tuple[Any, Any]]:
    """Every ``(platform, device)`` pair the OpenCL ICD loader reports, in platform order.

    Raises :class:`BackendUnavailableError` when pyopencl is missing or no platform is installed.
    """
    cl = import_pyopencl()
    try:
        platforms = cl.get_platforms()
    except Exception as exc:  # cl.LogicError PLATFORM_NOT_FOUND_KHR when no ICD is installed
        raise BackendUnavailableError(
            f"no OpenCL platform found ({type(exc).__name__}: {exc}); {_INSTALL_HINT}"
        ) from None
    pairs = []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except Exception:  # DEVICE_NOT_FOUND: a platform with no usable device
            continue
        pairs.extend((platform, device) for device in devices)
    if not pairs:
        names = ", ".join(repr(p.name.strip()) for p in platforms) or "none"
        raise BackendUnavailableError(
            f"OpenCL platforms ({names}) report no devices; {_INSTALL_HINT}"
        )
    return pairs


def device_type_name(device: Any) -> str:
    """``"gpu"``, ``"cpu"``, ``"accelerator"`` or ``"other"``."""
    cl = import_pyopencl()
    t = device.type
    if t & cl.device_type.GPU:
        return "gpu"
    if t & cl.device_type.ACCELERATOR:
        return "accelerator"
    if t & cl.device_type.CPU:
        return "cpu"
    return "other"


def _inventory(pairs: list[tuple[Any, Any]]) -> str:
    return "; ".join(
        f"[{i}] {d.name.strip()!r} ({device_type_name(d)}) on {p.name.strip()!r}"
        for i, (p, d) in enumerate(pairs)
    )


def _pick(items: list[Any], answer: str, what: str, names: list[str]) -> Any:
    """pyopencl's PYOPENCL_CTX rule for one part: an index, or a name substring."""
    answer = answer.strip()
    if answer.isdigit():
        index = int(answer)
        if index >= len(items):
            raise BackendUnavailableError(
                f"{ENV_VAR}: {what} index {index} is out of range (there are {len(items)}: "
                f"{', '.join(map(repr, names))}); unset {ENV_VAR} or fix it"
            )
        return items[index]
    for item, name in zip(items, names, strict=True):
        if answer.lower() in name.lower():
            return item
    raise BackendUnavailableError(
        f"{ENV_VAR}: no {what} name contains {answer!r} (there are: "
        f"{', '.join(map(repr, names))}); unset {ENV_VAR} or fix it"
    )


def _from_env(value: str, pairs: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    platform_part, _, device_part = value.partition(":")
    platforms = []
    for p, _d in pairs:
        if p not in platforms:
            platforms.append(p)
    platform = (
        _pick(platforms, platform_part, "platform", [p.name.strip() for p in platforms])
        if platform_part.strip()
        else platforms[0]
    )
    devices = [d for p, d in pairs if p == platform]
    if not devices:
        raise BackendUnavailableError(f"{ENV_VAR}={value!r}: platform {platform.name!r} has no devices")
    device = (
        _pick(devices, device_part, "device", [d.name.strip() for d in devices])
        if device_part.strip()
        else devices[0]
    )
    return platform, device


_RANK = {"gpu": 0, "accelerator": 1, "cpu": 2, "other": 3}


def select_device(query: DeviceQuery, environ: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The ``(platform, device)`` the query names, or :class:`BackendUnavailableError`.

    The error lists every device found so the user can pick a substring that matches.
    """
    env = os.environ if environ is None else environ
    pairs = list_devices()
    if query.is_default and env.get(ENV_VAR, "").strip():
        return _from_env(env[ENV_VAR], pairs)
    chosen = []
    for platform, device in pairs:
        kind = device_type_name(device)
        if query.platform and query.platform.lower() not in platform.name.lower():
            continue
        if query.device_type != "any" and kind != query.device_type:
            continue
        if query.device != "auto" and query.device.lower() not in device.name.lower():
            continue
        chosen.append((_RANK[kind], platform, device))
    if not chosen:
        raise BackendUnavailableError(
            f"no OpenCL device matches {query.describe()}; devices here: {_inventory(pairs)}"
        )
    chosen.sort(key=lambda row: row[0])  # stable: platform order breaks ties
    return chosen[0][1], chosen[0][2]


def device_label(device: Any) -> str:
    """The name reported in capabilities and bench output: ``opencl:<device name>``."""
    return f"opencl:{device.name.strip()}"


def device_info(platform: Any, device: Any) -> dict[str, Any]:
    """Facts about the device for benchmark records."""
    return {
        "name": device.name.strip(),
        "type": device_type_name(device),
        "platform": platform.name.strip(),
        "platform_version": platform.version.strip(),
        "device_version": device.version.strip(),
        "driver_version": device.driver_version.strip(),
        "compute_units": int(device.max_compute_units),
        "max_work_group_size": int(device.max_work_group_size),
        "local_mem_bytes": int(device.local_mem_size),
        "global_mem_bytes": int(device.global_mem_size),
    }


__all__ = [
    "DEVICE_TYPES",
    "ENV_VAR",
    "DeviceQuery",
    "device_info",
    "device_label",
    "device_type_name",
    "import_pyopencl",
    "list_devices",
    "select_device",
]
