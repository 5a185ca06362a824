// SIMD kernels of the K-quants (q4_K, q5_K, q6_K) against nb_q8k activations, as a
// template: the including file defines NB_T (target attribute), NB_VNNI (1: VNNI's dot
// products, NB_DPBUSD/NB_DPWSSD), NB_W512 (1: AVX-512, 16-row prefill tiles in zmm; see
// matmul_q_simd.h) and NB_KENTRY(NAME) (the entry points' names), and includes <immintrin.h>, matmul_q.h and matmul_q_simd.h first (whose rows-in-lanes helpers
// it uses). The arithmetic is matmul_k.c's: exact int32 block sums, then one f32 order.
//
// Decode: a block is decoded into 8 vectors of 32 unsigned codes (vector v = elements
// 32v...32v+31) and 8 vectors of int16 sub-block scales; each (row, block) is then 8 ×
// (_mm256_maddubs_epi16 codes · activations → int16 pairs, _mm256_madd_epi16 with the
// scales → int32), as GGML's ggml_vec_dot_q4_K_q8_K (ggml-cpu/arch/x86/quants.c, MIT), from
// which the scale unpacking (utmp) and the bit shuffles are taken. Eight rows' block sums
// are reduced together (reduce4/combine4 of matmul_q_simd.h) so the f32 work is one convert
// and one FMA (two with mins) per 8 rows; the rows 4 groups ahead are prefetched a part per
// block. With VNNI each code vector takes one dpbusd instead, two vectors' sums then packed
// to int16 and scaled with one dpwssd (q6k_dot_vnni, q45k_dot_vnni). Prefill
// puts rows in the lanes ("prefill: rows in lanes" below). Ranges: codes ≤ 63 and
// |x| ≤ 127 keep the int16 pairs below 2^15.

typedef struct {
    __m128i mins;    // q4_K/q5_K: the 8 sub-block mins as int16
    __m256i sc16;    // q6_K: the 16 scales as int16 (for the −32 · bsums term)
    float d, dmin;
} kblock;

NB_T NB_INLINE __m256i kdot(__m256i acc, __m256i q, __m256i x, __m256i sc16) {
#if NB_VNNI
    return NB_DPWSSD(acc, _mm256_maddubs_epi16(q, x), sc16);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), sc16));
#endif
}

// The 6-bit scales and mins of a q4_K/q5_K block: returns the 8 scales as int16 in both
// 128-bit halves (K4_SC picks sub-block v's for every lane); mins as 8 int16 in kb.
#define K4_SC(scales, v) _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((2 * (v) + 1) << 8) | (2 * (v)))))
NB_T NB_INLINE __m256i k4_scales(const uint8_t *packed, kblock *kb) {
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t utmp[4];
    memcpy(utmp, packed, 12);
    utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = utmp[1] & kmask1;
    utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
    utmp[2] = uaux;
    utmp[0] &= kmask1;
    const __m256i ms = _mm256_cvtepu8_epi16(_mm_set_epi32((int)utmp[3], (int)utmp[2], (int)utmp[1], (int)utmp[0]));
    kb->mins = _mm256_extracti128_si256(ms, 1);
    return _mm256_broadcastsi128_si256(_mm256_castsi256_si128(ms));
}

// Decoders (decode): each code vector is multiplied with its activations as it is made,
// into *acc; kb gets the block's d, dmin, mins (and q6_K's scales).
#define K_EMIT(v, qv, scv) (*acc = kdot(*acc, (qv), _mm256_loadu_si256((const __m256i *)(x->qs + 32 * (v))), (scv)))

NB_T NB_INLINE void decode_q4_K(const nb_block_q4_K *b, kblock *kb, const nb_q8k *x, __m256i *acc) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i scales = k4_scales(b->scales, kb);
    for (int c = 0; c < 4; c++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        K_EMIT(2 * c, _mm256_and_si256(bits, m4), K4_SC(scales, 2 * c));
        K_EMIT(2 * c + 1, _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), K4_SC(scales, 2 * c + 1));
    }
    kb->d = _cvtsh_ss(b->d);
    kb->dmin = _cvtsh_ss(b->dmin);
}

NB_T NB_INLINE void decode_q5_K(const nb_block_q5_K *b, kblock *kb, const nb_q8k *x, __m256i *acc) {
    const __m256i m4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    const __m256i scales = k4_scales(b->scales, kb);
    const __m256i hbits = _mm256_loadu_si256((const __m256i *)b->qh);
    for (int c = 0; c < 4; c++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * c), one), 4);
        const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * c + 1), one), 4);
        K_EMIT(2 * c, _mm256_or_si256(_mm256_and_si256(bits, m4), h0), K4_SC(scales, 2 * c));
        K_EMIT(2 * c + 1, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h1), K4_SC(scales, 2 * c + 1));
    }
    kb->d = _cvtsh_ss(b->d);
    kb->dmin = _cvtsh_ss(b->dmin);
}

NB_T NB_INLINE void decode_q6_K(const nb_block_q6_K *b, kblock *kb, const nb_q8k *x, __m256i *acc) {
    const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15);
    // Vector v holds sub-blocks 2v (low 128 bits of the int16 pairs) and 2v + 1 (high).
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
#define Q6_SC(v) _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_set_epi64x(0x0101010101010101LL * (2 * (v) + 1), 0x0101010101010101LL * (2 * (v)))))
    kb->sc16 = _mm256_cvtepi8_epi16(sc8);
    for (int j = 0; j < 2; j++) {
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * j));
        const __m256i b2 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * j + 32));
        const __m256i bh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * j));
        K_EMIT(4 * j + 0, _mm256_or_si256(_mm256_and_si256(b1, m15), _mm256_slli_epi16(_mm256_and_si256(bh, m3), 4)), Q6_SC(4 * j + 0));
        K_EMIT(4 * j + 1, _mm256_or_si256(_mm256_and_si256(b2, m15),
                                          _mm256_slli_epi16(_mm256_and_si256(bh, _mm256_set1_epi8(12)), 2)), Q6_SC(4 * j + 1));
        K_EMIT(4 * j + 2, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m15),
                                          _mm256_and_si256(bh, _mm256_set1_epi8(48))), Q6_SC(4 * j + 2));
        K_EMIT(4 * j + 3, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m15),
                                          _mm256_srli_epi16(_mm256_and_si256(bh, _mm256_set1_epi8((char)0xC0)), 2)), Q6_SC(4 * j + 3));
    }
