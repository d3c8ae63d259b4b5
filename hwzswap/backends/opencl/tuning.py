"""Per-device tuning of ``lz4-opencl``: measure a small grid once, cache the fastest choice.

The best kernel configuration differs by an order of magnitude between devices (PoCL's CPU
device wants one page per work-item and no work-group; an H200 wants larger work-groups and a
smaller hash table), so a fixed default is wrong almost everywhere. On first use on a device,
:func:`tuned_choice` measures a small grid on a sample of real pages (the bundled corpus):

1. compressor layout, work-group size and ``hash_log`` at one batch size;
2. the batch size (pages per launch) for the fastest of those;
3. the decompressor: one item per work-item or the cooperative one item per work-group.

Speed is end to end (host memory in, host memory out: what a caller sees). A configuration
counts only when its compression ratio on the sample is within :data:`RATIO_TOLERANCE` (1%)
of ``lz4.block``'s; configurations within :data:`SPEED_TIE` (3%) of the fastest count as
equally fast, and the best ratio among them wins. The decompressor must decode every sample
page exactly.

The choice is cached as JSON in the user cache directory (``platformdirs``; the environment
variable ``HWZSWAP_CACHE_DIR`` overrides it, which tests use), keyed by the device name, its
platform, the driver version and a hash of the kernel sources: a new driver or a kernel change
measures again. ``hwzswap tune lz4-opencl [--refresh]`` runs or refreshes it and prints the
table. Explicit backend parameters always win over the tuned choice.

A cache directory that cannot be written is found before anything is measured (a file is
created in it and removed). ``hwzswap tune``, whose point is the cache, then refuses (exit 2)
and measures nothing; a backend tuning itself on first use measures anyway, with a
:class:`TuningCacheWarning` that the choice is not cached (every new backend measures again).
A cache file that is not valid JSON, or not a tuning record for its key, is ignored with the
same warning as one with bad values, and measured again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.backends.contract import PAGE_SIZE
from hwzswap.errors import OutputError
from hwzswap.fileio import write_atomic

CACHE_ENV = "HWZSWAP_CACHE_DIR"
RATIO_TOLERANCE = 0.01
#: Configurations within this share of the fastest one's speed count as equally fast (timing
#: noise); among them the one with the best ratio is chosen.
SPEED_TIE = 0.03
#: Bump when the measuring procedure changes (old cached choices are then measured again).
TUNER_VERSION = 1
_KERNELS = ("lz4_compress.cl", "lz4_decompress.cl")

#: How many grids were measured in this process (tests check a cached choice is not measured).
MEASUREMENTS = 0


@dataclass(frozen=True)
class Grid:
    """What to measure on one kind of device."""

    compress: tuple[dict[str, Any], ...]  # layout / local_size / hash_log candidates
    batch_sizes: tuple[int, ...]  # step 1 uses the first
    decompress: tuple[dict[str, Any], ...]
    sample_pages: int
    repeat: int


# PoCL's CPU device: the group layouts run 2x slower there (its work-groups are loops on one
# thread; benchmarks/results/opencl_pocl_cpu.md) and work-group sizes make no difference, so the
# grid is small and the first use costs a few seconds.
CPU_GRID = Grid(
    compress=(
        {"layout": "item", "local_size": 1, "hash_log": 12},
        {"layout": "item", "local_size": 1, "hash_log": 11},
    ),
    batch_sizes=(4096, 1024),
    decompress=(
        {"decompress_layout": "item", "decompress_local_size": 1},
        {"decompress_layout": "group", "decompress_local_size": 4},
    ),
    sample_pages=3072,
    repeat=3,
)

GPU_GRID = Grid(
    compress=tuple(
        [{"layout": "item", "local_size": ls, "hash_log": h}
         for ls in (32, 64, 128) for h in (10, 11, 12)]
        + [{"layout": "group", "local_size": w, "hash_log": h}
           for w in (4, 8, 16) for h in (11, 12)]
    ),
    batch_sizes=(16384, 4096, 65536),
    decompress=(
        {"decompress_layout": "item", "decompress_local_size": 64},
        {"decompress_layout": "group", "decompress_local_size": 8},
        {"decompress_layout": "group", "decompress_local_size": 16},
        {"decompress_layout": "group", "decompress_local_size": 32},
        {"decompress_layout": "group", "decompress_local_size": 64},
    ),
    sample_pages=65536,
    repeat=3,
)


def grid_for(kind: str) -> Grid:
    """The grid for a device kind (``"cpu"`` gets the small one)."""
    return CPU_GRID if kind == "cpu" else GPU_GRID


def cache_dir() -> Path:
    """Where tuned choices live: ``$HWZSWAP_CACHE_DIR``, else the user cache directory."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("hwzswap"))


