// f32 dot products, matrix-vector and matrix-matrix products.
//
// Decode is bound by memory bandwidth: each weight row is streamed once per token, so
// the kernels keep several independent FMA accumulators to hide latency. Prefill
// reuses each loaded weight vector for two tokens (a 4-row × 2-token register tile).
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

// Y[t0..t0+2, r0..r0+4] for k a multiple of 8.
NB_AVX2 static void tile_4x2_avx2(const float *w, const float *x, float *y, int64_t k, int64_t ld_y) {
    __m256 acc[4][2];
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < k; i += 8) {
        __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + k + i);
        for (int r = 0; r < 4; r++) {
            __m256 wr = _mm256_loadu_ps(w + r * k + i);
            acc[r][0] = _mm256_fmadd_ps(wr, x0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(wr, x1, acc[r][1]);
        }
    }
    for (int r = 0; r < 4; r++) {
        y[r] = hsum256(acc[r][0]);
        y[ld_y + r] = hsum256(acc[r][1]);
    }
}
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

NB_AVX512 static void tile_4x2_avx512(const float *w, const float *x, float *y, int64_t k, int64_t ld_y) {
    __m512 acc[4][2];
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 16) {
        __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + k + i);
        for (int r = 0; r < 4; r++) {
            __m512 wr = _mm512_loadu_ps(w + r * k + i);
            acc[r][0] = _mm512_fmadd_ps(wr, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(wr, x1, acc[r][1]);
        }
    }
    for (int r = 0; r < 4; r++) {
        y[r] = _mm512_reduce_add_ps(acc[r][0]);
        y[ld_y + r] = _mm512_reduce_add_ps(acc[r][1]);
    }
}
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
    int64_t r = row_begin, t = 0;
#if defined(__x86_64__)
    nb_isa isa = nb_active_isa();
    int64_t width = isa == NB_ISA_AVX512 ? 16 : 8;
    if (isa >= NB_ISA_AVX2 && isa <= NB_ISA_AVX512 && k % width == 0) {
        for (; r + 4 <= row_end; r += 4) {
            for (t = 0; t + 2 <= n_tokens; t += 2) {
                if (isa == NB_ISA_AVX512) tile_4x2_avx512(w + r * k, x + t * k, y + t * ld_y + r, k, ld_y);
                else tile_4x2_avx2(w + r * k, x + t * k, y + t * ld_y + r, k, ld_y);
            }
            for (; t < n_tokens; t++)
                for (int64_t rr = r; rr < r + 4; rr++) y[t * ld_y + rr] = nb_dot_f32(w + rr * k, x + t * k, k);
        }
    }
#endif
    for (; r < row_end; r++)
        for (t = 0; t < n_tokens; t++) y[t * ld_y + r] = nb_dot_f32(w + r * k, x + t * k, k);
}

// ---- attention ----------------------------------------------------------------------

#include <math.h>

void nb_attention_f32(const float *q, const float *keys, const float *values, int64_t stride, int64_t capacity,
                      int64_t first, int64_t n, int64_t head_dim, float scale, float *out) {
    // One pass with a running maximum (online softmax): no score buffer, and the
    // result equals softmax(q·K/√d)·V up to rounding.
    float m = -INFINITY, l = 0;
    for (int64_t d = 0; d < head_dim; d++) out[d] = 0;
    for (int64_t j = 0, slot = first; j < n; j++, slot = slot + 1 == capacity ? 0 : slot + 1) {
        float s = nb_dot_f32(q, keys + slot * stride, head_dim) * scale;
        float w = nb_online_softmax_step(s, &m, &l, out, head_dim);
        nb_axpy_f32(w, values + slot * stride, out, head_dim);
    }
    float inv = 1.0f / l;
    for (int64_t d = 0; d < head_dim; d++) out[d] *= inv;
}
