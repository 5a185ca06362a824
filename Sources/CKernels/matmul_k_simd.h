// SIMD kernels of the K-quants (q4_K, q5_K, q6_K) against nb_q8k activations, as a
// template: the including file defines NB_T (target attribute), NB_VNNI (1: fuse the
// scale multiply-add into _mm256_dpwssd_epi32) and NB_KENTRY(NAME) (the entry points'
// names), and includes <immintrin.h> and matmul_q.h first. The arithmetic is
// matmul_k.c's: exact int32 block sums, then one f32 order.
//
// A block is decoded into 8 vectors of 32 unsigned codes (vector v = elements 32v...32v+31)
// and 8 vectors of int16 sub-block scales; each (block, token) is then 8 ×
// (_mm256_maddubs_epi16 codes · activations → int16 pairs, _mm256_madd_epi16 with the
// scales → int32), as GGML's ggml_vec_dot_q4_K_q8_K (ggml-cpu/arch/x86/quants.c, MIT), from
// which the scale unpacking (utmp) and the bit shuffles are taken. Eight (row, token)
// block sums are reduced together (reduce4/combine4 of matmul_q_simd.h) so the f32 work
// is one convert and one FMA (two with mins) per 8 pairs. Decode puts 8 rows in the
// lanes; prefill 8 tokens, so each decoded block serves 8 tokens.
// Ranges: codes ≤ 63 and |x| ≤ 127 keep the int16 pairs below 2^15 (no saturation).

#define NB_K_TOKEN_GROUP 64  // tokens whose activations stay in L2 while the rows run over them

typedef struct {
    __m256i q[8];    // codes
    __m256i sc[8];   // int16 scale of each code's sub-block
    __m128i mins;    // q4_K/q5_K: the 8 sub-block mins as int16
    __m256i sc16;    // q6_K: the 16 scales as int16 (for the −32 · bsums term)
    float d, dmin;
} kblock;

NB_T NB_INLINE __m256i kdot(__m256i acc, __m256i q, __m256i x, __m256i sc16) {
#if NB_VNNI
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(q, x), sc16);
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

// Decoders: with direct == 0 they store the codes in kb->q (prefill: reused for 8 tokens);
// with direct == 1 and an activation block x they multiply each code vector as it is made, into *acc
// (decode: nothing to reuse, and fewer live registers).
#define K_EMIT(v, qv, scv)                                                                                 \
    do {                                                                                                     \
        if (direct) {                                                                                        \
            *acc = kdot(*acc, (qv), _mm256_loadu_si256((const __m256i *)(x->qs + 32 * (v))), (scv));       \
        } else {                                                                                             \
            kb->q[v] = (qv);                                                                                 \
            kb->sc[v] = (scv);                                                                               \
        }                                                                                                    \
    } while (0)