def kernel_sources() -> dict[str, str]:
    """The kernel sources the choice is valid for (name -> text)."""
    root = resources.files("hwzswap.backends.opencl").joinpath("kernels")
    return {name: root.joinpath(name).read_text(encoding="utf-8") for name in _KERNELS}


def source_hash() -> str:
    """SHA-256 over the kernel sources and the tuner version."""
    h = hashlib.sha256(f"tuner {TUNER_VERSION}\n".encode())
    for name, text in sorted(kernel_sources().items()):
        h.update(f"{name}\n{len(text)}\n".encode())
        h.update(text.encode())
    return h.hexdigest()


def cache_key(platform: Any, device: Any) -> dict[str, str]:
    """What a tuned choice depends on."""
    return {
        "device": device.name.strip(),
        "platform": platform.name.strip(),
        "driver": device.driver_version.strip(),
        "kernel_sha256": source_hash(),
    }


def cache_path(key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"lz4-opencl-tune-{digest}.json"


@dataclass
class TuneResult:
    """A tuned choice: the parameters, where it came from, and the measured table."""

    choice: dict[str, Any]
    source: str  # "cache" or "measured"
    key: dict[str, str]
    path: Path  # where the choice is (or would be) cached
    table: list[dict[str, Any]] = field(default_factory=list)
    lz4_ratio: float | None = None
    sample_pages: int = 0
    measured_at: str = ""
    #: Why a measured choice is not in the cache (the directory cannot be written), or None.
    not_cached: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "source": self.source,
            "key": self.key,
            "path": None if self.not_cached else str(self.path),  # never a file not written
            "not_cached": self.not_cached,
            "lz4_ratio": self.lz4_ratio,
            "sample_pages": self.sample_pages,
            "measured_at": self.measured_at,
            "table": self.table,
        }


class TuningCacheWarning(UserWarning):
    """A cached tuned choice was ignored (not valid JSON, not a tuning record, not a valid
    configuration), or a measured one could not be cached."""


def cache_problem(directory: Path | None = None) -> str | None:
    """Why a tuned choice cannot be cached in ``directory`` (default :func:`cache_dir`), or
    None when it can: the directory is made if missing and a file is created in it and removed
    -- the real test (permission bits say nothing about ``/proc``, a read-only mount or root)."""
    d = cache_dir() if directory is None else directory
    if d.exists() and not d.is_dir():
        return f"{d} is not a directory"
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.filename in (None, str(d)):
            return str(exc.strerror or exc)
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def _cache_hint() -> str:
    """What to do about a cache directory that cannot be written."""
    if os.environ.get(CACHE_ENV, "").strip():
        return f"set {CACHE_ENV} to a writable directory (or unset it for the user cache)"
    return f"make the user cache directory writable, or set {CACHE_ENV} to a writable one"


def _ignored(path: Path, problem: str) -> None:
    warnings.warn(
        f"lz4-opencl: ignoring the cached tuned choice in {path}: {problem}. The file is "
        f"not a valid tuning record (edited or damaged); the device is measured again and "
        f"the file replaced (`hwzswap tune lz4-opencl --refresh` does the same)",
        TuningCacheWarning, stacklevel=3,
    )


def check_choice(choice: Any) -> str | None:
    """What is wrong with a tuned ``choice`` (a cache file's ``choice``), or None when valid.

    A cached choice goes through the same parameter checks as explicit backend parameters
    (:class:`~hwzswap.backends.contract.Param`), and must be concrete: every tuned key, none at
    its "tuned" value (0 or "auto"), and a group layout's ``local_size`` one of the group
    widths. The kernels trust these values (a ``hash_log`` of 40 or a negative work-group size
    crashes the OpenCL runtime), so a cache file edited or damaged by hand must never reach them.
    """
    from hwzswap.backends.opencl.backend import GROUP_WIDTHS, TUNED_KEYS, Lz4OpenCLBackend
    from hwzswap.errors import InvalidParameterError

    if not isinstance(choice, dict):
        return f"choice must be a mapping, got {type(choice).__name__}"
    keys = set(choice)
    if keys != set(TUNED_KEYS):
        missing = sorted(set(TUNED_KEYS) - keys)
        extra = sorted(str(k) for k in keys - set(TUNED_KEYS))
        what = "; ".join(
            part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(map(repr, extra))}" if extra else "",
            ) if part
        )
        return f"choice must have exactly the keys {', '.join(TUNED_KEYS)} ({what})"
    for k in TUNED_KEYS:
        value = choice[k]
        try:
            Lz4OpenCLBackend.PARAMS[k].check(Lz4OpenCLBackend.name, k, value)
        except InvalidParameterError as exc:
            return f"choice.{k}: {exc}"
        if value in (0, "auto") and not isinstance(value, bool):
            return f"choice.{k}: a tuned choice must be concrete, got {value!r}"
    if choice["layout"] == "group" and choice["local_size"] not in GROUP_WIDTHS:
        return (f"choice.local_size: layout 'group' needs one of {GROUP_WIDTHS}, "
                f"got {choice['local_size']!r}")
    return None


