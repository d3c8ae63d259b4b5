/*
 * Batch LZ4 block compression of 4096-byte pages (hwzswap, backend "lz4-opencl").
 *
 * Output is the plain LZ4 *block* format (no frame, no size prefix), so it decodes with the
 * reference lz4.block.decompress(data, uncompressed_size=4096) and with the kernel's lz4.
 * Block rules kept by both kernels here:
 *   - a sequence is token, literal-length extension, literals, 16-bit LE offset (1..65535),
 *     match-length extension; extension bytes are 255 until one below 255;
 *   - the minimum match is MINMATCH (4) bytes;
 *   - the last LASTLITERALS (5) bytes are always literals and the last match starts at least
 *     MFLIMIT (12) bytes before the end of the page;
 *   - the block ends with a literal-only sequence.
 *
 * The match finder is LZ4's greedy "fast" parse: a hash table of 4-byte sequences
 * (1 << HASH_LOG entries of 16-bit positions), a search step that grows every 1 << SKIP_TRIGGER
 * misses (so incompressible data is skipped quickly), backwards catch-up and an immediate
 * re-check after each match.
 *
 * Output: meta[0] is a byte counter the host zeroes before the launch; for page i,
 * meta[1 + 2i] is the stream length (1..4095) and meta[2 + 2i] its offset in the compact output
 * buffer, the place taken with an atomic add on meta[0]. A page whose stream would be 4096 bytes
 * or more is *incompressible*: its length is 0 and nothing is written for it. Compacting on the
 * device means only the compressed bytes travel back to the host.
 *
 * Two layouts, selected by the host (see backend.py for the PoCL measurements):
 *   lz4_compress_item  - one page per work-item, private hash table, scratch slot per page;
 *   lz4_compress_group - one page per work-group of GROUP_WIDTH work-items: the page is staged
 *                        in local memory, each work-item parses one segment of it with its own
 *                        hash table (first filled from the GROUP_HISTORY bytes before the
 *                        segment), then the sequences are sized, prefix-summed and encoded in
 *                        parallel straight into the compact output.
 *
 * Build-time defines: HASH_LOG (10..13), GROUP_WIDTH (power of two, group layout only).
 */

#define PAGE_SIZE 4096u
#define MINMATCH 4u
#define LASTLITERALS 5u
#define MFLIMIT 12u
#define SKIP_TRIGGER 6u
#define OUT_MAX (PAGE_SIZE - 1u) /* longest stream still smaller than the page */
#define ML_MASK 15u
#define RUN_MASK 15u

#ifndef HASH_LOG
#define HASH_LOG 12
#endif
#define HASH_SIZE (1u << HASH_LOG)

/* Multiplicative hash of the 5 bytes at a position (the low 40 bits of a little-endian 64-bit
 * load), as LZ4 does on 64-bit hosts: with it the parse, and so the ratio, is the same as the
 * reference library's (hashing 4 bytes lost ~9% on text pages). Positions hashed are at most
 * PAGE_SIZE - MFLIMIT + 1, so the 8-byte load stays inside the page. */
#define HASH5(seq64, log) ((uint)((((seq64) << 24) * 889523592379UL) >> (64u - (log))))

/* Unaligned loads through packed structs: one plain load on a CPU, split by the compiler where
 * the device needs aligned accesses. (vload4/vload8 are out-of-line library calls in PoCL.) */
typedef struct __attribute__((packed)) { uint v; } una_u32;
typedef struct __attribute__((packed)) { ulong v; } una_u64;

inline uint ctz64(ulong x)
{
#if defined(__clang__) && defined(__has_builtin)
#if __has_builtin(__builtin_ctzl)
    return (uint)__builtin_ctzl(x); /* x != 0 here */
#define HAVE_CTZ_BUILTIN
#endif
#endif
#ifndef HAVE_CTZ_BUILTIN
    /* OpenCL C 1.2 has clz but not ctz: isolate the lowest set bit, then count from the top. */
    return (uint)(63 - clz(x & (0 - x)));
#endif
}

