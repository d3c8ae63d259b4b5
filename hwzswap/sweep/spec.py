"""The sweep file: which settings vary (``axes``), which are shared (``fixed``), what to skip.

A sweep file is YAML with up to four keys::

    axes:                          # setting -> list of values; every combination is one run
      backend: [lz4, zstd, lz4-opencl]
      batching: [page, reclaim, async]
      zswap.max_pool_percent: [10, 20]
    fixed:                         # settings shared by every run (same names as axes)
      workload: roundtrip
      pages: 1024
      repeat: 1
    exclude:                       # partial combinations to skip (a list of values = any of them)
      - {backend: zstd, batching: async}
    resources:                     # optional: what a backend's runs ask a Ray cluster for
      lz4-opencl: {GPU: 1}

A *setting* is one of :data:`RUN_SETTINGS` (what ``hwzswap bench`` takes on its command line,
plus ``batching`` = the config key ``zswap.batching`` and ``config`` = a base config file),
``params.<name>`` (a parameter of the backend under test: ``zswap.compressor.params.<name>``),
or a dotted config key such as ``zswap.max_pool_percent`` (see :mod:`hwzswap.config`).

:func:`load_sweep` checks the file's structure, the types of the run settings and the dotted
config keys against the config's own (:func:`config_keys`), and raises one
:class:`SweepSpecError` naming the file and every bad key (``s.yaml: axes.pages: ...``). The
values of config keys are checked per run, by the run itself, with the config loader's own
messages: a run whose config is refused is a FAILED record, not the end of the sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwzswap.errors import ConfigError, excerpt
from hwzswap.yamlfile import Problems, closest, did_you_mean, read_yaml_file, size_problem

#: Settings that are not config keys, with what each one is.
RUN_SETTINGS: dict[str, str] = {
    "backend": "the backend under test (hwzswap bench --backends NAME)",
    "batching": "the engine mode, config key zswap.batching (page, folio, reclaim, async)",
    "workload": "a built-in workload name or a workload file (--workload)",
    "pages": "pages taken from the corpus (--pages)",
    "seed": "workload seed (--seed)",
    "corpus": "a page file, or 'bundled' (--corpus)",
    "load_batch": "pages per load op, readahead (--load-batch)",
    "reclaim_batch": "folios per reclaim pass (--reclaim-batch)",
    "folio_pages": "folio sizes in pages, optionally weighted: 1, 16 or '1:3,16:1' (--folio-pages)",
    "repeat": "passes per run; timings are their median (--repeat)",
    "config": "a base config file (YAML) the run's settings apply on top of (--config)",
}
#: Config sections a dotted key may start with.
CONFIG_SECTIONS = ("zswap", "memory", "pool", "swap")
#: The optional keys of a sweep file.
SWEEP_KEYS = ("axes", "fixed", "exclude", "resources")
#: Settings whose value is a path, resolved against the sweep file's directory.
PATH_SETTINGS = ("config", "corpus")

Scalar = str | int | float | bool | None


class SweepSpecError(ConfigError):
    """A sweep file that cannot be run: every problem, each naming the file and the key."""


@dataclass
class SweepSpec:
    """A validated sweep file.

    ``axes`` keeps the file's order (it is the order runs are listed and ids are built in);
    paths in ``axes``/``fixed`` (``config``, ``corpus``, a workload file) are absolute.
    """

    axes: dict[str, list[Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    exclude: list[dict[str, list[Any]]] = field(default_factory=list)
    resources: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = "<dict>"
    #: The directory relative paths in the file are resolved against (the file's own).
    base_dir: str = "."
    #: The base config files named in the spec, read once: absolute path -> mapping.
    base_configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def setting_names(self) -> list[str]:
        """Every setting the sweep names, axes first."""
        return [*self.axes, *(k for k in self.fixed if k not in self.axes)]

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (for the merged result)."""
        return {
            "source": self.source,
            "axes": {k: list(v) for k, v in self.axes.items()},
            "fixed": dict(self.fixed),
            "exclude": [dict(e) for e in self.exclude],
            "resources": {k: dict(v) for k, v in self.resources.items()},
        }