#: What each kind of table row must hold for :func:`format_table`: (numbers, other keys).
_DECOMPRESS_ROW = (("decompress_local_size", "batch_size", "decompress_pages_s"),
                   ("decompress_layout", "exact"))
_COMPRESS_ROW = (("local_size", "hash_log", "batch_size", "compress_pages_s", "ratio"),
                 ("step", "layout", "ratio_ok"))


def _check_record(doc: dict[str, Any]) -> str | None:
    """What is wrong with a cache file's other fields (shown by ``hwzswap tune``), or None."""
    table = doc.get("table", [])
    if not isinstance(table, list) or not all(isinstance(r, dict) for r in table):
        return "table must be a list of mappings"
    for i, row in enumerate(table):
        numbers, others = (_DECOMPRESS_ROW if row.get("step") == "decompress"
                           else _COMPRESS_ROW)
        for k in numbers:
            v = row.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"table[{i}].{k} must be a number, got {str(v)[:40]!r}"
        for k in others:
            if k not in row:
                return f"table[{i}] lacks {k}"
    ratio = doc.get("lz4_ratio")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))):
        return f"lz4_ratio must be a number, got {ratio!r}"
    pages = doc.get("sample_pages", 0)
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
        return f"sample_pages must be a whole number >= 0, got {pages!r}"
    if not isinstance(doc.get("measured_at", ""), str):
        return "measured_at must be a string"
    return None


def load_cached(key: dict[str, str]) -> TuneResult | None:
    """The cached choice for ``key``, or None: missing, or ignored with a
    :class:`TuningCacheWarning` -- unreadable, not valid JSON, not a tuning record for ``key``
    (the file's name is a hash of the key: another key inside is damage), or not a valid
    choice -- and then measured again by :func:`tuned_choice`, which replaces the file."""
    path = cache_path(key)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None  # nothing cached yet (a cache directory that is no directory: see
        # cache_problem)
    except OSError as exc:
        _ignored(path, f"cannot read it ({exc.strerror or exc})")
        return None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        _ignored(path, f"not valid JSON ({str(exc)[:80]})")
        return None
    if not isinstance(doc, dict):
        _ignored(path, f"a JSON {type(doc).__name__}, not an object")
        return None
    if doc.get("key") != key:
        _ignored(path, "its key is not this device's, driver's and kernel sources'")
        return None
    problem = check_choice(doc.get("choice")) or _check_record(doc)
    if problem is not None:
        _ignored(path, problem)
        return None
    return TuneResult(dict(doc["choice"]), "cache", key, path, doc.get("table", []),
                      doc.get("lz4_ratio"), doc.get("sample_pages", 0), doc.get("measured_at", ""))


def _save(result: TuneResult) -> None:
    """Write atomically (a temp file renamed), so a concurrent reader never sees half a file;
    the cache directory is made, and the file is private to its user (0600)."""
    text = json.dumps({**result.to_dict(), "source": "measured"}, indent=2) + "\n"
    write_atomic(result.path, lambda tmp: tmp.write_text(text), mode=0o600)


