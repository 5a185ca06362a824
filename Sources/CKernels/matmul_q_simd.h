// SIMD kernels of the 32-block formats, as a template: the including file defines
//   NB_T      the target attribute of every function (NB_AVX2, NB_AVXVNNI, NB_AVX512VNNI),
//   NB_VNNI   1 to take VNNI's multiply-adds for the int8 dot products: NB_DPBUSD and
//             NB_DPWSSD, the 256-bit vpdpbusd/vpdpwssd (AVX-VNNI's _mm256_dpbusd_avx_epi32
//             or AVX-512 VNNI's _mm256_dpbusd_epi32, the same operation); 0: AVX2's
//             _mm256_maddubs_epi16 + _mm256_madd_epi16,
//   NB_W512   1 for the AVX-512 parts (16-row tiles in zmm, rows-in-lanes decode, vpermw...;
//             needs NB_VNNI 1), 0 for 256-bit vectors only,
//   NB_QENTRY the name of the entry point (nb_matmul_q_avx2, _avxvnni, _avx512),
// and includes <immintrin.h> and matmul_q.h first. See matmul_q.c for the arithmetic.

#ifndef NB_INLINE
#define NB_INLINE static inline __attribute__((always_inline))
#endif
#define H2F_F16C(h) _cvtsh_ss(h)

// Byte j = 0xFF where bit j of the 32 bits at x is set (GGML's bytes_from_bits_32).
NB_T NB_INLINE __m256i bits_to_bytes(const uint8_t *x) {
    uint32_t x32;
    memcpy(&x32, x, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bytes = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf),
                                          _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// The weights of 32-block b of the row at `row`, one byte per element in element order:
// int8 for q8, q4_0 (q − 8) and q5_0 (q − 16), 0...15 for q4, 0...31 for q5_1, 0...3 for q2. h = b & 1, a constant in the callers'
// 2-block loops: the half of a q2 64-block. (nf4: nf4_weights.)
NB_T NB_INLINE __m256i codes(nb_format fmt, const uint8_t *row, int64_t b, const int h) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i nibbles = _mm256_setr_epi64x(0, 0, 4, 4);  // low 128 bits: low nibbles; high: high nibbles
    switch (fmt) {
    case NB_FMT_Q8: return _mm256_loadu_si256((const __m256i *)((const nb_block_q8 *)row)[b].qs);
    case NB_FMT_Q4: {
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const nb_block_q4 *)row)[b].qs));
        return _mm256_and_si256(_mm256_srlv_epi64(v, nibbles), low4);
    }
    case NB_FMT_Q2: {
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const nb_block_q2 *)row)[b / 2].qs));
        const __m256i shift = h ? _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6) : _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
        return _mm256_and_si256(_mm256_srlv_epi32(v, shift), _mm256_set1_epi8(3));
    }
    case NB_FMT_Q4_0: {
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const nb_block_q4_0 *)row)[b].qs));
        return _mm256_sub_epi8(_mm256_and_si256(_mm256_srlv_epi64(v, nibbles), low4), _mm256_set1_epi8(8));
    }
    case NB_FMT_Q5_0: {
        const nb_block_q5_0 *blk = (const nb_block_q5_0 *)row + b;
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk->qs));
        // q | 0xF0 where bit 4 is clear is q − 16 as int8; where it is set, q + 16 − 16.
        return _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi64(v, nibbles), low4),
                               _mm256_andnot_si256(bits_to_bytes(blk->qh), _mm256_set1_epi8((char)0xF0)));
    }
    case NB_FMT_Q5_1: {
        const nb_block_q5_1 *blk = (const nb_block_q5_1 *)row + b;
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk->qs));
        return _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi64(v, nibbles), low4),
                               _mm256_and_si256(bits_to_bytes(blk->qh), _mm256_set1_epi8(0x10)));
    }
    default: return _mm256_setzero_si256();
    }
}

// nf4 multiplies int16 weights (nb_nf4_i16) with the int8 activations widened to int16:
// _mm256_madd_epi16 of two vectors of 16 each. The 32 weights of block b (half h of its
// 64-block) are looked up as low and high bytes with one shuffle each and interleaved, so
// *lo holds elements 0...7 | 16...23 (low | high 128 bits) and *hi 8...15 | 24...31, the
// order in which nf4_activations widens the activation block.
NB_T NB_INLINE void nf4_weights(const uint8_t *row, int64_t b, const int h, __m256i *lo, __m256i *hi) {
    // Low and high bytes of nb_nf4_i16 (as int8), in both 128-bit lanes.
    const __m256i lut_lo = _mm256_setr_epi8(0, -36, -103, -82, 115, 11, -117, 0, 70, -109, -16, 104, 13, 0, -111, 0,
                                            0, -36, -103, -82, 115, 11, -117, 0, 70, -109, -16, 104, 13, 0, -111, 0);
    const __m256i lut_hi = _mm256_setr_epi8(-16, -12, -9, -7, -5, -3, -2, 0, 1, 2, 3, 5, 7, 9, 11, 16,
                                            -16, -12, -9, -7, -5, -3, -2, 0, 1, 2, 3, 5, 7, 9, 11, 16);
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + (size_t)(b / 2) * 32 + 16 * h)));
    const __m256i c = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
    const __m256i l = _mm256_shuffle_epi8(lut_lo, c), u = _mm256_shuffle_epi8(lut_hi, c);
    *lo = _mm256_unpacklo_epi8(l, u);
    *hi = _mm256_unpackhi_epi8(l, u);
}

// An activation block as int16 in nf4_weights' order.
NB_T NB_INLINE void nf4_activations(__m256i x, __m256i *lo, __m256i *hi) {
    const __m256i sign = _mm256_cmpgt_epi8(_mm256_setzero_si256(), x);
    *lo = _mm256_unpacklo_epi8(x, sign);
    *hi = _mm256_unpackhi_epi8(x, sign);
}

// 8 int32 partial sums of w·x for nf4 (|sum| ≤ 32 · 4096 · 127 < 2^24).
NB_T NB_INLINE __m256i nf4_dot(__m256i wlo, __m256i whi, __m256i xlo, __m256i xhi) {
    return _mm256_add_epi32(_mm256_madd_epi16(wlo, xlo), _mm256_madd_epi16(whi, xhi));
}

// 8 int32 partial sums of w·x (aw = |w| for signed weights, else w): lane i sums elements
// 4i...4i+3, exactly (|w| ≤ 128 and |x| ≤ 127, so the int16 pairs cannot saturate).
// vpdpbusd on AVX-512 only: at the AVX-VNNI level decode's 8-row reduction (matvec8, there
// only q2's) ran slower with it than with maddubs + madd on Zen 5 (q2 640 × 2048: 28 → 40 us;
// compiled with AVX-512's 32 registers allowed, 25 us), for a reason not found.
NB_T NB_INLINE __m256i block_dot(int is_signed, __m256i w, __m256i aw, __m256i x) {
    const __m256i u = is_signed ? aw : w, s = is_signed ? _mm256_sign_epi8(x, w) : x;
#if NB_W512
    return NB_DPBUSD(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// Lane i < 4: Σ lanes 0..3 of v_i; lane 4+i: Σ lanes 4..7 of v_i.
NB_T NB_INLINE __m256i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

// From reduce4 of v0..v3 (lo) and of v4..v7 (hi): lane i = Σ of all lanes of v_i, as floats (exact).
NB_T NB_INLINE __m256 combine4(__m256i lo, __m256i hi) {
    return _mm256_cvtepi32_ps(
        _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31)));
}

#define NB_PREFETCH_TILES 4  // how many row groups ahead decode (≤ 4 tokens) prefetches
#define NB_PREFETCH_BYTES (24 << 10)  // AVX-512 decode: at most about this far ahead (prefill_rows)

/// Part b (of nb) of the bytes [p, p + bytes): rows of a later tile or group of rows (one
/// contiguous span), fetched into L2 a part per block while this one computes; `part` is
/// prefetch_size(bytes, nb). p = NULL: nothing.
NB_T NB_INLINE size_t prefetch_size(size_t bytes, int64_t nb) { return (bytes / (size_t)nb + 64) & ~(size_t)63; }
NB_T NB_INLINE void prefetch_part(const uint8_t *p, size_t bytes, size_t part, int64_t b) {
    if (!p) return;
    const size_t lo = part * (size_t)b, hi = lo + part < bytes ? lo + part : bytes;
    for (size_t o = lo; o < hi; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T1);
}

/// The interleaved kernels' prefetch, a part per block: `lines` cache lines from address p,
/// unrolled with no bound check (a jump into a run of prefetches, the same target all product
/// long). Prefetches never fault: lines past the span cost a fetch of what follows it at most,
/// so p is an address, not a pointer into the matrix. Against prefetch_part's bounded loop
/// (a compare and branch per line, and for q4 a sixth line per block), decode of 1536 × 576
/// at avx2 on Zen 3: 8 % fewer instructions for q4, 10 % for q8, 9 % for q4_0 (callgrind);
/// q4 in L2 36.5–36.9 GB/s against 34.6–34.9 (kernel_bench, alternating runs).
NB_T NB_INLINE void prefetch_lines(uintptr_t p, int lines, const int nta) {
#define NB_PF(i) (nta ? _mm_prefetch((const char *)(p + 64 * (i)), _MM_HINT_NTA) \
                      : _mm_prefetch((const char *)(p + 64 * (i)), _MM_HINT_T1))
    for (; lines > 8; lines -= 8, p += 512)
        for (int i = 0; i < 8; i++) NB_PF(i);
    switch (lines) {
    case 8: NB_PF(7); __attribute__((fallthrough));
    case 7: NB_PF(6); __attribute__((fallthrough));
    case 6: NB_PF(5); __attribute__((fallthrough));
    case 5: NB_PF(4); __attribute__((fallthrough));
    case 4: NB_PF(3); __attribute__((fallthrough));
    case 3: NB_PF(2); __attribute__((fallthrough));
    case 2: NB_PF(1); __attribute__((fallthrough));
    case 1: NB_PF(0); __attribute__((fallthrough));
    default: break;
    }
#undef NB_PF
}
/// Lines per block that spread `bytes` of later groups over nb blocks (0: nothing to fetch).
NB_T NB_INLINE int prefetch_lines_per_block(size_t bytes, int64_t nb) {
    return (int)((bytes + 64 * (size_t)nb - 1) / (64 * (size_t)nb));
}

/// Rows [*lo, *lo + *n) that the tile of `tile` rows at r (of a call over rows r_begin...
/// r_end - 1) prefetches: the tile `ahead` tiles later; the first tile of a call the `ahead`
/// tiles after it (nothing fetched them yet).
NB_T NB_INLINE void prefetch_rows(int64_t r, int64_t r_begin, int64_t r_end, int tile, int ahead, int64_t *lo, int64_t *n) {
    *lo = r == r_begin ? r + tile : r + (int64_t)tile * ahead;
    const int64_t hi = r + (int64_t)tile * (ahead + 1) < r_end ? r + (int64_t)tile * (ahead + 1) : r_end;
    *n = hi - *lo;
}

