// The per-token element-wise steps between decode's products: RMSNorm, the residual add and
// rotary embeddings. They run on the caller's thread alone while the workers wait, so their
// time is decode time (`nibble bench`'s "the rest"). The loops are plain C, compiled once at the
// baseline and once for AVX2, which the compiler vectorises; the arithmetic is Layers.swift's
// (the same operations in the same order, no contraction), so every path gives the same floats
// as the Swift it replaced.
#include "CKernels.h"
#include "dispatch.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

// out = weight · (x · inv) per row, inv = 1 / √(mean(x²) + ε).
#define RMS_NORM_BODY                                                                  \
    for (int64_t r = 0; r < rows; r++) {                                               \
        const float *xr = x + r * width;                                               \
        float *o = out + r * width;                                                    \
        const float inv = 1.0f / sqrtf(nb_dot_f32(xr, xr, width) / (float)width + eps); \
        for (int64_t i = 0; i < width; i++) o[i] = weight[i] * (xr[i] * inv);          \
    }

#define ADD_BODY for (int64_t i = 0; i < n; i++) x[i] += a[i];

// Token t's `heads` heads (at v + t·stride + h·head_dim) rotated by its cos/sin row of the
// table (cos of the `pairs` pairs, then their sin). Adjacent pairs (2i, 2i + 1) or halves (i,
// i + pairs) of the first 2·pairs dimensions; the rest of a head stays as it is.
#define ROPE_BODY                                                                          \
    for (int64_t t = 0; t < count; t++) {                                                  \
        const float *c = table + t * 2 * pairs, *s = c + pairs;                            \
        for (int64_t h = 0; h < heads; h++) {                                              \
            float *p = v + t * stride + h * head_dim;                                      \
            if (halves) {                                                                  \
                for (int64_t i = 0; i < pairs; i++) {                                      \
                    const float x0 = p[i], x1 = p[i + pairs];                              \
                    p[i] = x0 * c[i] - x1 * s[i];                                          \
                    p[i + pairs] = x0 * s[i] + x1 * c[i];                                  \
                }                                                                          \
            } else {                                                                       \
                for (int64_t i = 0; i < pairs; i++) {                                      \
                    const float x0 = p[2 * i], x1 = p[2 * i + 1];                          \
                    p[2 * i] = x0 * c[i] - x1 * s[i];                                      \
                    p[2 * i + 1] = x0 * s[i] + x1 * c[i];                                  \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }

static void rms_norm_scalar(const float *x, const float *weight, int64_t width, int64_t rows, float eps, float *out) {
    RMS_NORM_BODY
}
static void add_scalar(const float *a, float *x, int64_t n) { ADD_BODY }
static void rope_scalar(float *v, int64_t heads, int64_t head_dim, int64_t stride, int64_t count, const float *table,
                        int64_t pairs, int halves) {
    ROPE_BODY
}

#if defined(__x86_64__)
NB_AVX2 static void rms_norm_avx2(const float *x, const float *weight, int64_t width, int64_t rows, float eps, float *out) {
    RMS_NORM_BODY
}
NB_AVX2 static void add_avx2(const float *a, float *x, int64_t n) { ADD_BODY }
NB_AVX2 static void rope_avx2(float *v, int64_t heads, int64_t head_dim, int64_t stride, int64_t count, const float *table,
                              int64_t pairs, int halves) {
    ROPE_BODY
}
#endif

void nb_rms_norm(const float *x, const float *weight, int64_t width, int64_t rows, float eps, float *out) {
#if defined(__x86_64__)
    if (nb_isa_has_avx2(nb_active_isa())) {
        rms_norm_avx2(x, weight, width, rows, eps, out);
        return;
    }
#endif
    rms_norm_scalar(x, weight, width, rows, eps, out);
}

void nb_add_f32(const float *a, float *x, int64_t n) {
#if defined(__x86_64__)
    if (nb_isa_has_avx2(nb_active_isa())) {
        add_avx2(a, x, n);
        return;
    }
#endif
    add_scalar(a, x, n);
}

void nb_rope(float *v, int64_t heads, int64_t head_dim, int64_t stride, int64_t count, const float *table, int64_t pairs,
             int32_t halves) {
#if defined(__x86_64__)
    if (nb_isa_has_avx2(nb_active_isa())) {
        rope_avx2(v, heads, head_dim, stride, count, table, pairs, halves != 0);
        return;
    }
#endif
    rope_scalar(v, heads, head_dim, stride, count, table, pairs, halves != 0);
}
