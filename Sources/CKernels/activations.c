// Element-wise kernels of the MLPs: SiLU and GELU (tanh approximation) gating.
//
// Both come down to a logistic function, 1 / (1 + e^-z): silu(g) = g·σ(g) and
// gelu_tanh(g) = 0.5·g·(1 + tanh(u)) = g·σ(2u) with u = √(2/π)·(g + 0.044715·g³). The
// exponential is one polynomial evaluation (Cephes' expf: n = round(z·log2 e),
// r = z − n·ln 2 in two parts, a degree-6 polynomial, then 2^n), accurate to ~1 ulp,
// written as the same sequence of roundings in every path, so the AVX2 and AVX-512
// results equal the scalar ones bit for bit (libm's expm1f/tanhf took a fifth of a
// Gemma 3 prefill).
#include "CKernels.h"
#include "dispatch.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#define EXP_HI 89.0f                       // n = 128 there: 2^n is +inf, so e^z overflows to inf as it should
#define EXP_LO (-87.0f)                    // e^-87 is still a normal float
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f                // ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits
#define LN2_LO (-2.12194440e-4f)
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f
#define GELU_C 0.7978845608028654f         // √(2/π)
#define GELU_A 0.044715f

// ---- scalar -------------------------------------------------------------------------

static inline float exp_scalar(float z) {
    z = fminf(fmaxf(z, EXP_LO), EXP_HI);
    float n = nearbyintf(z * LOG2E);
    float r = fmaf(n, -LN2_HI, z);
    r = fmaf(n, -LN2_LO, r);
    float p = fmaf(P0, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    float r2 = r * r;
    p = fmaf(p, r2, r);
    p = p + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

static inline float silu_scalar(float g) { return g / (1.0f + exp_scalar(-g)); }

static inline float gelu_scalar(float g) {
    float g3 = (g * g) * g;
    float u = GELU_C * fmaf(GELU_A, g3, g);
    return g / (1.0f + exp_scalar(-2.0f * u));
}

static void gate_scalar(int gelu, float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float a = gelu ? gelu_scalar(gate[i]) : silu_scalar(gate[i]);
        gate[i] = up ? a * up[i] : a;
    }
}

// ---- AVX2 / AVX-512 -----------------------------------------------------------------
#if defined(__x86_64__)
#include <immintrin.h>

NB_AVX2 static inline __m256 exp_avx2(__m256 z) {
    z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(z, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), z);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(P0), r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

NB_AVX2 static void gate_avx2(int gelu, float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i), z;
        if (gelu) {
            __m256 g3 = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
            __m256 u = _mm256_mul_ps(_mm256_set1_ps(GELU_C), _mm256_fmadd_ps(_mm256_set1_ps(GELU_A), g3, g));
            z = _mm256_mul_ps(_mm256_set1_ps(-2.0f), u);
        } else {
            z = _mm256_sub_ps(_mm256_setzero_ps(), g);
        }
        __m256 a = _mm256_div_ps(g, _mm256_add_ps(one, exp_avx2(z)));
        if (up) a = _mm256_mul_ps(a, _mm256_loadu_ps(up + i));
        _mm256_storeu_ps(gate + i, a);
    }
    gate_scalar(gelu, gate + i, up ? up + i : NULL, n - i);
}

NB_AVX512 static inline __m512 exp_avx512(__m512 z) {
    z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), z);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(P0), r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

NB_AVX512 static void gate_avx512(int gelu, float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i), z;
        if (gelu) {
            __m512 g3 = _mm512_mul_ps(_mm512_mul_ps(g, g), g);
            __m512 u = _mm512_mul_ps(_mm512_set1_ps(GELU_C), _mm512_fmadd_ps(_mm512_set1_ps(GELU_A), g3, g));
            z = _mm512_mul_ps(_mm512_set1_ps(-2.0f), u);
        } else {
            z = _mm512_sub_ps(_mm512_setzero_ps(), g);
        }
        __m512 a = _mm512_div_ps(g, _mm512_add_ps(one, exp_avx512(z)));
        if (up) a = _mm512_mul_ps(a, _mm512_loadu_ps(up + i));
        _mm512_storeu_ps(gate + i, a);
    }
    gate_scalar(gelu, gate + i, up ? up + i : NULL, n - i);
}
#endif

void nb_activation_gate(nb_mlp_activation act, float *gate, const float *up, int64_t n) {
    int gelu = act == NB_MLP_GELU_TANH;
#if defined(__x86_64__)
    switch (nb_active_isa()) {
    case NB_ISA_AVX512: gate_avx512(gelu, gate, up, n); return;
    case NB_ISA_AVX2: gate_avx2(gelu, gate, up, n); return;
    default: break;
    }
#endif
    gate_scalar(gelu, gate, up, n);
}
