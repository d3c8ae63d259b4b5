"""Compiled (numba) hot loops of the 842 codec. Use them through :mod:`.codec`.

Encoder data structure (why it is faster than the kernel's and still byte-exact):

The kernel keeps, per ring, a hash table whose buckets are linked lists of ring slots; a slot
is removed and re-inserted at the bucket head whenever it is rewritten, and a lookup returns the
first slot in the bucket holding the value -- the most recently written live slot with that
value (842.md §3.3). We keep exactly that invariant, with cheaper parts:

* one doubly linked list per bucket, so unlinking a rewritten slot is O(1) (no bucket walk);
* 2-byte values index a 65536-entry head table directly, so a bucket holds one value only and
  the I2 lookup is a single load (no comparisons);
* 8- and 4-byte values hash into 2048 / 4096 buckets (8 per live slot), so chains are short;
* the lookups are done once per group and turned into a 7-bit "found" mask; a 128-entry table
  (``BEST_TEMPLATE``) gives the template the kernel's rank-order search would pick;
* state is reset by clearing only the buckets that live slots used, not the whole table;
* bits go through a 64-bit accumulator flushed 32 bits at a time, and the CRC is computed in
  the same pass, 8 bytes per step (slicing-by-8).

All slots of all three rings share one id space: I8 slots are ids 0-255, I4 slots 256-767 and
I2 slots 768-1023; ``heads`` holds the I8 buckets, then the I4 buckets, then the I2 table.

The state arrays are module-level and reused; the functions hold the GIL (no ``nogil``), so two
threads cannot interleave on them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hwzswap.backends.sw842.format import (
    BEST_TEMPLATE,
    CRC_TABLES,
    T_BITS,
    T_IS_INDEX,
    T_LOOKUP,
    T_NACT,
    T_OFFSET,
    T_SIZE,
)

# -- shared-id layout of the encoder's rings --------------------------------------------------
BASE8, BASE4, BASE2 = 0, 256, 768
N_IDS = 1024
H8_BITS, H4_BITS = 11, 12
HEAD8, HEAD4, HEAD2 = 0, 1 << H8_BITS, (1 << H8_BITS) + (1 << H4_BITS)
N_HEADS = HEAD2 + 65536

_MUL = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: Fibonacci hashing
_SH8 = np.uint64(64 - H8_BITS)
_SH4 = np.uint64(64 - H4_BITS)
_U8, _U16, _U24, _U32 = np.uint64(8), np.uint64(16), np.uint64(24), np.uint64(32)
_U40, _U48, _U56 = np.uint64(40), np.uint64(48), np.uint64(56)
_M8, _M16, _M32 = np.uint64(0xFF), np.uint64(0xFFFF), np.uint64(0xFFFFFFFF)
_ZERO = np.uint64(0)

_CRC = CRC_TABLES.astype(np.uint64)
_BEST = BEST_TEMPLATE.copy()
_NACT, _ISIDX, _SIZE, _OFF, _BITS, _LOOK = T_NACT, T_IS_INDEX, T_SIZE, T_OFFSET, T_BITS, T_LOOKUP

# -- decoder status codes (turned into messages by codec.py) -----------------------------------
OK = 0
E_BAD_OP = 1  # detail: the op code
E_SHORT_ZERO = 2  # SHORT_DATA with n = 0
E_REPEAT_EARLY = 3  # detail: bytes produced so far
E_INDEX = 4  # detail: the index value; detail2: the action size
E_NOSPC = 5  # detail: bytes the action needed past max_out
E_INPUT_END = 6  # detail: bits the field needed
E_CRC = 7  # detail: CRC in the stream; detail2: CRC of the output
E_SHORT_FORBIDDEN = 8  # SHORT_DATA when allow_short is False
E_NO_PADDING = 9  # detail: item length; detail2: the padded stream length


@njit(cache=True)
def padded_end(bit):
    """Length of a stream ending at ``bit``, padded to 8 bytes as every 842 producer does."""
    return (((bit + 7) >> 3) + 7) & ~7


def new_state() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh encoder state: slot values, next links, prev links, bucket heads (all empty)."""
    return (
        np.zeros(N_IDS, np.uint64),
        np.full(N_IDS, -1, np.int32),
        np.full(N_IDS, -1, np.int32),
        np.full(N_HEADS, -1, np.int32),
    )