// ---- decode: 8 rows × 1 token --------------------------------------------------------------

#define NB_CHUNK 64  // blocks whose row scales are gathered at once (even)

// Block b (h = b & 1) of 8 rows: acc += dW·dX · Σw·x, summ += mW·sX, lane i = rows[i].
NB_T NB_INLINE void matvec8_block(nb_format fmt, const uint8_t *const *rows, const nb_q8a *x, int64_t b, const int h,
                                     const float *dw, const float *mw, __m256 *acc, __m256 *summ) {
    const int sgn = fmt_signed(fmt);
    const __m256i xv = _mm256_loadu_si256((const __m256i *)x[b].qs);
    __m256i xlo, xhi;
    if (fmt == NB_FMT_NF4) nf4_activations(xv, &xlo, &xhi);
    __m256i s4[2];  // per group of 4 rows
    for (int g = 0; g < 2; g++) {
        __m256i p[4];
        for (int i = 0; i < 4; i++) {
            if (fmt == NB_FMT_NF4) {
                __m256i wlo, whi;
                nf4_weights(rows[4 * g + i], b, h, &wlo, &whi);
                p[i] = nf4_dot(wlo, whi, xlo, xhi);
            } else {
                const __m256i c = codes(fmt, rows[4 * g + i], b, h);
                p[i] = block_dot(sgn, c, sgn ? _mm256_abs_epi8(c) : c, xv);
            }
        }
        s4[g] = reduce4(p[0], p[1], p[2], p[3]);
    }
    *acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_load_ps(dw), _mm256_set1_ps(x[b].d)), combine4(s4[0], s4[1]), *acc);
    if (fmt_has_min(fmt)) *summ = _mm256_fmadd_ps(_mm256_load_ps(mw), _mm256_set1_ps(x[b].s), *summ);
}

// Rows r...r+7 (rows past r_end repeat the last row; their results are dropped). Lane i of
// every vector is row r+i.
NB_T NB_INLINE void matvec8(const qmat *m, nb_format fmt, const nb_q8a *x, float *y, int64_t r, int64_t r_begin,
                            int64_t r_end) {
    const uint8_t *rows[8];
    int64_t ri[8];
    for (int i = 0; i < 8; i++) {
        ri[i] = r + i < r_end ? r + i : r_end - 1;
        rows[i] = row_of(m, ri[i]);
    }
    // The rows NB_PREFETCH_TILES groups ahead, a part per block (as the prefill tiles do): a
    // burst of prefetches at the start of each group filled the miss buffers and stalled. q8
    // prefetches in the block loop; the formats with more to decode do it while the scales are
    // gathered, since in the block loop the prefetch's registers made AVX2 spill (q5_0 in
    // cache 65 → 84 us, and no faster from memory).
    const int pf_in_loop = fmt == NB_FMT_Q8;
    int64_t rn, nr;
    prefetch_rows(r, r_begin, r_end, 8, NB_PREFETCH_TILES, &rn, &nr);
    const uint8_t *next = nr > 0 ? row_of(m, rn) : NULL;
    const size_t next_bytes = nr > 0 ? (size_t)nr * m->row_bytes : 0, part = prefetch_size(next_bytes, m->nb);
    float dw[NB_CHUNK][8] __attribute__((aligned(32))), mw[NB_CHUNK][8] __attribute__((aligned(32)));
    __m256 acc = _mm256_setzero_ps(), summ = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < m->nb; b0 += NB_CHUNK) {
        const int64_t n = m->nb - b0 < NB_CHUNK ? m->nb - b0 : NB_CHUNK;
        const int per64 = fmt == NB_FMT_Q2 || fmt == NB_FMT_NF4;  // one scale per 64: n is even
        for (int64_t j = 0; j < n; j += 1 + per64) {
            if (!pf_in_loop) {
                prefetch_part(next, next_bytes, part, b0 + j);
                if (per64) prefetch_part(next, next_bytes, part, b0 + j + 1);
            }
            for (int i = 0; i < 8; i++) {
                float d, mn;
                NB_BLOCK_PARAMS(m, fmt, ri[i], b0 + j, d, mn, H2F_F16C);
                dw[j][i] = d;
                mw[j][i] = mn;
                if (per64) { dw[j + 1][i] = d; mw[j + 1][i] = mn; }
            }
        }
        int64_t j = 0;
        for (; j + 2 <= n; j += 2) {
            if (pf_in_loop) {
                prefetch_part(next, next_bytes, part, b0 + j);
                prefetch_part(next, next_bytes, part, b0 + j + 1);
            }
            matvec8_block(fmt, rows, x, b0 + j, 0, dw[j], mw[j], &acc, &summ);
            matvec8_block(fmt, rows, x, b0 + j + 1, 1, dw[j + 1], mw[j + 1], &acc, &summ);
        }
        if (j < n) {  // q8/q4: odd block count
            if (pf_in_loop) prefetch_part(next, next_bytes, part, b0 + j);
            matvec8_block(fmt, rows, x, b0 + j, 0, dw[j], mw[j], &acc, &summ);
        }
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(acc, summ));
    for (int i = 0; i < 8 && r + i < r_end; i++) y[r + i] = out[i];
}

#define NB_DEFINE_MATVEC(NAME, FMT)                                                                       \
    NB_T __attribute__((noinline)) static void NAME(const qmat *m, const nb_q8a *x, float *y, int64_t r0, \
                                                       int64_t r1) {                                       \
        const size_t first = (size_t)(r1 - r0 < 8 ? r1 - r0 : 8) * m->row_bytes; /* the first rows, at once */ \
        prefetch_part(row_of(m, r0), first, first + 64, 0);                                                   \
        for (int64_t r = r0; r < r1; r += 8) matvec8(m, FMT, x, y, r, r0, r1);                                  \
    }
NB_DEFINE_MATVEC(matvec_q8_simd, NB_FMT_Q8)
NB_DEFINE_MATVEC(matvec_q4_simd, NB_FMT_Q4)
NB_DEFINE_MATVEC(matvec_q2_simd, NB_FMT_Q2)
NB_DEFINE_MATVEC(matvec_nf4_simd, NB_FMT_NF4)
NB_DEFINE_MATVEC(matvec_q4_0_simd, NB_FMT_Q4_0)
NB_DEFINE_MATVEC(matvec_q5_0_simd, NB_FMT_Q5_0)
NB_DEFINE_MATVEC(matvec_q5_1_simd, NB_FMT_Q5_1)

// ---- nf4 prefill: R rows × 8 tokens -------------------------------------------------------

// Lane t of every vector is token t of the tile. Per block: `ws[i]`/`ms[i]` hold row i's
// dW/mW, `xd`/`xs` the 8 tokens' dX/sX; xt[t] is token t's activations, and for nf4 x16
// the tile's activations already widened (nf4_activations), 2 vectors per (block, token),
// so that each (row, token) pair costs what it costs for the int8 formats. Each unpacked
// weight block serves 8 tokens. Rows past R and tokens past T compute on repeats and are
// dropped.
NB_T NB_INLINE void tile_block(nb_format fmt, const uint8_t *const *rows, const nb_q8a *const *xt,
                                  const __m256i *x16, const float *const *ws, const float *const *ms,
                                  const float *xd, const float *xs, int64_t b, const int h, const int R,
                                  __m256 *acc, __m256 *summ) {
    const int sgn = fmt_signed(fmt);
    for (int i = 0; i < R; i++) {
        __m256i s4[2];
        if (fmt == NB_FMT_NF4) {
            __m256i wlo, whi;
            nf4_weights(rows[i], b, h, &wlo, &whi);
            const __m256i *xb = x16 + 16 * b;
            for (int g = 0; g < 2; g++) {
                __m256i p[4];
                for (int t = 0; t < 4; t++)
                    p[t] = nf4_dot(wlo, whi, _mm256_load_si256(xb + 2 * (4 * g + t)), _mm256_load_si256(xb + 2 * (4 * g + t) + 1));
                s4[g] = reduce4(p[0], p[1], p[2], p[3]);
            }
        } else {
            const __m256i c = codes(fmt, rows[i], b, h), a = sgn ? _mm256_abs_epi8(c) : c;
            for (int g = 0; g < 2; g++) {
                __m256i p[4];
                for (int t = 0; t < 4; t++) p[t] = block_dot(sgn, c, a, _mm256_loadu_si256((const __m256i *)xt[4 * g + t][b].qs));
                s4[g] = reduce4(p[0], p[1], p[2], p[3]);
            }
        }
        const __m256 d8 = _mm256_mul_ps(_mm256_broadcast_ss(ws[i] + b), _mm256_load_ps(xd + 8 * b));
        acc[i] = _mm256_fmadd_ps(d8, combine4(s4[0], s4[1]), acc[i]);
        if (fmt_has_min(fmt)) summ[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ms[i] + b), _mm256_load_ps(xs + 8 * b), summ[i]);
    }
}

NB_T NB_INLINE void tile(const qmat *m, nb_format fmt, const nb_q8a *const *xt, const __m256i *x16,
                            const float *const *ws, const float *const *ms, const float *xd, const float *xs,
                            float *y, int64_t ld_y, int64_t r, const int R, int T) {
    const uint8_t *rows[2];
    __m256 acc[2], summ[2];
    for (int i = 0; i < R; i++) {
        rows[i] = row_of(m, r + i);
        acc[i] = summ[i] = _mm256_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 2 <= m->nb; b += 2) {
        tile_block(fmt, rows, xt, x16, ws, ms, xd, xs, b, 0, R, acc, summ);
        tile_block(fmt, rows, xt, x16, ws, ms, xd, xs, b + 1, 1, R, acc, summ);
    }
    if (b < m->nb) tile_block(fmt, rows, xt, x16, ws, ms, xd, xs, b, 0, R, acc, summ);  // q8/q4: odd block count
    for (int i = 0; i < R; i++) {
        float out[8];
        _mm256_storeu_ps(out, _mm256_add_ps(acc[i], summ[i]));
        for (int t = 0; t < T; t++) y[t * ld_y + r + i] = out[t];
    }
}

typedef void (*tile_fn)(const qmat *, const nb_q8a *const *, const __m256i *, const float *const *,
                        const float *const *, const float *, const float *, float *, int64_t, int64_t, int);
#define NB_DEFINE_TILE(NAME, FMT, R)                                                                           \
    NB_T static void NAME(const qmat *m, const nb_q8a *const *xt, const __m256i *x16, const float *const *ws, \
                             const float *const *ms, const float *xd, const float *xs, float *y, int64_t ld_y,   \
                             int64_t r, int T) {                                                                \
        tile(m, FMT, xt, x16, ws, ms, xd, xs, y, ld_y, r, R, T);                                               \
    }
NB_DEFINE_TILE(tile_nf4_1, NB_FMT_NF4, 1)
NB_DEFINE_TILE(tile_nf4_2, NB_FMT_NF4, 2)

