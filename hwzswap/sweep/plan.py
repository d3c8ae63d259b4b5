"""Expanding a sweep into runs: every combination of the axes, less the excluded ones.

Each run has a stable id built from its settings, so a sweep re-run into the same output
directory finds the runs it already has (resume), on any machine, in any order.

A ``params.<name>`` axis applies to the backends that declare the parameter ``<name>``; for the
others it is dropped from the run's coordinates, and the runs that then coincide are one run (a
sweep of ``backend: [lz4, zstd]`` × ``params.acceleration: [1, 8]`` is three runs, not four).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hwzswap.sweep.resources import backend_class, run_resources
from hwzswap.sweep.spec import SweepSpec, SweepSpecError, combinations_problem, same_value

#: Bench options set by a run setting (the value is passed as the option's argument).
BENCH_OPTIONS = {
    "workload": "--workload",
    "pages": "--pages",
    "seed": "--seed",
    "corpus": "--corpus",
    "load_batch": "--load-batch",
    "reclaim_batch": "--reclaim-batch",
    "folio_pages": "--folio-pages",
    "repeat": "--repeat",
}
#: Longest readable part of a run id (the hash keeps ids distinct beyond it).
_SLUG_MAX = 80


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its id, its coordinates (the axes' values) and all its settings."""

    run_id: str
    coords: dict[str, Any]
    settings: dict[str, Any]
    config: dict[str, Any]
    #: What the run asks a Ray cluster for (see :mod:`hwzswap.sweep.resources`).
    resources: dict[str, float] = field(default_factory=dict)
    #: Where each config key of :attr:`config` was set (:func:`config_origins`): a config
    #: error names the sweep file's axis or fixed setting, or the base config file's key,
    #: never the ``config.yaml`` the run's bench is given.
    origins: dict[str, str] = field(default_factory=dict)
    #: The content of each input file the run reads (``config``, ``corpus``, a ``workload``
    #: file): setting name -> ``sha256:<hex>`` of the file's bytes (:func:`input_fingerprints`).
    #: A stored record is resumed only when its runspec holds the same: an edited base config
    #: or a re-recorded workload file makes the run run again.
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return str(self.settings["backend"])

    def bench_args(self) -> list[str]:
        """``hwzswap bench`` options for this run, besides ``--config`` and ``--json``."""
        args = ["--backends", self.backend]
        for name, opt in BENCH_OPTIONS.items():
            value = self.settings.get(name)
            if value is not None:
                args += [opt, str(value)]
        return args

    def runspec(self) -> dict[str, Any]:
        """All a worker needs to execute the run, as JSON-able data (it travels to Ray nodes)."""
        return {
            "run_id": self.run_id,
            "coords": dict(self.coords),
            "settings": dict(self.settings),
            "backend": self.backend,
            "config": copy.deepcopy(self.config),
            "bench_args": self.bench_args(),
            "resources": dict(self.resources),
            "origins": dict(self.origins),
            "inputs": dict(self.inputs),
        }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _slug_part(value: Any) -> str:
    text = "null" if value is None else str(value).rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9.+]+", "-", text).strip("-") or "x"


