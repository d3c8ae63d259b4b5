"""An example out-of-tree hwzswap driver for an asynchronous deflate accelerator (IAA-like).

``device.py`` is the emulated hardware (work queue, engines, virtual clock, fault injection);
``driver.py`` is the driver behind hwzswap's compressor contract. Installed, it registers as
``deflate-iaa`` through the ``hwzswap.backends`` entry-point group.
"""

from hwzswap_iaa_driver.driver import IaaBackend

__all__ = ["IaaBackend"]
