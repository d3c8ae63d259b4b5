"""An emulated Power7+-style NX-842 compression unit and its ``842-nx`` driver.

Layers, bottom up (each its own module):

* :mod:`.crb` -- the coprocessor request/status blocks, completion codes, DMA buffers;
* :mod:`.engine` -- one 842 engine: the hardware's checks, real 842 work through the software
  codec in strict mode (so the output is a hardware-compatible stream with CRC), the timing
  model and fault injection;
* :mod:`.queue` -- the submission queue in front of N engines, with a ``virtual`` or a
  ``realtime`` clock;
* :mod:`.fifo` -- the driver's entry lock, which serves waiting calls in arrival order as the
  hardware's request FIFO does;
* :mod:`.driver` -- :class:`Nx842Backend`, the compressor-contract adapter with the kernel's
  failure policy and the pSeries-style counters (:mod:`.stats`).

The backend is registered through the ``hwzswap.backends`` entry point in hwzswap's own
``pyproject.toml``, exactly as a third-party driver would be (see ``docs/writing-a-driver.md``).
Nothing here is imported by ``hwzswap`` itself.
"""

from __future__ import annotations

from hwzswap.backends.nx842.crb import CC, HANG, Crb, Csb, DmaArena, DmaBuffer
from hwzswap.backends.nx842.engine import Engine, FaultInjector, TimingModel

__all__ = [
    "CC",
    "HANG",
    "Crb",
    "Csb",
    "DmaArena",
    "DmaBuffer",
    "Engine",
    "FaultInjector",
    "TimingModel",
]
