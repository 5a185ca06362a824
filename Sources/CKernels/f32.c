// f32 dot products, matrix-vector and matrix-matrix products.
//
// Decode is bound by memory bandwidth: each weight row is streamed once per token, so
// the kernels keep several independent FMA accumulators to hide latency. Prefill
// multiplies register tiles of 4 rows × 6 tokens (AVX-512; 4 × 3 on AVX2) in dot-product form.
#include "CKernels.h"
#include "dispatch.h"

// ---- scalar reference ---------------------------------------------------------------

static float dot_scalar(const float *a, const float *b, int64_t n) {
    // Eight partial sums, like the SIMD versions, so both sum in a similar order.
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void axpy_scalar(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// ---- AVX2 + FMA ---------------------------------------------------------------------
#if defined(__x86_64__)
#include <immintrin.h>

NB_AVX2 static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

NB_AVX2 static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

NB_AVX2 static void axpy_avx2(float a, const float *x, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

// Prefill: Y[t, r] for a tile of 4 rows × RN tokens (RN ≤ 3) in dot-product form, as
// llamafile's tinyBLAS does: each step loads RN activation vectors, then the 4 rows' weight
// vectors one at a time, and does 4·RN FMAs into 4·RN accumulators (12 + 3 + 1 of the 16
// registers). Called with constant RN, so it unrolls into straight register code. k is a
// multiple of 8.
NB_AVX2 static inline __attribute__((always_inline)) __m128 reduce4_avx2(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

NB_AVX2 static inline __attribute__((always_inline)) void tile_4xn_avx2(const float *w, const float *x, float *y, int64_t k, int64_t ld,
                                                                        int64_t ld_y, const int rn, int accumulate) {
    __m256 acc[3][4];
    for (int j = 0; j < rn; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = _mm256_setzero_ps();
    for (int64_t l = 0; l < k; l += 8) {
        __m256 b[3];
        for (int j = 0; j < rn; j++) b[j] = _mm256_loadu_ps(x + j * ld + l);
        for (int i = 0; i < 4; i++) {
            __m256 a = _mm256_loadu_ps(w + i * ld + l);
            for (int j = 0; j < rn; j++) acc[j][i] = _mm256_fmadd_ps(a, b[j], acc[j][i]);
        }
    }
    for (int j = 0; j < rn; j++) {
        __m128 sum = reduce4_avx2(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        _mm_storeu_ps(y + j * ld_y, accumulate ? _mm_add_ps(_mm_loadu_ps(y + j * ld_y), sum) : sum);
    }
}

// The last n_tokens mod 3 tokens of a 4-row tile.
NB_AVX2 static inline void tail_4xn_avx2(const float *w, const float *x, float *y, int64_t kc, int64_t k, int64_t ld_y, int64_t n,
                                         int accumulate) {
    switch (n) {
    case 2: tile_4xn_avx2(w, x, y, kc, k, ld_y, 2, accumulate); break;
    case 1: tile_4xn_avx2(w, x, y, kc, k, ld_y, 1, accumulate); break;
    default: break;
    }
}

// Rows [r0, r0 + 4·⌊(r1 − r0)/4⌋) of Y for every token, returning the first row not done.
// k is cut into slices of at most 768 columns, so that a tile's 4 weight rows and RN
// activation rows (≤ 30 KiB) stay in the L1 cache; later slices add to the first one's sums.
#define NB_F32_KC_MAX 768
#define NB_F32_MATMUL(ISA, ATTR, RN, WIDTH)                                                                          \
    ATTR static int64_t matmul_f32_##ISA(const float *w, const float *x, float *y, int64_t k, int64_t n_tokens,      \
                                         int64_t ld_y, int64_t r0, int64_t r1) {                                     \
        int64_t r_end = r0 + (r1 - r0) / 4 * 4;                                                                     \
        int64_t slices = (k + NB_F32_KC_MAX - 1) / NB_F32_KC_MAX;                                                   \
        int64_t slice = ((k + slices - 1) / slices + WIDTH - 1) / WIDTH * WIDTH;                                    \
        for (int64_t kb = 0; kb < k; kb += slice) {                                                                 \
            int64_t kc = k - kb < slice ? k - kb : slice;                                                           \
            for (int64_t r = r0; r < r_end; r += 4) {                                                               \
                const float *wr = w + r * k + kb;                                                                   \
                int64_t t = 0;                                                                                      \
                for (; t + RN <= n_tokens; t += RN)                                                                 \
                    tile_4xn_##ISA(wr, x + t * k + kb, y + t * ld_y + r, kc, k, ld_y, RN, kb > 0);                  \
                tail_4xn_##ISA(wr, x + t * k + kb, y + t * ld_y + r, kc, k, ld_y, n_tokens - t, kb > 0);            \
            }                                                                                                       \
        }                                                                                                           \
        return r_end;                                                                                               \
    }

NB_F32_MATMUL(avx2, NB_AVX2, 3, 8)
#endif

// ---- AVX-512F -----------------------------------------------------------------------
#if defined(__x86_64__)
NB_AVX512 static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

// The AVX-512 prefill tile: 4 rows × RN ≤ 6 tokens (24 accumulators + 4 weight vectors + 1
// activation vector of the 32 registers; 10 loads per 24 FMAs).
NB_AVX512 static inline __attribute__((always_inline)) __m128 reduce4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
#define NB_HALVES(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(NB_HALVES(a), NB_HALVES(b)), _mm256_hadd_ps(NB_HALVES(c), NB_HALVES(d)));
#undef NB_HALVES
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

NB_AVX512 static inline __attribute__((always_inline)) void tile_4xn_avx512(const float *w, const float *x, float *y, int64_t k, int64_t ld,
                                                                            int64_t ld_y, const int rn, int accumulate) {
    __m512 acc[6][4];
    for (int j = 0; j < rn; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = _mm512_setzero_ps();
    for (int64_t l = 0; l < k; l += 16) {
        __m512 a[4];
        for (int i = 0; i < 4; i++) a[i] = _mm512_loadu_ps(w + i * ld + l);
        for (int j = 0; j < rn; j++) {
            __m512 b = _mm512_loadu_ps(x + j * ld + l);
            for (int i = 0; i < 4; i++) acc[j][i] = _mm512_fmadd_ps(a[i], b, acc[j][i]);
        }
    }
    for (int j = 0; j < rn; j++) {
        __m128 sum = reduce4_avx512(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        _mm_storeu_ps(y + j * ld_y, accumulate ? _mm_add_ps(_mm_loadu_ps(y + j * ld_y), sum) : sum);
    }
}

NB_AVX512 static inline void tail_4xn_avx512(const float *w, const float *x, float *y, int64_t kc, int64_t k, int64_t ld_y,
                                             int64_t n, int accumulate) {
    switch (n) {
    case 5: tile_4xn_avx512(w, x, y, kc, k, ld_y, 5, accumulate); break;
    case 4: tile_4xn_avx512(w, x, y, kc, k, ld_y, 4, accumulate); break;
    case 3: tile_4xn_avx512(w, x, y, kc, k, ld_y, 3, accumulate); break;
    case 2: tile_4xn_avx512(w, x, y, kc, k, ld_y, 2, accumulate); break;
    case 1: tile_4xn_avx512(w, x, y, kc, k, ld_y, 1, accumulate); break;
    default: break;
    }
}

NB_F32_MATMUL(avx512, NB_AVX512, 6, 16)
#endif

// ---- dispatch -----------------------------------------------------------------------

float nb_dot_f32(const float *a, const float *b, int64_t n) {
#if defined(__x86_64__)
    switch (nb_active_isa()) {
    case NB_ISA_AVX512: return dot_avx512(a, b, n);
    case NB_ISA_AVX2: return dot_avx2(a, b, n);
    default: break;
    }
#endif
    return dot_scalar(a, b, n);
}

void nb_axpy_f32(float a, const float *x, float *y, int64_t n) {
#if defined(__x86_64__)
    if (nb_active_isa() >= NB_ISA_AVX2) { axpy_avx2(a, x, y, n); return; }
#endif
    axpy_scalar(a, x, y, n);
}

void nb_matvec_f32(const float *w, const float *x, float *y, int64_t k, int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; r++) y[r] = nb_dot_f32(w + r * k, x, k);
}

void nb_matmul_f32(const float *w, const float *x, float *y, int64_t k, int64_t n_tokens, int64_t ld_y,
                   int64_t row_begin, int64_t row_end) {
    int64_t r = row_begin;
#if defined(__x86_64__)
    nb_isa isa = nb_active_isa();
    if (isa == NB_ISA_AVX512 && k % 16 == 0) r = matmul_f32_avx512(w, x, y, k, n_tokens, ld_y, r, row_end);
    else if ((isa == NB_ISA_AVX2 || isa == NB_ISA_AVX512) && k % 8 == 0) r = matmul_f32_avx2(w, x, y, k, n_tokens, ld_y, r, row_end);
#endif
    for (; r < row_end; r++)
        for (int64_t t = 0; t < n_tokens; t++) y[t * ld_y + r] = nb_dot_f32(w + r * k, x + t * k, k);
}