#undef Q6_SC
    kb->d = _cvtsh_ss(b->d);
    kb->dmin = 0;
    kb->mins = _mm_setzero_si128();
}

NB_T NB_INLINE void decode_k(nb_format fmt, const uint8_t *blk, kblock *kb, const nb_q8k *x, __m256i *acc) {
    switch (fmt) {
    case NB_FMT_Q4_K: decode_q4_K((const nb_block_q4_K *)blk, kb, x, acc); break;
    case NB_FMT_Q5_K: decode_q5_K((const nb_block_q5_K *)blk, kb, x, acc); break;
    default: decode_q6_K((const nb_block_q6_K *)blk, kb, x, acc); break;
    }
}

// The −32 of q6_K's codes: Σ_s sc_s · 32 · bsum_s, subtracted from the block's sums.
NB_T NB_INLINE __m256i q6_offset(nb_format fmt, __m256i acc, const kblock *kb, const nb_q8k *x) {
    if (fmt != NB_FMT_Q6_K) return acc;
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    return _mm256_sub_epi32(acc, _mm256_slli_epi32(_mm256_madd_epi16(bsums, kb->sc16), 5));
}

// The pairwise bsums (Σ of each 32 activations) as 8 int16: the mins' partners.
NB_T NB_INLINE __m128i q8k_sums32(const nb_q8k *x) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums), _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
}

/// q8k_sums32 of n activation blocks, as int32 words (4 per block) at s32.
NB_T NB_INLINE void q8k_sums(const nb_q8k *x, int64_t n, int32_t *s32) {
    for (int64_t i = 0; i < n; i++) _mm_storeu_si128((__m128i *)(s32 + 4 * i), q8k_sums32(x + i));
}

#if NB_VNNI
// The int16 scales of q6_K sub-blocks (a, b | c, d), 4 lanes each, from the block's 16 int8
// scales (sc8) or the same as int16 (sc16): vpermw with AVX-512, else pshufb + vpmovsxbw.
NB_T NB_INLINE __m256i q6_pick(__m128i sc8, __m256i sc16, const int a, const int b, const int c, const int d) {
#if NB_W512
    (void)sc8;
    return _mm256_permutexvar_epi16(_mm256_setr_epi16(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d), sc16);
#else
    (void)sc16;
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_setr_epi8(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d)));
#endif
}

// The int16 scales of q4_K/q5_K sub-blocks (s0, s1 | s0, s1), 4 lanes each, from k4_scales'
// vector (the 8 scales in both 128-bit halves): vpermw with AVX-512, else pshufb.
NB_T NB_INLINE __m256i k4_pick(__m256i sc, const int s0, const int s1) {
#if NB_W512
    return _mm256_permutexvar_epi16(_mm256_setr_epi16(s0, s0, s0, s0, s1, s1, s1, s1, s0, s0, s0, s0, s1, s1, s1, s1), sc);
#else
    const char a = (char)(2 * s0), b = (char)(2 * s1);
    return _mm256_shuffle_epi8(sc, _mm256_setr_epi8(a, a + 1, a, a + 1, a, a + 1, a, a + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1,
                                                    a, a + 1, a, a + 1, a, a + 1, a, a + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1));
#endif
}

// q6_K decode with VNNI: per code vector one _mm256_dpbusd_epi32 (8 int32 sums of 4, each
// |·| ≤ 4 · 63 · 127 < 2^15), two vectors packed to int16 (exact) and multiplied by their
// sub-blocks' scales with one _mm256_dpwssd_epi32; then the −32 · Σ sc · bsum term. Half the
// instructions of the maddubs/madd route per block. Returns 8 int32 partial sums of isum.
NB_T NB_INLINE __m256i q6k_dot_vnni(const nb_block_q6_K *b, const nb_q8k *x) {
    const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < 2; j++) {
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * j));
        const __m256i b2 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * j + 32));
        const __m256i bh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * j));
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(b1, m15), _mm256_slli_epi16(_mm256_and_si256(bh, m3), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(b2, m15), _mm256_slli_epi16(_mm256_and_si256(bh, _mm256_set1_epi8(12)), 2));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m15), _mm256_and_si256(bh, _mm256_set1_epi8(48)));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m15),
                               _mm256_srli_epi16(_mm256_and_si256(bh, _mm256_set1_epi8((char)0xC0)), 2));
        for (int u = 0; u < 2; u++) {  // vectors v = 4j + 2u, v + 1: sub-blocks 2v, 2v + 1, 2v + 2, 2v + 3
            const int v = 4 * j + 2 * u, s0 = 2 * v;
            const __m256i p0 = NB_DPBUSD(_mm256_setzero_si256(), q[2 * u],
                                                   _mm256_loadu_si256((const __m256i *)(x->qs + 32 * v)));
            const __m256i p1 = NB_DPBUSD(_mm256_setzero_si256(), q[2 * u + 1],
                                                   _mm256_loadu_si256((const __m256i *)(x->qs + 32 * v + 32)));
            // int16 lanes: [p0 0..3 (sub s0), p1 0..3 (s0 + 2) | p0 4..7 (s0 + 1), p1 4..7 (s0 + 3)]
            acc = NB_DPWSSD(acc, _mm256_packs_epi32(p0, p1), q6_pick(sc8, sc16, s0, s0 + 2, s0 + 1, s0 + 3));
        }
    }
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    return _mm256_sub_epi32(acc, _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 5));
}

