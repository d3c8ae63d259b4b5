"""``lz4-opencl``: batch LZ4 block compression on an OpenCL device (see :mod:`.backend`)."""

from hwzswap.backends.opencl.backend import Lz4OpenCLBackend

__all__ = ["Lz4OpenCLBackend"]
