/*
 * Batch LZ4 block decompression to 4096-byte pages (hwzswap, backend "lz4-opencl").
 *
 * Item i is index[2i + 1] bytes at in + index[2i]; it must
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
 * Two kernels, chosen by the host (``decompress_layout``):
 *
 *   lz4_decompress_item  - one item per work-item. The page is built in a private buffer with
 *                          COPY_SLACK spare bytes, so literal runs and matches are copied in whole
 *                          16- or 8-byte chunks that may run past their end (the overrun lands on
 *                          bytes a later sequence writes, or in the slack); it is written to the
 *                          output only when the item decoded. A chunked literal copy is used only
 *                          where 16 more bytes of the item follow the run, so no read ever leaves
 *                          the item: the host may hand the caller's buffer to the device as is.
 *   lz4_decompress_group - one item per work-group (cooperative): every work-item of the group
 *                          parses the same sequence headers (uniform control flow, so the
 *                          barriers are legal; on a GPU the reads are broadcasts), then the
 *                          group copies the literal run and the match together, one byte per
 *                          work-item, into the page staged in local memory. A match with offset
 *                          off < length repeats the off bytes before it, so byte j of the match
 *                          is page[op - off + j % off]: every work-item reads finished bytes
 *                          only. Two barriers per sequence order the writes.
 *
 * The length checks above are made on exact lengths before any copy, in both kernels.
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
        if (ilen - ip - lit >= 16u) { /* may copy up to 15 bytes too many, all in the item */
            for (uint j = 0; j < lit; j += 16u) {
                STORE64(page + op + j, GLOAD64(src + ip + j));
                STORE64(page + op + j + 8u, GLOAD64(src + ip + j + 8u));
            }
        } else { /* near the item's end: never read past it */
            uint j = 0;
            for (; j + 8u <= lit; j += 8u)
                STORE64(page + op + j, GLOAD64(src + ip + j));
            for (; j < lit; j++)
                page[op + j] = src[ip + j];
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


/* Read a 255-terminated length extension at *ip, adding it to *acc; false when the input ends
 * first. (The group kernel's version of READ_EXT: no goto out of a loop holding barriers.) */
inline bool read_ext(const __global uchar *src, uint *ip, const uint ilen, uint *acc)
{
    uint p = *ip, a = *acc, b;
    do {
        if (p >= ilen)
            return false;
        b = src[p++];
        a += b;
    } while (b == 255u);
    *ip = p;
    *acc = a;
    return true;
}

__kernel void lz4_decompress_group(__global const uchar *restrict in,
                                   __global const uint *restrict index,
                                   __global uchar *restrict pages,
                                   __global int *restrict status,
                                   const uint n)
{
    __local ulong page64[PAGE_SIZE / 8u];
    __local uchar *page = (__local uchar *)page64;
    const uint i = get_group_id(0);
    const uint lid = get_local_id(0);
    const uint width = get_local_size(0);
    if (i >= n)
        return; /* the whole group leaves together */
    const __global uchar *src = in + index[2u * i];
    const uint ilen = index[2u * i + 1u];
    uint ip = 0, op = 0;
    int err = LZ4D_OK;

    /* Every value below is computed alike by every work-item of the group: the loop, its
     * breaks and its barriers are uniform. */
    for (;;) {
        if (ip >= ilen) {
            err = LZ4D_TRUNCATED;
            break;
        }
        const uint token = src[ip++];
        uint lit = token >> 4;
        if (lit == 15u && !read_ext(src, &ip, ilen, &lit)) {
            err = LZ4D_TRUNCATED;
            break;
        }
        if (lit > ilen - ip) {
            err = LZ4D_LITERALS_PAST_INPUT;
            break;
        }
        if (lit > PAGE_SIZE - op) {
            err = LZ4D_LITERALS_PAST_PAGE;
            break;
        }
        for (uint j = lid; j < lit; j += width)
            page[op + j] = src[ip + j];
        ip += lit;
        op += lit;
        if (ip == ilen) {
            if (op != PAGE_SIZE)
                err = LZ4D_SHORT_OUTPUT;
            break;
        }
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
        if (ml == 15u && !read_ext(src, &ip, ilen, &ml)) {
            err = LZ4D_TRUNCATED;
            break;
        }
        ml += MINMATCH;
        if (ml > PAGE_SIZE - op) {
            err = LZ4D_MATCH_PAST_PAGE;
            break;
        }
        if (ml > PAGE_SIZE - LASTLITERALS - op) {
            err = LZ4D_MATCH_INTO_TAIL;
            break;
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* the literals just written may be the match's source */
        const uint m = op - off;
        if (off >= ml) {
            for (uint j = lid; j < ml; j += width)
                page[op + j] = page[m + j];
        } else {
            for (uint j = lid; j < ml; j += width)
                page[op + j] = page[m + j % off];
        }
        op += ml;
        barrier(CLK_LOCAL_MEM_FENCE); /* the next sequence's match may read this one */
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0u)
        status[i] = err;
    if (err == LZ4D_OK) {
        __global ulong *dst = (__global ulong *)(pages + (size_t)i * PAGE_SIZE);
        for (uint j = lid; j < PAGE_SIZE / 8u; j += width)
            dst[j] = page64[j];
    }
}
