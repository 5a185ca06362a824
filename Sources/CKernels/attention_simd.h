// The SIMD body of attention.c, written once for any vector width: attention.c includes it
// once per instruction set with V (the float vector), VW (its lanes), VATTR (the target
// attribute), VNAME(x) (x with the set's suffix), V_ZERO(), V_LOAD, V_STORE, V_FMADD, V_SET1,
// V_LOADKV(base, fmt, o, d, hd) (elements d...d+VW−1 of the cache row at o, as floats), V_REDUCE4(a, b, c, d) (an __m128
// of the four vectors' sums), NB_ATT_ACC(fmt) (the accumulators a loop over a cache of format
// fmt may keep in registers) and NB_ATT_PACC(fmt) (the same for 3 or 2 positions a step; 0:
// none) defined, and optionally V_REDUCE8(v) (an __m256 of v[0...7]'s).
// No include guard: it is meant to be included repeatedly.
//
// G query heads share one KV head (grouped-query attention): each key and value vector is
// loaded and widened once and used for all G heads. The functions are always inlined into a
// switch over G = 1...NB_ATT_MAXG, so that every loop over the heads has a constant bound
// and its accumulators live in registers.

// s[g·NB_ATT_CHUNK + j] = scale · q_g·k_j. P = 4 positions at a time where G·4 ≤
// NB_ATT_ACC(fmt) accumulators fit, else 3 or 2 where G·P ≤ NB_ATT_PACC(fmt), each step reduced
// per head into P consecutive scores (the first P of a reduction of 4); else
// one position at a time with G accumulators. Each key vector is loaded and widened once for
// all G heads.
VATTR static inline __attribute__((always_inline)) void VNAME(scores4_g)(const float *q, const int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                         int64_t c, int64_t hd, float scale, float *s) {
    const __m128 vscale = _mm_set1_ps(scale);
    const int P = G * 4 <= NB_ATT_ACC(fmt) ? 4 : G * 3 <= NB_ATT_PACC(fmt) ? 3 : G * 2 <= NB_ATT_PACC(fmt) ? 2 : 1;
    if (P > 1) {
        for (int64_t j = 0; j < c; j += P) {
            int64_t o[4];
            for (int i = 0; i < P; i++) o[i] = off[j + i < c ? j + i : c - 1];  // past c: repeats, not stored
            V acc[NB_ATT_MAXG][4];
            for (int g = 0; g < G; g++)
                for (int i = 0; i < 4; i++) acc[g][i] = V_ZERO();
            if (kv.ahead)
                for (int i = 0; i < P; i++)
                    for (int64_t b = 0; b < kv.row_bytes; b += 64)  // the row's bytes, a line at a time
                        __builtin_prefetch((const char *)kv.keys + ((o[i] + kv.ahead) << kv.shift) + b, 0, 0);
            for (int64_t d = 0; d < hd; d += VW) {
                for (int i = 0; i < P; i++) {
                    const V k = V_LOADKV(kv.keys, fmt, o[i], d, hd);
                    for (int g = 0; g < G; g++) acc[g][i] = V_FMADD(V_LOAD(q + g * hd + d), k, acc[g][i]);
                }
            }
            for (int g = 0; g < G; g++) {
                const __m128 r = _mm_mul_ps(V_REDUCE4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]), vscale);
                if (P == 4) store4_scores(s + g * NB_ATT_CHUNK, j, c, r);
                else {
                    float t[4];
                    _mm_storeu_ps(t, r);
                    for (int i = 0; i < P && j + i < c; i++) s[g * NB_ATT_CHUNK + j + i] = t[i];
                }
            }
        }
        return;
    }
    for (int64_t j = 0; j < c; j++) {
        V acc[NB_ATT_MAXG + 3];
        for (int g = 0; g < G + 3; g++) acc[g] = V_ZERO();
        for (int64_t d = 0; d < hd; d += VW) {
            const V k = V_LOADKV(kv.keys, fmt, off[j], d, hd);
            for (int g = 0; g < G; g++) acc[g] = V_FMADD(V_LOAD(q + g * hd + d), k, acc[g]);
        }
        for (int g = 0; g < G; g += 4) {
            float r[4];
            _mm_storeu_ps(r, _mm_mul_ps(V_REDUCE4(acc[g], acc[g + 1], acc[g + 2], acc[g + 3]), vscale));
            for (int i = 0; i < 4 && g + i < G; i++) s[(g + i) * NB_ATT_CHUNK + j] = r[i];
        }
    }
}

// The same with 8 positions a step where G · 8 accumulators fit (AVX-512, G ≤ 3: SmolLM2's 3
// query heads per KV head), reduced 8 at a time per head by a shuffle tree (V_REDUCE8): the
// scores' reductions took 5 instructions a score, these 3.
VATTR static inline __attribute__((always_inline)) void VNAME(scores_g)(const float *q, const int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                        int64_t c, int64_t hd, float scale, float *s) {
#ifdef V_REDUCE8
    if (G * 8 <= NB_ATT_ACC(fmt)) {  // 8 positions a step, reduced 8 at a time per head
        const __m256 vscale8 = _mm256_set1_ps(scale);
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) {
            V acc[NB_ATT_MAXG][8];
            for (int g = 0; g < G; g++)
                for (int i = 0; i < 8; i++) acc[g][i] = V_ZERO();
            if (kv.ahead)
                for (int i = 0; i < 8; i++)
                    for (int64_t b = 0; b < kv.row_bytes; b += 64)
                        __builtin_prefetch((const char *)kv.keys + ((off[j + i] + kv.ahead) << kv.shift) + b, 0, 0);
            for (int64_t d = 0; d < hd; d += VW)
                for (int i = 0; i < 8; i++) {
                    const V k = V_LOADKV(kv.keys, fmt, off[j + i], d, hd);
                    for (int g = 0; g < G; g++) acc[g][i] = V_FMADD(V_LOAD(q + g * hd + d), k, acc[g][i]);
                }
            for (int g = 0; g < G; g++) _mm256_storeu_ps(s + g * NB_ATT_CHUNK + j, _mm256_mul_ps(V_REDUCE8(acc[g]), vscale8));
        }
        if (j < c) VNAME(scores4_g)(q, G, fmt, kv, off + j, c - j, hd, scale, s + j);  // the last < 8: 4 at a time
        return;
    }
