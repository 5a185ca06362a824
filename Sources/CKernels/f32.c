// f32 dot products, matrix-vector and matrix-matrix products.
//
// Decode is bound by memory bandwidth: each weight row is streamed once per token, so
// the kernels keep several independent FMA accumulators to hide latency. Prefill
// multiplies register tiles of 4 rows × 6 tokens (AVX-512; 4 × 3 on AVX2) in dot-product form.
#include "CKernels.h"
#include "dispatch.h"

#define NB_TILE_KC_MAX 768  // prefill_tile_simd.h: columns per k slice (4 + 6 rows of 768 floats: 30 KiB)

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
#include "x86_simd.h"
#include "simd_reduce.h"

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

// Prefill: the 16-row panels and 4 × 3 register tiles of prefill_tile_simd.h on AVX2.
#define NB_TILE_AVX512 0
#define WT float
#define WLOAD _mm256_loadu_ps
#define PANEL_LOAD _mm256_loadu_ps
#define PANEL_MIN 64
#define TNAME(x) x##_f32_avx2
#include "prefill_tile_simd.h"
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

// Prefill on AVX-512: 4 rows × 6 tokens (24 accumulators; 10 loads per 24 FMAs).
#define NB_TILE_AVX512 1
#define WT float
#define WLOAD _mm512_loadu_ps
#define TNAME(x) x##_f32_avx512
#include "prefill_tile_simd.h"
#endif

// ---- dispatch -----------------------------------------------------------------------

float nb_dot_f32(const float *a, const float *b, int64_t n) {
#if defined(__x86_64__)
    switch (nb_active_isa()) {
    case NB_ISA_AVX512: return dot_avx512(a, b, n);
    case NB_ISA_AVX2:
    case NB_ISA_AVXVNNI: return dot_avx2(a, b, n);
    default: break;
    }
#endif
    return dot_scalar(a, b, n);
}

void nb_axpy_f32(float a, const float *x, float *y, int64_t n) {
#if defined(__x86_64__)
    if (nb_isa_has_avx2(nb_active_isa())) { axpy_avx2(a, x, y, n); return; }
#endif
    axpy_scalar(a, x, y, n);
}

void nb_matvec_f32(const float *w, const float *x, float *y, int64_t k, int64_t row_begin, int64_t row_end) {
    const int nta = nb_active_prefetch() == NB_PREFETCH_NTA;
    for (int64_t r = row_begin; r < row_end; r++) {
        nb_prefetch_row_ahead(nta, w, 4 * (size_t)k, r, row_end);
        y[r] = nb_dot_f32(w + r * k, x, k);
    }
}

void nb_matmul_f32(const float *w, const float *x, float *y, int64_t k, int64_t n_tokens, int64_t ld_y,
                   int64_t row_begin, int64_t row_end) {
    int64_t r = row_begin;
#if defined(__x86_64__)
    nb_isa isa = nb_active_isa();
    if (isa == NB_ISA_AVX512 && k % 16 == 0) r = prefill_4xn_f32_avx512(w, x, y, k, n_tokens, ld_y, r, row_end);
    else if (nb_isa_has_avx2(isa) && k % 8 == 0) r = prefill_4xn_f32_avx2(w, x, y, k, n_tokens, ld_y, r, row_end);
#endif
    for (; r < row_end; r++)
        for (int64_t t = 0; t < n_tokens; t++) y[t * ld_y + r] = nb_dot_f32(w + r * k, x + t * k, k);
}