// ---- prefill (and decode with VNNI): rows in lanes -----------------------------------------
//
// Every format but nf4 (and q2 at one token). A tile is PR rows (8 in a ymm on AVX2 and
// AVX-VNNI, 16 in a zmm on AVX-512; AVX2 q5_0 and q4_0 take two ymm, prefill_tile16s): lane i
// of every vector is one row. Per 32-block the PR rows' codes are
// decoded once, as unsigned bytes u = w + off (off: q8 128 with VNNI, q4_0 8, q5_0 16, else 0),
// and transposed so that vector j holds each row's elements 4j...4j+3 in its lane; then for
// every token of the group 8 multiply-adds (vpdpbusd with the token's 4 bytes broadcast from
// memory, zmm or ymm; AVX2: _mm256_maddubs_epi16 + _mm256_madd_epi16) give each lane its
// row's exact block sum Σu·x, and − off·Σx (per token and block, made once per call) makes it
// Σw·x. No horizontal reduction is left: the f32 work is one convert, one multiply (dW·dX)
// and one FMA per PR (row, token) pairs, into an accumulator tile of the group's tokens that
// stays in L1. The arithmetic is matmul_q.c's, in its order, so the floats equal the scalar
// path's. GGML's repacked kernels (ggml-cpu/repack.cpp, MIT) interleave 8 rows' blocks
// likewise, 8 bytes at a time, once at load; here the interleave is made per call (each
// weight block is decoded once per 64 tokens) and the weights keep the file's layout.
//
// On AVX-512 q4_0, q5_0, q4 and q5_1 tiles are decoded straight from the rows' 16 code bytes
// (decode16_nib, lanes in pi order) and the scales come from plain loads; with that, one token
// costs fewer instructions per block than decode's 8-row reduction (matvec8), so AVX-512
// decode takes this path too; AVX-VNNI decode does as well (8 rows; q4_0 and q4 from their
// code bytes by decode8_nib, the others by ucodes and a transpose, still faster than matvec8
// there). Each tile prefetches the rows of a later tile (the next one
// when it runs over many tokens, NB_PREFETCH_TILES ahead at ≤ 4 tokens) into L2, a part per
// block, so that rows stream from memory while the tile computes.

#if NB_W512
#define PR 16
#else
#define PR 8
#endif
#define NB_PR_TOKENS 64  // tokens whose accumulators (2 × 4 KB on AVX-512) stay in L1

/// What makes a format's integer weights unsigned for the multiply: u = w + uoff.
NB_T NB_INLINE int uoff(nb_format fmt) {
    switch (fmt) {
    case NB_FMT_Q8: return NB_VNNI ? 128 : 0;  // AVX2: signed, |w| · sign(x, w)
    case NB_FMT_Q4_0: return 8;
    case NB_FMT_Q5_0: return 16;
    case NB_FMT_NF4: return 32;  // interleaved nf4's high plane (il_block): u = (w >> 7) + 32
    default: return 0;
    }
}

/// Block b's weights as u = w + uoff(fmt), one byte per element in element order (q8 on
/// AVX2: w itself).
NB_T NB_INLINE __m256i ucodes(nb_format fmt, const uint8_t *row, int64_t b, const int h) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i nibbles = _mm256_setr_epi64x(0, 0, 4, 4);
    switch (fmt) {
    case NB_FMT_Q4_0: {
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const nb_block_q4_0 *)row)[b].qs));
        return _mm256_and_si256(_mm256_srlv_epi64(v, nibbles), low4);
    }
    case NB_FMT_Q5_0: {
        const nb_block_q5_0 *blk = (const nb_block_q5_0 *)row + b;
        __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk->qs));
        return _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi64(v, nibbles), low4),
                               _mm256_and_si256(bits_to_bytes(blk->qh), _mm256_set1_epi8(0x10)));
    }
    case NB_FMT_Q8: {
        const __m256i c = codes(fmt, row, b, h);
        return NB_VNNI ? _mm256_xor_si256(c, _mm256_set1_epi8((char)0x80)) : c;
    }
    default: return codes(fmt, row, b, h);
    }
}

/// Byte offset of the f16 d (and m right after it) of 32-block b within a row.
NB_T NB_INLINE size_t scale_offset(nb_format fmt, int64_t b) {
    switch (fmt) {
    case NB_FMT_Q8: return (size_t)b * sizeof(nb_block_q8);
    case NB_FMT_Q4: return (size_t)b * sizeof(nb_block_q4);
    case NB_FMT_Q2: return (size_t)(b / 2) * sizeof(nb_block_q2);
    case NB_FMT_Q4_0: return (size_t)b * sizeof(nb_block_q4_0);
    case NB_FMT_Q5_0: return (size_t)b * sizeof(nb_block_q5_0);
    default: return (size_t)b * sizeof(nb_block_q5_1);
    }
}

/// Σ of a q8a block's 32 int8.
NB_T NB_INLINE int32_t q8a_isum(const nb_q8a *x) {
    const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x->qs), _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());  // 4 × Σ(x + 128) of 8
    const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
}

NB_T NB_INLINE long long load_i64(const void *p) {
    long long v;
    memcpy(&v, p, 8);
    return v;
}

NB_T NB_INLINE int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// Rows' codes c[i] (i < 8) → v[j], lane i = bytes 4j...4j+3 of c[i] (an 8 × 8 dword transpose).
NB_T NB_INLINE void transpose8x8(const __m256i *c, __m256i *v) {
    __m256i u[2][4];
    for (int g = 0; g < 2; g++) {
        const __m256i *z = c + 4 * g;
        const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
        const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
        // u[g][m]: low 128 bits dword m of rows 4g...4g+3, high 128 bits dword m + 4
        u[g][0] = _mm256_unpacklo_epi64(t0, t2);
        u[g][1] = _mm256_unpackhi_epi64(t0, t2);
        u[g][2] = _mm256_unpacklo_epi64(t1, t3);
        u[g][3] = _mm256_unpackhi_epi64(t1, t3);
    }
    for (int m = 0; m < 4; m++) {
        v[m] = _mm256_permute2x128_si256(u[0][m], u[1][m], 0x20);
        v[m + 4] = _mm256_permute2x128_si256(u[0][m], u[1][m], 0x31);
    }
}

#if NB_W512
typedef __m512i pvi;
typedef __m512 pvf;
// 16 rows' codes → v[j], lane i = bytes 4j...4j+3 of c[i].
NB_T NB_INLINE void transpose_rows(const __m256i *c, __m512i *v) {
    __m512i u[2][4];
    for (int g = 0; g < 2; g++) {
        // z[i]: rows 8g + i (low 256 bits) and 8g + 4 + i (high)
        __m512i z[4];
        for (int i = 0; i < 4; i++) z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(c[8 * g + i]), c[8 * g + 4 + i], 1);
        const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
        const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
        // u[g][m], 128-bit lanes: rows 8g..+3 dword m, dword m + 4, rows 8g+4..+7 dword m, dword m + 4
        u[g][0] = _mm512_unpacklo_epi64(t0, t2);
        u[g][1] = _mm512_unpackhi_epi64(t0, t2);
        u[g][2] = _mm512_unpacklo_epi64(t1, t3);
        u[g][3] = _mm512_unpackhi_epi64(t1, t3);
    }
    for (int m = 0; m < 4; m++) {
        v[m] = _mm512_shuffle_i64x2(u[0][m], u[1][m], _MM_SHUFFLE(2, 0, 2, 0));
        v[m + 4] = _mm512_shuffle_i64x2(u[0][m], u[1][m], _MM_SHUFFLE(3, 1, 3, 1));
    }
}
NB_T NB_INLINE __m512i prow_offsets(size_t row_bytes, int R) {
    int32_t o[16];
    for (int i = 0; i < 16; i++) o[i] = (int32_t)((size_t)(i < R ? i : R - 1) * row_bytes);
    return _mm512_loadu_si512(o);
}
// The f16 pairs at base + offsets: d (low halves) and m (high halves) as floats.
NB_T NB_INLINE void pscales(const uint8_t *base, __m512i offs, __m512 *d, __m512 *m, const int with_m) {
    const __m512i g = _mm512_i32gather_epi32(offs, base, 1);
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
    if (with_m) *m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
}
#define PV_SETI(v) _mm512_set1_epi32(v)
#define PV_SETF(v) _mm512_set1_ps(v)
#define PV_ZEROI() _mm512_setzero_si512()
#define PV_ZEROF() _mm512_setzero_ps()
#define PV_LOADF(p) _mm512_load_ps(p)
#define PV_STOREF(p, v) _mm512_store_ps(p, v)
#define PV_LOADI(p) _mm512_load_si512(p)
#define PV_STOREI(p, v) _mm512_store_si512(p, v)
#define PV_SUBI(a, b) _mm512_sub_epi32(a, b)
#define PV_ADDI(a, b) _mm512_add_epi32(a, b)
#define PV_ADDF(a, b) _mm512_add_ps(a, b)
#define PV_SUBF(a, b) _mm512_sub_ps(a, b)
#define PV_MULF(a, b) _mm512_mul_ps(a, b)
#define PV_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PV_CVT(a) _mm512_cvtepi32_ps(a)
#define PV_MULLO(a, b) _mm512_mullo_epi32(a, b)
#define PV_SLLI7(a) _mm512_slli_epi32(a, 7)
#define PV_SRLI8(a) _mm512_srli_epi32(a, 8)
#define PV_MINI(a, b) _mm512_min_epi32(a, b)
#define PV_LANES() _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define PV_BYTES32(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))  // PR bytes as int32
#define PV_GATHERF(base, idx) _mm512_i32gather_ps(idx, base, 4)
#define PV_TABLE(t) _mm512_broadcast_i32x4(t)  // a 16-byte table in every 128-bit lane
#define PV_LOADUI(p) _mm512_loadu_si512(p)
#define PV_SET1B(v) _mm512_set1_epi8(v)
#define PV_AND(a, b) _mm512_and_si512(a, b)
#define PV_SRLI16(a, n) _mm512_srli_epi16(a, n)
#define PV_SHUFB(t, i) _mm512_shuffle_epi8(t, i)  // (matmul_k_simd.h uses these too)
#define PV_STORE_ROWS(p, v, R) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (R)) - 1), v)
#define PV_DPBUSD(acc, a, b) _mm512_dpbusd_epi32(acc, a, b)
#define PV_DPWSSD(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)
#else
typedef __m256i pvi;
typedef __m256 pvf;
NB_T NB_INLINE void transpose_rows(const __m256i *c, __m256i *v) { transpose8x8(c, v); }
NB_T NB_INLINE __m256i prow_offsets(size_t row_bytes, int R) {
    int32_t o[8];
    for (int i = 0; i < 8; i++) o[i] = (int32_t)((size_t)(i < R ? i : R - 1) * row_bytes);
    return _mm256_loadu_si256((const __m256i *)o);
}
NB_T NB_INLINE void pscales(const uint8_t *base, __m256i offs, __m256 *d, __m256 *m, const int with_m) {
    const __m256i g = _mm256_i32gather_epi32((const int *)base, offs, 1);
    const __m256i lo16 = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    *d = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_shuffle_epi8(g, lo16), 0x08)));
    if (with_m)
        *m = _mm256_cvtph_ps(_mm256_castsi256_si128(
            _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_srli_epi32(g, 16), lo16), 0x08)));
}
#define PV_SETI(v) _mm256_set1_epi32(v)
#define PV_SETF(v) _mm256_set1_ps(v)
#define PV_ZEROI() _mm256_setzero_si256()
#define PV_ZEROF() _mm256_setzero_ps()
#define PV_LOADF(p) _mm256_load_ps(p)
#define PV_STOREF(p, v) _mm256_store_ps(p, v)
#define PV_LOADI(p) _mm256_load_si256((const __m256i *)(p))
#define PV_STOREI(p, v) _mm256_store_si256((__m256i *)(p), v)
#define PV_SUBI(a, b) _mm256_sub_epi32(a, b)
#define PV_ADDI(a, b) _mm256_add_epi32(a, b)
#define PV_ADDF(a, b) _mm256_add_ps(a, b)
#define PV_SUBF(a, b) _mm256_sub_ps(a, b)
#define PV_MULF(a, b) _mm256_mul_ps(a, b)
#define PV_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define PV_CVT(a) _mm256_cvtepi32_ps(a)
#define PV_MULLO(a, b) _mm256_mullo_epi32(a, b)
#define PV_SLLI7(a) _mm256_slli_epi32(a, 7)
#define PV_SRLI8(a) _mm256_srli_epi32(a, 8)
#define PV_MINI(a, b) _mm256_min_epi32(a, b)
#define PV_LANES() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define PV_BYTES32(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define PV_GATHERF(base, idx) _mm256_i32gather_ps(base, idx, 4)
#define PV_TABLE(t) _mm256_broadcastsi128_si256(t)
#define PV_LOADUI(p) _mm256_loadu_si256((const __m256i *)(p))
#define PV_SET1B(v) _mm256_set1_epi8(v)
#define PV_AND(a, b) _mm256_and_si256(a, b)
#define PV_SRLI16(a, n) _mm256_srli_epi16(a, n)
#define PV_SHUFB(t, i) _mm256_shuffle_epi8(t, i)
NB_T NB_INLINE void pv_store_rows(float *p, __m256 v, int R) {
    if (R == 8) { _mm256_storeu_ps(p, v); return; }
    float o[8];
    _mm256_storeu_ps(o, v);
    for (int i = 0; i < R; i++) p[i] = o[i];
}
#define PV_STORE_ROWS(p, v, R) pv_store_rows(p, v, R)
#if NB_VNNI
#define PV_DPBUSD(acc, a, b) NB_DPBUSD(acc, a, b)
#define PV_DPWSSD(acc, a, b) NB_DPWSSD(acc, a, b)
#endif
#endif