// q4_K / q5_K decode with VNNI, the same way: per code vector (one sub-block) one dpbusd
// (8 sums of 4, ≤ 4 · 31 · 127 < 2^15), two sub-blocks packed to int16 and scaled with one
// dpwssd. kb gets d, dmin and the mins as k4_scales gives them.
NB_T NB_INLINE __m256i q45k_dot_vnni(nb_format fmt, const uint8_t *blk, const nb_q8k *x, kblock *kb) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const nb_block_q4_K *b4 = (const nb_block_q4_K *)blk;
    const nb_block_q5_K *b5 = (const nb_block_q5_K *)blk;
    // sc: the 8 scales as int16 in both 128-bit halves
    const __m256i sc = k4_scales(fmt == NB_FMT_Q4_K ? b4->scales : b5->scales, kb);
    const uint8_t *qs = fmt == NB_FMT_Q4_K ? b4->qs : b5->qs;
    const __m256i hbits = fmt == NB_FMT_Q5_K ? _mm256_loadu_si256((const __m256i *)b5->qh) : _mm256_setzero_si256();
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i q0 = _mm256_and_si256(bits, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        if (fmt == NB_FMT_Q5_K) {
            const __m256i one = _mm256_set1_epi8(1);
            q0 = _mm256_or_si256(q0, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * c), one), 4));
            q1 = _mm256_or_si256(q1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * c + 1), one), 4));
        }
        const __m256i p0 = NB_DPBUSD(_mm256_setzero_si256(), q0, _mm256_loadu_si256((const __m256i *)(x->qs + 64 * c)));
        const __m256i p1 = NB_DPBUSD(_mm256_setzero_si256(), q1, _mm256_loadu_si256((const __m256i *)(x->qs + 64 * c + 32)));
        // int16 lanes [p0 0..3, p1 0..3 | p0 4..7, p1 4..7]: sub-blocks 2c, 2c + 1 in each half
        const int s0 = 2 * c, s1 = 2 * c + 1;
        acc = NB_DPWSSD(acc, _mm256_packs_epi32(p0, p1), k4_pick(sc, s0, s1));
    }
    kb->d = _cvtsh_ss(b4->d);  // q4_K and q5_K both start with d, dmin
    kb->dmin = _cvtsh_ss(b4->dmin);
    return acc;
}
#endif

// ---- decode: 8 rows × 1 token -----------------------------------------------------------------

NB_T NB_INLINE void kmatvec8(nb_format fmt, const uint8_t *w, size_t row_bytes, size_t block_bytes, int64_t nb,
                             const nb_q8k *x, float *y, int64_t r, int64_t r_begin, int64_t r_end) {
    const uint8_t *rows[8];
    for (int i = 0; i < 8; i++) rows[i] = w + (size_t)(r + i < r_end ? r + i : r_end - 1) * row_bytes;
    // The rows NB_PREFETCH_TILES groups ahead, a part per block: a burst of prefetches at the
    // start of each group filled the miss buffers and stalled, and 8 interleaved rows alone
    // stream poorly (640 × 2048 q6_K from memory: 15 → 5 ms, ggml's row-at-a-time vec_dot 5 ms).
    int64_t rn, nr;
    prefetch_rows(r, r_begin, r_end, 8, NB_PREFETCH_TILES, &rn, &nr);
    const uint8_t *next = nr > 0 ? w + (size_t)rn * row_bytes : NULL;
    const size_t next_bytes = nr > 0 ? (size_t)nr * row_bytes : 0, part = prefetch_size(next_bytes, nb);
    const int has_min = fmt != NB_FMT_Q6_K;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        prefetch_part(next, next_bytes, part, b);
        __m256i s[8];
        __m128i mins[8];
        float dw[8], dm[8];
        for (int i = 0; i < 8; i++) {
#if NB_VNNI
            if (fmt != NB_FMT_Q6_K) {
                kblock kb;
                s[i] = q45k_dot_vnni(fmt, rows[i] + (size_t)b * block_bytes, x + b, &kb);
                mins[i] = kb.mins;
                dw[i] = kb.d;
                dm[i] = kb.dmin;
                continue;
            }
            if (fmt == NB_FMT_Q6_K) {
                const nb_block_q6_K *q6 = (const nb_block_q6_K *)(rows[i] + (size_t)b * block_bytes);
                s[i] = q6k_dot_vnni(q6, x + b);
                mins[i] = _mm_setzero_si128();
                dw[i] = _cvtsh_ss(q6->d);
                dm[i] = 0;
                continue;
            }
#endif
            kblock kb;
            __m256i acc_i = _mm256_setzero_si256();
            decode_k(fmt, rows[i] + (size_t)b * block_bytes, &kb, x + b, &acc_i);
            s[i] = q6_offset(fmt, acc_i, &kb, x + b);
            mins[i] = kb.mins;
            dw[i] = kb.d;
            dm[i] = kb.dmin;
        }
        const __m256 dx = _mm256_set1_ps(x[b].d);
        const __m256 isum = combine4(reduce4(s[0], s[1], s[2], s[3]), reduce4(s[4], s[5], s[6], s[7]));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dw), dx), isum, acc);
        if (has_min) {
            const __m256i sums = _mm256_broadcastsi128_si256(q8k_sums32(x + b));
            __m256i v[4];  // lanes 0...3: row i's 4 partial sums, 4...7: row i + 4's
            for (int i = 0; i < 4; i++) v[i] = _mm256_madd_epi16(_mm256_set_m128i(mins[i + 4], mins[i]), sums);
            const __m256 imin = _mm256_cvtepi32_ps(reduce4(v[0], v[1], v[2], v[3]));
            accm = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dm), dx), imin, accm);
        }
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_sub_ps(acc, accm));
    for (int i = 0; i < 8 && r + i < r_end; i++) y[r + i] = out[i];
}

