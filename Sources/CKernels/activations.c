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
#include "x86_simd.h"

// The sum of v's 8 lanes: a tree of halves (not a chain of 8 dependent adds).
NB_AVX2 static inline float nb_hsum_avx2(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

// AVX2: 8 lanes.
#define V __m256
#define VI __m256i
#define VW 8
#define VATTR NB_AVX2
#define VNAME(x) x##_avx2
#define V_ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VI_AS_FLOAT(x) _mm256_castsi256_ps(x)
#define V_SET1 _mm256_set1_ps
#define V_MIN _mm256_min_ps
#define V_MAX _mm256_max_ps
#define V_MUL _mm256_mul_ps
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_DIV _mm256_div_ps
#define V_FMADD _mm256_fmadd_ps
#define V_ZERO _mm256_setzero_ps
#define V_LOAD _mm256_loadu_ps
#define V_STORE _mm256_storeu_ps
#define V_TO_INT _mm256_cvtps_epi32
#define VI_ADD _mm256_add_epi32
#define VI_SET1 _mm256_set1_epi32
#define VI_SLLI _mm256_slli_epi32
#define V_HSUM nb_hsum_avx2
#include "activations_simd.h"
#undef V
#undef VI
#undef VW
#undef VATTR
#undef VNAME
#undef V_ROUND
#undef VI_AS_FLOAT
#undef V_SET1
#undef V_MIN
#undef V_MAX
#undef V_MUL
#undef V_ADD
#undef V_SUB
#undef V_DIV
#undef V_FMADD
#undef V_ZERO
#undef V_LOAD
#undef V_STORE
#undef V_TO_INT
#undef VI_ADD
#undef VI_SET1
#undef VI_SLLI
#undef V_HSUM

// AVX-512: 16 lanes, the same operations.
#define V __m512
#define VI __m512i
#define VW 16
#define VATTR NB_AVX512
#define VNAME(x) x##_avx512
#define V_ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VI_AS_FLOAT(x) _mm512_castsi512_ps(x)
#define V_SET1 _mm512_set1_ps
#define V_MIN _mm512_min_ps
#define V_MAX _mm512_max_ps
#define V_MUL _mm512_mul_ps
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_DIV _mm512_div_ps
#define V_FMADD _mm512_fmadd_ps
#define V_ZERO _mm512_setzero_ps
#define V_LOAD _mm512_loadu_ps
#define V_STORE _mm512_storeu_ps
#define V_TO_INT _mm512_cvtps_epi32
#define VI_ADD _mm512_add_epi32
#define VI_SET1 _mm512_set1_epi32
#define VI_SLLI _mm512_slli_epi32
#define V_HSUM _mm512_reduce_add_ps
#include "activations_simd.h"
#endif

void nb_activation_gate(nb_mlp_activation act, float *gate, const float *up, int64_t n) {
    int gelu = act == NB_MLP_GELU_TANH;
#if defined(__x86_64__)
    switch (nb_active_isa()) {
    case NB_ISA_AVX512: gate_avx512(gelu, gate, up, n); return;
    case NB_ISA_AVX2:
    case NB_ISA_AVXVNNI: gate_avx2(gelu, gate, up, n); return;
    default: break;
    }
#endif
    gate_scalar(gelu, gate, up, n);
}

float nb_exp_sum_f32(float *x, int64_t n, float sub) {
#if defined(__x86_64__)
    switch (nb_active_isa()) {
    case NB_ISA_AVX512: return exp_sum_avx512(x, n, sub);
    case NB_ISA_AVX2:
    case NB_ISA_AVXVNNI: return exp_sum_avx2(x, n, sub);
    default: break;
    }
#endif
    float lanes[8] = {0};  // summed in 8 lanes
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lanes[j] += x[i + j] = exp_scalar(x[i + j] - sub);
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < n; i++) sum += x[i] = exp_scalar(x[i] - sub);
    return sum;
}