#endif
    VNAME(scores4_g)(q, G, fmt, kv, off, c, hd, scale, s);
}

// out[g·hd + d] += Σ_j w[g·NB_ATT_CHUNK + j] · value_j[d]: D vectors of head dimensions for all
// G heads at a time (G·D accumulators, ≤ 24 with AVX-512's 32 registers, ≤ 12 with AVX2's 16),
// so G·D FMA chains run side by side.
VATTR static inline __attribute__((always_inline)) void VNAME(values_g)(const float *w, const int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                        int64_t c, int64_t hd, float *out) {
    const int D = G * 4 <= NB_ATT_ACC(fmt) ? 4 : G * 2 <= NB_ATT_ACC(fmt) ? 2 : 1;
    int64_t d = 0;
    for (; d + D * VW <= hd; d += D * VW) {
        V o[NB_ATT_MAXG][4];
        for (int g = 0; g < G; g++)
            for (int e = 0; e < D; e++) o[g][e] = V_LOAD(out + g * hd + d + e * VW);
        for (int64_t j = 0; j < c; j++) {
            if (kv.ahead && d == 0)
                for (int64_t b = 0; b < kv.row_bytes; b += 64)
                    __builtin_prefetch((const char *)kv.values + ((off[j] + kv.ahead) << kv.shift) + b, 0, 0);
            V wj[NB_ATT_MAXG];
            for (int g = 0; g < G; g++) wj[g] = V_SET1(w[g * NB_ATT_CHUNK + j]);
            for (int e = 0; e < D; e++) {
                const V v = V_LOADKV(kv.values, fmt, off[j], d + e * VW, hd);
                for (int g = 0; g < G; g++) o[g][e] = V_FMADD(wj[g], v, o[g][e]);
            }
        }
        for (int g = 0; g < G; g++)
            for (int e = 0; e < D; e++) V_STORE(out + g * hd + d + e * VW, o[g][e]);
    }
    for (; d < hd; d += VW) {
        V o[NB_ATT_MAXG];
        for (int g = 0; g < G; g++) o[g] = V_LOAD(out + g * hd + d);
        for (int64_t j = 0; j < c; j++) {
            const V v = V_LOADKV(kv.values, fmt, off[j], d, hd);
            for (int g = 0; g < G; g++) o[g] = V_FMADD(V_SET1(w[g * NB_ATT_CHUNK + j]), v, o[g]);
        }
        for (int g = 0; g < G; g++) V_STORE(out + g * hd + d, o[g]);
    }
}

#define NB_ATT_CASES(CALL) \
    CALL(2) CALL(3) CALL(4) CALL(5) CALL(6) CALL(7) CALL(8)

// hd a multiple of VW (q8: of 32), 1 ≤ G ≤ NB_ATT_MAXG. One instance per cache format, so
// the loads' format is a constant in every loop.
VATTR static inline __attribute__((always_inline)) void VNAME(scores_f)(const float *q, int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                        int64_t c, int64_t hd, float scale, float *s) {
    switch (G) {
    case 1: VNAME(scores_g)(q, 1, fmt, kv, off, c, hd, scale, s); break;
#define NB_ATT_SCORES(N) case N: VNAME(scores_g)(q, N, fmt, kv, off, c, hd, scale, s); break;
    NB_ATT_CASES(NB_ATT_SCORES)
#undef NB_ATT_SCORES
    default: break;
    }
}

VATTR static inline __attribute__((always_inline)) void VNAME(values_f)(const float *w, int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                        int64_t c, int64_t hd, float *out) {
    switch (G) {
    case 1: VNAME(values_g)(w, 1, fmt, kv, off, c, hd, out); break;
#define NB_ATT_VALUES(N) case N: VNAME(values_g)(w, N, fmt, kv, off, c, hd, out); break;
    NB_ATT_CASES(NB_ATT_VALUES)
#undef NB_ATT_VALUES
    default: break;
    }
}

#undef NB_ATT_CASES

VATTR static void VNAME(scores)(const float *q, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float scale, float *s) {
    switch (kv.fmt) {
    case NB_KV_F32: VNAME(scores_f)(q, G, NB_KV_F32, kv, off, c, hd, scale, s); break;
    case NB_KV_F16: VNAME(scores_f)(q, G, NB_KV_F16, kv, off, c, hd, scale, s); break;
    default: VNAME(scores_f)(q, G, NB_KV_Q8, kv, off, c, hd, scale, s); break;
    }
}

VATTR static void VNAME(values)(const float *w, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float *out) {
    switch (kv.fmt) {
    case NB_KV_F32: VNAME(values_f)(w, G, NB_KV_F32, kv, off, c, hd, out); break;
    case NB_KV_F16: VNAME(values_f)(w, G, NB_KV_F16, kv, off, c, hd, out); break;
    default: VNAME(values_f)(w, G, NB_KV_Q8, kv, off, c, hd, out); break;
    }
}
