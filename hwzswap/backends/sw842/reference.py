"""A plain-Python model of the 842 codec: the format written as directly as possible.

It is slow (a page takes milliseconds) and exists to be read and to check the compiled codec
against: the tests compare both on random and structured inputs, byte for byte. It is also what
:mod:`.codec` falls back to when numba is missing. Its data structures are deliberately unlike
the compiled ones: each ring is a slot list plus, per value, an insertion-ordered dict of the
slots holding it (the most recently written is the last key).
"""

from __future__ import annotations

from collections.abc import Iterable

from hwzswap.backends.sw842.format import (
    CRC32_POLY,
    ENCODER_RANK,
    I2_FIFO,
    I4_FIFO,
    I8_FIFO,
    OP_END,
    OP_REPEAT,
    OP_SHORT_DATA,
    OP_ZEROS,
    REPEAT_MAX,
    TEMPLATES,
    index_bits,
    lookup_of,
)
from hwzswap.backends.sw842.status import DecodeFailure, Sw842DecodeError
from hwzswap.errors import InvalidInputError


def crc32_be(data: bytes | Iterable[int], crc: int = 0) -> int:
    """The kernel's ``crc32_be``: poly 0x04C11DB7, MSB-first, no reflection, no final xor."""
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ CRC32_POLY) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