NB_T NB_INLINE void decode_q4_K(const nb_block_q4_K *b, kblock *kb, const int direct, const nb_q8k *x, __m256i *acc) {
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

NB_T NB_INLINE void decode_q5_K(const nb_block_q5_K *b, kblock *kb, const int direct, const nb_q8k *x, __m256i *acc) {
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

NB_T NB_INLINE void decode_q6_K(const nb_block_q6_K *b, kblock *kb, const int direct, const nb_q8k *x, __m256i *acc) {
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

NB_T NB_INLINE void decode_k(nb_format fmt, const uint8_t *blk, kblock *kb, const int direct, const nb_q8k *x, __m256i *acc) {
    switch (fmt) {
    case NB_FMT_Q4_K: decode_q4_K((const nb_block_q4_K *)blk, kb, direct, x, acc); break;
    case NB_FMT_Q5_K: decode_q5_K((const nb_block_q5_K *)blk, kb, direct, x, acc); break;
    default: decode_q6_K((const nb_block_q6_K *)blk, kb, direct, x, acc); break;
    }
}

// The −32 of q6_K's codes: Σ_s sc_s · 32 · bsum_s, subtracted from the block's sums.
NB_T NB_INLINE __m256i q6_offset(nb_format fmt, __m256i acc, const kblock *kb, const nb_q8k *x) {
    if (fmt != NB_FMT_Q6_K) return acc;
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    return _mm256_sub_epi32(acc, _mm256_slli_epi32(_mm256_madd_epi16(bsums, kb->sc16), 5));
}

// 8 int32 partial sums of one block against one activation block (isum of matmul_k.c).
NB_T NB_INLINE __m256i kblock_dot(nb_format fmt, const kblock *kb, const nb_q8k *x) {
    __m256i acc = _mm256_setzero_si256();
    for (int v = 0; v < 8; v++) acc = kdot(acc, kb->q[v], _mm256_loadu_si256((const __m256i *)(x->qs + 32 * v)), kb->sc[v]);
    return q6_offset(fmt, acc, kb, x);
}

// The pairwise bsums (Σ of each 32 activations) as 8 int16: the mins' partners.
NB_T NB_INLINE __m128i q8k_sums32(const nb_q8k *x) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums), _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
}

// ---- decode: 8 rows × 1 token -----------------------------------------------------------------

NB_T NB_INLINE void kmatvec8(nb_format fmt, const uint8_t *w, size_t row_bytes, size_t block_bytes, int64_t nb,
                             const nb_q8k *x, float *y, int64_t r, int64_t r_end) {
    const uint8_t *rows[8];
    for (int i = 0; i < 8; i++) rows[i] = w + (size_t)(r + i < r_end ? r + i : r_end - 1) * row_bytes;
    if (r + 8 < r_end) {
        const uint8_t *next = w + (size_t)(r + 8) * row_bytes, *stop = w + (size_t)(r + 16 < r_end ? r + 16 : r_end) * row_bytes;
        for (const uint8_t *p = next; p < stop; p += 64) _mm_prefetch((const char *)p, _MM_HINT_T0);
    }
    const int has_min = fmt != NB_FMT_Q6_K;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s[8];
        __m128i mins[8];
        float dw[8], dm[8];
        for (int i = 0; i < 8; i++) {
            kblock kb;
            __m256i acc_i = _mm256_setzero_si256();
            decode_k(fmt, rows[i] + (size_t)b * block_bytes, &kb, 1, x + b, &acc_i);
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

// ---- prefill: 1 row × 8 tokens ----------------------------------------------------------------

// Row r against the 8 tokens xt[0..7] (repeats past T are dropped). xd: per block the 8
// tokens' d; sums: per block 4 vectors, vector i = [token i's pairwise sums | token i+4's].
NB_T NB_INLINE void ktile(nb_format fmt, const uint8_t *row, size_t block_bytes, int64_t nb, const nb_q8k *const *xt,
                          const float *xd, const __m256i *sums, float *y, int64_t ld_y, int64_t r, int T) {
    const int has_min = fmt != NB_FMT_Q6_K;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        kblock kb;
        decode_k(fmt, row + (size_t)b * block_bytes, &kb, 0, NULL, NULL);
        __m256i s[8];
        for (int t = 0; t < 8; t++) s[t] = kblock_dot(fmt, &kb, xt[t] + b);
        const __m256 dx = _mm256_load_ps(xd + 8 * b);
        const __m256 isum = combine4(reduce4(s[0], s[1], s[2], s[3]), reduce4(s[4], s[5], s[6], s[7]));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(kb.d), dx), isum, acc);
        if (has_min) {
            const __m256i mins = _mm256_broadcastsi128_si256(kb.mins);
            __m256i v[4];
            for (int i = 0; i < 4; i++) v[i] = _mm256_madd_epi16(mins, _mm256_load_si256(sums + 4 * b + i));
            const __m256 imin = _mm256_cvtepi32_ps(reduce4(v[0], v[1], v[2], v[3]));
            accm = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(kb.dmin), dx), imin, accm);
        }
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_sub_ps(acc, accm));
    for (int t = 0; t < T; t++) y[t * ld_y + r] = out[t];
}

NB_T NB_INLINE void matmul_k_simd(nb_format fmt, const void *w, int64_t k, const nb_q8k *xq, float *y,
                                  int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {
    const int64_t nb = k / NB_QKK;
    const size_t block_bytes = (size_t)nb_formats[fmt].info.block_bytes, row_bytes = block_bytes * (size_t)nb;
    const uint8_t *base = w;
    if (n_tokens == 1) {
        for (int64_t r = r0; r < r1; r += 8) kmatvec8(fmt, base, row_bytes, block_bytes, nb, xq, y, r, r1);
        return;
    }
    // Scratch per token octet: per block the 8 tokens' d, and their pairwise sums.
    const int64_t octets = NB_K_TOKEN_GROUP / 8;
    const size_t bytes = (size_t)(octets * nb) * (32 + 4 * 32);
    uint8_t *scratch = aligned_alloc(32, bytes);
    if (!scratch) {
        nb_formats[fmt].matmul[0](w, 0, k, NULL, xq, y, n_tokens, ld_y, r0, r1);
        return;
    }
    float *xd = (float *)scratch;
    __m256i *sums = (__m256i *)(scratch + (size_t)(octets * nb) * 32);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += NB_K_TOKEN_GROUP) {
        const int64_t tg = n_tokens - t0 < NB_K_TOKEN_GROUP ? n_tokens - t0 : NB_K_TOKEN_GROUP;
        const int64_t no = (tg + 7) / 8;
        for (int64_t o = 0; o < no; o++) {
            const nb_q8k *xt[8];
            for (int t = 0; t < 8; t++) xt[t] = xq + (t0 + (8 * o + t < tg ? 8 * o + t : tg - 1)) * nb;
            for (int64_t b = 0; b < nb; b++) {
                for (int t = 0; t < 8; t++) xd[(o * nb + b) * 8 + t] = xt[t][b].d;
                for (int i = 0; i < 4; i++)
                    _mm256_store_si256(sums + (o * nb + b) * 4 + i, _mm256_set_m128i(q8k_sums32(xt[i + 4] + b), q8k_sums32(xt[i] + b)));
            }
        }
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = base + (size_t)r * row_bytes;
            for (int64_t o = 0; o < no; o++) {
                const int T = tg - 8 * o < 8 ? (int)(tg - 8 * o) : 8;
                const nb_q8k *xt[8];
                for (int t = 0; t < 8; t++) xt[t] = xq + (t0 + 8 * o + (t < T ? t : T - 1)) * nb;
                ktile(fmt, row, block_bytes, nb, xt, xd + o * nb * 8, sums + o * nb * 4, y + (t0 + 8 * o) * ld_y, ld_y, r, T);
            }
        }
    }
    free(scratch);
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
