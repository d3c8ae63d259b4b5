"""Compiled (numba) hot loops of the 842 codec. Use them through :mod:`.codec`.

Encoder data structure (why it is faster than the kernel's and still byte-exact):

The kernel keeps, per ring, a hash table whose buckets are linked lists of ring slots; a slot
is unlinked and re-inserted at its bucket's head whenever it is rewritten, and a lookup returns
the first slot in the bucket holding the value: the most recently written live slot with that
value (842.md §3.3). We return the same slot without ever unlinking anything:

* every ring write is an *event* with a number that only grows (the ring position plus a
  per-call base), and the event is stored at its slot (event number mod slots);
* a bucket is a singly linked list of events, newest first; a write pushes a new event;
* an event is live while its slot has not been rewritten, i.e. while it is one of the last
  ``slots`` events of this call -- a number test, so expired events need no removal and the
  first live match on the list *is* the most recently written slot holding the value; the
  walk stops at the first expired event (everything after it is older);
* 2-byte values index a 65536-entry head table directly: the head event of a value, if live,
  is the answer, and if it has expired so have all older writes of that value (slots are
  rewritten in write order), so I2 writes and lookups are one store or one load, no chains;
* 8- and 4-byte values hash (Fibonacci hashing) into 2048 / 4096 buckets, so chains are short;
* a new call just starts at a higher event number: nothing is cleared between pages;
* the 7 lookups are done once per group and form a 7-bit "found" mask; a 128-entry table
  (``BEST_TEMPLATE``) gives the template the kernel's rank-order search picks;
* bits go through a 64-bit accumulator flushed 32 bits at a time, and the CRC is computed in
  the same pass, 8 bytes per step (slicing-by-8).

The encoder state is one byte buffer owned by the caller (:mod:`.codec` keeps one per thread)
and reused from call to call.

Decoder: a 64-bit bit buffer refilled with one big-endian load; aligned actions store whole
words through uint64/32/16 views of the output; the common templates are assembled in a register
and stored as one word; the CRC of finished groups is folded in as decoding goes. Every action
is checked against ``max_out`` (the kernel checks only literals, ZEROS and REPEAT).

numba does not inline a jitted helper that takes an array (the call costs more than the work
here), so array-touching code is written out in place; scalar helpers are inlined by LLVM.
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

# -- encoder state layout ---------------------------------------------------------------------
# vals/nxt: I8 slots at 0-255, I4 slots at 256-767. heads: I8 buckets, I4 buckets, I2 values.
BASE8, BASE4 = 0, 256
N_SLOTS = 768
H8_BITS, H4_BITS = 11, 12
HEAD8, HEAD4, HEAD2 = 0, 1 << H8_BITS, (1 << H8_BITS) + (1 << H4_BITS)
N_HEADS = HEAD2 + 65536
EVENT_LIMIT = 1 << 30  # rebase event numbers (and clear the heads) past this

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
_ARGBITS = T_BITS.sum(axis=1)  # bits of a template's fields (without the 5-bit code)
_SZMASK = np.array([0, 0, 0xFFFF, 0, 0xFFFFFFFF], np.uint64)  # by action size 2 / 4

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


# The whole encoder state lives in one byte buffer (fewer arguments, no allocation per call);
# the compiled code takes typed views of it. Offsets in bytes, all 8-aligned.
_OFF_VALS = 0  # uint64[N_SLOTS]: value of each I8/I4 slot
_OFF_CTR = _OFF_VALS + 8 * N_SLOTS  # int64[1]: event base of the next call
_OFF_FV = _OFF_CTR + 8  # uint64[16]: scratch, field values
_OFF_FW = _OFF_FV + 8 * 16  # int64[16]: scratch, field widths
_OFF_IDX = _OFF_FW + 8 * 16  # int64[8]: scratch, lookup results
_OFF_NXT = _OFF_IDX + 8 * 8  # int32[N_SLOTS]: chain links (event numbers)
_OFF_HEADS = _OFF_NXT + 4 * N_SLOTS  # int32[N_HEADS]: newest event per bucket / I2 value
STATE_BYTES = _OFF_HEADS + 4 * N_HEADS


def new_state() -> np.ndarray:
    """A fresh encoder state (every bucket empty)."""
    state = np.zeros(STATE_BYTES, np.uint8)
    state[_OFF_NXT:].view(np.int32)[:] = -1
    return state


# -- scalar helpers (LLVM inlines these) ------------------------------------------------------


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
        g = (
            (np.uint64(src[p]) << _U56) | (np.uint64(src[p + 1]) << _U48)
            | (np.uint64(src[p + 2]) << _U40) | (np.uint64(src[p + 3]) << _U32)
            | (np.uint64(src[p + 4]) << _U24) | (np.uint64(src[p + 5]) << _U16)
            | (np.uint64(src[p + 6]) << _U8) | np.uint64(src[p + 7])
        )
        crc = _crc_step8(crc, g)
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


# -- compressor ---------------------------------------------------------------------------------


@njit(cache=True)
def _flush_fields(out, op, acc, nb, fv, fw, nf):
    """Append fields fv[:nf] (widths fw, each <= 32 bits) to the stream; used off the hot path."""
    for k in range(nf):
        acc = (acc << np.uint64(fw[k])) | fv[k]
        nb += fw[k]
        if nb >= 32:
            nb -= 32
            w32 = acc >> np.uint64(nb)
            out[op] = np.uint8((w32 >> _U24) & _M8)
            out[op + 1] = np.uint8((w32 >> _U16) & _M8)
            out[op + 2] = np.uint8((w32 >> _U8) & _M8)
            out[op + 3] = np.uint8(w32 & _M8)
            op += 4
    return op, acc, nb


@njit(cache=True)
def compress_into(src, n, out, limit, state):
    """Compress src[:n] into out; return the stream length.

    Returns -1 (and stops early) when ``limit > 0`` and the stream reaches ``limit`` bytes.
    ``out`` must hold ``format.max_compressed_size(n) + 8`` bytes (the writer stores 4 bytes at
    a time). A 1-7 byte tail is coded as SHORT_DATA; strict mode is enforced by the caller.

    The loop body is written out by hand: a call to a jitted helper that takes arrays is not
    inlined by numba and costs more than the work it does here.
    """
    vals = state[_OFF_VALS:_OFF_CTR].view(np.uint64)
    ctr = state[_OFF_CTR:_OFF_FV].view(np.int64)
    fv = state[_OFF_FV:_OFF_FW].view(np.uint64)  # fields to write (each <= 32 bits): values
    fw = state[_OFF_FW:_OFF_IDX].view(np.int64)  # ... and widths
    idx = state[_OFF_IDX:_OFF_NXT].view(np.int64)  # slot found by each of the 7 lookups
    nxt = state[_OFF_NXT:_OFF_HEADS].view(np.int32)
    heads = state[_OFF_HEADS:].view(np.int32)
    ngroups = n >> 3
    # Event numbers of this call start at ``base`` (a multiple of 1024, above every event of
    # earlier calls): the I8 write of group gi is base + gi, the I4 writes base + 2gi + h,
    # the I2 writes base + 4gi + q; the slot is the event number mod the ring's slot count.
    base = ctr[0]
    nxt_base = base + ((4 * ngroups + 1024) & ~1023)
    if nxt_base >= EVENT_LIMIT:
        heads[:] = -1
        base = 0
        nxt_base = (4 * ngroups + 1024) & ~1023
    ctr[0] = nxt_base
    op = 0
    acc = _ZERO  # bit accumulator; its low nb bits are pending output
    nb = 0
    crc = _ZERO
    repeat = 0
    last = _ZERO
    if ngroups > 0:
        last = ~(
            (np.uint64(src[0]) << _U56) | (np.uint64(src[1]) << _U48)
            | (np.uint64(src[2]) << _U40) | (np.uint64(src[3]) << _U32)
            | (np.uint64(src[4]) << _U24) | (np.uint64(src[5]) << _U16)
            | (np.uint64(src[6]) << _U8) | np.uint64(src[7])
        )
    done = 0
    for gi in range(ngroups):
        p = gi << 3
        g = (
            (np.uint64(src[p]) << _U56) | (np.uint64(src[p + 1]) << _U48)
            | (np.uint64(src[p + 2]) << _U40) | (np.uint64(src[p + 3]) << _U32)
            | (np.uint64(src[p + 4]) << _U24) | (np.uint64(src[p + 5]) << _U16)
            | (np.uint64(src[p + 6]) << _U8) | np.uint64(src[p + 7])
        )
        crc = _crc_step8(crc, g)
        nf = 0
        if g == last:
            repeat += 1
            if repeat == 64:  # a full REPEAT covers this group too
                fv[0] = np.uint64((0x1B << 6) | 63)
                fw[0] = 11
                nf = 1
                repeat = 0
        else:
            if repeat > 0:
                fv[0] = np.uint64((0x1B << 6) | (repeat - 1))
                fw[0] = 11
                nf = 1
                repeat = 0
            if g == _ZERO:
                fv[nf] = np.uint64(0x1C)
                fw[nf] = 5
                nf += 1
            else:
                # Oldest live event of each ring (the current group is not written yet).
                lo8 = base + max(gi - 256, 0)
                e = heads[_bucket8(g)]
                while e >= lo8 and vals[BASE8 + (e & 255)] != g:
                    e = nxt[BASE8 + (e & 255)]
                if e >= lo8:  # template 0x19 (I8) ranks first
                    fv[nf] = np.uint64((0x19 << 8) | (e & 255))
                    fw[nf] = 13
                    nf += 1
                else:
                    mask = 0
                    lo4 = base + max(2 * gi - 512, 0)
                    h = g >> _U32
                    e = heads[_bucket4(h)]
                    while e >= lo4 and vals[BASE4 + (e & 511)] != h:
                        e = nxt[BASE4 + (e & 511)]
                    if e >= lo4:
                        idx[1] = e & 511
                        mask |= 2
                    h = g & _M32
                    e = heads[_bucket4(h)]
                    while e >= lo4 and vals[BASE4 + (e & 511)] != h:
                        e = nxt[BASE4 + (e & 511)]
                    if e >= lo4:
                        idx[2] = e & 511
                        mask |= 4
                    lo2 = base + max(4 * gi - 256, 0)
                    for q in range(4):
                        e = heads[HEAD2 + np.int64((g >> np.uint64(48 - 16 * q)) & _M16)]
                        if e >= lo2:
                            idx[3 + q] = e & 255
                            mask |= 8 << q
                    code = _BEST[mask]
                    if code == 0:  # D8: the code, then the group as two 32-bit fields
                        fv[nf] = np.uint64(0)
                        fw[nf] = 5
                        fv[nf + 1] = g >> _U32
                        fw[nf + 1] = 32
                        fv[nf + 2] = g & _M32
                        fw[nf + 2] = 32
                        nf += 3
                    else:
                        # The whole op fits in one 64-bit word (at most 5 + 56 bits): pack
                        # it, then queue it as at most two fields of <= 32 bits.
                        wv = np.uint64(code)
                        ww = 5
                        for a in range(_NACT[code]):
                            fb = _BITS[code, a]
                            if _ISIDX[code, a]:
                                f = np.uint64(idx[_LOOK[code, a]])
                            else:
                                sh = np.uint64(64 - 8 * _OFF[code, a] - fb)
                                f = (g >> sh) & _SZMASK[_SIZE[code, a]]
                            wv = (wv << np.uint64(fb)) | f
                            ww += fb
                        if ww > 32:
                            fv[nf] = wv >> _U32
                            fw[nf] = ww - 32
                            fv[nf + 1] = wv & _M32
                            fw[nf + 1] = 32
                            nf += 2
                        else:
                            fv[nf] = wv
                            fw[nf] = ww
                            nf += 1
        for k in range(nf):
            acc = (acc << np.uint64(fw[k])) | fv[k]
            nb += fw[k]
            if nb >= 32:
                nb -= 32
                w32 = acc >> np.uint64(nb)
                out[op] = np.uint8((w32 >> _U24) & _M8)
                out[op + 1] = np.uint8((w32 >> _U16) & _M8)
                out[op + 2] = np.uint8((w32 >> _U8) & _M8)
                out[op + 3] = np.uint8(w32 & _M8)
                op += 4
        last = g
        # Write this group into the rings at its position (842.md §3.4) in the kernel's order
        # (I8, the two I4 halves, the four I2 quarters): push one event per write.
        e = base + gi
        s = BASE8 + (gi & 255)
        b = _bucket8(g)
        vals[s] = g
        nxt[s] = heads[b]
        heads[b] = e
        e = base + 2 * gi
        s = BASE4 + ((2 * gi) & 511)
        h = g >> _U32
        b = _bucket4(h)
        vals[s] = h
        nxt[s] = heads[b]
        heads[b] = e
        h = g & _M32
        b = _bucket4(h)
        vals[s + 1] = h
        nxt[s + 1] = heads[b]
        heads[b] = e + 1
        e = base + 4 * gi
        heads[HEAD2 + np.int64(g >> _U48)] = e
        heads[HEAD2 + np.int64((g >> _U32) & _M16)] = e + 1
        heads[HEAD2 + np.int64((g >> _U16) & _M16)] = e + 2
        heads[HEAD2 + np.int64(g & _M16)] = e + 3
        done = gi + 1
        if limit > 0 and op >= limit:
            break
    if done < ngroups:
        return -1
    # The last REPEAT, the SHORT_DATA tail, END and the CRC (off the hot path).
    nf = 0
    if repeat > 0:
        fv[0] = np.uint64((0x1B << 6) | (repeat - 1))
        fw[0] = 11
        nf = 1
    tail = n & 7
    if tail:
        fv[nf] = np.uint64((0x1D << 3) | tail)
        fw[nf] = 8
        nf += 1
        for k in range(n - tail, n):
            crc = _crc_step1(crc, src[k])
            fv[nf] = np.uint64(src[k])
            fw[nf] = 8
            nf += 1
    fv[nf] = np.uint64(0x1E)
    fw[nf] = 5
    fv[nf + 1] = crc
    fw[nf + 1] = 32
    op, acc, nb = _flush_fields(out, op, acc, nb, fv, fw, nf + 2)
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
def compress_pages(pages, out, lens, limit, state):
    """Compress each row of ``pages`` into the same row of ``out``; lens[i] = length or -1."""
    for i in range(pages.shape[0]):
        lens[i] = compress_into(
            pages[i], pages.shape[1], out[i], limit, state
        )


# -- decompressor -------------------------------------------------------------------------------


@njit(cache=True)
def _bswap64(v):
    return (
        ((v & _M8) << _U56) | (((v >> _U8) & _M8) << _U48)
        | (((v >> _U16) & _M8) << _U40) | (((v >> _U24) & _M8) << _U32)
        | (((v >> _U32) & _M8) << _U24) | (((v >> _U40) & _M8) << _U16)
        | (((v >> _U48) & _M8) << _U8) | (v >> _U56)
    )


@njit(cache=True)
def _bswap32(v):
    return (
        ((v & _M8) << _U24) | (((v >> _U8) & _M8) << _U16)
        | (((v >> _U16) & _M8) << _U8) | ((v >> _U24) & _M8)
    )


@njit(cache=True)
def decompress_into(src, n_in, out, max_out, check_crc, allow_short):
    """Decode one stream from src[:n_in] into out[:max_out].

    Returns (status, produced, detail, detail2, bit). ``status`` is ``OK`` or an ``E_*`` code;
    ``produced`` is the output length so far. ``bit`` is, on error, where the failing op (or the
    CRC) starts, and on success where the stream ends.

    Bits are read from a 64-bit MSB-aligned buffer; the refill is written out at each use
    because numba does not inline a helper that takes an array (the call would cost more than
    the refill). After a fast refill the buffer's bits below ``bc`` may already hold the next
    input bits; later refills OR the same bits in again.
    """
    ip = 0
    bb = _ZERO  # bit buffer, MSB-aligned
    bc = 0  # valid bits in bb
    op = 0
    # Word views of the output for aligned actions (the host is little-endian, so literals
    # are byte-swapped into them); each covers only whole words inside max_out.
    o64 = out[: max_out & ~7].view(np.uint64)
    o32 = out[: max_out & ~3].view(np.uint32)
    o16 = out[: max_out & ~1].view(np.uint16)
    crc = _ZERO  # CRC of out[:cp], kept up to date as groups complete (it overlaps decoding)
    cp = 0
    while True:
        if check_crc:
            while cp + 8 <= op:
                crc = _crc_step8(crc, _bswap64(o64[cp >> 3]))
                cp += 8
        opbit = ip * 8 - bc
        if bc < 32:
            if ip + 8 <= n_in:  # refill: one big-endian 64-bit load, whole bytes consumed
                bb |= (
                    (np.uint64(src[ip]) << _U56) | (np.uint64(src[ip + 1]) << _U48)
                    | (np.uint64(src[ip + 2]) << _U40) | (np.uint64(src[ip + 3]) << _U32)
                    | (np.uint64(src[ip + 4]) << _U24) | (np.uint64(src[ip + 5]) << _U16)
                    | (np.uint64(src[ip + 6]) << _U8) | np.uint64(src[ip + 7])
                ) >> np.uint64(bc)
                ip += (63 - bc) >> 3
                bc |= 56
            else:  # the last bytes, one at a time
                while bc <= 56 and ip < n_in:
                    bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                    ip += 1
                    bc += 8
        if bc < 5:
            return E_INPUT_END, op, 5, 0, opbit
        code = np.int64(bb >> np.uint64(59))
        bb <<= np.uint64(5)
        bc -= 5
        t = op & ~7  # the fast paths below run only on an aligned op (op == t): every action
        # then sees T = t, since the op's earlier actions add fewer than 8 bytes
        if code == 0x19 and bc >= 8 and op + 8 <= max_out and op == t:
            # I8, the most common template: one aligned word copy.
            k = np.int64(bb >> _U56)
            bb <<= _U8
            bc -= 8
            pos = (t & ~2047) + 8 * k
            if pos >= t:
                pos -= 2048
            if pos < 0:
                return E_INDEX, op, k, 8, opbit
            o64[op >> 3] = o64[pos >> 3]
            op += 8
            continue
        if 0 < code < 0x19 and op + 8 <= max_out and op == t:
            if bc < _ARGBITS[code]:
                if ip + 8 <= n_in:  # refill: one big-endian 64-bit load, whole bytes consumed
                    bb |= (
                        (np.uint64(src[ip]) << _U56) | (np.uint64(src[ip + 1]) << _U48)
                        | (np.uint64(src[ip + 2]) << _U40) | (np.uint64(src[ip + 3]) << _U32)
                        | (np.uint64(src[ip + 4]) << _U24) | (np.uint64(src[ip + 5]) << _U16)
                        | (np.uint64(src[ip + 6]) << _U8) | np.uint64(src[ip + 7])
                    ) >> np.uint64(bc)
                    ip += (63 - bc) >> 3
                    bc |= 56
                else:  # the last bytes, one at a time
                    while bc <= 56 and ip < n_in:
                        bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                        ip += 1
                        bc += 8
            if bc >= _ARGBITS[code]:
                # Every field is in the bit buffer and the group fits: build the 8 output
                # bytes in a register (big-endian) and store them as one word.
                grp = _ZERO
                for a in range(_NACT[code]):
                    nbits = _BITS[code, a]
                    sz = _SIZE[code, a]
                    v = bb >> np.uint64(64 - nbits)
                    bb <<= np.uint64(nbits)
                    bc -= nbits
                    if _ISIDX[code, a]:
                        fifo = 512 if sz == 2 else 2048
                        pos = (t & ~(fifo - 1)) + np.int64(v) * sz
                        if pos >= t:
                            pos -= fifo
                        if pos < 0:
                            return E_INDEX, op + _OFF[code, a], np.int64(v), sz, opbit
                        w = _bswap64(o64[pos >> 3])
                        v = (w >> np.uint64(64 - 8 * ((pos & 7) + sz))) & _SZMASK[sz]
                    grp = (grp << np.uint64(8 * sz)) | v
                o64[op >> 3] = _bswap64(grp)
                op += 8
                continue
        if code < 0x1A:
            for a in range(_NACT[code]):
                sz = _SIZE[code, a]
                nbits = _BITS[code, a]
                if bc < 32:
                    if ip + 8 <= n_in:  # refill: one big-endian 64-bit load, whole bytes consumed
                        bb |= (
                            (np.uint64(src[ip]) << _U56) | (np.uint64(src[ip + 1]) << _U48)
                            | (np.uint64(src[ip + 2]) << _U40) | (np.uint64(src[ip + 3]) << _U32)
                            | (np.uint64(src[ip + 4]) << _U24) | (np.uint64(src[ip + 5]) << _U16)
                            | (np.uint64(src[ip + 6]) << _U8) | np.uint64(src[ip + 7])
                        ) >> np.uint64(bc)
                        ip += (63 - bc) >> 3
                        bc |= 56
                    else:  # the last bytes, one at a time
                        while bc <= 56 and ip < n_in:
                            bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                            ip += 1
                            bc += 8
                if nbits == 64:  # D8: two 32-bit halves
                    if bc < 32:
                        return E_INPUT_END, op, 64, 0, opbit
                    hi = bb >> _U32
                    bb <<= _U32
                    bc -= 32
                    if ip + 8 <= n_in:  # refill: one big-endian 64-bit load, whole bytes consumed
                        bb |= (
                            (np.uint64(src[ip]) << _U56) | (np.uint64(src[ip + 1]) << _U48)
                            | (np.uint64(src[ip + 2]) << _U40) | (np.uint64(src[ip + 3]) << _U32)
                            | (np.uint64(src[ip + 4]) << _U24) | (np.uint64(src[ip + 5]) << _U16)
                            | (np.uint64(src[ip + 6]) << _U8) | np.uint64(src[ip + 7])
                        ) >> np.uint64(bc)
                        ip += (63 - bc) >> 3
                        bc |= 56
                    else:  # the last bytes, one at a time
                        while bc <= 56 and ip < n_in:
                            bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                            ip += 1
                            bc += 8
                    if bc < 32:
                        return E_INPUT_END, op, 64, 0, opbit
                    v = (hi << _U32) | (bb >> _U32)
                    bb <<= _U32
                    bc -= 32
                else:
                    if bc < nbits:
                        return E_INPUT_END, op, nbits, 0, opbit
                    v = bb >> np.uint64(64 - nbits)
                    bb <<= np.uint64(nbits)
                    bc -= nbits
                if op + sz > max_out:
                    return E_NOSPC, op, op + sz - max_out, 0, opbit
                if _ISIDX[code, a]:
                    # The newest position below T that is congruent to index * size modulo
                    # the ring size (842.md §1.4), T being the output length now rounded
                    # down to 8, as the kernel's __do_index takes it at each index action:
                    # after a mid-stream SHORT_DATA that is not the op's start rounded down.
                    fifo = 512 if sz == 2 else 2048
                    ta = op & ~7
                    pos = (ta & ~(fifo - 1)) + np.int64(v) * sz
                    if pos >= ta:
                        pos -= fifo
                    if pos < 0:
                        return E_INDEX, op, np.int64(v), sz, opbit
                    if op & (sz - 1):  # misaligned only after a mid-stream SHORT_DATA
                        for j in range(sz):
                            out[op + j] = out[pos + j]
                    elif sz == 8:
                        o64[op >> 3] = o64[pos >> 3]
                    elif sz == 4:
                        o32[op >> 2] = o32[pos >> 2]
                    else:
                        o16[op >> 1] = o16[pos >> 1]
                elif op & (sz - 1):  # template 0x0B's D4 at offset 2, or after SHORT_DATA
                    for j in range(sz):
                        out[op + j] = np.uint8((v >> np.uint64(8 * (sz - 1 - j))) & _M8)
                elif sz == 8:
                    o64[op >> 3] = _bswap64(v)
                elif sz == 4:
                    o32[op >> 2] = np.uint32(_bswap32(v))
                else:
                    o16[op >> 1] = np.uint16(((v & _M8) << _U8) | (v >> _U8))
                op += sz
        elif code == 0x1B:  # REPEAT
            if bc < 6:
                return E_INPUT_END, op, 6, 0, opbit
            count = np.int64(bb >> np.uint64(58)) + 1
            bb <<= np.uint64(6)
            bc -= 6
            if op < 8:
                return E_REPEAT_EARLY, op, op, 0, opbit
            if op + 8 * count > max_out:
                return E_NOSPC, op, op + 8 * count - max_out, 0, opbit
            if op & 7:
                for j in range(op, op + 8 * count):
                    out[j] = out[j - 8]
            else:
                w = o64[(op >> 3) - 1]
                for j in range(op >> 3, (op >> 3) + count):
                    o64[j] = w
            op += 8 * count
        elif code == 0x1C:  # ZEROS
            if op + 8 > max_out:
                return E_NOSPC, op, op + 8 - max_out, 0, opbit
            if op & 7:
                for j in range(8):
                    out[op + j] = 0
            else:
                o64[op >> 3] = _ZERO
            op += 8
        elif code == 0x1D:  # SHORT_DATA
            if not allow_short:
                return E_SHORT_FORBIDDEN, op, 0, 0, opbit
            if bc < 3:
                return E_INPUT_END, op, 3, 0, opbit
            count = np.int64(bb >> np.uint64(61))
            bb <<= np.uint64(3)
            bc -= 3
            if count == 0:
                return E_SHORT_ZERO, op, 0, 0, opbit
            for _ in range(count):
                if bc < 8:
                    if ip + 8 <= n_in:  # refill: one big-endian 64-bit load, whole bytes consumed
                        bb |= (
                            (np.uint64(src[ip]) << _U56) | (np.uint64(src[ip + 1]) << _U48)
                            | (np.uint64(src[ip + 2]) << _U40) | (np.uint64(src[ip + 3]) << _U32)
                            | (np.uint64(src[ip + 4]) << _U24) | (np.uint64(src[ip + 5]) << _U16)
                            | (np.uint64(src[ip + 6]) << _U8) | np.uint64(src[ip + 7])
                        ) >> np.uint64(bc)
                        ip += (63 - bc) >> 3
                        bc |= 56
                    else:  # the last bytes, one at a time
                        while bc <= 56 and ip < n_in:
                            bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                            ip += 1
                            bc += 8
                    if bc < 8:
                        return E_INPUT_END, op, 8, 0, opbit
                if op + 1 > max_out:
                    return E_NOSPC, op, 1, 0, opbit
                out[op] = np.uint8(bb >> _U56)
                bb <<= _U8
                bc -= 8
                op += 1
        elif code == 0x1E:  # END
            break
        else:  # 0x1A, 0x1F
            return E_BAD_OP, op, code, 0, opbit
    if check_crc:
        opbit = ip * 8 - bc
        if ip + 8 <= n_in:  # refill: one big-endian 64-bit load, whole bytes consumed
            bb |= (
                (np.uint64(src[ip]) << _U56) | (np.uint64(src[ip + 1]) << _U48)
                | (np.uint64(src[ip + 2]) << _U40) | (np.uint64(src[ip + 3]) << _U32)
                | (np.uint64(src[ip + 4]) << _U24) | (np.uint64(src[ip + 5]) << _U16)
                | (np.uint64(src[ip + 6]) << _U8) | np.uint64(src[ip + 7])
            ) >> np.uint64(bc)
            ip += (63 - bc) >> 3
            bc |= 56
        else:  # the last bytes, one at a time
            while bc <= 56 and ip < n_in:
                bb |= np.uint64(src[ip]) << np.uint64(56 - bc)
                ip += 1
                bc += 8
        if bc < 32:
            return E_INPUT_END, op, 32, 0, opbit
        want = bb >> _U32
        bb <<= _U32
        bc -= 32
        while cp + 8 <= op:
            crc = _crc_step8(crc, _bswap64(o64[cp >> 3]))
            cp += 8
        for j in range(cp, op):
            crc = _crc_step1(crc, out[j])
        got = crc
        if want != got:
            return E_CRC, op, np.int64(want), np.int64(got), opbit
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