/* Bytes of the literal-length or match-length extension for a field value v (0 when v < 15). */
inline uint ext_bytes(uint v)
{
    return v >= 15u ? (v - 15u) / 255u + 1u : 0u;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers over a page in global memory (item layout) ...
 */

inline uint g_read32(const __global uchar *p) { return ((const __global una_u32 *)p)->v; }
inline ulong g_read64(const __global uchar *p) { return ((const __global una_u64 *)p)->v; }

/* Number of equal bytes at src+a and src+b (b < a), not reading at or past src+limit. */
inline uint g_match_count(const __global uchar *src, uint a, uint b, uint limit)
{
    const uint start = a;
    while (a + 8u <= limit) {
        ulong x = g_read64(src + a) ^ g_read64(src + b);
        if (x)
            return a - start + (ctz64(x) >> 3);
        a += 8u;
        b += 8u;
    }
    while (a < limit && src[a] == src[b]) {
        a++;
        b++;
    }
    return a - start;
}

#define HASH(seq64) HASH5(seq64, HASH_LOG)

inline uint g_put_ext(__global uchar *dst, uint op, uint v)
{
    while (v >= 255u) {
        dst[op++] = 255;
        v -= 255u;
    }
    dst[op++] = (uchar)v;
    return op;
}

inline void g_copy(__global uchar *dst, const __global uchar *src, uint n)
{
    uint i = 0;
    for (; i + 8u <= n; i += 8u)
        ((__global una_u64 *)(dst + i))->v = ((const __global una_u64 *)(src + i))->v;
    for (; i < n; i++)
        dst[i] = src[i];
}

/*
 * One page per work-item. Returns the stream length in dst, or 0 when the page does not shrink.
 * Writes never go past dst[OUT_MAX - 1]: every write is size-checked first.
 */
inline uint compress_page(const __global uchar *src, __global uchar *dst)
{
    ushort table[HASH_SIZE];
    for (uint i = 0; i < HASH_SIZE; i++)
        table[i] = 0; /* position 0 is a valid candidate: every candidate is verified */

    const uint mflimit_p1 = PAGE_SIZE - MFLIMIT + 1u; /* a match must start before this */
    const uint match_limit = PAGE_SIZE - LASTLITERALS; /* and end at or before this */
    uint anchor = 0, op = 0, ip = 1;

    table[HASH(g_read64(src))] = 0;
    uint fwd_hash = HASH(g_read64(src + 1));

    for (;;) {
        /* Find a match: verified 4-byte equality with an earlier position. */
        uint match;
        uint fwd_ip = ip, step = 1u, searches = 1u << SKIP_TRIGGER;
        for (;;) {
            const uint h = fwd_hash;
            ip = fwd_ip;
            fwd_ip += step;
            step = searches++ >> SKIP_TRIGGER;
            if (fwd_ip > mflimit_p1)
                goto last_literals;
            match = table[h];
            fwd_hash = HASH(g_read64(src + fwd_ip));
            table[h] = (ushort)ip;
            if (g_read32(src + match) == g_read32(src + ip))
                break;
        }
        /* Extend backwards over equal bytes not yet emitted. */
        while (ip > anchor && match > 0u && src[ip - 1u] == src[match - 1u]) {
            ip--;
            match--;
        }
        /* Literals. The 2 offset bytes must also fit. */
        {
            const uint lit = ip - anchor;
            const uint lext = ext_bytes(lit);
            if (op + 1u + lext + lit + 2u > OUT_MAX)
                return 0u;
            uint token = op++;
            if (lit >= RUN_MASK) {
                dst[token] = (uchar)(RUN_MASK << 4);
                op = g_put_ext(dst, op, lit - RUN_MASK);
            } else {
                dst[token] = (uchar)(lit << 4);
            }
            g_copy(dst + op, src + anchor, lit);
            op += lit;

            for (;;) { /* one match, then as many immediate matches as follow */
                const uint off = ip - match;
                dst[op++] = (uchar)off;
                dst[op++] = (uchar)(off >> 8);
                const uint ml = g_match_count(src, ip + MINMATCH, match + MINMATCH, match_limit);
                ip += MINMATCH + ml;
                if (ml >= ML_MASK) {
                    if (op + ext_bytes(ml) > OUT_MAX)
                        return 0u;
                    dst[token] += (uchar)ML_MASK;
                    op = g_put_ext(dst, op, ml - ML_MASK);
                } else {
                    dst[token] += (uchar)ml;
                }
                anchor = ip;
                if (ip >= mflimit_p1)
                    goto last_literals;
                table[HASH(g_read64(src + ip - 2u))] = (ushort)(ip - 2u);
                const uint h = HASH(g_read64(src + ip));
                match = table[h];
                table[h] = (ushort)ip;
                if (g_read32(src + match) != g_read32(src + ip))
                    break;
                /* A match right here: a sequence with no literals. */
                if (op + 1u + 2u > OUT_MAX)
                    return 0u;
                token = op++;
                dst[token] = 0;
            }
        }
        fwd_hash = HASH(g_read64(src + ++ip));
    }

last_literals: {
        const uint lit = PAGE_SIZE - anchor;
        if (op + 1u + ext_bytes(lit) + lit > OUT_MAX)
            return 0u;
        if (lit >= RUN_MASK) {
            dst[op++] = (uchar)(RUN_MASK << 4);
            op = g_put_ext(dst, op, lit - RUN_MASK);
        } else {
            dst[op++] = (uchar)(lit << 4);
        }
        g_copy(dst + op, src + anchor, lit);
        return op + lit;
    }
}

__kernel void lz4_compress_item(__global const uchar *restrict pages,
                                __global uchar *restrict scratch,
                                __global uchar *restrict out,
                                __global uint *restrict meta,
                                const uint n)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    __global uchar *slot = scratch + (size_t)i * PAGE_SIZE;
    const uint size = compress_page(pages + (size_t)i * PAGE_SIZE, slot);
    meta[1u + 2u * i] = size;
    if (size == 0u) {
        meta[2u + 2u * i] = 0u;
        return;
    }
    const uint base = atomic_add((volatile __global uint *)meta, size);
    meta[2u + 2u * i] = base;
    g_copy(out + base, slot, size);
}