// ---- prefill: rows in lanes -------------------------------------------------------------------
//
// As for the 32-block formats (matmul_q_simd.h): PR rows per tile, lane i of every vector is
// row r0 + i. Per 256-block the rows' codes are decoded two 32-code vectors at a time and
// transposed so that vector j holds each row's codes 4j...4j+3; every token of the group then
// takes 8 multiply-adds per vector (VNNI: vpdpbusd with the token's 4 bytes broadcast, on
// 16 rows in a zmm with AVX-512 and 8 in a ymm with AVX-VNNI, times the sub-block scale with
// vpmulld; AVX2: _mm256_maddubs_epi16
// summed in int16 where it cannot overflow, times the scale with _mm256_madd_epi16) into an
// exact int32 block sum per lane, kept per token in L1 between the passes. The mins
// (q4_K, q5_K) and q6_K's −32 are products of int16 pairs (row's scales or mins, token's
// sums). The f32 steps are matmul_k.c's, in its order. The scale unpacking is GGML's
// (ggml_vec_dot_q4_K_q8_K, ggml-cpu/arch/x86/quants.c, MIT), on PR rows at once.

/// Vector v (elements 32v...32v+31) of a block's codes, unsigned.
NB_T NB_INLINE __m256i kcodes(nb_format fmt, const uint8_t *blk, int v) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    switch (fmt) {
    case NB_FMT_Q4_K: {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(((const nb_block_q4_K *)blk)->qs + 32 * (v / 2)));
        return _mm256_and_si256(v & 1 ? _mm256_srli_epi16(bits, 4) : bits, m4);
    }
    case NB_FMT_Q5_K: {
        const nb_block_q5_K *b = (const nb_block_q5_K *)blk;
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (v / 2)));
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)b->qh), v), _mm256_set1_epi8(1));
        return _mm256_or_si256(_mm256_and_si256(v & 1 ? _mm256_srli_epi16(bits, 4) : bits, m4), _mm256_slli_epi16(hb, 4));
    }
    default: {
        const nb_block_q6_K *b = (const nb_block_q6_K *)blk;
        const int j = v / 4, m = v % 4;  // elements 128j + 32m + l: ql[64j + 32(m & 1) + l], nibble m / 2; qh bits 2m
        const __m256i ql = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * j + 32 * (m & 1)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * j));
        const __m256i lo = _mm256_and_si256(m & 2 ? _mm256_srli_epi16(ql, 4) : ql, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * m), _mm256_set1_epi8(3));
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    }
}

/// Per block of the tile's rows: d, dmin and the scale bytes as they are stored (q4_K/q5_K: 12
/// packed 6-bit scales and mins, u[0...2]; q6_K: 16 int8 scales, u[0...3]), 4 bytes per word,
/// a row per lane. The tiles unpack the sub-block scales per block (ksc) and the int16 pairs
/// only where they are used (kpairs).
typedef struct {
    pvi u[4];
    pvf d, dmin;
} kparams;

#if NB_W512
#define PV_GATHER(offs, p) _mm512_i32gather_epi32(offs, (const void *)(p), 1)
#define PV_OR(a, b) _mm512_or_si512(a, b)
#define PV_SLLI16(a, n) _mm512_slli_epi16(a, n)
#define PV_SRLI(a, n) _mm512_srli_epi32(a, n)
#define PV_SLLI(a, n) _mm512_slli_epi32(a, n)
#define PV_SRAI(a, n) _mm512_srai_epi32(a, n)
#define PV_H2F_LO(g) _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g))
#define PV_H2F_HI(g) _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)))
#define PV_BLEND16_HI(a, b) _mm512_mask_blend_epi16(0xAAAAAAAAu, a, b)  // low halves of a, high of b
#define PV_SET8(...) _mm512_set4_epi32(__VA_ARGS__)
#else
#define PV_GATHER(offs, p) _mm256_i32gather_epi32((const int *)(const void *)(p), offs, 1)
#define PV_OR(a, b) _mm256_or_si256(a, b)
#define PV_SLLI16(a, n) _mm256_slli_epi16(a, n)
#define PV_SRLI(a, n) _mm256_srli_epi32(a, n)
#define PV_SLLI(a, n) _mm256_slli_epi32(a, n)
#define PV_SRAI(a, n) _mm256_srai_epi32(a, n)
#define PV_BLEND16_HI(a, b) _mm256_blend_epi16(a, b, 0xAA)
#define PV_SET8(a, b, c, d) _mm256_setr_epi32(d, c, b, a, d, c, b, a)
NB_T NB_INLINE __m256 pv_h2f_lo(__m256i g) {
    const __m256i lo16 = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_shuffle_epi8(g, lo16), 0x08)));
}
#define PV_H2F_LO(g) pv_h2f_lo(g)
#define PV_H2F_HI(g) pv_h2f_lo(_mm256_srli_epi32(g, 16))
#endif