class _Ring:
    """Slots of one size; ``find`` gives the most recently written slot holding a value."""

    def __init__(self, nslots: int) -> None:
        self.nslots = nslots
        self.slot_value: list[int | None] = [None] * nslots  # all empty at the start
        self.slots_of: dict[int, dict[int, None]] = {}

    def write(self, slot: int, value: int) -> None:
        old = self.slot_value[slot]
        if old is not None:
            del self.slots_of[old][slot]
        self.slot_value[slot] = value
        holders = self.slots_of.setdefault(value, {})
        holders.pop(slot, None)
        holders[slot] = None  # now the newest

    def find(self, value: int) -> int | None:
        holders = self.slots_of.get(value)
        return next(reversed(holders)) if holders else None


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def put(self, value: int, width: int) -> None:
        assert 0 <= value < (1 << width)
        self.bits.append(format(value, f"0{width}b"))

    def getvalue(self) -> bytes:
        s = "".join(self.bits)
        s += "0" * (-len(s) % 8)
        out = int(s, 2).to_bytes(len(s) // 8, "big") if s else b""
        return out + bytes(-len(out) % 8)


def compress(data: bytes, strict: bool = False) -> bytes:
    """842-compress ``data`` exactly as the kernel's ``sw842_compress`` would."""
    data = bytes(data)
    if strict and len(data) % 8:
        raise InvalidInputError(f"842 strict mode: input length {len(data)} is not a multiple of 8")
    rings = {8: _Ring(256), 4: _Ring(512), 2: _Ring(256)}
    w = _BitWriter()
    ngroups = len(data) // 8
    last = None
    repeat = 0
    for gi in range(ngroups):
        pos = gi * 8
        group = data[pos : pos + 8]
        if group == last:
            repeat += 1
        if repeat and (group != last or repeat == REPEAT_MAX):
            w.put(OP_REPEAT, 5)
            w.put(repeat - 1, 6)
            repeat = 0
            covered = group == last
        else:
            covered = group == last
        if not covered:
            if group == bytes(8):
                w.put(OP_ZEROS, 5)
            else:
                _put_template(w, group, rings)
        last = group
        rings[8].write(pos // 8 % 256, int.from_bytes(group, "big"))
        for h in range(2):
            rings[4].write((pos // 4 + h) % 512, int.from_bytes(group[4 * h : 4 * h + 4], "big"))
        for q in range(4):
            rings[2].write((pos // 2 + q) % 256, int.from_bytes(group[2 * q : 2 * q + 2], "big"))
    if repeat:
        w.put(OP_REPEAT, 5)
        w.put(repeat - 1, 6)
    tail = data[ngroups * 8 :]
    if tail:
        w.put(OP_SHORT_DATA, 5)
        w.put(len(tail), 3)
        for b in tail:
            w.put(b, 8)
    w.put(OP_END, 5)
    w.put(crc32_be(data), 32)
    return w.getvalue()


def _put_template(w: _BitWriter, group: bytes, rings: dict[int, _Ring]) -> None:
    for code in ENCODER_RANK:
        fields: list[tuple[int, int]] = []
        off = 0
        for kind, size in TEMPLATES[code]:
            value = int.from_bytes(group[off : off + size], "big")
            if kind == "D":
                fields.append((value, 8 * size))
            else:
                slot = rings[size].find(value)
                if slot is None:
                    break
                fields.append((slot, index_bits(size)))
            off += size
        else:
            w.put(code, 5)
            for value, width in fields:
                w.put(value, width)
            return
    raise AssertionError("template 0x00 (D8) always applies")


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.bits = "".join(format(b, "08b") for b in data)
        self.pos = 0
        self.op_start = 0  # where the op being decoded (or the CRC) starts: errors report it

    def get(self, width: int) -> int:
        if self.pos + width > len(self.bits):
            raise _fail(DecodeFailure.INPUT_END, f"input ran out: {width} more bits needed", self, 0)
        v = int(self.bits[self.pos : self.pos + width], 2)
        self.pos += width
        return v


def _fail(failure: DecodeFailure, what: str, r: _BitReader, produced: int) -> Sw842DecodeError:
    return Sw842DecodeError(f"842: {what} (bit {r.op_start})", failure, r.op_start, produced)


def decompress(
    data: bytes, max_out: int, check_crc: bool = True, allow_short_data: bool = True
) -> bytes:
    """Decode one 842 stream (the kernel's rules, with every action bounds-checked)."""
    r = _BitReader(bytes(data))
    out = bytearray()

    def need(n: int) -> None:
        if len(out) + n > max_out:
            raise _fail(DecodeFailure.OUTPUT_OVERFLOW, f"output would exceed {max_out}", r, len(out))

    while True:
        r.op_start = r.pos
        code = r.get(5)
        if code < len(TEMPLATES):
            for kind, size in TEMPLATES[code]:
                if kind == "D":
                    value = r.get(8 * size)
                    need(size)
                    out += value.to_bytes(size, "big")
                    continue
                k = r.get(index_bits(size))
                need(size)
                fifo = {2: I2_FIFO, 4: I4_FIFO, 8: I8_FIFO}[size]
                # t: the output length at this action rounded down to 8 (the kernel's
                # __do_index); it differs from the op's start only after a mid-stream SHORT_DATA.
                t = len(out) // 8 * 8
                # The most recent position p < t with p == k*size (mod fifo).
                p = k * size
                if t > fifo:
                    p += (t - 1 - p) // fifo * fifo if p < t else 0
                if p + size > t:
                    raise _fail(DecodeFailure.INDEX_PAST_END, f"I{size} index {k}", r, len(out))
                out += out[p : p + size]
        elif code == OP_REPEAT:
            n = r.get(6) + 1
            if len(out) < 8:
                raise _fail(DecodeFailure.REPEAT_EARLY, "REPEAT before a group", r, len(out))
            need(8 * n)
            out += out[-8:] * n
        elif code == OP_ZEROS:
            need(8)
            out += bytes(8)
        elif code == OP_SHORT_DATA:
            if not allow_short_data:
                raise _fail(DecodeFailure.SHORT_DATA_FORBIDDEN, "SHORT_DATA", r, len(out))
            n = r.get(3)
            if n == 0:
                raise _fail(DecodeFailure.SHORT_DATA_ZERO, "SHORT_DATA n=0", r, len(out))
            for _ in range(n):
                b = r.get(8)
                need(1)
                out.append(b)
        elif code == OP_END:
            break
        else:
            raise _fail(DecodeFailure.BAD_OP, f"bad op {code:#04x}", r, len(out))
    if check_crc:
        r.op_start = r.pos
        want = r.get(32)
        got = crc32_be(out)
        if want != got:
            raise _fail(DecodeFailure.CRC_MISMATCH, f"CRC {want:#x} != {got:#x}", r, len(out))
    return bytes(out)


__all__ = ["compress", "crc32_be", "decompress", "lookup_of"]