/// s + Σ_{j < 8} v[j] · (bytes 4j...4j+3 of x) per lane, exactly (v unsigned, x signed;
/// AVX2 q8: v signed and a its |v|). On AVX2 the int16 pairs of _mm256_maddubs_epi16 are
/// summed over groups of G vectors before widening, where G·2·umax·127 < 2^15.
NB_T NB_INLINE pvi pdot8(nb_format fmt, pvi s, const pvi *v, const pvi *a, const int8_t *x) {
#if NB_VNNI
    (void)fmt; (void)a;
    pvi s1 = PV_ZEROI();
    for (int j = 0; j < 8; j += 2) {
        s = PV_DPBUSD(s, v[j], PV_SETI(load_i32(x + 4 * j)));
        s1 = PV_DPBUSD(s1, v[j + 1], PV_SETI(load_i32(x + 4 * j + 4)));
    }
    return PV_ADDI(s, s1);
#else
    const int G = (fmt == NB_FMT_Q8 || fmt == NB_FMT_NF4) ? 1 : (fmt == NB_FMT_Q5_0 || fmt == NB_FMT_Q5_1) ? 4 : 8;
    for (int j = 0; j < 8; j += G) {
        __m256i p = _mm256_setzero_si256();
        for (int g = 0; g < G; g++) {
            const __m256i xb = _mm256_set1_epi32(load_i32(x + 4 * (j + g)));
            const __m256i q = fmt == NB_FMT_Q8 ? _mm256_maddubs_epi16(a[j + g], _mm256_sign_epi8(xb, v[j + g]))
                                               : _mm256_maddubs_epi16(v[j + g], xb);
            p = g ? _mm256_add_epi16(p, q) : q;
        }
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    return s;
#endif
}

#if NB_W512
/// Whether a format's tile is decoded straight from the blocks' 16 code bytes (q4_0, q5_0, q4,
/// q5_1 on AVX-512), with its lanes in the order pi_lane: lane 4L + k is row 4k + L.
NB_T NB_INLINE int nib_tile(nb_format fmt) {
    return fmt == NB_FMT_Q4_0 || fmt == NB_FMT_Q5_0 || fmt == NB_FMT_Q4 || fmt == NB_FMT_Q5_1;
}
NB_T NB_INLINE size_t nib_block_bytes(nb_format fmt) {
    return fmt == NB_FMT_Q4_0 ? sizeof(nb_block_q4_0) : fmt == NB_FMT_Q5_0 ? sizeof(nb_block_q5_0)
         : fmt == NB_FMT_Q4 ? sizeof(nb_block_q4) : sizeof(nb_block_q5_1);
}
NB_T NB_INLINE __m512i pi_lanes(void) { return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15); }
NB_T NB_INLINE __m512i prow_offsets_pi(size_t row_bytes, int R) {
    const __m512i row = _mm512_min_epi32(pi_lanes(), _mm512_set1_epi32(R - 1));
    return _mm512_mullo_epi32(row, _mm512_set1_epi32((int32_t)row_bytes));
}
/// The first 8 bytes at offset o of the 16 rows, lane l from row pi(l) (pi_lane order) or
/// row l, as 16 dwords: *lo their bytes 0...3, *hi bytes 4...7 (plain loads: a gather costs
/// more on Zen 4).
NB_T NB_INLINE void head16(const uint8_t *const *rows, size_t o, const int pi, __m512i *lo, __m512i *hi) {
#define NB_Q64(i) load_i64(rows[i] + o)
    // qword l of a: row p(l); of c: row p(8 + l)
    const __m512i a = pi ? _mm512_set_epi64(NB_Q64(13), NB_Q64(9), NB_Q64(5), NB_Q64(1), NB_Q64(12), NB_Q64(8), NB_Q64(4), NB_Q64(0))
                         : _mm512_set_epi64(NB_Q64(7), NB_Q64(6), NB_Q64(5), NB_Q64(4), NB_Q64(3), NB_Q64(2), NB_Q64(1), NB_Q64(0));
    const __m512i c = pi ? _mm512_set_epi64(NB_Q64(15), NB_Q64(11), NB_Q64(7), NB_Q64(3), NB_Q64(14), NB_Q64(10), NB_Q64(6), NB_Q64(2))
                         : _mm512_set_epi64(NB_Q64(15), NB_Q64(14), NB_Q64(13), NB_Q64(12), NB_Q64(11), NB_Q64(10), NB_Q64(9), NB_Q64(8));
#undef NB_Q64
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *lo = _mm512_permutex2var_epi32(a, even, c);
    if (hi) *hi = _mm512_permutex2var_epi32(_mm512_srli_epi64(a, 32), even, _mm512_srli_epi64(c, 32));
}

/// 16 rows' block b of a nib_tile format, unsigned, in pi_lane order: the rows' 16 qs bytes
/// are put 4 rows to a zmm (one per 128-bit lane) and transposed as dwords (8 unpacks, where
/// 16 decoded rows take 32 shuffles), then split into nibbles; q5_0/q5_1's fifth bits come
/// from h (the rows' qh), 4 bits at a time expanded to bytes by a 16-entry table (vpermd).
NB_T NB_INLINE void decode16_nib(nb_format fmt, const uint8_t *const *rows, int64_t b, __m512i h, __m512i *v) {
    size_t bs, qs, qh = 0;
    switch (fmt) {
    case NB_FMT_Q4_0: bs = sizeof(nb_block_q4_0); qs = offsetof(nb_block_q4_0, qs); break;
    case NB_FMT_Q5_0: bs = sizeof(nb_block_q5_0); qs = offsetof(nb_block_q5_0, qs); qh = offsetof(nb_block_q5_0, qh); break;
    case NB_FMT_Q4: bs = sizeof(nb_block_q4); qs = offsetof(nb_block_q4, qs); break;
    default: bs = sizeof(nb_block_q5_1); qs = offsetof(nb_block_q5_1, qs); qh = offsetof(nb_block_q5_1, qh); break;
    }
    const size_t o = (size_t)b * bs + qs;
    __m512i z[4];  // z[g], 128-bit lane L: row 4g + L
    for (int g = 0; g < 4; g++) {
#define NB_ROWQS(L) _mm_loadu_si128((const __m128i *)(rows[4 * g + (L)] + o))
        z[g] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(NB_ROWQS(0)), NB_ROWQS(1), 1),
                                                     NB_ROWQS(2), 2), NB_ROWQS(3), 3);
#undef NB_ROWQS
    }
    // 128-bit lane L of t*: rows L, 4 + L (t0, t1) and 8 + L, 12 + L (t2, t3)
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    __m512i g[4];  // g[j], lane 4L + k: bytes 4j...4j+3 of row 4k + L's qs
    g[0] = _mm512_unpacklo_epi64(t0, t2);
    g[1] = _mm512_unpackhi_epi64(t0, t2);
    g[2] = _mm512_unpacklo_epi64(t1, t3);
    g[3] = _mm512_unpackhi_epi64(t1, t3);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int j = 0; j < 4; j++) {
        v[j] = _mm512_and_si512(g[j], low4);                            // elements 4j...4j+3
        v[j + 4] = _mm512_and_si512(_mm512_srli_epi16(g[j], 4), low4);  // elements 16 + 4j...
    }
    if (qh) {
        // entry n: byte m = 0x10 where bit m of n is set
        const __m512i lut = _mm512_setr_epi32(0x00000000, 0x00000010, 0x00001000, 0x00001010, 0x00100000, 0x00100010,
                                              0x00101000, 0x00101010, 0x10000000, 0x10000010, 0x10001000, 0x10001010,
                                              0x10100000, 0x10100010, 0x10101000, 0x10101010);
        for (int j = 0; j < 8; j++)  // vpermd reads the low 4 bits of each index: bits 4j...4j+3
            v[j] = _mm512_or_si512(v[j], _mm512_permutexvar_epi32(j ? _mm512_srli_epi32(h, 4 * j) : h, lut));
    }
}
#endif