/// The scale of sub-block s as the multiply wants it (from its value as int32 per lane).
NB_T NB_INLINE pvi kscale(pvi s32) {
#if NB_VNNI
    return s32;
#else
    return _mm256_or_si256(_mm256_and_si256(s32, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(s32, 16));
#endif
}

/// The scale of sub-block s (q4_K/q5_K: of 32 elements, s < 8; q6_K: of 16, s < 16) in the
/// form kdot_scaled takes; the bits are GGML's get_scale_min_k4 (q4_K/q5_K) or the int8 (q6_K).
NB_T NB_INLINE pvi ksc(nb_format fmt, const kparams *p, const int s) {
    if (fmt == NB_FMT_Q6_K) return kscale(PV_SRAI(PV_SLLI(p->u[s / 4], 24 - 8 * (s % 4)), 24));
    if (s < 4) return kscale(PV_AND(PV_SRLI(p->u[0], 8 * s), PV_SETI(63)));
    const int m = s - 4;  // low 4 bits from byte 8 + m, high 2 from the top of byte m
    return kscale(PV_OR(PV_AND(PV_SRLI(p->u[2], 8 * m), PV_SETI(0xF)), PV_SLLI(PV_AND(PV_SRLI(p->u[0], 8 * m + 6), PV_SETI(3)), 4)));
}

/// The scales (q6_K, 8 vectors: (sc_2v, sc_2v+1)) or the mins (q4_K/q5_K, 4 vectors:
/// (mn_2v, mn_2v+1)) as int16 pairs per lane, for products with the activations' sums.
NB_T NB_INLINE void kpairs(nb_format fmt, const kparams *p, pvi *pairs) {
    if (fmt == NB_FMT_Q6_K) {
        for (int k = 0; k < 4; k++) {
            const pvi g = p->u[k];
            // int16 halves: a = (sext b0, sext b2), bb = (sext b1, sext b3)
#if NB_W512
            const pvi a = _mm512_srai_epi16(_mm512_slli_epi16(g, 8), 8), bb = _mm512_srai_epi16(g, 8);
#else
            const pvi a = _mm256_srai_epi16(_mm256_slli_epi16(g, 8), 8), bb = _mm256_srai_epi16(g, 8);
#endif
            pairs[2 * k] = PV_BLEND16_HI(a, PV_SLLI(bb, 16));
            pairs[2 * k + 1] = PV_BLEND16_HI(PV_SRLI(a, 16), bb);
        }
        return;
    }
    // q4_K, q5_K: the mins as GGML's utmp unpacking makes them
    const pvi u1 = p->u[1], u2 = p->u[2];
    const pvi mins47 = PV_OR(PV_AND(PV_SRLI(u2, 4), PV_SETI(0x0f0f0f0f)), PV_SLLI(PV_AND(PV_SRLI(u1, 6), PV_SETI(0x03030303)), 4));
    const pvi mins03 = PV_AND(u1, PV_SETI(0x3f3f3f3f));
    // bytes (m0, m1, m2, m3) of each lane → int16 pairs (m0, m1) and (m2, m3)
    const pvi sh01 = PV_SET8((int)0x800D800C, (int)0x80098008, (int)0x80058004, (int)0x80018000);
    const pvi sh23 = PV_SET8((int)0x800F800E, (int)0x800B800A, (int)0x80078006, (int)0x80038002);
    pairs[0] = PV_SHUFB(mins03, sh01);
    pairs[1] = PV_SHUFB(mins03, sh23);
    pairs[2] = PV_SHUFB(mins47, sh01);
    pairs[3] = PV_SHUFB(mins47, sh23);
}

/// kparams from the rows' d, dmin and scale words.
NB_T NB_INLINE void kparams_from(nb_format fmt, pvf d, pvf dmin, const pvi *u, kparams *p) {
    p->d = d;
    p->dmin = dmin;
    for (int k = 0; k < (fmt == NB_FMT_Q6_K ? 4 : 3); k++) p->u[k] = u[k];
}

/// kparams of the PR rows whose blocks are at blk0 + offs (gathered).
NB_T NB_INLINE void kparams_of(nb_format fmt, const uint8_t *blk0, pvi offs, kparams *p) {
    pvi u[4];
    if (fmt == NB_FMT_Q6_K) {
        const pvi gd = PV_GATHER(offs, blk0 + offsetof(nb_block_q6_K, d) - 2);
        for (int k = 0; k < 4; k++) u[k] = PV_GATHER(offs, blk0 + offsetof(nb_block_q6_K, scales) + 4 * k);
        kparams_from(fmt, PV_H2F_HI(gd), PV_ZEROF(), u, p);
        return;
    }
    const pvi gd = PV_GATHER(offs, blk0);  // d, dmin
    for (int k = 0; k < 3; k++) u[k] = PV_GATHER(offs, blk0 + 4 + 4 * k);
    kparams_from(fmt, PV_H2F_LO(gd), PV_H2F_HI(gd), u, p);
}

/// s + sc · Σ_{j < n} v[j] · (bytes 4j...4j+3 of x), per lane (n = 8 or 4; codes ≤ umax).
NB_T NB_INLINE pvi kdot_scaled(nb_format fmt, pvi s, const pvi *v, const int8_t *x, const int n, pvi sc) {
#if NB_VNNI
    (void)fmt;
    pvi p = PV_ZEROI();
    for (int j = 0; j < n; j++) p = PV_DPBUSD(p, v[j], PV_SETI(load_i32(x + 4 * j)));
    return PV_ADDI(s, PV_MULLO(p, sc));
#else
    // int16 pair sums ≤ 2·umax·127 per vector: 8 of them for q4_K (umax 15), 4 for q5_K, 2 for q6_K
    const int G = fmt == NB_FMT_Q4_K ? 8 : fmt == NB_FMT_Q5_K ? 4 : 2;
    for (int j = 0; j < n; j += G) {
        __m256i p = _mm256_maddubs_epi16(v[j], _mm256_set1_epi32(load_i32(x + 4 * j)));
        for (int g = 1; g < G && j + g < n; g++)
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(v[j + g], _mm256_set1_epi32(load_i32(x + 4 * (j + g)))));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, sc));
    }
    return s;
#endif
}

NB_T NB_INLINE pvi pv_dpwssd(pvi acc, pvi a, int32_t b) {
#if NB_VNNI
    return PV_DPWSSD(acc, a, PV_SETI(b));
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, _mm256_set1_epi32(b)));
#endif
}