def _Problems(source: str) -> Problems:  # noqa: N802 - the collector, raising SweepSpecError
    return Problems(source, SweepSpecError)

def _kind(v: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a decimal number",
            str: "a string"}.get(type(v), type(v).__name__)


def _is_scalar(v: Any) -> bool:
    return v is None or type(v) in (str, int, float, bool)


def _positive_int(v: Any) -> str | None:
    return None if type(v) is int and v >= 1 else f"must be a whole number >= 1, got {excerpt(v)}"


def _structure(v: Any) -> str | None:
    """``reclaim_batch`` / ``load_batch``: the bench's own rule (a whole number
    1..MAX_STRUCTURE), so a run is not started only for its bench to refuse the value."""
    from hwzswap.bench.workload import structure_problem

    return structure_problem(v)


def _seed(v: Any) -> str | None:
    from hwzswap.bench.workload import MAX_SEED

    return None if type(v) is int and 0 <= v <= MAX_SEED else (
        f"must be a whole number >= 0 and at most {MAX_SEED}, got {excerpt(v)}")


def _name(v: Any) -> str | None:
    return None if type(v) is str and v.strip() else f"must be a non-empty string, got {excerpt(v)}"


def _quote_hint(v: Any) -> str:
    """For a number that names a backend (YAML reads an unquoted ``842`` as an int): how to
    write it; else ``""``."""
    from hwzswap.backends.registry import backend_names

    if type(v) in (int, float) and str(v) in backend_names():
        return f'; YAML read it as a number: write it quoted: "{v}"'
    return ""


def _backend(v: Any) -> str | None:
    why = _name(v)
    return None if why is None else why + _quote_hint(v)


def _corpus(v: Any) -> str | None:
    return None if v is None or (type(v) is str and v) else (
        f"must be a page file path or 'bundled', got {excerpt(v)}")


def _folio_pages(v: Any) -> str | None:
    """A folio mix as ``--folio-pages`` takes it (16, or "1:3,16:1"), read as the bench reads
    it, so a bad mix is caught here rather than by every run it is in."""
    from hwzswap.bench.workload import parse_folio_mix
    from hwzswap.errors import WorkloadError

    if type(v) is not int and not (type(v) is str and v.strip()):
        return f"must be a folio size or a mix such as '1:3,16:1', got {excerpt(v)}"
    try:
        parse_folio_mix(str(v), "folio_pages")
    except WorkloadError as exc:
        return str(exc).removeprefix("folio_pages: ")
    return None


def _batching(v: Any) -> str | None:
    """An engine mode: a fixed set, so a typo is caught here (it would fail every run it is
    in, one by one), as an unknown backend name is."""
    from hwzswap.config import BATCHING_MODES

    why = _name(v)
    if why is None and v not in BATCHING_MODES:
        why = (f"no engine mode {excerpt(v)}{did_you_mean(v, BATCHING_MODES)} (modes: "
               f"{', '.join(BATCHING_MODES)})")
    return why


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "backend": _backend,
    "batching": _batching,
    "workload": _name,
    "pages": _positive_int,
    "seed": _seed,
    "corpus": _corpus,
    "load_batch": _structure,
    "reclaim_batch": _structure,
    "folio_pages": _folio_pages,
    "repeat": _positive_int,
    "config": _name,
}


def setting_problem(name: str) -> str | None:
    """Why ``name`` is not a setting a sweep can vary or fix (``None`` when it is one)."""
    if type(name) is not str or not name:
        return f"a setting name must be a non-empty string, got {excerpt(name)}"
    if name in RUN_SETTINGS:
        return None
    head, dot, rest = name.partition(".")
    if not dot or not rest:
        return (f"unknown setting{did_you_mean(name, RUN_SETTINGS)} (known: "
                + ", ".join(RUN_SETTINGS)
                + ", params.<name>, or a dotted config key such as zswap.max_pool_percent)")
    if head == "params":
        return None if "." not in rest else "a backend parameter is params.<name>, one level"
    if head not in CONFIG_SECTIONS:
        meant = closest(head, (*CONFIG_SECTIONS, "params"))
        hint = f"; did you mean {meant + '.' + rest!r}?" if meant else ""
        return (f"unknown setting: a dotted config key starts with one of "
                f"{', '.join(CONFIG_SECTIONS)} (or params.<name> for a backend parameter)"
                f"{hint}")
    if rest == "compressor" or rest.startswith("compressor."):
        if rest.startswith("compressor.params.") and rest.count(".") == 2:
            return (f"the compressor's parameters are the settings params.<name>: write "
                    f"{'params.' + rest.rsplit('.', 1)[1]!r}")
        return "the compressor is the setting 'backend'; its parameters are params.<name>"
    if name == "zswap.batching":
        return "use the setting 'batching' (the same config key, by its short name)"
    return _config_key_problem(head, rest)