#if NB_VNNI && !NB_W512
/// 8 rows' block b of q4_0 or q4 as unsigned codes, lane i = row i: the rows' 16 qs bytes
/// two to a ymm (rows g and 4 + g) and transposed as dwords (8 unpacks, where ucodes and
/// transpose8x8 take 8 shifts and 24 shuffles), then split into nibbles: decode16_nib on
/// 256 bits.
NB_T NB_INLINE void decode8_nib(nb_format fmt, const uint8_t *const *rows, int64_t b, __m256i *v) {
    const size_t o = fmt == NB_FMT_Q4_0 ? (size_t)b * sizeof(nb_block_q4_0) + offsetof(nb_block_q4_0, qs)
                                        : (size_t)b * sizeof(nb_block_q4) + offsetof(nb_block_q4, qs);
    __m256i z[4];  // z[g]: row g (low 128 bits), row 4 + g (high)
    for (int g = 0; g < 4; g++)
        z[g] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(rows[g] + o))),
                                       _mm_loadu_si128((const __m128i *)(rows[4 + g] + o)), 1);
    const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    // g[j], lane i: bytes 4j...4j+3 of row i's qs
    const __m256i g[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                          _mm256_unpackhi_epi64(t1, t3)};
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_and_si256(g[j], low4);                            // elements 4j...4j+3
        v[j + 4] = _mm256_and_si256(_mm256_srli_epi16(g[j], 4), low4);  // elements 16 + 4j...
    }
}
#endif

/// Rows r0...r0+R-1 (R ≤ PR) against tokens t0...t0+T-1 (T ≤ NB_PR_TOKENS). corr: per
/// token and block −uoff·Σx (when uoff ≠ 0).
NB_T NB_INLINE void prefill_tile(const qmat *m, nb_format fmt, const nb_q8a *xq, const int32_t *corr, float *y,
                                 int64_t ld_y, int64_t r0, int R, int64_t t0, int T, const uint8_t *next,
                                 size_t next_bytes) {
    const int64_t nb = m->nb;
    const int off = uoff(fmt), has_min = fmt_has_min(fmt);
    float acc[NB_PR_TOKENS * PR] __attribute__((aligned(64)));
    float summ[NB_PR_TOKENS * PR] __attribute__((aligned(64)));
    for (int t = 0; t < T; t++) {
        PV_STOREF(acc + t * PR, PV_ZEROF());
        if (has_min) PV_STOREF(summ + t * PR, PV_ZEROF());
    }
    const uint8_t *rows[PR];
    for (int i = 0; i < PR; i++) rows[i] = row_of(m, r0 + (i < R ? i : R - 1));
    const uint8_t *base = rows[0];
#if NB_W512
    const int pi = nib_tile(fmt);
    const pvi offs = pi ? prow_offsets_pi(m->row_bytes, R) : prow_offsets(m->row_bytes, R);
#else
    const pvi offs = prow_offsets(m->row_bytes, R);
#endif
    const size_t part = prefetch_size(next_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        prefetch_part(next, next_bytes, part, b);
        pvi v[8], a[8];
        pvf dw, mw = PV_ZEROF();
#if NB_W512
        if (pi) {
            // d (and m), qh: q4_0 [d], q4 [d m], q5_0 [d qh], q5_1 [d m qh]
            __m512i lo, hi, h;
            head16(rows, (size_t)b * nib_block_bytes(fmt), 1, &lo, &hi);
            if (fmt == NB_FMT_Q5_0) h = _mm512_or_si512(_mm512_srli_epi32(lo, 16), _mm512_slli_epi32(hi, 16));
            else h = hi;
            decode16_nib(fmt, rows, b, h, v);
            dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(lo));
            if (has_min) mw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(lo, 16)));
        } else
#endif
        {
#if NB_VNNI && !NB_W512
            if (fmt == NB_FMT_Q4_0 || fmt == NB_FMT_Q4) decode8_nib(fmt, rows, b, v);
            else
#endif
            {
                __m256i c[PR];
                for (int i = 0; i < PR; i++) c[i] = ucodes(fmt, rows[i], b, (int)(b & 1));
                transpose_rows(c, v);
            }
#if NB_W512
            if (fmt == NB_FMT_Q8) {  // d: the first 2 bytes of a block
                __m512i lo;
                head16(rows, scale_offset(fmt, b), 0, &lo, NULL);
                dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(lo));
            } else
#endif
                pscales(base + scale_offset(fmt, b), offs, &dw, &mw, has_min);
        }
#if !NB_VNNI
        if (fmt == NB_FMT_Q8)
            for (int j = 0; j < 8; j++) a[j] = _mm256_abs_epi8(v[j]);
#endif
        const nb_q8a *x = xq + t0 * nb + b;
        const int32_t *cb = corr + t0 * nb + b;
        for (int t = 0; t < T; t++, x += nb, cb += nb) {
            const pvi s = pdot8(fmt, off ? PV_SETI(*cb) : PV_ZEROI(), v, a, x->qs);
            PV_STOREF(acc + t * PR, PV_FMA(PV_MULF(dw, PV_SETF(x->d)), PV_CVT(s), PV_LOADF(acc + t * PR)));
            if (has_min) PV_STOREF(summ + t * PR, PV_FMA(mw, PV_SETF(x->s), PV_LOADF(summ + t * PR)));
        }
    }
    for (int t = 0; t < T; t++) {
        pvf out = PV_LOADF(acc + t * PR);
        if (has_min) out = PV_ADDF(out, PV_LOADF(summ + t * PR));
#if NB_W512
        if (pi) out = _mm512_permutexvar_ps(pi_lanes(), out);  // pi_lane is its own inverse
#endif
        PV_STORE_ROWS(y + (t0 + t) * ld_y + r0, out, R);
    }
}

#if !NB_VNNI
// AVX2 prefill of q5_0 and q4_0 in 16-row tiles with the roles of the operands swapped: the
// weights stay signed (w = q − 16, q − 8) and are the memory operand of _mm256_maddubs_epi16,
// the activations are made unsigned (xu = x + 128) and broadcast once for both 8-row halves,
// and −128 · Σw per row (from the tile's transposed weights) makes Σ xu·w the exact Σ x·w.
// |pair| ≤ 2 · 255 · 16, so 4 (q5_0) or 8 (q4_0) maddubs sum in int16. Against the 8-row
// tiles: 61 instead of 76 instructions per 16 rows, token and block in the inner loop; q5_0
// 2048 × 640 × 64 tokens 13 % fewer instructions in all (callgrind), 12 % faster.
NB_T NB_INLINE void prefill_tile16s(const qmat *m, nb_format fmt, const uint8_t *xu, const nb_q8a *xq, float *y,
                                    int64_t ld_y, int64_t r0, int R, int64_t t0, int T, const uint8_t *next,
                                    size_t next_bytes) {
    const int64_t nb = m->nb;
    const int G = fmt == NB_FMT_Q5_0 ? 4 : 8;
    float acc[NB_PR_TOKENS * 16] __attribute__((aligned(64)));
    for (int t = 0; t < 2 * T; t++) _mm256_store_ps(acc + 8 * t, _mm256_setzero_ps());
    const uint8_t *rows[16];
    for (int i = 0; i < 16; i++) rows[i] = row_of(m, r0 + (i < R ? i : R - 1));
    const __m256i offs[2] = {prow_offsets(m->row_bytes, R), prow_offsets(m->row_bytes, R - 8 > 0 ? R - 8 : 1)};
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    const size_t part = prefetch_size(next_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        prefetch_part(next, next_bytes, part, b);
        __m256i v[16] __attribute__((aligned(32)));  // weights, read as memory operands
        __m256i init[2];
        __m256 dw[2];
        for (int h = 0; h < 2; h++) {
            __m256i c[8];
            for (int i = 0; i < 8; i++) c[i] = codes(fmt, rows[8 * h + i], b, 0);
            transpose8x8(c, v + 8 * h);
            __m256i sw = _mm256_setzero_si256();  // Σw per row: |pair sums| ≤ 8 · 32
            for (int j = 0; j < 8; j++) sw = _mm256_add_epi16(sw, _mm256_maddubs_epi16(ones8, v[8 * h + j]));
            init[h] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sw, ones16), 7));
            __m256 unused;
            pscales(rows[8 * h] + scale_offset(fmt, b), offs[h], &dw[h], &unused, 0);
        }
        const uint8_t *xb = xu + (size_t)(t0 * nb + b) * 32;
        const nb_q8a *x = xq + t0 * nb + b;
        for (int t = 0; t < T; t++, xb += 32 * nb, x += nb) {
            __m256i s0 = init[0], s1 = init[1];
            for (int j = 0; j < 8; j += G) {
                __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
                for (int g = 0; g < G; g++) {
                    const __m256i xv = _mm256_set1_epi32(load_i32(xb + 4 * (j + g)));
                    const __m256i q0 = _mm256_maddubs_epi16(xv, v[j + g]), q1 = _mm256_maddubs_epi16(xv, v[8 + j + g]);
                    p0 = g ? _mm256_add_epi16(p0, q0) : q0;
                    p1 = g ? _mm256_add_epi16(p1, q1) : q1;
                }
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, ones16));
                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, ones16));
            }
            const __m256 dx = _mm256_set1_ps(x->d);
            _mm256_store_ps(acc + 16 * t, _mm256_fmadd_ps(_mm256_mul_ps(dw[0], dx), _mm256_cvtepi32_ps(s0), _mm256_load_ps(acc + 16 * t)));
            _mm256_store_ps(acc + 16 * t + 8,
                            _mm256_fmadd_ps(_mm256_mul_ps(dw[1], dx), _mm256_cvtepi32_ps(s1), _mm256_load_ps(acc + 16 * t + 8)));
        }
    }
    for (int t = 0; t < T; t++) {
        float *yt = y + (t0 + t) * ld_y + r0;
        pv_store_rows(yt, _mm256_load_ps(acc + 16 * t), R < 8 ? R : 8);
        if (R > 8) pv_store_rows(yt + 8, _mm256_load_ps(acc + 16 * t + 8), R - 8);
    }
}

NB_T NB_INLINE void prefill_rows16s(const qmat *m, nb_format fmt, const nb_q8a *xq, float *y, int64_t n_tokens,
                                    int64_t ld_y, int64_t row_begin, int64_t row_end) {
    const int64_t nb = m->nb;
    uint8_t *xu = malloc((size_t)(n_tokens * nb) * 32);
    if (!xu) { nb_matmul_q_scalar(m, xq, y, n_tokens, ld_y, row_begin, row_end); return; }
    for (int64_t i = 0; i < n_tokens * nb; i++)
        _mm256_storeu_si256((__m256i *)(xu + 32 * i),
                            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xq[i].qs), _mm256_set1_epi8((char)0x80)));
    if (n_tokens <= 4) {
        const size_t first = (size_t)(row_end - row_begin < 16 ? row_end - row_begin : 16) * m->row_bytes;
        prefetch_part(row_of(m, row_begin), first, first + 64, 0);
    }
    for (int64_t r = row_begin; r < row_end; r += 16) {
        const int R = row_end - r < 16 ? (int)(row_end - r) : 16;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += NB_PR_TOKENS) {
            const int T = n_tokens - t0 < NB_PR_TOKENS ? (int)(n_tokens - t0) : NB_PR_TOKENS;
            int64_t rn = r, nr = R;
            if (t0 + T >= n_tokens) prefetch_rows(r, row_begin, row_end, 16, T <= 4 ? NB_PREFETCH_TILES : 1, &rn, &nr);
            prefill_tile16s(m, fmt, xu, xq, y, ld_y, r, R, t0, T, nr > 0 ? row_of(m, rn) : NULL,
                            nr > 0 ? (size_t)nr * m->row_bytes : 0);
        }
    }
    free(xu);
}
#endif

