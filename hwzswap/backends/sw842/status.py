"""Why an 842 stream failed to decode, as data (for callers that map it, e.g. to NX completion codes)."""

from __future__ import annotations

import enum

from hwzswap.errors import CorruptDataError


class DecodeFailure(enum.Enum):
    """The classes of malformed stream the decoder rejects (842.md §2, plus stricter checks).

    The kernel's errno for each is noted; ``OUTPUT_OVERFLOW`` is also raised for index and
    SHORT_DATA actions, which the kernel's decoder does not check.
    """

    BAD_OP = "bad_op"  # op code 0x1A or 0x1F (-EINVAL)
    SHORT_DATA_ZERO = "short_data_zero"  # SHORT_DATA with n = 0 (-EINVAL)
    SHORT_DATA_FORBIDDEN = "short_data_forbidden"  # SHORT_DATA where the caller disallowed it
    REPEAT_EARLY = "repeat_early"  # REPEAT before a full 8-byte group exists (-EINVAL)
    INDEX_PAST_END = "index_past_end"  # an index names bytes not produced yet (-EINVAL)
    OUTPUT_OVERFLOW = "output_overflow"  # output would exceed max_out (-ENOSPC)
    INPUT_END = "input_end"  # the stream ended inside a field, or before END/CRC (-EOVERFLOW)
    CRC_MISMATCH = "crc_mismatch"  # CRC after END differs from the CRC of the output (-EINVAL)


class Sw842DecodeError(CorruptDataError):
    """A malformed 842 stream. ``failure`` says which rule it broke; ``bit`` is where."""

    def __init__(self, message: str, failure: DecodeFailure, bit: int, produced: int) -> None:
        super().__init__(message)
        self.failure = failure
        self.bit = bit
        self.produced = produced