# -- small helpers (LLVM inlines them) ----------------------------------------------------------


@njit(cache=True)
def _be64(src, p):
    return (
        (np.uint64(src[p]) << _U56)
        | (np.uint64(src[p + 1]) << _U48)
        | (np.uint64(src[p + 2]) << _U40)
        | (np.uint64(src[p + 3]) << _U32)
        | (np.uint64(src[p + 4]) << _U24)
        | (np.uint64(src[p + 5]) << _U16)
        | (np.uint64(src[p + 6]) << _U8)
        | np.uint64(src[p + 7])
    )


@njit(cache=True)
def _crc_step8(crc, g):
    """Advance crc32_be over the 8 bytes of the big-endian value g (slicing-by-8)."""
    hi = (g >> _U32) ^ crc
    lo = g & _M32
    return (
        _CRC[7, hi >> _U24]
        ^ _CRC[6, (hi >> _U16) & _M8]
        ^ _CRC[5, (hi >> _U8) & _M8]
        ^ _CRC[4, hi & _M8]
        ^ _CRC[3, lo >> _U24]
        ^ _CRC[2, (lo >> _U16) & _M8]
        ^ _CRC[1, (lo >> _U8) & _M8]
        ^ _CRC[0, lo & _M8]
    )


@njit(cache=True)
def _crc_step1(crc, b):
    return ((crc << _U8) & _M32) ^ _CRC[0, ((crc >> _U24) ^ np.uint64(b)) & _M8]


@njit(cache=True)
def crc32_be_array(src, n):
    """crc32_be(0, src[:n]) -- poly 0x04C11DB7, MSB-first, no final xor."""
    crc = _ZERO
    p = 0
    while p + 8 <= n:
        crc = _crc_step8(crc, _be64(src, p))
        p += 8
    while p < n:
        crc = _crc_step1(crc, src[p])
        p += 1
    return crc


@njit(cache=True)
def _bucket8(v):
    return HEAD8 + np.int64((v * _MUL) >> _SH8)


@njit(cache=True)
def _bucket4(v):
    return HEAD4 + np.int64((v * _MUL) >> _SH4)


@njit(cache=True)
def _find(vals, nxt, heads, b, v):
    """Most recently written live slot holding v in bucket b, or -1."""
    s = heads[b]
    while s >= 0:
        if vals[s] == v:
            return s
        s = nxt[s]
    return -1


@njit(cache=True)
def _write_slot(vals, nxt, prv, heads, s, old_b, new_b, v, live):
    """(Re)write slot s with v: unlink it from old_b if live, push it on the head of new_b."""
    if live:
        p = prv[s]
        n = nxt[s]
        if p >= 0:
            nxt[p] = n
        else:
            heads[old_b] = n
        if n >= 0:
            prv[n] = p
    vals[s] = v
    h = heads[new_b]
    nxt[s] = h
    prv[s] = -1
    if h >= 0:
        prv[h] = s
    heads[new_b] = s


@njit(cache=True)
def _put(out, op, acc, nb, v, n):
    """Append the low n (<= 32) bits of v; flush 32 bits when 32 or more are pending."""
    acc = (acc << np.uint64(n)) | v
    nb += n
    if nb >= 32:
        nb -= 32
        w = acc >> np.uint64(nb)
        out[op] = np.uint8((w >> _U24) & _M8)
        out[op + 1] = np.uint8((w >> _U16) & _M8)
        out[op + 2] = np.uint8((w >> _U8) & _M8)
        out[op + 3] = np.uint8(w & _M8)
        op += 4
    return op, acc, nb


@njit(cache=True)
def _reset(vals, heads, done_groups):
    """Empty the tables again by clearing the buckets of every slot written so far."""
    n8 = min(done_groups, 256)
    for s in range(n8):
        heads[_bucket8(vals[BASE8 + s])] = -1
    n4 = min(2 * done_groups, 512)
    for s in range(n4):
        heads[_bucket4(vals[BASE4 + s])] = -1
    n2 = min(4 * done_groups, 256)
    for s in range(n2):
        heads[HEAD2 + np.int64(vals[BASE2 + s])] = -1


