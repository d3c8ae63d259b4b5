"""The zswap engine: frontswap operations, policies, LRU writeback and the swap layer.

* :class:`~hwzswap.frontswap.zswap.ZswapCache` -- store/load/invalidate over a backend and a pool;
* :class:`~hwzswap.frontswap.writeback.BackgroundWriteback` -- the shrink worker thread;
* :class:`~hwzswap.frontswap.swapdev.SwapDevice` -- the swap file, with a latency model;
* :class:`~hwzswap.frontswap.system.SwapSystem` and :func:`open_zswap` -- the swap layer, built
  from a config.
"""

from __future__ import annotations

from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.swapdev import DeviceModel, SwapDevice
from hwzswap.frontswap.system import SwapSystem, open_zswap
from hwzswap.frontswap.writeback import BackgroundWriteback
from hwzswap.frontswap.zswap import ZswapCache

__all__ = [
    "BackgroundWriteback",
    "DeviceModel",
    "SwapDevice",
    "SwapSystem",
    "ZswapCache",
    "ZswapPolicy",
    "open_zswap",
]