NB_T NB_INLINE void prefill_rows(const qmat *m, nb_format fmt, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y,
                                 int64_t row_begin, int64_t row_end) {
    const int64_t nb = m->nb;
#if !NB_VNNI
    if (fmt == NB_FMT_Q5_0 || fmt == NB_FMT_Q4_0) {
        prefill_rows16s(m, fmt, xq, y, n_tokens, ld_y, row_begin, row_end);
        return;
    }
#endif
    int32_t *corr = NULL, small[256];
    if (uoff(fmt)) {
        corr = n_tokens * nb <= 256 ? small : malloc(sizeof(int32_t) * (size_t)(n_tokens * nb));
        if (!corr) { nb_matmul_q_scalar(m, xq, y, n_tokens, ld_y, row_begin, row_end); return; }
        for (int64_t i = 0; i < n_tokens * nb; i++) corr[i] = -uoff(fmt) * q8a_isum(xq + i);
    }
    if (n_tokens <= 4) {  // the first tile's own rows, at once: nothing fetched them yet
        const size_t first = (size_t)(row_end - row_begin < PR ? row_end - row_begin : PR) * m->row_bytes;
        prefetch_part(row_of(m, row_begin), first, first + 64, 0);
    }
    // Decode prefetches about NB_PREFETCH_BYTES ahead, in whole tiles (1...NB_PREFETCH_TILES):
    // q8's tiles at k = 576 are 9.6 KiB, and 4 of them ahead read 46–47 GB/s from memory on
    // one Zen 5 thread where 2 read 51–57; q4's (5.6 KiB) keep 4.
    const size_t tile_bytes = (size_t)PR * m->row_bytes;
    const int ahead = tile_bytes * NB_PREFETCH_TILES <= NB_PREFETCH_BYTES ? NB_PREFETCH_TILES
                    : tile_bytes >= NB_PREFETCH_BYTES ? 1 : (int)(NB_PREFETCH_BYTES / tile_bytes);
    for (int64_t r = row_begin; r < row_end; r += PR) {
        const int R = row_end - r < PR ? (int)(row_end - r) : PR;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += NB_PR_TOKENS) {
            const int T = n_tokens - t0 < NB_PR_TOKENS ? (int)(n_tokens - t0) : NB_PR_TOKENS;
            // this tile's rows again for the next token group, else later tiles' (few tokens
            // leave little time per tile: further ahead)
            int64_t rn = r, nr = R;
            if (t0 + T >= n_tokens) prefetch_rows(r, row_begin, row_end, PR, T <= 4 ? ahead : 1, &rn, &nr);
            prefill_tile(m, fmt, xq, corr, y, ld_y, r, R, t0, T, nr > 0 ? row_of(m, rn) : NULL,
                         nr > 0 ? (size_t)nr * m->row_bytes : 0);
        }
    }
    if (corr != small) free(corr);
}

#define NB_DEFINE_PREFILL(NAME, FMT)                                                                             \
    NB_T __attribute__((noinline)) static void NAME(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, \
                                                    int64_t ld_y, int64_t r0, int64_t r1) {                      \
        prefill_rows(m, FMT, xq, y, n_tokens, ld_y, r0, r1);                                                     \
    }
NB_DEFINE_PREFILL(prefill_q8_simd, NB_FMT_Q8)
NB_DEFINE_PREFILL(prefill_q4_simd, NB_FMT_Q4)
NB_DEFINE_PREFILL(prefill_q2_simd, NB_FMT_Q2)
NB_DEFINE_PREFILL(prefill_q4_0_simd, NB_FMT_Q4_0)
NB_DEFINE_PREFILL(prefill_q5_0_simd, NB_FMT_Q5_0)
NB_DEFINE_PREFILL(prefill_q5_1_simd, NB_FMT_Q5_1)

#define NB_TOKEN_GROUP 64  // tokens whose activations stay in L2 while the rows run over them
#define NB_TILE_ROWS 2

