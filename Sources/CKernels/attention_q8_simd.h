// The SIMD body of attention.c's integer scores over q8 keys, written once for the three
// 256-bit dot products: attention.c includes it once per instruction set with Q8NAME (the
// function's name), Q8ATTR (its target attribute), Q8_PREP(k) (the loaded codes as the dot
// wants them) and Q8_DOT(k, prepared, q, corr) (8 int32 lanes, lane l = Σ of codes 4l...4l+3
// times the query's codes) defined. No include guard: it is meant to be included repeatedly.
//
// s[g·NB_ATT_CHUNK + j] = scale · Σ_b (d_jb · qd_gb) · Σ_{i in block b} k_ji · qc_gi, four
// positions a step: the integer sums are exact, and the float operations per (position,
// block) are scores_q8_scalar's, in the same order.
#define Q8_CAT2(a, b) a##b
#define Q8_CAT(a, b) Q8_CAT2(a, b)
Q8ATTR static inline __attribute__((always_inline)) void Q8_CAT(Q8NAME, _g)(const q8_query *qq, const int G, kv_rows kv, const int64_t *off,
                                                                            int64_t c, int64_t hd, float scale, float *s) {
    const int64_t nb = hd / NB_KV_Q8_BLOCK;
    const __m128 vscale = _mm_set1_ps(scale);
    for (int64_t j = 0; j < c; j += 4) {
        const int8_t *row[4];
        for (int i = 0; i < 4; i++) row[i] = (const int8_t *)kv.keys + off[j + i < c ? j + i : c - 1];  // past c: repeats, not stored
        if (kv.ahead_positions)  // off[NB_ATT_CHUNK + j]: the position ahead's row
            for (int i = 0; i < 4; i++)
                for (int64_t b = 0; b < kv.row_bytes; b += 64)
                    NB_ATT_PREFETCH(kv, (const char *)kv.keys + off[NB_ATT_CHUNK + (j + i < c ? j + i : c - 1)] + b);
        __m128 acc[NB_ATT_MAXG];
        for (int g = 0; g < G; g++) acc[g] = _mm_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            __m256i k[4], kp[4];
            for (int i = 0; i < 4; i++) {
                k[i] = _mm256_loadu_si256((const __m256i *)(row[i] + b * NB_KV_Q8_BLOCK));
                kp[i] = Q8_PREP(k[i]);
            }
            const __m128 d4 = _mm_setr_ps(q8_scale(row[0], hd, b), q8_scale(row[1], hd, b), q8_scale(row[2], hd, b), q8_scale(row[3], hd, b));
            for (int g = 0; g < G; g++) {
                const __m256i qv = _mm256_loadu_si256((const __m256i *)(qq->c[g] + b * NB_KV_Q8_BLOCK));
                const __m256i corr = _mm256_loadu_si256((const __m256i *)qq->corr[g][b]);
                (void)corr;  // AVX2's Q8_DOT does not take it
                const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(Q8_DOT(k[0], kp[0], qv, corr), Q8_DOT(k[1], kp[1], qv, corr)),
                                                    _mm256_hadd_epi32(Q8_DOT(k[2], kp[2], qv, corr), Q8_DOT(k[3], kp[3], qv, corr)));
                const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                const __m128 ds = _mm_mul_ps(d4, _mm_set1_ps(qq->d[g][b]));
                acc[g] = _mm_add_ps(acc[g], _mm_mul_ps(_mm_cvtepi32_ps(sums), ds));
            }
        }
        for (int g = 0; g < G; g++) store4_scores(s + g * NB_ATT_CHUNK, j, c, _mm_mul_ps(acc[g], vscale));
    }
}

// G a constant in each instance (its accumulators in registers: with G a variable they
// lived on the stack, and the AVX-512 kernel ran 8 % slower than the float one).
Q8ATTR static void Q8NAME(const q8_query *qq, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float scale, float *s) {
    switch (G) {
#define Q8_CASE(N) case N: Q8_CAT(Q8NAME, _g)(qq, N, kv, off, c, hd, scale, s); break;
    Q8_CASE(1) Q8_CASE(2) Q8_CASE(3) Q8_CASE(4) Q8_CASE(5) Q8_CASE(6) Q8_CASE(7) Q8_CASE(8)
#undef Q8_CASE
    default: break;
    }
}
#undef Q8_CAT
#undef Q8_CAT2