/* ---------------------------------------------------------------------------------------------
 * One page per work-group.
 */

#ifdef GROUP_WIDTH

#define SEG_LEN (PAGE_SIZE / GROUP_WIDTH)
#define SEG_HASH_LOG (HASH_LOG - GROUP_SHIFT)
/* At most one sequence per MINMATCH bytes of a segment, plus one. */
#define SEG_SEQS (SEG_LEN / MINMATCH + 1u)

#if GROUP_WIDTH == 1
#define GROUP_SHIFT 0
#elif GROUP_WIDTH == 2
#define GROUP_SHIFT 1
#elif GROUP_WIDTH == 4
#define GROUP_SHIFT 2
#elif GROUP_WIDTH == 8
#define GROUP_SHIFT 3
#elif GROUP_WIDTH == 16
#define GROUP_SHIFT 4
#else
#error "GROUP_WIDTH must be 1, 2, 4, 8 or 16"
#endif
#define SEG_HASH(seq64) HASH5(seq64, SEG_HASH_LOG)
#ifndef GROUP_HISTORY
#define GROUP_HISTORY 1024u /* bytes before its segment each work-item pre-hashes */
#endif

inline uint l_read32(const __local uchar *p) { return ((const __local una_u32 *)p)->v; }
inline ulong l_read64(const __local uchar *p) { return ((const __local una_u64 *)p)->v; }

inline uint l_match_count(const __local uchar *src, uint a, uint b, uint limit)
{
    const uint start = a;
    while (a + 8u <= limit) {
        ulong x = l_read64(src + a) ^ l_read64(src + b);
        if (x)
            return a - start + (ctz64(x) >> 3);
        a += 8u;
        b += 8u;
    }
    while (a < limit && src[a] == src[b]) {
        a++;
        b++;
    }
    return a - start;
}