# -- compressor ---------------------------------------------------------------------------------


@njit(cache=True)
def compress_into(src, n, out, limit, vals, nxt, prv, heads):
    """Compress src[:n] into out; return the stream length.

    Returns -1 (and stops early) when ``limit > 0`` and the stream reaches ``limit`` bytes.
    ``out`` must hold ``format.max_compressed_size(n) + 8`` bytes (the writer stores 4 bytes at
    a time). A 1-7 byte tail is coded as SHORT_DATA; strict mode is enforced by the caller.
    """
    ngroups = n >> 3
    op = 0
    acc = _ZERO
    nb = 0
    crc = _ZERO
    repeat = 0
    last = _ZERO
    if ngroups > 0:
        last = ~_be64(src, 0)
    idx = np.empty(7, np.int64)
    done = 0
    aborted = False
    for gi in range(ngroups):
        p = gi << 3
        g = _be64(src, p)
        crc = _crc_step8(crc, g)
        emit = True
        if g == last:
            repeat += 1
            if repeat < 64:
                emit = False
        if emit:
            if repeat > 0:
                op, acc, nb = _put(out, op, acc, nb, np.uint64(0x1B), 5)
                op, acc, nb = _put(out, op, acc, nb, np.uint64(repeat - 1), 6)
                if g == last:
                    emit = False
                repeat = 0
        if emit:
            if g == _ZERO:
                op, acc, nb = _put(out, op, acc, nb, np.uint64(0x1C), 5)
            else:
                s8 = _find(vals, nxt, heads, _bucket8(g), g)
                if s8 >= 0:
                    op, acc, nb = _put(out, op, acc, nb, np.uint64((0x19 << 8) | s8), 13)
                else:
                    h0 = g >> _U32
                    h1 = g & _M32
                    mask = 0
                    s = _find(vals, nxt, heads, _bucket4(h0), h0)
                    if s >= 0:
                        idx[1] = s - BASE4
                        mask |= 2
                    s = _find(vals, nxt, heads, _bucket4(h1), h1)
                    if s >= 0:
                        idx[2] = s - BASE4
                        mask |= 4
                    s = heads[HEAD2 + np.int64(g >> _U48)]
                    if s >= 0:
                        idx[3] = s - BASE2
                        mask |= 8
                    s = heads[HEAD2 + np.int64((g >> _U32) & _M16)]
                    if s >= 0:
                        idx[4] = s - BASE2
                        mask |= 16
                    s = heads[HEAD2 + np.int64((g >> _U16) & _M16)]
                    if s >= 0:
                        idx[5] = s - BASE2
                        mask |= 32
                    s = heads[HEAD2 + np.int64(g & _M16)]
                    if s >= 0:
                        idx[6] = s - BASE2
                        mask |= 64
                    code = _BEST[mask]
                    op, acc, nb = _put(out, op, acc, nb, np.uint64(code), 5)
                    for a in range(_NACT[code]):
                        if _ISIDX[code, a]:
                            op, acc, nb = _put(
                                out, op, acc, nb, np.uint64(idx[_LOOK[code, a]]), _BITS[code, a]
                            )
                        else:
                            sz = _SIZE[code, a]
                            if sz == 8:
                                op, acc, nb = _put(out, op, acc, nb, g >> _U32, 32)
                                op, acc, nb = _put(out, op, acc, nb, g & _M32, 32)
                            else:
                                sh = np.uint64(64 - 8 * (_OFF[code, a] + sz))
                                m = _M16 if sz == 2 else _M32
                                op, acc, nb = _put(out, op, acc, nb, (g >> sh) & m, 8 * sz)
        last = g
        # Update the rings at this group's position: I8, I4 (two halves), I2 (four quarters).
        s = BASE8 + (gi & 255)
        ob = _bucket8(vals[s])
        _write_slot(vals, nxt, prv, heads, s, ob, _bucket8(g), g, gi >= 256)
        live4 = gi >= 256
        s = BASE4 + ((gi << 1) & 511)
        h0 = g >> _U32
        ob = _bucket4(vals[s])
        _write_slot(vals, nxt, prv, heads, s, ob, _bucket4(h0), h0, live4)
        s += 1
        h1 = g & _M32
        ob = _bucket4(vals[s])
        _write_slot(vals, nxt, prv, heads, s, ob, _bucket4(h1), h1, live4)
        live2 = gi >= 64
        s = BASE2 + ((gi << 2) & 255)
        for q in range(4):
            v = (g >> np.uint64(48 - 16 * q)) & _M16
            ob = HEAD2 + np.int64(vals[s + q])
            _write_slot(vals, nxt, prv, heads, s + q, ob, HEAD2 + np.int64(v), v, live2)
        done = gi + 1
        if limit > 0 and op >= limit:
            aborted = True
            break
    _reset(vals, heads, done)
    if aborted:
        return -1
    if repeat > 0:
        op, acc, nb = _put(out, op, acc, nb, np.uint64(0x1B), 5)
        op, acc, nb = _put(out, op, acc, nb, np.uint64(repeat - 1), 6)
    tail = n & 7
    if tail:
        op, acc, nb = _put(out, op, acc, nb, np.uint64(0x1D), 5)
        op, acc, nb = _put(out, op, acc, nb, np.uint64(tail), 3)
        for p in range(n - tail, n):
            b = src[p]
            crc = _crc_step1(crc, b)
            op, acc, nb = _put(out, op, acc, nb, np.uint64(b), 8)
    op, acc, nb = _put(out, op, acc, nb, np.uint64(0x1E), 5)
    op, acc, nb = _put(out, op, acc, nb, crc, 32)
    while nb >= 8:
        nb -= 8
        out[op] = np.uint8((acc >> np.uint64(nb)) & _M8)
        op += 1
    if nb > 0:
        out[op] = np.uint8((acc << np.uint64(8 - nb)) & _M8)
        op += 1
    while op & 7:
        out[op] = 0
        op += 1
    if limit > 0 and op >= limit:
        return -1
    return op