// One block of a tile's rows against tokens t0...t0+T-1 in three steps (kprefill_tile on the
// GGML layout, kil_tile on the interleaved one): token t's int32 block sum in isum[t] (a
// local array, a register when there is one token), its f32 sums at acc/accm + t·st. xb:
// token t0's activation block (token t at + t·nb); s32b: its 4 pairwise sums of 32 (token t
// at + 4t·nb; q4_K, q5_K).

/// The block sums start at q6_K's −32 · Σ sc · bsum, else 0.
NB_T NB_INLINE void kblock_begin(nb_format fmt, const kparams *p, const nb_q8k *xb, int64_t nb, const int T, pvi *isum) {
    pvi pairs[8];
    if (fmt == NB_FMT_Q6_K) kpairs(fmt, p, pairs);
    for (int t = 0; t < T; t++) {
        pvi s = PV_ZEROI();
        if (fmt == NB_FMT_Q6_K) {
            pvi c = PV_ZEROI();
            for (int v = 0; v < 8; v++) c = pv_dpwssd(c, pairs[v], load_i32(xb[t * nb].bsums + 2 * v));
            s = PV_SUBI(s, PV_SLLI(c, 5));
        }
        isum[t] = s;
    }
}

/// Code vector v (rows in lanes: vv[j] holds each row's codes 32v + 4j...+3) times the tokens'
/// activations, into the block sums: sub-block v (q4_K/q5_K), or 2v and 2v + 1 (q6_K's of 16),
/// with the block's scales sc (ksc of every sub-block).
NB_T NB_INLINE void kblock_codes(nb_format fmt, const pvi *sc, const int v, const pvi *vv, const nb_q8k *xb, int64_t nb,
                                 const int T, pvi *isum) {
    const int q6 = fmt == NB_FMT_Q6_K;
    const pvi sc0 = sc[q6 ? 2 * v : v], sc1 = q6 ? sc[2 * v + 1] : sc0;
    for (int t = 0; t < T; t++) {
        const int8_t *x = xb[t * nb].qs + 32 * v;
        pvi s = isum[t];
        if (q6) {
            s = kdot_scaled(fmt, s, vv, x, 4, sc0);
            s = kdot_scaled(fmt, s, vv + 4, x + 16, 4, sc1);
        } else {
            s = kdot_scaled(fmt, s, vv, x, 8, sc0);
        }
        isum[t] = s;
    }
}

/// The block's f32 step, matmul_k.c's: acc += (d · dx) · isum, accm += (dmin · dx) · imin.
NB_T NB_INLINE void kblock_end(nb_format fmt, const kparams *p, const nb_q8k *xb, int64_t nb, const int32_t *s32b, const int T,
                               const pvi *isum, float *acc, float *accm, const int st) {
    pvi pairs[8];
    if (fmt != NB_FMT_Q6_K) kpairs(fmt, p, pairs);
    for (int t = 0; t < T; t++) {
        const pvf dx = PV_SETF(xb[t * nb].d);
        PV_STOREF(acc + t * st, PV_FMA(PV_MULF(p->d, dx), PV_CVT(isum[t]), PV_LOADF(acc + t * st)));
        if (fmt != NB_FMT_Q6_K) {
            const int32_t *sums = s32b + 4 * t * nb;
            pvi m = PV_ZEROI();
            for (int v = 0; v < 4; v++) m = pv_dpwssd(m, pairs[v], sums[v]);
            PV_STOREF(accm + t * st, PV_FMA(PV_MULF(p->dmin, dx), PV_CVT(m), PV_LOADF(accm + t * st)));
        }
    }
}

/// Rows r0...r0+R-1 against tokens t0...t0+T-1. s32: per token and block the 4 int16 pairs
/// of 32-sums (q4_K, q5_K).
NB_T NB_INLINE void kprefill_tile(nb_format fmt, const uint8_t *w, size_t row_bytes, size_t block_bytes, int64_t nb,
                                  const nb_q8k *xq, const int32_t *s32, float *y, int64_t ld_y, int64_t r0, int R,
                                  int64_t t0, int T, const uint8_t *next, size_t next_bytes) {
    float acc[NB_PR_TOKENS * PR] __attribute__((aligned(64)));
    float accm[NB_PR_TOKENS * PR] __attribute__((aligned(64)));
    for (int t = 0; t < T; t++) {
        PV_STOREF(acc + t * PR, PV_ZEROF());
        PV_STOREF(accm + t * PR, PV_ZEROF());
    }
    const uint8_t *rows[PR];
    for (int i = 0; i < PR; i++) rows[i] = w + (size_t)(r0 + (i < R ? i : R - 1)) * row_bytes;
    const pvi offs = prow_offsets(row_bytes, R);
    kparams p;
    const size_t part = prefetch_size(next_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        const size_t bo = (size_t)b * block_bytes;
        prefetch_part(next, next_bytes, part, b);
        kparams_of(fmt, rows[0] + bo, offs, &p);
        const nb_q8k *xb = xq + t0 * nb + b;
        pvi isum[NB_PR_TOKENS], scales[16];
        for (int i = 0; i < (fmt == NB_FMT_Q6_K ? 16 : 8); i++) scales[i] = ksc(fmt, &p, i);
        kblock_begin(fmt, &p, xb, nb, T, isum);
        for (int v = 0; v < 8; v++) {  // code vectors
            pvi vv[8];
            __m256i q[PR];
            for (int i = 0; i < PR; i++) q[i] = kcodes(fmt, rows[i] + bo, v);
            transpose_rows(q, vv);
            kblock_codes(fmt, scales, v, vv, xb, nb, T, isum);
        }
        kblock_end(fmt, &p, xb, nb, s32 ? s32 + (t0 * nb + b) * 4 : NULL, T, isum, acc, accm, PR);
    }
    for (int t = 0; t < T; t++) PV_STORE_ROWS(y + (t0 + t) * ld_y + r0, PV_SUBF(PV_LOADF(acc + t * PR), PV_LOADF(accm + t * PR)), R);
}