__kernel __attribute__((reqd_work_group_size(GROUP_WIDTH, 1, 1)))
void lz4_compress_group(__global const uchar *restrict pages,
                        __global uchar *restrict out,
                        __global uint *restrict meta,
                        const uint n)
{
    __local uchar page[PAGE_SIZE];
    __local ushort tables[GROUP_WIDTH << SEG_HASH_LOG];
    __local ushort seq_pos[GROUP_WIDTH * SEG_SEQS];
    __local ushort seq_off[GROUP_WIDTH * SEG_SEQS];
    __local ushort seq_len[GROUP_WIDTH * SEG_SEQS];
    __local uint seq_count[GROUP_WIDTH];
    __local uint seg_last_end[GROUP_WIDTH]; /* end of the segment's last match, 0 if none */
    __local uint seg_bytes[GROUP_WIDTH];    /* encoded size of the segment's sequences */
    __local uint page_base;

    const uint g = get_group_id(0);
    const uint k = get_local_id(0);
    if (g >= n)
        return; /* whole group leaves together: no barrier is skipped by part of a group */

    /* Stage the page in local memory (coalesced on a GPU) and clear this segment's table. */
    const __global uchar *src = pages + (size_t)g * PAGE_SIZE;
    for (uint i = k * 8u; i < PAGE_SIZE; i += GROUP_WIDTH * 8u)
        ((__local una_u64 *)(page + i))->v = ((const __global una_u64 *)(src + i))->v;
    __local ushort *table = tables + (k << SEG_HASH_LOG);
    for (uint i = 0; i < (1u << SEG_HASH_LOG); i++)
        table[i] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);

    /* Parse segment [seg, seg_end): matches start and end inside it (the last segment keeps
     * the end-of-block margins), candidates may lie anywhere earlier in the page. */
    const uint seg = k * SEG_LEN;
    const bool last_seg = k == GROUP_WIDTH - 1u;
    const uint match_limit = last_seg ? PAGE_SIZE - LASTLITERALS : seg + SEG_LEN;
    const uint start_limit = last_seg ? PAGE_SIZE - MFLIMIT + 1u : seg + SEG_LEN - MINMATCH + 1u;
    __local ushort *my_pos = seq_pos + k * SEG_SEQS;
    __local ushort *my_off = seq_off + k * SEG_SEQS;
    __local ushort *my_len = seq_len + k * SEG_SEQS;
    uint nseq = 0, anchor = seg, ip = seg;
    uint step = 1u, searches = 1u << SKIP_TRIGGER;
    /* History: hash the end of the previous segment first (every other position), so that
     * matches can reach back across the boundary as they would in a sequential parse. */
    for (uint h = seg > GROUP_HISTORY ? seg - GROUP_HISTORY : 0u; h < seg; h += 2u)
        table[SEG_HASH(l_read64(page + h))] = (ushort)h;
    while (ip < start_limit) {
        const uint seq = l_read32(page + ip);
        const uint h = SEG_HASH(l_read64(page + ip));
        uint match = table[h];
        table[h] = (ushort)ip;
        if (match < ip && l_read32(page + match) == seq) {
            while (ip > anchor && match > 0u && page[ip - 1u] == page[match - 1u]) {
                ip--;
                match--;
            }
            const uint len = MINMATCH + l_match_count(page, ip + MINMATCH, match + MINMATCH,
                                                      match_limit);
            my_pos[nseq] = (ushort)ip;
            my_off[nseq] = (ushort)(ip - match);
            my_len[nseq] = (ushort)len;
            nseq++;
            ip += len;
            anchor = ip;
            step = 1u;
            searches = 1u << SKIP_TRIGGER;
            if (ip - 2u < start_limit && ip - 2u >= seg)
                table[SEG_HASH(l_read64(page + ip - 2u))] = (ushort)(ip - 2u);
        } else {
            ip += step;
            step = searches++ >> SKIP_TRIGGER;
        }
    }
    seq_count[k] = nseq;
    seg_last_end[k] = nseq ? (uint)my_pos[nseq - 1u] + my_len[nseq - 1u] : 0u;
    barrier(CLK_LOCAL_MEM_FENCE);

    /* Literals of this segment's first sequence start where the previous match ended. */
    uint first_anchor = 0;
    for (uint j = 0; j < k; j++)
        first_anchor = max(first_anchor, seg_last_end[j]);
    uint bytes = 0;
    anchor = first_anchor;
    for (uint s = 0; s < nseq; s++) {
        const uint lit = my_pos[s] - anchor;
        bytes += 1u + ext_bytes(lit) + lit + 2u + ext_bytes(my_len[s] - MINMATCH);
        anchor = (uint)my_pos[s] + my_len[s];
    }
    if (last_seg) {
        const uint lit = PAGE_SIZE - max(anchor, first_anchor);
        bytes += 1u + ext_bytes(lit) + lit;
    }
    seg_bytes[k] = bytes;
    barrier(CLK_LOCAL_MEM_FENCE);

    uint before = 0, size = 0;
    for (uint j = 0; j < GROUP_WIDTH; j++) {
        before += j < k ? seg_bytes[j] : 0u;
        size += seg_bytes[j];
    }
    if (size > OUT_MAX) {
        if (k == 0u) {
            meta[1u + 2u * g] = 0u;
            meta[2u + 2u * g] = 0u;
        }
        return; /* uniform across the group: no barrier follows */
    }
    if (k == 0u) {
        page_base = atomic_add((volatile __global uint *)meta, size);
        meta[1u + 2u * g] = size;
        meta[2u + 2u * g] = page_base;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    __global uchar *dst = out + page_base;
    uint op = before;
    anchor = first_anchor;
    for (uint s = 0; s <= nseq; s++) {
        uint lit, ml = 0, off = 0;
        if (s < nseq) {
            lit = my_pos[s] - anchor;
            ml = my_len[s] - MINMATCH;
            off = my_off[s];
        } else if (last_seg) {
            anchor = max(anchor, first_anchor);
            lit = PAGE_SIZE - anchor;
        } else {
            break;
        }
        const uint token = op++;
        uchar t = (uchar)(min(lit, RUN_MASK) << 4);
        if (lit >= RUN_MASK) {
            uint v = lit - RUN_MASK;
            while (v >= 255u) {
                dst[op++] = 255;
                v -= 255u;
            }
            dst[op++] = (uchar)v;
        }
        for (uint i = 0; i < lit; i++)
            dst[op + i] = page[anchor + i];
        op += lit;
        if (s == nseq) {
            dst[token] = t;
            break;
        }
        dst[op++] = (uchar)off;
        dst[op++] = (uchar)(off >> 8);
        t |= (uchar)min(ml, ML_MASK);
        if (ml >= ML_MASK) {
            uint v = ml - ML_MASK;
            while (v >= 255u) {
                dst[op++] = 255;
                v -= 255u;
            }
            dst[op++] = (uchar)v;
        }
        dst[token] = t;
        anchor = (uint)my_pos[s] + my_len[s];
    }
}

#endif /* GROUP_WIDTH */
