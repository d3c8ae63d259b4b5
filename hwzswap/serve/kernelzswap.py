"""The kernel's own zswap parameters (``/sys/module/zswap/parameters``): read, saved, written
and put back.

They are machine-wide, so whoever changes them (``hwzswap run --compare kernel-<comp>``) saves
them first and puts them back after; a run killed before it could is undone by its server or
the next ``run`` / ``swap off`` from the saved values in its owner record
(:mod:`hwzswap.serve.chain`). This module sits below both: it knows the parameters, nothing
of runs or chains.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

#: Where the kernel has zswap's module parameters (only where zswap is built in).
ZSWAP_SYS = Path("/sys/module/zswap/parameters")

#: The parameters a run changes, in the order they are put back (``enabled`` first: zswap
#: off before its compressor or pool limit changes under it).
KEYS = ("enabled", "compressor", "max_pool_percent", "shrinker_enabled")


def available() -> bool:
    """Whether the kernel has zswap built in (its ``enabled`` parameter exists)."""
    return (ZSWAP_SYS / "enabled").exists()


def is_enabled() -> bool:
    """Whether the kernel's zswap is on (False where it is not built in or unreadable)."""
    try:
        return read("enabled") in ("Y", "1")
    except OSError:
        return False


def read(key: str) -> str:
    """Parameter ``key`` as the kernel shows it, stripped (raises OSError)."""
    return (ZSWAP_SYS / key).read_text().strip()


def save(keys: Collection[str] = KEYS) -> dict[str, str]:
    """The parameters ``keys`` as they are now (one that cannot be read is left out)."""
    saved: dict[str, str] = {}
    for key in keys:
        with contextlib.suppress(OSError):
            saved[key] = read(key)
    return saved


def write(key: str, value: str) -> None:
    """One ``write(2)`` of ``value`` to parameter ``key`` (as ``echo v > param``). Sysfs takes
    a value whole or refuses it; a buffered text file would write a refused one again as it
    is closed."""
    fd = os.open(ZSWAP_SYS / key, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def restore(saved: Mapping[str, str], keys: Collection[str] | None = None
            ) -> tuple[list[str], list[str], list[str]]:
    """Put the parameters back to ``saved`` (those of them in ``keys``; all by default),
    ``enabled`` first: the keys that are back (or were), a line for each one written, and
    what could not be put back (with the command that does it). Only a value that differs is
    written."""
    back: list[str] = []
    changed: list[str] = []
    failed: list[str] = []
    for key in KEYS:
        if key not in saved or (keys is not None and key not in keys):
            continue
        old = saved[key]
        path = ZSWAP_SYS / key
        try:
            if read(key) != old:
                write(key, old)
                changed.append(f"{path} back to {old}")
            back.append(key)
        except OSError as exc:
            failed.append(f"{path} is not back to {old!r} ({exc.strerror or exc}): "
                          f"`echo {old} > {path}`")
    return back, changed, failed


def restore_recorded(saved: Any) -> tuple[list[str], list[str]]:
    """:func:`restore` of values as a record holds them (JSON: anything; only a mapping of
    known keys counts): (a line for each one written, what could not be put back)."""
    if not isinstance(saved, Mapping) or not saved:
        return [], []
    _, changed, failed = restore({str(k): str(v) for k, v in saved.items() if k in KEYS})
    return changed, failed


__all__ = ["KEYS", "ZSWAP_SYS", "available", "is_enabled", "read", "restore",
           "restore_recorded", "save", "write"]
