"""The store policies zswap applies, fixed at startup (the kernel's module parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from hwzswap.config import (
    AUTO_ASYNC_BATCHES,
    BATCHING_MODES,
    SWAP_CLUSTER_MAX,
    WATCHDOG_MODES,
    Check,
    ZswapKnobs,
    accept_pages,
)
from hwzswap.errors import excerpt

if TYPE_CHECKING:
    from hwzswap.config import ZswapConfig

PAGE_SIZE = 4096


def _pool_pages(v: Any) -> str | None:
    if v is None or (type(v) is int and v >= 1):
        return None
    return f"must be an integer >= 1 or None, got {excerpt(v)}"


@dataclass(frozen=True)
class ZswapPolicy(ZswapKnobs):
    """What zswap accepts and when it writes back: the :class:`~hwzswap.config.ZswapKnobs`
    (each documented there) and the pool limit in pages.

    ``max_pool_pages``: the pool limit (``None``: none); ``pool_limit_hit`` counts stores (in
    ``async`` mode also folios landing) that found the pool at it. A bad value raises :class:`~hwzswap.errors.InvalidParameterError`
    naming the knob.
    """

    max_pool_pages: int | None = None

    CHECKS: ClassVar[Mapping[str, Check]] = {**ZswapKnobs.CHECKS, "max_pool_pages": _pool_pages}

    @property
    def max_compressed_len(self) -> int:
        """Longest compressed page accepted under ``max_compression_ratio``.

        zswap v9 (``zswap_frontswap_store``) rejects a page when the C integer expression
        ``dlen * 100 / PAGE_SIZE > zswap_max_compression_ratio`` holds; the division
        truncates, so it accepts every ``dlen`` with ``dlen * 100 < (ratio + 1) * PAGE_SIZE``:
        at the default 80 up to 3317 bytes (3318 is the first rejected), not
        ``4096 * 80 // 100`` = 3276."""
        return ((self.max_compression_ratio + 1) * PAGE_SIZE - 1) // 100

    @property
    def accept_pages(self) -> int | None:
        """Pool size (pages) at or under which stores resume after the limit was hit
        (:func:`hwzswap.config.accept_pages`)."""
        if self.max_pool_pages is None:
            return None
        return accept_pages(self.max_pool_pages, self.accept_threshold_percent)

    @classmethod
    def from_config(cls, config: ZswapConfig) -> ZswapPolicy:
        """The policy of a loaded config: its ``zswap:`` knobs of the same names, and the pool
        limit in pages (``max_pool_percent`` of the configured RAM)."""
        z = config.zswap
        knobs = {f.name: getattr(z, f.name) for f in fields(ZswapKnobs)}
        return cls(max_pool_pages=config.max_pool_pages, **knobs)


__all__ = ["AUTO_ASYNC_BATCHES", "BATCHING_MODES", "SWAP_CLUSTER_MAX", "WATCHDOG_MODES",
           "ZswapPolicy"]
