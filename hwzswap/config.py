"""Configuration of a zswap swap system: dataclasses and a loader that validates the whole file.

A config is YAML (or an equivalent dict) with four sections; every key is optional and takes the
default shown (the 2013 v9 defaults where the kernel had a knob)::

    zswap:
      enabled: true
      compressor: lzo              # a name, or {name: lz4, params: {acceleration: 2}}
      max_pool_percent: 20         # of memory.total_ram_mb
      max_compression_ratio: 80    # percent of 4096 (v9 default 80); 100 = reject only >= page
      accept_threshold_percent: 90 # hysteresis after pool_limit_hit (100 disables)
      same_filled_pages: true
      exclusive_loads: false       # v9: load keeps the entry; true: load frees it (today's kernel)
      max_outstanding_writebacks: 64   # v9 ZSWAP_MAX_OUTSTANDING_FLUSHES
      writeback_batch: 16          # entries written back per reclaim attempt (v9: 16)
      background_writeback: false  # a thread keeping the pool under the accept threshold
      entry_checksum: false        # CRC-32 per object, checked before decompressing (not in
                                   # the kernel): corrupt pool memory raises, never a wrong page
      batching: reclaim            # page | folio | reclaim | async: one compress call per page
                                   # (v9), per folio (today's kernel), per reclaim pass, or
                                   # reclaim passes submitted without waiting (async)
      async_max_batches: auto      # async only (other modes ignore it): reclaim batches in
                                   # flight at once, 1..4096; auto: 4, or more until they hold
                                   # the device's preferred batch
      async_submit: auto           # async only: queue (ops on the device's own queue, polled
                                   # later) | worker (a thread making batch calls) | auto
      device_timeout_ms: null      # deadline of a device call/op, at most a day (null: the
                                   # backend's, else 10000 ms); later = DEVICE_ERROR
      device_fail_after: 8         # consecutive timeouts before the backend is marked failed
      device_retry_s: null         # seconds (at most a day) after which a failed backend is
                                   # tried again (null: never, until the system is rebuilt)
      driver_watchdog: auto        # auto | on | off: run driver calls on a watchdog thread
                                   # (auto: drivers from outside the hwzswap package)
      verify_pages: false          # CRC-32 of each uncompressed page, checked after every
                                   # decompression (catches a driver returning wrong bytes)
    memory:
      total_ram_mb: 256
    pool:
      type: zsmalloc               # or zbud
      max_pages_per_zspage: 8      # zsmalloc only (CONFIG_ZSMALLOC_CHAIN_SIZE)
    swap:
      path: null                   # null = a temporary file, unlinked from the moment it is
                                   # opened (nothing is left behind, even after a kill)
      nr_pages: 65536              # limited by free disk and memory unless allow_large: true
      reuse: false                 # true: overwrite an existing file that is not an hwzswap
                                   # swap file (never one owned by another user)
      allow_large: false           # true: skip the free-disk and memory limits on nr_pages
      model: none                  # none | hdd | ssd | custom
      # custom only: latency_us (0..10 s in µs), read_mb_s, write_mb_s (0.001..1e9)

:func:`load_config` checks everything at once and raises one :class:`~hwzswap.errors.ConfigError`
listing every problem, each line naming the file (``<dict>`` for a dict) and the dotted key, e.g.
``configs/x.yaml: zswap.max_pool_percent: must be an integer 1..100, got 250``. Compressor
parameters are checked against the backend class from the registry, so a typo in a parameter
name fails at load time, not in the middle of a run.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from hwzswap.backends.contract import MAX_TIMEOUT_MS, text_number_hint
from hwzswap.errors import ConfigError, HwzswapError, InvalidParameterError, excerpt
from hwzswap.yamlfile import Problems, did_you_mean, read_yaml_file, size_problem

PAGE_SIZE = 4096

#: A config file larger than this is refused before it is parsed (a real one is ~1 KB).
MAX_FILE_BYTES = 1 << 20
#: At most this many values (mappings, lists and scalars, counted as if every YAML alias were
#: written out) and this much nesting: a config is a few dozen values, and the limits make a
#: YAML alias bomb (a few hundred bytes that expand to billions of values) fail at once.
MAX_VALUES = 10_000
MAX_DEPTH = 32
#: Bytes of memory per swap slot in the swap maps (the swap system's and the device's).
SWAP_MAP_BYTES_PER_PAGE = 2

POOL_TYPES = ("zsmalloc", "zbud")
SWAP_MODELS = ("none", "hdd", "ssd", "custom")
#: ``zswap.batching``: how stores reach the compressor (see :class:`ZswapKnobs`).
BATCHING_MODES = ("page", "folio", "reclaim", "async")
#: ``zswap.driver_watchdog``: which drivers run under the watchdog (see :class:`ZswapKnobs`).
WATCHDOG_MODES = ("auto", "on", "off")
#: ``zswap.async_submit``: how ``async`` mode hands batches to the device (see
#: :class:`ZswapKnobs`).
ASYNC_SUBMIT_MODES = ("auto", "queue", "worker")
#: Pages of one reclaim pass in the kernel (SWAP_CLUSTER_MAX): ``async_submit: auto`` gives a
#: device that prefers larger calls than this the worker, which merges queued passes.
SWAP_CLUSTER_MAX = 32
#: ``zswap.async_max_batches: auto``: at least this many reclaim passes in flight, and more
#: while they hold fewer pages than the device's preferred batch.
AUTO_ASYNC_BATCHES = 4


#: Upper bounds of the numeric knobs that had none: a value past them means nothing a swap
#: system could use, and an unbounded one reached the clock and float arithmetic as an
#: OverflowError (``timestamp out of range``) instead of a config error.
#: ``zswap.device_timeout_ms``: a day; a later deadline is no deadline (the drivers' own bound).
MAX_DEVICE_TIMEOUT_MS = MAX_TIMEOUT_MS


def accept_pages(max_pages: int, accept_threshold_percent: int) -> int:
    """Pool pages at or under which stores resume after the limit was hit: the threshold's
    share of the limit (the kernel's ``zswap_accept_thr_pages``), and always under the limit
    itself. At 100 % the two are equal, and a pool sitting exactly at its limit took no store
    and needed no writeback, for good; the kernel's ``shrink_worker`` still writes back a
    pass there (its loop is a do-while)."""
    return max(0, min(max_pages * accept_threshold_percent // 100, max_pages - 1))
#: ``zswap.device_retry_s``: a day.
MAX_DEVICE_RETRY_S = 86_400
#: ``zswap.device_fail_after``: a million consecutive timeouts.
MAX_DEVICE_FAIL_AFTER = 1_000_000
#: ``zswap.async_max_batches``: reclaim passes in flight (each holds a staged copy of its pages).
MAX_ASYNC_BATCHES = 4096
#: ``swap.latency_us`` of the custom model: 10 s a request.
MAX_LATENCY_US = 10_000_000
#: ``swap.read_mb_s`` and ``write_mb_s`` of the custom model: 1 KB/s to 1 PB/s, past any device
#: either way (a rate near zero made every modelled transfer take ~1e297 µs).
MIN_MB_S = 0.001
MAX_MB_S = 1e9

#: A value check: returns ``None``, or what is wrong ("must be ..., got ...").
Check = Callable[[Any], str | None]


def _int_range(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is not int or not lo <= v <= hi:
            return f"must be an integer {lo}..{hi}, got {excerpt(v)}"
        return None

    return check


def _async_batches(v: Any) -> str | None:
    if v == "auto" or (type(v) is int and 1 <= v <= MAX_ASYNC_BATCHES):
        return None
    return f"must be auto or an integer 1..{MAX_ASYNC_BATCHES}, got {excerpt(v)}"


def _bool(v: Any) -> str | None:
    return None if type(v) is bool else f"must be true or false, got {excerpt(v)}"


def _number(lo: float, hi: float, *, strict: bool, why: str) -> Check:
    """A finite number above ``lo`` (``strict``) or at least ``lo``, and at most ``hi``; ``why``
    says what the upper bound is (an int too large for a float, 10**400, fails here, not as an
    OverflowError later)."""

    def check(v: Any) -> str | None:
        if type(v) in (int, float) and (v > lo if strict else v >= lo) and v <= hi:
            return None  # NaN fails both comparisons, an infinity the upper bound
        bound = f"> {lo:g}" if strict else f">= {lo:g}"
        top = hi if type(hi) is int else f"{hi:g}"
        return (f"must be a finite number {bound} and <= {top} ({why}), got {excerpt(v)}"
                f"{text_number_hint(v)}")

    return check


def _optional(check: Callable[[Any], str | None]) -> Check:
    """``check``, but null (``None``) is accepted too."""

    def opt(v: Any) -> str | None:
        if v is None:
            return None
        msg = check(v)
        return None if msg is None else msg.replace(", got", " or null, got", 1)

    return opt


#: YAML 1.1 reads an unquoted on/off/yes/no/true/false as a boolean.
_YAML_BOOL_HINT = " (YAML read an unquoted on/off/yes/no as a boolean: write the word quoted)"


def _choice(choices: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is str and v in choices:
            return None
        hint = _YAML_BOOL_HINT if type(v) is bool else ""
        return f"must be one of {', '.join(choices)}; got {excerpt(v)}{hint}"

    return check


#: The check of each :class:`ZswapKnobs` field: the config loader's and the constructors'.
_KNOB_CHECKS: dict[str, Check] = {
    "enabled": _bool,
    "max_compression_ratio": _int_range(1, 100),
    "accept_threshold_percent": _int_range(0, 100),
    "same_filled_pages": _bool,
    "exclusive_loads": _bool,
    "max_outstanding_writebacks": _int_range(1, 4096),
    "writeback_batch": _int_range(1, 4096),
    "background_writeback": _bool,
    "entry_checksum": _bool,
    "batching": _choice(BATCHING_MODES),
    "async_max_batches": _async_batches,
    "async_submit": _choice(ASYNC_SUBMIT_MODES),
    "device_timeout_ms": _optional(_number(0, MAX_DEVICE_TIMEOUT_MS, strict=True,
                                           why="a day")),
    "device_fail_after": _int_range(1, MAX_DEVICE_FAIL_AFTER),
    "device_retry_s": _optional(_number(0, MAX_DEVICE_RETRY_S, strict=True, why="a day")),
    "driver_watchdog": _choice(WATCHDOG_MODES),
    "verify_pages": _bool,
}


@dataclass
class CompressorConfig:
    """The compressor: a registry name and its parameters (defaults filled in by the loader)."""

    name: str = "lzo"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ZswapKnobs:
    """The zswap knobs, defined once: the kernel module parameters (under the kernel's names),
    the v9 writeback knobs and the framework's own engine knobs. The config file's ``zswap:``
    section (:class:`ZswapSettings`) and the engine's policy
    (:class:`~hwzswap.frontswap.policy.ZswapPolicy`) are this plus what each adds. Every value
    is checked when one is built (:class:`~hwzswap.errors.InvalidParameterError` naming the
    knob); :func:`load_config` checks a file first, to name the file and the dotted key."""

    #: Store at all (stored entries stay loadable when it is off).
    enabled: bool = True
    #: Percent of a page: a compressed page longer than that share of 4096 bytes is rejected
    #: (``reject_compress_poor``), as in v9; 100 rejects only what does not shrink.
    max_compression_ratio: int = 80
    #: After the pool limit is hit, stores are refused until the pool is at or under this share
    #: of the limit (today's kernel; 100 disables the hysteresis).
    accept_threshold_percent: int = 90
    #: A page whose 8-byte words are all equal is kept as that word: no compression, no pool.
    same_filled_pages: bool = True
    #: A load frees the entry (today's kernel) instead of keeping it (v9).
    exclusive_loads: bool = False
    #: Cap on entries under writeback at once (v9: ``ZSWAP_MAX_OUTSTANDING_FLUSHES``, 64).
    max_outstanding_writebacks: int = 64
    #: Entries written back per reclaim attempt (v9: 16).
    writeback_batch: int = 16
    #: A thread writes back whenever the pool is above the accept threshold, instead of the
    #: storing thread doing it.
    background_writeback: bool = False
    #: Not a kernel knob: a CRC-32 of every compressed object, verified before each
    #: decompression (load and writeback), so that corrupt pool memory raises CorruptDataError
    #: instead of coming back as a wrong page. Off (the kernel's behaviour and cost) by default;
    #: it costs a CRC-32 of the object (~0.5 µs for 1.6 KB) on store and on load.
    entry_checksum: bool = False
    #: How stores reach the compressor: ``page`` (v9: one page per compress call), ``folio``
    #: (today's kernel: one batch per folio), ``reclaim`` (one batch per reclaim pass) or
    #: ``async`` (reclaim batches submitted without waiting, like swap writeback).
    batching: str = "reclaim"
    #: ``async`` mode only (the other modes ignore it, so one config or sweep can set it and
    #: vary ``batching``): reclaim batches in flight at once before a store waits. ``auto``:
    #: :data:`AUTO_ASYNC_BATCHES`, or more while the batches in flight hold fewer pages than
    #: the smallest of the device's ``preferred_batch`` (so a GPU that wants thousands of pages
    #: a call gets them merged), its ``max_batch`` and the pool limit; an integer: exactly that
    #: many, at most :data:`MAX_ASYNC_BATCHES` (each pass in flight holds a staged copy of its
    #: pages).
    async_max_batches: int | str = "auto"
    #: ``async`` mode only: how the batches reach the device. ``queue``: the storing thread
    #: submits each batch's ops to the device's own queue (``submit``) and returns; they are
    #: polled when a store waits for room, or at a drain (an asynchronous device only: DPDK's
    #: enqueue/dequeue, the kernel's acomp requests; no engine thread). ``worker``: a worker
    #: thread makes the device's batch call, merging the passes queued meanwhile into one call
    #: (a GPU that wants thousands of pages a call). ``auto``: ``queue`` for an asynchronous
    #: device that prefers no more pages a call than one reclaim pass
    #: (:data:`SWAP_CLUSTER_MAX`), ``worker`` for any other.
    async_submit: str = "auto"
    #: Deadline (ms) of one device call or op; later counts as a device error. ``None``: the
    #: backend's own deadline, else 10000 ms. At most a day (:data:`MAX_DEVICE_TIMEOUT_MS`): a
    #: later deadline is none, and it overflowed the clock arithmetic.
    device_timeout_ms: float | None = None
    #: Consecutive timeouts after which the backend is marked failed (later stores rejected);
    #: at most :data:`MAX_DEVICE_FAIL_AFTER`.
    device_fail_after: int = 8
    #: Seconds after which a backend marked failed is tried again (the next call goes to it:
    #: back if it answers, failed again at its first timeout). ``None``: never. At most a day
    #: (:data:`MAX_DEVICE_RETRY_S`).
    device_retry_s: float | None = None
    #: Which drivers' calls run on a watchdog thread, given up at the deadline if they never
    #: return: ``auto`` (drivers from outside the hwzswap package), ``on`` (every driver) or
    #: ``off`` (none: a trusted driver is called directly, as the built-ins are, without the
    #: per-call thread hand-off; a call that hangs then hangs the caller). In a config file an
    #: unquoted ``on``/``off``, which YAML reads as true/false, is taken as the word.
    driver_watchdog: str = "auto"
    #: Not a kernel knob: a CRC-32 of each uncompressed page, checked after every decompression,
    #: so a driver returning wrong bytes is caught on load (``verify_fail``). Off by default;
    #: it costs a CRC-32 of the page (~1 µs) on store and on load.
    verify_pages: bool = False

    #: The check of each field (a subclass adds its own fields' checks).
    CHECKS: ClassVar[Mapping[str, Check]] = _KNOB_CHECKS

    def __post_init__(self) -> None:
        for name, check in self.CHECKS.items():
            msg = check(getattr(self, name))
            if msg is not None:
                raise InvalidParameterError(f"{type(self).__name__}: {name} {msg}")


@dataclass(frozen=True)
class ZswapSettings(ZswapKnobs):
    """The ``zswap:`` section: the :class:`ZswapKnobs`, the compressor, and the pool limit as a
    share of the configured RAM."""

    compressor: CompressorConfig = field(default_factory=CompressorConfig)
    #: The pool limit: this percent of ``memory.total_ram_mb``.
    max_pool_percent: int = 20

    CHECKS: ClassVar[Mapping[str, Check]] = {**_KNOB_CHECKS,
                                             "max_pool_percent": _int_range(1, 100)}


@dataclass
class MemoryConfig:
    """The ``memory:`` section: the RAM size ``max_pool_percent`` is a share of."""

    total_ram_mb: int = 256


@dataclass
class PoolConfig:
    """The ``pool:`` section."""

    type: str = "zsmalloc"
    max_pages_per_zspage: int = 8


@dataclass
class SwapConfig:
    """The ``swap:`` section: the swap file behind swap type 0 and its latency model."""

    path: str | None = None
    nr_pages: int = 65536
    model: str = "none"
    #: Overwrite an existing file at ``path`` that is not an hwzswap swap file (not empty and no
    #: hwzswap header, or with other hard links). Never overrides the owner/mode checks.
    reuse: bool = False
    #: Accept an ``nr_pages`` larger than the free disk under ``path`` or than the memory its
    #: slot maps need (see :func:`load_config`).
    allow_large: bool = False
    #: Custom model only: per-request latency, 0..:data:`MAX_LATENCY_US` (10 s).
    latency_us: float | None = None
    #: Custom model only: transfer rates, :data:`MIN_MB_S`..:data:`MAX_MB_S` (1 KB/s to 1 PB/s).
    read_mb_s: float | None = None
    write_mb_s: float | None = None


@dataclass
class ZswapConfig:
    """A whole, validated configuration. Build it with :func:`load_config`."""

    zswap: ZswapSettings = field(default_factory=ZswapSettings)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    swap: SwapConfig = field(default_factory=SwapConfig)
    #: Where the config came from (a file path or ``"<dict>"``), for messages.
    source: str = field(default="<dict>", compare=False)

    @property
    def total_ram_pages(self) -> int:
        return self.memory.total_ram_mb * (1 << 20) // PAGE_SIZE

    @property
    def max_pool_pages(self) -> int:
        """Pool limit in pages: ``totalram_pages * max_pool_percent / 100`` (as the kernel)."""
        return max(1, self.total_ram_pages * self.zswap.max_pool_percent // 100)

    @property
    def accept_pool_pages(self) -> int:
        """After ``pool_limit_hit``, stores resume once the pool is at or under this
        (:func:`accept_pages`)."""
        return accept_pages(self.max_pool_pages, self.zswap.accept_threshold_percent)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML-ready) that :func:`load_config` turns back into an equal config."""
        z = self.zswap
        swap: dict[str, Any] = {
            "path": self.swap.path,
            "nr_pages": self.swap.nr_pages,
            "model": self.swap.model,
            "reuse": self.swap.reuse,
            "allow_large": self.swap.allow_large,
        }
        if self.swap.model == "custom":
            swap["latency_us"] = self.swap.latency_us
            swap["read_mb_s"] = self.swap.read_mb_s
            swap["write_mb_s"] = self.swap.write_mb_s
        pool: dict[str, Any] = {"type": self.pool.type}
        if self.pool.type == "zsmalloc":
            pool["max_pages_per_zspage"] = self.pool.max_pages_per_zspage
        return {
            "zswap": {
                "compressor": {
                    "name": z.compressor.name,
                    "params": copy.deepcopy(z.compressor.params),
                },
                "max_pool_percent": z.max_pool_percent,
                **{f.name: getattr(z, f.name) for f in fields(ZswapKnobs)},
            },
            "memory": {"total_ram_mb": self.memory.total_ram_mb},
            "pool": pool,
            "swap": swap,
        }


# -- validation ------------------------------------------------------------------------------


def _Problems(source: str) -> Problems:  # noqa: N802 - the collector, raising ConfigError
    return Problems(source, ConfigError)

def _path(v: Any) -> str | None:
    if type(v) is str and "\0" in v:
        return f"must not contain a NUL byte (no file name can), got {excerpt(v)}"
    if v is None or (type(v) is str and v):
        return None
    return f"must be a file path or null, got {excerpt(v)}"


_ZSWAP_KEYS = ZswapSettings.CHECKS
_MEMORY_KEYS = {"total_ram_mb": _int_range(1, 1 << 24)}
_POOL_KEYS = {"type": _choice(POOL_TYPES), "max_pages_per_zspage": _int_range(1, 16)}
_SWAP_KEYS = {
    "path": _path,
    "nr_pages": _int_range(1, 1 << 30),
    "model": _choice(SWAP_MODELS),
    "reuse": _bool,
    "allow_large": _bool,
    "latency_us": _number(0, MAX_LATENCY_US, strict=False, why="10 s a request"),
    "read_mb_s": _number(MIN_MB_S, MAX_MB_S, strict=False, why="1 KB/s to 1 PB/s"),
    "write_mb_s": _number(MIN_MB_S, MAX_MB_S, strict=False, why="1 KB/s to 1 PB/s"),
}
_SECTIONS = ("zswap", "memory", "pool", "swap")
#: The keys of each section the loader checks (``zswap.compressor`` aside: a name or a
#: ``{name, params}`` mapping), for tools that name config keys (a sweep's dotted settings).
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "zswap": tuple(_ZSWAP_KEYS), "memory": tuple(_MEMORY_KEYS), "pool": tuple(_POOL_KEYS),
    "swap": tuple(_SWAP_KEYS)}


def _section(raw: Mapping[str, Any], name: str, p: _Problems) -> dict[str, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        p.add(name, f"must be a mapping of settings, got {type(value).__name__} {excerpt(value)}")
        return {}
    return dict(value)


#: Keys whose words include on and off: a YAML boolean there is that word (YAML 1.1 reads an
#: unquoted ``driver_watchdog: off`` as false, as docs/writing-a-driver.md writes it).
_ON_OFF_KEYS = frozenset({"driver_watchdog"})


def _check_keys(
    section: str,
    values: dict[str, Any],
    spec: Mapping[str, Callable[[Any], str | None]],
    p: _Problems,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate ``values`` against ``spec``; return the good ones (bad/unknown ones dropped)."""
    good: dict[str, Any] = {}
    known = sorted((*spec, *extra))
    for key, value in values.items():
        if type(key) is str and key in extra:
            continue
        check = spec.get(key) if type(key) is str else None
        if check is None:
            p.add(f"{section}.{_key(key)}",
                  f"unknown key{did_you_mean(key, known)} (known keys: {', '.join(known)})")
            continue
        if type(value) is bool and key in _ON_OFF_KEYS:
            value = "on" if value else "off"
        msg = check(value)
        if msg is not None:
            p.add(f"{section}.{key}", msg)
        else:
            good[key] = value
    return good


def _key(key: Any) -> str:
    """A key for a message: as written if it is a short string, else a bounded excerpt."""
    if type(key) is str and len(key) <= 80 and key.isprintable():
        return key
    return excerpt(key, 60)


def _clip(message: str, limit: int = 400) -> str:
    """A message from elsewhere (a backend's parameter check), cut to ``limit`` characters."""
    return message if len(message) <= limit else message[:limit] + "..."


def _quote_hint(value: Any) -> str:
    """For a number where a backend name belongs (YAML reads an unquoted ``842`` as an int):
    how to write it."""
    if type(value) in (int, float):
        return f' (YAML read it as a number: write it quoted, "{value}")'
    return ""


def _compressor(value: Any, p: _Problems) -> CompressorConfig | None:
    """Parse and check ``zswap.compressor`` against the backend registry."""
    from hwzswap.backends.registry import get_backend_class

    key = "zswap.compressor"
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, Mapping):
        unknown = [k for k in value if not (type(k) is str and k in ("name", "params"))]
        for k in unknown:
            p.add(f"{key}.{_key(k)}",
                  f"unknown key{did_you_mean(k, ('name', 'params'))} (known keys: name, params)")
        name = value.get("name")
        params = value.get("params", {})
        if params is None:
            params = {}
        if not isinstance(name, str):
            p.add(f"{key}.name", f"must be a backend name, got {excerpt(name)}{_quote_hint(name)}")
            return None
        if not isinstance(params, Mapping):
            p.add(f"{key}.params", f"must be a mapping of parameters, got {excerpt(params)}")
            return None
        if unknown:
            return None
    else:
        p.add(key, f"must be a backend name or {{name: ..., params: {{...}}}}, "
                   f"got {excerpt(value)}{_quote_hint(value)}")
        return None
    where = f"{key}" if isinstance(value, str) else f"{key}.name"
    if len(name) > 100 or not name.isprintable():
        p.add(where, f"unknown compressor: {excerpt(name)} is not a backend name")
        return None
    try:
        cls = get_backend_class(name)
    except HwzswapError as exc:  # unknown name, or a plugin that fails to import
        p.add(where, f"unknown compressor: {_clip(str(exc))}")
        return None
    bad = False
    for pk, pv in params.items():
        if type(pk) is not str:
            p.add(f"{key}.params.{_key(pk)}", f"a parameter name must be a string, "
                                              f"got {type(pk).__name__}")
            bad = True
            continue
        try:
            cls.validate_params({pk: pv})
        except HwzswapError as exc:
            p.add(f"{key}.params.{_key(pk)}", _clip(str(exc)))
            bad = True
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a backend's check that breaks on an odd value type
            p.add(f"{key}.params.{_key(pk)}", f"backend {name!r} could not check "
                                              f"{excerpt(pv)}: {type(exc).__name__}")
            bad = True
    if bad:
        return None
    try:
        full = cls.validate_params(dict(params))
    except HwzswapError as exc:  # a cross-parameter rule of the backend
        p.add(f"{key}.params", _clip(str(exc)))
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        p.add(f"{key}.params", f"backend {name!r} could not check its parameters: "
                               f"{type(exc).__name__}: {_clip(str(exc), 200)}")
        return None
    return CompressorConfig(name=name, params=full)


def _check_size(raw: Any, source: str) -> None:
    """Refuse a config of more than :data:`MAX_VALUES` values or deeper than :data:`MAX_DEPTH`
    (values counted as if written out: :func:`hwzswap.yamlfile.size_problem`)."""
    why = size_problem(raw, MAX_DEPTH, MAX_VALUES)
    if why is not None:
        raise ConfigError(f"{source}: {why}; a config is a few dozen settings. Refusing it "
                          f"before looking further (YAML aliases expanding to a huge value?)")

def _free_disk(directory: str) -> int | None:
    """Bytes an unprivileged user can still write under ``directory`` (None: unknown)."""
    try:
        st = os.statvfs(directory)
    except (OSError, ValueError):
        return None
    return st.f_bavail * st.f_frsize


def memory_available() -> int | None:
    """The kernel's MemAvailable estimate in bytes (None: unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def swap_size_problems(
    nr_pages: int,
    path: str | None,
    *,
    free_disk: int | None = None,
    available_memory: int | None = None,
) -> list[str]:
    """Why ``nr_pages`` swap slots do not fit here (empty if they do).

    The swap file (a header page plus ``nr_pages`` pages; sparse, but every page may be
    written) must fit in the free space of its directory (``statvfs``; the temporary directory
    when ``path`` is null), counting an existing file there as reusable; the swap maps
    (:data:`SWAP_MAP_BYTES_PER_PAGE` bytes a slot) must fit in half of the memory available
    (MemAvailable). ``free_disk`` and ``available_memory`` override what is measured.
    ``swap.allow_large: true`` skips both checks.
    """
    out: list[str] = []
    directory = os.path.dirname(path) or "." if path else tempfile.gettempdir()
    if free_disk is None:
        free_disk = _free_disk(directory)
        if free_disk is not None and path:
            try:
                st = os.stat(path)
                free_disk += st.st_size if st.st_size > 0 else 0
            except (OSError, ValueError):
                pass
    need = (nr_pages + 1) * PAGE_SIZE
    if free_disk is not None and need > free_disk:
        out.append(
            f"{nr_pages} pages need a swap file of {_gib(need)} ({need} bytes), but {directory} "
            f"has {_gib(free_disk)} free; lower nr_pages, or set swap.allow_large: true to "
            f"accept a swap file that may fill the disk"
        )
    if available_memory is None:
        available_memory = memory_available()
    maps = nr_pages * SWAP_MAP_BYTES_PER_PAGE
    if available_memory is not None and maps > available_memory // 2:
        out.append(
            f"{nr_pages} pages need {_gib(maps)} of swap maps ({SWAP_MAP_BYTES_PER_PAGE} bytes "
            f"a page), more than half of the {_gib(available_memory)} of memory available; "
            f"lower nr_pages, or set swap.allow_large: true"
        )
    return out


def _from_mapping(raw: Any, source: str) -> ZswapConfig:
    p = _Problems(source)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        p.add("", f"the top level must be a mapping with sections {', '.join(_SECTIONS)}; "
                  f"got {type(raw).__name__}")
        p.raise_if_any()
    _check_size(raw, source)
    for key in raw:
        if not (type(key) is str and key in _SECTIONS):
            p.add(_key(key), f"unknown section{did_you_mean(key, _SECTIONS)} (known sections: "
                             f"{', '.join(_SECTIONS)})")

    zraw = _section(raw, "zswap", p)
    z = _check_keys("zswap", zraw, _ZSWAP_KEYS, p, extra=("compressor",))
    comp = CompressorConfig()
    if "compressor" in zraw:
        parsed = _compressor(zraw["compressor"], p)
        if parsed is not None:
            comp = parsed
    else:
        parsed = _compressor(comp.name, p)
        comp = parsed if parsed is not None else comp
    zswap = ZswapSettings(compressor=comp, **z)

    memory = MemoryConfig(**_check_keys("memory", _section(raw, "memory", p), _MEMORY_KEYS, p))

    praw = _section(raw, "pool", p)
    pv = _check_keys("pool", praw, _POOL_KEYS, p)
    pool = PoolConfig(**pv)
    if "max_pages_per_zspage" in praw and pv.get("type", pool.type) == "zbud":
        p.add("pool.max_pages_per_zspage", "only applies to pool.type zsmalloc (zbud pages hold "
                                           "at most two objects); remove it")

    sraw = _section(raw, "swap", p)
    sv = _check_keys("swap", sraw, _SWAP_KEYS, p)
    swap = SwapConfig(**sv)
    custom_keys = ("latency_us", "read_mb_s", "write_mb_s")
    if swap.model == "custom":
        for k in ("read_mb_s", "write_mb_s"):
            if k not in sraw:
                p.add(f"swap.{k}", "required with model: custom")
        if swap.latency_us is None and "latency_us" not in sraw:
            swap.latency_us = 0.0
    elif "model" in sv or "model" not in sraw:
        for k in custom_keys:
            if k in sraw:
                p.add(f"swap.{k}", f"only applies with model: custom (model is {swap.model!r})")
    if isinstance(swap.latency_us, int):
        swap.latency_us = float(swap.latency_us)
    for k in ("read_mb_s", "write_mb_s"):
        v = getattr(swap, k)
        if isinstance(v, int):
            setattr(swap, k, float(v))
    valid = all(k not in sraw or k in sv for k in ("nr_pages", "path", "allow_large"))
    if valid and not swap.allow_large:
        for msg in swap_size_problems(swap.nr_pages, swap.path):
            p.add("swap.nr_pages", msg)

    p.raise_if_any()
    return ZswapConfig(zswap=zswap, memory=memory, pool=pool, swap=swap, source=source)


def read_config_file(path: str | Path) -> Any:
    """The YAML document of a config file as written, not yet checked (``None`` for an empty
    file): at most :data:`MAX_FILE_BYTES`, :data:`MAX_DEPTH` levels deep (with room for the
    sections) and :data:`MAX_VALUES` aliases. Raises :class:`ConfigError` naming the file."""
    return read_yaml_file(path, "config file", ConfigError, max_bytes=MAX_FILE_BYTES,
                          max_depth=MAX_DEPTH, max_values=MAX_VALUES, slack=2)


def load_config(source: str | Path | Mapping[str, Any] | ZswapConfig) -> ZswapConfig:
    """Load and validate a config from a YAML path, a dict, or a :class:`ZswapConfig`.

    A :class:`ZswapConfig` is re-validated (through :meth:`ZswapConfig.to_dict`), so one edited in
    place after loading cannot smuggle in a bad value. Raises :class:`ConfigError` naming the
    file and every bad key.
    """
    if isinstance(source, ZswapConfig):
        cfg = _from_mapping(source.to_dict(), source.source)
        return cfg
    if isinstance(source, Mapping):
        return _from_mapping(source, "<dict>")
    if isinstance(source, (str, Path)):
        return _from_mapping(read_config_file(source), str(source))
    raise ConfigError(
        f"a config must be a YAML file path, a dict or a ZswapConfig, not {type(source).__name__}"
    )


def config_keys(raw: Any) -> frozenset[str]:
    """The dotted keys (``section.key``) a config mapping writes itself, as read from its file
    (``zswap.max_pool_percent``, ...): a key written with its default value counts, a key left
    out does not. Not checked: pass the mapping :func:`load_config` accepted."""
    out: set[str] = set()
    if isinstance(raw, Mapping):
        for section, body in raw.items():
            if isinstance(body, Mapping):
                out |= {f"{section}.{key}" for key in body}
    return frozenset(out)


def changed_keys(config: ZswapConfig) -> frozenset[str]:
    """The dotted keys whose value in ``config`` differs from the built-in defaults: what a
    :class:`ZswapConfig` built in code (no text to read) can say about the keys it sets."""
    got, default = config.to_dict(), _from_mapping({}, "<defaults>").to_dict()
    out: set[str] = set()
    for section, body in got.items():
        for key, value in body.items():
            if default.get(section, {}).get(key) != value:
                out.add(f"{section}.{key}")
    return frozenset(out)


def load_config_and_keys(
    source: str | Path | Mapping[str, Any] | ZswapConfig,
) -> tuple[ZswapConfig, frozenset[str]]:
    """:func:`load_config`, plus the dotted keys the config sets itself (:func:`config_keys`;
    for a :class:`ZswapConfig`, :func:`changed_keys`), from ONE read of a file.

    A path is opened and read once: it may be a pipe (``--config <(...)``, ``/dev/stdin``),
    which a second read finds empty, so a command that needs both the config and its keys
    must take them from here, and pass the loaded config on (it keeps ``source``, the path,
    for messages) instead of the path."""
    if isinstance(source, ZswapConfig):
        return load_config(source), changed_keys(source)
    if isinstance(source, Mapping):
        return load_config(source), config_keys(source)
    if isinstance(source, (str, Path)):
        cfg, raw = load_config_and_raw(source)
        return cfg, config_keys(raw)
    return load_config(source), frozenset()  # raises: not a config


def load_config_and_raw(path: str | Path) -> tuple[ZswapConfig, Any]:
    """:func:`load_config` of the file at ``path`` and its YAML document as written
    (:func:`read_config_file`: ``None`` for an empty file), from ONE read: ``path`` may be a
    pipe, empty when read again. The loaded config names ``path`` as its ``source``."""
    raw = read_config_file(path)
    return _from_mapping(raw, str(path)), raw


def parameter_error(exc: BaseException, name: str, config: ZswapConfig) -> ConfigError:
    """A driver's parameter error (raised by its constructor), located: the config file and the
    dotted key (``zswap.compressor.params.<key>``) when the config names this backend."""
    import re

    comp = config.zswap.compressor
    msg = str(exc)
    if comp.name != name:
        return ConfigError(f"backend {name!r} with its default parameters (the config names "
                           f"{comp.name!r}, not this backend): {msg}")
    params = dict(comp.params)
    found = re.search(r"parameter '([^']+)'", msg)
    if found and found.group(1) in params:
        key: str | None = found.group(1)
    else:
        named = [k for k in params if re.search(rf"\b{re.escape(str(k))}\b", msg)]
        key = named[0] if len(named) == 1 else None
    where = "zswap.compressor.params" + (f".{key}" if key else "")
    return ConfigError(f"{config.source}: {where}: {msg}")


__all__ = [
    "parameter_error",
    "ASYNC_SUBMIT_MODES",
    "AUTO_ASYNC_BATCHES",
    "MAX_ASYNC_BATCHES",
    "SWAP_CLUSTER_MAX",
    "MAX_DEVICE_FAIL_AFTER",
    "MAX_DEVICE_RETRY_S",
    "MAX_DEVICE_TIMEOUT_MS",
    "MAX_LATENCY_US",
    "MAX_MB_S",
    "MIN_MB_S",
    "CONFIG_KEYS",
    "BATCHING_MODES",
    "WATCHDOG_MODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "POOL_TYPES",
    "SWAP_MODELS",
    "CompressorConfig",
    "MemoryConfig",
    "PoolConfig",
    "SwapConfig",
    "ZswapConfig",
    "ZswapKnobs",
    "ZswapSettings",
    "changed_keys",
    "config_keys",
    "load_config",
    "load_config_and_keys",
    "load_config_and_raw",
    "memory_available",
    "read_config_file",
    "swap_size_problems",
]
