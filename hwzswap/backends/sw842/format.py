"""The 842 stream format: op codes, field widths and the template table.

Everything here is data, shared by the compiled codec (:mod:`._jit`) and the pure-Python model
(:mod:`.reference`). Facts are from ``842.md`` §1 (kernel ``lib/842/842.h``); the tables are
written out from the format description, not copied.

Bit layout: one MSB-first bit string; each op is a 5-bit code and its fields. A template op
(codes 0x00-0x19) produces one 8-byte group from 1-4 actions, each a literal (``D2``/``D4``/``D8``,
big-endian) or an index (``I2``/``I4``/``I8``) into a ring laid over the output produced so far.
"""

from __future__ import annotations

import numpy as np

# -- op codes (842.h names) ------------------------------------------------------------------
OP_BITS = 5
OP_REPEAT = 0x1B
OP_ZEROS = 0x1C
OP_SHORT_DATA = 0x1D
OP_END = 0x1E
N_TEMPLATES = 0x1A  # codes 0x00..0x19; 0x1A and 0x1F are invalid

# -- field widths --------------------------------------------------------------------------
REPEAT_BITS = 6
SHORT_DATA_BITS = 3
I2_BITS, I4_BITS, I8_BITS = 8, 9, 8
CRC_BITS = 32
REPEAT_MAX = 64  # one REPEAT op appends 1..64 copies of the last group

# Rings: slots per size, and the ring's size in bytes (the decoder's "fifo" size).
I2_SLOTS, I4_SLOTS, I8_SLOTS = 256, 512, 256
I2_FIFO, I4_FIFO, I8_FIFO = I2_SLOTS * 2, I4_SLOTS * 4, I8_SLOTS * 8

# -- template table --------------------------------------------------------------------------
# Actions in output order. ("D", n) = n-byte literal, ("I", n) = n-byte index.
TEMPLATES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("D", 8),),                                  # 0x00
    (("D", 4), ("D", 2), ("I", 2)),               # 0x01
    (("D", 4), ("I", 2), ("D", 2)),               # 0x02
    (("D", 4), ("I", 2), ("I", 2)),               # 0x03
    (("D", 4), ("I", 4)),                         # 0x04
    (("D", 2), ("I", 2), ("D", 4)),               # 0x05
    (("D", 2), ("I", 2), ("D", 2), ("I", 2)),     # 0x06
    (("D", 2), ("I", 2), ("I", 2), ("D", 2)),     # 0x07
    (("D", 2), ("I", 2), ("I", 2), ("I", 2)),     # 0x08
    (("D", 2), ("I", 2), ("I", 4)),               # 0x09
    (("I", 2), ("D", 2), ("D", 4)),               # 0x0A
    (("I", 2), ("D", 4), ("I", 2)),               # 0x0B
    (("I", 2), ("D", 2), ("I", 2), ("D", 2)),     # 0x0C
    (("I", 2), ("D", 2), ("I", 2), ("I", 2)),     # 0x0D
    (("I", 2), ("D", 2), ("I", 4)),               # 0x0E
    (("I", 2), ("I", 2), ("D", 4)),               # 0x0F
    (("I", 2), ("I", 2), ("D", 2), ("I", 2)),     # 0x10
    (("I", 2), ("I", 2), ("I", 2), ("D", 2)),     # 0x11
    (("I", 2), ("I", 2), ("I", 2), ("I", 2)),     # 0x12
    (("I", 2), ("I", 2), ("I", 4)),               # 0x13
    (("I", 4), ("D", 4)),                         # 0x14
    (("I", 4), ("D", 2), ("I", 2)),               # 0x15
    (("I", 4), ("I", 2), ("D", 2)),               # 0x16
    (("I", 4), ("I", 2), ("I", 2)),               # 0x17
    (("I", 4), ("I", 4)),                         # 0x18
    (("I", 8),),                                  # 0x19
)

# Order in which the kernel compressor tries templates: ascending argument bits, ties in this
# order (842.md §1.3). The first template whose every index finds its value wins.
ENCODER_RANK: tuple[int, ...] = (
    0x19, 0x18, 0x17, 0x13, 0x12, 0x16, 0x15, 0x0E, 0x09, 0x11, 0x10, 0x0D, 0x08,
    0x14, 0x04, 0x0F, 0x0C, 0x0B, 0x07, 0x06, 0x03, 0x0A, 0x05, 0x02, 0x01, 0x00,
)