@njit(cache=True)
def compress_pages(pages, out, lens, limit, vals, nxt, prv, heads):
    """Compress each row of ``pages`` into the same row of ``out``; lens[i] = length or -1."""
    for i in range(pages.shape[0]):
        lens[i] = compress_into(
            pages[i], pages.shape[1], out[i], limit, vals, nxt, prv, heads
        )


# -- decompressor -------------------------------------------------------------------------------


@njit(cache=True)
def decompress_into(src, n_in, out, max_out, check_crc, allow_short):
    """Decode one stream from src[:n_in] into out[:max_out].

    Returns (status, produced, detail, detail2, bit position). ``status`` is ``OK`` or an
    ``E_*`` code; ``produced`` is the output length on success.
    """
    ip = 0
    bb = _ZERO  # bit buffer, MSB-aligned
    bc = 0  # valid bits in bb
    op = 0
    while True:
        # -- op code
        while bc <= 56 and ip < n_in:
            bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
            ip += 1
            bc += 8
        if bc < 5:
            return E_INPUT_END, op, 5, 0, ip * 8 - bc
        code = np.int64(bb >> np.uint64(59))
        bb <<= np.uint64(5)
        bc -= 5
        if code < 0x1A:
            t = op & ~7
            for a in range(_NACT[code]):
                sz = _SIZE[code, a]
                nbits = _BITS[code, a]
                if nbits > 32:  # D8: two 32-bit halves
                    while bc <= 56 and ip < n_in:
                        bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                        ip += 1
                        bc += 8
                    if bc < 32:
                        return E_INPUT_END, op, 64, 0, ip * 8 - bc
                    hi = bb >> _U32
                    bb <<= _U32
                    bc -= 32
                    while bc <= 56 and ip < n_in:
                        bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                        ip += 1
                        bc += 8
                    if bc < 32:
                        return E_INPUT_END, op, 64, 0, ip * 8 - bc
                    v = (hi << _U32) | (bb >> _U32)
                    bb <<= _U32
                    bc -= 32
                else:
                    while bc <= 56 and ip < n_in:
                        bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                        ip += 1
                        bc += 8
                    if bc < nbits:
                        return E_INPUT_END, op, nbits, 0, ip * 8 - bc
                    v = bb >> np.uint64(64 - nbits)
                    bb <<= np.uint64(nbits)
                    bc -= nbits
                if op + sz > max_out:
                    return E_NOSPC, op, op + sz - max_out, 0, ip * 8 - bc
                if _ISIDX[code, a]:
                    fifo = 512 if sz == 2 else 2048
                    off = np.int64(v) * sz
                    if t > fifo:
                        base = t - t % fifo
                        if off >= t - base:
                            base -= fifo
                        off += base
                    if off + sz > t:
                        return E_INDEX, op, np.int64(v), sz, ip * 8 - bc
                    for j in range(sz):
                        out[op + j] = out[off + j]
                else:
                    for j in range(sz):
                        out[op + j] = np.uint8((v >> np.uint64(8 * (sz - 1 - j))) & _M8)
                op += sz
        elif code == 0x1B:  # REPEAT
            while bc <= 56 and ip < n_in:
                bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                ip += 1
                bc += 8
            if bc < 6:
                return E_INPUT_END, op, 6, 0, ip * 8 - bc
            count = np.int64(bb >> np.uint64(58)) + 1
            bb <<= np.uint64(6)
            bc -= 6
            if op < 8:
                return E_REPEAT_EARLY, op, op, 0, ip * 8 - bc
            if op + 8 * count > max_out:
                return E_NOSPC, op, op + 8 * count - max_out, 0, ip * 8 - bc
            for _ in range(count):
                for j in range(8):
                    out[op + j] = out[op - 8 + j]
                op += 8
        elif code == 0x1C:  # ZEROS
            if op + 8 > max_out:
                return E_NOSPC, op, op + 8 - max_out, 0, ip * 8 - bc
            for j in range(8):
                out[op + j] = 0
            op += 8
        elif code == 0x1D:  # SHORT_DATA
            if not allow_short:
                return E_SHORT_FORBIDDEN, op, 0, 0, ip * 8 - bc - 5
            while bc <= 56 and ip < n_in:
                bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                ip += 1
                bc += 8
            if bc < 3:
                return E_INPUT_END, op, 3, 0, ip * 8 - bc
            count = np.int64(bb >> np.uint64(61))
            bb <<= np.uint64(3)
            bc -= 3
            if count == 0:
                return E_SHORT_ZERO, op, 0, 0, ip * 8 - bc
            for _ in range(count):
                while bc <= 56 and ip < n_in:
                    bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                    ip += 1
                    bc += 8
                if bc < 8:
                    return E_INPUT_END, op, 8, 0, ip * 8 - bc
                if op + 1 > max_out:
                    return E_NOSPC, op, 1, 0, ip * 8 - bc
                out[op] = np.uint8(bb >> _U56)
                bb <<= _U8
                bc -= 8
                op += 1
        elif code == 0x1E:  # END
            break
        else:  # 0x1A, 0x1F
            return E_BAD_OP, op, code, 0, ip * 8 - bc - 5
    if check_crc:
        while bc <= 56 and ip < n_in:
            bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
            ip += 1
            bc += 8
        if bc < 32:
            return E_INPUT_END, op, 32, 0, ip * 8 - bc
        want = bb >> _U32
        bb <<= _U32
        bc -= 32
        got = crc32_be_array(out, op)
        if want != got:
            return E_CRC, op, np.int64(want), np.int64(got), ip * 8 - bc
    return OK, op, 0, 0, ip * 8 - bc


@njit(cache=True)
def decompress_pages(src, starts, out, check_crc, allow_short):
    """Decode item i = src[starts[i]:starts[i+1]] into out[i] (which it must fill exactly).

    Each item must also hold the stream's padding (see :func:`padded_end`).
    Returns (first bad item or -1, status, produced, detail, detail2, bit position).
    """
    width = out.shape[1]
    for i in range(out.shape[0]):
        a = starts[i]
        st, produced, d1, d2, bp = decompress_into(
            src[a:], starts[i + 1] - a, out[i], width, check_crc, allow_short
        )
        if st != OK or produced != width:
            return i, st, produced, d1, d2, bp
        if starts[i + 1] - a < padded_end(bp):
            return i, E_NO_PADDING, produced, starts[i + 1] - a, padded_end(bp), bp
    return -1, OK, 0, 0, 0, 0
