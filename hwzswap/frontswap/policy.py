"""The store policies zswap applies, fixed at startup (the kernel's module parameters)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from hwzswap.config import AUTO_ASYNC_BATCHES, BATCHING_MODES, WATCHDOG_MODES
from hwzswap.errors import InvalidParameterError

if TYPE_CHECKING:
    from hwzswap.config import ZswapConfig

PAGE_SIZE = 4096


@dataclass(frozen=True)
class ZswapPolicy:
    """What zswap accepts and when it writes back.

    * ``enabled``: store at all (stored entries stay loadable when it is off);
    * ``max_compression_ratio``: percent of a page; a compressed page longer than that share of
      4096 bytes is rejected (``reject_compress_poor``), as in v9 (default 80);
    * ``max_pool_pages``: the pool limit (``None``: none); ``pool_limit_hit`` counts stores that
      found the pool at it;
    * ``accept_threshold_percent``: after the limit is hit, stores are refused until the pool is
      at or under this share of the limit (today's kernel; 100 disables the hysteresis);
    * ``same_filled_pages``: a page whose 8-byte words are all equal is kept as that word, with
      no compression and no pool space;
    * ``exclusive_loads``: a load frees the entry (today's kernel) instead of keeping it (v9);
    * ``max_outstanding_writebacks``: cap on entries under writeback at once (v9: 64);
    * ``writeback_batch``: entries written back per reclaim attempt (v9: 16);
    * ``background_writeback``: a thread writes back whenever the pool is above the accept
      threshold, instead of the storing thread doing it;
    * ``entry_checksum``: keep a CRC-32 of each compressed object and verify it before every
      decompression (load, writeback), so that corrupt pool memory raises
      :class:`~hwzswap.errors.CorruptDataError` instead of returning a wrong page. Off by
      default: the kernel has no such check; it costs a CRC-32 of the object (~0.5 µs for
      1.6 KB) on store and on load;
    * ``batching``: how stores reach the compressor -- ``page`` (v9: one call per page),
      ``folio`` (today's kernel: one batch per folio), ``reclaim`` (one batch per reclaim pass),
      ``async`` (reclaim batches handed to the device without waiting, up to
      ``async_max_batches`` in flight, as swap writeback keeps bios in flight; ``auto``: four,
      or more while they hold fewer pages than the smallest of the device's preferred batch,
      its ``max_batch`` and the pool limit);
    * ``device_timeout_ms`` / ``device_fail_after`` / ``device_retry_s``: the deadline of a
      device call or op (``None``: the driver's own, else 10 s), the consecutive timeouts after
      which the device is marked failed, and the seconds after which it is tried again
      (``None``: never);
    * ``driver_watchdog``: which drivers' calls run on a watchdog thread that gives a call up
      at its deadline (``auto``: those from outside the hwzswap package; ``on``; ``off``);
    * ``verify_pages``: keep a CRC-32 of each uncompressed page and check it after every
      decompression, so a driver that returns wrong bytes is caught (``verify_fail``) instead
      of passed on. Off by default; it costs a CRC-32 of the page (~1 µs) on store and on load.
    """

    enabled: bool = True
    max_compression_ratio: int = 80
    max_pool_pages: int | None = None
    accept_threshold_percent: int = 90
    same_filled_pages: bool = True
    exclusive_loads: bool = False
    max_outstanding_writebacks: int = 64
    writeback_batch: int = 16
    background_writeback: bool = False
    entry_checksum: bool = False
    batching: str = "reclaim"
    async_max_batches: int | str = "auto"
    device_timeout_ms: float | None = None
    device_fail_after: int = 8
    device_retry_s: float | None = None
    driver_watchdog: str = "auto"
    verify_pages: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> InvalidParameterError:
            return InvalidParameterError(
                f"zswap policy: {name} {rule}, got {getattr(self, name)!r}"
            )

        for name in ("max_compression_ratio", "accept_threshold_percent"):
            v = getattr(self, name)
            lo = 1 if name == "max_compression_ratio" else 0
            if type(v) is not int or not lo <= v <= 100:
                raise bad(name, f"must be an int {lo}..100")
        if self.batching not in BATCHING_MODES:
            raise bad("batching", f"must be one of {', '.join(BATCHING_MODES)}")
        if self.driver_watchdog not in WATCHDOG_MODES:
            raise bad("driver_watchdog", f"must be one of {', '.join(WATCHDOG_MODES)}")
        if self.device_timeout_ms is not None and (
            type(self.device_timeout_ms) not in (int, float) or not self.device_timeout_ms > 0
        ):
            raise bad("device_timeout_ms", "must be a number > 0 or None")
        if self.async_max_batches != "auto" and (
                type(self.async_max_batches) is not int or self.async_max_batches < 1):
            raise bad("async_max_batches", "must be 'auto' or an int >= 1")
        for name in ("max_outstanding_writebacks", "writeback_batch", "device_fail_after"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise bad(name, "must be an int >= 1")
        if self.device_retry_s is not None and (
            type(self.device_retry_s) not in (int, float) or not self.device_retry_s > 0
        ):
            raise bad("device_retry_s", "must be a number > 0 or None")
        if self.max_pool_pages is not None and (
            type(self.max_pool_pages) is not int or self.max_pool_pages < 1
        ):
            raise bad("max_pool_pages", "must be an int >= 1 or None")

    @property
    def max_compressed_len(self) -> int:
        """Longest compressed page accepted: ``dlen * 100 / PAGE_SIZE <= ratio``."""
        return PAGE_SIZE * self.max_compression_ratio // 100

    @property
    def accept_pages(self) -> int | None:
        """Pool size (pages) at or under which stores resume after the limit was hit."""
        if self.max_pool_pages is None:
            return None
        return self.max_pool_pages * self.accept_threshold_percent // 100

    @classmethod
    def from_config(cls, config: ZswapConfig) -> ZswapPolicy:
        """The policy of a loaded config: its ``zswap:`` knobs of the same names, and the pool
        limit in pages (``max_pool_percent`` of the configured RAM)."""
        z = config.zswap
        knobs = {f.name: getattr(z, f.name) for f in fields(cls) if f.name != "max_pool_pages"}
        return cls(max_pool_pages=config.max_pool_pages, **knobs)


__all__ = ["AUTO_ASYNC_BATCHES", "BATCHING_MODES", "WATCHDOG_MODES", "ZswapPolicy"]