NB_T void NB_QENTRY(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y,
                                  int64_t row_begin, int64_t row_end) {
    const int64_t nb = m->nb;
    // Decode: 8 rows in the lanes with a reduction (matvec8) on AVX2, and for q2 and nf4; rows
    // in the lanes (as prefill) with VNNI, where it takes fewer instructions per block and
    // streams the rows from memory faster (prefetching tiles ahead): on AVX-512 in zmm, on
    // AVX-VNNI 8 rows in a ymm (Zen 5, 640 × 2048 in cache: q8 34 → 30 us against AVX2's
    // matvec8, q4_0 39 → 30, q5_0 52 → 44; matvec8 with vpdpbusd took 54 for q8).
    if (n_tokens == 1 && (!NB_VNNI || m->fmt == NB_FMT_Q2 || m->fmt == NB_FMT_NF4)) {
        switch (m->fmt) {
        case NB_FMT_Q8: matvec_q8_simd(m, xq, y, row_begin, row_end); break;
        case NB_FMT_Q4: matvec_q4_simd(m, xq, y, row_begin, row_end); break;
        case NB_FMT_Q2: matvec_q2_simd(m, xq, y, row_begin, row_end); break;
        case NB_FMT_NF4: matvec_nf4_simd(m, xq, y, row_begin, row_end); break;
        case NB_FMT_Q4_0: matvec_q4_0_simd(m, xq, y, row_begin, row_end); break;
        case NB_FMT_Q5_0: matvec_q5_0_simd(m, xq, y, row_begin, row_end); break;
        case NB_FMT_Q5_1: matvec_q5_1_simd(m, xq, y, row_begin, row_end); break;
        default: break;
        }
        return;
    }
    switch (m->fmt) {
    case NB_FMT_Q8: prefill_q8_simd(m, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case NB_FMT_Q4: prefill_q4_simd(m, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case NB_FMT_Q2: prefill_q2_simd(m, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case NB_FMT_Q4_0: prefill_q4_0_simd(m, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case NB_FMT_Q5_0: prefill_q5_0_simd(m, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case NB_FMT_Q5_1: prefill_q5_1_simd(m, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    default: break;
    }
    // nf4 (int16 weights): R rows × 8 tokens.
    const tile_fn tiles[2] = {tile_nf4_1, tile_nf4_2};
    // Scratch: for nf4, the token group's activations widened to int16 (per octet, block
    // and token 2 vectors); per tile row, dW and mW per block; per token octet, dX and sX
    // per block × 8.
    const int64_t octets = NB_TOKEN_GROUP / 8;
    const size_t x16_vectors = m->fmt == NB_FMT_NF4 ? (size_t)(octets * nb * 16) : 0;
    const size_t scratch_bytes =
        (32 * x16_vectors + sizeof(float) * (size_t)(nb * 2 * NB_TILE_ROWS + octets * nb * 16) + 63) & ~(size_t)31;
    __m256i *scratch = aligned_alloc(32, scratch_bytes);
    if (!scratch) { nb_matmul_q_scalar(m, xq, y, n_tokens, ld_y, row_begin, row_end); return; }
    __m256i *x16 = scratch;
    float *xd = (float *)(scratch + x16_vectors), *xs = xd + octets * nb * 8, *wbuf = xs + octets * nb * 8;
    const float *ws[NB_TILE_ROWS], *ms[NB_TILE_ROWS];
    for (int i = 0; i < NB_TILE_ROWS; i++) { ws[i] = wbuf + 2 * i * nb; ms[i] = wbuf + (2 * i + 1) * nb; }
    for (int64_t t0 = 0; t0 < n_tokens; t0 += NB_TOKEN_GROUP) {
        const int64_t tg = n_tokens - t0 < NB_TOKEN_GROUP ? n_tokens - t0 : NB_TOKEN_GROUP;
        const int64_t no = (tg + 7) / 8;
        for (int64_t o = 0; o < no; o++)
            for (int t = 0; t < 8; t++) {
                const int64_t tok = t0 + (8 * o + t < tg ? 8 * o + t : tg - 1);
                for (int64_t b = 0; b < nb; b++) {
                    xd[(o * nb + b) * 8 + t] = xq[tok * nb + b].d;
                    xs[(o * nb + b) * 8 + t] = xq[tok * nb + b].s;
                    if (x16_vectors) {
                        __m256i *v = x16 + ((o * nb + b) * 8 + t) * 2;
                        nf4_activations(_mm256_loadu_si256((const __m256i *)xq[tok * nb + b].qs), v, v + 1);
                    }
                }
            }
        for (int64_t r = row_begin; r < row_end; r += NB_TILE_ROWS) {
            const int R = r + NB_TILE_ROWS <= row_end ? NB_TILE_ROWS : (int)(row_end - r);
            const int per64 = m->fmt == NB_FMT_Q2 || m->fmt == NB_FMT_NF4;  // one scale per 64: nb is even
            for (int i = 0; i < R; i++)
                for (int64_t b = 0; b < nb; b += 1 + per64) {
                    float d, mn;
                    NB_BLOCK_PARAMS(m, m->fmt, r + i, b, d, mn, H2F_F16C);
                    ((float *)ws[i])[b] = d;
                    ((float *)ms[i])[b] = mn;
                    if (per64) { ((float *)ws[i])[b + 1] = d; ((float *)ms[i])[b + 1] = mn; }
                }
            for (int64_t o = 0; o < no; o++) {
                const int T = tg - 8 * o < 8 ? (int)(tg - 8 * o) : 8;
                const nb_q8a *xt[8];
                for (int t = 0; t < 8; t++) xt[t] = xq + (t0 + 8 * o + (t < T ? t : T - 1)) * nb;
                tiles[R - 1](m, xt, x16 + (x16_vectors ? o * nb * 16 : 0), ws, ms, xd + o * nb * 8, xs + o * nb * 8,
                             y + (t0 + 8 * o) * ld_y, ld_y, r, T);
            }
        }
    }
    free(scratch);
}

// ---- interleaved groups (nb_interleave): 16 rows read with aligned loads -----------------
//
// prefill_tile's rows-in-lanes product on the interleaved layout. A group's block arrives as
// its 16 rows' scales (one load per f16 field) and codes already in lane order (vector j:
// bytes 4j...4j+3 of every row's qs), so the per-block work that prefill_tile does on the
// GGML layout (16 rows' scales gathered, their codes loaded and transposed) is gone; q4, q4_0,
// q5_0 and q5_1 only split each vector into low and high nibbles (q5: and add the fifth bits). The 256-bit levels run a group as two
// 8-row halves, one after the other in each block, so both halves of every cache line are
// used while it is in L1. The arithmetic is prefill_tile's, so the floats equal the scalar
// path's. WeightMatrix's groups are 64-byte aligned; the loads are unaligned ones (as fast on
// aligned data) so that any buffer works.

#define NB_IL_HALVES (16 / PR)
// How far ahead interleaved decode prefetches (whole groups, 1...NB_PREFETCH_TILES): 12 KiB
// against prefill_rows' 24 KiB, alternating runs with the memory at 80 GB/s: q4 +2.5 %, q8
// +1.4 %; 6 KiB against 12: q4 +0.2 %, q8 +2.3 % (noise).
#define NB_IL_PREFETCH_BYTES (12 << 10)

/// nf4's side of an interleaved product: the per-256-block scales and the offset (the tail
/// after the groups) and the matrix's rows (for the scales' indices).
typedef struct {
    const float *scales;
    float offset;
    int64_t rows;
} il_nf4;

/// nf4's half h of 64-block b, 32-element half hh: dW of the rows (the absmax code through
/// bitsandbytes' dynamic map, times the row's per-256-block scale, plus the offset, over 4096,
/// rounded as nf4_dw), and the int16 codebook value w of each code split as w = 128·(u − 32)
/// + l: v the low 7 bits l, a the high part u = (w >> 7) + 32 (0...64), both unsigned bytes
/// looked up per byte, so the rows stay in the lanes. The product is 128·Σu·x − 4096·Σx + Σl·x
/// (pdot8 twice, corr = −32·Σx), exact in int32.
NB_T NB_INLINE void il_block_nf4(const uint8_t *sc, const uint8_t *cd, const int h, const int hh, pvi *v, pvi *a, pvf *dw,
                                 const il_nf4 *nf, int64_t r0, int64_t b, int64_t nb) {
#define NB_NF4_L7 0, 92, 25, 46, 115, 11, 11, 0, 70, 19, 112, 104, 13, 0, 17, 0
#define NB_NF4_H7 0, 9, 15, 19, 22, 26, 29, 32, 34, 37, 39, 42, 46, 50, 55, 64
    // h is 0 on AVX-512 (one 16-row half); on 256 bits half h is rows 8h...8h+7, the upper 32
    // bytes of each code vector.
    const pvi q = PV_BYTES32(sc + PR * h);
    const pvi row = PV_MINI(PV_ADDI(PV_SETI((int)(r0 + PR * h)), PV_LANES()),
                            PV_SETI((int)(nf->rows - 1)));  // padding rows: the last row's scale
    const pvi idx = PV_SRLI8(PV_ADDI(PV_MULLO(row, PV_SETI((int)nb)), PV_SETI((int)b)));  // flattened block / 256
    const pvf m = PV_GATHERF(nb_dynamic_map, q), s = PV_GATHERF(nf->scales, idx);
    *dw = PV_MULF(PV_ADDF(PV_MULF(m, s), PV_SETF(nf->offset)), PV_SETF(1.0f / NB_NF4_SCALE));
    const pvi l7 = PV_TABLE(_mm_setr_epi8(NB_NF4_L7)), h7 = PV_TABLE(_mm_setr_epi8(NB_NF4_H7)), low4 = PV_SET1B(0x0F);
    for (int j = 0; j < 4; j++) {
        const pvi g = PV_LOADUI(cd + 64 * (4 * hh + j) + 4 * PR * h);
        const pvi lo = PV_AND(g, low4), hi = PV_AND(PV_SRLI16(g, 4), low4);
        v[j] = PV_SHUFB(l7, lo);
        v[j + 4] = PV_SHUFB(l7, hi);
        a[j] = PV_SHUFB(h7, lo);
        a[j + 4] = PV_SHUFB(h7, hi);
    }
#undef NB_NF4_L7
#undef NB_NF4_H7
}

/// Half h of block b (scales at sc, codes at cd) as unsigned weights u = w + uoff(fmt) (AVX2
/// q8: w, and a = |w|), and the rows' dW (and mW for q4 and q5_1). q5_0 and q5_1 keep their qh
/// as code word 0 (the 16 rows' 32 fifth bits) before the 4 qs words: vector m of the weights
/// (elements 4m...4m+3) takes bits 4m...4m+3 of its lane's qh, as 0x10 bytes. q2's 64-block
/// gives 32-element half hh: element j + 16s of the block is bits 2s...2s+1 of qs byte j, so
/// the half's vectors are the code words shifted by 4hh (elements 32hh + 4m...) and by 4hh + 2
/// (32hh + 16 + 4m...).
NB_T NB_INLINE void il_block(nb_format fmt, const uint8_t *sc, const uint8_t *cd, const int h, const int hh, pvi *v, pvi *a,
                             pvf *dw, pvf *mw, const il_nf4 *nf, int64_t r0, int64_t b, int64_t nb) {
    if (fmt == NB_FMT_NF4) {
        il_block_nf4(sc, cd, h, hh, v, a, dw, nf, r0, b, nb);
        return;
    }
    (void)nf; (void)r0; (void)b; (void)nb;
    const int q5 = fmt == NB_FMT_Q5_0 || fmt == NB_FMT_Q5_1;
    const uint8_t *qs = cd + (q5 ? 64 : 0);
#if NB_W512
    (void)h; (void)a;
    *dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc));
    if (fmt_has_min(fmt)) *mw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc + 32)));
    if (fmt == NB_FMT_Q8) {
        for (int j = 0; j < 8; j++) v[j] = _mm512_xor_si512(_mm512_loadu_si512(cd + 64 * j), _mm512_set1_epi8((char)0x80));
    } else if (fmt == NB_FMT_Q2) {
        const __m512i low2 = _mm512_set1_epi8(3);
        for (int j = 0; j < 4; j++) {
            const __m512i g = _mm512_loadu_si512(cd + 64 * j);
            v[j] = _mm512_and_si512(_mm512_srli_epi16(g, 4 * hh), low2);
            v[j + 4] = _mm512_and_si512(_mm512_srli_epi16(g, 4 * hh + 2), low2);
        }
    } else {
        const __m512i low4 = _mm512_set1_epi8(0x0F);
        for (int j = 0; j < 4; j++) {
            const __m512i g = _mm512_loadu_si512(qs + 64 * j);
            v[j] = _mm512_and_si512(g, low4);                            // elements 4j...4j+3
            v[j + 4] = _mm512_and_si512(_mm512_srli_epi16(g, 4), low4);  // elements 16 + 4j...
        }
        if (q5) {
            const __m512i qh = _mm512_loadu_si512(cd);
            // entry n: byte m = 0x10 where bit m of n is set (decode16_nib's table)
            const __m512i lut = _mm512_setr_epi32(0x00000000, 0x00000010, 0x00001000, 0x00001010, 0x00100000, 0x00100010,
                                                  0x00101000, 0x00101010, 0x10000000, 0x10000010, 0x10001000, 0x10001010,
                                                  0x10100000, 0x10100010, 0x10101000, 0x10101010);
            for (int m = 0; m < 8; m++)  // vpermd reads the low 4 bits of each index
                v[m] = _mm512_or_si512(v[m], _mm512_permutexvar_epi32(m ? _mm512_srli_epi32(qh, 4 * m) : qh, lut));
        }
    }
#else
    *dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sc + 16 * h)));
    if (fmt_has_min(fmt)) *mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sc + 32 + 16 * h)));
    if (fmt == NB_FMT_Q2) {
        (void)a;
        const __m256i low2 = _mm256_set1_epi8(3);
        for (int j = 0; j < 4; j++) {
            const __m256i g = _mm256_loadu_si256((const __m256i *)(cd + 64 * j + 32 * h));
            v[j] = _mm256_and_si256(_mm256_srli_epi16(g, 4 * hh), low2);
            v[j + 4] = _mm256_and_si256(_mm256_srli_epi16(g, 4 * hh + 2), low2);
        }
    } else if (fmt == NB_FMT_Q8) {
        for (int j = 0; j < 8; j++) {
            const __m256i c = _mm256_loadu_si256((const __m256i *)(cd + 64 * j + 32 * h));
#if NB_VNNI
            (void)a;
            v[j] = _mm256_xor_si256(c, _mm256_set1_epi8((char)0x80));
#else
            v[j] = c;
            a[j] = _mm256_abs_epi8(c);
#endif
        }
    } else {
        (void)a;
        const __m256i low4 = _mm256_set1_epi8(0x0F);
        for (int j = 0; j < 4; j++) {
            const __m256i g = _mm256_loadu_si256((const __m256i *)(qs + 64 * j + 32 * h));
            v[j] = _mm256_and_si256(g, low4);
            v[j + 4] = _mm256_and_si256(_mm256_srli_epi16(g, 4), low4);
        }
        if (q5) {
            // Bits 4m...4m+3 of the lane's qh, shifted down to bits 0...3, in all 4 of the lane's
            // bytes; byte b tested against bit b.
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(cd + 32 * h));
            const __m256i low_byte = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12,
                                                      0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
            const __m256i bits = _mm256_set1_epi32(0x08040201);
            for (int m = 0; m < 8; m++) {
                const __m256i x = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_srli_epi32(qh, 4 * m), low_byte), bits);
                v[m] = _mm256_or_si256(v[m], _mm256_and_si256(_mm256_cmpeq_epi8(x, bits), _mm256_set1_epi8(0x10)));
            }
        }
    }
#endif
}

/// Lanes l0...l1-1 of v to p + l0...
NB_T NB_INLINE void il_store(float *p, pvf v, int l0, int l1) {
#if NB_W512
    _mm512_mask_storeu_ps(p, (__mmask16)(((1u << l1) - 1) & ~((1u << l0) - 1)), v);
#else
    if (l0 == 0 && l1 == 8) { _mm256_storeu_ps(p, v); return; }
    float o[8];
    _mm256_storeu_ps(o, v);
    for (int i = l0; i < l1; i++) p[i] = o[i];
#endif
}