NB_T NB_INLINE void kprefill(nb_format fmt, const void *w, int64_t k, const nb_q8k *xq, float *y, int64_t n_tokens,
                             int64_t ld_y, int64_t r0, int64_t r1) {
    const int64_t nb = k / NB_QKK;
    const size_t block_bytes = (size_t)nb_formats[fmt].info.block_bytes, row_bytes = block_bytes * (size_t)nb;
    int32_t *s32 = NULL;
    if (fmt != NB_FMT_Q6_K) {
        s32 = malloc(sizeof(int32_t) * 4 * (size_t)(n_tokens * nb));
        if (!s32) { nb_formats[fmt].matmul[0](w, 0, k, NULL, xq, y, n_tokens, ld_y, r0, r1); return; }
        q8k_sums(xq, n_tokens * nb, s32);
    }
    for (int64_t r = r0; r < r1; r += PR) {
        const int R = r1 - r < PR ? (int)(r1 - r) : PR;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += NB_PR_TOKENS) {
            const int T = n_tokens - t0 < NB_PR_TOKENS ? (int)(n_tokens - t0) : NB_PR_TOKENS;
            // few tokens leave little time per tile: fetch further ahead
            int64_t rn = r, nr = R;
            if (t0 + T >= n_tokens) prefetch_rows(r, r0, r1, PR, T <= 4 ? NB_PREFETCH_TILES : 1, &rn, &nr);
            kprefill_tile(fmt, w, row_bytes, block_bytes, nb, xq, s32, y, ld_y, r, R, t0, T,
                          nr > 0 ? (const uint8_t *)w + (size_t)rn * row_bytes : NULL, nr > 0 ? (size_t)nr * row_bytes : 0);
        }
    }
    free(s32);
}

#define NB_K_DEFINE_PREFILL(NAME, FMT)                                                                          \
    NB_T __attribute__((noinline)) static void NAME(const void *w, int64_t k, const nb_q8k *xq, float *y,       \
                                                    int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {   \
        kprefill(FMT, w, k, xq, y, n_tokens, ld_y, r0, r1);                                                     \
    }
NB_K_DEFINE_PREFILL(kprefill_q4_K, NB_FMT_Q4_K)
NB_K_DEFINE_PREFILL(kprefill_q5_K, NB_FMT_Q5_K)
NB_K_DEFINE_PREFILL(kprefill_q6_K, NB_FMT_Q6_K)

NB_T NB_INLINE void matmul_k_simd(nb_format fmt, const void *w, int64_t k, const nb_q8k *xq, float *y,
                                  int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {
    const int64_t nb = k / NB_QKK;
    const size_t block_bytes = (size_t)nb_formats[fmt].info.block_bytes, row_bytes = block_bytes * (size_t)nb;
    const uint8_t *base = w;
    if (n_tokens == 1) {
        const size_t first = (size_t)(r1 - r0 < 8 ? r1 - r0 : 8) * row_bytes;  // the first group's rows, at once
        prefetch_part(base + (size_t)r0 * row_bytes, first, first + 64, 0);
        for (int64_t r = r0; r < r1; r += 8) kmatvec8(fmt, base, row_bytes, block_bytes, nb, xq, y, r, r0, r1);
        return;
    }
    switch (fmt) {
    case NB_FMT_Q4_K: kprefill_q4_K(w, k, xq, y, n_tokens, ld_y, r0, r1); break;
    case NB_FMT_Q5_K: kprefill_q5_K(w, k, xq, y, n_tokens, ld_y, r0, r1); break;
    default: kprefill_q6_K(w, k, xq, y, n_tokens, ld_y, r0, r1); break;
    }
}

#define NB_K_DEFINE(NAME, FMT)                                                                                  \
    NB_T void NB_KENTRY(NAME)(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,    \
                              int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                          \
        (void)rows; (void)x;                                                                                    \
        matmul_k_simd(FMT, w, k, xq, y, n_tokens, ld_y, r0, r1);                                                \
    }
NB_K_DEFINE(q4_K, NB_FMT_Q4_K)
NB_K_DEFINE(q5_K, NB_FMT_Q5_K)
NB_K_DEFINE(q6_K, NB_FMT_Q6_K)
#undef NB_K_DEFINE

// ---- interleaved groups (nb_interleave): 16 rows read with aligned loads ------------------------
//
// kprefill_tile's product on the interleaved layout (CKernels.h, "interleaved weights"), for
// decode too. A group's block arrives as its 16 rows' d (and dmin) side by side and the rest
// of their blocks as 4-byte words in lane order, so the scales are unpacked from 3 (q6_K: 4)
// loads instead of gathers, and a code vector is 8 loads (q5_K and q6_K: and their high-bit
// words) split into nibbles instead of 16 rows' codes loaded and transposed. The 256-bit
// levels run a group as two 8-row halves, one after the other in each block, as il_tile. The
// arithmetic is kprefill_tile's (kblock_begin, kblock_codes, kblock_end), so the floats equal
// the scalar path's.

/// Code word j of half h of a block whose code words start at cd.
#define KIL_WORD(cd, j, h) PV_LOADUI((cd) + 64 * (j) + 4 * PR * (h))

/// d (or another f16 field) of half h's rows, the 16 rows' fields being at f.
NB_T NB_INLINE pvf kil_h2f(const uint8_t *f, const int h) {
#if NB_W512
    (void)h;
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)f));
#else
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(f + 16 * h)));
#endif
}

