"""842: the software codec (kernel ``lib/842`` compatible) and the ``842`` backend."""

from hwzswap.backends.sw842.codec import compress, crc32_be, decompress
from hwzswap.backends.sw842.status import DecodeFailure, Sw842DecodeError

__all__ = ["DecodeFailure", "Sw842DecodeError", "compress", "crc32_be", "decompress"]