/// Rows lo...hi-1 of the group at grp, whose row 0 is y's row r0, against tokens t0...t0+T-1
/// (T ≤ NB_PR_TOKENS; corr as prefill_tile's); `next`: bytes to prefetch a part per block.
NB_T NB_INLINE void il_tile(nb_format fmt, const nb_il_geometry *g, const uint8_t *grp, const nb_q8a *xq,
                            const int32_t *corr, float *y, int64_t ld_y, int64_t r0, int lo, int hi, int64_t t0,
                            const int T, const uint8_t *next, size_t next_bytes, const il_nf4 *nf) {
    // Activation blocks per weight block (g->sub, the format's block / 32) as a constant: with
    // the table's value the hh loop's trip count was unknown, so for the 32-blocks the compiler
    // decoded a block's codes once before that loop, spilled them and reloaded them in it.
    const int sub = fmt == NB_FMT_NF4 || fmt == NB_FMT_Q2 ? 2 : 1;
    const int64_t nb = g->nb, nx = nb * sub;  // blocks per row; activation blocks per token
    const int off = uoff(fmt), has_min = fmt_has_min(fmt);
    float acc[NB_PR_TOKENS * 16] __attribute__((aligned(64)));   // token t, half h: acc + (t·halves + h)·PR
    float summ[NB_PR_TOKENS * 16] __attribute__((aligned(64)));
    for (int i = 0; i < T * NB_IL_HALVES; i++) {
        PV_STOREF(acc + i * PR, PV_ZEROF());
        if (has_min) PV_STOREF(summ + i * PR, PV_ZEROF());
    }
    const int lines = next ? prefetch_lines_per_block(next_bytes, nb) : 0;
    // Decode reads each row once per product: the non-temporal hint where the CPU's prefetch
    // profile says so (SmolLM2 decode on Zen 5 against _MM_HINT_T1, alternating runs: q4
    // +12–14 %, q8 +6 % and −2 %; the same hint in the GGML-layout and K-quant kernels did
    // nothing for Gemma's Q4_K_M; on Zen 3 T1 was as fast for q4 and 4 % faster for q8).
    const int nta = T <= 4 && nb_active_prefetch() == NB_PREFETCH_NTA;
    const uint8_t *sc = grp, *cd = grp + g->head;  // block by block through the runs (nb_il_next)
    uintptr_t pf = (uintptr_t)next;
    int i = 0;  // the block's place in its run
    for (int64_t b = 0; b < nb; b++, pf += 64 * lines) {
        if (nta) prefetch_lines(pf, lines, 1);
        else prefetch_lines(pf, lines, 0);
        for (int hh = 0; hh < sub; hh++)
        for (int h = 0; h < NB_IL_HALVES; h++) {
            pvi v[8], a[8];
            pvf dw, mw = PV_ZEROF();
            il_block(fmt, sc, cd, h, hh, v, a, &dw, &mw, nf, r0, b, nb);
            const int64_t bx = b * sub + hh;  // the activation block
            const nb_q8a *x = xq + t0 * nx + bx;
            for (int t = 0; t < T; t++, x += nx) {
                const pvi s0 = off ? PV_SETI(corr[(t0 + t) * nx + bx]) : PV_ZEROI();
                const pvi s = fmt == NB_FMT_NF4 ? PV_ADDI(PV_SLLI7(pdot8(fmt, s0, a, a, x->qs)), pdot8(fmt, PV_ZEROI(), v, v, x->qs))
                                                : pdot8(fmt, s0, v, a, x->qs);
                float *at = acc + (t * NB_IL_HALVES + h) * PR;
                PV_STOREF(at, PV_FMA(PV_MULF(dw, PV_SETF(x->d)), PV_CVT(s), PV_LOADF(at)));
                if (has_min) {
                    float *st = summ + (t * NB_IL_HALVES + h) * PR;
                    PV_STOREF(st, PV_FMA(mw, PV_SETF(x->s), PV_LOADF(st)));
                }
            }
        }
        nb_il_next(g, &sc, &cd, &i);
    }
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NB_IL_HALVES; h++) {
            const int l0 = lo > h * PR ? lo - h * PR : 0, l1 = hi < (h + 1) * PR ? hi - h * PR : PR;
            if (l0 >= l1) continue;
            pvf out = PV_LOADF(acc + (t * NB_IL_HALVES + h) * PR);
            if (has_min) out = PV_ADDF(out, PV_LOADF(summ + (t * NB_IL_HALVES + h) * PR));
            il_store(y + (t0 + t) * ld_y + r0 + h * PR, out, l0, l1);
        }
}

// The K-quants' tile and their per-token sums (matmul_k_simd.h, "interleaved groups").
NB_T NB_INLINE int fmt_is_k(nb_format fmt) { return fmt == NB_FMT_Q4_K || fmt == NB_FMT_Q5_K || fmt == NB_FMT_Q6_K; }
NB_T NB_INLINE void kil_tile(nb_format fmt, const nb_il_geometry *g, const uint8_t *grp, const nb_q8k *xq, const int32_t *s32,
                             float *y, int64_t ld_y, int64_t r0, int lo, int hi, int64_t t0, const int T, const uint8_t *next,
                             size_t next_bytes);
NB_T NB_INLINE void q8k_sums(const nb_q8k *x, int64_t n, int32_t *s32);

/// Rows row_begin...row_end-1 of an interleaved matrix: group by group, each group's tokens in
/// groups of NB_PR_TOKENS, the groups ahead prefetched. The 32-block formats and nf4 take
/// il_tile (xq: nb_q8a), the K-quants kil_tile (nb_q8k).
NB_T NB_INLINE void il_rows(nb_format fmt, const uint8_t *il, int64_t rows, int64_t k, const void *xqv, float *y,
                            int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end) {
    nb_il_geometry g;
    nb_il_geometry_of(fmt, k, &g);
    const int kq = fmt_is_k(fmt);
    const nb_q8a *xq = kq ? NULL : xqv;
    const nb_q8k *xk = kq ? xqv : NULL;
    il_nf4 nf = {NULL, 0, rows};
    if (fmt == NB_FMT_NF4) {  // the tail after the groups: the scales, then the offset
        const nb_nf4_layout l = nb_nf4_layout_of(rows, k);
        const uint8_t *tail = il + (size_t)((rows + NB_IL_ROWS - 1) / NB_IL_ROWS) * g.group;
        nf.scales = (const float *)tail;
        memcpy(&nf.offset, tail + (l.offset - l.scales), 4);
    }
    // per activation block: the codes' offset times its sum (corr), or the K-quants' 4 pairwise
    // sums of 32 (for the mins)
    const int64_t nb = kq ? k / NB_QKK : k / 32, per = kq ? 4 : 1;
    int32_t *corr = NULL, small[256];
    if (uoff(fmt) || (kq && fmt != NB_FMT_Q6_K)) {
        corr = n_tokens * nb * per <= 256 ? small : malloc(sizeof(int32_t) * (size_t)(n_tokens * nb * per));
        if (!corr) return;
        if (kq) q8k_sums(xk, n_tokens * nb, corr);
        else for (int64_t i = 0; i < n_tokens * nb; i++) corr[i] = -uoff(fmt) * q8a_isum(xq + i);
    }
    const int64_t g0 = row_begin / NB_IL_ROWS, g1 = (row_end + NB_IL_ROWS - 1) / NB_IL_ROWS;
    // Decode under the hw profile: no software prefetch, the hardware prefetchers stream each
    // group's one run of lines (with the T1 hint the streams reached 60–70 % of the memory's
    // rate on Zen 4 at 55–65 GB/s, 85–90 % without; without it and with a group's scales and
    // codes in two parts, as before, 35 %: two streams at once defeated the prefetchers).
    const int hw = n_tokens <= 4 && nb_active_prefetch() == NB_PREFETCH_HW;
    if (n_tokens <= 4 && !hw) prefetch_part(il + (size_t)g0 * g.group, g.group, g.group + 64, 0);  // nothing fetched it yet
    // Groups ahead, about NB_IL_PREFETCH_BYTES in all.
    const int ahead = g.group * NB_PREFETCH_TILES <= NB_IL_PREFETCH_BYTES ? NB_PREFETCH_TILES
                    : g.group >= NB_IL_PREFETCH_BYTES ? 1 : (int)(NB_IL_PREFETCH_BYTES / g.group);
    for (int64_t gi = g0; gi < g1; gi++) {
        const int64_t r0 = gi * NB_IL_ROWS;
        const int lo = row_begin > r0 ? (int)(row_begin - r0) : 0;
        const int hi = row_end < r0 + NB_IL_ROWS ? (int)(row_end - r0) : NB_IL_ROWS;
        const uint8_t *grp = il + (size_t)gi * g.group;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += NB_PR_TOKENS) {
            const int T = n_tokens - t0 < NB_PR_TOKENS ? (int)(n_tokens - t0) : NB_PR_TOKENS;
            int64_t gn = gi, ng = 1;  // this group again for the next token group, else later ones
            if (t0 + T >= n_tokens) prefetch_rows(gi, g0, g1, 1, T <= 4 ? ahead : 1, &gn, &ng);
            const uint8_t *next = ng > 0 && !hw ? il + (size_t)gn * g.group : NULL;
            const size_t next_bytes = ng > 0 ? (size_t)ng * g.group : 0;
            if (kq && T == 1) kil_tile(fmt, &g, grp, xk, corr, y, ld_y, r0, lo, hi, t0, 1, next, next_bytes);
            else if (kq) kil_tile(fmt, &g, grp, xk, corr, y, ld_y, r0, lo, hi, t0, T, next, next_bytes);
            else if (T == 1) il_tile(fmt, &g, grp, xq, corr, y, ld_y, r0, lo, hi, t0, 1, next, next_bytes, &nf);
            else il_tile(fmt, &g, grp, xq, corr, y, ld_y, r0, lo, hi, t0, T, next, next_bytes, &nf);
        }
    }
    if (corr != small) free(corr);
}

#define NB_DEFINE_IL(NAME, FMT)                                                                                      \
    NB_T __attribute__((noinline)) static void NAME(const uint8_t *il, int64_t rows, int64_t k, const void *xq,      \
                                                    float *y, int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) { \
        il_rows(FMT, il, rows, k, xq, y, n_tokens, ld_y, r0, r1);                                                    \
    }
NB_DEFINE_IL(il_q8_simd, NB_FMT_Q8)
NB_DEFINE_IL(il_q4_simd, NB_FMT_Q4)
NB_DEFINE_IL(il_q4_0_simd, NB_FMT_Q4_0)
NB_DEFINE_IL(il_q5_0_simd, NB_FMT_Q5_0)
NB_DEFINE_IL(il_q5_1_simd, NB_FMT_Q5_1)
NB_DEFINE_IL(il_q2_simd, NB_FMT_Q2)
NB_DEFINE_IL(il_nf4_simd, NB_FMT_NF4)
NB_DEFINE_IL(il_q4_K_simd, NB_FMT_Q4_K)
NB_DEFINE_IL(il_q5_K_simd, NB_FMT_Q5_K)
NB_DEFINE_IL(il_q6_K_simd, NB_FMT_Q6_K)

NB_T void NB_ILENTRY(nb_format fmt, const void *il, int64_t rows, int64_t k, const void *xq, float *y, int64_t n_tokens,
                     int64_t ld_y, int64_t row_begin, int64_t row_end) {
    switch (fmt) {
    case NB_FMT_Q8: il_q8_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q4: il_q4_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q4_0: il_q4_0_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q5_0: il_q5_0_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q5_1: il_q5_1_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q2: il_q2_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_NF4: il_nf4_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q4_K: il_q4_K_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q5_K: il_q5_K_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    case NB_FMT_Q6_K: il_q6_K_simd(il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); break;
    default: break;
    }
}

#undef H2F_F16C