/// kparams of half h of a block (fields at sc, code words at cd). The scale bytes are code
/// words 0...2 (q4_K, q5_K: right after d and dmin) or 48...51 (q6_K: after ql and qh).
NB_T NB_INLINE void kparams_il(nb_format fmt, const uint8_t *sc, const uint8_t *cd, const int h, kparams *p) {
    pvi u[4];
    if (fmt == NB_FMT_Q6_K) {
        for (int k = 0; k < 4; k++) u[k] = KIL_WORD(cd, 48 + k, h);
        kparams_from(fmt, kil_h2f(sc, h), PV_ZEROF(), u, p);
        return;
    }
    for (int k = 0; k < 3; k++) u[k] = KIL_WORD(cd, k, h);
    kparams_from(fmt, kil_h2f(sc, h), kil_h2f(sc + 32, h), u, p);
}

/// Code vector v (elements 32v...32v+31) of half h of a block, rows in lanes: out[j] holds each
/// row's codes 32v + 4j...+3, as kcodes and transpose_rows make them. The words: q4_K qs at
/// 3...34; q5_K qh at 3...10, qs at 11...42; q6_K ql at 0...31, qh at 32...47.
NB_T NB_INLINE void kcodes_il(nb_format fmt, const uint8_t *cd, const int v, const int h, pvi *out) {
    const pvi m4 = PV_SET1B(0x0F);
    for (int j = 0; j < 8; j++) {
        switch (fmt) {
        case NB_FMT_Q4_K: {
            const pvi q = KIL_WORD(cd, 3 + 8 * (v / 2) + j, h);
            out[j] = PV_AND(v & 1 ? PV_SRLI16(q, 4) : q, m4);
            break;
        }
        case NB_FMT_Q5_K: {  // fifth bit: bit v of the qh byte
            const pvi q = KIL_WORD(cd, 11 + 8 * (v / 2) + j, h), hb = KIL_WORD(cd, 3 + j, h);
            out[j] = PV_OR(PV_AND(v & 1 ? PV_SRLI16(q, 4) : q, m4), PV_SLLI16(PV_AND(PV_SRLI16(hb, v), PV_SET1B(1)), 4));
            break;
        }
        default: {  // elements 128jj + 32m + l: ql[64jj + 32(m & 1) + l], nibble m / 2; qh[32jj + l] bits 2m
            const int jj = v / 4, m = v % 4;
            const pvi ql = KIL_WORD(cd, 16 * jj + 8 * (m & 1) + j, h), qh = KIL_WORD(cd, 32 + 8 * jj + j, h);
            const pvi lo = PV_AND(m & 2 ? PV_SRLI16(ql, 4) : ql, m4), hi = PV_AND(PV_SRLI16(qh, 2 * m), PV_SET1B(3));
            out[j] = PV_OR(lo, PV_SLLI16(hi, 4));
            break;
        }
        }
    }
}

/// Rows lo...hi-1 of the group at grp, whose row 0 is y's row r0, against tokens t0...t0+T-1
/// (s32: the activations' pairwise sums, 4 per block; `next` as il_tile's).
NB_T NB_INLINE void kil_tile(nb_format fmt, const nb_il_geometry *g, const uint8_t *grp, const nb_q8k *xq, const int32_t *s32,
                             float *y, int64_t ld_y, int64_t r0, int lo, int hi, int64_t t0, const int T, const uint8_t *next,
                             size_t next_bytes) {
    const int64_t nb = g->nb;
    const int st = NB_IL_HALVES * PR;  // token t, half h: + t·st + h·PR
    float acc[NB_PR_TOKENS * 16] __attribute__((aligned(64)));
    float accm[NB_PR_TOKENS * 16] __attribute__((aligned(64)));
    for (int i = 0; i < T * NB_IL_HALVES; i++) {
        PV_STOREF(acc + i * PR, PV_ZEROF());
        PV_STOREF(accm + i * PR, PV_ZEROF());
    }
    const int lines = next ? prefetch_lines_per_block(next_bytes, nb) : 0;
    const int nta = T <= 4 && nb_active_prefetch() == NB_PREFETCH_NTA;  // decode: as il_tile
    const uint8_t *sc = grp, *cd = grp + g->head;  // block by block through the runs (nb_il_next)
    uintptr_t pf = (uintptr_t)next;
    int i = 0;  // the block's place in its run
    for (int64_t b = 0; b < nb; b++, pf += 64 * lines) {
        if (nta) prefetch_lines(pf, lines, 1);
        else prefetch_lines(pf, lines, 0);
        const nb_q8k *xb = xq + t0 * nb + b;
        const int32_t *s32b = s32 ? s32 + (t0 * nb + b) * 4 : NULL;
        for (int h = 0; h < NB_IL_HALVES; h++) {
            kparams p;
            kparams_il(fmt, sc, cd, h, &p);
            pvi isum[NB_PR_TOKENS], scales[16];
            for (int i = 0; i < (fmt == NB_FMT_Q6_K ? 16 : 8); i++) scales[i] = ksc(fmt, &p, i);
            kblock_begin(fmt, &p, xb, nb, T, isum);
            // One code vector at a time, the loop unrolled: the shifts that pick each vector's
            // bits are then immediates (in a loop they were registers, and q6_K decode was
            // slower than on the GGML layout).
#pragma clang loop unroll(full)
            for (int v = 0; v < 8; v++) {
                pvi vv[8];
                kcodes_il(fmt, cd, v, h, vv);
                kblock_codes(fmt, scales, v, vv, xb, nb, T, isum);
            }
            kblock_end(fmt, &p, xb, nb, s32b, T, isum, acc + h * PR, accm + h * PR, st);
        }
        nb_il_next(g, &sc, &cd, &i);
    }
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NB_IL_HALVES; h++) {
            const int l0 = lo > h * PR ? lo - h * PR : 0, l1 = hi < (h + 1) * PR ? hi - h * PR : PR;
            if (l0 >= l1) continue;
            const float *at = acc + t * st + h * PR, *mt = accm + t * st + h * PR;
            il_store(y + (t0 + t) * ld_y + r0 + h * PR, PV_SUBF(PV_LOADF(at), PV_LOADF(mt)), l0, l1);
        }
}
#undef KIL_WORD