def config_keys() -> dict[str, tuple[str, ...]]:
    """The keys of each config section a dotted setting may name (``zswap.compressor`` is
    the settings ``backend`` and ``params.<name>``): the config loader's own key tables."""
    from hwzswap.config import CONFIG_KEYS

    return CONFIG_KEYS


def _config_key_problem(section: str, key: str) -> str | None:
    """Why ``section.key`` is not a config key (``None`` when it is one): checked with the
    sweep file, since a misspelt key would make every run it is in fail, one by one."""
    known = config_keys()
    if key in known[section]:
        return None
    shown = sorted(k for k in known[section] if not (section == "zswap" and k == "batching"))
    meant = closest(key, known[section])
    guess = f"{section}.{meant}" if meant else None
    if guess is None:
        elsewhere = [f"{s}.{key}" for s, keys in known.items() if key in keys]
        guess = elsewhere[0] if elsewhere else closest(
            f"{section}.{key}", [f"{s}.{k}" for s, keys in known.items() for k in keys])
    if guess == "zswap.batching":
        guess = "batching"
    hint = f"; did you mean {guess!r}?" if guess else ""
    if "." in key:
        return (f"not a config key: the {section} keys are {section}.<key>, one level{hint} "
                f"({section} keys: {', '.join(shown)})")
    return f"unknown config key{hint} ({section} keys: {', '.join(shown)})"


def same_value(a: Any, b: Any) -> bool:
    """Whether two setting values are the same value: equal and of one type (``1``, ``1.0``
    and ``true`` are three values, as each run's config and id take them). The one test of
    duplicates, ``exclude`` and the plan's matching."""
    return type(a) is type(b) and a == b


def _check_value(name: str, value: Any) -> str | None:
    if not _is_scalar(value):
        return f"must be a single value (string, number, true/false or null), got {excerpt(value)}"
    if type(value) is float and value != value:
        return ("NaN (.nan) is no setting's value: it equals nothing, not even itself, so "
                "it can neither be told from another NaN nor excluded; give a number")
    check = _CHECKS.get(name)
    return check(value) if check else None