def _portable(settings: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    """Settings with paths relative to the sweep file's directory, so ids survive a move."""
    if base_dir is None:
        return settings
    out = dict(settings)
    for name in ("config", "corpus", "workload"):
        value = out.get(name)
        if isinstance(value, str) and os.path.isabs(value):
            out[name] = os.path.relpath(value, base_dir)
    return out


def run_id(coords: dict[str, Any], settings: dict[str, Any], base_dir: str | None = None) -> str:
    """A stable id: the coordinates' values, readable, plus a hash of every setting.

    The hash covers the fixed settings too, so changing one of them in the sweep file gives new
    ids (the old records are not mistaken for the new runs on resume). Paths count relative to
    ``base_dir`` (the sweep file's directory).
    """
    settings = _portable(settings, base_dir)
    slug = "_".join(_slug_part(v) for v in coords.values())[:_SLUG_MAX] or "run"
    digest = hashlib.sha256(_canonical(settings).encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


#: The run settings that name an input file (when not a built-in name).
INPUT_SETTINGS = ("config", "corpus", "workload")


def file_sha256(path: str) -> str:
    """``sha256:<hex>`` of the bytes of ``path`` (read in 1 MiB steps: a corpus may be large;
    hashing runs at disk speed, and each file is hashed once a sweep)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def input_fingerprints(settings: dict[str, Any],
                       cache: dict[str, str] | None = None) -> dict[str, str]:
    """The content hash of each input file a run's ``settings`` name (``config``, ``corpus``,
    a ``workload`` file; built-in names such as ``roundtrip`` are not files). ``cache`` keeps
    each path's hash across the runs of one sweep. A file that cannot be read here hashes as
    ``unreadable`` (the sweep file's check has refused it already, or it went since)."""
    from hwzswap.bench.workload import WORKLOADS

    out: dict[str, str] = {}
    for name in INPUT_SETTINGS:
        value = settings.get(name)
        if not isinstance(value, str) or (name == "workload" and value in WORKLOADS):
            continue
        if cache is not None and value in cache:
            out[name] = cache[value]
            continue
        try:
            digest = file_sha256(value)
        except OSError as exc:
            digest = f"unreadable: {exc.strerror or exc}"
        if cache is not None:
            cache[value] = digest
        out[name] = digest
    return out


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = d.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            d[part] = nxt
        d = nxt
    d[parts[-1]] = value


def run_config(spec: SweepSpec, settings: dict[str, Any]) -> dict[str, Any]:
    """The config a run's bench gets: the base config, its dotted keys, backend and params.

    The compressor is the run's backend, with the base config's params when the base config
    names that backend, and the run's ``params.<name>`` settings on top.
    """
    base_path = settings.get("config")
    cfg = copy.deepcopy(spec.base_configs.get(base_path, {})) if base_path else {}
    for name, value in settings.items():
        head = name.split(".", 1)[0]
        if name == "batching":
            _set_dotted(cfg, "zswap.batching", value)
        elif head in ("zswap", "memory", "pool", "swap"):
            _set_dotted(cfg, name, value)
    zswap = cfg.get("zswap")
    if not isinstance(zswap, dict):
        zswap = {}
        cfg["zswap"] = zswap
    base_comp = zswap.get("compressor")
    params: dict[str, Any] = {}
    if isinstance(base_comp, dict) and base_comp.get("name") == settings["backend"]:
        params = dict(base_comp.get("params") or {})
    for name, value in settings.items():
        if name.startswith("params."):
            params[name.split(".", 1)[1]] = value
    zswap["compressor"] = {"name": settings["backend"], "params": params}
    return cfg


def _config_key(name: str) -> str | None:
    """The config key a run setting sets (``None``: a bench option, not a config key)."""
    if name == "batching":
        return "zswap.batching"
    if name == "backend":
        return "zswap.compressor.name"
    if name.startswith("params."):
        return "zswap.compressor.params." + name.split(".", 1)[1]
    if name.split(".", 1)[0] in ("zswap", "memory", "pool", "swap"):
        return name
    return None


def _leaf_keys(d: Any, prefix: str = "") -> list[str]:
    if not isinstance(d, dict):
        return [prefix] if prefix else []
    out: list[str] = []
    for k, v in d.items():
        out += _leaf_keys(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def config_origins(spec: SweepSpec, coords: dict[str, Any],
                   settings: dict[str, Any]) -> dict[str, str]:
    """Where each config key of a run comes from: ``{"zswap.async_max_batches":
    "s.yaml: axes.zswap.async_max_batches[0]"}`` for an axis value (its index in the axis),
    ``"s.yaml: fixed.<name>"`` for a fixed setting, ``"<base config>: <key>"`` for a key the
    base config file (the ``config`` setting) sets and the sweep does not."""
    out: dict[str, str] = {}
    base = settings.get("config")
    if base:
        for key in _leaf_keys(spec.base_configs.get(base, {})):
            out[key] = f"{base}: {key}"
    for name, value in settings.items():
        key = _config_key(name)
        if key is None:
            continue
        if name in coords and name in spec.axes:
            index = next((i for i, v in enumerate(spec.axes[name]) if same_value(v, value)), None)
            where = f"axes.{name}" + ("" if index is None else f"[{index}]")
        else:
            where = f"fixed.{name}"
        out[key] = f"{spec.source}: {where}"
    return out


def origin_of(key: str, origins: dict[str, str]) -> str | None:
    """Where config key ``key`` (as a config error names it) was set: its own origin, else
    the one of the setting it is part of (``zswap.compressor`` for ``...compressor.name``),
    else those of the settings under it (``zswap.compressor.params`` for a cross-parameter
    rule); ``None`` when the run's sweep did not set it."""
    if key in origins:
        return origins[key]
    parents = [k for k in origins if key.startswith(k + ".")]
    if parents:
        return origins[max(parents, key=len)]
    children = sorted({origins[k] for k in origins if k.startswith(key + ".")})
    if children:
        return f"{key} (set by {'; '.join(children)})"
    return None


def config_refusal(config: dict[str, Any], origins: dict[str, str]) -> str | None:
    """What the config loader says about a run's ``config`` (``None``: it is valid), each
    problem named by where the sweep set it (:func:`origin_of`): ``s.yaml:
    axes.zswap.async_max_batches[0]: must be auto or an integer 1..4096, got 0``."""
    from hwzswap.config import load_config
    from hwzswap.errors import HwzswapError

    try:
        load_config(config)
    except HwzswapError as exc:
        items = getattr(exc, "errors", None)
        if not items:
            return str(exc).replace("<dict>: ", "")
        lines = []
        for key, msg in items:
            where = origin_of(key, origins) if key else None
            lines.append(f"{where or key}: {msg}" if (where or key) else str(msg))
        return "; ".join(lines)
    return None


def _declared_params(cls: type | None) -> set[str] | None:
    """The parameters a backend's class declares, or ``None`` when it cannot be loaded here
    (every param is then kept)."""
    try:
        return None if cls is None else set(cls.PARAMS)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 -- a broken declaration: keep every param
        return None


def _excluded(spec: SweepSpec, coords: dict[str, Any]) -> bool:
    """Whether a partial combination of ``exclude`` matches ``coords``: values compared as
    the sweep file's check compares them (:func:`~hwzswap.sweep.spec.same_value`), so an
    exclude the check accepts does match."""
    for combo in spec.exclude:
        if combo and all(name in coords and any(same_value(coords[name], v) for v in values)
                         for name, values in combo.items()):
            return True
    return False


@dataclass(frozen=True)
class Plan:
    """The runs of a sweep in order, and how many combinations were excluded or merged."""

    runs: list[Run]
    combinations: int
    excluded: int
    collapsed: int


def expand(spec: SweepSpec) -> Plan:
    """Every run of ``spec``: the product of the axes in the file's order, less ``exclude``."""
    why = combinations_problem(spec.axes)
    if why is not None:  # counted first: expanding them would take hours
        raise SweepSpecError(f"{spec.source}: axes: {why}")
    names = list(spec.axes)
    declared: dict[str, set[str] | None] = {}
    classes: dict[str, type | None] = {}
    runs: list[Run] = []
    seen: set[str] = set()
    hashed: dict[str, str] = {}
    combos = excluded = collapsed = 0
    for values in itertools.product(*(spec.axes[n] for n in names)):
        combos += 1
        coords = dict(zip(names, values))
        if _excluded(spec, coords):
            excluded += 1
            continue
        settings = {**spec.fixed, **coords}
        backend = str(settings["backend"])
        if backend not in declared:  # once a backend: a lookup reads the entry points
            classes[backend] = backend_class(backend)
            declared[backend] = _declared_params(classes[backend])
        known = declared[backend]
        if known is not None:
            for name in [n for n in settings if n.startswith("params.")]:
                if name.split(".", 1)[1] not in known:
                    settings.pop(name)
                    coords.pop(name, None)
        settings = {n: settings[n] for n in sorted(settings)}
        rid = run_id(coords, settings, spec.base_dir)
        if rid in seen:
            collapsed += 1
            continue
        seen.add(rid)
        config = run_config(spec, settings)
        runs.append(Run(run_id=rid, coords=coords, settings=settings, config=config,
                        resources=run_resources(backend, config["zswap"]["compressor"]["params"],
                                                spec.resources, classes[backend]),
                        origins=config_origins(spec, coords, settings),
                        inputs=input_fingerprints(settings, hashed)))
    return Plan(runs=runs, combinations=combos, excluded=excluded, collapsed=collapsed)


#: The settings a recorded workload file fixes itself: ``hwzswap bench`` refuses each of
#: them together with one.


def settings_problem(run: Run) -> str | None:
    """Why the bench would refuse the run's settings (``None``: it would not), found without
    running it: a recorded workload file with a setting it fixes itself (its pages, seed...),
    or ``zswap.exclusive_loads: true`` with a built-in workload that loads slots again."""
    from hwzswap.bench.workload import (
        EXCLUSIVE_LOAD_WORKLOADS,
        WORKLOAD_FILE_FIXES,
        WORKLOADS,
        loads_slots_again,
    )

    workload = run.settings.get("workload", "roundtrip")
    zswap = run.config.get("zswap")
    if (isinstance(zswap, dict) and zswap.get("exclusive_loads") is True
            and loads_slots_again(workload)):
        where = origin_of("zswap.exclusive_loads", run.origins) or "zswap.exclusive_loads"
        return (f"{where}: true frees a slot when it is loaded, and the workload {workload} "
                f"loads slots again; use {', '.join(EXCLUSIVE_LOAD_WORKLOADS)} with it, or "
                "exclude these runs")
    if not isinstance(workload, str) or workload in WORKLOADS:
        return None
    given = [n for n in WORKLOAD_FILE_FIXES if run.settings.get(n) is not None]
    if not given:
        return None
    return (f"the workload {os.path.basename(workload)} is a recorded workload file: its "
            "pages, page count, seed, reclaim passes, folios and readahead clusters are its "
            f"own, and the bench refuses {', '.join(given)} with it; drop them, or exclude "
            "these runs")


def config_problem(run: Run) -> str | None:
    """What the config loader says about the run's config here (``None``: it is valid), each
    problem naming the sweep file's axis or fixed setting (or the base config's key) that set
    the value (:func:`config_refusal`).

    For ``--dry-run``: the run itself validates its config again where it runs.
    """
    return config_refusal(run.config, run.origins)


__all__ = ["BENCH_OPTIONS", "INPUT_SETTINGS", "Plan", "Run", "file_sha256",
           "input_fingerprints", "config_origins", "config_problem", "config_refusal",
           "expand", "origin_of", "run_config", "run_id", "settings_problem"]