def tuned_choice(platform: Any, device: Any, query: Any, *, refresh: bool = False,
                 grid: Grid | None = None,
                 progress: Callable[[str], None] | None = None,
                 require_cache: bool = False) -> TuneResult:
    """This device's tuned choice: from the cache, else measured now (and cached).

    ``query`` is the backend's :class:`~hwzswap.backends.opencl.device.DeviceQuery` (the
    measurements run on the same device). ``refresh`` measures even when a choice is cached.
    The cache directory is checked before measuring (:func:`cache_problem`): one that cannot
    be written raises :class:`~hwzswap.errors.OutputError` with ``require_cache`` (``hwzswap
    tune``: measuring what cannot be kept is wasted), else the grid is measured anyway with a
    :class:`TuningCacheWarning`, and the result says ``not_cached`` (so does one whose write
    failed after all).
    """
    key = cache_key(platform, device)
    if not refresh:
        cached = load_cached(key)
        if cached is not None:
            return cached
    from hwzswap.backends.opencl.device import device_type_name

    problem = cache_problem()
    if problem is not None and require_cache:
        raise OutputError(
            f"lz4-opencl tuning: cannot cache a choice in {cache_dir()} ({problem}); nothing "
            f"was measured: {_cache_hint()}")
    result = measure(key, query, grid or grid_for(device_type_name(device)), progress)
    if problem is None:
        try:
            _save(result)
        except OSError as exc:
            problem = f"{exc.filename or result.path}: {exc.strerror or exc}"
    if problem is not None:
        result.not_cached = problem
        msg = (f"lz4-opencl: the tuned choice is NOT cached ({problem}): every new backend "
               f"measures again; {_cache_hint()}")
        warnings.warn(msg, TuningCacheWarning, stacklevel=2)
    return result