def _resolve_path(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve(name: str, value: Any, base: Path) -> Any:
    """Paths made absolute against the sweep file's directory; the rest unchanged."""
    if name == "corpus":
        return None if value in (None, "bundled") else _resolve_path(base, value)
    if name == "config":
        return _resolve_path(base, value)
    if name == "workload":
        from hwzswap.bench.workload import WORKLOADS

        return value if value in WORKLOADS else _resolve_path(base, value)
    return value


def _check_input_files(name: str, values: list[Any], where: str, p: _Problems) -> None:
    """A page file or workload file the sweep names must be a file here (every run would fail
    on it; on Ray every node needs it at the same path): checked with the sweep file, as base
    configs are, not run by run. Built-in names (``bundled``, ``roundtrip``...) are not paths."""
    import os
    import stat

    from hwzswap.bench.workload import WORKLOADS, is_workload_file

    for value in values:
        if value is None or not isinstance(value, str) or (name == "workload"
                                                           and value in WORKLOADS):
            continue
        try:
            st = os.stat(value)
        except OSError as exc:
            if name == "corpus":
                what = "a page file or 'bundled'"
            else:
                what = (f"a built-in workload ({', '.join(WORKLOADS)}) or a workload file"
                        f"{did_you_mean(os.path.basename(value), WORKLOADS)}")
            p.add(where, f"{value}: {exc.strerror or exc}; give {what} (relative paths are "
                         "relative to the sweep file)")
            continue
        if not stat.S_ISREG(st.st_mode):
            p.add(where, f"{value}: not a regular file")
        elif name == "corpus" and is_workload_file(value):
            p.add(where, f"{value}: a recorded workload file, not a page file: give it as the "
                         "setting workload (it holds its own pages)")
        elif name == "workload" and not is_workload_file(value):
            p.add(where, f"{value}: not a workload file (one written by `hwzswap record`); "
                         f"built-in workloads are {', '.join(WORKLOADS)}, and a page file is "
                         "the setting corpus")
        elif name == "workload":
            why = _workload_file_problem(value)
            if why is not None:
                p.add(where, why)


def _workload_file_problem(path: str) -> str | None:
    """What the bench's own reader (:func:`hwzswap.bench.workload.load_workload`: header,
    version, sections, checksums, replayability) says about a workload file (``None``: it
    reads): a truncated file or one of a newer version would fail every run, so the sweep
    refuses it up front. The whole file is read and verified once per sweep file check."""
    from hwzswap.bench.workload import load_workload
    from hwzswap.errors import HwzswapError

    try:
        load_workload(path)
    except HwzswapError as exc:
        return f"{exc}"
    except (OSError, ValueError, MemoryError) as exc:
        return f"{path}: cannot read the workload file: {exc}"
    return None


def _load_base_config(path: str, key: str, p: _Problems) -> dict[str, Any] | None:
    """The base config file as written (the run's settings go on top), once the config
    loader has accepted it."""
    from hwzswap.config import load_config_and_raw
    from hwzswap.errors import HwzswapError

    try:  # one read: every problem of the file, named by the config loader, and its text
        _, raw = load_config_and_raw(path)
    except HwzswapError as exc:
        p.add(key, str(exc))
        return None
    return dict(raw or {})


def _check_backends(names: list[tuple[str, str]], p: _Problems) -> None:
    """Unknown backend names are errors here: they would fail every run they are in."""
    from hwzswap.backends.registry import get_backend_class
    from hwzswap.errors import UnknownBackendError

    for key, name in names:
        try:
            get_backend_class(name)
        except UnknownBackendError as exc:
            p.add(key, str(exc))
        except Exception:  # noqa: BLE001 -- known but not importable here; the run says why
            pass


def _registered_params() -> set[str]:
    """Every parameter some registered backend that loads here declares."""
    from hwzswap.backends.registry import backend_names, get_backend_class

    out: set[str] = set()
    for name in backend_names():
        try:
            out |= set(get_backend_class(name).PARAMS)
        except Exception:  # noqa: BLE001 -- not importable here
            pass
    return out


def _check_params(spec: SweepSpec, backends: list[str], p: _Problems) -> None:
    """A ``params.<name>`` setting that no backend of the sweep takes is an error: the plan
    drops it for a backend that does not declare it, so a misspelt name (``params.levle``)
    would vary nothing without a word. Skipped when a backend's class cannot be loaded here.

    An unknown backend name (reported by :func:`_check_backends`) does not hide a misspelt
    parameter: a name that no registered backend takes is wrong whichever backend was meant,
    so both are reported at once; one that some registered backend takes waits for the fix."""
    from hwzswap.backends.registry import get_backend_class
    from hwzswap.errors import UnknownBackendError

    names = [(f"axes.{k}", k) for k in spec.axes] + [(f"fixed.{k}", k) for k in spec.fixed]
    names = [(where, k) for where, k in names if k.startswith("params.")]
    if not names or not backends:
        return
    declared: dict[str, set[str]] = {}
    unknown = False
    for b in backends:
        try:
            declared[b] = set(get_backend_class(b).PARAMS)
        except UnknownBackendError:
            unknown = True  # reported with the backends
        except Exception:  # noqa: BLE001 -- not importable here: its parameters are unknown
            return
    anywhere = _registered_params() if unknown else set()
    ours = set().union(*declared.values())
    for where, k in names:
        param = k[len("params."):]
        if param in ours or param in anywhere:
            continue
        hint = did_you_mean(param, ours | anywhere)
        if declared:
            takes = "; ".join(f"{b}: {', '.join(sorted(ps)) or 'none'}"
                              for b, ps in declared.items())
            p.add(where, f"no backend of this sweep takes a parameter {param!r}{hint} ({takes})")
        else:
            p.add(where, f"no registered backend takes a parameter {param!r}{hint}")


#: The most combinations of axis values a sweep may have. Each is a bench process of seconds
#: to minutes, so a sweep of more runs for days; a long one is usually an axis too many.
MAX_COMBINATIONS = 10_000


def combinations_problem(axes: Mapping[str, list[Any]]) -> str | None:
    """Why the axes give too many combinations to run (``None`` when they do not): counted as
    the product of the axes' lengths, before anything is expanded (5 axes of 40 values are
    102 million combinations, which the plan would expand for hours without a word)."""
    import math

    count = math.prod(len(v) for v in axes.values())
    if count <= MAX_COMBINATIONS:
        return None
    sizes = " x ".join(f"{len(v)} {name}" for name, v in axes.items())
    return (f"{count} combinations ({sizes}), more than the {MAX_COMBINATIONS} a sweep runs: "
            "narrow the axes (fewer values, or a setting fixed instead of varied), or split "
            "the sweep into several files")


def parse_sweep(raw: Any, source: str = "<dict>", base_dir: str | Path | None = None
                ) -> SweepSpec:
    """Validate a sweep given as data (``source`` names it in messages)."""
    p = _Problems(source)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        p.add("", f"a sweep file is a mapping with keys {', '.join(SWEEP_KEYS)}; "
                  f"got {type(raw).__name__}")
        p.raise_if_any()
    for key in raw:
        if key not in SWEEP_KEYS:
            p.add(str(key), f"unknown key{did_you_mean(key, SWEEP_KEYS)} (known keys: "
                            f"{', '.join(SWEEP_KEYS)})")

    spec = SweepSpec(source=source, base_dir=str(base.resolve()))
    backends: list[tuple[str, str]] = []

    axes = raw.get("axes") or {}
    if not isinstance(axes, Mapping):
        p.add("axes", f"must be a mapping of setting -> list of values, got {excerpt(axes)}")
        axes = {}
    for name, values in axes.items():
        key = f"axes.{name}"
        why = setting_problem(name)
        if why:
            p.add(key, why)
            continue
        if not isinstance(values, list) or not values:
            p.add(key, f"must be a non-empty list of values, got {excerpt(values)}")
            continue
        bad = False
        for i, v in enumerate(values):
            msg = _check_value(name, v)
            if msg:
                p.add(f"{key}[{i}]", msg)
                bad = True
        if bad:
            continue
        seen: list[Any] = []
        for v in values:
            if any(same_value(v, s) for s in seen):
                p.add(key, f"the value {excerpt(v)} is listed twice")
                bad = True
            seen.append(v)
        if bad:
            continue
        if name == "backend":
            backends += [(f"{key}[{i}]", v) for i, v in enumerate(values)]
        spec.axes[str(name)] = [_resolve(name, v, base) for v in values]

    why = combinations_problem(spec.axes)
    if why is not None:
        p.add("axes", why)

    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        p.add("fixed", f"must be a mapping of setting -> value, got {excerpt(fixed)}")
        fixed = {}
    for name, value in fixed.items():
        key = f"fixed.{name}"
        why = setting_problem(name)
        if why:
            p.add(key, why)
            continue
        if name in spec.axes or name in axes:
            p.add(key, "is also an axis; a setting is either fixed or varied, not both")
            continue
        msg = _check_value(name, value)
        if msg:
            p.add(key, msg)
            continue
        if name == "backend":
            backends.append((key, value))
        spec.fixed[str(name)] = _resolve(name, value, base)

    if "backend" not in axes and "backend" not in fixed:
        p.add("axes.backend", "no backend: give the backends under test as an axis "
                              "(or one of them under fixed)")
    _check_backends(backends, p)

    exclude = raw.get("exclude") or []
    if not isinstance(exclude, list):
        p.add("exclude", f"must be a list of partial combinations, got {excerpt(exclude)}")
        exclude = []
    for i, combo in enumerate(exclude):
        key = f"exclude[{i}]"
        if not isinstance(combo, Mapping) or not combo:
            p.add(key, f"must be a mapping of axis -> value (or list of values), got {excerpt(combo)}")
            continue
        entry: dict[str, list[Any]] = {}
        for name, value in combo.items():
            if name not in axes:
                p.add(f"{key}.{name}", "is not an axis of this sweep (axes: "
                                       f"{', '.join(map(str, axes)) or 'none'})")
                continue
            if name not in spec.axes:
                continue  # the axis itself is bad, reported above
            wanted = value if isinstance(value, list) else [value]
            resolved = [_resolve(name, v, base) if _is_scalar(v) and v is not None else v
                        for v in wanted]
            for v, r in zip(wanted, resolved):
                if not any(same_value(r, a) for a in spec.axes[name]):
                    hint = _quote_hint(v) if name == "backend" else ""
                    alike = [a for a in spec.axes[name] if _is_scalar(r) and a == r]
                    if alike and not hint:
                        hint = (f" (the axis has {excerpt(alike[0])}, {_kind(alike[0])}, and "
                                f"this is {_kind(r)}: write it as the axis does)")
                    p.add(f"{key}.{name}", f"{excerpt(v)} is not one of the axis's values, so this "
                                           f"never matches{hint}")
            entry[str(name)] = resolved
        spec.exclude.append(entry)

    resources = raw.get("resources") or {}
    if not isinstance(resources, Mapping):
        p.add("resources", f"must be a mapping of backend -> {{resource: amount}}, "
                           f"got {excerpt(resources)}")
        resources = {}
    from hwzswap.backends.registry import backend_names
    from hwzswap.sweep.resources import amount_problem

    registered = backend_names()
    for name, amounts in resources.items():
        key = f"resources.{name}"
        if not isinstance(amounts, Mapping):
            p.add(key, f"must be a mapping of resource -> amount, got {excerpt(amounts)}")
            continue
        good: dict[str, float] = {}
        for res, amount in amounts.items():
            if type(res) is not str or not res:
                p.add(key, f"a resource name must be a non-empty string, got {excerpt(res)}")
            elif amount_problem(amount):
                p.add(f"{key}.{res}", amount_problem(amount))
            else:
                good[res] = float(amount)
        spec.resources[str(name)] = good
        if name not in registered:
            p.add(key, f"no backend named {excerpt(name)} (registered backends: "
                       f"{', '.join(registered)}), so no run would ask for these resources"
                       f"{_quote_hint(name)}")
    _check_params(spec, [b for _, b in backends], p)

    for name, values in [*((k, v) for k, v in spec.axes.items()),
                         *((k, [v]) for k, v in spec.fixed.items())]:
        where = f"axes.{name}" if name in spec.axes else f"fixed.{name}"
        if name in ("corpus", "workload"):
            _check_input_files(name, values, where, p)
        if name != "config":
            continue
        for path in values:
            loaded = _load_base_config(path, where, p)
            if loaded is not None:
                spec.base_configs[path] = loaded

    p.raise_if_any()
    return spec


#: A sweep file is a few dozen lines: larger files, deeper nesting or more values (YAML
#: aliases counted as if written out) are refused before validation, as configs are.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_VALUES = 10_000


def _count_values(raw: Any, name: str) -> None:
    why = size_problem(raw, MAX_DEPTH, MAX_VALUES)
    if why is not None:
        raise SweepSpecError(f"{name}: {why}; not a sweep file")


def read_yaml(path: str | Path) -> Any:
    """A sweep file's YAML document, read with the limits above; errors name the file."""
    raw = read_yaml_file(path, "sweep file", SweepSpecError, max_bytes=MAX_FILE_BYTES,
                         max_depth=MAX_DEPTH, max_values=MAX_VALUES)
    _count_values(raw, str(path))
    return raw


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; relative paths in it are relative to its directory."""
    return parse_sweep(read_yaml(path), str(path), Path(path).resolve().parent)


__all__ = ["MAX_COMBINATIONS", "combinations_problem", "same_value", "CONFIG_SECTIONS", "config_keys", "MAX_FILE_BYTES", "MAX_VALUES", "read_yaml", "RUN_SETTINGS", "SWEEP_KEYS", "SweepSpec", "SweepSpecError",
           "load_sweep", "parse_sweep", "setting_problem"]