# The encoder looks each group up 7 ways; a template is usable when all of its index actions
# found their value. Lookup numbers (also the bit numbers of the "found" mask):
#   0: the 64-bit group in the I8 ring; 1, 2: the two 32-bit halves in the I4 ring;
#   3..6: the four 16-bit quarters in the I2 ring.
N_LOOKUPS = 7


def lookup_of(size: int, offset: int) -> int:
    """Which of the 7 lookups an index action of ``size`` bytes at group ``offset`` uses."""
    if size == 8:
        return 0
    if size == 4:
        return 1 + offset // 4
    return 3 + offset // 2


def index_bits(size: int) -> int:
    return {2: I2_BITS, 4: I4_BITS, 8: I8_BITS}[size]


def template_bits(code: int) -> int:
    """Total bits of a template op including its 5-bit code."""
    return OP_BITS + sum(8 * n if k == "D" else index_bits(n) for k, n in TEMPLATES[code])


def _build_tables() -> dict[str, np.ndarray]:
    n = len(TEMPLATES)
    nact = np.zeros(n, np.int64)
    is_index = np.zeros((n, 4), np.int64)
    size = np.zeros((n, 4), np.int64)
    offset = np.zeros((n, 4), np.int64)
    bits = np.zeros((n, 4), np.int64)
    lookup = np.full((n, 4), -1, np.int64)
    required = np.zeros(n, np.int64)
    for code, actions in enumerate(TEMPLATES):
        nact[code] = len(actions)
        off = 0
        for a, (kind, nbytes) in enumerate(actions):
            size[code, a] = nbytes
            offset[code, a] = off
            if kind == "I":
                is_index[code, a] = 1
                bits[code, a] = index_bits(nbytes)
                lookup[code, a] = lookup_of(nbytes, off)
                required[code] |= 1 << lookup[code, a]
            else:
                bits[code, a] = 8 * nbytes
            off += nbytes
        assert off == 8, f"template {code:#x} covers {off} bytes"
    best = np.zeros(1 << N_LOOKUPS, np.int64)
    for mask in range(1 << N_LOOKUPS):
        best[mask] = next(c for c in ENCODER_RANK if required[c] & ~mask == 0)
    return {
        "nact": nact,
        "is_index": is_index,
        "size": size,
        "offset": offset,
        "bits": bits,
        "lookup": lookup,
        "required": required,
        "best": best,
    }


_T = _build_tables()
T_NACT: np.ndarray = _T["nact"]
T_IS_INDEX: np.ndarray = _T["is_index"]
T_SIZE: np.ndarray = _T["size"]
T_OFFSET: np.ndarray = _T["offset"]
T_BITS: np.ndarray = _T["bits"]
T_LOOKUP: np.ndarray = _T["lookup"]
T_REQUIRED: np.ndarray = _T["required"]
# BEST_TEMPLATE[found_mask] = the code the kernel's rank order picks for that lookup outcome.
BEST_TEMPLATE: np.ndarray = _T["best"]
del _T


def max_compressed_size(n: int) -> int:
    """Upper bound on the compressed size of ``n`` input bytes (842.md §3.5), padding included.

    Worst case: 69 bits per 8-byte group (code + D8), a SHORT_DATA tail, END and the CRC.
    """
    groups, tail = divmod(n, 8)
    bits = groups * template_bits(0) + (OP_BITS + SHORT_DATA_BITS + 8 * tail if tail else 0)
    bits += OP_BITS + CRC_BITS
    nbytes = (bits + 7) // 8
    return (nbytes + 7) // 8 * 8


# -- CRC: the kernel's crc32_be(0, ...): poly 0x04C11DB7, MSB-first, seed 0, no final xor --------
CRC32_POLY = 0x04C11DB7


def _crc_tables() -> np.ndarray:
    """Slicing-by-8 tables: ``t[0]`` is the byte table, ``t[k][b]`` is byte b followed by k zeros."""
    t = np.zeros((8, 256), np.uint32)
    for b in range(256):
        c = b << 24
        for _ in range(8):
            c = ((c << 1) ^ CRC32_POLY) & 0xFFFFFFFF if c & 0x80000000 else (c << 1) & 0xFFFFFFFF
        t[0, b] = c
    for k in range(1, 8):
        for b in range(256):
            prev = int(t[k - 1, b])
            t[k, b] = ((prev << 8) & 0xFFFFFFFF) ^ int(t[0, prev >> 24])
    return t


CRC_TABLES: np.ndarray = _crc_tables()