def _sample(n: int) -> np.ndarray:
    from hwzswap.bench.corpus import load_bundled

    pages = load_bundled(max_pages=n)
    if len(pages) < n:
        pages = np.tile(pages, (-(-n // len(pages)), 1))[:n]
    return np.ascontiguousarray(pages)


def _stored(batch: Any) -> int:
    """Bytes kept: compressed size, or a whole page for an incompressible one."""
    sizes = np.asarray(batch.sizes)
    return int(np.where(sizes == 0, PAGE_SIZE, sizes).sum())


def _time(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: buffers sized, caches hot
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(key: dict[str, str], query: Any, grid: Grid,
            progress: Callable[[str], None] | None = None) -> TuneResult:
    """Measure ``grid`` on a sample of the bundled corpus and pick the fastest configuration
    whose ratio is within 1% of lz4.block's (see the module docstring)."""
    global MEASUREMENTS
    import lz4.block

    from hwzswap.backends.opencl.backend import Lz4OpenCLBackend

    MEASUREMENTS += 1
    say = progress or (lambda _msg: None)
    pages = _sample(grid.sample_pages)
    n = len(pages)
    ref = sum(min(len(lz4.block.compress(p, store_size=False)), PAGE_SIZE) for p in pages)
    lz4_ratio = n * PAGE_SIZE / ref
    dev = {"device": query.device, "device_type": query.device_type, "platform": query.platform}
    table: list[dict[str, Any]] = []

    def compress_row(step: str, cfg: dict[str, Any], batch: int) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step, **cfg, "batch_size": batch}
        try:
            with Lz4OpenCLBackend(**dev, **cfg, batch_size=batch, tune="off") as b:
                out = b.compress_batch(pages)
                dt = _time(lambda: b.compress_batch(pages), grid.repeat)
            ratio = n * PAGE_SIZE / _stored(out)
            row.update(compress_pages_s=n / dt, ratio=ratio,
                       ratio_ok=ratio >= lz4_ratio * (1 - RATIO_TOLERANCE))
        except Exception as exc:  # noqa: BLE001 -- a configuration the device rejects
            row.update(compress_pages_s=0.0, ratio=0.0, ratio_ok=False,
                       error=f"{type(exc).__name__}: {exc}")
        table.append(row)
        say(_line(row))
        return row

    rows = [compress_row("compress", cfg, grid.batch_sizes[0]) for cfg in grid.compress]
    if all(r.get("error") for r in rows):
        from hwzswap.errors import DeviceError

        raise DeviceError(
            f"lz4-opencl: tuning on {key['device']!r} failed: no configuration ran "
            f"(first error: {rows[0]['error']}); nothing was cached"
        )
    ok = [r for r in rows if r["ratio_ok"]] or rows
    best = pick(ok)
    comp = {k: best[k] for k in ("layout", "local_size", "hash_log")}
    brows = [best] + [compress_row("batch", comp, b) for b in grid.batch_sizes[1:]]
    best_b = max((r for r in brows if r["ratio_ok"]), key=lambda r: r["compress_pages_s"],
                 default=best)
    choice = {**comp, "batch_size": best_b["batch_size"]}

    drows = []
    with Lz4OpenCLBackend(**dev, **choice, decompress_layout="item", tune="off") as b:
        items = b.compress_batch(pages)
    kept = np.flatnonzero(items.status == 0)
    for dcfg in grid.decompress:
        row = {"step": "decompress", **dcfg, "batch_size": choice["batch_size"]}
        try:
            with Lz4OpenCLBackend(**dev, **choice, **dcfg, tune="off") as b:
                out = b.decompress_batch(items)
                exact = bool(np.array_equal(getattr(out, "pages", out)[kept], pages[kept]))
                dt = _time(lambda: b.decompress_batch(items), grid.repeat)
            row.update(decompress_pages_s=len(kept) / dt, exact=exact)
        except Exception as exc:  # noqa: BLE001
            row.update(decompress_pages_s=0.0, exact=False, error=f"{type(exc).__name__}: {exc}")
        table.append(row)
        drows.append(row)
        say(_line(row))
    dbest = max((r for r in drows if r["exact"]), key=lambda r: r["decompress_pages_s"],
                default=None)
    if dbest is not None:
        choice.update(decompress_layout=dbest["decompress_layout"],
                      decompress_local_size=dbest["decompress_local_size"])
    for row in table:
        row["chosen"] = (
            (row["step"] != "decompress" and all(row.get(k) == choice[k] for k in
                                                  ("layout", "local_size", "hash_log",
                                                   "batch_size")))
            or (row["step"] == "decompress" and row is dbest)
        )
    return TuneResult(choice, "measured", key, cache_path(key), table, lz4_ratio, n,
                      time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def pick(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest compress row; among rows within :data:`SPEED_TIE` of it, the best ratio."""
    top = max(r["compress_pages_s"] for r in rows)
    near = [r for r in rows if r["compress_pages_s"] >= top * (1 - SPEED_TIE)]
    return max(near, key=lambda r: (r["ratio"], r["compress_pages_s"]))


def _line(row: dict[str, Any]) -> str:
    if row["step"] == "decompress":
        what = f"decompress {row['decompress_layout']}/{row['decompress_local_size']}"
        rate = row["decompress_pages_s"]
    else:
        what = f"compress {row['layout']}/{row['local_size']} hash_log {row['hash_log']}"
        rate = row["compress_pages_s"]
    extra = f" ratio {row['ratio']:.3f}" if "ratio" in row else ""
    err = f" ({row['error']})" if row.get("error") else ""
    return f"{what} batch {row['batch_size']}: {rate:,.0f} pages/s{extra}{err}"


def format_table(result: TuneResult) -> str:
    """The measured table as Markdown (``hwzswap tune`` and the results files)."""
    where = (f"NOT cached: {result.not_cached}" if result.not_cached else str(result.path))
    lines = [
        f"tuned choice for {result.key['device']!r} (driver {result.key['driver']}, platform "
        f"{result.key['platform']!r}; {result.source}; {where})",
        "",
        f"choice: {', '.join(f'{k}={v}' for k, v in result.choice.items())}",
        f"sample: {result.sample_pages} pages of the bundled corpus; lz4.block ratio "
        f"{result.lz4_ratio:.3f}" if result.lz4_ratio else "sample: -",
        "",
        "| step | layout | local size | hash_log | batch | pages/s (end to end) | ratio | ok | chosen |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result.table:
        if r["step"] == "decompress":
            lines.append(
                f"| decompress | {r['decompress_layout']} | {r['decompress_local_size']} | | "
                f"{r['batch_size']} | {r['decompress_pages_s']:,.0f} | | "
                f"{'exact' if r['exact'] else 'WRONG'} | {'**yes**' if r.get('chosen') else ''} |"
            )
        else:
            lines.append(
                f"| {r['step']} | {r['layout']} | {r['local_size']} | {r['hash_log']} | "
                f"{r['batch_size']} | {r['compress_pages_s']:,.0f} | {r['ratio']:.3f} | "
                f"{'yes' if r['ratio_ok'] else 'no'} | {'**yes**' if r.get('chosen') else ''} |"
            )
    return "\n".join(lines)


__all__ = [
    "CACHE_ENV",
    "CPU_GRID",
    "GPU_GRID",
    "Grid",
    "TuneResult",
    "TuningCacheWarning",
    "cache_dir",
    "cache_problem",
    "cache_key",
    "format_table",
    "grid_for",
    "kernel_sources",
    "load_cached",
    "measure",
    "pick",
    "source_hash",
    "tuned_choice",
]
