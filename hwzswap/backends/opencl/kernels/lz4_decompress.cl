/*
 * Batch LZ4 block decompression to 4096-byte pages (hwzswap, backend "lz4-opencl").
 *
 * One compressed item per work-item. Item i is index[2i + 1] bytes at in + index[2i]; it must
 * decode to exactly one page at pages + i * 4096. Every read is checked against the item's
 * length and every write against the page, so corrupt input can only produce an error status,
 * never a read outside the item or a write outside the page:
 *
 *   status[i] = LZ4D_OK (0) or one of the LZ4D_* codes below (mirrored in backend.py).
 *
 * The block must end with a literal-only sequence that ends exactly at the end of the item and
 * of the page; anything else (trailing bytes, a stream that stops after a match, one that
 * produces fewer or more than 4096 bytes) is an error. The end-of-block rules every LZ4
 * compressor keeps are enforced as LZ4's own safe decoder enforces them: no match starts in the
 * last MFLIMIT (12) bytes of the page and none ends in the last LASTLITERALS (5), so a stream
 * breaking them is reported as corrupt rather than decoded.
 *
 * Speed: the page is built in a private buffer with COPY_SLACK spare bytes, so literal runs and
 * matches are copied in whole 16- or 8-byte chunks that may run past their end (the overrun
 * lands on bytes a later sequence writes, or in the slack); it is written to the output only
 * when the item decoded. The host leaves COPY_SLACK readable bytes after the last item, so the
 * chunked literal copy may read past an item's end (those bytes are never kept). The
 * length checks above are made on exact lengths before any copy.
 */

#define COPY_SLACK 32u

#define PAGE_SIZE 4096u
#define MINMATCH 4u
#define LASTLITERALS 5u
#define MFLIMIT 12u

#define LZ4D_OK 0
#define LZ4D_TRUNCATED 1        /* input ended inside a token, length or offset */
#define LZ4D_LITERALS_PAST_INPUT 2
#define LZ4D_LITERALS_PAST_PAGE 3
#define LZ4D_BAD_OFFSET 4       /* offset 0 or reaching before the start of the page */
#define LZ4D_MATCH_PAST_PAGE 5
#define LZ4D_SHORT_OUTPUT 6     /* the block ended before 4096 bytes were produced */
#define LZ4D_MATCH_TOO_LATE 7   /* a match starts in the last MFLIMIT bytes of the page */
#define LZ4D_MATCH_INTO_TAIL 8  /* a match ends in the last LASTLITERALS bytes of the page */

typedef struct __attribute__((packed)) { ulong v; } una_u64;

#define LOAD64(p) (((const una_u64 *)(p))->v)
#define GLOAD64(p) (((const __global una_u64 *)(p))->v)
#define STORE64(p, x) (((una_u64 *)(p))->v = (x))

/* Read a 255-terminated length extension; false when the input ends first. */
#define READ_EXT(acc)                                                                     \
    do {                                                                                  \
        uint b_;                                                                          \
        do {                                                                              \
            if (ip >= ilen) {                                                             \
                err = LZ4D_TRUNCATED;                                                     \
                goto done;                                                                \
            }                                                                             \
            b_ = src[ip++];                                                               \
            (acc) += b_;                                                                  \
        } while (b_ == 255u);                                                             \
    } while (0)

__kernel void lz4_decompress_item(__global const uchar *restrict in,
                                  __global const uint *restrict index,
                                  __global uchar *restrict pages,
                                  __global int *restrict status,
                                  const uint n)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const __global uchar *src = in + index[2u * i];
    const uint ilen = index[2u * i + 1u];
    ulong page64[(PAGE_SIZE + COPY_SLACK) / 8u];
    uchar *page = (uchar *)page64;
    uint ip = 0, op = 0;
    int err = LZ4D_OK;

    for (;;) {
        if (ip >= ilen) {
            err = LZ4D_TRUNCATED;
            break;
        }
        const uint token = src[ip++];

        /* Literal length: 4 bits, then 255-extension bytes. Bounded by ilen, cannot wrap. */
        uint lit = token >> 4;
        if (lit == 15u)
            READ_EXT(lit);
        if (lit > ilen - ip) {
            err = LZ4D_LITERALS_PAST_INPUT;
            break;
        }
        if (lit > PAGE_SIZE - op) {
            err = LZ4D_LITERALS_PAST_PAGE;
            break;
        }
        for (uint j = 0; j < lit; j += 16u) { /* may copy up to 15 bytes too many */
            STORE64(page + op + j, GLOAD64(src + ip + j));
            STORE64(page + op + j + 8u, GLOAD64(src + ip + j + 8u));
        }
        ip += lit;
        op += lit;
        if (ip == ilen) { /* the last sequence has literals only */
            if (op != PAGE_SIZE)
                err = LZ4D_SHORT_OUTPUT;
            break;
        }

        /* Match: 16-bit little-endian offset, then the length. */
        if (ilen - ip < 2u) {
            err = LZ4D_TRUNCATED;
            break;
        }
        const uint off = (uint)src[ip] | ((uint)src[ip + 1u] << 8);
        ip += 2u;
        if (off == 0u || off > op) {
            err = LZ4D_BAD_OFFSET;
            break;
        }
        if (op > PAGE_SIZE - MFLIMIT) {
            err = LZ4D_MATCH_TOO_LATE;
            break;
        }
        uint ml = token & 15u;
        if (ml == 15u)
            READ_EXT(ml);
        ml += MINMATCH;
        if (ml > PAGE_SIZE - op) {
            err = LZ4D_MATCH_PAST_PAGE;
            break;
        }
        if (ml > PAGE_SIZE - LASTLITERALS - op) {
            err = LZ4D_MATCH_INTO_TAIL;
            break;
        }
        {
            uchar *d = page + op;
            const uchar *m = d - off;
            if (off >= 16u) { /* a chunk never reads bytes this copy has not written yet */
                for (uint j = 0; j < ml; j += 16u) {
                    STORE64(d + j, LOAD64(m + j));
                    STORE64(d + j + 8u, LOAD64(m + j + 8u));
                }
            } else if (off >= 8u) {
                for (uint j = 0; j < ml; j += 8u)
                    STORE64(d + j, LOAD64(m + j));
            } else {
                /* A short offset repeats a pattern of period off. Write its first p bytes one
                 * by one (p: the smallest multiple of off that is >= 8); from there on every
                 * byte equals the one p back, so 8-byte chunks read only finished bytes. */
                const uint p = off * ((8u + off - 1u) / off);
                const uint head = min(p, ml);
                uint j = 0;
                for (; j < head; j++)
                    d[j] = m[j];
                for (; j < ml; j += 8u)
                    STORE64(d + j, LOAD64(d + j - p));
            }
        }
        op += ml;
    }
done:
    status[i] = err;
    if (err == LZ4D_OK) {
        __global ulong *dst = (__global ulong *)(pages + (size_t)i * PAGE_SIZE);
        for (uint j = 0; j < PAGE_SIZE / 8u; j++)
            dst[j] = page64[j];
    }
}
